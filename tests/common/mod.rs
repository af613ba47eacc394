//! Shared harness for the end-to-end tests: real closures built by
//! `nix-build` from `tests/closures/*.nix`, the real runsc, and one private
//! state root per test. A missing runsc or Nix fails the test; nothing here
//! skips.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

pub const NUCLEUS: &str = env!("CARGO_BIN_EXE_nucleus");

/// Nix settings for the tests: no binary cache (there is no network).
pub const NIX_CONFIG: &str = "substituters =\nsandbox = true";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The host's static busybox, canonical, so Nix copies a file, not a link.
fn busybox_file() -> String {
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
    let mut cmd = Command::new("nix-build");
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

/// `nix-store -qR PATH`, sorted.
pub fn requisites(path: &Path) -> Vec<String> {
    let out = Command::new("nix-store").arg("-qR").arg(path).output().unwrap();
    assert!(out.status.success());
    let mut paths: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect();
    paths.sort();
    paths
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

    /// Asserts the state root holds no container (the closure cache in
    /// `.cache` is kept on purpose) and no mount of ours leaked.
    pub fn assert_clean(&self) {
        let root = self.state_root();
        if root.exists() {
            let left: Vec<_> = std::fs::read_dir(&root)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|p| !p.ends_with(".cache"))
                .collect();
            assert!(left.is_empty(), "left behind in the state root: {left:?}");
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(root.to_str().unwrap()), "a mount leaked onto the host:\n{mounts}");
    }
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
