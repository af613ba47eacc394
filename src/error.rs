//! The one error type. Each variant names the stage of the pipeline that
//! failed, says why in the user's terms and keeps the underlying error as
//! its source. Every failure of nucleus exits with status 125, except an
//! expired `--timeout` (124, as coreutils' timeout(1)).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Exit status for every failure of nucleus itself (bad input, setup, runsc).
pub const EXIT_NUCLEUS_FAILED: i32 = 125;

/// Exit status when `--timeout` expired, as coreutils' timeout(1) uses.
pub const EXIT_TIMEOUT: i32 = 124;

#[derive(Debug)]
pub enum Error {
    /// Request stage: a command-line value that breaks its rule. `option`
    /// names the option, `reason` the rule.
    InvalidArgument { option: String, reason: String },
    /// Request stage: a host path named on the command line that cannot be
    /// used as it is (missing, a symlink on the way, the wrong type, a
    /// forbidden place).
    HostPath { option: String, path: PathBuf, reason: String, source: Option<io::Error> },
    /// Installable stage: the installable does not name anything runnable.
    Installable { installable: String, reason: String },
    /// Installable and closure stages: a Nix command could not run or failed.
    NixCommand { command: String, reason: String, source: Option<io::Error> },
    /// Closure stage: Nix printed something nucleus cannot use.
    NixOutput { command: String, reason: String },
    /// Any stage before the sandbox: `--timeout` expired while `what` ran.
    Timeout { what: String, seconds: u64 },
    /// Any stage before the workload runs: a stop signal (TERM, Ctrl-C…)
    /// ended the run; `during` says when (`while nix-build … was running`).
    Interrupted { signal: String, during: String },
    /// Rootfs stage: the closure cannot become a root filesystem.
    Rootfs { reason: String },
    /// Plan stage: the request cannot be launched as asked (too many binds…).
    Plan { reason: String },
    /// Hook validation: a hook that is not allowed to run.
    Hook { path: String, reason: String },
    /// Bundle stage: writing or reading a bundle on disk.
    Bundle { path: PathBuf, reason: String, source: Option<io::Error> },
    /// State stage: the state root or a container's directory and record.
    State { path: PathBuf, reason: String, source: Option<io::Error> },
    /// A container that does not exist, is in use, or is in the wrong state.
    Container { name: String, reason: String },
    /// Sandbox stage: preparing namespaces, mounts, staging, the network or
    /// the terminal failed. `step` says what nucleus was doing.
    Setup { step: String, source: io::Error },
    /// Sandbox stage: runsc is missing, refused to start the sandbox, or a
    /// control call failed. `reason` holds runsc's own message.
    Runsc { reason: String },
    /// Sandbox stage: the sandbox died under a workload that had started.
    SandboxDied { reason: String },
    /// A filesystem operation on a path nucleus had to touch, outside the
    /// stages above (reading a file given to `hash`, say).
    Io { context: String, path: PathBuf, source: io::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(option: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument { option: option.into(), reason: reason.into() }
    }

    pub fn io(context: impl Into<String>, path: impl AsRef<Path>, source: io::Error) -> Self {
        Error::Io { context: context.into(), path: path.as_ref().to_path_buf(), source }
    }

    pub fn setup(step: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Error::Setup { step: step.into(), source: source.into() }
    }

    pub fn state(path: impl AsRef<Path>, reason: impl Into<String>, source: Option<io::Error>) -> Self {
        Error::State { path: path.as_ref().to_path_buf(), reason: reason.into(), source }
    }

    pub fn bundle(path: impl AsRef<Path>, reason: impl Into<String>, source: Option<io::Error>) -> Self {
        Error::Bundle { path: path.as_ref().to_path_buf(), reason: reason.into(), source }
    }

    pub fn container(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Container { name: name.into(), reason: reason.into() }
    }

    pub fn runsc(reason: impl Into<String>) -> Self {
        Error::Runsc { reason: reason.into() }
    }

    /// The process exit status this error maps to.
    pub fn exit_status(&self) -> i32 {
        match self {
            Error::Timeout { .. } => EXIT_TIMEOUT,
            _ => EXIT_NUCLEUS_FAILED,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument { option, reason } => write!(f, "invalid {option}: {reason}"),
            Error::HostPath { option, path, reason, source } => {
                write!(f, "{option} {}: {reason}", path.display())?;
                with_source(f, source.as_ref())
            }
            Error::Installable { installable, reason } => write!(f, "cannot use installable '{installable}': {reason}"),
            Error::NixCommand { command, reason, source } => {
                write!(f, "nix ({command}) failed: {reason}")?;
                with_source(f, source.as_ref())
            }
            Error::NixOutput { command, reason } => write!(f, "unexpected output from {command}: {reason}"),
            Error::Timeout { what, seconds } => {
                write!(f, "--timeout expired after {seconds} s while {what} was running")
            }
            Error::Interrupted { signal, during } => write!(f, "stopped by {signal} {during}"),
            Error::Rootfs { reason } => write!(f, "cannot build the root filesystem: {reason}"),
            Error::Plan { reason } => write!(f, "cannot launch this: {reason}"),
            Error::Hook { path, reason } => write!(f, "hook '{path}' refused: {reason}"),
            Error::Bundle { path, reason, source } => {
                write!(f, "bundle {}: {reason}", path.display())?;
                with_source(f, source.as_ref())
            }
            Error::State { path, reason, source } => {
                write!(f, "state {}: {reason}", path.display())?;
                with_source(f, source.as_ref())
            }
            Error::Container { name, reason } => write!(f, "container '{name}': {reason}"),
            Error::Setup { step, source } => write!(f, "cannot {step}: {source}"),
            Error::Runsc { reason } => write!(f, "runsc: {reason}"),
            Error::SandboxDied { reason } => write!(f, "the sandbox died under the running workload: {reason}"),
            Error::Io { context, path, source } => write!(f, "{context} {}: {source}", path.display()),
        }
    }
}

fn with_source(f: &mut fmt::Formatter<'_>, source: Option<&io::Error>) -> fmt::Result {
    match source {
        Some(source) => write!(f, " ({source})"),
        None => Ok(()),
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::HostPath { source: Some(source), .. }
            | Error::NixCommand { source: Some(source), .. }
            | Error::Bundle { source: Some(source), .. }
            | Error::State { source: Some(source), .. } => Some(source),
            Error::Setup { source, .. } | Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Text fit for one line of a terminal: control characters (a newline in a
/// `--name`, an escape sequence in a path) are shown escaped, never raw.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("a\nb\x1b[31mc\td"), "a\\nb\\u{1b}[31mc\\td");
        assert_eq!(printable("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn a_timeout_exits_124_and_everything_else_125() {
        assert_eq!(Error::Timeout { what: "nix".into(), seconds: 3 }.exit_status(), 124);
        assert_eq!(Error::invalid("--x", "y").exit_status(), 125);
        assert_eq!(Error::runsc("boom").exit_status(), 125);
    }

    #[test]
    fn sources_are_kept() {
        use std::error::Error as _;
        let e = Error::setup("create a mount namespace", io::Error::from_raw_os_error(libc::EPERM));
        assert!(e.source().is_some());
        assert!(e.to_string().starts_with("cannot create a mount namespace: "));
    }
}
