//! `ps`, `state`, `kill` and `delete`: acting on containers that another
//! `nucleus run` supervises.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde::Serialize;

use super::runsc::{Globals, Runsc};
use super::state::{ContainerDir, StateRoot, Status};
use crate::{Error, Result};

/// One line of `nucleus ps`.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub name: String,
    pub status: Status,
    pub pid: Option<u32>,
    pub created: Option<u64>,
    pub digest: Option<String>,
    pub command: Vec<String>,
}

pub fn list(state: &StateRoot, all: bool) -> Result<Vec<Summary>> {
    let mut out = Vec::new();
    for container in state.containers()? {
        let status = container.status();
        if !all && status == Status::Stopped {
            continue;
        }
        let record = container.record();
        out.push(Summary {
            name: container.name.clone(),
            status,
            pid: record.as_ref().map(|r| r.pid),
            created: record.as_ref().map(|r| r.created),
            digest: record.as_ref().map(|r| r.digest.clone()),
            command: record.map(|r| r.command).unwrap_or_default(),
        });
    }
    Ok(out)
}

pub fn format_table(rows: &[Summary]) -> String {
    let mut text = format!("{:<32} {:<8} {:>8}  {}\n", "NAME", "STATUS", "PID", "COMMAND");
    for row in rows {
        let status =
            serde_json::to_value(row.status).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        let pid = row.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
        text.push_str(&format!("{:<32} {:<8} {:>8}  {}\n", row.name, status, pid, row.command.join(" ")));
    }
    text
}

/// The OCI runtime spec's state document.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    /// The sandbox's pid on the host while it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    pub bundle: String,
}

pub fn oci_state(runsc: Option<&Runsc>, container: &ContainerDir) -> OciState {
    let status = container.status();
    let runsc_pid = container.record().and_then(|r| r.runsc_pid);
    let sandbox_pid = match (status, runsc) {
        (Status::Running, Some(runsc)) => runsc
            .query(&globals(container), &["state", &container.name])
            .ok()
            .and_then(|json| serde_json::from_str::<serde_json::Value>(&json).ok())
            .and_then(|v| v.get("pid").and_then(|p| p.as_u64()))
            .map(|p| p as u32),
        _ => None,
    };
    OciState {
        oci_version: crate::oci::spec::OCI_VERSION.to_string(),
        id: container.name.clone(),
        status,
        pid: if status == Status::Stopped { None } else { sandbox_pid.or(runsc_pid) },
        bundle: container.bundle_dir().display().to_string(),
    }
}

/// `TERM`, `SIGTERM` or `15`.
pub fn parse_signal(text: &str) -> Result<Signal> {
    let bad = || Error::invalid("signal", format!("'{text}' is not a signal name or number (e.g. TERM, KILL, 9)"));
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = text.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    full.parse::<Signal>().map_err(|_| bad())
}

pub fn kill(runsc: &Runsc, container: &ContainerDir, signal: Signal) -> Result<()> {
    if container.status() == Status::Stopped {
        return Err(Error::Container(format!("container '{}' is not running", container.name)));
    }
    let running = || container.status() != Status::Stopped;
    runsc.kill(&globals(container), &container.name, signal, Duration::from_secs(3), running)
}

/// Removes a stopped container's traces; with `force`, stops it first.
pub fn delete(runsc: &Runsc, container: &ContainerDir, force: bool) -> Result<()> {
    if container.status() != Status::Stopped {
        if !force {
            return Err(Error::Container(format!(
                "container '{}' is running; stop it with `nucleus kill {0}` or use `nucleus delete --force {0}`",
                container.name
            )));
        }
        let _ = runsc.query(&globals(container), &["kill", &container.name, "KILL"]);
        wait_until_stopped(container, Duration::from_secs(10));
    }
    // The supervisor is gone; whatever runsc left (a sandbox whose
    // supervisor was killed, its state files) goes now.
    if container.runsc_root().exists() {
        let _ = runsc.query(&globals(container), &["delete", "--force", &container.name]);
        super::supervise::reap_strays(&container.runsc_root());
    }
    container.remove()
}

fn wait_until_stopped(container: &ContainerDir, limit: Duration) {
    let deadline = Instant::now() + limit;
    while container.status() != Status::Stopped && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn globals(container: &ContainerDir) -> Globals {
    Globals { root: container.runsc_root(), log: Some(container.dir.join("runsc-control.log")), ..Globals::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("TERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("sigkill").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("10").unwrap(), Signal::SIGUSR1);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }
}
