//! The Nix side, built for real with `nix-build --option sandbox true` (and
//! no fallback to an unsandboxed build), with busybox as the only tool and
//! no nixpkgs:
//!
//! - the library's unit tests, which the package runs in its own sandboxed
//!   build, pass in a Nix sandbox (so none of them may depend on the host);
//! - the NixOS module's `nucleus check-args` build steps, with the real
//!   nucleus, pass for a good configuration and fail with nucleus's own
//!   message for one it refuses;
//! - a test runner from lib.mkTestRunner runs a suite under the real
//!   nucleus and runsc and returns its exit status (this part needs root).
//!
//! Host-built programs (cargo's) reach the sandbox with the host's loader and
//! libraries, as tests/nix/host-program.nix describes. Builds leave no GC
//! root; everything else happens in temporary directories.

use std::path::Path;
use std::process::{Command, Stdio};

mod common;
#[path = "common/nix_support.rs"]
mod nix_support;

use common::NUCLEUS;
use nix_support::{busybox, host_libraries, module_args, nix_build, output, stderr, tempdir, unit_test_program, ROOT};

#[test]
fn library_unit_tests_pass_inside_a_nix_sandbox() {
    let program = unit_test_program();
    let work = tempdir();
    let out = output(
        nix_build(work.path())
            .arg(Path::new(ROOT).join("tests/nix/unit-tests.nix"))
            .args(["--arg", "busyboxFile", &busybox()])
            .arg("--argstr")
            .arg("program")
            .arg(&program)
            .args(["--argstr", "librariesJson", &host_libraries(&program)]),
    );
    let log = stderr(&out);
    assert!(
        out.status.success(),
        "the unit tests ({}) fail inside a Nix sandbox, so some depend on the host:\n{log}",
        program.display()
    );
    let built = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let report = std::fs::read_to_string(&built).unwrap_or_default();
    assert!(report.contains("test result: ok."), "no test ran in the sandbox:\n{report}\n{log}");
}

/// `nix-build` of the argument checks (system.checks) the module declares
/// for a configuration in tests/nix/, with the real nucleus as the package.
fn build_argument_checks(configuration: &str) -> std::process::Output {
    let work = tempdir();
    let mut cmd = nix_build(work.path());
    module_args(&mut cmd, configuration);
    cmd.args(["--argstr", "nucleusProgram", NUCLEUS])
        .args(["--argstr", "nucleusLibrariesJson", &host_libraries(Path::new(NUCLEUS))])
        .args(["-A", "checks"]);
    output(&mut cmd)
}

#[test]
fn the_module_argument_checks_pass_for_a_good_configuration() {
    let out = build_argument_checks("module-config.nix");
    assert!(out.status.success(), "nucleus check-args refused module-config.nix:\n{}", stderr(&out));
    let built = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(built, 3, "one check per enabled container:\n{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn the_module_argument_checks_fail_with_nucleus_s_own_message() {
    let out = build_argument_checks("module-refused-config.nix");
    let log = stderr(&out);
    assert!(!out.status.success(), "the build accepted pids = 10:\n{log}");
    assert!(log.lines().any(|l| l.starts_with("nucleus: ") && l.contains("--pids")), "no message from nucleus:\n{log}");
    assert!(log.contains("services.nucleus.containers.refused: nucleus refuses these arguments"), "{log}");
}

/// Builds tests/nix/test-runner.nix's runner with the real nucleus and runs
/// it in a fresh directory as the user would (`nix run .#tests`); returns
/// the directory and the exit status.
fn run_suite(command: &str, timeout: u32) -> (tempfile::TempDir, Option<i32>) {
    let world = tempdir();
    let out = output(
        nix_build(world.path())
            .arg(Path::new(ROOT).join("tests/nix/test-runner.nix"))
            .args(["--arg", "busyboxFile", &busybox()])
            .args(["--argstr", "nucleusBinary", NUCLEUS])
            .args(["--arg", "command", command])
            .args(["--arg", "timeout", &timeout.to_string()])
            .args(["-A", "runner"]),
    );
    assert!(out.status.success(), "cannot build the runner:\n{}", stderr(&out));
    let runner = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let cwd = world.path().join("project");
    std::fs::create_dir(&cwd).unwrap();
    let status = Command::new(Path::new(&runner).join("bin/run-suite"))
        .current_dir(&cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NIX_CONFIG", common::NIX_CONFIG)
        .env("NUCLEUS_STATE_ROOT", world.path().join("state"))
        .stdin(Stdio::null())
        .status()
        .unwrap();
    (world, status.code())
}

#[test]
fn the_test_runner_returns_the_suite_s_status_and_its_results() {
    // Root and runsc, as every end-to-end test needs.
    let _world = common::World::new();
    let (dir, status) = run_suite(r#"[ "/bin/run-tests" "3" ]"#, 120);
    assert_eq!(status, Some(3), "the runner did not return the suite's status");
    let report = std::fs::read_to_string(dir.path().join("project/results/report.txt")).expect("no report in results/");
    assert!(report.contains("suite ran as 0 in /"), "{report}");
    assert!(report.contains("the root is read-only"), "{report}");

    // A suite past its deadline: 124.
    let (_dir, status) = run_suite(r#"[ "/bin/run-tests" "0" "60" ]"#, 2);
    assert_eq!(status, Some(124), "the deadline did not hold");
}
