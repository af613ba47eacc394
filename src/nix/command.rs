//! Running Nix's own commands. Nix prints progress and errors on stderr; we
//! pass its progress through as it comes and read only stdout. Its error
//! report is held back: its first line becomes the reason in nucleus's own
//! one-line message (`nucleus: nix (nix-build …) failed: attribute 'x' …
//! not found`), and only the lines after it (a build's last log lines, the
//! place in an expression) are shown above that message.
//! The environment (including `NIX_CONFIG`) is inherited untouched.
//!
//! Every call honours the run's [`Deadline`]: `--timeout` bounds the whole
//! run, and a Nix daemon that never answers must not hang it.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// When the run's `--timeout` expires, if it has one; and whether a stop
/// signal ends it too (see [`crate::interrupt`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Deadline {
    at: Option<Instant>,
    seconds: u64,
    stoppable: bool,
}

impl Deadline {
    pub fn none() -> Self {
        Deadline::default()
    }

    pub fn after(timeout: Option<Duration>) -> Self {
        Deadline {
            at: timeout.map(|t| Instant::now() + t),
            seconds: timeout.map_or(0, |t| t.as_secs()),
            stoppable: false,
        }
    }

    /// Also ends at a stop signal, which the caller has blocked.
    pub fn stoppable(self) -> Self {
        Deadline { stoppable: true, ..self }
    }

    /// The error for a stop signal sent while `what` ran, if one was.
    pub fn interruption(&self, what: &str) -> Option<Error> {
        let signal = self.stoppable.then(crate::interrupt::pending_stop).flatten()?;
        Some(Error::Interrupted { signal: signal.to_string(), during: format!("while {what} was running") })
    }

    /// Time left, `None` when there is no deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.at.map(|at| at.saturating_duration_since(Instant::now()))
    }

    pub fn expired(&self) -> bool {
        self.at.is_some_and(|at| Instant::now() >= at)
    }

    /// The error for a deadline that expired while `what` ran.
    pub fn timeout_error(&self, what: &str) -> Error {
        Error::Timeout { what: what.to_string(), seconds: self.seconds }
    }
}

/// `nix` with the experimental command set enabled, as Nix 2.8 requires.
pub fn nix() -> Command {
    let mut cmd = Command::new("nix");
    cmd.args(["--extra-experimental-features", "nix-command flakes"]);
    cmd
}

/// What becomes of a Nix command's stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NixStderr {
    /// Progress shown as it comes; the error report folded into the error.
    Relay,
    /// Nothing shown: the command's failure is an answer, not a problem.
    Drop,
}

/// Runs `cmd`, relaying its progress on stderr, and returns stdout as
/// UTF-8. Past the deadline the command (its whole process group) is
/// killed. A failure's reason is Nix's own first line of error.
pub fn stdout_of(cmd: Command, deadline: &Deadline) -> Result<String> {
    run(cmd, deadline, NixStderr::Relay)
}

/// As [`stdout_of`], with Nix's stderr dropped: for questions whose
/// failure is an answer (does this flake have such an app?).
pub fn stdout_of_probe(cmd: Command, deadline: &Deadline) -> Result<String> {
    run(cmd, deadline, NixStderr::Drop)
}

/// Starts `cmd` in a session of its own, without a controlling terminal.
/// A program Nix runs that would ask on the terminal (ssh for a password,
/// git for credentials) then fails at once with its own message, where in
/// a background process group of nucleus's terminal it would be stopped,
/// waiting for input it can never read. A terminal's Ctrl-C does not reach
/// it either (nucleus ends it itself), and the session's process group is
/// what a stop or the deadline ends.
fn in_own_session(cmd: &mut Command) {
    // SAFETY: runs in the child between fork and exec; setsid is
    // async-signal-safe and nothing is allocated.
    unsafe {
        cmd.pre_exec(|| nix::unistd::setsid().map(drop).map_err(std::io::Error::from));
    }
}

