//! Reaping in the supervisor's pid namespace.
//!
//! As pid 1 the supervisor inherits every orphan (runsc's sandbox and
//! gofer once `runsc run --detach` returns) and must reap them at the end
//! with `waitpid(-1)`. Its threads meanwhile start short runsc calls and
//! wait for each by pid. A `waitpid(-1)` that ran beside them would take
//! their child's status, and the thread would then see ECHILD for a call
//! that worked. So a thread holds a [`Pass`] from spawning its child to
//! reaping it, and the final sweep first closes the gate and waits until
//! no pass is out.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::{Error, Result};

/// Lets threads wait for their own children until the final sweep.
#[derive(Default)]
pub struct ReapGate {
    /// True once the sweep has begun; readers are threads with a child.
    closed: RwLock<bool>,
}

/// Held while a thread has a child it will wait for by pid. A thread never
/// takes a second pass while it holds one: once a sweep waits for the
/// first, the second would wait for the sweep.
pub struct Pass<'a>(#[allow(dead_code)] RwLockReadGuard<'a, bool>);

impl ReapGate {
    /// A pass, unless the sweep has begun (then the container is ending and
    /// nothing new may start).
    pub fn pass(&self) -> Option<Pass<'_>> {
        let closed = self.closed.read().unwrap_or_else(|p| p.into_inner());
        if *closed {
            None
        } else {
            Some(Pass(closed))
        }
    }

    /// Ends every other process of the namespace and reaps them all. The
    /// first kill also ends the children threads are waiting for, so their
    /// passes come back promptly; the lock then keeps new ones from being
    /// handed out while the sweep runs.
    pub fn kill_and_reap_all(&self) {
        kill_everything();
        let mut closed = self.closed.write().unwrap_or_else(|p| p.into_inner());
        *closed = true;
        kill_everything();
        reap_all();
    }

    /// Reaps whatever has ended since the sweep (after the gate closed,
    /// only the sweeping thread starts children).
    pub fn reap_again(&self) {
        reap_all();
    }

    /// Runs `cmd` (a short runsc call) from the sweeping thread, at most
    /// `limit`, reaping everything else that ends meanwhile: runsc's own
    /// helpers, orphaned to pid 1, may be what the call waits to see gone.
    /// Its stdout, or its last line of stderr as the error.
    pub fn run_while_reaping(&self, mut cmd: Command, limit: Duration, what: &str) -> Result<String> {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| Error::runsc(format!("cannot start `{what}`: {e}")))?;
        let pid = Pid::from_raw(child.id() as i32);
        let deadline = Instant::now() + limit;
        let mut killed = false;
        let code = loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p == pid => break Some(code),
                Ok(WaitStatus::Signaled(p, ..)) if p == pid => break None,
                Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(5)),
                Ok(_) => {}
                Err(Errno::EINTR) => {}
                Err(e) => return Err(Error::runsc(format!("cannot wait for `{what}`: {e}"))),
            }
            if !killed && Instant::now() >= deadline {
                let _ = kill(pid, Signal::SIGKILL);
                killed = true;
            }
        };
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let Some(mut out) = child.stdout.take() {
            let _ = out.read_to_string(&mut stdout);
        }
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        match code {
            _ if killed => Err(Error::runsc(format!("`{what}` did not answer within {} s", limit.as_secs()))),
            Some(0) => Ok(stdout),
            _ => {
                let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message").trim();
                Err(Error::runsc(format!("`{what}` failed: {last}")))
            }
        }
    }
}

/// From pid 1, `kill(-1)` reaches every other process of the namespace.
pub fn kill_everything() {
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
}

fn reap_all() {
    while waitpid(Pid::from_raw(-1), None).is_ok() {}
}
