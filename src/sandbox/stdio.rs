//! The stdio of a workload or an `exec`'d command: the same rules for both.
//!
//! runsc writes a regular-file stdout from offset 0, overwriting what was
//! there, so the command writes into pipes and nucleus copies them to its
//! own stdout and stderr: `>>` and `>` then behave as with any program.
//! When stdout and stderr are one open file (`> log 2>&1`), the command
//! gets one pipe for both, so their order is kept.
//!
//! When nucleus can no longer write its stdout (a reader such as `head`
//! went away), it closes the pipe's read end, so the command's next write
//! fails with EPIPE as it would on the host, and it tells the caller, who
//! raises SIGPIPE in the command: gVisor returns EPIPE for a host pipe but
//! raises no signal, and a shell loop would otherwise run forever.
//!
//! runsc's own complaints (a missing program, a bad working directory) go
//! to the same stderr as the command's, because runsc hands the command
//! its own stdio. Until the command is known to have started, what comes
//! on that pipe is held back ([`StartGate`]): once it has started it is
//! the command's and is copied out; if it never started it was runsc's,
//! and nucleus says it in its own one line instead.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::fstat;

use crate::{Error, Result};

/// The three descriptors the command is given.
pub struct CommandStdio {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

impl CommandStdio {
    /// As a child process's stdio.
    pub fn into_stdio(self) -> [Stdio; 3] {
        [Stdio::from(self.stdin), Stdio::from(self.stdout), Stdio::from(self.stderr)]
    }

    /// As descriptors to pass over a socket.
    pub fn into_fds(self) -> Vec<OwnedFd> {
        vec![self.stdin, self.stdout, self.stderr]
    }
}

/// The threads copying the command's output.
pub struct Relays {
    handles: Vec<JoinHandle<()>>,
}

/// Called once, from a relay thread, when nucleus's own output is gone.
pub type OnBrokenPipe = Arc<dyn Fn() + Send + Sync>;

/// Pipes for stdout and stderr (one when they are the same open file),
/// each copied by a thread to nucleus's own; stdin is nucleus's when
/// `interactive`, else empty. What comes on the pipe that carries stderr
/// waits for `gate`'s verdict.
pub fn piped(interactive: bool, on_broken: OnBrokenPipe, gate: &StartGate) -> Result<(CommandStdio, Relays)> {
    let stdin = if interactive {
        std::io::stdin().as_fd().try_clone_to_owned()
    } else {
        File::open("/dev/null").map(OwnedFd::from)
    }
    .map_err(|e| Error::setup("open the command's stdin", e))?;
    let stdout_copy = || std::io::stdout().as_fd().try_clone_to_owned();
    let (out_read, out_write) = pipe()?;
    let merged = same_open_file();
    let out_gate = merged.then(|| gate.view());
    let mut handles = vec![relay(out_read, stdout_copy(), on_broken.clone(), out_gate)];
    let stdout = out_write.try_clone().map_err(|e| Error::setup("duplicate a pipe", e))?;
    let stderr = if merged {
        out_write
    } else {
        drop(out_write);
        let (err_read, err_write) = pipe()?;
        let to = std::io::stderr().as_fd().try_clone_to_owned();
        handles.push(relay(err_read, to, on_broken, Some(gate.view())));
        err_write
    };
    Ok((CommandStdio { stdin, stdout, stderr }, Relays { handles }))
}

impl Relays {
    /// Waits until every pipe has been drained (all writers closed it).
    pub fn finish(self) {
        for relay in self.handles {
            let _ = relay.join();
        }
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::setup("create a pipe for the output", e))
}

/// Whether fds 1 and 2 are the same open file: same file, same flags. Two
/// opens of one file are merged too, which keeps their order as well.
fn same_open_file() -> bool {
    let (out, err) = (std::io::stdout(), std::io::stderr());
    let same_file = match (fstat(out.as_fd()), fstat(err.as_fd())) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    };
    same_file && fcntl(out.as_fd(), FcntlArg::F_GETFL).ok() == fcntl(err.as_fd(), FcntlArg::F_GETFL).ok()
}

