//! The supervisor's side of its control socket: `kill`, and `exec`, which
//! runs `runsc exec` inside the container's namespaces with the caller's
//! stdio (or a new terminal handed back to the caller).
//!
//! `runsc exec` writes the command's pid inside the container once the
//! command runs (`--internal-pid-file`): before that, a failure is runsc's;
//! after, its exit status is the command's.
//!
//! If the caller goes away while its command runs (killed, say), the command
//! ends, and so does every process it started that still descends from it:
//! gVisor gives each exec'd command a session of its own, but runsc can
//! signal only single processes, so the tree is stopped from the top down
//! (a stopped process cannot fork) and then killed.
//!
//! A thread holds a reaping pass while its `runsc exec` child lives and
//! until it has sent the caller the command's end: never while it waits on
//! the caller, who may be stopped (Ctrl-Z) or slow, so that no caller can
//! keep the container's final sweep waiting.
//!
//! With a terminal, the caller makes it and sends its replica end as the
//! command's stdio. This runsc sets a terminal up from `--console-socket`
//! only for a detached exec; attached, the flag only tells it that the
//! stdio it is handed is a terminal, so it is given a placeholder path.
//! The caller sends its own terminal as well: if the caller is killed while
//! the command runs, its terminal gets back the mode it had (as `run`'s
//! supervisor does for `run`).

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::termios::{tcgetattr, SetArg, Termios};

use super::control::{Connection, ExecRequest, Reply, Request};
use super::runsc::{logged_errors, CONTROL_LOG_FILE};
use super::supervisor::Shared;

static EXEC_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// How long the supervisor waits for a caller to take a message.
const CLIENT_WRITE_LIMIT: Duration = Duration::from_secs(5);

/// Accepts control connections until the process ends.
pub fn serve(listener: UnixListener, shared: Arc<Shared>) {
    for stream in listener.incoming().flatten() {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            if let Ok(connection) = Connection::new(stream) {
                handle(connection, &shared);
            }
        });
    }
}

fn handle(mut connection: Connection, shared: &Arc<Shared>) {
    // A caller that stops reading (stopped, or gone without closing) must
    // not hold a supervisor thread forever.
    let _ = connection.stream().set_write_timeout(Some(CLIENT_WRITE_LIMIT));
    let Ok(Some((request, fds))) = connection.receive::<Request>() else { return };
    let reply = match request {
        // As a signal to `nucleus run`: queued while the sandbox boots (a
        // stop signal aborts the boot), delivered once the workload runs.
        Request::Kill { signal, all } => match Signal::try_from(signal) {
            Ok(signal) => match shared.send(signal, all) {
                Ok(()) => Reply::Ok,
                Err(e) => Reply::Error { message: e.to_string() },
            },
            Err(_) => Reply::Error { message: format!("{signal} is not a signal") },
        },
        _ if !shared.is_running() => Reply::Error { message: "the container is not running".into() },
        Request::Exec(request) => return exec(connection, shared, request, fds),
        Request::Signal { .. } => Reply::Error { message: "no command runs on this connection".into() },
    };
    let _ = connection.send(&reply, &[]);
}

/// Runs one `exec` request to its end.
fn exec(connection: Connection, shared: &Arc<Shared>, request: ExecRequest, fds: Vec<OwnedFd>) {
    // `runsc exec` is waited for by pid, so the final sweep must not reap
    // it; and the sweep waits for the pass, so the caller hears how its
    // command ended even when the container ends with it. Sending never
    // waits long (a short line, a write timeout); nothing here waits for
    // the caller to read it.
    let Some(pass) = shared.reaping.pass() else {
        let _ = connection.send(&Reply::Error { message: "the container is stopping".into() }, &[]);
        return;
    };
    let (fds, caller_terminal) = split_caller_terminal(&request, fds);
    let reply = run_command(&connection, shared, &request, fds, caller_terminal);
    let _ = connection.send(&reply, &[]);
    drop(pass);
}

/// The caller's own terminal and the mode it has now (before the caller
/// makes it raw), when the request says one follows the stdio descriptors.
struct CallerTerminal {
    terminal: OwnedFd,
    mode: Termios,
}

impl CallerTerminal {
    /// The caller is gone: its terminal gets its mode back, at once (no
    /// output is waited for, as no one reads it any more).
    fn restore(&self) {
        super::tty::set_mode_from_anywhere(&self.terminal, SetArg::TCSANOW, &self.mode);
    }
}

fn split_caller_terminal(request: &ExecRequest, mut fds: Vec<OwnedFd>) -> (Vec<OwnedFd>, Option<CallerTerminal>) {
    if !(request.tty && request.caller_terminal && fds.len() == 4) {
        return (fds, None);
    }
    let caller = fds.pop().and_then(|terminal| tcgetattr(&terminal).ok().map(|mode| CallerTerminal { terminal, mode }));
    (fds, caller)
}

