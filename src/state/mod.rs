//! Containers on disk: the state root, one directory per container, and its
//! record. The state machine of a container's life is here:
//!
//! ```text
//! reserve ──► creating ──► running ──► stopped (kept: --keep)
//!     │            │            │
//!     └────────────┴────────────┴──► discarded (directory and cgroups gone)
//! ```
//!
//! Reserving writes the record first and renames the directory into place
//! in one step, so a name is never held without a record. Whether a
//! container lives is judged by its supervisor's pid and start time; a dead
//! one is cleared at once by a new run of that name or by `delete`.
//!
//! A name changes hands only under the state root's lock ([`NamesLock`]),
//! and a container is discarded only if its name still leads to the very
//! directory that was judged: a `delete` racing a new run of the same name
//! can never remove the new run's directory.
//!
//! Everything goes through descriptors of a state root that no other user
//! can write (see [`crate::host::trust`]), created 0700.

pub mod cgroups;
pub mod layout;
pub mod record;

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{renameat2, Flock, FlockArg, RenameFlags};

use crate::bundle::SafeDir;
use crate::host::trust::open_trusted_dir;
use crate::policy::parse_name;
use crate::{Error, Result};
use layout::{ContainerLayout, RECORD_FILE};
use record::{ContainerRecord, Status};

/// Prefix of a directory being reserved; followed by the reserving pid.
const RESERVING: &str = ".reserving-";

/// The directory that holds every container's state.
#[derive(Clone, Debug)]
pub struct StateRoot {
    pub dir: PathBuf,
    /// Set once the directories above it were found trustworthy: judged
    /// once, in the caller's own user namespace (inside nucleus's own, with
    /// `--rootless`, root's files show as owned by nobody).
    trusted: std::sync::OnceLock<()>,
}

impl StateRoot {
    /// `explicit` (from `--state-root` or `NUCLEUS_STATE_ROOT`), else
    /// `/run/nucleus` for root and `$XDG_RUNTIME_DIR/nucleus` for others.
    pub fn locate(explicit: Option<&Path>) -> Result<Self> {
        let dir = match explicit {
            Some(dir) => dir.to_path_buf(),
            None if nix::unistd::geteuid().is_root() => PathBuf::from("/run/nucleus"),
            None => std::env::var_os("XDG_RUNTIME_DIR")
                .filter(|v| !v.is_empty())
                .map(|d| PathBuf::from(d).join("nucleus"))
                .ok_or_else(|| Error::invalid("--state-root", "XDG_RUNTIME_DIR is not set; pass --state-root DIR"))?,
        };
        if !dir.is_absolute() {
            return Err(Error::invalid("--state-root", format!("{} is not an absolute path", dir.display())));
        }
        if dir.as_os_str().len() > 1024 {
            return Err(Error::invalid("--state-root", "the path is longer than 1024 bytes"));
        }
        Ok(StateRoot { dir: crate::policy::normalise_lexically(&dir), trusted: std::sync::OnceLock::new() })
    }

