//! Running Nix's own commands. Nix prints progress and errors on stderr; we
//! pass that through so the user sees Nix's reason, and read only stdout.
//! The environment (including `NIX_CONFIG`) is inherited untouched.

use std::ffi::OsStr;
use std::process::{Command, Stdio};

use crate::{Error, Result};

/// `nix` with the experimental command set enabled, as Nix 2.8 requires.
pub fn nix() -> Command {
    let mut cmd = Command::new("nix");
    cmd.args(["--extra-experimental-features", "nix-command flakes"]);
    cmd
}

/// Runs `cmd`, letting stderr through, and returns stdout as UTF-8.
pub fn stdout_of(mut cmd: Command) -> Result<String> {
    let shown = describe(&cmd);
    tracing::debug!(command = %shown, "running nix");
    let output = cmd.stdin(Stdio::null()).stderr(Stdio::inherit()).stdout(Stdio::piped()).output().map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            "is Nix installed and on PATH?".to_string()
        } else {
            e.to_string()
        };
        Error::nix(&shown, hint)
    })?;
    if !output.status.success() {
        return Err(Error::nix(&shown, format!("{} (Nix's message is above)", output.status)));
    }
    String::from_utf8(output.stdout).map_err(|_| Error::nix(&shown, "output is not UTF-8"))
}

/// True when Nix's database records `path` as valid (fully built or
/// substituted). Never substitutes or builds anything.
pub fn is_valid_path(path: &str) -> Result<bool> {
    let mut cmd = Command::new("nix-store");
    cmd.args(["--check-validity", path]);
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| Error::nix(describe(&cmd), e.to_string()))?;
    Ok(status.success())
}

/// The command as the user would type it, without the feature flags we add.
fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    let args = cmd.get_args().map(OsStr::to_string_lossy);
    for arg in args.filter(|a| a != "--extra-experimental-features" && a != "nix-command flakes") {
        text.push(' ');
        text.push_str(&arg);
    }
    text
}
