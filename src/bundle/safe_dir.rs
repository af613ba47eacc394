//! A directory handle through which children are created relative to an
//! open descriptor, never following symlinks: a path swapped under us after
//! the check cannot redirect a write onto the host.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{mkdirat, Mode};

use crate::{Error, Result};

pub struct SafeDir {
    fd: OwnedFd,
    /// For messages only; every operation goes through `fd`.
    path: std::path::PathBuf,
}

impl SafeDir {
    /// Opens an existing directory, refusing a symlink in its last component.
    pub fn open(path: &Path) -> Result<Self> {
        let fd = openat(None, path, OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| Error::io("cannot open directory", path, e.into()))?;
        // SAFETY: openat just returned this descriptor and nothing else owns it.
        Ok(SafeDir { fd: unsafe { OwnedFd::from_raw_fd(fd) }, path: path.to_path_buf() })
    }

    /// Creates `path` (which must not exist) with `mode` and opens it.
    pub fn create(path: &Path, mode: u32) -> Result<Self> {
        mkdirat(None, path, Mode::from_bits_truncate(mode)).map_err(|e| Error::io("cannot create", path, e.into()))?;
        Self::open(path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates child directory `name` (a single component) and opens it.
    /// An existing directory is opened, not an error, unless `exclusive`.
    pub fn subdir(&self, name: &str, mode: u32, exclusive: bool) -> Result<SafeDir> {
        let child = self.path.join(name);
        if name == ".." || name.contains('/') {
            return Err(Error::Bundle(format!("refusing '{name}' as a directory name")));
        }
        match mkdirat(Some(self.fd.as_raw_fd()), name, Mode::from_bits_truncate(mode)) {
            Ok(()) => {}
            Err(Errno::EEXIST) if !exclusive => {}
            Err(e) => return Err(Error::io("cannot create", &child, e.into())),
        }
        let fd = openat(
            Some(self.fd.as_raw_fd()),
            name,
            OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("cannot open directory", &child, e.into()))?;
        // SAFETY: openat just returned this descriptor and nothing else owns it.
        Ok(SafeDir { fd: unsafe { OwnedFd::from_raw_fd(fd) }, path: child })
    }

    /// Creates child directory `name` unless it exists, without opening it.
    pub fn mkdir(&self, name: &str, mode: u32) -> Result<()> {
        if name.is_empty() || name == ".." || name.contains('/') {
            return Err(Error::Bundle(format!("refusing '{name}' as a directory name")));
        }
        match mkdirat(Some(self.fd.as_raw_fd()), name, Mode::from_bits_truncate(mode)) {
            Ok(()) | Err(Errno::EEXIST) => Ok(()),
            Err(e) => Err(Error::io("cannot create", self.path.join(name), e.into())),
        }
    }

    /// Creates every directory along `relative` (components only, no `..`)
    /// and opens the last one.
    pub fn subdirs(&self, relative: &str, mode: u32) -> Result<SafeDir> {
        let mut names = relative.split('/').filter(|c| !c.is_empty() && *c != ".");
        let mut dir = self.subdir(names.next().unwrap_or("."), mode, false)?;
        for name in names {
            dir = dir.subdir(name, mode, false)?;
        }
        Ok(dir)
    }

    /// Creates an empty file `name` to serve as a mountpoint; an existing
    /// regular file is fine.
    pub fn touch(&self, name: &str, mode: u32) -> Result<()> {
        let flags = OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(Some(self.fd.as_raw_fd()), name, flags, Mode::from_bits_truncate(mode))
            .map_err(|e| Error::io("cannot create", self.path.join(name), e.into()))?;
        // SAFETY: as above; dropping closes it.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
        Ok(())
    }

    /// Writes a new file `name` (which must not exist) with `mode` and
    /// fsyncs it, so a crash never leaves a config that looks complete.
    pub fn write_new_file(&self, name: &str, mode: u32, contents: &[u8]) -> Result<()> {
        let target = self.path.join(name);
        let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(Some(self.fd.as_raw_fd()), name, flags, Mode::from_bits_truncate(mode))
            .map_err(|e| Error::io("cannot create", &target, e.into()))?;
        // SAFETY: openat just returned this descriptor; File takes ownership.
        let mut file = unsafe { File::from_raw_fd(fd) };
        file.write_all(contents).map_err(|e| Error::io("cannot write", &target, e))?;
        file.sync_all().map_err(|e| Error::io("cannot sync", &target, e))
    }

    pub fn sync(&self) -> Result<()> {
        nix::unistd::fsync(self.fd.as_raw_fd()).map_err(|e| Error::io("cannot sync", &self.path, e.into()))
    }

    pub fn is_empty(&self) -> Result<bool> {
        let mut entries = std::fs::read_dir(&self.path).map_err(|e| Error::io("cannot list", &self.path, e))?;
        Ok(entries.next().is_none())
    }
}
