//! Spec + Closure → Bundle + Digest: writing an OCI bundle safely, reading
//! one back to recompute its digest, and verifying it.

pub mod canonical;
pub mod digest;
pub mod layout;
pub mod output_dir;
mod safe_dir;
pub mod verify;
mod write;

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
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
    pub spec: Spec,
    pub record: DigestRecord,
    /// Mountpoints and symlinks inside `rootfs/`, and the run's staging
    /// mountpoints, parents before children.
    pub entries: Vec<BundleEntry>,
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
            serde_json::from_slice(&bytes).map_err(|e| Error::bundle(dir.join(name), format!("is not JSON: {e}"), None))
        };
        let config = read_json(layout::CONFIG_FILE)?;
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
