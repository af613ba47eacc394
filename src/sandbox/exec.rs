//! The supervisor's side of its control socket: `kill`, and `exec`, which
//! runs `runsc exec` inside the container's namespaces with the caller's
//! stdio (or a new terminal handed back to the caller).
//!
//! `runsc exec` writes the command's pid inside the container once the
//! command runs (`--internal-pid-file`): before that, a failure is runsc's;
//! after, its exit status is the command's.
//!
//! With a terminal, the caller makes it and sends its replica end as the
//! command's stdio. This runsc sets a terminal up from `--console-socket`
//! only for a detached exec; attached, the flag only tells it that the
//! stdio it is handed is a terminal, so it is given a placeholder path.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::control::{Connection, ExecRequest, Reply, Request};
use super::runsc::{logged_errors, CONTROL_LOG_FILE};
use super::supervisor::Shared;

static EXEC_COUNTER: AtomicUsize = AtomicUsize::new(0);

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
fn exec(mut connection: Connection, shared: &Arc<Shared>, request: ExecRequest, fds: Vec<OwnedFd>) {
    // `runsc exec` is waited for by pid, so the final sweep must not reap it.
    let Some(_pass) = shared.reaping.pass() else {
        let _ = connection.send(&Reply::Error { message: "the container is stopping".into() }, &[]);
        return;
    };
    let n = EXEC_COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = &shared.plan.dir;
    let pid_file = dir.join(format!("exec-{n}.pid"));
    let outcome = start(shared, &request, fds, &pid_file);
    let mut child = match outcome {
        Ok(child) => child,
        Err(message) => {
            let _ = connection.send(&Reply::Error { message }, &[]);
            return;
        }
    };
    let state = Arc::new(Mutex::new(ExecState::Starting { pending: Vec::new() }));
    watch_client(&connection, shared, Arc::clone(&state));
    let reply = finish(&mut child, &pid_file, &state, &connection, shared);
    *state.lock().unwrap_or_else(|p| p.into_inner()) = ExecState::Ended;
    let _ = connection.send(&reply, &[]);
    let _ = std::fs::remove_file(&pid_file);
    let _ = connection.receive::<Request>();
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
    args.push(shared.plan.name.clone());
    args.extend(request.args.iter().cloned());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = shared.runsc.control(&refs);
    cmd.current_dir(&shared.plan.dir).process_group(0).env_remove("NOTIFY_SOCKET");
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
    /// sends meanwhile wait here (the command may already be running).
    Starting {
        pending: Vec<Signal>,
    },
    /// Running as this pid inside the container.
    Running(i32),
    Ended,
}

/// `runsc kill --pid` of an `exec`'d command.
fn signal_command(shared: &Shared, pid: i32, signal: Signal) {
    let text = signal.as_str().trim_start_matches("SIG");
    if let Err(e) = shared.control_call(&["kill", "--pid", &pid.to_string(), &shared.plan.name, text]) {
        tracing::debug!("{e}");
    }
}

/// Forwards the caller's signals to the command; if the caller goes away
/// while the command runs, the command is killed.
fn watch_client(connection: &Connection, shared: &Arc<Shared>, state: Arc<Mutex<ExecState>>) {
    let Ok(stream) = connection.stream().try_clone() else { return };
    let shared = Arc::clone(shared);
    std::thread::spawn(move || {
        let Ok(mut client) = Connection::new(stream) else { return };
        loop {
            let (signal, gone) = match client.receive::<Request>() {
                Ok(Some((Request::Signal { signal }, _))) => (Signal::try_from(signal).ok(), false),
                Ok(Some(_)) => continue,
                _ => (Some(Signal::SIGKILL), true),
            };
            if let Some(signal) = signal {
                let mut now = state.lock().unwrap_or_else(|p| p.into_inner());
                match &mut *now {
                    ExecState::Starting { pending } => pending.push(signal),
                    ExecState::Running(pid) => {
                        let pid = *pid;
                        drop(now);
                        signal_command(&shared, pid, signal);
                    }
                    ExecState::Ended => {}
                }
            }
            if gone {
                return;
            }
        }
    });
}

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
                if let ExecState::Starting { pending } = before {
                    for signal in pending {
                        signal_command(shared, started, signal);
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
        _ => Reply::Error {
            message: new_errors.last().cloned().unwrap_or_else(|| format!("runsc exec failed ({status})")),
        },
    }
}
