//! Shared harness for the end-to-end tests: real closures built by
//! `nix-build` from `tests/closures/*.nix`, the real runsc, and one private
//! state root per test. A missing runsc or Nix fails the test; nothing here
//! skips.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const NUCLEUS: &str = env!("CARGO_BIN_EXE_nucleus");

/// Nix settings for the tests: no binary cache (there is no network).
pub const NIX_CONFIG: &str = "substituters =\nsandbox = true";

/// The unprivileged user that `.ci/run` creates (in group nix-users, so it
/// can reach the Nix daemon that `.ci/run` starts).
pub const UNPRIVILEGED_USER: &str = "nucleus-ci";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The host's static busybox, canonical, so Nix copies a file, not a link.
pub fn busybox_file() -> String {
    let found = which("busybox").expect("busybox not found: install busybox-static (.ci/run does)");
    found.canonicalize().unwrap().display().to_string()
}

/// A Nix binary (`nix`, `nix-store`, …): from PATH, else the usual install
/// locations. A missing Nix fails the test.
pub fn nix_bin(name: &str) -> PathBuf {
    let fixed = ["/usr/bin", "/run/current-system/sw/bin", "/nix/var/nix/profiles/default/bin"];
    which(name)
        .or_else(|| fixed.iter().map(|dir| Path::new(dir).join(name)).find(|p| p.is_file()))
        .unwrap_or_else(|| panic!("cannot find `{name}`: these tests need a real Nix installation"))
}

pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// Builds `tests/closures/NAME.nix` (once per test binary) and returns its
/// store path. `--no-out-link`: tests create no GC roots on the host.
pub fn closure(name: &str) -> PathBuf {
    closure_with(name, &[])
}

pub fn closure_with(name: &str, args: &[(&str, &str)]) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let key = format!("{name}{args:?}");
    let cache = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(path) = cache.lock().unwrap().get(&key) {
        return path.clone();
    }
    let file = repo().join("tests/closures").join(format!("{name}.nix"));
    let mut cmd = Command::new(nix_bin("nix-build"));
    cmd.env("NIX_CONFIG", NIX_CONFIG)
        .args(["--no-out-link", "--option", "sandbox", "true", "--option", "substituters", ""])
        .arg(&file)
        .args(["--arg", "busyboxFile", &busybox_file()]);
    for (arg, expr) in args {
        cmd.args(["--arg", arg, expr]);
    }
    let out = cmd.stderr(Stdio::inherit()).output().expect("nix-build not found: install nix-bin (.ci/run does)");
    assert!(out.status.success(), "nix-build {} failed", file.display());
    let path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    cache.lock().unwrap().insert(key, path.clone());
    path
}

/// The hello closure (busybox applets and `/bin/hello`), as a string.
pub fn hello() -> String {
    closure("hello").to_str().unwrap().to_string()
}

/// `nix-store -qR PATH`, sorted.
pub fn requisites(path: &Path) -> Vec<String> {
    let out = Command::new(nix_bin("nix-store")).arg("-qR").arg(path).output().unwrap();
    assert!(out.status.success());
    let mut paths: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect();
    paths.sort();
    paths
}

