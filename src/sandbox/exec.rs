//! The supervisor's side of its control socket: `kill`, and `exec`, which
//! runs `runsc exec` inside the container's namespaces with the caller's
//! stdio (or a new terminal handed back to the caller).
//!
//! `runsc exec` writes the command's pid inside the container once the
//! command runs (`--internal-pid-file`): before that, a failure is runsc's;
//! after, its exit status is the command's.

use std::os::fd::{AsFd, OwnedFd};
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
use super::tty::receive_master;

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

fn handle(mut connection: Connection, shared: &Shared) {
    let Ok(Some((request, fds))) = connection.receive::<Request>() else { return };
    let reply = match request {
        _ if !shared.is_running() => Reply::Error { message: "the container is not running".into() },
        Request::Kill { signal, all } => match Signal::try_from(signal) {
            Ok(signal) => kill(shared, signal, all),
            Err(_) => Reply::Error { message: format!("{signal} is not a signal") },
        },
        Request::Exec(request) => return exec(connection, shared, request, fds),
        Request::Signal { .. } => Reply::Error { message: "no command runs on this connection".into() },
    };
    let _ = connection.send(&reply, &[]);
}

fn kill(shared: &Shared, signal: Signal, all: bool) -> Reply {
    let mut args = vec!["kill"];
    if all {
        args.push("--all");
    }
    let name = signal.as_str().trim_start_matches("SIG").to_string();
    args.extend([shared.plan.name.as_str(), name.as_str()]);
    match shared.control_call(&args) {
        Ok(_) => Reply::Ok,
        Err(e) => Reply::Error { message: e.to_string() },
    }
}

/// Runs one `exec` request to its end.
fn exec(mut connection: Connection, shared: &Shared, request: ExecRequest, fds: Vec<OwnedFd>) {
    let n = EXEC_COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = &shared.plan.dir;
    let pid_file = dir.join(format!("exec-{n}.pid"));
    let console = format!("exec-{n}.sock");
    let outcome = start(shared, &request, fds, &pid_file, &console);
    let (mut child, terminal) = match outcome {
        Ok(started) => started,
        Err(message) => {
            let _ = connection.send(&Reply::Error { message }, &[]);
            return;
        }
    };
    if let Some(master) = &terminal {
        let _ = connection.send(&Reply::Terminal, &[master.as_fd()]);
    }
    let pid = Arc::new(Mutex::new(None::<i32>));
    watch_client(&connection, shared, Arc::clone(&pid));
    let reply = finish(&mut child, &pid_file, &pid, &connection, shared);
    let _ = connection.send(&reply, &[]);
    let _ = std::fs::remove_file(&pid_file);
    let _ = std::fs::remove_file(dir.join(&console));
    let _ = connection.receive::<Request>();
}

/// Spawns `runsc exec`; with a terminal, also takes its master end.
fn start(
    shared: &Shared,
    request: &ExecRequest,
    fds: Vec<OwnedFd>,
    pid_file: &std::path::Path,
    console: &str,
) -> Result<(Child, Option<OwnedFd>), String> {
    let (uid, gid) = request.user.unwrap_or(shared.plan.user);
    let mut args =
        vec!["exec".to_string(), format!("--internal-pid-file={}", pid_file.display()), format!("--user={uid}:{gid}")];
    if let Some(cwd) = &request.cwd {
        args.push(format!("--cwd={cwd}"));
    }
    args.extend(request.env.iter().map(|e| format!("--env={e}")));
    let listener = if request.tty {
        args.push(format!("--console-socket={console}"));
        let path = format!("/proc/self/fd/{}/{console}", std::os::fd::AsRawFd::as_raw_fd(&shared.plan.dir_fd));
        Some(UnixListener::bind(path).map_err(|e| format!("cannot open a console socket: {e}"))?)
    } else {
        None
    };
    args.push(shared.plan.name.clone());
    args.extend(request.args.iter().cloned());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = shared.runsc.control(&refs);
    cmd.current_dir(&shared.plan.dir).process_group(0).env_remove("NOTIFY_SOCKET");
    if request.tty {
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    } else {
        let mut fds = fds.into_iter();
        let mut next = || fds.next().map_or(Stdio::null(), Stdio::from);
        cmd.stdin(next()).stdout(next()).stderr(next());
    }
    let child = cmd.spawn().map_err(|e| format!("cannot start runsc exec: {e}"))?;
    drop(cmd);
    let master = match listener {
        Some(listener) => Some(receive_master(&listener).map_err(|e| e.to_string())?),
        None => None,
    };
    Ok((child, master))
}

/// Forwards the caller's signals to the command; if the caller goes away
/// before the command ends, the command is killed.
fn watch_client(connection: &Connection, shared: &Shared, pid: Arc<Mutex<Option<i32>>>) {
    let Ok(stream) = connection.stream().try_clone() else { return };
    let runsc = shared.runsc.clone();
    let name = shared.plan.name.clone();
    std::thread::spawn(move || {
        let Ok(mut client) = Connection::new(stream) else { return };
        loop {
            let signal = match client.receive::<Request>() {
                Ok(Some((Request::Signal { signal }, _))) => Signal::try_from(signal).ok(),
                Ok(Some(_)) => continue,
                _ => Some(Signal::SIGKILL),
            };
            let target = *pid.lock().unwrap_or_else(|p| p.into_inner());
            if let (Some(signal), Some(target)) = (signal, target) {
                let text = signal.as_str().trim_start_matches("SIG");
                let _ = runsc.control(&["kill", "--pid", &target.to_string(), &name, text]).output();
                if signal == Signal::SIGKILL {
                    return;
                }
            }
        }
    });
}

/// Waits for `runsc exec`; tells the caller when the command runs and how
/// it ended.
fn finish(
    child: &mut Child,
    pid_file: &std::path::Path,
    pid: &Mutex<Option<i32>>,
    connection: &Connection,
    shared: &Shared,
) -> Reply {
    let log = shared.plan.dir.join(CONTROL_LOG_FILE);
    let errors_before = logged_errors(&log).len();
    let status = loop {
        if pid.lock().unwrap_or_else(|p| p.into_inner()).is_none() {
            if let Some(started) = std::fs::read_to_string(pid_file).ok().and_then(|t| t.trim().parse::<i32>().ok()) {
                *pid.lock().unwrap_or_else(|p| p.into_inner()) = Some(started);
                let _ = connection.send(&Reply::Started { pid: started }, &[]);
            }
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Reply::Error { message: format!("cannot wait for runsc exec: {e}") },
        }
    };
    let started = pid.lock().unwrap_or_else(|p| p.into_inner()).is_some() || pid_file.exists();
    let new_errors: Vec<String> = logged_errors(&log).into_iter().skip(errors_before).collect();
    match status.code() {
        Some(code) if started && (code != 128 || new_errors.is_empty()) => Reply::Exited { status: code },
        _ => Reply::Error {
            message: new_errors.last().cloned().unwrap_or_else(|| format!("runsc exec failed ({status})")),
        },
    }
}
