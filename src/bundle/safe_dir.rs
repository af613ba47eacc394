//! A directory handle through which children are created, opened and
//! removed relative to an open descriptor, never following symlinks: a path
//! swapped under us after a check cannot redirect a write onto the host.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{symlinkat, unlinkat, UnlinkatFlags};

use crate::host::open::open_no_symlinks;

/// An open directory. Errors are `io::Error`s naming nothing: callers say
/// which stage failed and where.
#[derive(Debug)]
pub struct SafeDir {
    fd: OwnedFd,
    /// For messages only; every operation goes through `fd`.
    path: PathBuf,
}

/// The most [`SafeDir::read_file`] reads: far above any config or record
/// nucleus writes (a 3000-path closure's config is under 1 MiB).
pub const MAX_READ_BYTES: u64 = 64 << 20;

fn dir_flags() -> OFlag {
    OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY
}

fn check_name(name: &str) -> std::io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("'{name}' is not a plain name")));
    }
    Ok(())
}

impl SafeDir {
    /// Opens an existing directory, refusing a symlink in any component.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let fd = open_no_symlinks(path, dir_flags())?;
        Ok(SafeDir { fd, path: path.to_path_buf() })
    }

    /// Creates `path` (which must not exist, its parent must) with `mode`
    /// and opens it.
    pub fn create(path: &Path, mode: u32) -> std::io::Result<Self> {
        let parent = path.parent().ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        let name = path
            .file_name()
            .and_then(OsStr::to_str)
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        SafeDir::open(parent)?.subdir(name, mode, true)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Creates child directory `name` and opens it. An existing directory
    /// is opened, not an error, unless `exclusive`.
    pub fn subdir(&self, name: &str, mode: u32, exclusive: bool) -> std::io::Result<SafeDir> {
        check_name(name)?;
        match mkdirat(&self.fd, name, Mode::from_bits_truncate(mode)) {
            Ok(()) => {}
            Err(Errno::EEXIST) if !exclusive => {}
            Err(e) => return Err(e.into()),
        }
        self.open_subdir(name)
    }

    /// Opens existing child directory `name`.
    pub fn open_subdir(&self, name: &str) -> std::io::Result<SafeDir> {
        check_name(name)?;
        let fd = openat(&self.fd, name, dir_flags(), Mode::empty())?;
        Ok(SafeDir { fd, path: self.path.join(name) })
    }

    /// Opens existing child directory `name` if it is on the same mount as
    /// this one, and fails with EXDEV if something is mounted there.
    fn open_subdir_on_this_mount(&self, name: &str) -> std::io::Result<SafeDir> {
        check_name(name)?;
        let how = nix::fcntl::OpenHow::new().flags(dir_flags()).resolve(
            nix::fcntl::ResolveFlag::RESOLVE_NO_XDEV
                | nix::fcntl::ResolveFlag::RESOLVE_NO_SYMLINKS
                | nix::fcntl::ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
        let fd = match nix::fcntl::openat2(&self.fd, name, how) {
            Ok(fd) => fd,
            // Without openat2 a bind mount of the same filesystem passes
            // unseen; another filesystem does not.
            Err(Errno::ENOSYS) => {
                let fd = openat(&self.fd, name, dir_flags(), Mode::empty())?;
                if nix::sys::stat::fstat(&fd)?.st_dev != nix::sys::stat::fstat(&self.fd)?.st_dev {
                    return Err(Errno::EXDEV.into());
                }
                fd
            }
            Err(e) => return Err(e.into()),
        };
        Ok(SafeDir { fd, path: self.path.join(name) })
    }

    /// Creates every directory along `relative` (plain components only)
    /// and opens the last one.
    pub fn subdirs(&self, relative: &str, mode: u32) -> std::io::Result<SafeDir> {
        let mut dir = SafeDir { fd: self.fd.try_clone()?, path: self.path.clone() };
        for name in relative.split('/').filter(|c| !c.is_empty() && *c != ".") {
            dir = dir.subdir(name, mode, false)?;
        }
        Ok(dir)
    }

    /// Creates an empty file `name` to serve as a mountpoint; an existing
    /// regular file is fine.
    pub fn touch(&self, name: &str, mode: u32) -> std::io::Result<()> {
        check_name(name)?;
        let flags = OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        openat(&self.fd, name, flags, Mode::from_bits_truncate(mode)).map(drop).map_err(Into::into)
    }

    /// Creates symlink `name` with `target`, unchanged.
    pub fn symlink(&self, name: &str, target: &Path) -> std::io::Result<()> {
        check_name(name)?;
        symlinkat(target, &self.fd, name).map_err(Into::into)
    }

    /// Writes a new file `name` (which must not exist) with `mode` and
    /// fsyncs it, so a crash never leaves a file that looks complete.
    pub fn write_new_file(&self, name: &str, mode: u32, contents: &[u8]) -> std::io::Result<()> {
        self.write_new_file_with(name, mode, |file| file.write_all(contents))
    }

    /// Creates file `name` (which must not exist), lets `write` fill it
    /// through a buffer, and fsyncs it: a large document is streamed, never
    /// held whole in memory.
    pub fn write_new_file_with(
        &self,
        name: &str,
        mode: u32,
        write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        check_name(name)?;
        let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let file = File::from(openat(&self.fd, name, flags, Mode::from_bits_truncate(mode))?);
        let mut buffered = std::io::BufWriter::with_capacity(64 * 1024, file);
        write(&mut buffered)?;
        buffered.into_inner().map_err(std::io::IntoInnerError::into_error)?.sync_all()
    }

    /// Replaces file `name` atomically: a new temporary file, fsynced, then
    /// renamed over it.
    pub fn replace_file(&self, name: &str, mode: u32, contents: &[u8]) -> std::io::Result<()> {
        let tmp = format!(".{name}.{}.tmp", std::process::id());
        let written = self.write_new_file(&tmp, mode, contents).and_then(|()| self.rename(&tmp, self, name));
        if written.is_err() {
            let _ = self.remove_file(&tmp);
        }
        written
    }

    /// Reads regular file `name`, of at most [`MAX_READ_BYTES`]. A symlink,
    /// a FIFO (which would block the reader forever) or a device is
    /// refused: what is read through a `SafeDir` is nucleus's own JSON,
    /// which a hostile bundle directory may have replaced with anything.
    pub fn read_file(&self, name: &str) -> std::io::Result<Vec<u8>> {
        check_name(name)?;
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = openat(&self.fd, name, flags, Mode::empty())?;
        let stat = nix::sys::stat::fstat(&fd)?;
        if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not a regular file"));
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(File::from(fd), MAX_READ_BYTES + 1), &mut bytes)?;
        if bytes.len() as u64 > MAX_READ_BYTES {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "larger than nucleus ever writes"));
        }
        Ok(bytes)
    }

    /// Renames `from` here to `to` in `dest`, refusing to replace a
    /// directory that holds anything.
    pub fn rename(&self, from: &str, dest: &SafeDir, to: &str) -> std::io::Result<()> {
        check_name(from)?;
        check_name(to)?;
        renameat(&self.fd, from, &dest.fd, to).map_err(Into::into)
    }

    /// The type of child `name`, not following it.
    pub fn kind_of(&self, name: &str) -> std::io::Result<SFlag> {
        check_name(name)?;
        let stat = fstatat(&self.fd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)?;
        Ok(SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT)
    }

    pub fn remove_file(&self, name: &str) -> std::io::Result<()> {
        check_name(name)?;
        unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir).map_err(Into::into)
    }

    /// Removes child `name` and everything below it, through descriptors
    /// all the way down: a symlink is removed, never followed. A missing
    /// child is not an error, at any depth: two removers of one tree (two
    /// `delete`s, or a `delete` and a new run of the name) both succeed.
    /// It never crosses into a mount: a volume or the store still mounted
    /// below (in this mount namespace) makes it fail with EXDEV rather
    /// than empty the host directory behind it.
    pub fn remove_tree(&self, name: &str) -> std::io::Result<()> {
        check_name(name)?;
        let removed = match self.kind_of(name) {
            Err(e) => Err(e),
            Ok(SFlag::S_IFDIR) => self.open_subdir_on_this_mount(name).and_then(|child| {
                for entry in child.entries()? {
                    child.remove_tree(&entry)?;
                }
                unlinkat(&self.fd, name, UnlinkatFlags::RemoveDir).map_err(Into::into)
            }),
            Ok(_) => self.remove_file(name),
        };
        match removed {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            other => other,
        }
    }

    /// The names in this directory, without `.` and `..`.
    pub fn entries(&self) -> std::io::Result<Vec<String>> {
        let mut dir = Dir::openat(&self.fd, ".", dir_flags(), Mode::empty())?;
        let mut names = Vec::new();
        for entry in dir.iter() {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name != "." && name != ".." {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    pub fn sync(&self) -> std::io::Result<()> {
        nix::unistd::fsync(&self.fd).map_err(Into::into)
    }

    pub fn try_clone(&self) -> std::io::Result<SafeDir> {
        Ok(SafeDir { fd: self.fd.try_clone()?, path: self.path.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn creates_writes_and_removes_without_following_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let outside = base.join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), "x").unwrap();
        let dir = SafeDir::create(&base.join("d"), 0o700).unwrap();
        dir.subdirs("a/b/c", 0o755).unwrap().touch("mountpoint", 0o444).unwrap();
        dir.write_new_file("f", 0o600, b"one").unwrap();
        assert!(dir.write_new_file("f", 0o600, b"two").is_err(), "never overwrites");
        dir.replace_file("f", 0o600, b"three").unwrap();
        assert_eq!(dir.read_file("f").unwrap(), b"three");
        symlink(&outside, base.join("d/link")).unwrap();
        assert!(dir.open_subdir("link").is_err(), "a symlink is not opened as a directory");
        assert!(dir.subdir("../escape", 0o700, false).is_err());
        assert_eq!(dir.entries().unwrap(), ["a", "f", "link"]);
        let parent = SafeDir::open(&base).unwrap();
        parent.remove_tree("d").unwrap();
        assert!(!base.join("d").exists());
        assert!(outside.join("keep").exists(), "the symlink's target was left alone");
        assert!(parent.remove_tree("d").is_ok(), "missing is fine");
    }

    #[test]
    fn two_removers_of_one_tree_both_succeed() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        for _ in 0..5 {
            let dir = SafeDir::create(&base.join("t"), 0o700).unwrap();
            for i in 0..20 {
                dir.subdirs(&format!("a{i}/b/c"), 0o700).unwrap().touch("f", 0o600).unwrap();
            }
            let removers: Vec<_> = (0..2)
                .map(|_| {
                    let parent = SafeDir::open(&base).unwrap();
                    std::thread::spawn(move || parent.remove_tree("t"))
                })
                .collect();
            for remover in removers {
                remover.join().unwrap().unwrap();
            }
            assert!(!base.join("t").exists());
        }
    }
}
