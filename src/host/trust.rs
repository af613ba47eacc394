//! Whether a directory can be trusted to hold nucleus's state.
//!
//! A state root holds bundles, runsc's state, container records and the
//! closure cache. If another user could write it, or any directory above it,
//! that user could swap a container's directory while runsc starts, plant a
//! record whose pid `nucleus delete --force` then kills, or poison the cache
//! so that extra store paths appear in a sandbox. So, as OpenSSH's
//! StrictModes does for `~/.ssh`:
//! - every directory above the state root must be owned by root or by the
//!   caller, and must not be writable by group or others unless it has the
//!   sticky bit (as `/tmp` does: then no one else can rename or remove what
//!   root and the caller own in it);
//! - the state root itself must be owned by the caller and writable by no
//!   one else, sticky or not: a shared directory such as `/tmp` is never a
//!   state root, since anyone may create entries in it.
//!
//! The walk from `/` goes through descriptors, one component at a time,
//! never following a symlink, and judges each directory on the descriptor it
//! was opened as; missing directories are created (0700) relative to their
//! parent's descriptor and judged like the others. A directory someone
//! else slips in between two steps is judged, and refused, like any other.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag, AT_FDCWD};
use nix::sys::stat::{fstat, fstatat, mkdirat, FileStat, Mode, SFlag};

use crate::{Error, Result};

/// Which directory of the walk is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// A directory above the state root.
    Above,
    /// The state root itself.
    StateRoot,
}

/// Opens the state root `dir` (absolute, without `..`), creating it and any
/// missing parent 0700 when `create` says so, and returns a descriptor of
/// it, every directory on the way having been judged by the rule above.
/// `None` when it does not exist and may not be created (the directories
/// that do exist are judged all the same).
pub fn open_trusted_dir(dir: &Path, create: bool) -> Result<Option<OwnedFd>> {
    if !dir.is_absolute() || dir.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(Error::state(dir, "must be an absolute path without '..'", None));
    }
    let me = nix::unistd::geteuid().as_raw();
    let names: Vec<&OsStr> = dir
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name),
            _ => None,
        })
        .collect();
    let step = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut walked = PathBuf::from("/");
    let mut fd = openat(AT_FDCWD, "/", step, Mode::empty())
        .map_err(|e| Error::state("/", "cannot be opened", Some(e.into())))?;
    judge(&fd, &walked, dir, if names.is_empty() { Place::StateRoot } else { Place::Above }, me)?;
    for (i, name) in names.iter().enumerate() {
        walked.push(name);
        let place = if i + 1 == names.len() { Place::StateRoot } else { Place::Above };
        let child = match openat(&fd, *name, step, Mode::empty()) {
            Ok(child) => child,
            Err(Errno::ENOENT) if !create => return Ok(None),
            Err(Errno::ENOENT) => {
                match mkdirat(&fd, *name, Mode::from_bits_truncate(0o700)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(Error::state(&walked, "cannot be created", Some(e.into()))),
                }
                openat(&fd, *name, step, Mode::empty()).map_err(|e| not_opened(&fd, name, &walked, dir, e))?
            }
            Err(e) => return Err(not_opened(&fd, name, &walked, dir, e)),
        };
        judge(&child, &walked, dir, place, me)?;
        fd = child;
    }
    Ok(Some(fd))
}

