//! Whether a directory can be trusted to hold nucleus's state.
//!
//! A state root holds bundles, runsc's state and the closure cache. If
//! another user could write it, or any directory above it, that user could
//! swap a container's directory while runsc starts, plant runsc state, or
//! poison the cache. So, as OpenSSH's StrictModes does for `~/.ssh`, every
//! directory from `/` down to the state root must be owned by root or by
//! the caller, and must not be writable by group or others unless it has
//! the sticky bit (as `/tmp` does).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Checks `dir` and every existing directory above it. Symlinks on the way
/// are resolved first (a symlink is only as trustworthy as the directory
/// holding it, which is checked too), so the components checked are the
/// ones the kernel will walk.
pub fn check_trusted(dir: &Path) -> Result<()> {
    check_each(dir, &existing_ancestors(dir)?, nix::unistd::geteuid().as_raw())
}

/// The rule itself, over `components`, for a caller with uid `me`.
fn check_each(dir: &Path, components: &[PathBuf], me: u32) -> Result<()> {
    for component in components {
        let meta = component.metadata().map_err(|e| Error::state(component, "cannot be examined", Some(e)))?;
        if !meta.is_dir() {
            return Err(Error::state(component, "is not a directory", None));
        }
        let owner = meta.uid();
        if owner != 0 && owner != me {
            return Err(Error::state(
                dir,
                format!(
                    "{} is owned by uid {owner}, neither root nor you; choose a state root only you control",
                    component.display()
                ),
                None,
            ));
        }
        let mode = meta.mode();
        let sticky = mode & 0o1000 != 0;
        if mode & 0o022 != 0 && !sticky {
            return Err(Error::state(
                dir,
                format!(
                    "{} is writable by group or others (mode {:o}) and not sticky; choose a state root only you control",
                    component.display(),
                    mode & 0o7777
                ),
                None,
            ));
        }
    }
    Ok(())
}

/// The canonical form of the longest existing prefix of `dir`, and each of
/// its ancestors, from `/` down.
fn existing_ancestors(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut existing = dir.to_path_buf();
    while existing.symlink_metadata().is_err() {
        if !existing.pop() {
            break;
        }
    }
    let canonical = existing.canonicalize().map_err(|e| Error::state(&existing, "cannot be resolved", Some(e)))?;
    Ok(canonical.ancestors().map(Path::to_path_buf).collect::<Vec<_>>().into_iter().rev().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Only the directories the test makes are judged, so the test holds
    /// wherever it runs (a Nix build sandbox's `/` belongs to nobody).
    #[test]
    fn group_or_world_writable_directories_are_refused_unless_sticky() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let open = base.join("open");
        std::fs::create_dir(&open).unwrap();
        let check = |mode: u32, who: u32| {
            std::fs::set_permissions(&open, std::fs::Permissions::from_mode(mode)).unwrap();
            check_each(&open, std::slice::from_ref(&open), who)
        };
        assert!(check(0o700, me).is_ok());
        assert!(check(0o755, me).is_ok());
        assert!(matches!(check(0o777, me), Err(Error::State { .. })));
        assert!(check(0o770, me).is_err());
        assert!(check(0o1777, me).is_ok());
        assert!(check(0o700, me.wrapping_add(1)).is_err() || me == 0);
        assert_eq!(existing_ancestors(&open.join("not/yet")).unwrap().last(), Some(&open));
    }
}
