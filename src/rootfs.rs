//! Closure → RootfsPlan: which directories become `/bin`, `/lib`, …, and
//! what `/nix/store` holds.
//!
//! The closure is treated as hostile: it may hold symlinks to anywhere on
//! the host. A store path that is itself a symlink appears in the sandbox as
//! that same symlink (nucleus creates it; it never binds what it points
//! to), so it resolves inside the sandbox, as Nix's build sandbox does. The
//! top level's `/bin`, `/etc`, … are resolved as the sandbox would resolve
//! them, entering only the closure's store paths; one that leaves the
//! closure refuses the run.

use std::path::{Path, PathBuf};

use crate::host::store::resolve_in_store;
use crate::nix::store_path::STORE_DIR;
use crate::nix::{Closure, StorePath};
use crate::{Error, Result};

/// The system directories a top-level store path may provide.
pub const FHS_DIRS: &[&str] = &["bin", "sbin", "lib", "lib64", "usr", "etc"];

/// Host mode shows these host directories (when present), and nothing else
/// of the host besides `/nix/store`.
pub const HOST_DIRS: &[&str] = &["bin", "sbin", "usr", "lib", "lib64"];

/// A directory shown read-only at `destination`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemBind {
    /// Canonical: no symlink in any component.
    pub source: PathBuf,
    pub destination: String,
}

/// What one store path of the closure is, as the sandbox will show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreEntryKind {
    Directory,
    File,
    /// Shown as a symlink with this target text, unchanged.
    Symlink(PathBuf),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreEntry {
    pub path: StorePath,
    pub kind: StoreEntryKind,
    /// Which directory entry of `/nix/store` this is.
    pub fingerprint: Fingerprint,
}

/// Device, inode and birth time of a store path's top-level entry (its
/// change time where the filesystem keeps no birth time). What Nix recorded
/// about a valid path never changes while the path stays; a path deleted
/// and built or added again is a new entry, with a new inode or at least a
/// new birth time. So an equal fingerprint means the same, unchanged path,
/// and anything cached about it (its closure entry, a store view holding
/// it) may be reused. Birth time rather than change time: Nix sets a
/// path's metadata again whenever it is added again (evaluating
/// `builtins.toFile` for a path that exists, say), which changes its change
/// time but not the entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [i64; 4]);

/// `/nix/store`, opened once, so that each store path costs one `fstatat`
/// of its name rather than a walk from `/`.
pub struct StoreDir(std::os::fd::OwnedFd);

impl StoreDir {
    pub fn open() -> Result<Self> {
        use nix::fcntl::OFlag;
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        nix::fcntl::open(STORE_DIR, flags, nix::sys::stat::Mode::empty())
            .map(StoreDir)
            .map_err(|e| Error::Rootfs { reason: format!("cannot open {STORE_DIR}: {e}") })
    }

    /// The fingerprint and file type of `path`, not following a symlink.
    pub fn stat(&self, path: &StorePath) -> std::io::Result<(Fingerprint, nix::sys::stat::SFlag)> {
        use rustix::fs::{statx, AtFlags, StatxFlags};
        let wanted = StatxFlags::TYPE | StatxFlags::INO | StatxFlags::BTIME | StatxFlags::CTIME;
        let stat = statx(&self.0, path.base_name(), AtFlags::SYMLINK_NOFOLLOW, wanted)?;
        let has_birth = StatxFlags::from_bits_retain(stat.stx_mask).contains(StatxFlags::BTIME);
        let time = if has_birth { stat.stx_btime } else { stat.stx_ctime };
        let device = rustix::fs::makedev(stat.stx_dev_major, stat.stx_dev_minor);
        let fingerprint = Fingerprint([device as i64, stat.stx_ino as i64, time.tv_sec, i64::from(time.tv_nsec)]);
        let kind = nix::sys::stat::SFlag::from_bits_truncate(u32::from(stat.stx_mode) & libc::S_IFMT);
        Ok((fingerprint, kind))
    }

    /// What `path` is, as the sandbox will show it.
    pub fn entry(&self, path: &StorePath) -> Result<StoreEntry> {
        use nix::sys::stat::SFlag;
        let unusable = |e: std::io::Error| Error::Rootfs { reason: format!("{path} cannot be used: {e}") };
        let (fingerprint, kind) = self.stat(path).map_err(unusable)?;
        let kind = match kind {
            SFlag::S_IFLNK => StoreEntryKind::Symlink(
                nix::fcntl::readlinkat(&self.0, path.base_name()).map_err(|e| unusable(e.into()))?.into(),
            ),
            SFlag::S_IFDIR => StoreEntryKind::Directory,
            _ => StoreEntryKind::File,
        };
        Ok(StoreEntry { path: path.clone(), kind, fingerprint })
    }
}

