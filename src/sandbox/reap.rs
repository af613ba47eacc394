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

use std::sync::{RwLock, RwLockReadGuard};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

/// Lets threads wait for their own children until the final sweep.
#[derive(Default)]
pub struct ReapGate {
    /// True once the sweep has begun; readers are threads with a child.
    closed: RwLock<bool>,
}

/// Held while a thread has a child it will wait for by pid.
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
}

/// From pid 1, `kill(-1)` reaches every other process of the namespace.
pub fn kill_everything() {
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
}

fn reap_all() {
    while waitpid(Pid::from_raw(-1), None).is_ok() {}
}