/// Judges a program that nucleus runs with its own privileges (runsc):
/// every directory above it by the rule for directories above a state root,
/// so that no one else can swap it between this check and its use, and the
/// file itself: regular, owned by root or the caller, writable by no one
/// else. `path` must be canonical: a symlink on the way is refused.
pub fn check_trusted_program(path: &Path) -> std::result::Result<(), String> {
    let me = nix::unistd::geteuid().as_raw();
    let mut names: Vec<&OsStr> = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(name) => names.push(name),
            _ => return Err(format!("{} is not a canonical absolute path", path.display())),
        }
    }
    let Some((file, dirs)) = names.split_last() else { return Err(format!("{} is a directory", path.display())) };
    let step = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut walked = PathBuf::from("/");
    let mut fd = openat(AT_FDCWD, "/", step, Mode::empty()).map_err(|e| format!("/: {e}"))?;
    let judge_dir = |fd: &OwnedFd, walked: &Path| -> std::result::Result<(), String> {
        let stat = fstat(fd).map_err(|e| format!("{}: {e}", walked.display()))?;
        rule(&stat, Place::Above, me).map_err(|why| format!("{} {why}", walked.display()))
    };
    judge_dir(&fd, &walked)?;
    for name in dirs {
        walked.push(name);
        fd = openat(&fd, *name, step, Mode::empty())
            .map_err(|e| format!("{}: {e} (a symlink, or not a directory)", walked.display()))?;
        judge_dir(&fd, &walked)?;
    }
    let program = openat(&fd, *file, OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let stat = fstat(&program).map_err(|e| format!("{}: {e}", path.display()))?;
    let (owner, mode) = (stat.st_uid, stat.st_mode & 0o7777);
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        Err(format!("{} is not a regular file", path.display()))
    } else if !root_or(me, owner) {
        Err(format!("{} is owned by uid {owner}, neither root nor you", path.display()))
    } else if mode & 0o022 != 0 {
        Err(format!("{} is writable by group or others (mode {mode:o})", path.display()))
    } else {
        Ok(())
    }
}

/// How much of a configuration file must be beyond other users' reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileTrust {
    /// The way to it: no one else can redirect the name to another file
    /// (an environment file, whose contents reach the workload; a seccomp
    /// profile, whose contents a pin can vouch for).
    Path,
    /// The way and the file itself, owned by root or the caller and
    /// writable by no one else: a hooks file names programs that run as
    /// the caller on the host.
    PathAndFile,
}

/// Opens a configuration file for reading, following symlinks only where
/// no other user could have put or changed them: every directory walked
/// (those holding the symlinks included) is judged by the rule for
/// directories above a state root, and an entry that belongs to another
/// user in a directory others may write (a sticky one) is refused. So a
/// name in a directory the caller does not control cannot be turned into a
/// link to a file the caller can read and that user cannot.
pub fn open_trusted_file(path: &Path, trust: FileTrust) -> std::result::Result<OwnedFd, String> {
    use std::collections::VecDeque;
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStrExt;
    const MAX_SYMLINKS: usize = 40;
    let me = nix::unistd::geteuid().as_raw();
    let absolute = std::path::absolute(path).map_err(|e| format!("cannot be resolved: {e}"))?;
    let components = |p: &Path| -> VecDeque<OsString> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(name) => Some(name.to_os_string()),
                Component::ParentDir => Some(OsString::from("..")),
                _ => None,
            })
            .collect()
    };
    let step = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let root = openat(AT_FDCWD, "/", step | OFlag::O_DIRECTORY, Mode::empty()).map_err(|e| format!("/: {e}"))?;
    let root_stat = fstat(&root).map_err(|e| format!("/: {e}"))?;
    let unsafe_dir =
        |at: &Path, why: String| format!("{} {why}, so another user could change what it names", at.display());
    rule(&root_stat, Place::Above, me).map_err(|why| unsafe_dir(Path::new("/"), why))?;
    // The directories walked so far, with their stat, from `/` down.
    let mut stack: Vec<(OwnedFd, FileStat, PathBuf)> = vec![(root, root_stat, PathBuf::from("/"))];
    let mut queue = components(&absolute);
    let mut links = 0;
    while let Some(name) = queue.pop_front() {
        if name == ".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let (parent, parent_stat, parent_path) = stack.last().expect("the walk starts at /");
        let here = parent_path.join(&name);
        let fd = openat(parent, name.as_os_str(), step, Mode::empty()).map_err(|e| match e {
            Errno::ENOENT if here == absolute => "does not exist".to_string(),
            Errno::ENOENT => format!("{} does not exist", here.display()),
            e => format!("{}: {e}", here.display()),
        })?;
        let stat = fstat(&fd).map_err(|e| format!("{}: {e}", here.display()))?;
        let shared = parent_stat.st_mode & 0o022 != 0;
        if shared && !root_or(me, stat.st_uid) {
            return Err(format!(
                "{} belongs to uid {}, in {}, which others may write too",
                here.display(),
                stat.st_uid,
                parent_path.display()
            ));
        }
        match SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT {
            SFlag::S_IFLNK => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(format!("more than {MAX_SYMLINKS} symlinks on the way"));
                }
                let target = nix::fcntl::readlinkat(parent, name.as_os_str()).map_err(|e| e.to_string())?;
                let target = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
                if target.is_absolute() {
                    stack.truncate(1);
                }
                let mut next = components(&target);
                next.extend(queue.drain(..));
                queue = next;
            }
            SFlag::S_IFDIR => {
                rule(&stat, Place::Above, me).map_err(|why| unsafe_dir(&here, why))?;
                stack.push((fd, stat, here));
            }
            SFlag::S_IFREG if queue.is_empty() => {
                let file = openat(
                    parent,
                    name.as_os_str(),
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| format!("{}: {e}", here.display()))?;
                let opened = fstat(&file).map_err(|e| format!("{}: {e}", here.display()))?;
                if (opened.st_dev, opened.st_ino) != (stat.st_dev, stat.st_ino) {
                    return Err(format!("{} changed while it was opened", here.display()));
                }
                let mode = opened.st_mode & 0o7777;
                if trust == FileTrust::PathAndFile {
                    if !root_or(me, opened.st_uid) {
                        return Err(format!(
                            "{} is owned by uid {}, neither root nor you",
                            here.display(),
                            opened.st_uid
                        ));
                    }
                    if mode & 0o022 != 0 {
                        return Err(format!("{} is writable by group or others (mode {mode:o})", here.display()));
                    }
                }
                return Ok(file);
            }
            _ if queue.is_empty() => return Err(format!("{} is not a regular file", here.display())),
            _ => return Err(format!("{} is not a directory", here.display())),
        }
    }
    Err("is a directory, not a file".into())
}

