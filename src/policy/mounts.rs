//! Rules for the set of user mounts as a whole: no two mounts on one
//! destination, and nothing mounted inside a host directory.
//!
//! A mount inside another needs a mountpoint in the outer one. When the
//! outer mount is a host directory (a volume or the context), runsc's gofer
//! would create that mountpoint *in the host directory*, read-only volume or
//! not. nucleus never writes into a host source, so it refuses such nesting
//! and says how to lay the mounts out instead. Nesting inside a tmpfs is
//! fine: its mountpoints live in the sandbox's memory.

use std::path::Path;

use super::CONTEXT_DIR;
use crate::request::{Secret, Tmpfs, Volume};
use crate::{Error, Result};

/// One user mount, as these rules see it.
struct UserMount<'a> {
    destination: &'a str,
    /// `-v SRC:DST` or `--context DIR`, for messages.
    option: String,
    /// Whether it shows a host directory, in which no mountpoint may be made.
    host_directory: bool,
}

/// Checks volumes, tmpfs mounts, secrets and the context together.
pub fn check(volumes: &[Volume], tmpfs: &[Tmpfs], secrets: &[Secret], context: Option<&Path>) -> Result<()> {
    let mut targets: Vec<UserMount<'_>> = Vec::new();
    for v in volumes {
        let option = format!("--volume {}:{}", v.source.display(), v.destination);
        targets.push(UserMount { destination: &v.destination, option, host_directory: true });
    }
    for t in tmpfs {
        targets.push(UserMount {
            destination: &t.destination,
            option: format!("--tmpfs {}", t.destination),
            host_directory: false,
        });
    }
    for s in secrets {
        let option = format!("--secret {}:{}", s.source.display(), s.destination);
        targets.push(UserMount { destination: &s.destination, option, host_directory: false });
    }
    if let Some(dir) = context {
        targets.push(UserMount {
            destination: CONTEXT_DIR,
            option: format!("--context {}", dir.display()),
            host_directory: true,
        });
    }
    for (i, a) in targets.iter().enumerate() {
        for b in &targets[i + 1..] {
            if a.destination == b.destination {
                return Err(Error::invalid(
                    "mounts",
                    format!("{} and {} both target {}", a.option, b.option, a.destination),
                ));
            }
        }
    }
    for outer in targets.iter().filter(|t| t.host_directory) {
        if let Some(inner) = targets.iter().find(|t| is_strictly_under(t.destination, outer.destination)) {
            return Err(Error::invalid(
                "mounts",
                format!(
                    "{} lies inside {}, a host directory: its mountpoint would have to be created there. \
                     Mount them side by side, or put a --tmpfs at {} and both inside it",
                    inner.option, outer.option, outer.destination
                ),
            ));
        }
    }
    Ok(())
}

fn is_strictly_under(path: &str, dir: &str) -> bool {
    path.len() > dir.len() && Path::new(path).starts_with(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(dst: &str) -> Volume {
        Volume { source: format!("/srv{dst}").into(), destination: dst.into(), writable: false }
    }

    fn tmpfs(dst: &str) -> Tmpfs {
        Tmpfs { destination: dst.into(), size_bytes: None }
    }

    #[test]
    fn nothing_is_mounted_inside_a_host_directory() {
        let nested = check(&[volume("/data"), volume("/data/sub/deeper")], &[], &[], None);
        assert!(matches!(nested, Err(Error::InvalidArgument { .. })));
        let secret = Secret { source: "/s".into(), destination: "/run/secrets/t".into() };
        assert!(check(&[volume("/run")], &[], &[secret], None).is_err());
        assert!(check(&[volume("/context/x")], &[], &[], Some(Path::new("/ctx"))).is_err());
        assert!(check(&[volume("/data")], &[tmpfs("/data/cache")], &[], None).is_err());
    }

    #[test]
    fn side_by_side_and_inside_a_tmpfs_are_fine() {
        assert!(check(&[volume("/data"), volume("/database")], &[], &[], None).is_ok());
        assert!(check(&[volume("/scratch/in")], &[tmpfs("/scratch")], &[], None).is_ok());
    }

    #[test]
    fn one_destination_one_mount() {
        assert!(check(&[volume("/data")], &[tmpfs("/data")], &[], None).is_err());
        assert!(check(&[volume("/context")], &[], &[], Some(Path::new("/ctx"))).is_err());
    }
}
