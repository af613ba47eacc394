//! LaunchPlan → Sandbox: the only stage with effects on the host.
//!
//! `nucleus run` reserves the container's name (writing its record first),
//! writes the bundle, and forks the supervisor into a pid namespace of its
//! own (after a user namespace of its own, with `--rootless`). Then it only
//! passes signals and window changes down, tells systemd when the workload is
//! ready and when it stops, and exits with the supervisor's status.

pub mod control;
mod exec;
mod fdpass;
pub mod lifecycle;
pub mod mounts;
mod netlink;
pub mod network;
pub mod notify;
mod reap;
pub mod runsc;
pub mod stdio;
pub mod supervisor;
pub mod tty;
pub mod views;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::Child;
use std::time::{Duration, Instant};

use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use crate::bundle;
use crate::bundle::output_dir::Accept;
use crate::host::sources::HostSources;
use crate::nix::command::Deadline;
use crate::plan::LaunchPlan;
use crate::state::record::{now_seconds, process_start_time, ContainerRecord, Status};
use crate::state::StateRoot;
use crate::{Error, Result};
use supervisor::{from_parent, to_parent, Inputs};

/// Signals `nucleus run` passes on: to the workload, or (SIGWINCH) as a
/// window change.
pub const FORWARDED: &[Signal] = &[
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// Prints an error the way nucleus reports its own failures: one line.
pub fn report(e: &Error) {
    eprintln!("nucleus: {}", crate::error::printable(&e.to_string()));
}

/// Carries out `plan` and returns the run's exit status.
pub fn launch(
    plan: &LaunchPlan,
    sources: &HostSources,
    state: &StateRoot,
    deadline: Deadline,
    replace: bool,
) -> Result<i32> {
    let container_plan = plan.container.as_ref().ok_or_else(|| Error::Plan { reason: "nothing to launch".into() })?;
    // Before any thread exists, so that only the forwarding thread gets them.
    let signals = block_signals()?;
    let ports = match &container_plan.network {
        crate::plan::NetworkPlan::Sandbox { publish, .. } => publish.clone(),
        _ => Vec::new(),
    };
    let listeners = network::bind_published(&ports)?;
    if container_plan.terminal.tty && !tty::stdin_is_terminal() {
        return Err(Error::invalid("--tty", "stdin is not a terminal; run nucleus from one, or drop -t"));
    }
    let me = std::process::id();
    let record = ContainerRecord {
        id: container_plan.layout.name.clone(),
        status: Status::Creating,
        supervisor_pid: me,
        supervisor_start: process_start_time(me).unwrap_or(0),
        sandbox_pid: None,
        bundle: plan.bundle.layout.dir().to_path_buf(),
        created: now_seconds(),
        digest: plan.bundle.record.digest.to_string(),
        installable: container_plan.installable.clone(),
        command: container_plan.command.clone(),
        cgroups_path: container_plan.cgroups_path.clone(),
        keep: container_plan.keep,
        exit_status: None,
        supervisor: None,
    };
    let container = state.reserve(&record, replace)?;
    tracing::info!(name = %record.id, digest = %record.digest, "reserved the container");
    if let Err(e) = bundle::write(&plan.bundle, Accept::New) {
        let _ = container.discard();
        return Err(e);
    }
    let raw_mode = if container_plan.terminal.tty { Some(tty::RawMode::enter()?) } else { None };
    let in_host_network = network::in_host_network_namespace();
    if let Err(e) = unshare(CloneFlags::CLONE_NEWPID) {
        let _ = container.discard();
        return Err(Error::setup("create a pid namespace", e));
    }
    let pipes = pipe().and_then(|from_parent| Ok((from_parent, pipe()?)));
    let ((from_parent_read, from_parent_write), (to_parent_read, to_parent_write)) = match pipes {
        Ok(pipes) => pipes,
        Err(e) => {
            let _ = container.discard();
            return Err(e);
        }
    };
    let inputs = Inputs {
        plan,
        sources,
        container,
        record,
        deadline,
        in_host_network,
        listeners,
        from_parent: from_parent_read,
        to_parent: to_parent_write,
        terminal_mode: raw_mode.as_ref().map(tty::RawMode::saved),
    };
    let (supervisor, [from_parent_write, to_parent_read]) =
        match fork_supervisor(inputs, [from_parent_write, to_parent_read]) {
            Ok(forked) => forked,
            Err(e) => {
                discard_if_abandoned(plan, container_plan, state, me);
                return Err(e);
            }
        };
    // The supervisor waits for its own pid as this namespace sees it, to
    // put in the record before it does anything.
    let mut hello = vec![from_parent::HELLO];
    hello.extend_from_slice(&(supervisor.as_raw() as u32).to_le_bytes());
    let _ = nix::unistd::write(&from_parent_write, &hello);
    let code = parent(supervisor, signals, from_parent_write, to_parent_read);
    drop(raw_mode);
    discard_if_abandoned(plan, container_plan, state, me);
    code
}

/// After the supervisor has ended: it records how the run ended and cleans
/// up after itself, unless it was killed. Its record then still says
/// creating or running, and names this process, which is alive, so no
/// one else would ever take it for dead before this process exits: discard
/// it here, with what runsc made for it, once the mounts the supervisor
/// made in this process's namespace are detached. A record that names
/// another process belongs to a later run of the same name and is left
/// alone.
fn discard_if_abandoned(plan: &LaunchPlan, container_plan: &crate::plan::ContainerPlan, state: &StateRoot, me: u32) {
    let Ok(container) = state.container(&container_plan.layout.name) else { return };
    let Some(record) = container.record() else { return };
    let ours = record.supervisor_pid == me && Some(record.supervisor_start) == process_start_time(me);
    if ours && record.status != Status::Stopped {
        supervisor::detach_staged(plan, container_plan);
        if let Err(e) = container.discard() {
            report(&e);
        }
    }
}

/// Takes `nucleus run` into a mount namespace of its own (after a user
/// namespace of its own, with `--rootless`, where the caller is root), before
/// it opens the host sources: a mount can only be bound from a descriptor of
/// the caller's own mount namespace, so the sources must be opened there,
/// and everything the supervisor mounts from them stays out of the host's
/// mount table. Call it while the process is single-threaded.
pub fn enter_private_mounts(user_namespace: bool) -> Result<()> {
    if user_namespace {
        let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
        unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| Error::setup("create a user namespace", e))?;
        let write = |file: &str, text: String| {
            std::fs::write(format!("/proc/self/{file}"), text).map_err(|e| Error::setup(format!("write {file}"), e))
        };
        write("setgroups", "deny".into())?;
        write("uid_map", format!("0 {uid} 1"))?;
        write("gid_map", format!("0 {gid} 1"))?;
    }
    mounts::make_private()
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::setup("create a pipe", e))
}

