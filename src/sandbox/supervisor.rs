//! The supervisor: the process that carries out a container's launch plan.
//!
//! It is pid 1 of a pid namespace of its own, forked by `nucleus run`, and
//! so the reaper of everything runsc starts: when it ends, for any reason,
//! SIGKILL included, the kernel kills every process left in the namespace,
//! and its private mount namespace (the store view, the staged sources, the
//! secrets) goes with it. When `nucleus run` is killed, the supervisor sees
//! the end of its pipe from it, kills the workload and cleans up as after
//! any end (until that watch runs, PDEATHSIG kills it instead). As pid 1 it
//! ignores every signal it has no handler for, so a terminal's Ctrl-C
//! reaches it only as a message from `nucleus run`.
//!
//! ```text
//! prepare (network, mounts) ─► boot (runsc run --detach) ─► running ─► ended ─► cleaned up
//! ```
//!
//! The workload has started exactly when `runsc run --detach` succeeded;
//! every failure before that is runsc's (125, with the cause from its log).
//! The sandbox process is then the supervisor's child, and its exit status
//! is the workload's.

use std::fs::File;
use std::io::Read;
use std::net::TcpListener;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::reap::{kill_everything, ReapGate};
use super::runsc::{failure_cause, logged_errors, RunscFlags};
use super::{control, exec, mounts, network, stdio, tty};
use crate::host::sources::HostSources;
use crate::nix::command::Deadline;
use crate::plan::{ContainerPlan, LaunchPlan, NetworkPlan, StagedKind, StorePlan};
use crate::request::PortMapping;
use crate::state::record::{ContainerRecord, ProcessRef, Status};
use crate::state::Container;
use crate::{Error, Result};

/// How long a timed-out workload has between TERM and KILL.
pub const TIMEOUT_GRACE: Duration = Duration::from_secs(5);

/// How long a runsc control call may take: runsc can block on a container
/// it has wedged (a hook that timed out, for one).
pub const CONTROL_CALL_LIMIT: Duration = Duration::from_secs(5);

/// Messages from `nucleus run` to the supervisor, one byte each.
pub mod from_parent {
    /// The first message, followed by the supervisor's own pid as
    /// `nucleus run` sees it (4 bytes, little-endian).
    pub const HELLO: u8 = b'h';
    /// Followed by a signal number byte: forward this signal.
    pub const SIGNAL: u8 = b's';
    /// The terminal's size changed.
    pub const WINDOW: u8 = b'w';
}

/// Events from the supervisor to `nucleus run`, one byte each.
pub mod to_parent {
    /// The workload runs (and its `--ready-tcp` port accepts).
    pub const READY: u8 = b'R';
    /// The workload is being stopped, or has ended.
    pub const STOPPING: u8 = b'S';
}

/// What the supervisor is handed at the fork.
pub struct Inputs<'a> {
    pub plan: &'a LaunchPlan,
    pub sources: &'a HostSources,
    pub container: Container,
    pub record: ContainerRecord,
    pub deadline: Deadline,
    pub in_host_network: bool,
    pub listeners: Vec<(PortMapping, TcpListener)>,
    pub from_parent: OwnedFd,
    pub to_parent: OwnedFd,
    /// The terminal's mode before `nucleus run` made it raw (with `-t`),
    /// restored here if `nucleus run` is killed.
    pub terminal_mode: Option<nix::sys::termios::Termios>,
}

/// State shared by the supervisor's threads.
pub struct Shared {
    pub runsc: RunscFlags,
    pub plan: ContainerPlanView,
    /// Where the workload is; every signal for it goes through this lock.
    phase: Mutex<Phase>,
    /// Signalled when the phase changes.
    phase_changed: std::sync::Condvar,
    timed_out: AtomicBool,
    /// `nucleus run` is gone: nothing is reported, there is no one to tell.
    orphaned: AtomicBool,
    to_parent: Mutex<File>,
    /// See [`Inputs::terminal_mode`].
    terminal_mode: Mutex<Option<nix::sys::termios::Termios>>,
    window: Mutex<Option<OwnedFd>>,
    /// Threads' children against the final `waitpid(-1)`.
    pub reaping: ReapGate,
}

