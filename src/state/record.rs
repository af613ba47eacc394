//! The container record (`record.json`): what a container is, who
//! supervises it, and how it ended. It is written first, atomically, when
//! the name is reserved, so there is never a container without one.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The name is reserved and the sandbox is being prepared.
    Creating,
    /// The workload has started.
    Running,
    /// The workload has ended, or its supervisor is gone.
    Stopped,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecord {
    pub id: String,
    pub status: Status,
    /// The `nucleus run` process; the container lives as long as it does,
    /// or as long as `supervisor` does.
    pub supervisor_pid: u32,
    /// Its start time in clock ticks since boot, so that a reused pid is
    /// never mistaken for it.
    pub supervisor_start: u64,
    /// The supervisor itself (`nucleus run`'s child, pid 1 of the
    /// container's pid namespace), once it runs: it outlives a killed
    /// `nucleus run` while it ends the workload and cleans up, and until
    /// then the container is not dead, so no one else clears it meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor: Option<ProcessRef>,
    /// The sandbox's pid inside the container's own pid namespace.
    pub sandbox_pid: Option<u32>,
    pub bundle: PathBuf,
    pub created: u64,
    pub digest: String,
    pub installable: Option<String>,
    pub command: Vec<String>,
    /// runsc's cgroups, released whenever the container is discarded.
    pub cgroups_path: Option<String>,
    pub keep: bool,
    pub exit_status: Option<i32>,
}

/// A process, by pid and start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRef {
    pub pid: u32,
    pub start: u64,
}

impl ProcessRef {
    /// Process `pid` as it is now, if it exists.
    pub fn of(pid: u32) -> Option<ProcessRef> {
        process_start_time(pid).map(|start| ProcessRef { pid, start })
    }

    pub fn alive(&self) -> bool {
        process_alive(self.pid, self.start)
    }
}

impl ContainerRecord {
    /// The status as it is now, not as last written: a record that says
    /// creating or running but whose `nucleus run` is gone is stopped (its
    /// supervisor may still be ending the workload and cleaning up: see
    /// [`ContainerRecord::winding_down`] before discarding it).
    pub fn current_status(&self) -> Status {
        match self.status {
            Status::Stopped => Status::Stopped,
            live if process_alive(self.supervisor_pid, self.supervisor_start) => live,
            _ => Status::Stopped,
        }
    }

    /// Whether `nucleus run` or its supervisor still runs.
    pub fn keepers_alive(&self) -> bool {
        process_alive(self.supervisor_pid, self.supervisor_start) || self.supervisor.is_some_and(|s| s.alive())
    }

    /// Whether `nucleus run` is gone but its supervisor still ends the
    /// workload and cleans up: the container is about to vanish.
    pub fn winding_down(&self) -> bool {
        self.status != Status::Stopped
            && !process_alive(self.supervisor_pid, self.supervisor_start)
            && self.supervisor.is_some_and(|s| s.alive())
    }

    /// Waits until neither `nucleus run` nor its supervisor runs; false if
    /// one still does after `limit`.
    pub fn wait_until_ended(&self, limit: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while self.keepers_alive() {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        true
    }

    /// Whether the supervisor died without recording how the workload ended.
    pub fn died(&self) -> bool {
        self.status != Status::Stopped && self.current_status() == Status::Stopped
    }
}

pub fn now_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The state letter (field 3) and start time (field 22) of
/// /proc/PID/stat.
fn process_stat(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; fields resume after
    // the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((state, fields.nth(18)?.parse().ok()?))
}

/// The start time of process `pid`, in clock ticks since boot.
pub fn process_start_time(pid: u32) -> Option<u64> {
    process_stat(pid).map(|(_, start)| start)
}

/// Whether `pid` is a process that has not exited. A zombie has: it holds
/// nothing any more, and its parent may take its time to reap it.
pub fn process_running(pid: u32) -> bool {
    process_stat(pid).is_some_and(|(state, _)| !matches!(state, 'Z' | 'X' | 'x'))
}

/// Whether the process that started at `start` as `pid` still runs.
pub fn process_alive(pid: u32, start: u64) -> bool {
    process_stat(pid).is_some_and(|(state, started)| started == start && !matches!(state, 'Z' | 'X' | 'x'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_whose_supervisor_is_gone_is_stopped() {
        let me = std::process::id();
        let mut record = ContainerRecord {
            id: "web".into(),
            status: Status::Running,
            supervisor_pid: me,
            supervisor_start: process_start_time(me).unwrap(),
            sandbox_pid: None,
            bundle: "/s/web/bundle".into(),
            created: now_seconds(),
            digest: "sha256:x".into(),
            installable: None,
            command: vec!["/bin/true".into()],
            cgroups_path: None,
            keep: false,
            exit_status: None,
            supervisor: None,
        };
        assert_eq!(record.current_status(), Status::Running);
        assert!(!record.died());
        record.supervisor_start += 1; // as if the pid had been reused
        assert_eq!(record.current_status(), Status::Stopped);
        assert!(record.died());
        // The supervisor outlives a killed `nucleus run` while it cleans up:
        // stopped to see, but not to be discarded yet.
        record.supervisor = ProcessRef::of(me);
        assert_eq!(record.current_status(), Status::Stopped);
        assert!(record.winding_down() && record.keepers_alive());
        let old: ContainerRecord = serde_json::from_str(
            r#"{"id":"w","status":"running","supervisorPid":1,"supervisorStart":0,"sandboxPid":null,
                "bundle":"/b","created":0,"digest":"d","installable":null,"command":[],"cgroupsPath":null,
                "keep":false,"exitStatus":null}"#,
        )
        .unwrap();
        assert_eq!(old.supervisor, None, "records written before the field still read");
    }

    #[test]
    fn a_zombie_is_not_alive() {
        // This test program itself, running no test: there is no `true` in
        // a Nix build sandbox.
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "no-such-test"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let start = process_start_time(pid).unwrap();
        // Exited, not yet reaped.
        while process_running(pid) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(process_start_time(pid), Some(start), "still listed");
        assert!(!process_alive(pid, start));
        child.wait().unwrap();
        assert!(process_alive(std::process::id(), process_start_time(std::process::id()).unwrap()));
    }
}