/// Forks the supervisor, pid 1 of the new pid namespace. Only here may the
/// process fork without exec. `parent_ends` are this process's ends of the
/// pipes to the supervisor: the supervisor closes its copies at once, so
/// that its end sees EOF exactly when `nucleus run` is gone.
fn fork_supervisor(inputs: Inputs<'_>, parent_ends: [OwnedFd; 2]) -> Result<(Pid, [OwnedFd; 2])> {
    // SAFETY: nucleus has started no thread yet (signals are blocked before
    // any, the Nix queries' reader threads have been joined), so the child
    // is a whole copy of a single-threaded process: it may allocate, lock
    // and run any code, as any process may.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(parent_ends);
            std::process::exit(supervisor::run(inputs))
        }
        Ok(ForkResult::Parent { child }) => Ok((child, parent_ends)),
        Err(e) => Err(Error::setup("start the supervisor", e)),
    }
}

/// `nucleus run` after the fork: forwards signals, relays events, and
/// returns the supervisor's exit status.
///
/// It has made a pid namespace for its children, and the kernel lets such a
/// process start no thread: so one loop polls the signals (a signalfd), the
/// supervisor's events and its end (a pidfd).
fn parent(supervisor: Pid, signals: SigSet, from_parent: OwnedFd, to_parent: OwnedFd) -> Result<i32> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    let signal_fd =
        SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC).map_err(|e| Error::setup("watch signals", e))?;
    let ended = rustix::process::Pid::from_raw(supervisor.as_raw())
        .map(|pid| rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()))
        .ok_or_else(|| Error::setup("watch the supervisor", std::io::Error::other("no such process")))?
        .map_err(|e| Error::setup("watch the supervisor", e))?;
    let mut to_supervisor = File::from(from_parent);
    let mut events = File::from(to_parent);
    let mut notifier = notify::Notifier::from_env();
    let mut events_open = true;
    loop {
        let mut fds = [
            PollFd::new(signal_fd.as_fd(), PollFlags::POLLIN),
            PollFd::new(events.as_fd(), if events_open { PollFlags::POLLIN } else { PollFlags::empty() }),
            PollFd::new(ended.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Error::setup("wait for the supervisor", e)),
        }
        let ready = |i: usize| fds[i].revents().is_some_and(|r| !r.is_empty());
        let (signal_ready, event_ready, supervisor_ended) = (ready(0), ready(1), ready(2));
        if signal_ready {
            if let Ok(Some(info)) = signal_fd.read_signal() {
                let signal = info.ssi_signo as u8;
                let message: &[u8] = if i32::from(signal) == Signal::SIGWINCH as i32 {
                    &[from_parent::WINDOW]
                } else {
                    &[from_parent::SIGNAL, signal]
                };
                let _ = to_supervisor.write_all(message);
            }
        }
        if event_ready {
            events_open = relay_event(&mut events, &mut notifier);
        }
        if supervisor_ended {
            while events_open {
                events_open = relay_event(&mut events, &mut notifier);
            }
            return supervisor_status(supervisor);
        }
    }
}