/// Starts `runsc exec` and waits for it; the reply for the caller.
fn run_command(
    connection: &Connection,
    shared: &Arc<Shared>,
    request: &ExecRequest,
    fds: Vec<OwnedFd>,
    caller_terminal: Option<CallerTerminal>,
) -> Reply {
    let n = EXEC_COUNTER.fetch_add(1, Ordering::SeqCst);
    let pid_file = shared.plan.dir.join(format!("exec-{n}.pid"));
    let mut child = match start(shared, request, fds, &pid_file) {
        Ok(child) => child,
        Err(message) => return Reply::Error { message },
    };
    let state = Arc::new(Mutex::new(ExecState::Starting { pending: Vec::new(), caller_gone: false }));
    watch_client(connection, shared, Arc::clone(&state), caller_terminal);
    let reply = finish(&mut child, &pid_file, &state, connection, shared);
    *state.lock().unwrap_or_else(|p| p.into_inner()) = ExecState::Ended;
    let _ = std::fs::remove_file(&pid_file);
    reply
}

/// Spawns `runsc exec` with the caller's stdio.
fn start(
    shared: &Shared,
    request: &ExecRequest,
    fds: Vec<OwnedFd>,
    pid_file: &std::path::Path,
) -> Result<Child, String> {
    let (uid, gid) = request.user.unwrap_or(shared.plan.user);
    let mut args =
        vec!["exec".to_string(), format!("--internal-pid-file={}", pid_file.display()), format!("--user={uid}:{gid}")];
    if let Some(cwd) = &request.cwd {
        args.push(format!("--cwd={cwd}"));
    }
    args.extend(request.env.iter().map(|e| format!("--env={e}")));
    if request.tty {
        args.push("--console-socket=/dev/null".into());
    }
    args.push(shared.plan.runsc_id.clone());
    args.extend(request.args.iter().cloned());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = shared.runsc.control(&refs);
    cmd.current_dir(&shared.plan.dir);
    let mut fds = fds.into_iter();
    let mut next = || fds.next().map_or(Stdio::null(), Stdio::from);
    cmd.stdin(next()).stdout(next()).stderr(next());
    let child = cmd.spawn().map_err(|e| format!("cannot start runsc exec: {e}"))?;
    drop(cmd);
    Ok(child)
}

/// Where an `exec`'d command is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ExecState {
    /// `runsc exec` has not said the command's pid yet; signals the caller
    /// sends meanwhile wait here (the command may already be running), and
    /// so does the news that the caller is gone.
    Starting {
        pending: Vec<Signal>,
        caller_gone: bool,
    },
    /// Running as this pid inside the container.
    Running(i32),
    Ended,
}

/// `runsc kill --pid` of an `exec`'d command.
fn signal_command(shared: &Shared, pid: i32, signal: Signal) {
    let text = signal.as_str().trim_start_matches("SIG");
    if let Err(e) = shared.control_call(&["kill", "--pid", &pid.to_string(), &shared.plan.runsc_id, text]) {
        tracing::debug!("{e}");
    }
}

/// Forwards the caller's signals to the command; if the caller goes away
/// while the command runs, the command and its descendants are ended.
fn watch_client(
    connection: &Connection,
    shared: &Arc<Shared>,
    state: Arc<Mutex<ExecState>>,
    caller_terminal: Option<CallerTerminal>,
) {
    let Ok(stream) = connection.stream().try_clone() else { return };
    let shared = Arc::clone(shared);
    std::thread::spawn(move || {
        let Ok(mut client) = Connection::new(stream) else { return };
        loop {
            let signal = match client.receive::<Request>() {
                Ok(Some((Request::Signal { signal }, _))) => Signal::try_from(signal).ok(),
                Ok(Some(_)) => continue,
                _ => None,
            };
            let ended = matches!(*state.lock().unwrap_or_else(|p| p.into_inner()), ExecState::Ended);
            if signal.is_none() && !ended {
                if let Some(caller) = &caller_terminal {
                    caller.restore();
                }
            }
            let mut now = state.lock().unwrap_or_else(|p| p.into_inner());
            match (&mut *now, signal) {
                (ExecState::Starting { pending, .. }, Some(signal)) => pending.push(signal),
                (ExecState::Starting { caller_gone, .. }, None) => *caller_gone = true,
                (ExecState::Running(pid), signal) => {
                    let pid = *pid;
                    drop(now);
                    match signal {
                        Some(signal) => signal_command(&shared, pid, signal),
                        None => end_tree(&shared, pid),
                    }
                }
                (ExecState::Ended, _) => {}
            }
            if signal.is_none() {
                return;
            }
        }
    });
}

/// How many times the tree is listed while stopping it, at most: each
/// round stops what the last one found, and a stopped process forks no
/// more, so a tree is whole after a round that finds nothing new.
const TREE_ROUNDS: usize = 16;

