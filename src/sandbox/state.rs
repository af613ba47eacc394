//! Containers on disk: one directory per container under the state root,
//! holding its record, bundle, runsc state and logs.
//!
//! ```text
//! STATE_ROOT/NAME/record.json   id, status, supervisor pid, bundle, digest, command
//! STATE_ROOT/NAME/bundle/       the OCI bundle
//! STATE_ROOT/NAME/runsc/        runsc --root
//! STATE_ROOT/NAME/runsc.log     runsc's own messages
//! STATE_ROOT/NAME/debug/        runsc's per-process debug logs
//! ```
//!
//! Creating the directory reserves the name; a directory whose supervisor
//! is gone is stale and is cleared instead of blocking the name.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::bundle::SafeDir;
use crate::{Error, Result};

const RECORD: &str = "record.json";

/// The directory that holds every container's state.
#[derive(Clone, Debug)]
pub struct StateRoot {
    pub dir: PathBuf,
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
                .ok_or_else(|| Error::invalid("state root", "XDG_RUNTIME_DIR is not set; pass --state-root DIR"))?,
        };
        if !dir.is_absolute() {
            return Err(Error::invalid("--state-root", format!("{} is not an absolute path", dir.display())));
        }
        Ok(StateRoot { dir })
    }

    /// Where `run` caches closures (see [`crate::nix::cache`]); a dot name
    /// can never be a container's.
    pub fn closure_cache_dir(&self) -> PathBuf {
        self.dir.join(".cache").join("closures")
    }

    /// Opens the state root, creating it 0700 on first use.
    fn open(&self) -> Result<SafeDir> {
        match SafeDir::open(&self.dir) {
            Ok(dir) => Ok(dir),
            Err(_) if !self.dir.exists() => {
                std::fs::create_dir_all(&self.dir).map_err(|e| Error::io("cannot create state root", &self.dir, e))?;
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700));
                SafeDir::open(&self.dir)
            }
            Err(e) => Err(e),
        }
    }

    /// Where container `name` lives, whether or not it exists.
    pub fn container_dir(&self, name: &str) -> ContainerDir {
        ContainerDir { name: name.to_string(), dir: self.dir.join(name) }
    }

    /// Reserves `name`, clearing a stale container of that name first.
    pub fn reserve(&self, name: &str) -> Result<ContainerDir> {
        let root = self.open()?;
        for _ in 0..2 {
            match root.subdir(name, 0o700, true) {
                Ok(_) => return Ok(self.container_dir(name)),
                Err(_) if self.dir.join(name).exists() => {
                    let existing = self.container(name)?;
                    if existing.status() != Status::Stopped {
                        return Err(Error::Container(format!(
                            "a container named '{name}' is running; pick another --name or stop it with `nucleus kill {name}`"
                        )));
                    }
                    tracing::info!(name, "clearing a stopped container's leftovers");
                    existing.remove()?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Container(format!("could not reserve the name '{name}'")))
    }

    pub fn container(&self, name: &str) -> Result<ContainerDir> {
        let name = crate::policy::parse_name(name)?;
        let dir = self.dir.join(&name);
        if !dir.is_dir() {
            return Err(Error::Container(format!("no container named '{name}' (see `nucleus ps`)")));
        }
        Ok(ContainerDir { name, dir })
    }

    /// Every container with a directory under the root, sorted by name.
    pub fn containers(&self) -> Result<Vec<ContainerDir>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("cannot list", &self.dir, e)),
        };
        let mut containers: Vec<ContainerDir> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| crate::policy::parse_name(n).is_ok())
            .map(|name| ContainerDir { dir: self.dir.join(&name), name })
            .collect();
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(containers)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Stopped,
}

/// What `record.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub status: Status,
    /// The `nucleus run` process that supervises the sandbox.
    pub pid: u32,
    /// Its start time in clock ticks since boot, so a reused pid is not
    /// mistaken for it.
    pub pid_start: u64,
    /// runsc's pid once started.
    pub runsc_pid: Option<u32>,
    pub bundle: PathBuf,
    pub created: u64,
    pub digest: String,
    pub command: Vec<String>,
    pub exit_status: Option<i32>,
}

/// One container's state directory.
#[derive(Clone, Debug)]
pub struct ContainerDir {
    pub name: String,
    pub dir: PathBuf,
}

impl ContainerDir {
    pub fn bundle_dir(&self) -> PathBuf {
        self.dir.join("bundle")
    }

    pub fn runsc_root(&self) -> PathBuf {
        self.dir.join("runsc")
    }

    pub fn runsc_log(&self) -> PathBuf {
        self.dir.join("runsc.log")
    }

    pub fn debug_log_dir(&self) -> PathBuf {
        self.dir.join("debug")
    }

    pub fn record(&self) -> Option<Record> {
        let text = std::fs::read(self.dir.join(RECORD)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Replaces the record atomically (write a temporary file, rename).
    pub fn write_record(&self, record: &Record) -> Result<()> {
        let tmp = self.dir.join(format!(".{RECORD}.tmp"));
        let text = serde_json::to_vec_pretty(record).map_err(|e| Error::Container(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(|e| Error::io("cannot write", &tmp, e))?;
        std::fs::rename(&tmp, self.dir.join(RECORD)).map_err(|e| Error::io("cannot write", self.dir.join(RECORD), e))
    }

    /// The status as it is now, not as last recorded: a record that says
    /// running but whose supervisor is gone is stopped.
    pub fn status(&self) -> Status {
        match self.record() {
            Some(r) if r.status != Status::Stopped && process_alive(r.pid, r.pid_start) => r.status,
            Some(_) => Status::Stopped,
            // A directory without a record is being set up right now, or
            // was abandoned during setup: only its age tells them apart.
            None if self.age_seconds() < 60 => Status::Created,
            None => Status::Stopped,
        }
    }

    fn age_seconds(&self) -> u64 {
        self.dir
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .map_or(u64::MAX, |d| d.as_secs())
    }

    /// Removes everything of this container from the host.
    pub fn remove(&self) -> Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("cannot remove", &self.dir, e)),
        }
    }
}

pub fn now_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The start time (field 22 of /proc/PID/stat) of a live process.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; fields resume after
    // the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

pub fn process_alive(pid: u32, start: u64) -> bool {
    process_start_time(pid) == Some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_refuses_a_live_name_and_clears_a_stale_one() {
        let tmp = tempfile::tempdir().unwrap();
        let root = StateRoot { dir: tmp.path().join("state") };
        let c = root.reserve("web").unwrap();
        let me = std::process::id();
        let mut record = Record {
            id: "web".into(),
            status: Status::Running,
            pid: me,
            pid_start: process_start_time(me).unwrap(),
            runsc_pid: None,
            bundle: c.bundle_dir(),
            created: now_seconds(),
            digest: "sha256:x".into(),
            command: vec!["/bin/true".into()],
            exit_status: None,
        };
        c.write_record(&record).unwrap();
        assert_eq!(c.status(), Status::Running);
        assert!(root.reserve("web").is_err());
        record.pid_start += 1; // as if the pid had been reused
        c.write_record(&record).unwrap();
        assert_eq!(c.status(), Status::Stopped);
        let again = root.reserve("web").unwrap();
        assert!(again.record().is_none());
        assert_eq!(root.containers().unwrap().len(), 1);
    }
}