/// Reads one event and tells systemd; false at the end of the pipe.
fn relay_event(events: &mut File, notifier: &mut notify::Notifier) -> bool {
    let mut byte = [0u8; 1];
    match events.read(&mut byte) {
        Ok(1) => {
            match byte[0] {
                to_parent::READY => notifier.ready(),
                to_parent::STOPPING => notifier.stopping(),
                _ => {}
            }
            true
        }
        _ => false,
    }
}

fn supervisor_status(supervisor: Pid) -> Result<i32> {
    loop {
        match waitpid(supervisor, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, signal, _)) => {
                return Err(Error::SandboxDied { reason: format!("its supervisor was killed by {signal}") })
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::setup("wait for the supervisor", e)),
        }
    }
}

/// Blocks the forwarded signals in this thread; threads started later
/// inherit the mask, so only the forwarding thread ever receives them.
pub fn block_signals() -> Result<SigSet> {
    crate::interrupt::block(FORWARDED)
}

/// Waits at most `limit` for a short-lived runsc call; its stdout, or its
/// last line of stderr as the error.
pub fn bounded_output(mut child: Child, limit: Duration, what: &str) -> Result<String> {
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::runsc(format!("`{what}` did not answer within {} s", limit.as_secs())));
            }
            Err(e) => return Err(Error::runsc(format!("cannot wait for `{what}`: {e}"))),
        }
    };
    call_outcome(&mut child, status.success(), what)
}

/// An ended runsc call's stdout when it `succeeded`, else the last line of
/// its stderr as the error.
pub fn call_outcome(child: &mut Child, succeeded: bool, what: &str) -> Result<String> {
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    if succeeded {
        Ok(stdout)
    } else {
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message").trim();
        Err(Error::runsc(format!("`{what}` failed: {last}")))
    }
}
