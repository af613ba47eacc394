//! Every path inside a bundle, in one place.
//!
//! ```text
//! DIR/config.json          0600, fsynced
//! DIR/nucleus.json         the digest record
//! DIR/rootfs/              empty, read-only root holding every mountpoint
//! DIR/store-view/          (run) a tmpfs holding the closure's store paths
//! DIR/staging/volume-N     (run) volume N, mounted from its open descriptor
//! DIR/staging/context      (run) the --context directory, likewise
//! DIR/secrets/N            (run) secret N, on a tmpfs
//! ```
//!
//! runsc is only ever given paths below DIR, a directory nucleus alone
//! controls.

use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "config.json";
pub const RECORD_FILE: &str = "nucleus.json";
pub const ROOTFS_DIR: &str = crate::oci::build::ROOTFS_DIR;
pub const STORE_VIEW_DIR: &str = "store-view";
pub const STAGING_DIR: &str = "staging";
pub const SECRETS_DIR: &str = "secrets";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleLayout {
    dir: PathBuf,
}

impl BundleLayout {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        BundleLayout { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join(ROOTFS_DIR)
    }

    pub fn store_view(&self) -> PathBuf {
        self.dir.join(STORE_VIEW_DIR)
    }

    /// `staging/volume-N`, relative to the bundle.
    pub fn volume_staging(index: usize) -> String {
        format!("{STAGING_DIR}/volume-{index}")
    }

    /// `staging/context`, relative to the bundle.
    pub fn context_staging() -> String {
        format!("{STAGING_DIR}/context")
    }

    /// `secrets/N`, relative to the bundle.
    pub fn secret(index: usize) -> String {
        format!("{SECRETS_DIR}/{index}")
    }

    /// `relative` (one of the names above) inside this bundle.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    /// The part of `path` below this bundle, if it is inside it.
    pub fn relative<'a>(&self, path: &'a Path) -> Option<&'a Path> {
        path.strip_prefix(&self.dir).ok()
    }
}