/// Where the workload is in its life, as the signals sent to it see it.
///
/// Signals come from `nucleus run` (the caller's), from `nucleus kill`
/// (the control socket), from the output relays (SIGPIPE) and from the
/// timeout. One lock orders each of them against the moment the workload
/// starts, so none is lost between "still booting" and "running".
#[derive(Debug)]
enum Phase {
    /// runsc is starting the sandbox. Signals wait here, in order; a stop
    /// signal among them also aborts the boot if it is still under way.
    Booting { pending: Vec<Delivery> },
    /// The workload runs: signals go to it at once.
    Running,
    /// The workload has ended, or the boot failed: nothing more is sent.
    Stopping,
}

/// One signal for the workload: its first process, or every process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Delivery {
    signal: Signal,
    all: bool,
}

/// The signals that end a run: during the boot they abort it, and systemd
/// hears STOPPING=1 when they are sent to a running workload.
fn stops(signal: Signal) -> bool {
    matches!(signal, Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP | Signal::SIGQUIT | Signal::SIGKILL)
}

/// The parts of the plan the threads need.
pub struct ContainerPlanView {
    pub name: String,
    /// The id runsc knows the container by (see `ContainerLayout`).
    pub runsc_id: String,
    pub dir: PathBuf,
    /// The container's directory, open: sockets are bound through it, so
    /// their paths stay short whatever the state root's length.
    pub dir_fd: OwnedFd,
    pub user: (u32, u32),
}

/// Runs the plan and returns the process's exit status. Errors are printed
/// here, as `nucleus run` would print them.
pub fn run(mut inputs: Inputs<'_>) -> i32 {
    let Some(plan) = inputs.plan.container.as_ref() else { return crate::error::EXIT_NUCLEUS_FAILED };
    let (Ok(to_parent), Ok(dir_fd)) = (inputs.to_parent.try_clone(), inputs.container.dir().fd().try_clone_to_owned())
    else {
        return crate::error::EXIT_NUCLEUS_FAILED;
    };
    let shared = Arc::new(Shared {
        runsc: plan.runsc.clone(),
        plan: ContainerPlanView {
            name: plan.layout.name.clone(),
            runsc_id: plan.layout.runsc_id.clone(),
            dir: plan.layout.dir.clone(),
            dir_fd,
            user: plan.user,
        },
        phase: Mutex::new(Phase::Booting { pending: Vec::new() }),
        phase_changed: std::sync::Condvar::new(),
        timed_out: AtomicBool::new(false),
        orphaned: AtomicBool::new(false),
        to_parent: Mutex::new(File::from(to_parent)),
        terminal_mode: Mutex::new(inputs.terminal_mode.clone()),
        window: Mutex::new(None),
        reaping: ReapGate::default(),
    });
    let mut record = inputs.record.clone();
    let listeners = std::mem::take(&mut inputs.listeners);
    let outcome = supervise(&inputs, listeners, plan, &shared, &mut record);
    let code = match outcome {
        Ok(code) => code,
        Err(e) => {
            if !shared.orphaned.load(Ordering::SeqCst) {
                super::report(&e);
            }
            e.exit_status()
        }
    };
    shared.stop();
    shared.event(to_parent::STOPPING);
    clean_up(inputs.plan, plan, &shared, &inputs.container, &mut record, code);
    code
}

