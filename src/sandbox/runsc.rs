//! runsc: finding a trustworthy binary, its command lines (decided by the
//! plan, here as data), and reading its log.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;
use serde_json::Value;

use crate::request::RunRequest;
use crate::state::layout::ContainerLayout;
use crate::{Error, Result};

/// The log runsc's control calls (kill, exec, wait, delete) write to, apart
/// from the sandbox's own, so that a failed control call is never taken
/// for a failure of the sandbox.
pub const CONTROL_LOG_FILE: &str = "runsc-control.log";

/// runsc's global flags for one container, and the binary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunscFlags {
    pub binary: PathBuf,
    /// Flags for `runsc run` (the sandbox's log is `runsc.log`).
    pub global: Vec<String>,
    /// The same flags for control calls, logging to [`CONTROL_LOG_FILE`].
    pub control: Vec<String>,
}

impl RunscFlags {
    pub fn for_run(
        req: &RunRequest,
        layout: &ContainerLayout,
        binary: &Path,
        debug: bool,
        cgroups: bool,
        seccomp: bool,
    ) -> Self {
        let mut common = vec![format!("--root={}", layout.runsc_root().display())];
        common.push(format!("--network={}", req.network.runsc_flag()));
        if let Some(platform) = &req.platform {
            common.push(format!("--platform={platform}"));
        }
        if req.rootless {
            common.push("--rootless".into());
        }
        if !cgroups {
            common.push("--ignore-cgroups".into());
        }
        if seccomp {
            // runsc ignores linux.seccomp unless told to apply it.
            common.push("--oci-seccomp".into());
        }
        let with_log = |log: PathBuf| {
            let mut flags = common.clone();
            flags.push(format!("--log={}", log.display()));
            flags.push("--log-format=json".into());
            if debug {
                // A trailing slash makes runsc write one file per process.
                flags.push(format!("--debug-log={}/", layout.debug_dir().display()));
                flags.push("--debug".into());
            }
            flags
        };
        RunscFlags {
            binary: binary.to_path_buf(),
            global: with_log(layout.runsc_log()),
            control: with_log(layout.dir.join(CONTROL_LOG_FILE)),
        }
    }

    /// `runsc run --detach`: it returns once the workload has started (0)
    /// or could not be started (non-zero, the cause in the log).
    pub fn run_args(&self, layout: &ContainerLayout, console: bool) -> Vec<String> {
        let mut args = self.global.clone();
        args.extend(["run".into(), "--detach".into()]);
        args.push(format!("--pid-file={}", layout.sandbox_pid_file().display()));
        args.push(format!("--bundle={}", layout.bundle().dir().display()));
        if console {
            args.push(format!("--console-socket={}", layout.console_socket().display()));
        }
        args.push(layout.runsc_id.clone());
        args
    }

    /// A control call: `runsc <control flags> ARGS…`.
    pub fn control(&self, args: &[&str]) -> Command {
        let mut cmd = self.command(&[]);
        cmd.args(&self.control).args(args);
        cmd
    }

    /// `runsc ARGS…`, as nucleus starts every runsc: with no signal
    /// blocked (nucleus blocks the signals it forwards, and runsc would pass
    /// them on blocked to the hooks it runs), in a process group of its own
    /// (a terminal's Ctrl-C must not end a `runsc delete` and the poststop
    /// hooks it runs half-way; nucleus forwards signals through `runsc
    /// kill`), and without `NOTIFY_SOCKET` (only nucleus tells systemd).
    pub fn command(&self, args: &[String]) -> Command {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(&self.binary);
        cmd.args(args).process_group(0).env_remove("NOTIFY_SOCKET");
        crate::interrupt::unblocked_in_child(&mut cmd);
        cmd
    }
}

/// `--runsc PATH` (or `NUCLEUS_RUNSC`), else the first `runsc` on PATH;
/// canonical, and only if someone else could not have replaced it.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
    let candidate = match explicit.filter(|p| !p.as_os_str().is_empty()) {
        Some(path) => path.to_path_buf(),
        None => search_path("runsc").ok_or_else(|| {
            Error::runsc("not found on PATH; install gVisor (Debian: apt-get install runsc) or pass --runsc PATH")
        })?,
    };
    let binary = candidate.canonicalize().map_err(|e| Error::runsc(format!("{}: {e}", candidate.display())))?;
    check_trusted(&binary)?;
    Ok(binary)
}

fn search_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}

