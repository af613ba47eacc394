//! Stop signals (TERM, INT, HUP, QUIT) that reach `nucleus run` before its
//! workload runs.
//!
//! `run` blocks them from its first moment, so none can kill nucleus
//! half-way (a Nix command in a process group of its own would be left
//! running, a terminal's Ctrl-C never reaching it). Whatever waits on a
//! child meanwhile looks for one pending ([`pending_stop`]), ends its
//! child and stops the run with [`crate::Error::Interrupted`]; from the
//! launch on, the sandbox stage reads them from a signalfd.

use nix::sys::signal::Signal;

/// The signals that stop a run before its workload runs.
pub const STOP: [Signal; 4] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGQUIT];

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