/// Why `name` (at `walked`) could not be opened as a directory.
fn not_opened(parent: &OwnedFd, name: &OsStr, walked: &Path, dir: &Path, e: Errno) -> Error {
    let kind = fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .map(|s| SFlag::from_bits_truncate(s.st_mode) & SFlag::S_IFMT)
        .ok();
    match kind {
        Some(SFlag::S_IFLNK) => Error::state(
            dir,
            format!(
                "{} is a symlink; nucleus follows no symlink on the way to a state root, so give the real path",
                walked.display()
            ),
            None,
        ),
        Some(k) if k != SFlag::S_IFDIR => Error::state(dir, format!("{} is not a directory", walked.display()), None),
        _ => Error::state(walked, "cannot be opened", Some(e.into())),
    }
}

fn judge(fd: &OwnedFd, walked: &Path, dir: &Path, place: Place, me: u32) -> Result<()> {
    let stat = fstat(fd).map_err(|e| Error::state(walked, "cannot be examined", Some(e.into())))?;
    let which = if walked == dir { String::new() } else { format!("{} ", walked.display()) };
    let advice = if place == Place::Above { "; choose a state root only you control" } else { "" };
    rule(&stat, place, me).map_err(|why| Error::state(dir, format!("{which}{why}{advice}"), None))
}

/// Whether `owner` is root or the caller `me`. In a user namespace that
/// does not map root (a Nix build sandbox, nucleus's own with
/// `--rootless`), root's files show as owned by the overflow uid, so that
/// uid stands for root there; in the initial namespace it is just `nobody`.
fn root_or(me: u32, owner: u32) -> bool {
    owner == 0 || owner == me || (owner == overflow_uid() && !in_initial_user_namespace())
}

fn overflow_uid() -> u32 {
    std::fs::read_to_string("/proc/sys/fs/overflowuid").ok().and_then(|t| t.trim().parse().ok()).unwrap_or(65534)
}

/// The initial user namespace maps every uid onto itself.
fn in_initial_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|map| map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
        .unwrap_or(true)
}

