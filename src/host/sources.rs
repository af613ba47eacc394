//! The host paths a run shows to its workload, opened once and checked on
//! the open descriptor: volume and context sources (kept open, and later
//! mounted from the descriptor) and secrets (read once, through the
//! descriptor, with a bound).

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
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
        let sources = HostSources { volumes, context, secrets };
        sources.check_workdir(req)?;
        Ok(sources)
    }

    /// Refuses a volume or context that is nucleus's state root, lies inside
    /// it or holds it: a workload (root inside, and owner of what root owns
    /// on the host) could otherwise read other containers' bundles and
    /// write records, runsc state or the closure cache. Judged on where
    /// the kernel says each open source is.
    pub fn check_apart_from_state(&self, state_root: &Path) -> Result<()> {
        let state_root = crate::policy::normalise_lexically(state_root);
        let named = self.volumes.iter().map(|o| ("--volume", o)).chain(self.context.iter().map(|o| ("--context", o)));
        for (option, opened) in named {
            let Ok(actual) = fd_path(&opened.fd) else { continue };
            if actual.starts_with(&state_root) || state_root.starts_with(&actual) {
                return Err(refuse(
                    option,
                    &opened.path,
                    format!(
                        "overlaps nucleus's state root {}, which no workload may see; choose a state root outside \
                         it",
                        state_root.display()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A working directory inside a volume or the context must already be
    /// there. runsc creates a missing one before the workload starts, as
    /// root and whatever `--user` says: in a host directory that is a write
    /// nucleus never makes (and in a read-only one, a failure only runsc's
    /// log explains). Judged through the source's descriptor, beneath it,
    /// following no symlink, as the sandbox will find it.
    fn check_workdir(&self, req: &RunRequest) -> Result<()> {
        let workdir = Path::new(&req.workdir);
        let mounts = req.volumes.iter().zip(&self.volumes).map(|(v, o)| (v.destination.as_str(), o, "--volume"));
        let context = self.context.as_ref().map(|o| (crate::policy::CONTEXT_DIR, o, "--context"));
        let Some((destination, opened, option)) = mounts
            .chain(context)
            .filter(|(destination, _, _)| workdir.starts_with(destination))
            .max_by_key(|(destination, _, _)| destination.len())
        else {
            return Ok(());
        };
        let rest = workdir.strip_prefix(destination).unwrap_or(workdir);
        let refuse = |why: String| {
            Error::invalid(
                "--workdir",
                format!(
                    "{} lies in {option} {}:{destination}, {why}; nucleus creates nothing in a host directory",
                    req.workdir,
                    opened.path.display()
                ),
            )
        };
        if opened.kind == SourceKind::File {
            return Err(refuse("which is a file".into()));
        }
        if rest.as_os_str().is_empty() {
            return Ok(());
        }
        let how = OpenHow::new().flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC).resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
        let host = opened.path.join(rest);
        match openat2(&opened.fd, rest, how) {
            Ok(_) => Ok(()),
            Err(Errno::ENOENT) => Err(refuse(format!("but {} does not exist: create it first", host.display()))),
            Err(Errno::ENOTDIR) => Err(refuse(format!("but {} is not a directory", host.display()))),
            Err(Errno::ELOOP | Errno::EXDEV) => {
                Err(refuse(format!("but {} passes through a symlink or another mount", host.display())))
            }
            Err(e) => Err(refuse(format!("but {} cannot be opened ({e})", host.display()))),
        }
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
        assert!(matches!(&err, Error::HostPath { path, .. } if *path == base.join("link")), "{err}");

        nix::unistd::mkfifo(&base.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = HostSources::open(&request_with(&base.join("fifo"), None)).unwrap_err();
        assert!(matches!(&err, Error::HostPath { path, .. } if *path == base.join("fifo")), "{err}");
        assert!(HostSources::open(&request_with(&dir, Some(&base.join("fifo")))).is_err());
        assert!(HostSources::open(&request_with(&dir, Some(&dir))).is_err());
        assert!(HostSources::open(&request_with(&base.join("missing"), None)).is_err());

        let big = base.join("big");
        std::fs::File::create(&big).unwrap().set_len(MAX_SECRET_BYTES + 1).unwrap();
        let err = HostSources::open(&request_with(&dir, Some(&big))).unwrap_err();
        assert!(matches!(&err, Error::HostPath { path, .. } if *path == big), "{err}");
    }

    #[test]
    fn a_workdir_in_a_host_directory_must_already_be_there() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let dir = base.join("dir");
        std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
        std::fs::write(dir.join("file"), "x").unwrap();
        symlink("sub", dir.join("link")).unwrap();
        let with_workdir = |workdir: &str| {
            let mut req = request_with(&dir, None);
            req.workdir = workdir.into();
            HostSources::open(&req)
        };
        for good in ["/data", "/data/sub", "/data/sub/deeper", "/", "/elsewhere/x", "/database"] {
            assert!(with_workdir(good).is_ok(), "{good}");
        }
        for bad in ["/data/missing", "/data/sub/missing/x", "/data/file", "/data/link", "/data/link/deeper"] {
            let err = with_workdir(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument { .. }), "{bad}: {err}");
        }
        assert!(!dir.join("missing").exists());
    }

    #[test]
    fn a_source_may_not_overlap_the_state_root() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(base.join("srv/state/web")).unwrap();
        std::fs::create_dir_all(base.join("srv/data")).unwrap();
        let state = base.join("srv/state");
        for overlapping in ["srv", "srv/state", "srv/state/web"] {
            let opened = HostSources::open(&request_with(&base.join(overlapping), None)).unwrap();
            assert!(opened.check_apart_from_state(&state).is_err(), "{overlapping}");
        }
        let apart = HostSources::open(&request_with(&base.join("srv/data"), None)).unwrap();
        assert!(apart.check_apart_from_state(&state).is_ok());
        assert!(apart.check_apart_from_state(&base.join("srv/dat")).is_ok(), "components, not characters");
    }

    #[test]
    fn the_kernel_views_are_refused_wherever_they_are_mounted() {
        assert!(HostSources::open(&request_with(Path::new("/proc/self"), None)).is_err());
        let err = open_source("--volume", Path::new("/proc")).unwrap_err();
        assert!(matches!(&err, Error::HostPath { path, .. } if path == Path::new("/proc")), "{err}");
    }
}
