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
        let entries = closure.store_paths().map(store_entry).collect::<Result<_>>()?;
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

/// A store path's own type, not following it if it is a symlink.
fn store_entry(path: &StorePath) -> Result<StoreEntry> {
    let unusable = |e: std::io::Error| Error::Rootfs { reason: format!("{path} cannot be used: {e}") };
    let meta = path.as_path().symlink_metadata().map_err(unusable)?;
    let kind = if meta.file_type().is_symlink() {
        StoreEntryKind::Symlink(std::fs::read_link(path.as_path()).map_err(unusable)?)
    } else if meta.is_dir() {
        StoreEntryKind::Directory
    } else {
        StoreEntryKind::File
    };
    Ok(StoreEntry { path: path.clone(), kind })
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
