//! Stop signals (TERM, INT, HUP, QUIT) that reach nucleus before its
//! workload runs, or while it writes a bundle or an image.
//!
//! `run`, `bundle`, `image`, `kube` and `closure` block them from their
//! first moment, so none can kill nucleus half-way: a Nix command in a
//! session of its own (a terminal's Ctrl-C never reaches it) would be left
//! running, and a bundle or image half written. Whatever waits on a
//! child meanwhile looks for one pending ([`pending_stop`]), ends its child
//! and stops the command with [`crate::Error::Interrupted`]; a writer asks
//! [`check`] at each step and takes back what it wrote. From `run`'s launch
//! on, the sandbox stage reads them from a signalfd.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, SigmaskHow, Signal};

use crate::{Error, Result};

/// The signals that stop a run before its workload runs.
pub const STOP: [Signal; 4] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGQUIT];

/// Blocks `signals` in this thread; threads started later inherit the
/// mask. Returns the set.
pub fn block(signals: &[Signal]) -> Result<SigSet> {
    let set = signals.iter().copied().collect::<SigSet>();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .map_err(|e| Error::setup("block signals", e))?;
    Ok(set)
}

/// Blocks the stop signals, so that a stop stays pending until nucleus
/// looks for it, and returns a deadline (none in time) that a stop ends:
/// from here on a Ctrl-C or a `kill` ends the Nix command nucleus waits on
/// (in a session of its own, which a terminal's Ctrl-C does not reach)
/// instead of killing nucleus half-way.
pub fn stops_end_nix() -> Result<crate::nix::command::Deadline> {
    block(&STOP)?;
    Ok(crate::nix::command::Deadline::none().stoppable())
}

/// How often [`check`] looks: often enough that a stop ends a write at
/// once, seldom enough to cost nothing in a loop over every file.
const CHECK_EVERY: Duration = Duration::from_millis(50);

/// The error for a stop signal sent while `what` was being done, if one
/// was pending when this last looked; cheap enough to call at every step
/// of a long loop, as it looks at most every [`CHECK_EVERY`]. A no-op
/// unless the stop signals are blocked.
pub fn check(what: &str) -> Result<()> {
    static START: OnceLock<Instant> = OnceLock::new();
    static NEXT_LOOK: AtomicU64 = AtomicU64::new(0);
    let now = START.get_or_init(Instant::now).elapsed().as_nanos() as u64;
    if now < NEXT_LOOK.load(Ordering::Relaxed) {
        return Ok(());
    }
    NEXT_LOOK.store(now + CHECK_EVERY.as_nanos() as u64, Ordering::Relaxed);
    check_now(what)
}

/// As [`check`], looking now: for the last look before an output is
/// handed over, which a stop that came since the last step must not miss.
pub fn check_now(what: &str) -> Result<()> {
    match pending_stop() {
        Some(signal) => Err(Error::Interrupted { signal: signal.to_string(), during: format!("while {what}") }),
        None => Ok(()),
    }
}

/// Lets the stop signals act again (their default: the end of nucleus),
/// once an output is complete and only printing is left: a reader that
/// never reads must not hold a stop off.
pub fn unblock_stops() {
    let set = STOP.into_iter().collect::<SigSet>();
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
}

/// Runs `f` as [`stops_end_nix`] has it, for a command that otherwise
/// leaves the stop signals alone (`verify`); afterwards they act again,
/// unless `f` was stopped by one.
pub fn ending_nix_at_a_stop<T>(f: impl FnOnce(&crate::nix::command::Deadline) -> Result<T>) -> Result<T> {
    let deadline = stops_end_nix()?;
    let result = f(&deadline);
    if !matches!(result, Err(Error::Interrupted { .. })) {
        unblock_stops();
    }
    result
}

/// Starts `cmd`'s program with no signal blocked. A blocked signal stays
/// blocked across `exec`, and nucleus blocks the stop signals and the ones
/// it forwards: a Nix command would start with TERM blocked, and so would
/// whatever it runs, so that ending it with TERM (which Nix answers by
/// stopping its builders) would not reach it; runsc would pass them on to
/// the hooks it runs.
pub fn unblocked_in_child(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec, where
    // only async-signal-safe calls are allowed; it makes one,
    // pthread_sigmask, on a set built on the stack, and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .map_err(std::io::Error::from)
        });
    }
}

/// A stop signal sent to this process and blocked, not yet taken. It stays
/// pending: looking does not consume it.
pub fn pending_stop() -> Option<Signal> {
    let status = std::fs::read_to_string("/proc/thread-self/status").ok()?;
    let mask = pending_mask(&status);
    STOP.into_iter().find(|s| mask & (1u64 << (*s as u32 - 1)) != 0)
}

/// The union of the thread's and the process's pending signals, from
/// /proc's `SigPnd` and `ShdPnd` lines (bit N-1 for signal N).
fn pending_mask(status: &str) -> u64 {
    status
        .lines()
        .filter_map(|l| l.strip_prefix("SigPnd:").or_else(|| l.strip_prefix("ShdPnd:")))
        .filter_map(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .fold(0, |all, mask| all | mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_signals_are_read_from_both_masks() {
        let status =
            "Name:\tnucleus\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000004000\nSigBlk:\t0000000000004003\n";
        assert_eq!(pending_mask(status), 1 << 14);
        assert_eq!(
            STOP.into_iter().find(|s| pending_mask(status) & (1u64 << (*s as u32 - 1)) != 0),
            Some(Signal::SIGTERM)
        );
        assert_eq!(pending_mask("SigPnd:\t0000000000000002\n"), 2, "SIGINT, to this thread");
    }
}
