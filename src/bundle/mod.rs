//! Spec + Closure → Bundle + Digest: writing an OCI bundle safely, reading
//! one back to recompute its digest, and verifying it.

pub mod canonical;
pub mod digest;
pub mod layout;
pub mod output_dir;
mod safe_dir;
mod strict_json;
pub mod verify;
mod write;

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::Deserialize;
use serde_json::Value;

pub use digest::{ClosureEntry, Digest, DigestRecord};
pub use layout::BundleLayout;
pub use safe_dir::SafeDir;
pub use write::write;

use crate::{Error, Result};

/// Something to create inside a bundle, relative to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleEntry {
    pub path: String,
    pub kind: EntryKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Directory,
    /// An empty file, to mount a file on.
    File,
    /// A symlink with this target, unchanged.
    Symlink(PathBuf),
}

/// A bundle to write: what `bundle` and `run` put on disk, and what
/// `--dry-run` shows.
#[derive(Clone, Debug)]
pub struct BundleContents {
    pub layout: BundleLayout,
    /// config.json, exactly as written.
    pub config: crate::oci::RuntimeConfig,
    pub record: DigestRecord,
    /// Mountpoints and symlinks inside `rootfs/`, and the run's staging
    /// mountpoints, parents before children.
    pub entries: Vec<BundleEntry>,
}

/// config.json must hold only what the runtime spec's types read, spelled
/// as they spell it: the digest hashes every member, but `verify` reads the
/// spec's own (`mounts`, `root`…), and runtimes written in Go match member
/// names regardless of case, so a `"Mounts"` beside `"mounts"` would be
/// what runsc or runc mounts while nucleus checks the other. Such a member
/// is found by reading the config as a spec and writing it back: what
/// comes back differs.
fn check_members(config: &Value) -> std::result::Result<(), String> {
    let spec = Spec::deserialize(config).map_err(|e| format!("is not a runtime spec: {e}"))?;
    let written = serde_json::to_value(&spec).map_err(|e| format!("cannot be written back: {e}"))?;
    match first_difference(config, &written, String::new()) {
        None => Ok(()),
        Some(at) => Err(format!("holds {at}, which is not a member of the runtime spec as nucleus writes it")),
    }
}

/// Where `read` holds something `written` does not hold the same way, as a
/// JSON pointer (`/Mounts`, `/mounts/3/Destination`).
fn first_difference(read: &Value, written: &Value, at: String) -> Option<String> {
    match (read, written) {
        (Value::Object(read), Value::Object(written)) => {
            let unknown =
                read.keys().chain(written.keys()).find(|k| read.get(*k).is_none() || written.get(*k).is_none());
            if let Some(name) = unknown {
                return Some(format!("{at}/{name}"));
            }
            read.iter().find_map(|(name, value)| first_difference(value, &written[name], format!("{at}/{name}")))
        }
        (Value::Array(read), Value::Array(written)) if read.len() == written.len() => {
            read.iter().zip(written).enumerate().find_map(|(i, (r, w))| first_difference(r, w, format!("{at}/{i}")))
        }
        (read, written) if read == written => None,
        _ => Some(if at.is_empty() { "/".to_string() } else { at }),
    }
}

/// A bundle on disk.
#[derive(Debug)]
pub struct Bundle {
    pub layout: BundleLayout,
    pub config: Value,
    pub record: DigestRecord,
}

impl Bundle {
    /// Reads a bundle written by nucleus, through descriptors.
    pub fn read(dir: &Path) -> Result<Bundle> {
        let handle = SafeDir::open(dir).map_err(|e| Error::bundle(dir, "cannot be opened", Some(e)))?;
        let read_json = |name: &str| -> Result<Value> {
            let bytes = handle.read_file(name).map_err(|e| Error::bundle(dir.join(name), "cannot be read", Some(e)))?;
            strict_json::from_slice(&bytes)
                .map_err(|e| Error::bundle(dir.join(name), format!("is not JSON nucleus accepts: {e}"), None))
        };
        let config = read_json(layout::CONFIG_FILE)?;
        check_members(&config).map_err(|reason| Error::bundle(dir.join(layout::CONFIG_FILE), reason, None))?;
        let record: DigestRecord = serde_json::from_value(read_json(layout::RECORD_FILE)?).map_err(|e| {
            Error::bundle(dir.join(layout::RECORD_FILE), format!("is not a nucleus digest record: {e}"), None)
        })?;
        if record.digest_format != digest::DIGEST_FORMAT {
            return Err(Error::bundle(
                dir,
                format!(
                    "was written with digest format {} and this nucleus computes format {}; write it again",
                    record.digest_format,
                    digest::DIGEST_FORMAT
                ),
                None,
            ));
        }
        Ok(Bundle { layout: BundleLayout::new(dir), config, record })
    }

    /// The digest of what is on disk now.
    pub fn recompute_digest(&self) -> Result<Digest> {
        self.record.compute(&self.config).map_err(|reason| Error::bundle(self.layout.dir(), reason, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A config as the spec's types write it. (oci-spec's default process
    /// holds capability sets, which it keeps unordered; nucleus's are empty.)
    fn written() -> Value {
        let mut spec = Spec::default();
        spec.set_mounts(Some(vec![crate::oci::defaults::bind("/nix/store/x", "/nix/store/x", false, false)]));
        if let Some(process) = spec.process_mut() {
            process.set_capabilities(None);
        }
        serde_json::to_value(&spec).unwrap()
    }

    #[test]
    fn a_config_as_nucleus_writes_it_passes() {
        assert_eq!(check_members(&written()), Ok(()));
    }

    /// Members the spec's types do not read, at any depth, are named.
    #[test]
    fn members_the_spec_does_not_know_are_refused_where_they_are() {
        let cases = [
            ("/Mounts", json!([{"destination": "/host", "type": "bind", "source": "/"}])),
            ("/mountſ", json!([])),
            ("/annotationsX", json!({})),
        ];
        for (at, value) in cases {
            let mut config = written();
            config[&at[1..]] = value;
            let reason = check_members(&config).unwrap_err();
            assert!(reason.contains(&format!("holds {at},")), "{reason}");
        }
        let mut config = written();
        config["mounts"][0]["Destination"] = json!("/etc");
        assert!(check_members(&config).unwrap_err().contains("holds /mounts/0/Destination,"));
        let mut config = written();
        config["process"] = json!({"user": {"uid": 0.5}});
        assert!(check_members(&config).is_err(), "a value the spec cannot hold");
    }
}