    /// Judges the state root (and every directory above it) and opens it,
    /// creating it 0700 when `create` says so. `None` when it does not exist
    /// and may not be created.
    ///
    /// The first call walks from `/` through descriptors, never following a
    /// symlink, and judges each directory on the descriptor it opened (see
    /// [`crate::host::trust`]); the directory opened here must be the one
    /// judged. Later calls (with `--rootless`, inside nucleus's own user
    /// namespace, where root's files show as owned by nobody) rely on that
    /// judgement: no one else can change a trusted path.
    pub fn open(&self, create: bool) -> Result<Option<SafeDir>> {
        let judged = if self.trusted.get().is_none() {
            match open_trusted_dir(&self.dir, create)? {
                Some(fd) => {
                    let _ = self.trusted.set(());
                    Some(fd)
                }
                None => return Ok(None),
            }
        } else {
            None
        };
        if judged.is_none() && !self.dir.exists() {
            if !create {
                return Ok(None);
            }
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)
                .map_err(|e| Error::state(&self.dir, "cannot be created", Some(e)))?;
        }
        let dir = SafeDir::open(&self.dir).map_err(|e| Error::state(&self.dir, "cannot be opened", Some(e)))?;
        if let Some(judged) = judged {
            let identity = |fd: std::os::fd::BorrowedFd<'_>| nix::sys::stat::fstat(fd).map(|s| (s.st_dev, s.st_ino));
            let same = matches!((identity(judged.as_fd()), identity(dir.fd())), (Ok(a), Ok(b)) if a == b);
            if !same {
                return Err(Error::state(&self.dir, "changed while it was opened; try again", None));
            }
        }
        // Other users must not even list container names or closures.
        nix::sys::stat::fchmod(dir.fd(), nix::sys::stat::Mode::from_bits_truncate(0o700))
            .map_err(|e| Error::state(&self.dir, "cannot be made private", Some(e.into())))?;
        Ok(Some(dir))
    }

    /// Where `run` caches closures; a dot name is never a container's.
    pub fn closure_cache_dir(&self) -> PathBuf {
        self.dir.join(crate::nix::cache::CACHE_DIR)
    }

    /// Reserves `record.id`: writes the record into a fresh directory and
    /// renames it into place. A dead container of that name is discarded
    /// first, and one whose supervisor is cleaning up after a killed
    /// `nucleus run` is waited for; a live one refuses, and so does a kept
    /// one unless `replace`.
    pub fn reserve(&self, record: &ContainerRecord, replace: bool) -> Result<Container> {
        let root = self.open(true)?.ok_or_else(|| Error::state(&self.dir, "cannot be created", None))?;
        let name = record.id.as_str();
        let staging = format!("{RESERVING}{}-{name}", std::process::id());
        let text = serde_json::to_vec_pretty(record).map_err(|e| Error::state(&self.dir, e.to_string(), None))?;
        let fail = |e: std::io::Error| Error::state(self.dir.join(name), "cannot be reserved", Some(e));
        let fresh = root.subdir(&staging, 0o700, true).map_err(fail)?;
        fresh.write_new_file(RECORD_FILE, 0o600, &text).map_err(fail)?;
        fresh.sync().map_err(fail)?;
        let outcome = (|| {
            for _ in 0..3 {
                let names = NamesLock::take(&root)?;
                sweep_abandoned_reservations(&root);
                match renameat2(root.fd(), staging.as_str(), root.fd(), name, RenameFlags::RENAME_NOREPLACE) {
                    Ok(()) => {
                        let dir = root.open_subdir(name).map_err(fail)?;
                        return Ok(Container { layout: ContainerLayout::new(&self.dir, name), dir });
                    }
                    Err(Errno::EEXIST | Errno::ENOTEMPTY) => match self.clear_for(&root, name, replace)? {
                        Cleared::Yes => {}
                        Cleared::WindingDown(record) => {
                            // Its supervisor discards it, under the lock.
                            drop(names);
                            if !record.wait_until_ended(WINDING_DOWN_LIMIT) {
                                return Err(Error::container(name, "is still being stopped; try again"));
                            }
                        }
                    },
                    Err(e) => return Err(fail(e.into())),
                }
            }
            Err(Error::container(name, "could not be reserved: another run keeps taking the name"))
        })();
        if outcome.is_err() {
            let _ = root.remove_tree(&staging);
        }
        outcome
    }

    /// Makes way for a new container called `name`, under the names lock
    /// of `root`.
    fn clear_for(&self, root: &SafeDir, name: &str, replace: bool) -> Result<Cleared> {
        let Ok(existing) = self.container(name) else { return Ok(Cleared::Yes) };
        match existing.record() {
            Some(r) if r.winding_down() => Ok(Cleared::WindingDown(Box::new(r))),
            Some(r) if r.current_status() != Status::Stopped => Err(Error::container(
                name,
                format!(
                    "is {}; pick another --name or stop it with `nucleus kill {name}`",
                    status_word(r.current_status())
                ),
            )),
            Some(r) if r.keep && !replace => Err(Error::container(
                name,
                "is a kept container (--keep); remove it with `nucleus delete` or pass --replace",
            )),
            _ => existing.discard_in(root).map(|()| Cleared::Yes),
        }
    }

    /// The container called `name`, which must exist.
    pub fn container(&self, name: &str) -> Result<Container> {
        let name = parse_name(name)?;
        let missing = || Error::container(&name, "does not exist (see `nucleus ps`)");
        let root = self.open(false)?.ok_or_else(missing)?;
        let dir = root.open_subdir(&name).map_err(|_| missing())?;
        Ok(Container { layout: ContainerLayout::new(&self.dir, &name), dir })
    }

    /// Every container, sorted by name.
    pub fn containers(&self) -> Result<Vec<Container>> {
        let Some(root) = self.open(false)? else { return Ok(Vec::new()) };
        let names = root.entries().map_err(|e| Error::state(&self.dir, "cannot be listed", Some(e)))?;
        Ok(names
            .into_iter()
            .filter(|n| parse_name(n).is_ok())
            .filter_map(|n| {
                let dir = root.open_subdir(&n).ok()?;
                Some(Container { layout: ContainerLayout::new(&self.dir, &n), dir })
            })
            .collect())
    }
}