/// How much is held back before the command is taken to have started
/// anyway: runsc's complaints are a line or two.
const HOLD_LIMIT: usize = 64 * 1024;

/// How often a holding relay looks for the verdict, in milliseconds.
const HOLD_POLL_MS: u16 = 10;

/// How long a verdict of "never started" waits for the relay to take in
/// what runsc wrote (it has exited, so it is all in the pipe by then).
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Not known yet: output is held.
    Pending,
    /// The command started: held output is its own and goes out.
    Started,
    /// It never started: the relay takes in what is in the pipe, then
    /// stops holding.
    Draining,
    /// Drained; the held output was runsc's.
    NeverStarted,
}

struct GateState {
    verdict: Verdict,
    held: Vec<u8>,
    /// Relays holding for this gate: with none, there is nothing to drain.
    relays: usize,
}

struct GateInner {
    state: Mutex<GateState>,
    changed: Condvar,
}

impl GateInner {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Holds the command's stderr until it is known whether the command
/// started. Dropped without a verdict, it lets the output through.
pub struct StartGate {
    inner: Arc<GateInner>,
}

/// A relay's side of a [`StartGate`].
#[derive(Clone)]
struct GateView {
    inner: Arc<GateInner>,
}

impl Default for StartGate {
    fn default() -> Self {
        StartGate::new()
    }
}

impl StartGate {
    pub fn new() -> StartGate {
        let state = GateState { verdict: Verdict::Pending, held: Vec::new(), relays: 0 };
        StartGate { inner: Arc::new(GateInner { state: Mutex::new(state), changed: Condvar::new() }) }
    }

    fn view(&self) -> GateView {
        self.inner.lock().relays += 1;
        GateView { inner: Arc::clone(&self.inner) }
    }

    /// The command started: what was held is its output.
    pub fn started(&self) {
        let mut state = self.inner.lock();
        if state.verdict == Verdict::Pending {
            state.verdict = Verdict::Started;
            self.inner.changed.notify_all();
        }
    }

    /// The command never started, and runsc has exited: returns the last
    /// line runsc wrote there, if any; nothing of it is copied out.
    pub fn never_started(&self) -> Option<String> {
        let mut state = self.inner.lock();
        if state.verdict != Verdict::Pending {
            return None;
        }
        if state.relays == 0 {
            state.verdict = Verdict::NeverStarted;
            return None;
        }
        state.verdict = Verdict::Draining;
        self.inner.changed.notify_all();
        let deadline = Instant::now() + DRAIN_LIMIT;
        while state.verdict == Verdict::Draining {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self.inner.changed.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        state.verdict = Verdict::NeverStarted;
        let held = std::mem::take(&mut state.held);
        last_line(&held)
    }
}

impl Drop for StartGate {
    fn drop(&mut self) {
        self.started();
    }
}

/// The last non-blank line of `bytes`, trimmed.
fn last_line(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    text.lines().rev().map(str::trim).find(|l| !l.is_empty()).map(str::to_string)
}

/// Reads `from` into the gate's buffer until the verdict; returns what
/// the relay should write first: the held output of a command that
/// started, nothing for one that did not.
fn hold(from: &File, gate: &GateView) -> Vec<u8> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        {
            let mut state = gate.inner.lock();
            match state.verdict {
                Verdict::Started => return std::mem::take(&mut state.held),
                Verdict::NeverStarted => return Vec::new(),
                Verdict::Draining => {
                    // runsc has exited: all it wrote is in the pipe now.
                    while readable(from, PollTimeout::ZERO) && state.held.len() < HOLD_LIMIT {
                        match (&*from).read(&mut buf) {
                            Ok(n) if n > 0 => state.held.extend_from_slice(&buf[..n]),
                            _ => break,
                        }
                    }
                    state.verdict = Verdict::NeverStarted;
                    gate.inner.changed.notify_all();
                    return Vec::new();
                }
                Verdict::Pending if state.held.len() >= HOLD_LIMIT => {
                    // More than runsc ever says: the command's own output.
                    state.verdict = Verdict::Started;
                    return std::mem::take(&mut state.held);
                }
                Verdict::Pending => {}
            }
        }
        if !readable(from, PollTimeout::from(HOLD_POLL_MS)) {
            continue;
        }
        match (&*from).read(&mut buf) {
            Ok(n) if n > 0 => gate.inner.lock().held.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // The end of the pipe: wait for the verdict on what was held.
            _ => {
                let mut state = gate.inner.lock();
                while state.verdict == Verdict::Pending {
                    state = gate.inner.changed.wait(state).unwrap_or_else(|p| p.into_inner());
                }
                if state.verdict == Verdict::Started {
                    return std::mem::take(&mut state.held);
                }
                state.verdict = Verdict::NeverStarted;
                gate.inner.changed.notify_all();
                return Vec::new();
            }
        }
    }
}

