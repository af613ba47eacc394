//! The one error type. Every variant says what went wrong in the user's
//! terms and, where there is one, what to do about it. All of them map to
//! exit status 125: a failure of nucleus, not of the workload.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Exit status for every failure of nucleus itself (bad input, setup, runsc).
pub const EXIT_NUCLEUS_FAILED: i32 = 125;

#[derive(Debug)]
pub enum Error {
    /// A command-line value that does not satisfy its rule.
    /// `what` names the option, `why` the rule it broke.
    InvalidArgument { what: String, why: String },
    /// The installable does not name anything nucleus can run.
    Installable { installable: String, why: String },
    /// A Nix command failed or printed something unexpected.
    Nix { command: String, why: String },
    /// The rootfs cannot be built from this closure (e.g. a symlink escapes it).
    Rootfs(String),
    /// A filesystem operation failed on a path nucleus had to touch.
    Io { context: String, path: PathBuf, source: io::Error },
    /// runsc could not be found or refused to work; `why` holds its real reason.
    Runsc(String),
    /// A hook that is not allowed to run.
    Hook { path: String, why: String },
    /// A container name or record problem (in use, unknown, still running).
    Container(String),
    /// A bundle on disk is malformed (not a mismatch, which `verify` reports).
    Bundle(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(what: impl Into<String>, why: impl Into<String>) -> Self {
        Error::InvalidArgument { what: what.into(), why: why.into() }
    }

    pub fn io(context: impl Into<String>, path: impl AsRef<Path>, source: io::Error) -> Self {
        Error::Io { context: context.into(), path: path.as_ref().to_path_buf(), source }
    }

    pub fn nix(command: impl Into<String>, why: impl Into<String>) -> Self {
        Error::Nix { command: command.into(), why: why.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument { what, why } => write!(f, "invalid {what}: {why}"),
            Error::Installable { installable, why } => {
                write!(f, "cannot use installable '{installable}': {why}")
            }
            Error::Nix { command, why } => write!(f, "nix ({command}) failed: {why}"),
            Error::Rootfs(why) => write!(f, "cannot build the root filesystem: {why}"),
            Error::Io { context, path, source } => {
                write!(f, "{context} {}: {source}", path.display())
            }
            Error::Runsc(why) => write!(f, "runsc: {why}"),
            Error::Hook { path, why } => write!(f, "hook '{path}' refused: {why}"),
            Error::Container(why) => write!(f, "{why}"),
            Error::Bundle(why) => write!(f, "bad bundle: {why}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