fn supervise(
    inputs: &Inputs<'_>,
    listeners: Vec<(PortMapping, TcpListener)>,
    plan: &ContainerPlan,
    shared: &Arc<Shared>,
    record: &mut ContainerRecord,
) -> Result<i32> {
    record.supervisor = hello(&inputs.from_parent, shared)?;
    inputs.container.write_record(record)?;
    guard_parent(&inputs.from_parent, shared)?;
    // In `nucleus run`'s private mount namespace, where the sources were
    // opened: only there can they be mounted from their descriptors.
    prepare_filesystem(plan, inputs.sources)?;
    let link = network::prepare(&plan.network, inputs.in_host_network)?;
    mounts::enter_supervisor_namespace()?;
    // In the supervisor's own namespace, so its many mounts are never
    // copied from another; before any thread starts, because a kept view
    // is reached with setns, which a threaded process may not call.
    if let StorePlan::View { view, entries } = &inputs.plan.store {
        mounts::prepare_store_view(view, entries)?;
    }
    if matches!(plan.network, NetworkPlan::Sandbox { .. }) {
        mounts::hide_root_network_marker()?;
    }
    let messages = Arc::clone(shared);
    let from_parent = inputs.from_parent.try_clone().map_err(|e| Error::setup("duplicate a pipe", e))?;
    std::thread::spawn(move || relay_parent_messages(from_parent, messages));
    // From here on the thread above notices `nucleus run`'s end, and the
    // run ends as any other, cleaned up (the control socket appears only
    // once this holds).
    nix::sys::prctl::set_pdeathsig(None).map_err(|e| Error::setup("untie the supervisor from nucleus", e))?;
    let listener = control::listen(inputs.container.dir()).map_err(|e| Error::setup("open the control socket", e))?;
    let server = Arc::clone(shared);
    std::thread::spawn(move || exec::serve(listener, server));
    if let Some(link) = &link {
        link.forward(listeners)?;
    }
    let errors_before = logged_errors(&plan.layout.runsc_log()).len();
    let started = boot(plan, shared, inputs.container.dir(), &inputs.deadline)?;
    record.status = Status::Running;
    record.sandbox_pid = Some(started.pid.as_raw() as u32);
    // The workload runs: a full disk must not end it, nor take its status.
    if let Err(e) = inputs.container.write_record(record) {
        tracing::warn!("{e}; `nucleus ps` shows the container as being created");
    }
    announce_ready(plan, shared, link.as_ref());
    if let Some(remaining) = inputs.deadline.remaining() {
        let timer = Arc::clone(shared);
        std::thread::spawn(move || enforce_timeout(timer, remaining, started.pid));
    }
    let status = wait_for_sandbox(started.pid);
    shared.stop();
    shared.event(to_parent::STOPPING);
    started.output.finish();
    tracing::info!(?status, "the sandbox ended");
    let code = exit_code(shared, status, &logged_errors(&plan.layout.runsc_log())[errors_before..])?;
    record.exit_status = Some(code);
    Ok(code)
}

/// Waits for `nucleus run`'s first message: this process's pid in its
/// namespace, from which the record learns who to judge alive. If
/// `nucleus run` is gone before it could say it, the run ends here.
fn hello(from_parent: &OwnedFd, shared: &Shared) -> Result<Option<ProcessRef>> {
    let mut message = [0u8; 5];
    let mut pipe = File::from(from_parent.try_clone().map_err(|e| Error::setup("duplicate a pipe", e))?);
    if pipe.read_exact(&mut message).is_err() || message[0] != from_parent::HELLO {
        shared.orphaned.store(true, Ordering::SeqCst);
        return Err(Error::SandboxDied { reason: "nucleus run is gone".into() });
    }
    let pid = u32::from_le_bytes([message[1], message[2], message[3], message[4]]);
    // /proc is still nucleus run's here, where that pid is this process.
    Ok(ProcessRef::of(pid))
}

/// Until the thread that reads `nucleus run`'s messages runs, dies with
/// `nucleus run` (SIGKILL when it goes); if it is already gone (it died
/// before that took effect), the run ends here, cleaned up.
fn guard_parent(from_parent: &OwnedFd, shared: &Shared) -> Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| Error::setup("tie the supervisor to nucleus", e))?;
    let mut fds = [nix::poll::PollFd::new(from_parent.as_fd(), nix::poll::PollFlags::POLLIN)];
    let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO);
    let hung_up = fds[0].revents().is_some_and(|r| r.contains(nix::poll::PollFlags::POLLHUP));
    if hung_up {
        shared.orphaned.store(true, Ordering::SeqCst);
        return Err(Error::SandboxDied { reason: "nucleus run is gone".into() });
    }
    Ok(())
}

/// How long the supervisor of a `nucleus run` that is gone gives the
/// workload's end, then the final sweep, before it gives up on cleaning.
const ORPHAN_LIMIT: Duration = Duration::from_secs(10);

/// The staged host sources and the secrets, mounted under the bundle in
/// `nucleus run`'s private mount namespace.
fn prepare_filesystem(plan: &ContainerPlan, sources: &HostSources) -> Result<()> {
    for staged in &plan.staged {
        let opened = match staged.source {
            StagedKind::Volume(i) => sources.volumes.get(i),
            StagedKind::Context => sources.context.as_ref(),
        };
        let opened = opened.ok_or_else(|| Error::Plan { reason: "a staged source was never opened".into() })?;
        mounts::stage_source(opened, &staged.target, staged.writable)?;
    }
    if let Some(dir) = &plan.secrets_dir {
        mounts::stage_secrets(dir, &plan.secrets, &sources.secrets)?;
    }
    Ok(())
}

