//! The host paths a run shows to its workload, opened once and checked on
//! the open descriptor: volume and context sources (kept open, and later
//! mounted from the descriptor) and secrets (read once, through the
//! descriptor, with a bound).

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::{fstat, SFlag};
use nix::sys::statfs::{self, fstatfs};

use super::open::{fd_path, first_symlink, open_no_symlinks};
use crate::policy::{forbidden_prefix, FORBIDDEN_SECRET_SOURCES, FORBIDDEN_SOURCES};
use crate::request::RunRequest;
use crate::{Error, Result};

/// Secrets are staged in memory; this is the most one may hold.
pub const MAX_SECRET_BYTES: u64 = 16 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    Directory,
    File,
}

/// A host path opened without following symlinks (an `O_PATH` descriptor).
#[derive(Debug)]
pub struct OpenedSource {
    /// Where it was when it was opened; for messages and for `bundle`,
    /// which can only name sources by path.
    pub path: PathBuf,
    pub fd: OwnedFd,
    pub kind: SourceKind,
}

/// Everything of the host a run shows, in the request's order.
#[derive(Debug, Default)]
pub struct HostSources {
    pub volumes: Vec<OpenedSource>,
    pub context: Option<OpenedSource>,
    pub secrets: Vec<Vec<u8>>,
}

impl HostSources {
    /// Opens and checks every volume, the context and every secret.
    pub fn open(req: &RunRequest) -> Result<HostSources> {
        let volumes = req.volumes.iter().map(|v| open_source("--volume", &v.source)).collect::<Result<_>>()?;
        let context = match &req.context {
            Some(dir) => {
                let opened = open_source("--context", dir)?;
                if opened.kind != SourceKind::Directory {
                    return Err(refuse("--context", dir, "is not a directory"));
                }
                Some(opened)
            }
            None => None,
        };
        let secrets = req.secrets.iter().map(|s| read_secret(&s.source)).collect::<Result<_>>()?;
        Ok(HostSources { volumes, context, secrets })
    }
}

fn refuse(option: &str, path: &Path, reason: impl Into<String>) -> Error {
    Error::HostPath { option: option.to_string(), path: path.to_path_buf(), reason: reason.into(), source: None }
}

fn open_error(option: &str, path: &Path, e: std::io::Error) -> Error {
    let reason = match e.raw_os_error() {
        Some(libc::ELOOP) => match first_symlink(path) {
            Some(link) => format!(
                "passes through the symlink {}; nucleus follows no symlink in a host path, so give the real path",
                link.display()
            ),
            None => "changed while it was opened (a symlink appeared); try again".to_string(),
        },
        Some(libc::ENOENT) => "does not exist".to_string(),
        _ => {
            return Error::HostPath {
                option: option.into(),
                path: path.into(),
                reason: "cannot be opened".into(),
                source: Some(e),
            }
        }
    };
    refuse(option, path, reason)
}

/// fstat(2) of an opened host path.
fn examine(option: &str, path: &Path, fd: &OwnedFd) -> Result<nix::sys::stat::FileStat> {
    fstat(fd).map_err(|e| Error::HostPath {
        option: option.into(),
        path: path.into(),
        reason: "cannot be examined".into(),
        source: Some(e.into()),
    })
}

/// Opens a volume or context source and checks it on the descriptor.
fn open_source(option: &str, path: &Path) -> Result<OpenedSource> {
    let fd = open_no_symlinks(path, OFlag::O_PATH).map_err(|e| open_error(option, path, e))?;
    let stat = examine(option, path, &fd)?;
    let kind = match SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT {
        SFlag::S_IFDIR => SourceKind::Directory,
        SFlag::S_IFREG => SourceKind::File,
        other => {
            return Err(refuse(
                option,
                path,
                format!("is {}; only directories and regular files can be shown", type_name(other)),
            ))
        }
    };
    check_place(option, path, &fd, FORBIDDEN_SOURCES)?;
    Ok(OpenedSource { path: path.to_path_buf(), fd, kind })
}

/// Judges where the open file is, as the kernel sees it now, and what kind
/// of filesystem holds it: a bind mount of /proc elsewhere is still /proc.
fn check_place(option: &str, path: &Path, fd: &OwnedFd, forbidden: &[&str]) -> Result<()> {
    let actual = fd_path(fd).map_err(|e| Error::HostPath {
        option: option.into(),
        path: path.into(),
        reason: "cannot be located".into(),
        source: Some(e),
    })?;
    if let Some(prefix) = forbidden_prefix(&actual, forbidden) {
        return Err(refuse(option, path, format!("is under {prefix} ({}), which is never shared", actual.display())));
    }
    if actual == Path::new("/") {
        return Err(refuse(option, path, "is the host's root directory, which is never shared"));
    }
    let kernel_views = [
        (statfs::PROC_SUPER_MAGIC, "procfs"),
        (statfs::SYSFS_MAGIC, "sysfs"),
        (statfs::DEVPTS_SUPER_MAGIC, "devpts"),
        (statfs::CGROUP_SUPER_MAGIC, "cgroupfs"),
        (statfs::CGROUP2_SUPER_MAGIC, "cgroup2"),
        (statfs::DEBUGFS_MAGIC, "debugfs"),
        (statfs::SECURITYFS_MAGIC, "securityfs"),
        (statfs::TRACEFS_MAGIC, "tracefs"),
        (statfs::BPF_FS_MAGIC, "bpffs"),
    ];
    if let Ok(fs) = fstatfs(fd) {
        if let Some((_, name)) = kernel_views.iter().find(|(magic, _)| *magic == fs.filesystem_type()) {
            return Err(refuse(option, path, format!("is on {name}, one of the kernel's own views, never shared")));
        }
    }
    Ok(())
}