/// `nix hash path [FLAG] PATH`, trimmed.
pub fn nix_hash(path: &Path, flag: Option<&str>) -> String {
    let mut cmd = Command::new(nix_bin("nix"));
    cmd.args(["--extra-experimental-features", "nix-command", "hash", "path"]).args(flag).arg(path);
    let out = cmd.output().expect("nix not found");
    assert!(out.status.success(), "nix hash path failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `sha256:` and 64 hex digits.
pub fn is_digest(text: &str) -> bool {
    text.len() == 71 && text.starts_with("sha256:") && text[7..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// The names in `dir`, or none if it does not exist.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(d) => d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// What `nucleus run --dry-run` prints: one JSON document.
pub struct DryRun {
    pub digest: String,
    pub config: serde_json::Value,
    pub launch: serde_json::Value,
}

/// One test's world: a state root of its own, checked for leftovers.
pub struct World {
    pub tmp: tempfile::TempDir,
}

impl World {
    pub fn new() -> Self {
        assert!(which("runsc").is_some(), "runsc not found: install it (Debian: apt-get install runsc; .ci/run does)");
        World { tmp: tempfile::Builder::new().prefix("nucleus-test-").tempdir().unwrap() }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn state_root(&self) -> PathBuf {
        self.tmp.path().join("state")
    }

    /// `nucleus ARGS…` with this world's state root and a clean environment
    /// apart from what Nix and runsc need.
    pub fn nucleus(&self) -> Command {
        let mut cmd = Command::new(NUCLEUS);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NIX_CONFIG", NIX_CONFIG)
            .env("NUCLEUS_STATE_ROOT", self.state_root())
            .current_dir(self.tmp.path())
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.nucleus().args(args).output().unwrap()
    }

    /// Runs `sh -c SCRIPT` inside `closure`.
    pub fn sh(&self, closure: &Path, script: &str) -> Output {
        self.run(&["run", closure.to_str().unwrap(), "--", "/bin/sh", "-c", script])
    }

    /// `nucleus run OPTIONS hello -- /bin/sh -c SCRIPT`.
    pub fn sh_with(&self, options: &[&str], script: &str) -> Output {
        let closure = hello();
        let mut args = vec!["run"];
        args.extend_from_slice(options);
        args.extend_from_slice(&[&closure, "--", "/bin/sh", "-c", script]);
        self.run(&args)
    }

    /// Starts `nucleus run --name NAME OPTIONS hello -- /bin/sh -c SCRIPT` in
    /// the background, stdout and stderr piped.
    pub fn spawn_sh(&self, name: &str, options: &[&str], script: &str) -> Child {
        let mut args = vec!["run", "--name", name];
        args.extend_from_slice(options);
        let closure = hello();
        args.extend_from_slice(&[&closure, "--", "/bin/sh", "-c", script]);
        self.nucleus().args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    }

    /// Waits until container `name` is running (at most 20 s).
    pub fn wait_running(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if stdout(&self.run(&["state", name])).contains("\"running\"") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("container {name} never ran");
    }

    /// Clears container `name` after its `nucleus run` was killed: its
    /// orphaned supervisor may have discarded it already, else `delete`
    /// does. Either way it is gone at once.
    pub fn delete_killed(&self, name: &str) {
        let out = self.run(&["delete", "--force", name]);
        assert!(!self.run(&["state", name]).status.success(), "{name} is still there: {}", stderr(&out));
    }

    /// A PATH on which `nix`, `nix-store`, `nix-build` and `nix-instantiate`
    /// never answer (as a long build or a wedged daemon), then the real PATH.
    pub fn hanging_nix_path(&self) -> String {
        let bin = self.path("hanging-nix");
        std::fs::create_dir_all(&bin).unwrap();
        for name in ["nix", "nix-store", "nix-build", "nix-instantiate"] {
            script(&bin, name, "exec sleep 600");
        }
        format!("{}:{}", bin.display(), std::env::var("PATH").unwrap())
    }

    /// `nucleus run --dry-run ARGS…`, parsed.
    pub fn dry_run(&self, args: &[&str]) -> DryRun {
        let mut all = vec!["run", "--dry-run"];
        all.extend_from_slice(args);
        parse_dry_run(&ok(&self.run(&all)))
    }

    /// `nucleus run --dry-run OPTIONS hello -- COMMAND…`.
    pub fn dry_run_hello(&self, options: &[&str], command: &[&str]) -> DryRun {
        let closure = hello();
        let mut args = options.to_vec();
        args.extend_from_slice(&[&closure, "--"]);
        args.extend_from_slice(command);
        self.dry_run(&args)
    }

    /// Asserts the state root holds no container (the closure cache in
    /// `.cache` is kept on purpose), no mount of ours leaked (a kept store
    /// view in `.cache/views` is a mount on purpose; dropping the world
    /// removes it), and no runsc of ours is left.
    pub fn assert_clean(&self) {
        let root = self.state_root();
        let left: Vec<String> = entries(&root).into_iter().filter(|e| e != ".cache").collect();
        assert!(left.is_empty(), "left behind in the state root: {left:?}");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let views = root.join(nucleus::sandbox::views::VIEWS_DIR);
        let leaked: Vec<&str> = mounts
            .lines()
            .filter(|l| l.contains(root.to_str().unwrap()) && !l.contains(views.to_str().unwrap()))
            .collect();
        assert!(leaked.is_empty(), "a mount leaked onto the host:\n{}", leaked.join("\n"));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.runsc_processes().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(self.runsc_processes().is_empty(), "runsc left running: {:?}", self.runsc_processes());
    }

    /// runsc processes whose command line names this world's state root.
    pub fn runsc_processes(&self) -> Vec<String> {
        let root = self.state_root().display().to_string();
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains("runsc") && c.contains(&root))
            .collect()
    }
}

/// Kept store views are mounts in the host's table: take them away with the
/// world ([`nucleus::sandbox::views::remove_all`]), so that nothing outlives the test.
impl Drop for World {
    fn drop(&mut self) {
        let _ = nucleus::sandbox::views::remove_all(&self.state_root());
    }
}

pub fn parse_dry_run(out: &str) -> DryRun {
    let doc: serde_json::Value =
        serde_json::from_str(out).unwrap_or_else(|e| panic!("--dry-run printed no single JSON document ({e}): {out}"));
    let digest = doc["digest"].as_str().unwrap_or_default().to_string();
    assert!(is_digest(&digest), "no digest in {out}");
    DryRun { digest, config: doc["config"].clone(), launch: doc["launch"].clone() }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts success and returns stdout.
#[track_caller]
pub fn ok(out: &Output) -> String {
    assert!(out.status.success(), "status {:?}\nstdout: {}\nstderr: {}", out.status, stdout(out), stderr(out));
    stdout(out)
}

#[track_caller]
pub fn assert_status(out: &Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "stdout: {}\nstderr: {}", stdout(out), stderr(out));
}

/// Asserts a failure of nucleus itself: 125, nothing on stdout, and a short
/// reason on stderr starting `nucleus: `.
#[track_caller]
pub fn assert_refused(out: &Output) {
    assert_status(out, 125);
    let err = stderr(out);
    assert!(err.starts_with("nucleus: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(stdout(out).is_empty(), "stdout: {}", stdout(out));
}

/// Sends `signal` to a process this test started, by its pid.
pub fn signal(child: &Child, signal: i32) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::try_from(signal).unwrap()).unwrap();
}

/// Runs a bundle nucleus wrote under another runtime, with no stdin:
/// `runtime --root ROOT FLAGS… run --bundle BUNDLE ID` (runc or runsc).
pub fn run_bundle_under(runtime: &str, root: &Path, flags: &[&str], bundle: &Path, id: &str) -> Output {
    Command::new(runtime)
        .arg("--root")
        .arg(root)
        .args(flags)
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{runtime}: {e} (apt-get install {runtime})"))
}

/// Runs `program ARGS…` as the unprivileged user, in a clean environment.
pub fn as_unprivileged_user(program: &str) -> Command {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", UNPRIVILEGED_USER, "--", "env", "-i"])
        .arg(format!("PATH={}", std::env::var("PATH").unwrap()))
        .arg("NIX_REMOTE=daemon")
        .arg(format!("NIX_CONFIG={NIX_CONFIG}"))
        .arg(program);
    cmd
}

/// Waits until `condition` holds, at most `limit`.
#[track_caller]
pub fn eventually(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for `child` at most `limit`; kills it and fails the test after.
#[track_caller]
pub fn wait_at_most(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The first line `child` writes on its (piped) stdout, without the newline.
pub fn first_line(child: &mut Child) -> String {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    line.trim_end_matches('\n').to_string()
}

/// An executable shell script `dir/name` running `body`.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}
