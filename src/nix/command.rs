//! Running Nix's own commands. Nix prints progress and errors on stderr; we
//! pass that through so the user sees Nix's reason, and read only stdout.
//! The environment (including `NIX_CONFIG`) is inherited untouched.
//!
//! Every call honours the run's [`Deadline`]: `--timeout` bounds the whole
//! run, and a Nix daemon that never answers must not hang it.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// When the run's `--timeout` expires, if it has one.
#[derive(Clone, Copy, Debug, Default)]
pub struct Deadline {
    at: Option<Instant>,
    seconds: u64,
}

impl Deadline {
    pub fn none() -> Self {
        Deadline::default()
    }

    pub fn after(timeout: Option<Duration>) -> Self {
        Deadline { at: timeout.map(|t| Instant::now() + t), seconds: timeout.map_or(0, |t| t.as_secs()) }
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

/// Runs `cmd`, letting stderr through, and returns stdout as UTF-8. Past
/// the deadline the command (its whole process group) is killed.
pub fn stdout_of(cmd: Command, deadline: &Deadline) -> Result<String> {
    run(cmd, deadline, Stdio::inherit())
}

/// As [`stdout_of`], with Nix's stderr dropped: for questions whose
/// failure is an answer (does this flake have such an app?).
pub fn stdout_of_probe(cmd: Command, deadline: &Deadline) -> Result<String> {
    run(cmd, deadline, Stdio::null())
}

fn run(mut cmd: Command, deadline: &Deadline, stderr: Stdio) -> Result<String> {
    let shown = describe(&cmd);
    tracing::debug!(command = %shown, "running nix");
    let mut child =
        cmd.stdin(Stdio::null()).stderr(stderr).stdout(Stdio::piped()).process_group(0).spawn().map_err(|e| {
            let reason = if e.kind() == std::io::ErrorKind::NotFound {
                "is Nix installed and on PATH?"
            } else {
                "cannot start it"
            };
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
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if deadline.expired() => {
                let _ =
                    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::SIGKILL);
                let _ = child.wait();
                return Err(deadline.timeout_error(&shown));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                return Err(Error::NixCommand { command: shown, reason: "cannot wait for it".into(), source: Some(e) })
            }
        }
    };
    let out = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(Error::NixCommand {
            command: shown,
            reason: format!("{status} (Nix's message is above)"),
            source: None,
        });
    }
    String::from_utf8(out).map_err(|_| Error::NixOutput { command: shown, reason: "output is not UTF-8".into() })
}

/// True when Nix's database records `path` as valid (fully built or
/// substituted). Never substitutes or builds anything.
pub fn is_valid_path(path: &str) -> Result<bool> {
    let mut cmd = Command::new("nix-store");
    cmd.args(["--check-validity", path]);
    let status = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status().map_err(|e| {
        Error::NixCommand { command: describe(&cmd), reason: "cannot start it".into(), source: Some(e) }
    })?;
    Ok(status.success())
}

/// The command as the user would type it, without the feature flags we add.
pub fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    let args = cmd.get_args().map(OsStr::to_string_lossy);
    for arg in args.filter(|a| a != "--extra-experimental-features" && a != "nix-command flakes") {
        text.push(' ');
        text.push_str(&arg);
    }
    text
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
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("sh -c sleep 5"), "{err}");
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
}
