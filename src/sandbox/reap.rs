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
//!
//! The sweep never queues behind the passes as a writer of the lock would:
//! a waiting writer makes every new reader wait, and a thread that takes a
//! second pass while holding one (a control call made while `runsc exec`
//! runs) would then wait for a sweep that waits for it. Instead it refuses
//! new passes, then kills and polls until the last pass is back; each
//! round's kill also ends any child started just before the gate closed.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{RwLock, RwLockReadGuard, TryLockError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::{Error, Result};

/// How often the sweep looks whether the last pass is back.
const SWEEP_POLL: Duration = Duration::from_millis(5);

/// Lets threads wait for their own children until the final sweep.
#[derive(Default)]
pub struct ReapGate {
    /// Set when the sweep begins: no new pass from then on.
    closing: AtomicBool,
    /// Readers are threads with a child; the sweep takes it to write.
    passes: RwLock<()>,
}

/// Held while a thread has a child it will wait for by pid.
pub struct Pass<'a>(#[allow(dead_code)] RwLockReadGuard<'a, ()>);

impl ReapGate {
    /// A pass, unless the sweep has begun (then the container is ending and
    /// nothing new may start). A thread may hold several at once.
    pub fn pass(&self) -> Option<Pass<'_>> {
        if self.closing.load(Ordering::SeqCst) {
            return None;
        }
        Some(Pass(self.passes.read().unwrap_or_else(|p| p.into_inner())))
    }

    /// Ends every other process of the namespace and reaps them all, once
    /// no thread holds a pass. Every kill also ends the children threads
    /// are waiting for, so their passes come back promptly.
    pub fn kill_and_reap_all(&self) {
        self.closing.store(true, Ordering::SeqCst);
        let _sweeping = loop {
            kill_everything();
            match self.passes.try_write() {
                Ok(guard) => break guard,
                Err(TryLockError::Poisoned(p)) => break p.into_inner(),
                Err(TryLockError::WouldBlock) => std::thread::sleep(SWEEP_POLL),
            }
        };
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
        if killed {
            return Err(Error::runsc(format!("`{what}` did not answer within {} s", limit.as_secs())));
        }
        super::call_outcome(&mut child, code == Some(0), what)
    }
}

/// From pid 1, `kill(-1)` reaches every other process of the namespace.
pub fn kill_everything() {
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
}

fn reap_all() {
    while waitpid(Pid::from_raw(-1), None).is_ok() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn nested_passes_never_wait_for_a_sweep_that_waits_for_them() {
        let gate = Arc::new(ReapGate::default());
        let outer = gate.pass().unwrap();
        let sweeper = Arc::clone(&gate);
        // kill_and_reap_all would signal this test's process group; the
        // gate's own protocol is what is checked here.
        let sweep = std::thread::spawn(move || {
            sweeper.closing.store(true, Ordering::SeqCst);
            loop {
                if sweeper.passes.try_write().is_ok() {
                    return;
                }
                std::thread::sleep(SWEEP_POLL);
            }
        });
        while !gate.closing.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        // A second pass taken while holding one does not block.
        let inner = gate.passes.read().unwrap();
        drop(inner);
        assert!(gate.pass().is_none(), "no new pass once the sweep began");
        drop(outer);
        sweep.join().unwrap();
    }
}