pub fn status_word(status: Status) -> &'static str {
    match status {
        Status::Creating => "being created",
        Status::Running => "running",
        Status::Stopped => "stopped",
    }
}

/// Reservations whose reserving process is gone (killed mid-reserve).
fn sweep_abandoned_reservations(root: &SafeDir) {
    for name in root.entries().unwrap_or_default() {
        let Some(rest) = name.strip_prefix(RESERVING) else { continue };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| !record::process_running(pid)) {
            let _ = root.remove_tree(&name);
        }
    }
}

/// What [`StateRoot::clear_for`] did with the container in the way.
enum Cleared {
    /// Discarded, or gone already.
    Yes,
    /// Its `nucleus run` was killed and its supervisor is cleaning up.
    WindingDown(Box<ContainerRecord>),
}

/// How long a new run of a name, or `delete`, waits for a supervisor that
/// is cleaning up after a killed `nucleus run` (it takes a fraction of a
/// second; its own watchdog gives up after 20 s).
pub const WINDING_DOWN_LIMIT: Duration = Duration::from_secs(25);

/// Whether two open directories are the same one.
fn same_directory(a: &SafeDir, b: &SafeDir) -> bool {
    match (nix::sys::stat::fstat(a.fd()), nix::sys::stat::fstat(b.fd())) {
        (Ok(a), Ok(b)) => (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino),
        _ => false,
    }
}

