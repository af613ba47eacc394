//! `ps`, `state`, `kill`, `delete` and `exec`: acting on containers that a
//! `nucleus run` supervises, through their records and the supervisor's
//! control socket.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::Serialize;

use super::control::{Connection, ExecRequest, Reply, Request};
use super::stdio::{self, StartGate};
use super::tty;
use crate::state::record::{ProcessRef, Status};
use crate::state::{Container, StateRoot};
use crate::{Error, Result};

/// One line of `nucleus ps`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub name: String,
    pub status: Status,
    /// The sandbox's pid on the host while it runs.
    pub pid: Option<u32>,
    pub exit_status: Option<i32>,
    pub created: Option<u64>,
    pub installable: Option<String>,
    pub digest: Option<String>,
    pub command: Vec<String>,
}

pub fn summary(container: &Container) -> Summary {
    let record = container.record();
    let status = record.as_ref().map_or(Status::Stopped, |r| r.current_status());
    Summary {
        name: container.name().to_string(),
        status,
        pid: record.as_ref().filter(|_| status == Status::Running).and_then(sandbox_host_pid),
        exit_status: record.as_ref().and_then(|r| r.exit_status),
        created: record.as_ref().map(|r| r.created),
        installable: record.as_ref().and_then(|r| r.installable.clone()),
        digest: record.as_ref().map(|r| r.digest.clone()),
        command: record.map(|r| r.command).unwrap_or_default(),
    }
}

pub fn list(state: &StateRoot, all: bool) -> Result<Vec<Summary>> {
    Ok(state.containers()?.iter().map(summary).filter(|s| all || s.status != Status::Stopped).collect())
}

pub fn format_table(rows: &[Summary]) -> String {
    let mut text =
        format!("{:<24} {:<9} {:>8} {:>5}  {:<40} {}\n", "NAME", "STATUS", "PID", "EXIT", "INSTALLABLE", "COMMAND");
    for row in rows {
        let status = crate::state::status_word(row.status).split(' ').next_back().unwrap_or("");
        let pid = row.pid.map_or("-".into(), |p| p.to_string());
        let exit = row.exit_status.map_or("-".into(), |c| c.to_string());
        let installable = row.installable.as_deref().unwrap_or("(host)");
        let line = format!(
            "{:<24} {:<9} {:>8} {:>5}  {:<40} {}",
            row.name,
            status,
            pid,
            exit,
            installable,
            row.command.join(" ")
        );
        text.push_str(&crate::error::printable(&line));
        text.push('\n');
    }
    text
}

/// The sandbox process's pid as the host sees it: the child of the
/// supervisor (itself the child of `nucleus run`) whose pid inside the
/// container's namespace is the one recorded.
fn sandbox_host_pid(record: &crate::state::record::ContainerRecord) -> Option<u32> {
    let inner = record.sandbox_pid?;
    let children = |pid: u32| -> Vec<u32> {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .map(|t| t.split_whitespace().filter_map(|p| p.parse().ok()).collect())
            .unwrap_or_default()
    };
    let supervisor = children(record.supervisor_pid).into_iter().next()?;
    children(supervisor).into_iter().find(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
            status.lines().any(|l| l.starts_with("NSpid:") && l.split_whitespace().last() == Some(&inner.to_string()))
        })
    })
}

/// The runtime spec's state document for `nucleus state`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    pub bundle: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
}