/// The rule for one directory, as words on failure.
fn rule(stat: &FileStat, place: Place, me: u32) -> std::result::Result<(), String> {
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR {
        return Err("is not a directory".into());
    }
    let (owner, mode) = (stat.st_uid, stat.st_mode & 0o7777);
    let writable_by_others = mode & 0o022 != 0;
    match place {
        Place::Above if !root_or(me, owner) => Err(format!("is owned by uid {owner}, neither root nor you")),
        Place::Above if writable_by_others && mode & 0o1000 == 0 => {
            Err(format!("is writable by group or others (mode {mode:o}) and not sticky"))
        }
        Place::StateRoot if owner != me => Err(format!(
            "is owned by uid {owner}, not by you (uid {me}); choose a state root only you control, or a new \
             directory that nucleus will create"
        )),
        Place::StateRoot if writable_by_others => Err(format!(
            "is writable by group or others (mode {mode:o}); a shared directory is never a state root: use a \
             directory of your own inside it"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Only the directories the test makes are judged, so the test holds
    /// wherever it runs (in a Nix build sandbox `/` belongs to nobody).
    #[test]
    fn shared_directories_are_refused_as_state_roots_and_above_them_unless_sticky() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let open = base.join("open");
        std::fs::create_dir(&open).unwrap();
        let check = |mode: u32, place: Place, who: u32| {
            std::fs::set_permissions(&open, std::fs::Permissions::from_mode(mode)).unwrap();
            let fd = openat(AT_FDCWD, &open, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
            judge(&fd, &open, &open, place, who)
        };
        for place in [Place::Above, Place::StateRoot] {
            assert!(check(0o700, place, me).is_ok());
            assert!(check(0o755, place, me).is_ok());
            assert!(matches!(check(0o777, place, me), Err(Error::State { .. })));
            assert!(check(0o770, place, me).is_err());
        }
        assert!(check(0o1777, Place::Above, me).is_ok(), "a sticky directory may lie above a state root");
        assert!(check(0o1777, Place::StateRoot, me).is_err(), "but is never one itself");
        let other = me.wrapping_add(1);
        assert!(check(0o700, Place::StateRoot, other).is_err(), "a state root is the caller's own");
        assert!(check(0o700, Place::Above, other).is_err() || me == 0);
    }

    #[test]
    fn a_program_is_judged_with_every_directory_above_it() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let bin = base.join("bin");
        std::fs::create_dir(&bin).unwrap();
        let program = bin.join("runsc");
        std::fs::write(&program, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_trusted_program(&program).unwrap_err();
        assert!(err.contains("writable") || err.contains("owned"), "{err}");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o775)).unwrap();
        assert!(check_trusted_program(&program).is_err());
        std::os::unix::fs::symlink(&bin, base.join("link")).unwrap();
        assert!(check_trusted_program(&base.join("link/runsc")).is_err());
        assert!(check_trusted_program(Path::new("/usr/../usr/bin/env")).is_err());
    }

    #[test]
    fn configuration_files_are_read_only_through_places_no_one_else_controls() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(base.join("real")).unwrap();
        std::fs::write(base.join("real/file"), "x").unwrap();
        std::os::unix::fs::symlink("real/file", base.join("link")).unwrap();
        std::os::unix::fs::symlink(base.join("real"), base.join("dirlink")).unwrap();
        // Where the machine's own directories pass the rule, links through
        // the caller's own directories are followed.
        let machine_ok = open_trusted_file(&base.join("real/file"), FileTrust::Path).is_ok();
        for path in ["link", "dirlink/file", "real/../real/file"] {
            assert_eq!(open_trusted_file(&base.join(path), FileTrust::Path).is_ok(), machine_ok, "{path}");
        }
        assert!(open_trusted_file(&base.join("real"), FileTrust::Path).is_err());
        std::fs::set_permissions(base.join("real"), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(open_trusted_file(&base.join("link"), FileTrust::Path).is_err(), "a directory others may write");
        std::fs::set_permissions(base.join("real"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(base.join("real/file"), std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(open_trusted_file(&base.join("real/file"), FileTrust::Path).is_ok(), machine_ok);
        assert!(open_trusted_file(&base.join("real/file"), FileTrust::PathAndFile).is_err(), "a file others may write");
    }

    #[test]
    fn the_walk_creates_what_is_missing_and_refuses_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let link = base.join("link");
        std::os::unix::fs::symlink(&base, &link).unwrap();
        // The directories above `base` are the machine's, judged by the
        // rule; only what the walk itself refuses is asserted here.
        match open_trusted_dir(&link.join("state"), true) {
            Err(Error::State { reason, .. }) => {
                assert!(reason.contains("symlink") || reason.contains("owned") || reason.contains("writable"))
            }
            other => panic!("a state root through a symlink was opened: {other:?}"),
        }
        assert!(!base.join("state").exists(), "nothing was created through the symlink");
        assert!(open_trusted_dir(Path::new("relative"), true).is_err());
        assert!(open_trusted_dir(Path::new("/a/../b"), true).is_err());
    }
}
