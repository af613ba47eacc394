//! Closure → RootfsPlan: which host directories become `/bin`, `/lib`, …,
//! and which store paths appear under `/nix/store`.

use std::path::{Path, PathBuf};

use crate::nix::{Closure, StorePath};
use crate::{Error, Result};

/// The system directories a top-level store path may provide.
pub const FHS_DIRS: &[&str] = &["bin", "sbin", "lib", "lib64", "usr", "etc"];

/// Host mode shows these host directories (when present), and nothing else
/// of the host besides `/nix/store`.
pub const HOST_DIRS: &[&str] = &["bin", "sbin", "usr", "lib", "lib64"];

/// A host directory shown read-only at `destination`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemBind {
    /// Canonical host path.
    pub source: PathBuf,
    pub destination: String,
}

/// What `/nix/store` holds inside the sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreView {
    /// Exactly these store paths, sorted.
    Closure(Vec<StorePath>),
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
        let top = &closure.root;
        check_top_level_symlinks(closure)?;
        let mut system = Vec::new();
        for dir in FHS_DIRS {
            let candidate = top.join(dir);
            if candidate.symlink_metadata().is_err() {
                continue;
            }
            let source = resolve_inside_closure(closure, &candidate)?;
            if !source.is_dir() {
                return Err(Error::Rootfs(format!(
                    "{} is not a directory, so it cannot become /{dir}",
                    candidate.display()
                )));
            }
            system.push(SystemBind { source, destination: format!("/{dir}") });
        }
        Ok(RootfsPlan { system, store: StoreView::Closure(closure.store_paths().cloned().collect()) })
    }

    /// Host mode: the host's system directories and store, read-only.
    pub fn for_host() -> Result<Self> {
        let mut system = Vec::new();
        for dir in HOST_DIRS {
            let path = Path::new("/").join(dir);
            if let Ok(source) = path.canonicalize() {
                if source.is_dir() {
                    system.push(SystemBind { source, destination: format!("/{dir}") });
                }
            }
        }
        Ok(RootfsPlan { system, store: StoreView::Host })
    }

    pub fn store_paths(&self) -> &[StorePath] {
        match &self.store {
            StoreView::Closure(paths) => paths,
            StoreView::Host => &[],
        }
    }
}

/// A symlink at the top level that leads outside the closure would show the
/// workload a dangling path at best and a host path at worst: refuse it.
fn check_top_level_symlinks(closure: &Closure) -> Result<()> {
    let top = closure.root.as_path();
    if !top.is_dir() {
        return Ok(());
    }
    let entries = std::fs::read_dir(top).map_err(|e| Error::io("cannot list", top, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("cannot list", top, e))?;
        if entry.file_type().map(|t| t.is_symlink()).unwrap_or(false) {
            resolve_inside_closure(closure, &entry.path())?;
        }
    }
    Ok(())
}

fn resolve_inside_closure(closure: &Closure, path: &Path) -> Result<PathBuf> {
    let escape = |target: &str| {
        Error::Rootfs(format!(
            "{} resolves to {target}, outside the closure of {}; only store paths of the closure can be shown",
            path.display(),
            closure.root
        ))
    };
    let resolved = path.canonicalize().map_err(|_| escape("nothing (a dangling link)"))?;
    match StorePath::containing(&resolved) {
        Some(owner) if closure.contains(&owner) => Ok(resolved),
        _ => Err(escape(&resolved.display().to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_mode_shows_system_dirs_and_the_store() {
        let plan = RootfsPlan::for_host().unwrap();
        assert_eq!(plan.store, StoreView::Host);
        assert!(plan.system.iter().any(|b| b.destination == "/usr"));
        assert!(plan.system.iter().all(|b| b.destination != "/etc"));
        assert!(plan.store_paths().is_empty());
    }
}