pub fn oci_state(container: &Container) -> OciState {
    let s = summary(container);
    OciState {
        oci_version: crate::oci::build::OCI_VERSION.to_string(),
        id: s.name,
        status: s.status,
        pid: s.pid,
        bundle: container.layout.bundle().dir().display().to_string(),
        exit_status: s.exit_status,
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

/// Asks the supervisor, and reads its one reply.
fn ask(container: &Container, request: &Request) -> Result<Reply> {
    let not_running = || Error::container(container.name(), "is not running");
    if container.status() == Status::Stopped {
        return Err(not_running());
    }
    let mut connection = connect(container).ok_or_else(not_running)?;
    // The supervisor answers within its own bound on runsc; one that does
    // not (stopped, wedged) must not hang the caller.
    let _ = connection.stream().set_read_timeout(Some(ANSWER_LIMIT));
    connection.send(request, &[]).map_err(|_| not_running())?;
    match connection.receive::<Reply>() {
        Ok(Some((reply, _))) => Ok(reply),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
            Err(Error::container(
                container.name(),
                format!("its supervisor did not answer within {} s", ANSWER_LIMIT.as_secs()),
            ))
        }
        _ => Err(not_running()),
    }
}

/// How long `kill` waits for the supervisor's answer: longer than the
/// supervisor waits for runsc.
const ANSWER_LIMIT: Duration = Duration::from_secs(15);

/// Connects to the container's supervisor. Its record is written before
/// the supervisor exists and listens (`nucleus run --name x & nucleus kill
/// x`): while the container is being created, the socket is waited for,
/// at most [`ANSWER_LIMIT`]. `None` once it is not there and will not be.
fn connect(container: &Container) -> Option<Connection> {
    let deadline = std::time::Instant::now() + ANSWER_LIMIT;
    loop {
        if let Ok(connection) = Connection::connect(container.dir()) {
            return Some(connection);
        }
        if container.status() != Status::Creating || std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn kill(container: &Container, signal: Signal, all: bool) -> Result<()> {
    match ask(container, &Request::Kill { signal: signal as i32, all })? {
        Reply::Ok => Ok(()),
        Reply::Error { message } => Err(Error::container(container.name(), message)),
        other => Err(Error::container(container.name(), format!("unexpected reply {other:?}"))),
    }
}

/// Removes a stopped container; with `force`, stops a running one first:
/// SIGKILL to its workload, then, for any that has not ended within a few
/// seconds, to `nucleus run` (whose supervisor then cleans up) and to the
/// supervisor itself. A container is discarded only once neither runs.
pub fn delete(container: Container, force: bool) -> Result<()> {
    let Some(record) = container.record() else { return container.discard() };
    if record.winding_down() {
        // Its supervisor is cleaning up after a killed `nucleus run`.
        if !record.wait_until_ended(crate::state::WINDING_DOWN_LIMIT) {
            return Err(Error::container(container.name(), "is still being stopped; try again"));
        }
    } else if record.current_status() != Status::Stopped {
        if !force {
            return Err(Error::container(
                container.name(),
                format!(
                    "is running; stop it with `nucleus kill {0}` or use `nucleus delete --force {0}`",
                    container.name()
                ),
            ));
        }
        let _ = kill(&container, Signal::SIGKILL, true);
        let keepers =
            [Some(ProcessRef { pid: record.supervisor_pid, start: record.supervisor_start }), record.supervisor];
        for keeper in keepers.into_iter().flatten() {
            if !record.wait_until_ended(STOP_LIMIT) && keeper.alive() {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(keeper.pid as i32), Signal::SIGKILL);
            }
        }
        if !record.wait_until_ended(STOP_LIMIT) {
            return Err(Error::container(container.name(), "did not stop; its processes are still there"));
        }
    }
    // The supervisor may have removed it on its way out, and a new run may
    // have taken the name since: only this container is discarded.
    container.discard()
}

/// How long `delete --force` gives each step of stopping a container.
const STOP_LIMIT: Duration = Duration::from_secs(5);

/// What `nucleus exec` asks for.
pub struct ExecOptions {
    pub request: ExecRequest,
}

/// Runs a command in a running container and returns its exit status
/// (128+N for signal N).
pub fn exec(container: &Container, options: ExecOptions) -> Result<i32> {
    let mut request = options.request;
    let signals = super::block_signals()?;
    if request.tty && !tty::stdin_is_terminal() {
        return Err(Error::invalid("--tty", "stdin is not a terminal; run nucleus from one, or drop -t"));
    }
    if container.status() != Status::Running {
        return Err(Error::container(container.name(), "is not running"));
    }
    let mut connection =
        Connection::connect(container.dir()).map_err(|_| Error::container(container.name(), "is not running"))?;
    let gate = StartGate::new();
    let ended = Arc::new(Ended::default());
    let (fds, relays, master) = if request.tty {
        let (master, replica) = tty::open_pair()?;
        let copy = || replica.try_clone().map_err(|e| Error::setup("duplicate the terminal", e));
        // This process's own terminal too: the supervisor gives it its mode
        // back if this process is killed while the command runs.
        let own = std::io::stdin().as_fd().try_clone_to_owned().map_err(|e| Error::setup("duplicate stdin", e))?;
        request.caller_terminal = true;
        (vec![copy()?, copy()?, replica, own], None, Some(master))
    } else {
        // As `run` does: SIGPIPE for a command whose reader went away.
        let socket = connection.stream().try_clone().map_err(|e| Error::setup("duplicate a socket", e))?;
        let broken = Connection::new(socket).map_err(|e| Error::setup("duplicate a socket", e))?;
        let ended = Arc::clone(&ended);
        let on_broken: stdio::OnBrokenPipe = Arc::new(move || {
            let _ = broken.send(&Request::Signal { signal: Signal::SIGPIPE as i32 }, &[]);
            // The pipe stays open until the signal has ended the command
            // (or a command that ignores it had a moment), so its writes
            // fill the pipe rather than fail, as on the host.
            ended.wait(SIGPIPE_GRACE);
        });
        let (io, relays) = stdio::piped(request.interactive, on_broken, &gate)?;
        (io.into_fds(), Some(relays), None)
    };
    let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
    connection.send(&Request::Exec(request.clone()), &borrowed).map_err(|e| Error::setup("send the request", e))?;
    drop(borrowed);
    drop(fds);
    let window = master.as_ref().and_then(|m| m.try_clone().ok());
    let forward = connection.stream().try_clone().map_err(|e| Error::setup("duplicate a socket", e))?;
    std::thread::spawn(move || forward_signals(signals, forward, window));
    // Raw, and relayed, only once the command has started: by then the
    // supervisor has read the mode to restore, and what was typed before
    // (a Ctrl-D included) waits in this terminal's queue until the relay
    // passes it on as bytes.
    let mut raw_mode = None;
    let mut master = master;
    let mut terminal = None;
    loop {
        let reply = match connection.receive::<Reply>() {
            Ok(Some((reply, _))) => reply,
            _ => return Err(Error::container(container.name(), "stopped while the command ran")),
        };
        match reply {
            Reply::Started { .. } => {
                gate.started();
                if let Some(master) = master.take() {
                    raw_mode = Some(tty::RawMode::enter()?);
                    terminal = Some(tty::relay(master, request.interactive)?);
                }
            }
            Reply::Ok | Reply::Terminal => {}
            Reply::Exited { status } => {
                ended.set();
                gate.started();
                if let Some(relays) = relays {
                    relays.finish();
                }
                if let Some(terminal) = terminal {
                    let _ = terminal.join();
                }
                drop(raw_mode);
                return Ok(status);
            }
            Reply::Error { message } => {
                ended.set();
                // runsc's own complaint, on the command's stderr: said
                // once, in nucleus's line, unless its log said it already.
                let said = gate.never_started();
                let message = match said {
                    Some(said) if !message.contains(&said) => format!("{message} ({said})"),
                    _ => message,
                };
                return Err(Error::runsc(message));
            }
        }
    }
}

/// How long a relay whose reader went away keeps the command's pipe open
/// after asking for SIGPIPE.
const SIGPIPE_GRACE: Duration = Duration::from_secs(2);

/// Set once the supervisor says how the command ended.
#[derive(Default)]
struct Ended {
    done: std::sync::Mutex<bool>,
    changed: std::sync::Condvar,
}

impl Ended {
    fn set(&self) {
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.changed.notify_all();
    }

    /// Waits until set, at most `limit`.
    fn wait(&self, limit: Duration) {
        let done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self.changed.wait_timeout_while(done, limit, |done| !*done);
    }
}

/// Passes the caller's signals to the command, and window changes to its
/// terminal.
fn forward_signals(signals: nix::sys::signal::SigSet, stream: std::os::unix::net::UnixStream, window: Option<OwnedFd>) {
    let Ok(connection) = Connection::new(stream) else { return };
    loop {
        let Ok(signal) = signals.wait() else { continue };
        if signal == Signal::SIGWINCH {
            if let Some(master) = &window {
                tty::copy_window_size(master);
            }
            continue;
        }
        if connection.send(&Request::Signal { signal: signal as i32 }, &[]).is_err() {
            return;
        }
    }
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
