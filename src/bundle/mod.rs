//! Spec + Closure → Bundle + Digest: writing an OCI bundle safely, and
//! reading one back to recompute or verify its digest.
//!
//! ```text
//! DIR/config.json    0600, fsynced
//! DIR/nucleus.json   the record: digest, closure manifest, nucleus version
//! DIR/rootfs/        empty read-only root holding every mountpoint
//! DIR/store-view/    (run only) filled inside a private mount namespace
//! DIR/secrets/       (run only) a tmpfs with the staged secrets
//! ```

pub mod digest;
mod safe_dir;
pub mod verify;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use digest::{ClosureEntry, Digest};
pub use safe_dir::SafeDir;

use crate::nix::Closure;
use crate::oci::build::{ROOTFS_DIR, SECRETS_STAGING_DIR, STORE_VIEW_DIR};
use crate::oci::Spec;
use crate::{Error, Result};

pub const CONFIG_FILE: &str = "config.json";
pub const RECORD_FILE: &str = "nucleus.json";

/// What nucleus records beside config.json.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub nucleus_version: String,
    pub digest: Digest,
    /// Where the bundle was written; the digest normalises this prefix away.
    pub bundle_dir: PathBuf,
    /// The top-level store path; `None` in host mode.
    pub root: Option<String>,
    pub closure: Option<Vec<ClosureEntry>>,
}

/// A bundle on disk.
#[derive(Debug)]
pub struct Bundle {
    pub dir: PathBuf,
    pub config: serde_json::Value,
    pub record: Record,
}

/// Whether the bundle directory is ours to create or the user's to fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The directory must not exist; nucleus creates it 0700.
    New,
    /// `bundle --out`: an empty directory, or one that does not exist yet.
    EmptyOrNew,
}

impl Bundle {
    /// Serialises `spec` and computes the digest, in memory only: what
    /// `--dry-run` prints and what [`Bundle::write`] puts on disk.
    pub fn prepare(dir: &Path, spec: &Spec, closure: Option<&Closure>) -> Result<Bundle> {
        let config = serde_json::to_value(spec).map_err(|e| Error::Bundle(format!("cannot serialise config: {e}")))?;
        let entries = closure.map(ClosureEntry::from_closure);
        let record = Record {
            nucleus_version: env!("CARGO_PKG_VERSION").to_string(),
            digest: digest::compute(&config, dir, entries.as_deref()),
            bundle_dir: dir.to_path_buf(),
            root: closure.map(|c| c.root.to_string()),
            closure: entries,
        };
        Ok(Bundle { dir: dir.to_path_buf(), config, record })
    }

    /// Writes the prepared bundle. On any failure, whatever this call
    /// created is removed again.
    pub fn write(&self, target: Target, spec: &Spec) -> Result<()> {
        let (handle, created_dir) = open_target(&self.dir, target)?;
        self.write_contents(&handle, spec).inspect_err(|_| remove_partial(&self.dir, created_dir))
    }

    /// Reads a bundle written by nucleus.
    pub fn read(dir: &Path) -> Result<Bundle> {
        let meta = dir.symlink_metadata().map_err(|e| Error::io("cannot open bundle", dir, e))?;
        if !meta.is_dir() {
            return Err(Error::Bundle(format!("{} is not a directory", dir.display())));
        }
        let config: serde_json::Value = read_json(&dir.join(CONFIG_FILE))?;
        let record: Record = read_json(&dir.join(RECORD_FILE))?;
        Ok(Bundle { dir: dir.to_path_buf(), config, record })
    }

    /// The digest of what is on disk now.
    pub fn recompute_digest(&self) -> Digest {
        digest::compute(&self.config, &self.record.bundle_dir, self.record.closure.as_deref())
    }