fn type_name(kind: SFlag) -> &'static str {
    match kind {
        SFlag::S_IFIFO => "a named pipe",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFCHR | SFlag::S_IFBLK => "a device",
        SFlag::S_IFLNK => "a symlink",
        _ => "of an unknown type",
    }
}

/// Reads a secret through a descriptor opened without symlinks, refusing
/// anything but a regular file of at most [`MAX_SECRET_BYTES`]: the bound
/// holds while reading, so a growing or huge file never fills memory.
fn read_secret(path: &Path) -> Result<Vec<u8>> {
    let option = "--secret";
    let fd = open_no_symlinks(path, OFlag::O_RDONLY | OFlag::O_NONBLOCK).map_err(|e| open_error(option, path, e))?;
    let stat = examine(option, path, &fd)?;
    let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
    if kind != SFlag::S_IFREG {
        let what = if kind == SFlag::S_IFDIR { "a directory" } else { type_name(kind) };
        return Err(refuse(option, path, format!("is {what}, not a regular file")));
    }
    check_place(option, path, &fd, FORBIDDEN_SECRET_SOURCES)?;
    let too_big =
        || refuse(option, path, format!("is larger than {} MiB, the most a secret may hold", MAX_SECRET_BYTES >> 20));
    if stat.st_size as u64 > MAX_SECRET_BYTES {
        return Err(too_big());
    }
    let mut contents = Vec::new();
    std::fs::File::from(fd).take(MAX_SECRET_BYTES + 1).read_to_end(&mut contents).map_err(|e| Error::HostPath {
        option: option.into(),
        path: path.into(),
        reason: "cannot be read".into(),
        source: Some(e),
    })?;
    if contents.len() as u64 > MAX_SECRET_BYTES {
        return Err(too_big());
    }
    Ok(contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Secret, Volume};
    use std::os::unix::fs::symlink;

    fn request_with(volume: &Path, secret: Option<&Path>) -> RunRequest {
        let mut req = RunRequest::new(None, Some(vec!["/bin/true".into()]));
        req.volumes.push(Volume { source: volume.into(), destination: "/data".into(), writable: false });
        if let Some(secret) = secret {
            req.secrets.push(Secret { source: secret.into(), destination: "/run/secrets/s".into() });
        }
        req
    }

    #[test]
    fn opens_real_sources_and_refuses_symlinks_fifos_and_big_secrets() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let dir = base.join("dir");
        std::fs::create_dir(&dir).unwrap();
        let secret = base.join("secret");
        std::fs::write(&secret, "s3cret").unwrap();
        let opened = HostSources::open(&request_with(&dir, Some(&secret))).unwrap();
        assert_eq!(opened.volumes[0].kind, SourceKind::Directory);
        assert_eq!(opened.secrets[0], b"s3cret");

        symlink(&dir, base.join("link")).unwrap();
        let err = HostSources::open(&request_with(&base.join("link"), None)).unwrap_err();
        assert!(matches!(err, Error::HostPath { .. }), "{err}");
        assert!(err.to_string().contains("symlink"), "{err}");

        nix::unistd::mkfifo(&base.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = HostSources::open(&request_with(&base.join("fifo"), None)).unwrap_err();
        assert!(err.to_string().contains("named pipe"), "{err}");
        assert!(HostSources::open(&request_with(&dir, Some(&base.join("fifo")))).is_err());
        assert!(HostSources::open(&request_with(&dir, Some(&dir))).is_err());
        assert!(HostSources::open(&request_with(&base.join("missing"), None)).is_err());

        let big = base.join("big");
        std::fs::File::create(&big).unwrap().set_len(MAX_SECRET_BYTES + 1).unwrap();
        let err = HostSources::open(&request_with(&dir, Some(&big))).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
    }

    #[test]
    fn the_kernel_views_are_refused_wherever_they_are_mounted() {
        assert!(HostSources::open(&request_with(Path::new("/proc/self"), None)).is_err());
        let err = open_source("--volume", Path::new("/proc")).unwrap_err();
        assert!(err.to_string().contains("/proc"), "{err}");
    }
}