/// Whether `fd` has data or its end within `timeout`.
fn readable(fd: &File, timeout: PollTimeout) -> bool {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, timeout), Ok(n) if n > 0)
}

/// Copies `from` to `to` until EOF, first holding what comes until
/// `gate`'s verdict. If `to` goes away (EPIPE), closes `from` and calls
/// `on_broken`. Other write errors (a full disk) drop the output but keep
/// draining, so the command is never blocked on a full pipe.
fn relay(
    from: OwnedFd,
    to: std::io::Result<OwnedFd>,
    on_broken: OnBrokenPipe,
    gate: Option<GateView>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let from = File::from(from);
        let mut to = to.ok().map(File::from);
        let held = gate.map(|gate| hold(&from, &gate)).unwrap_or_default();
        let mut write = |bytes: &[u8]| -> bool {
            let Some(out) = to.as_mut() else { return true };
            match out.write_all(bytes) {
                Ok(()) => true,
                Err(e) if e.kind() == ErrorKind::BrokenPipe => false,
                Err(e) => {
                    tracing::warn!("the output is lost from here on: {e}");
                    to = None;
                    true
                }
            }
        };
        // On EPIPE the caller first raises SIGPIPE in the command (while
        // its writes only fill the pipe), then the pipe is closed, so a
        // command that ignores SIGPIPE gets EPIPE, as on the host.
        if !held.is_empty() && !write(&held) {
            on_broken();
            drop(from);
            return;
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match (&from).read(&mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            if !write(&buf[..n]) {
                on_broken();
                drop(from);
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gated_pipe(gate: &StartGate) -> (File, JoinHandle<Vec<u8>>) {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let view = gate.view();
        let reader = std::thread::spawn(move || {
            let from = File::from(read);
            let mut out = hold(&from, &view);
            (&from).read_to_end(&mut out).unwrap();
            out
        });
        (File::from(write), reader)
    }

    #[test]
    fn held_output_goes_out_once_the_command_started() {
        let gate = StartGate::new();
        let (mut write, reader) = gated_pipe(&gate);
        write.write_all(b"early\n").unwrap();
        std::thread::sleep(Duration::from_millis(30));
        gate.started();
        write.write_all(b"late\n").unwrap();
        drop(write);
        assert_eq!(reader.join().unwrap(), b"early\nlate\n");
    }

    #[test]
    fn what_runsc_wrote_before_a_failed_start_is_its_reason_not_output() {
        let gate = StartGate::new();
        let (mut write, reader) = gated_pipe(&gate);
        write.write_all(b"running container: failed to load /bin/nope\n").unwrap();
        assert_eq!(gate.never_started().as_deref(), Some("running container: failed to load /bin/nope"));
        drop(write);
        assert_eq!(reader.join().unwrap(), b"");
    }

    #[test]
    fn a_gate_without_relays_answers_at_once() {
        let started = Instant::now();
        assert_eq!(StartGate::new().never_started(), None);
        assert!(started.elapsed() < DRAIN_LIMIT);
    }

    #[test]
    fn a_pipe_that_ends_before_the_verdict_waits_for_it() {
        let gate = StartGate::new();
        let (mut write, reader) = gated_pipe(&gate);
        write.write_all(b"quick\n").unwrap();
        drop(write);
        std::thread::sleep(Duration::from_millis(30));
        drop(gate);
        assert_eq!(reader.join().unwrap(), b"quick\n", "a gate dropped without a verdict lets it through");
    }
}