fn run(mut cmd: Command, deadline: &Deadline, stderr: NixStderr) -> Result<String> {
    let shown = describe(&cmd);
    tracing::debug!(command = %shown, "running nix");
    let stderr_pipe = if stderr == NixStderr::Relay { Stdio::piped() } else { Stdio::null() };
    crate::interrupt::unblocked_in_child(&mut cmd);
    in_own_session(&mut cmd);
    let mut child = cmd.stdin(Stdio::null()).stderr(stderr_pipe).stdout(Stdio::piped()).spawn().map_err(|e| {
        let reason =
            if e.kind() == std::io::ErrorKind::NotFound { "is Nix installed and on PATH?" } else { "cannot start it" };
        Error::NixCommand { command: shown.clone(), reason: reason.into(), source: Some(e) }
    })?;
    let mut stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(out) = stdout.as_mut() {
            let _ = out.read_to_end(&mut text);
        }
        text
    });
    let relay = child.stderr.take().map(|err| std::thread::spawn(move || relay_stderr(err, &mut std::io::stderr())));
    let pipes = Pipes { reader, relay, group: nix::unistd::Pid::from_raw(child.id() as i32) };
    let stopped = |shown: &str| deadline.interruption(shown).unwrap_or_else(|| deadline.timeout_error(shown));
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if deadline.expired() || deadline.interruption(&shown).is_some() => {
                end_group(&mut child);
                if let Some((_, held)) = pipes.collect(deadline, &shown) {
                    show(&held);
                }
                return Err(stopped(&shown));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                return Err(Error::NixCommand { command: shown, reason: "cannot wait for it".into(), source: Some(e) })
            }
        }
    };
    let Some((out, held)) = pipes.collect(deadline, &shown) else { return Err(stopped(&shown)) };
    if !status.success() {
        let reason = match report_headline(&held) {
            Some(at) => {
                let headline = &held[at];
                let others: Vec<String> =
                    held.iter().enumerate().filter(|(i, _)| *i != at).map(|(_, l)| l.clone()).collect();
                show(&others);
                headline.strip_prefix(ERROR_PREFIX).unwrap_or(headline).trim().to_string()
            }
            None => {
                show(&held);
                status.to_string()
            }
        };
        return Err(Error::NixCommand { command: shown, reason, source: None });
    }
    show(&held);
    String::from_utf8(out).map_err(|_| Error::NixOutput { command: shown, reason: "output is not UTF-8".into() })
}

/// The threads reading a Nix command's stdout and stderr, which end at
/// EOF: when every process holding the pipes has ended. The command's
/// leader may be gone while a process it left behind holds them.
struct Pipes {
    reader: JoinHandle<Vec<u8>>,
    relay: Option<JoinHandle<Vec<String>>>,
    group: nix::unistd::Pid,
}

/// How long the pipes may stay open once the command's group was killed
/// (a process that left the group may hold them), before they are left.
const PIPES_GRACE: Duration = Duration::from_secs(1);

