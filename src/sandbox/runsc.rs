//! Finding runsc and building its command lines.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::request::Network;
use crate::{Error, Result};

/// A runsc binary we are willing to run as the caller.
#[derive(Clone, Debug)]
pub struct Runsc {
    pub binary: PathBuf,
}

impl Runsc {
    /// `--runsc PATH`, then `NUCLEUS_RUNSC`, then the first `runsc` on PATH.
    pub fn locate(explicit: Option<&Path>) -> Result<Self> {
        let from_env = std::env::var_os("NUCLEUS_RUNSC").filter(|v| !v.is_empty()).map(PathBuf::from);
        let candidate = match explicit.map(Path::to_path_buf).or(from_env) {
            Some(path) => path,
            None => search_path("runsc").ok_or_else(|| {
                Error::Runsc(
                    "runsc not found on PATH; install gVisor (Debian: apt-get install runsc) or pass --runsc PATH"
                        .into(),
                )
            })?,
        };
        let binary = candidate.canonicalize().map_err(|e| Error::Runsc(format!("{}: {e}", candidate.display())))?;
        check_trusted(&binary)?;
        Ok(Runsc { binary })
    }

    pub fn command(&self, globals: &Globals) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.args(globals.args());
        cmd
    }

    /// Runs a short runsc subcommand (kill, delete, state) and returns its
    /// stdout. runsc can block on a container it has wedged (a hook that
    /// timed out, for one), so the call gives up after [`QUERY_TIMEOUT`].
    pub fn query(&self, globals: &Globals, args: &[&str]) -> Result<String> {
        let mut child = self
            .command(globals)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Runsc(format!("cannot start {}: {e}", self.binary.display())))?;
        let deadline = Instant::now() + QUERY_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Error::Runsc(format!("{} did not answer within {QUERY_TIMEOUT:?}", args.join(" "))));
                }
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
        if status.success() {
            Ok(stdout)
        } else {
            Err(Error::Runsc(format!("{} failed: {}", args.join(" "), last_line(&stderr))))
        }
    }
}