/// Ends `root` and every process that descends from it: SIGSTOP from the
/// top down until a listing finds nothing new, then SIGKILL to all.
/// Killing first would let a child be re-parented out of the tree before
/// it is found.
fn end_tree(shared: &Shared, root: i32) {
    let mut stopped: Vec<i32> = Vec::new();
    for _ in 0..TREE_ROUNDS {
        let Ok(table) = shared.control_call(&["ps", &shared.plan.runsc_id]) else { break };
        let new: Vec<i32> =
            descendants(&parse_ps(&table), root).into_iter().filter(|pid| !stopped.contains(pid)).collect();
        if new.is_empty() {
            break;
        }
        for pid in new {
            signal_command(shared, pid, Signal::SIGSTOP);
            stopped.push(pid);
        }
    }
    if !stopped.contains(&root) {
        stopped.push(root);
    }
    for pid in stopped {
        signal_command(shared, pid, Signal::SIGKILL);
    }
}

/// `(pid, ppid)` of each process in `runsc ps`'s table (`UID PID PPID …`).
fn parse_ps(table: &str) -> Vec<(i32, i32)> {
    table
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            let pid = fields.next()?.parse().ok()?;
            let ppid = fields.next()?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect()
}

/// `root` (if it is listed) and every process below it, parents first.
fn descendants(processes: &[(i32, i32)], root: i32) -> Vec<i32> {
    let mut tree: Vec<i32> = processes.iter().filter(|(pid, _)| *pid == root).map(|(pid, _)| *pid).collect();
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        for (pid, ppid) in processes {
            if *ppid == parent && !tree.contains(pid) {
                tree.push(*pid);
            }
        }
        i += 1;
    }
    tree
}

/// How long a failed `runsc exec` waits to learn whether its container is
/// ending (then its command was killed with it) before it reports runsc's
/// complaint.
const CONTAINER_END_GRACE: Duration = Duration::from_secs(2);

/// Waits for `runsc exec`; tells the caller when the command runs and how
/// it ended.
fn finish(
    child: &mut Child,
    pid_file: &std::path::Path,
    state: &Mutex<ExecState>,
    connection: &Connection,
    shared: &Shared,
) -> Reply {
    let log = shared.plan.dir.join(CONTROL_LOG_FILE);
    let errors_before = logged_errors(&log).len();
    let status = loop {
        let starting = matches!(*state.lock().unwrap_or_else(|p| p.into_inner()), ExecState::Starting { .. });
        if starting {
            if let Some(started) = std::fs::read_to_string(pid_file).ok().and_then(|t| t.trim().parse::<i32>().ok()) {
                let before = std::mem::replace(
                    &mut *state.lock().unwrap_or_else(|p| p.into_inner()),
                    ExecState::Running(started),
                );
                let _ = connection.send(&Reply::Started { pid: started }, &[]);
                if let ExecState::Starting { pending, caller_gone } = before {
                    for signal in pending {
                        signal_command(shared, started, signal);
                    }
                    if caller_gone {
                        end_tree(shared, started);
                    }
                }
            }
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Reply::Error { message: format!("cannot wait for runsc exec: {e}") },
        }
    };
    let started =
        matches!(*state.lock().unwrap_or_else(|p| p.into_inner()), ExecState::Running(_)) || pid_file.exists();
    let new_errors: Vec<String> = logged_errors(&log).into_iter().skip(errors_before).collect();
    match status.code() {
        Some(code) if started && (code != 128 || new_errors.is_empty()) => Reply::Exited { status: code },
        // The command ran, and `runsc exec` lost it because the container
        // ended: it was killed with the container, as the workload is.
        _ if started && shared.ends_within(CONTAINER_END_GRACE) => Reply::Exited { status: 128 + libc::SIGKILL },
        _ => Reply::Error {
            message: new_errors.last().cloned().unwrap_or_else(|| format!("runsc exec failed ({status})")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_is_found_in_runsc_ps_parents_first() {
        let table = "UID       PID       PPID      C         TTY       STIME     TIME      CMD\n\
                     0         1         0         0         ?         01:00     10ms      sh\n\
                     0         15        0         0         ?         01:01     0s        sh\n\
                     0         17        15        0         ?         01:01     0s        sleep\n\
                     0         18        17        0         ?         01:01     0s        sleep 30\n\
                     0         19        1         0         ?         01:01     0s        sleep\n";
        let processes = parse_ps(table);
        assert_eq!(processes, [(1, 0), (15, 0), (17, 15), (18, 17), (19, 1)]);
        assert_eq!(descendants(&processes, 15), [15, 17, 18]);
        assert_eq!(descendants(&processes, 42), Vec::<i32>::new(), "a command that is gone has no tree");
    }
}