/// A booted sandbox: its pid (in this pid namespace), and its output.
struct Started {
    pid: Pid,
    output: Output,
}

enum Output {
    Pipes(stdio::Relays),
    Terminal(std::thread::JoinHandle<()>),
}

impl Output {
    fn finish(self) {
        match self {
            Output::Pipes(relays) => relays.finish(),
            Output::Terminal(relay) => {
                let _ = relay.join();
            }
        }
    }
}

/// `runsc run --detach`, bounded by the boot timeout; on success the
/// workload runs.
fn boot(
    plan: &ContainerPlan,
    shared: &Arc<Shared>,
    dir: &crate::bundle::SafeDir,
    deadline: &Deadline,
) -> Result<Started> {
    let console = if plan.terminal.tty {
        let path = format!(
            "/proc/self/fd/{}/{}",
            std::os::fd::AsRawFd::as_raw_fd(&dir.fd()),
            crate::state::layout::CONSOLE_SOCKET
        );
        Some(UnixListener::bind(path).map_err(|e| Error::setup("open the console socket", e))?)
    } else {
        None
    };
    let broken = Arc::clone(shared);
    let gate = console.is_none().then(stdio::StartGate::new);
    let (io, relays) = match &gate {
        None => ([Stdio::null(), Stdio::null(), Stdio::null()], None),
        Some(gate) => {
            let on_broken: stdio::OnBrokenPipe = Arc::new(move || broken.raise_broken_pipe());
            let (io, relays) = stdio::piped(plan.terminal.interactive, on_broken, gate)?;
            (io.into_stdio(), Some(relays))
        }
    };
    let [stdin, stdout, stderr] = io;
    let mut cmd = shared.runsc.command(&plan.runsc.run_args(&plan.layout, console.is_some()));
    cmd.stdin(stdin).stdout(stdout).stderr(stderr).current_dir(&plan.layout.dir);
    tracing::info!(name = %plan.layout.name, "starting the sandbox");
    let child =
        cmd.spawn().map_err(|e| Error::runsc(format!("cannot start {}: {e}", shared.runsc.binary.display())))?;
    drop(cmd);
    if let Err(failure) = wait_for_boot(child, plan, shared, deadline) {
        // What runsc wrote on the workload's stderr is said once, below.
        let said = gate.as_ref().and_then(stdio::StartGate::never_started);
        return Err(failure.into_error(said));
    }
    if let Some(gate) = &gate {
        gate.started();
    }
    let pid = read_sandbox_pid(plan)?;
    shared.begin_running();
    let output = match (console, relays) {
        (Some(listener), _) => {
            let master = tty::receive_master(&listener)?;
            tty::copy_window_size(&master);
            *shared.window.lock().unwrap_or_else(|p| p.into_inner()) = master.try_clone().ok();
            Output::Terminal(tty::relay(master, plan.terminal.interactive)?)
        }
        (None, Some(relays)) => Output::Pipes(relays),
        (None, None) => return Err(Error::Plan { reason: "the workload has no output".into() }),
    };
    Ok(Started { pid, output })
}

/// How `runsc run --detach` failed.
enum BootFailure {
    /// runsc exited unsuccessfully; the cause it logged, if any.
    Exited { status: std::process::ExitStatus, logged: Option<String> },
    /// nucleus stopped it, or could not watch it.
    Stopped(Error),
}

impl BootFailure {
    /// The error to report; `said` is the last line runsc wrote on stderr,
    /// the cause when its log has none (a runsc that cannot open its log).
    fn into_error(self, said: Option<String>) -> Error {
        match self {
            BootFailure::Exited { logged: Some(cause), .. } => Error::runsc(cause),
            BootFailure::Exited { status, logged: None } => {
                Error::runsc(said.unwrap_or_else(|| format!("runsc exited with {status}")))
            }
            BootFailure::Stopped(e) => e,
        }
    }
}