impl Pipes {
    /// stdout and the held error report, once both pipes are closed; a
    /// stop or the deadline while a leftover process holds them kills the
    /// command's group, and `None` if they are not closed soon after.
    fn collect(self, deadline: &Deadline, shown: &str) -> Option<(Vec<u8>, Vec<String>)> {
        let mut given_up_at: Option<Instant> = None;
        loop {
            let done = self.reader.is_finished() && self.relay.as_ref().is_none_or(|r| r.is_finished());
            if done {
                let held = self.relay.and_then(|r| r.join().ok()).unwrap_or_default();
                return Some((self.reader.join().unwrap_or_default(), held));
            }
            match given_up_at {
                Some(at) if Instant::now() >= at => {
                    // The relay may be stuck writing to a stderr no one
                    // reads, and nucleus's own report would be too: then a
                    // pending stop acts at once, and ends nucleus.
                    if deadline.interruption(shown).is_some() && !stderr_takes_writes() {
                        crate::interrupt::unblock_stops();
                    }
                    return None;
                }
                Some(_) => {}
                None if deadline.expired() || deadline.interruption(shown).is_some() => {
                    let _ = nix::sys::signal::killpg(self.group, nix::sys::signal::SIGKILL);
                    given_up_at = Some(Instant::now() + PIPES_GRACE);
                }
                None => {}
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Whether a write to nucleus's stderr would go through now (a terminal or
/// a file always; a pipe when its reader keeps up).
fn stderr_takes_writes() -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let stderr = std::io::stderr();
    let mut fds = [PollFd::new(stderr.as_fd(), PollFlags::POLLOUT)];
    poll(&mut fds, PollTimeout::ZERO).is_ok_and(|ready| ready > 0)
}

/// How long a Nix command has to end after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(5);

/// Ends a Nix command's process group: SIGTERM first, which Nix answers
/// by stopping its builders and removing their temporary outputs (with a
/// local store it runs them itself, in sessions of their own that SIGKILL
/// of the group would leave running), then SIGKILL after [`GRACE`].
fn end_group(child: &mut std::process::Child) {
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::SIGTERM);
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::SIGKILL);
    let _ = child.wait();
}

/// How Nix starts the report of the error it fails with (`error (ignored):`
/// lines are warnings, and pass).
const ERROR_PREFIX: &str = "error: ";

/// Copies Nix's stderr to `out` line by line as it comes, until the first
/// line of its error report; that line and every later one are returned
/// instead.
fn relay_stderr(from: impl Read, out: &mut impl Write) -> Vec<String> {
    let mut held = Vec::new();
    let mut lines = BufReader::new(from);
    let mut line = Vec::new();
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return held,
            Ok(_) => {}
        }
        let report = line.starts_with(ERROR_PREFIX.as_bytes());
        // Nix's report goes on in indented lines, further reports and its
        // parenthesised advice (`(use '--show-trace' …)`); another line
        // after it means the "report" was a line of a builder's log, passed
        // on as it is, and it is shown after all.
        let continues =
            !held.is_empty() && (report || line.first().is_some_and(|b| b.is_ascii_whitespace() || *b == b'('));
        if report || continues {
            let text = String::from_utf8_lossy(&line);
            held.push(text.trim_end_matches(['\n', '\r']).to_string());
            continue;
        }
        for earlier in held.drain(..) {
            let _ = writeln!(out, "{earlier}");
        }
        let _ = out.write_all(&line);
        let _ = out.flush();
    }
}

/// Which held line is Nix's own headline. A builder's last words just
/// before Nix's report may look like one (`error: …`); such a line is
/// followed at once by Nix's headline, or quoted in Nix's report as a line
/// of the log (`> error: …`). So: the first `error: ` line that is neither,
/// else the last one.
fn report_headline(held: &[String]) -> Option<usize> {
    let headline = |line: &String| line.starts_with(ERROR_PREFIX);
    let nix_s = |i: usize, line: &String| {
        headline(line)
            && !held.get(i + 1).is_some_and(headline)
            && !held[i + 1..].iter().any(|later| later.trim_start() == format!("> {line}"))
    };
    held.iter().enumerate().position(|(i, line)| nix_s(i, line)).or_else(|| held.iter().rposition(headline))
}

/// Nix's advice to rerun it with a flag nucleus does not take.
const SHOW_TRACE_HINT: &str = "(use '--show-trace'";

/// Shows lines of Nix's that were held back, as Nix would have, but for
/// its advice about `--show-trace`.
fn show(lines: &[String]) {
    let mut err = std::io::stderr().lock();
    for line in lines.iter().filter(|l| !l.trim_start().starts_with(SHOW_TRACE_HINT)) {
        let _ = writeln!(err, "{line}");
    }
}

/// True when Nix's database records `path` as valid (fully built or
/// substituted). Never substitutes or builds anything. A Nix that cannot
/// answer is an error, not an invalid path; a stop signal ends the wait
/// (the callers, in `run`, block them).
pub fn is_valid_path(path: &str) -> Result<bool> {
    let mut cmd = Command::new("nix-store");
    cmd.args(["--check-validity", "--print-invalid", path]);
    let invalid = stdout_of_probe(cmd, &Deadline::none().stoppable())?;
    Ok(invalid.trim().is_empty())
}