    fn write_contents(&self, dir: &SafeDir, spec: &Spec) -> Result<()> {
        let rootfs = dir.subdir(ROOTFS_DIR, 0o755, true)?;
        let store_view = self.dir.join(STORE_VIEW_DIR);
        let secrets = self.dir.join(SECRETS_STAGING_DIR);
        let mut mountpoints = Mountpoints { rootfs: &rootfs, parents: HashMap::new() };
        for mount in &spec.mounts {
            let source = Path::new(&mount.source);
            let is_secret = source.starts_with(&secrets);
            if source == store_view {
                dir.subdir(STORE_VIEW_DIR, 0o755, false)?;
            } else if is_secret {
                dir.subdir(SECRETS_STAGING_DIR, 0o700, false)?;
            }
            // Secrets are staged later, so their sources do not exist yet.
            let file_mountpoint = is_secret || (mount.is_bind() && source.metadata().is_ok_and(|m| !m.is_dir()));
            mountpoints.create(&mount.destination, file_mountpoint)?;
        }
        // A read-only root cannot gain the working directory later.
        let cwd = Path::new(&spec.process.cwd);
        if !spec.mounts.iter().any(|m| cwd.starts_with(&m.destination)) {
            rootfs.subdirs(&spec.process.cwd, 0o755)?;
        }
        let config_text = serde_json::to_vec_pretty(&self.config).map_err(|e| Error::Bundle(e.to_string()))?;
        dir.write_new_file(CONFIG_FILE, 0o600, &config_text)?;
        let record_text = serde_json::to_vec_pretty(&self.record).map_err(|e| Error::Bundle(e.to_string()))?;
        dir.write_new_file(RECORD_FILE, 0o600, &record_text)?;
        rootfs.sync()?;
        dir.sync()
    }
}

/// Creates mountpoints under rootfs: every directory of a destination, and
/// its last component as a file when the mount's source is a file. Parent
/// directories stay open, so the hundreds of store paths of a closure bound
/// one by one cost one `mkdirat` each.
struct Mountpoints<'a> {
    rootfs: &'a SafeDir,
    parents: HashMap<String, SafeDir>,
}

impl Mountpoints<'_> {
    fn create(&mut self, destination: &str, is_file: bool) -> Result<()> {
        let relative = destination.trim_start_matches('/');
        let (parent, name) = relative.rsplit_once('/').unwrap_or(("", relative));
        if !self.parents.contains_key(parent) {
            self.parents.insert(parent.to_string(), self.rootfs.subdirs(parent, 0o755)?);
        }
        let dir = &self.parents[parent];
        if is_file {
            dir.touch(name, 0o444)
        } else {
            dir.mkdir(name, 0o755)
        }
    }
}

fn open_target(dir: &Path, target: Target) -> Result<(SafeDir, bool)> {
    match dir.symlink_metadata() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((SafeDir::create(dir, 0o700)?, true)),
        Err(e) => Err(Error::io("cannot inspect", dir, e)),
        Ok(_) if target == Target::New => Err(Error::Bundle(format!(
            "{} already exists; nucleus writes bundles only into new directories",
            dir.display()
        ))),
        Ok(meta) if meta.file_type().is_symlink() => {
            Err(Error::invalid("--out", format!("{} is a symlink; give a real directory", dir.display())))
        }
        Ok(meta) if !meta.is_dir() => Err(Error::invalid("--out", format!("{} is not a directory", dir.display()))),
        Ok(_) => {
            let handle = SafeDir::open(dir)?;
            if !handle.is_empty()? {
                return Err(Error::invalid(
                    "--out",
                    format!("{} is not empty; nucleus never overwrites files", dir.display()),
                ));
            }
            Ok((handle, false))
        }
    }
}

/// Removes a half-written bundle: the directory if we created it, else only
/// its contents (it was empty before).
fn remove_partial(dir: &Path, created_dir: bool) {
    if created_dir {
        let _ = std::fs::remove_dir_all(dir);
    } else if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        }
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
    serde_json::from_slice(&text).map_err(|e| Error::Bundle(format!("{}: {e}", path.display())))
}