impl Runsc {
    /// `runsc kill ID SIGNAL`, retried for up to `patience` while
    /// `worth_retrying` says so: right after start, runsc may not have
    /// recorded the container yet.
    pub fn kill(
        &self,
        globals: &Globals,
        id: &str,
        signal: nix::sys::signal::Signal,
        patience: Duration,
        worth_retrying: impl Fn() -> bool,
    ) -> Result<()> {
        let name = signal.as_str().trim_start_matches("SIG");
        let deadline = Instant::now() + patience;
        loop {
            match self.query(globals, &["kill", id, name]) {
                Ok(_) => return Ok(()),
                Err(_) if Instant::now() < deadline && worth_retrying() => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// How long a runsc control command (kill, state, delete) may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// runsc's global flags for one container.
#[derive(Clone, Debug, Default)]
pub struct Globals {
    /// runsc's own state directory (`--root`), inside the container's.
    pub root: PathBuf,
    /// Where runsc writes its own messages instead of our stderr.
    pub log: Option<PathBuf>,
    /// Directory for runsc's per-process debug logs.
    pub debug_log_dir: Option<PathBuf>,
    pub network: Network,
    pub platform: Option<String>,
    pub rootless: bool,
    /// runsc creates cgroups only when there are limits to enforce.
    pub cgroups: bool,
    /// runsc applies `linux.seccomp` only when told to.
    pub oci_seccomp: bool,
}

impl Globals {
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![flag("--root", &self.root)];
        if let Some(log) = &self.log {
            args.push(flag("--log", log));
            args.push("--log-format=json".into());
        }
        if let Some(dir) = &self.debug_log_dir {
            // A trailing slash makes runsc write one file per process.
            let mut value = OsString::from("--debug-log=");
            value.push(dir.as_os_str());
            value.push("/");
            args.push(value);
        }
        args.push(format!("--network={}", self.network.runsc_flag()).into());
        if let Some(platform) = &self.platform {
            args.push(format!("--platform={platform}").into());
        }
        if self.rootless {
            args.push("--rootless".into());
        }
        if !self.cgroups {
            args.push("--ignore-cgroups".into());
        }
        if self.oci_seccomp {
            args.push("--oci-seccomp".into());
        }
        args
    }
}

fn flag(name: &str, value: &Path) -> OsString {
    let mut arg = OsString::from(name);
    arg.push("=");
    arg.push(value.as_os_str());
    arg
}

fn search_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}

/// runsc runs with our privileges: refuse one that someone else could have
/// replaced.
fn check_trusted(binary: &Path) -> Result<()> {
    let meta = binary.metadata().map_err(|e| Error::Runsc(format!("{}: {e}", binary.display())))?;
    if !meta.is_file() {
        return Err(Error::Runsc(format!("{} is not a regular file", binary.display())));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != me {
        return Err(Error::Runsc(format!(
            "{} is owned by uid {}, neither root nor you; refusing to run it",
            binary.display(),
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(Error::Runsc(format!(
            "{} is writable by group or others (mode {:o}); refusing to run it",
            binary.display(),
            meta.mode() & 0o7777
        )));
    }
    if meta.mode() & 0o111 == 0 {
        return Err(Error::Runsc(format!("{} is not executable", binary.display())));
    }
    Ok(())
}

fn last_line(text: &str) -> &str {
    text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message").trim()
}

/// The most specific error runsc logged. Its top-level message is almost
/// always the useless `waiting for sandbox to start: EOF`; the gofer's or
/// the sentry's line says what really went wrong.
pub fn failure_cause(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let messages: Vec<String> = text
        .split_inclusive('}')
        .filter_map(|chunk| serde_json::from_str::<serde_json::Value>(chunk.trim()).ok())
        .filter(|v| v.get("level").and_then(|l| l.as_str()) == Some("error"))
        .filter_map(|v| v.get("msg").and_then(|m| m.as_str()).map(str::to_string))
        .collect();
    let generic = |m: &str| m.contains("waiting for sandbox to start") || m.contains("Error reading mounts file");
    messages
        .iter()
        .find(|m| !generic(m))
        .or_else(|| messages.last())
        .map(|m| m.lines().next().unwrap_or("").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_flags() {
        let g = Globals { root: "/s/runsc".into(), platform: Some("ptrace".into()), ..Default::default() };
        let args: Vec<String> = g.args().into_iter().map(|a| a.into_string().unwrap()).collect();
        assert_eq!(args, ["--root=/s/runsc", "--network=none", "--platform=ptrace", "--ignore-cgroups"]);
        let g = Globals { cgroups: true, oci_seccomp: true, rootless: true, ..Default::default() };
        let args: Vec<String> = g.args().into_iter().map(|a| a.into_string().unwrap()).collect();
        assert!(args.contains(&"--oci-seccomp".to_string()) && args.contains(&"--rootless".to_string()));
        assert!(!args.contains(&"--ignore-cgroups".to_string()));
    }

    #[test]
    fn finds_the_real_cause_in_runsc_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runsc.log");
        std::fs::write(
            &log,
            r#"{"msg":"error setting up FS: mounting /nope: no such file","level":"error","time":"t"}{"msg":"Error reading mounts file: x\nJSON","level":"error","time":"t"}{"msg":"running container: waiting for sandbox to start: EOF","level":"error","time":"t"}"#,
        )
        .unwrap();
        assert_eq!(failure_cause(&log).unwrap(), "error setting up FS: mounting /nope: no such file");
        assert!(failure_cause(&dir.path().join("missing")).is_none());
    }

    #[test]
    fn refuses_a_world_writable_runsc() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("runsc");
        std::fs::write(&fake, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = Runsc::locate(Some(&fake)).unwrap_err().to_string();
        assert!(err.contains("writable by group or others"), "{err}");
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(Runsc::locate(Some(&fake)).is_ok());
    }
}
