//! Starting `runsc run`, relaying its output, forwarding signals, and turning
//! its end into the workload's exit status.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, SigmaskHow, Signal};

use super::runsc::{Globals, Runsc};
use crate::{Error, Result};

/// Signals that `nucleus run` passes on to the workload.
pub const FORWARDED: &[Signal] =
    &[Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGQUIT, Signal::SIGUSR1, Signal::SIGUSR2];

/// How long a timed-out workload has between TERM and KILL.
pub const TIMEOUT_GRACE: Duration = Duration::from_secs(5);

/// Exit status when `--timeout` expired, as coreutils' timeout(1) does.
pub const EXIT_TIMEOUT: i32 = 124;

/// Blocks the forwarded signals (and SIGALRM, the timeout clock) in this
/// thread; threads started later inherit the mask, so only the forwarding
/// thread ever receives them. Call before starting any thread.
pub fn block_signals() -> Result<SigSet> {
    let mut set = SigSet::empty();
    for sig in FORWARDED.iter().chain([&Signal::SIGALRM]) {
        set.add(*sig);
    }
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .map_err(|e| Error::Runsc(format!("cannot block signals: {e}")))?;
    Ok(set)
}

/// How the supervised runsc ended.
pub struct Outcome {
    pub status: std::process::ExitStatus,
    pub timed_out: bool,
    /// runsc did not take a signal and its process group was killed; parts
    /// of the sandbox may still be on their way out.
    pub forced: bool,
}

pub struct Launch<'a> {
    pub runsc: &'a Runsc,
    pub globals: &'a Globals,
    pub bundle: &'a std::path::Path,
    pub id: &'a str,
    pub timeout: Option<Duration>,
}

impl Launch<'_> {
    /// Runs the container to completion. `signals` must be the set returned
    /// by [`block_signals`]. `on_started` gets runsc's pid once it runs.
    pub fn run(&self, signals: SigSet, on_started: impl FnOnce(u32)) -> Result<Outcome> {
        let mut command = self.runsc.command(self.globals);
        command.arg("run").arg("--bundle").arg(self.bundle).arg(self.id);
        // Pipes, not our stdout/stderr: runsc writes a regular file from
        // offset 0, which would overwrite what the user redirected into.
        command.stdin(Stdio::inherit()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let parent = std::process::id();
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                // A terminal's Ctrl-C goes to nucleus, which forwards it
                // through `runsc kill`; runsc itself would tear the sandbox
                // down behind the workload's back.
                if libc::setpgid(0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // If nucleus dies, even by SIGKILL, runsc and its sandbox go too.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // nucleus may have died before the line above took effect.
                if libc::getppid() as u32 != parent {
                    libc::_exit(125);
                }
                Ok(())
            });
        }
        let mut child = spawn(&mut command, self.runsc)?;
        on_started(child.id());
        let relays = relay_output(&mut child);
        let timed_out = Arc::new(AtomicBool::new(false));
        let forced = Arc::new(AtomicBool::new(false));
        let finished = Arc::new(AtomicBool::new(false));
        let forwarder = Forwarder {
            runsc: self.runsc.clone(),
            globals: self.globals.clone(),
            id: self.id.to_string(),
            runsc_pid: child.id() as i32,
            timed_out: Arc::clone(&timed_out),
            forced: Arc::clone(&forced),
            finished: Arc::clone(&finished),
        };
        if let Some(timeout) = self.timeout {
            // Round up: a timeout never fires early.
            nix::unistd::alarm::set(timeout.as_secs().max(1) as u32);
        }
        thread::spawn(move || forwarder.run(signals));
        let status = child.wait().map_err(|e| Error::Runsc(format!("cannot wait for runsc: {e}")))?;
        finished.store(true, Ordering::SeqCst);
        nix::unistd::alarm::cancel();
        for relay in relays {
            let _ = relay.join();
        }
        Ok(Outcome { status, timed_out: timed_out.load(Ordering::SeqCst), forced: forced.load(Ordering::SeqCst) })
    }
}

fn spawn(command: &mut Command, runsc: &Runsc) -> Result<Child> {
    command.spawn().map_err(|e| Error::Runsc(format!("cannot start {}: {e}", runsc.binary.display())))
}

/// Copies runsc's stdout and stderr to ours until both close.
fn relay_output(child: &mut Child) -> Vec<thread::JoinHandle<()>> {
    let mut handles = Vec::new();
    if let Some(out) = child.stdout.take() {
        handles.push(thread::spawn(move || copy_all(out, std::io::stdout())));
    }
    if let Some(err) = child.stderr.take() {
        handles.push(thread::spawn(move || copy_all(err, std::io::stderr())));
    }
    handles
}

/// Copies until EOF. If our side goes away (a closed pipe), keeps draining
/// so the workload is not blocked on a full pipe.
fn copy_all(mut from: impl Read, to: impl Write) {
    let mut to = Some(to);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if let Some(w) = to.as_mut() {
                    if w.write_all(&buf[..n]).and_then(|_| w.flush()).is_err() {
                        to = None;
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
}

/// Waits for signals and hands them to the workload through `runsc kill`.
struct Forwarder {
    runsc: Runsc,
    globals: Globals,
    id: String,
    runsc_pid: i32,
    timed_out: Arc<AtomicBool>,
    forced: Arc<AtomicBool>,
    finished: Arc<AtomicBool>,
}

impl Forwarder {
    fn run(self, signals: SigSet) {
        loop {
            let Ok(signal) = signals.wait() else { continue };
            if self.finished.load(Ordering::SeqCst) {
                return;
            }
            let to_send = if signal == Signal::SIGALRM {
                if self.timed_out.swap(true, Ordering::SeqCst) {
                    Signal::SIGKILL
                } else {
                    nix::unistd::alarm::set(TIMEOUT_GRACE.as_secs() as u32);
                    Signal::SIGTERM
                }
            } else {
                signal
            };
            tracing::debug!(?to_send, "forwarding signal to the workload");
            self.deliver(to_send);
        }
    }

    /// The container may not exist yet if the signal came early, and a
    /// wedged runsc may not answer at all: retry for a moment, then stop
    /// the sandbox the hard way.
    fn deliver(&self, signal: Signal) {
        let running = || !self.finished.load(Ordering::SeqCst);
        let delivered = self.runsc.kill(&self.globals, &self.id, signal, Duration::from_secs(2), running);
        if delivered.is_err() && running() {
            tracing::warn!("runsc did not take {signal}; stopping the sandbox");
            self.forced.store(true, Ordering::SeqCst);
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(self.runsc_pid), Signal::SIGKILL);
        }
    }
}

/// Kills whatever is left of a sandbox whose runsc was killed: every
/// process started with `--root=<runsc_root>` (only ours carry that path),
/// then waits for them to go.
pub fn reap_strays(runsc_root: &std::path::Path) {
    let marker = format!("--root={}", runsc_root.display());
    let strays = || -> Vec<i32> {
        let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == marker.as_bytes()))
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = strays();
        if left.is_empty() || Instant::now() > deadline {
            return;
        }
        for pid in left {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The exit status `nucleus run` reports for runsc's end: the workload's
/// status, `128+N` for a signal, 124 after a timeout.
pub fn exit_code(outcome: &Outcome) -> i32 {
    if outcome.timed_out {
        return EXIT_TIMEOUT;
    }
    match (outcome.status.code(), outcome.status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        _ => crate::error::EXIT_NUCLEUS_FAILED,
    }
}
