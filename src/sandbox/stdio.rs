//! The workload's stdio.
//!
//! runsc writes a regular-file stdout from offset 0, overwriting what was
//! there, so the workload writes into pipes and nucleus copies them to its
//! own stdout and stderr: `>>` and `>` then behave as with any program.
//! When stdout and stderr are one open file (`> log 2>&1`), the workload
//! gets one pipe for both, so their order is kept.
//!
//! Copying starts only once the workload runs: until then the pipes carry
//! nothing but runsc's own messages, which are raw text from an unknown
//! command line. A failed boot is reported from runsc's log instead, as
//! one escaped line, and whatever the pipes held is dropped.
//!
//! When nucleus can no longer write its stdout (a reader such as `head`
//! went away), it closes the pipe's read end, so the workload's next write
//! fails with EPIPE as it would on the host, and it tells the caller, who
//! raises SIGPIPE in the workload: gVisor returns EPIPE for a host pipe but
//! raises no signal, and a shell loop would otherwise run forever.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::thread::JoinHandle;

use nix::fcntl::{fcntl, FcntlArg};
use nix::sys::stat::fstat;

use crate::{Error, Result};

/// What runsc is given as the workload's stdio.
pub struct RunscStdio {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

/// The read ends of the workload's output pipes, not yet copied.
pub struct PendingRelays {
    pipes: Vec<(OwnedFd, std::io::Result<OwnedFd>)>,
    on_broken: OnBrokenPipe,
}

/// The threads copying the workload's output.
pub struct Relays {
    handles: Vec<JoinHandle<()>>,
}

/// Called once, from a relay thread, when nucleus's own output is gone.
pub type OnBrokenPipe = std::sync::Arc<dyn Fn() + Send + Sync>;

/// Pipes for stdout and stderr (one when they are the same open file),
/// each copied by a thread to nucleus's own; stdin is nucleus's when
/// `interactive`, else empty.
pub fn piped(interactive: bool, on_broken: OnBrokenPipe) -> Result<(RunscStdio, PendingRelays)> {
    let stdin = if interactive { Stdio::inherit() } else { Stdio::null() };
    let (out_read, out_write) = pipe()?;
    let mut pipes = vec![(out_read, std::io::stdout().as_fd().try_clone_to_owned())];
    let stdout = Stdio::from(out_write.try_clone().map_err(|e| Error::setup("duplicate a pipe", e))?);
    let stderr = if same_open_file() {
        Stdio::from(out_write)
    } else {
        drop(out_write);
        let (err_read, err_write) = pipe()?;
        pipes.push((err_read, std::io::stderr().as_fd().try_clone_to_owned()));
        Stdio::from(err_write)
    };
    Ok((RunscStdio { stdin, stdout, stderr }, PendingRelays { pipes, on_broken }))
}

impl PendingRelays {
    /// The last line runsc wrote before it failed, if any: the cause when
    /// its log has none (a runsc that could not open its log). Reads only
    /// what is already there.
    pub fn last_line(&self) -> Option<String> {
        let mut text = Vec::new();
        for (from, _) in &self.pipes {
            let flags = fcntl(from.as_fd(), FcntlArg::F_GETFL).ok()?;
            let nonblocking = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
            fcntl(from.as_fd(), FcntlArg::F_SETFL(nonblocking)).ok()?;
            let mut file = File::from(from.try_clone().ok()?);
            let _ = (&mut file).take(64 * 1024).read_to_end(&mut text);
        }
        let text = String::from_utf8_lossy(&text);
        text.lines().rev().map(str::trim).find(|l| !l.is_empty()).map(str::to_string)
    }

    /// The workload runs: copy its output from here on.
    pub fn start(self) -> Relays {
        let on_broken = self.on_broken;
        Relays { handles: self.pipes.into_iter().map(|(from, to)| relay(from, to, on_broken.clone())).collect() }
    }
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
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::setup("create a pipe for the workload's output", e))
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

/// Copies `from` to `to` until EOF. If `to` goes away (EPIPE), closes
/// `from` and calls `on_broken`. Other write errors (a full disk) drop the
/// output but keep draining, so the workload is never blocked on a full pipe.
fn relay(from: OwnedFd, to: std::io::Result<OwnedFd>, on_broken: OnBrokenPipe) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut from = File::from(from);
        let mut to = to.ok().map(File::from);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let Some(out) = to.as_mut() else { continue };
            match out.write_all(&buf[..n]) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::BrokenPipe => {
                    drop(from);
                    on_broken();
                    return;
                }
                Err(e) => {
                    tracing::warn!("the workload's output is lost from here on: {e}");
                    to = None;
                }
            }
        }
    })
}