/// Waits for `runsc run --detach`, at most the boot timeout and never past
/// the run's `--timeout`.
fn wait_for_boot(
    mut child: Child,
    plan: &ContainerPlan,
    shared: &Arc<Shared>,
    run_deadline: &Deadline,
) -> Result<(), BootFailure> {
    let deadline = Instant::now() + plan.boot_timeout;
    let exited = exit_notifier(&child);
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(BootFailure::Exited { status, logged: failure_cause(&plan.layout.runsc_log()) });
            }
            Ok(None) => {}
            Err(e) => return Err(BootFailure::Stopped(Error::runsc(format!("cannot wait for runsc: {e}")))),
        }
        let aborted = shared.abort_requested();
        if aborted.is_some() || Instant::now() >= deadline || run_deadline.expired() {
            kill_everything();
            let _ = child.wait();
            if run_deadline.expired() {
                return Err(BootFailure::Stopped(run_deadline.timeout_error("runsc (starting the sandbox)")));
            }
            if let Some(signal) = aborted {
                return Err(BootFailure::Stopped(Error::Interrupted {
                    signal: signal.to_string(),
                    during: "before the sandbox started".into(),
                }));
            }
            return Err(BootFailure::Stopped(Error::runsc(format!(
                "the sandbox did not start within {} s (--boot-timeout); with --platform kvm, check that \
                 /dev/kvm works here, or use --platform ptrace",
                plan.boot_timeout.as_secs()
            ))));
        }
        wait_a_little(exited.as_ref());
    }
}

/// A descriptor that becomes readable when `child` exits (a pidfd), so the
/// boot is seen the moment it ends, not at the next tick.
fn exit_notifier(child: &Child) -> Option<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(child.id() as i32)?;
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
}

/// Until `exited` is readable, or for one tick (which also bounds how late
/// an abort or a deadline is noticed). Without a pidfd, one short tick.
fn wait_a_little(exited: Option<&OwnedFd>) {
    const TICK: Duration = Duration::from_millis(50);
    match exited {
        Some(fd) => {
            let mut fds = [nix::poll::PollFd::new(fd.as_fd(), nix::poll::PollFlags::POLLIN)];
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(TICK.as_millis() as u16));
        }
        None => std::thread::sleep(Duration::from_millis(5)),
    }
}

fn read_sandbox_pid(plan: &ContainerPlan) -> Result<Pid> {
    let file = plan.layout.sandbox_pid_file();
    let text = std::fs::read_to_string(&file)
        .map_err(|e| Error::runsc(format!("wrote no pid file {}: {e}", file.display())))?;
    text.trim()
        .parse::<i32>()
        .ok()
        .filter(|p| *p > 1)
        .map(Pid::from_raw)
        .ok_or_else(|| Error::runsc(format!("wrote '{}' as the sandbox's pid", text.trim())))
}

/// READY=1 now, or once `--ready-tcp` accepts (not at all if the workload
/// ends first).
fn announce_ready(plan: &ContainerPlan, shared: &Arc<Shared>, link: Option<&network::Link>) {
    match (&plan.network, link) {
        (NetworkPlan::Sandbox { ready_tcp: Some(port), .. }, Some(link)) => {
            let probe = Arc::clone(shared);
            let done = Arc::clone(shared);
            link.when_accepting(*port, move || !probe.is_running(), move || done.event(to_parent::READY));
        }
        _ => shared.event(to_parent::READY),
    }
}