/// The command as the user would type it into a shell, without the feature
/// flags we add.
pub fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    let args = cmd.get_args().map(OsStr::to_string_lossy);
    for arg in args.filter(|a| a != "--extra-experimental-features" && a != "nix-command flakes") {
        text.push(' ');
        text.push_str(&shell_word(&arg));
    }
    text
}

/// `word`, single-quoted when a shell would not read it back as one word.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./#-".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_past_the_deadline_is_killed_and_named() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 5"]);
        let started = Instant::now();
        let err = stdout_of(cmd, &Deadline::after(Some(Duration::from_millis(200)))).unwrap_err();
        assert!(matches!(&err, Error::Timeout { what, .. } if what.contains("sh -c 'sleep 5'")), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn failures_and_missing_programs_are_nix_command_errors() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exit 3"]);
        assert!(matches!(stdout_of(cmd, &Deadline::none()), Err(Error::NixCommand { .. })));
        let missing = Command::new("/nonexistent/nix");
        assert!(matches!(stdout_of(missing, &Deadline::none()), Err(Error::NixCommand { source: Some(_), .. })));
        let mut ok = Command::new("sh");
        ok.args(["-c", "echo out"]);
        assert_eq!(stdout_of(ok, &Deadline::none()).unwrap(), "out\n");
    }

    #[test]
    fn the_reason_is_nix_s_first_line_of_error() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo building >&2; echo \"error: attribute 'x' missing\" >&2; echo '  at here' >&2; exit 1"]);
        match stdout_of(cmd, &Deadline::none()) {
            Err(Error::NixCommand { reason, .. }) => assert_eq!(reason, "attribute 'x' missing"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn progress_passes_and_the_error_report_is_held() {
        let text = "warning: w\nerror (ignored): e\nbuilding\nerror: it broke;\n       last lines:\n       > x\n";
        let mut out = Vec::new();
        let held = relay_stderr(text.as_bytes(), &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "warning: w\nerror (ignored): e\nbuilding\n");
        assert_eq!(held, ["error: it broke;", "       last lines:", "       > x"]);
    }

    /// A builder's log line that looks like Nix's report is shown in its
    /// place once the log goes on; Nix's own report, at the end, is held.
    #[test]
    fn a_builder_s_error_line_is_not_taken_for_nix_s_report() {
        let text = "building\nerror: expected test failure\nmore of the log\nerror: builder for 'x' failed;\n  > log\n";
        let mut out = Vec::new();
        let held = relay_stderr(text.as_bytes(), &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "building\nerror: expected test failure\nmore of the log\n");
        assert_eq!(held, ["error: builder for 'x' failed;", "  > log"]);
    }

    #[test]
    fn the_headline_is_nix_s_not_a_quoted_line_of_the_log() {
        let held: Vec<String> = [
            "error: expected test failure",
            "error: builder for 'x' failed with exit code 1;",
            "       last 1 log lines:",
            "       > error: expected test failure",
            "error: 1 dependencies of derivation 'y' failed to build",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(report_headline(&held), Some(1));
        assert_eq!(report_headline(&held[1..]), Some(0));
        assert_eq!(report_headline(&["  no headline".to_string()]), None);
        // The builder's last line, then Nix's one-line report.
        let held = ["error: expected test failure", "error: builder for 'x' failed with exit code 1"].map(String::from);
        assert_eq!(report_headline(&held), Some(1));
    }

    #[test]
    fn commands_are_described_as_a_shell_reads_them() {
        let mut cmd = nix();
        cmd.args(["eval", "--apply", "x: x", "it's", "path:/a#b", ""]);
        assert_eq!(describe(&cmd), r"nix eval --apply 'x: x' 'it'\''s' path:/a#b ''");
    }
}
