//! Opening a host path once, following no symlink in any component.
//!
//! A path that root hands to nucleus may run through directories that an
//! unprivileged user controls. Checking it by name and using it later by name
//! lets that user swap a component for a symlink in between (runc's
//! CVE-2021-30465). So every host path is opened once with
//! `openat2(RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)` (or, on kernels
//! without openat2, one `O_NOFOLLOW` step per component), checked on the
//! descriptor, and used only through the descriptor afterwards.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag, AT_FDCWD};
use nix::sys::stat::{fstat, Mode, SFlag};

/// Opens absolute `path` with `flags` (plus `O_CLOEXEC`), refusing a symlink
/// in any component. `path` must be absolute and free of `..`.
pub fn open_no_symlinks(path: &Path, flags: OFlag) -> io::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    match openat2(AT_FDCWD, path, how) {
        Ok(fd) => Ok(fd),
        Err(Errno::ENOSYS) => walk(path, flags),
        Err(e) => Err(e.into()),
    }
}

/// The per-component fallback: each step opens one name with `O_NOFOLLOW`
/// relative to the directory opened by the step before.
fn walk(path: &Path, flags: OFlag) -> io::Result<OwnedFd> {
    let names: Vec<&OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name),
            _ => None,
        })
        .collect();
    if path.components().any(|c| matches!(c, Component::ParentDir)) || !path.is_absolute() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "expected an absolute path without '..'"));
    }
    let step = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut dir = openat(AT_FDCWD, "/", step, Mode::empty())?;
    let Some((last, parents)) = names.split_last() else {
        return Ok(openat(AT_FDCWD, "/", flags | OFlag::O_CLOEXEC, Mode::empty())?);
    };
    for name in parents {
        dir =
            openat(&dir, *name, step, Mode::empty()).map_err(|e| if e == Errno::ENOTDIR { Errno::ELOOP } else { e })?;
    }
    let fd = openat(&dir, *last, flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())?;
    // O_PATH|O_NOFOLLOW opens a symlink itself rather than failing.
    if SFlag::from_bits_truncate(fstat(&fd)?.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK {
        return Err(Errno::ELOOP.into());
    }
    Ok(fd)
}

/// The first component of `path` that is a symlink, for messages.
pub fn first_symlink(path: &Path) -> Option<PathBuf> {
    let mut walked = PathBuf::from("/");
    for component in path.components() {
        if let Component::Normal(name) = component {
            walked.push(name);
            if walked.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
                return Some(walked);
            }
        }
    }
    None
}

/// Where the kernel says `fd` is now, from `/proc/self/fd`.
pub fn fd_path(fd: impl AsFd) -> io::Result<PathBuf> {
    use std::os::fd::AsRawFd;
    let link = format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd());
    let target = nix::fcntl::readlink(link.as_str())?;
    Ok(PathBuf::from(OsStr::from_bytes(target.as_bytes())))
}

/// A path naming `fd` itself, for system calls that take a path only (such
/// as a bind mount's source): the kernel resolves it to the open file, not
/// to whatever now sits at the original name.
pub fn fd_proc_path(fd: impl AsFd) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn refuses_a_symlink_in_any_component_and_opens_real_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir_all(real.join("inner")).unwrap();
        std::fs::write(real.join("inner/file"), "x").unwrap();
        symlink(&real, tmp.path().join("link")).unwrap();
        symlink("file", real.join("inner/alias")).unwrap();
        let base = tmp.path().canonicalize().unwrap();
        for flags in [OFlag::O_PATH, OFlag::O_RDONLY] {
            assert!(open_no_symlinks(&base.join("real/inner/file"), flags).is_ok());
            for through in ["link/inner/file", "real/inner/alias", "link"] {
                let err = open_no_symlinks(&base.join(through), flags).unwrap_err();
                assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{through}");
            }
        }
        assert!(walk(&base.join("real/inner/file"), OFlag::O_RDONLY).is_ok());
        assert_eq!(walk(&base.join("link/inner/file"), OFlag::O_PATH).unwrap_err().raw_os_error(), Some(libc::ELOOP));
        assert_eq!(walk(&base.join("real/inner/alias"), OFlag::O_PATH).unwrap_err().raw_os_error(), Some(libc::ELOOP));
        assert_eq!(first_symlink(&base.join("link/inner/file")), Some(base.join("link")));
        let fd = open_no_symlinks(&base.join("real/inner"), OFlag::O_PATH).unwrap();
        assert_eq!(fd_path(&fd).unwrap(), base.join("real/inner"));
    }
}