/// Each store path of `closure`, in its order, as the sandbox will show it.
pub fn store_entries(closure: &Closure) -> Result<Vec<StoreEntry>> {
    let store = StoreDir::open()?;
    closure.store_paths().map(|p| store.entry(p)).collect()
}

/// What `/nix/store` holds inside the sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreView {
    /// Exactly these store paths, sorted.
    Closure(Vec<StoreEntry>),
    /// The host's whole store (host mode).
    Host,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootfsPlan {
    pub system: Vec<SystemBind>,
    pub store: StoreView,
}

impl RootfsPlan {
    /// Closure mode: the FHS directories of the top-level path, and only the
    /// closure under `/nix/store`.
    pub fn for_closure(closure: &Closure) -> Result<Self> {
        Self::for_closure_entries(closure, store_entries(closure)?)
    }

    /// As [`RootfsPlan::for_closure`], with the store entries already known
    /// (from [`store_entries`], or a cache that checked their fingerprints):
    /// one entry per path of the closure, in its order.
    pub fn for_closure_entries(closure: &Closure, entries: Vec<StoreEntry>) -> Result<Self> {
        let matches = entries.len() == closure.paths.len()
            && entries.iter().zip(closure.store_paths()).all(|(e, p)| e.path == *p);
        if !matches {
            return Err(Error::Rootfs {
                reason: format!("the store entries do not match the closure of {}", closure.root),
            });
        }
        let allowed = |p: &StorePath| closure.contains(p);
        let mut system = Vec::new();
        for dir in FHS_DIRS {
            let candidate = closure.root.join(dir);
            if !exists_in_closure(&closure.root, dir, &allowed) {
                continue;
            }
            let resolved = resolve_in_store(&candidate, &allowed).map_err(|why| Error::Rootfs {
                reason: format!(
                    "{} cannot become /{dir}: {why}; only store paths of the closure of {} can be shown",
                    candidate.display(),
                    closure.root
                ),
            })?;
            if resolved.kind != nix::sys::stat::SFlag::S_IFDIR {
                return Err(Error::Rootfs {
                    reason: format!("{} is not a directory, so it cannot become /{dir}", candidate.display()),
                });
            }
            system.push(SystemBind { source: resolved.path, destination: format!("/{dir}") });
        }
        Ok(RootfsPlan { system, store: StoreView::Closure(entries) })
    }

    /// Host mode: the host's system directories and store, read-only.
    pub fn for_host(root: &Path) -> Self {
        let mut system = Vec::new();
        for dir in HOST_DIRS {
            if let Ok(source) = root.join(dir).canonicalize() {
                if source.is_dir() {
                    system.push(SystemBind { source, destination: format!("/{dir}") });
                }
            }
        }
        RootfsPlan { system, store: StoreView::Host }
    }

    pub fn store_entries(&self) -> &[StoreEntry] {
        match &self.store {
            StoreView::Closure(entries) => entries,
            StoreView::Host => &[],
        }
    }
}

/// Whether the top level has `dir` at all, asked without leaving the
/// closure (the top level may itself be a symlink to another store path).
fn exists_in_closure(root: &StorePath, dir: &str, allowed: &dyn Fn(&StorePath) -> bool) -> bool {
    match resolve_in_store(root.as_path(), allowed) {
        Ok(top) if top.kind == nix::sys::stat::SFlag::S_IFDIR => top.path.join(dir).symlink_metadata().is_ok(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_mode_shows_system_dirs_and_the_store() {
        let root = tempfile::tempdir().unwrap();
        for dir in ["usr", "bin", "etc"] {
            std::fs::create_dir(root.path().join(dir)).unwrap();
        }
        let plan = RootfsPlan::for_host(root.path());
        assert_eq!(plan.store, StoreView::Host);
        let shown: Vec<&str> = plan.system.iter().map(|b| b.destination.as_str()).collect();
        assert_eq!(shown, ["/bin", "/usr"], "only HOST_DIRS that exist, never /etc");
        assert!(plan.store_entries().is_empty());
    }
}