/// runsc runs with our privileges, once per control call as well: refuse
/// one that someone else could replace, in place or by renaming a
/// directory above it.
fn check_trusted(binary: &Path) -> Result<()> {
    crate::host::trust::check_trusted_program(binary)
        .map_err(|why| Error::runsc(format!("refusing to run it: {why}")))?;
    let mode = binary.metadata().map_err(|e| Error::runsc(format!("{}: {e}", binary.display())))?.mode();
    if mode & 0o111 == 0 {
        return Err(Error::runsc(format!("{} is not executable", binary.display())));
    }
    Ok(())
}

/// The error-level messages of a runsc JSON log, oldest first. Each line is
/// one JSON object; messages may hold braces of their own (`&{…}`), so the
/// text is parsed as a stream of values, never split by hand. A process
/// killed mid-line can leave a character cut short at the end: that must
/// not hide the messages before it, so the bytes are read leniently.
pub fn logged_errors(log: &Path) -> Vec<String> {
    let Ok(bytes) = std::fs::read(log) else { return Vec::new() };
    let text = String::from_utf8_lossy(&bytes);
    serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .map_while(|v| v.ok())
        .filter(|v| matches!(v.get("level").and_then(Value::as_str), Some("error" | "fatal")))
        .filter_map(|v| v.get("msg").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// The most specific error runsc logged. Its top-level message is almost
/// always `waiting for sandbox to start: EOF`; the gofer's or the sentry's
/// line says what really went wrong.
pub fn failure_cause(log: &Path) -> Option<String> {
    let messages = logged_errors(log);
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
    fn flags_for_a_run() {
        let layout = ContainerLayout::new(Path::new("/s"), "web");
        let mut req = RunRequest::new(None, None);
        req.platform = Some("ptrace".into());
        let flags = RunscFlags::for_run(&req, &layout, Path::new("/bin/runsc"), false, false, true);
        assert_eq!(
            flags.global,
            [
                "--root=/s/web/runsc",
                "--network=none",
                "--platform=ptrace",
                "--ignore-cgroups",
                "--oci-seccomp",
                "--log=/s/web/runsc.log",
                "--log-format=json"
            ]
        );
        assert!(flags.control.contains(&"--log=/s/web/runsc-control.log".to_string()));
        let run = flags.run_args(&layout, true);
        assert_eq!(
            &run[flags.global.len()..],
            [
                "run",
                "--detach",
                "--pid-file=/s/web/sandbox.pid",
                "--bundle=/s/web/bundle",
                "--console-socket=/s/web/console.sock",
                layout.runsc_id.as_str()
            ]
        );
        req.rootless = true;
        let rootless = RunscFlags::for_run(&req, &layout, Path::new("/bin/runsc"), true, true, false);
        assert!(rootless.global.contains(&"--rootless".to_string()));
        assert!(!rootless.global.contains(&"--ignore-cgroups".to_string()));
        assert!(rootless.global.contains(&"--debug-log=/s/web/debug/".to_string()));
    }

    #[test]
    fn finds_the_real_cause_in_runsc_log_even_with_braces() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runsc.log");
        std::fs::write(
            &log,
            concat!(
                r#"{"msg":"Args: &{root:/x}","level":"info","time":"t"}"#,
                "\n",
                r#"{"msg":"error setting up FS: mounting &{/nope}: no such file","level":"error","time":"t"}"#,
                "\n",
                r#"{"msg":"running container: waiting for sandbox to start: EOF","level":"error","time":"t"}"#,
                "\n"
            ),
        )
        .unwrap();
        assert_eq!(failure_cause(&log).unwrap(), "error setting up FS: mounting &{/nope}: no such file");
        assert!(failure_cause(&dir.path().join("missing")).is_none());
    }

    #[test]
    fn a_line_cut_inside_a_character_hides_nothing_before_it() {
        // Found by fuzz/fuzz_targets/runsc_log.rs: the whole log was read
        // as UTF-8, so one cut character lost every message.
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runsc.log");
        let mut bytes = br#"{"msg":"gofer: mount failed","level":"error","time":"t"}"#.to_vec();
        bytes.extend_from_slice(b"\n{\"msg\":\"caf\xc3");
        std::fs::write(&log, bytes).unwrap();
        assert_eq!(logged_errors(&log), ["gofer: mount failed"]);
        assert_eq!(failure_cause(&log).unwrap(), "gofer: mount failed");
    }

    #[test]
    fn refuses_a_world_writable_runsc() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("runsc");
        std::fs::write(&fake, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(locate(Some(&fake)), Err(Error::Runsc { .. })));
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(locate(Some(&fake)).is_ok());
    }
}