fn wait_for_sandbox(pid: Pid) -> Option<WaitStatus> {
    loop {
        match waitpid(pid, None) {
            Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => return Some(status),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
}

/// The run's exit status: 124 after `--timeout`; the workload's status,
/// which the sandbox exits with (128+N for signal N); a sandbox killed by
/// a signal, or failing with an error in runsc's log, is not the
/// workload's doing.
fn exit_code(shared: &Shared, status: Option<WaitStatus>, new_errors: &[String]) -> Result<i32> {
    if shared.timed_out.load(Ordering::SeqCst) {
        return Ok(crate::error::EXIT_TIMEOUT);
    }
    match status {
        Some(WaitStatus::Exited(_, 128)) if !new_errors.is_empty() => {
            Err(Error::SandboxDied { reason: new_errors.last().cloned().unwrap_or_default() })
        }
        Some(WaitStatus::Exited(_, code)) => Ok(code),
        Some(WaitStatus::Signaled(_, signal, _)) => {
            Err(Error::SandboxDied { reason: format!("runsc's sandbox process was killed by {signal}") })
        }
        _ => Err(Error::SandboxDied { reason: "its exit status could not be read".into() }),
    }
}

fn enforce_timeout(shared: Arc<Shared>, after: Duration, sandbox: Pid) {
    std::thread::sleep(after);
    if !shared.is_running() {
        return;
    }
    shared.timed_out.store(true, Ordering::SeqCst);
    eprintln!("nucleus: --timeout expired; stopping the workload");
    shared.send_or_warn(Signal::SIGTERM, false);
    std::thread::sleep(TIMEOUT_GRACE);
    if shared.is_running() {
        let _ = kill(sandbox, Signal::SIGKILL);
    }
}

/// Signals and window changes from `nucleus run`; at the end of the pipe,
/// `nucleus run` is gone (killed), and so must the container be.
fn relay_parent_messages(from_parent: OwnedFd, shared: Arc<Shared>) {
    let mut pipe = File::from(from_parent);
    let mut byte = [0u8; 1];
    loop {
        match pipe.read(&mut byte) {
            Ok(1) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            _ => return shared.parent_gone(),
        }
        match byte[0] {
            from_parent::SIGNAL => {
                if pipe.read_exact(&mut byte).is_err() {
                    return;
                }
                let Ok(signal) = Signal::try_from(i32::from(byte[0])) else { continue };
                shared.send_or_warn(signal, false);
            }
            from_parent::WINDOW => {
                if let Some(master) = shared.window.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                    tty::copy_window_size(master);
                }
            }
            _ => {}
        }
    }
}

impl Shared {
    pub fn is_running(&self) -> bool {
        matches!(*self.phase(), Phase::Running)
    }

    /// Whether the workload has ended, waiting up to `limit` for it: a
    /// `runsc exec` whose sandbox goes down under it can fail before this
    /// supervisor has seen the sandbox end.
    pub fn ends_within(&self, limit: Duration) -> bool {
        let phase = self.phase();
        let (phase, _) = self
            .phase_changed
            .wait_timeout_while(phase, limit, |p| !matches!(p, Phase::Stopping))
            .unwrap_or_else(|p| p.into_inner());
        matches!(*phase, Phase::Stopping)
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn event(&self, event: u8) {
        use std::io::Write;
        let _ = self.to_parent.lock().unwrap_or_else(|p| p.into_inner()).write_all(&[event]);
    }

    /// Sends `signal` to the workload (every process with `all`): now if it
    /// runs; once it runs if it is booting (a stop signal also aborts a
    /// boot still under way). Refused once the workload has ended.
    pub fn send(&self, signal: Signal, all: bool) -> Result<()> {
        let mut phase = self.phase();
        match &mut *phase {
            Phase::Booting { pending } => {
                pending.push(Delivery { signal, all });
                Ok(())
            }
            Phase::Running => {
                drop(phase);
                self.deliver(Delivery { signal, all })
            }
            Phase::Stopping => Err(Error::runsc("the container is not running".to_string())),
        }
    }

    /// The stop signal that should abort the boot, if one came.
    fn abort_requested(&self) -> Option<Signal> {
        match &*self.phase() {
            Phase::Booting { pending } => pending.iter().map(|d| d.signal).find(|s| stops(*s)),
            _ => None,
        }
    }

    /// The workload has started: from now on signals go to it, beginning
    /// with those that came while it booted, in their order.
    fn begin_running(&self) {
        let before = std::mem::replace(&mut *self.phase(), Phase::Running);
        self.phase_changed.notify_all();
        if let Phase::Booting { pending } = before {
            for delivery in pending {
                if let Err(e) = self.deliver(delivery) {
                    tracing::warn!("cannot send {} to the workload: {e}", delivery.signal);
                }
            }
        }
    }

    /// The workload has ended (or never started): nothing more is sent.
    fn stop(&self) {
        *self.phase() = Phase::Stopping;
        self.phase_changed.notify_all();
    }

    /// SIGPIPE for a workload whose reader went away, returning once it
    /// is delivered (after the boot, if that is still under way): until
    /// then the relay keeps the pipe open, so the workload's writes only
    /// fill it and never fail, as on the host, where SIGPIPE comes first.
    fn raise_broken_pipe(&self) {
        let mut phase = self.phase();
        while matches!(*phase, Phase::Booting { .. }) {
            phase = self.phase_changed.wait(phase).unwrap_or_else(|p| p.into_inner());
        }
        if matches!(*phase, Phase::Running) {
            drop(phase);
            self.send_or_warn(Signal::SIGPIPE, false);
        }
    }

    /// `runsc kill` of the workload's first process (or every process).
    fn deliver(&self, Delivery { signal, all }: Delivery) -> Result<()> {
        if stops(signal) {
            self.event(to_parent::STOPPING);
        }
        let mut args = vec!["kill"];
        if all {
            args.push("--all");
        }
        let name = signal.as_str().trim_start_matches("SIG").to_string();
        args.push(&self.plan.runsc_id);
        args.push(&name);
        self.control_call(&args).map(|_| ())
    }

    /// `nucleus run` was killed: the workload is killed as by `delete
    /// --force` (a boot is aborted), and the run ends and is cleaned up as
    /// any other, quietly. A watchdog bounds it: past [`ORPHAN_LIMIT`]
    /// every process of the namespace is killed, and past twice that the
    /// supervisor exits, which ends the namespace.
    fn parent_gone(&self) {
        self.orphaned.store(true, Ordering::SeqCst);
        if let Some(mode) = self.terminal_mode.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            tty::restore(mode);
        }
        let _ = self.send(Signal::SIGKILL, true);
        std::thread::spawn(|| {
            std::thread::sleep(ORPHAN_LIMIT);
            kill_everything();
            std::thread::sleep(ORPHAN_LIMIT);
            std::process::exit(crate::error::EXIT_NUCLEUS_FAILED);
        });
    }

    /// [`Shared::send`] for senders with no one to tell of a failure.
    pub fn send_or_warn(&self, signal: Signal, all: bool) {
        if let Err(e) = self.send(signal, all) {
            tracing::warn!("cannot send {signal} to the workload: {e}");
        }
    }

    /// A bounded runsc control call; its stdout on success. Refused once
    /// the final sweep has begun.
    pub fn control_call(&self, args: &[&str]) -> Result<String> {
        let Some(_pass) = self.reaping.pass() else {
            return Err(Error::runsc("the container is stopping".to_string()));
        };
        let mut cmd = self.runsc.control(args);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let child =
            cmd.spawn().map_err(|e| Error::runsc(format!("cannot start {}: {e}", self.runsc.binary.display())))?;
        super::bounded_output(child, CONTROL_CALL_LIMIT, &args.join(" "))
    }
}

/// What a run leaves: runsc's own state and cgroups (`runsc delete`), any
/// process still in the namespace, the mounts in the bundle, and the
/// container's directory unless it is kept.
/// Whether `runsc delete` has work left once every process is gone: the
/// poststop hooks, and the cgroups runsc made. Its other work (its state
/// files) goes with the container's directory, and it costs a runsc start
/// (about 20 ms) on every run.
fn needs_runsc_delete(launch: &LaunchPlan, plan: &ContainerPlan) -> bool {
    let hooks = launch.bundle.config.spec().hooks().as_ref();
    let poststop = hooks.and_then(|h| h.poststop().as_ref()).is_some_and(|hooks| !hooks.is_empty());
    poststop || plan.cgroups_path.is_some()
}

fn clean_up(
    launch: &LaunchPlan,
    plan: &ContainerPlan,
    shared: &Shared,
    container: &Container,
    record: &mut ContainerRecord,
    code: i32,
) {
    // runsc deletes the container (and runs its poststop hooks) once the
    // sandbox and its gofer are gone; as pid 1, end and reap them first:
    // a zombie still answers runsc's "are you alive?".
    shared.reaping.kill_and_reap_all();
    if plan.layout.runsc_root().exists() && needs_runsc_delete(launch, plan) {
        let delete = shared.runsc.control(&["delete", "--force", &plan.layout.runsc_id]);
        if let Err(e) = shared.reaping.run_while_reaping(delete, CONTROL_CALL_LIMIT, "runsc delete") {
            tracing::warn!("{e}");
        }
    }
    shared.reaping.reap_again();
    detach_staged(launch, plan);
    if plan.keep {
        record.status = Status::Stopped;
        record.exit_status.get_or_insert(code);
        if let Err(e) = container.write_record(record) {
            super::report(&e);
        }
    } else if let Err(e) = container.discard() {
        super::report(&e);
    }
}

/// Detaches what [`prepare_filesystem`] mounted under the bundle: in the
/// supervisor's namespace before its container is discarded, and in
/// `nucleus run`'s (where they were made, and stay after a supervisor was
/// killed) before `nucleus run` discards what that supervisor left.
pub fn detach_staged(launch: &LaunchPlan, plan: &ContainerPlan) {
    if let StorePlan::View { view, .. } = &launch.store {
        mounts::detach(view);
    }
    for staged in &plan.staged {
        mounts::detach(&staged.target);
    }
    if let Some(dir) = &plan.secrets_dir {
        mounts::detach(dir);
    }
}