/// The state root's exclusive lock (flock on its directory), held while a
/// name changes hands: reserving it, which may discard a dead container of
/// that name, and discarding a container. Released when dropped.
struct NamesLock(#[allow(dead_code)] Flock<OwnedFd>);

impl NamesLock {
    fn take(root: &SafeDir) -> Result<NamesLock> {
        let fail = |e: std::io::Error| Error::state(root.path(), "cannot be locked", Some(e));
        let fd = root.fd().try_clone_to_owned().map_err(fail)?;
        Flock::lock(fd, FlockArg::LockExclusive).map(NamesLock).map_err(|(_, e)| fail(e.into()))
    }
}

/// One container's state directory, open.
#[derive(Debug)]
pub struct Container {
    pub layout: ContainerLayout,
    dir: SafeDir,
}

impl Container {
    pub fn name(&self) -> &str {
        &self.layout.name
    }

    pub fn dir(&self) -> &SafeDir {
        &self.dir
    }

    pub fn record(&self) -> Option<ContainerRecord> {
        let bytes = self.dir.read_file(RECORD_FILE).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Replaces the record atomically.
    pub fn write_record(&self, record: &ContainerRecord) -> Result<()> {
        let text =
            serde_json::to_vec_pretty(record).map_err(|e| Error::state(&self.layout.dir, e.to_string(), None))?;
        self.dir
            .replace_file(RECORD_FILE, 0o600, &text)
            .map_err(|e| Error::state(self.layout.dir.join(RECORD_FILE), "cannot be written", Some(e)))
    }

    /// The status as it is now (see [`ContainerRecord::current_status`]).
    pub fn status(&self) -> Status {
        self.record().map_or(Status::Stopped, |r| r.current_status())
    }

    /// Removes everything of this container from the host: its cgroups and
    /// its directory. Only for a container whose supervisor is gone. If
    /// its name now leads elsewhere (it was discarded and the name taken
    /// again since this container was opened), there is nothing to do.
    pub fn discard(&self) -> Result<()> {
        let root = SafeDir::open(self.layout.dir.parent().unwrap_or(Path::new("/")))
            .map_err(|e| Error::state(&self.layout.dir, "cannot be removed", Some(e)))?;
        let _names = NamesLock::take(&root)?;
        self.discard_in(&root)
    }

    /// [`Container::discard`] under the names lock of `root`, its parent.
    fn discard_in(&self, root: &SafeDir) -> Result<()> {
        let named = match root.open_subdir(&self.layout.name) {
            Ok(named) => named,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            Err(e) => return Err(Error::state(&self.layout.dir, "cannot be removed", Some(e))),
        };
        if !same_directory(&named, &self.dir) {
            return Ok(());
        }
        if let Some(path) = self.record().and_then(|r| r.cgroups_path) {
            cgroups::release(&path);
        }
        root.remove_tree(&self.layout.name).map_err(|e| match e.raw_os_error() {
            // remove_tree never empties a mounted host directory.
            Some(libc::EXDEV) => {
                Error::state(&self.layout.dir, "cannot be removed: something is still mounted in it", None)
            }
            _ => Error::state(&self.layout.dir, "cannot be removed", Some(e)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use record::{now_seconds, process_start_time};

    fn record(name: &str, pid: u32, keep: bool) -> ContainerRecord {
        ContainerRecord {
            id: name.into(),
            status: Status::Running,
            supervisor_pid: pid,
            supervisor_start: process_start_time(pid).unwrap_or(1),
            sandbox_pid: None,
            bundle: "/b".into(),
            created: now_seconds(),
            digest: "sha256:x".into(),
            installable: None,
            command: vec!["/bin/true".into()],
            cgroups_path: None,
            keep,
            exit_status: None,
            supervisor: None,
        }
    }

    /// A state root in a temporary directory, taken as trusted: the
    /// directories above it are the test machine's (in a Nix build sandbox
    /// `/` belongs to nobody), and the trust rule has tests of its own.
    fn private_root() -> (tempfile::TempDir, StateRoot) {
        let tmp = tempfile::tempdir().unwrap();
        let root = StateRoot::locate(Some(&tmp.path().canonicalize().unwrap().join("state"))).unwrap();
        root.trusted.set(()).unwrap();
        (tmp, root)
    }

    #[test]
    fn reserve_refuses_a_live_name_and_clears_a_dead_one() {
        let (_tmp, root) = private_root();
        let me = std::process::id();
        let c = root.reserve(&record("web", me, false), false).unwrap();
        assert_eq!(c.status(), Status::Running, "the record is there from the first moment");
        assert!(matches!(root.reserve(&record("web", me, false), false), Err(Error::Container { .. })));
        let mut dead = record("web", me, false);
        dead.supervisor_start += 1;
        c.write_record(&dead).unwrap();
        let again = root.reserve(&record("web", me, false), false).unwrap();
        assert_eq!(again.record().unwrap().supervisor_start, process_start_time(me).unwrap());
        assert_eq!(root.containers().unwrap().len(), 1);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&root.dir).unwrap().permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn a_kept_container_is_kept_unless_replaced() {
        let (_tmp, root) = private_root();
        let c = root.reserve(&record("kept", std::process::id(), true), false).unwrap();
        let mut stopped = c.record().unwrap();
        stopped.status = Status::Stopped;
        stopped.exit_status = Some(0);
        c.write_record(&stopped).unwrap();
        assert!(matches!(
            root.reserve(&record("kept", std::process::id(), false), false),
            Err(Error::Container { .. })
        ));
        assert!(root.reserve(&record("kept", std::process::id(), false), true).is_ok());
    }

    #[test]
    fn abandoned_reservations_are_swept() {
        let (_tmp, root) = private_root();
        let dir = root.open(true).unwrap().unwrap();
        dir.subdir(".reserving-999999999-x", 0o700, true).unwrap();
        dir.subdir(".reserving-1-y", 0o700, true).unwrap();
        root.reserve(&record("z", std::process::id(), false), false).unwrap();
        let left = dir.entries().unwrap();
        assert!(!left.contains(&".reserving-999999999-x".to_string()));
        assert!(left.contains(&".reserving-1-y".to_string()), "pid 1 lives");
    }
}
