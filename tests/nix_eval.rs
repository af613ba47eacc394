//! The Nix side of nucleus (flake.nix, nix/lib.nix, nix/module.nix), checked
//! with the real Nix and no nixpkgs: every `.nix` file parses; nix/lib.nix's
//! argument builder and systemd quoting give the expected values; the NixOS
//! module, evaluated with a stand-in of NixOS's module system
//! (tests/nix/eval-module.nix), renders the expected units, refuses what only
//! Nix can see, and hands nucleus arguments that the real CLI's `check-args`
//! accepts; the test runner (lib.mkTestRun) has the expected shape.
//!
//! Without Nix these tests fail rather than skip. They only write to
//! temporary directories and build nothing.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

mod common;
#[path = "common/nix_support.rs"]
mod nix_support;

use common::NUCLEUS;
use nix_support::{
    check, eval, eval_error, eval_with, module_summary, output, stderr, strings, systemd_words, tempdir, unit_value,
    unit_values, ROOT,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------
// Files.

#[test]
fn every_nix_file_in_the_repository_parses() {
    let work = tempdir();
    let mut found = BTreeSet::new();
    let mut failures = Vec::new();
    let walk = walkdir::WalkDir::new(ROOT).follow_links(false).into_iter().filter_entry(|e| {
        let name = e.file_name().to_string_lossy();
        !(e.depth() > 0 && e.file_type().is_dir() && (name == "target" || name == ".git"))
    });
    for entry in walk {
        let entry = entry.expect("cannot walk the repository");
        // Symlinks (./result and friends) point into the store, not at our sources.
        if !entry.file_type().is_file() || entry.path().extension() != Some(OsStr::new("nix")) {
            continue;
        }
        let rel = entry.path().strip_prefix(ROOT).unwrap().display().to_string();
        let out = output(nix_support::nix_command("nix-instantiate", work.path()).arg("--parse").arg(entry.path()));
        if !out.status.success() {
            failures.push(format!("{rel}: {}", stderr(&out)));
        }
        found.insert(rel);
    }
    for required in [
        "flake.nix",
        "nix/lib.nix",
        "nix/module.nix",
        "nix/package.nix",
        "nix/rootfs.nix",
        "nix/test-run.nix",
        "tests/closures/hello.nix",
        "tests/nix/lib-tests.nix",
        "tests/nix/module-config.nix",
        "tests/nix/module-bad-config.nix",
        "tests/nix/module-refused-config.nix",
        "tests/nix/eval-module.nix",
        "tests/nix/stand-in/lib.nix",
        "tests/nix/stand-in/nixos.nix",
        "tests/nix/stand-in/pkgs.nix",
    ] {
        assert!(found.contains(required), "{required} was not found (found: {found:?})");
    }
    assert!(failures.is_empty(), "files that do not parse:\n{}", failures.join("\n"));
}

#[test]
fn flake_lock_pins_nixpkgs() {
    let lock: Value = serde_json::from_str(&fs::read_to_string(Path::new(ROOT).join("flake.lock")).unwrap()).unwrap();
    assert_eq!(lock["version"], 7);
    assert_eq!(lock["root"], "root");
    assert_eq!(lock["nodes"]["root"]["inputs"], json!({ "nixpkgs": "nixpkgs" }));
    let locked = &lock["nodes"]["nixpkgs"]["locked"];
    assert_eq!(locked["type"], "github");
    assert_eq!(locked["owner"], "NixOS");
    assert_eq!(locked["repo"], "nixpkgs");
    assert_eq!(locked["rev"], "d1c15b7d5806069da59e819999d70e1cec0760bf");
    assert_eq!(locked["lastModified"], 1771207753);
    assert_eq!(locked["narHash"], "sha256-b9uG8yN50DRQ6A7JdZBfzq718ryYrlmGgqkRm9OOwCE=");
    assert_eq!(lock["nodes"]["nixpkgs"]["original"]["ref"], "nixpkgs-unstable");
}

/// Nix 2.8 can evaluate the flake's own expressions: no `lib.fileset`
/// (builtins.readFileType is Nix 2.14), and modules given as attribute sets
/// (older `nix flake check` refuses a path there).
#[test]
fn the_flake_and_package_avoid_what_nix_2_8_lacks() {
    for file in ["flake.nix", "nix/package.nix", "nix/module.nix", "nix/lib.nix", "nix/rootfs.nix", "nix/test-run.nix"]
    {
        let text = fs::read_to_string(Path::new(ROOT).join(file)).unwrap();
        let code: String = text.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
        for newer in ["lib.fileset", "readFileType"] {
            assert!(!code.contains(newer), "{file} uses {newer}, which Nix 2.8 lacks");
        }
    }
    let modules = eval(
        r#"let flake = import (/. + root + "/flake.nix"); outputs = flake.outputs {
             self = outputs; nixpkgs = { lib.genAttrs = names: f: builtins.listToAttrs (map (name: { inherit name; value = f name; }) names); legacyPackages = { }; }; };
           in builtins.mapAttrs (_: m: builtins.typeOf m) outputs.nixosModules"#,
    );
    assert_eq!(modules, json!({ "default": "set", "nucleus": "set" }));
}

// ---------------------------------------------------------------------------
// mkRunArgs.

#[test]
fn the_nix_lib_test_suite_passes() {
    let got = eval("import (/. + root + \"/tests/nix/lib-tests.nix\") { nucleusLib = lib; }");
    assert_eq!(got["failures"], json!([]), "tests/nix/lib-tests.nix failed: {got:#}");
    assert!(got["passed"].as_u64().unwrap() >= 25, "{got}");
}

#[test]
fn mk_run_args_emits_every_field_in_order() {
    let got = eval(
        r#"lib.mkRunArgs {
          command = [ "/bin/app" "--flag" "two words" ];
          closure = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-rootfs";
          extraOptions = [ "--keep" ];
          timeout = 30;
          platform = "ptrace";
          network = "sandbox";
          hooks = "/etc/nucleus/hooks.json";
          seccompProfileSha256 = "ab";
          seccompProfile = "/etc/nucleus/seccomp.json";
          pids = 100;
          cpus = 1.5;
          memory = "64M";
          workdir = "/work";
          user = "1000:100";
          secrets = [ "/var/lib/s:/run/secrets/s" ];
          tmpfs = [ "/cache:16M" "/scratch" ];
          volumes = [ "/srv/a:/a" "/srv/b:/b:rw" ];
          readyTcpPort = 80;
          ports = [ "8080:80" ];
          environment = { B = "2"; A = "1"; };
          environmentFiles = [ "/run/app.env" ];
          hostname = "box";
          name = "web";
        }"#,
    );
    assert_eq!(
        strings(&got),
        [
            "run",
            "--name",
            "web",
            "--hostname",
            "box",
            "--env-file",
            "/run/app.env",
            "-e",
            "A=1",
            "-e",
            "B=2",
            "-p",
            "8080:80",
            "--ready-tcp",
            "80",
            "-v",
            "/srv/a:/a",
            "-v",
            "/srv/b:/b:rw",
            "--tmpfs",
            "/cache:16M",
            "--tmpfs",
            "/scratch",
            "--secret",
            "/var/lib/s:/run/secrets/s",
            "--user",
            "1000:100",
            "-w",
            "/work",
            "--memory",
            "64M",
            "--cpus",
            "1.5",
            "--pids",
            "100",
            "--seccomp-profile",
            "/etc/nucleus/seccomp.json",
            "--seccomp-profile-sha256",
            "ab",
            "--hooks",
            "/etc/nucleus/hooks.json",
            "--network",
            "sandbox",
            "--platform",
            "ptrace",
            "--timeout",
            "30",
            "--keep",
            "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-rootfs",
            "--",
            "/bin/app",
            "--flag",
            "two words"
        ]
    );
}

#[test]
fn mk_run_args_null_and_absent_fields_emit_nothing() {
    let expected = json!(["run", "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-rootfs", "--", "/bin/true"]);
    let base = r#"{ closure = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-rootfs"; command = [ "/bin/true" ]; }"#;
    assert_eq!(eval(&format!("lib.mkRunArgs {base}")), expected, "absent fields");
    let all_null = format!(
        "lib.mkRunArgs (builtins.listToAttrs (map (n: {{ name = n; value = null; }}) lib.runArgFields) // {base})"
    );
    assert_eq!(eval(&all_null), expected, "null fields");
    assert_eq!(eval("lib.mkRunArgs { }"), json!(["run"]));
    // Without a command, the installable's main program: no "--" at all.
    assert_eq!(
        eval(r#"lib.mkRunArgs { closure = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-rootfs"; }"#),
        json!(["run", "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-rootfs"])
    );
}

#[test]
fn mk_run_args_coerces_derivations_paths_and_numbers() {
    // A derivation-like set becomes its out path; a path literal stays a
    // path (not copied to the store); floats get at most three decimals.
    let got = eval(
        r#"lib.mkRunArgs {
          closure = { type = "derivation"; outPath = "/nix/store/cccccccccccccccccccccccccccccccc-drv"; };
          hooks = /tmp/nucleus-no-such-dir/hooks.json;
          cpus = 0.25;
          memory = 1048576;
          user = 0;
        }"#,
    );
    assert_eq!(
        got,
        json!([
            "run",
            "--user",
            "0",
            "--memory",
            "1048576",
            "--cpus",
            "0.25",
            "--hooks",
            "/tmp/nucleus-no-such-dir/hooks.json",
            "/nix/store/cccccccccccccccccccccccccccccccc-drv"
        ])
    );
}

#[test]
fn mk_run_args_refuses_what_is_not_an_argument_list() {
    assert!(eval_error(r#"lib.mkRunArgs { enviroment.A = "b"; }"#).contains("unknown field(s) enviroment"));
    assert!(eval_error("lib.mkRunArgs { timeout = true; }").contains("cannot be a command-line argument"));
    assert!(eval_error(r#"lib.mkRunArgs { volumes = "/a:/b"; }"#).contains("-v takes a list"));
    assert!(eval_error(r#"lib.mkRunArgs { command = "/bin/sh -c x"; }"#).contains("command must be a list"));
    assert!(eval_error("lib.mkRunArgs { command = [ ]; }").contains("command is empty"));
}

// ---------------------------------------------------------------------------
// systemd quoting.

#[test]
fn systemd_quoting_reads_back_as_the_same_words() {
    let mut cases: Vec<String> = [
        "plain",
        "two words",
        "%h",
        "100%",
        "$HOME",
        "${HOME}",
        "$$",
        "say \"hi\"",
        "back\\slash",
        "trailing\\",
        "'single' quotes",
        ";",
        "",
        "%%$$\\\"",
        "a\nb",
        "tab\there",
        "cr\rlf",
        "ünïcødé ✓",
        "\u{7f}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Every control character Nix can hold (all but NUL).
    cases.extend((1u8..0x20).map(|b| format!("<{}>", b as char)));
    let list = serde_json::to_string(&cases).unwrap();
    let got = eval_with("map lib.escapeSystemdExecArg (builtins.fromJSON args.list)", &[("list", &list)]);
    for (quoted, input) in strings(&got).iter().zip(&cases) {
        assert!(quoted.starts_with('"') && quoted.ends_with('"'), "{quoted}");
        assert!(!quoted.chars().any(|c| c < ' '), "a raw control character in {quoted:?}");
        assert_eq!(systemd_words(quoted, &[]), std::slice::from_ref(input), "systemd reads {quoted} back");
    }
    // nixpkgs' formula exactly: JSON, then % and $ doubled.
    assert_eq!(eval(r#"lib.escapeSystemdExecArg "50% of $X \"q\"""#), json!(r#""50%% of $$X \"q\"""#));
    let line = eval_with("lib.escapeSystemdExecArgs (builtins.fromJSON args.list)", &[("list", &list)]);
    assert_eq!(systemd_words(line.as_str().unwrap(), &[]), cases);
}

// ---------------------------------------------------------------------------
// The NixOS module, evaluated with the stand-in NixOS.

fn unit<'a>(summary: &'a Value, name: &str) -> &'a str {
    summary["units"][name].as_str().unwrap_or_else(|| panic!("no unit {name} in {:#}", summary["units"]))
}

/// The argument vector systemd hands to nucleus for ExecStart= of `unit`
/// (the unit's credentials directory for %d).
fn exec_start_words(text: &str, unit: &str) -> Vec<String> {
    let credentials = format!("/run/credentials/{unit}");
    systemd_words(&unit_value(text, "Service", "ExecStart"), &[('d', &credentials)])
}

#[test]
fn module_renders_the_expected_units() {
    let summary = module_summary("module-config.nix");
    assert_eq!(summary["failedAssertions"], json!([]), "{summary:#}");
    assert_eq!(summary["warnings"], json!([]), "{summary:#}");
    let units: BTreeSet<&str> = summary["units"].as_object().unwrap().keys().map(String::as_str).collect();
    // `off` is disabled; `db` has a serviceName of its own.
    assert_eq!(units, BTreeSet::from(["nucleus-database.service", "nucleus-demo.service", "nucleus-minimal.service"]));
    let package = summary["package"].as_str().unwrap();
    let exe = format!("{package}/bin/nucleus");

    let demo = unit(&summary, "nucleus-demo.service");
    for (section, key, value) in [
        ("Service", "Type", "notify"),
        ("Service", "Restart", "on-failure"),
        ("Service", "KillMode", "mixed"),
        ("Service", "KillSignal", "SIGTERM"),
        ("Service", "SuccessExitStatus", "143"),
        ("Service", "RuntimeDirectory", "nucleus-demo"),
        ("Service", "RuntimeDirectoryMode", "0700"),
        ("Service", "RuntimeDirectoryPreserve", "yes"),
        ("Service", "LoadCredential", "token:/var/lib/secrets/demo-token"),
        // Ports mean a network: after it is up; and after the container it depends on.
        ("Unit", "After", "network-online.target nucleus-database.service"),
        ("Unit", "Wants", "network-online.target"),
        ("Unit", "Requires", "nucleus-database.service"),
        ("Install", "WantedBy", "multi-user.target"),
    ] {
        assert_eq!(unit_values(demo, section, key), [value], "[{section}] {key} in:\n{demo}");
    }
    assert!(unit_values(demo, "Service", "Environment").contains(&"\"NUCLEUS_STATE_ROOT=/run/nucleus-demo\"".into()));
    let words = |line: &str| {
        let rest = line.strip_prefix('-').unwrap_or_else(|| panic!("{line} lacks the '-' prefix"));
        systemd_words(rest, &[])
    };
    let delete = [exe.as_str(), "delete", "--force", "demo"];
    assert_eq!(words(&unit_value(demo, "Service", "ExecStartPre")), delete);
    let stop_post: Vec<Vec<String>> = unit_values(demo, "Service", "ExecStopPost").iter().map(|l| words(l)).collect();
    assert_eq!(stop_post, [delete.to_vec(), vec![exe.as_str(), "gc"]]);

    let words = exec_start_words(demo, "nucleus-demo.service");
    assert_eq!(words[0], exe);
    let store_file = |w: &str, suffix: &str| w.starts_with("/nix/store/") && w.ends_with(suffix);
    let expected: Vec<&str> = vec![
        "run",
        "--name",
        "demo",
        "--hostname",
        "demo",
        "--env-file",
        "/run/secrets/demo.env",
        "-e",
        "ANSWER=42",
        "-e",
        "GREETING=hi %h",
        "-p",
        "127.0.0.1:8080:80",
        "--ready-tcp",
        "80",
        "-v",
        "/srv/demo:/data:rw",
        "--tmpfs",
        "/cache:64M",
        "--secret",
        "/var/lib/secrets/demo-key:/run/secrets/key",
        "--secret",
        "/run/credentials/nucleus-demo.service/token:/run/secrets/token",
        "--user",
        "1000:1000",
        "-w",
        "/data",
        "--memory",
        "128M",
        "--cpus",
        "0.5",
        "--pids",
        "64",
        "--seccomp-profile",
        "<store>-nucleus-demo-seccomp.json",
        "--seccomp-profile-sha256",
        "<sha256>",
        "--hooks",
        "<store>-nucleus-demo-hooks.json",
        "--timeout",
        "3600",
        "--verbose",
        "<store>-nucleus-rootfs",
        "--",
        "/bin/sh",
        "-c",
        "echo \"$HOME\" is 100% \\ here\u{7}",
    ];
    assert_eq!(words.len() - 1, expected.len(), "{words:#?}");
    for (got, want) in words[1..].iter().zip(&expected) {
        let ok = match *want {
            "<sha256>" => got.len() == 64 && got.bytes().all(|b| b.is_ascii_hexdigit()),
            w if w.starts_with("<store>") => store_file(got, &w["<store>".len()..]),
            w => got == w,
        };
        assert!(ok, "ExecStart has {got:?} where {want:?} belongs:\n{words:#?}");
    }

    // autoStart = false: no WantedBy; no network: no ordering on it.
    let db = unit(&summary, "nucleus-database.service");
    assert!(unit_values(db, "Install", "WantedBy").is_empty(), "{db}");
    assert!(unit_values(db, "Unit", "After").is_empty(), "{db}");
    assert_eq!(exec_start_words(db, "nucleus-database.service")[1..4], ["run", "--name", "db"]);
    // Only the defaults: the closure's main program, so no "--".
    let minimal = exec_start_words(unit(&summary, "nucleus-minimal.service"), "nucleus-minimal.service");
    assert_eq!(minimal.len(), 5, "{minimal:?}");
    assert!(!minimal.contains(&"--".to_string()), "{minimal:?}");
    assert_eq!(
        summary["checks"],
        json!([
            "nucleus-check-args-nucleus-database",
            "nucleus-check-args-nucleus-demo",
            "nucleus-check-args-nucleus-minimal"
        ])
    );
}

#[test]
fn module_refuses_what_only_nix_can_see() {
    let summary = module_summary("module-bad-config.nix");
    let got = strings(&summary["failedAssertions"]);
    let expected = strings(&eval("import (/. + root + \"/tests/nix/expected-problems.nix\")"));
    for want in &expected {
        assert!(got.iter().any(|m| m.contains(want.as_str())), "no assertion says {want:?}:\n{}", got.join("\n"));
    }
    // One message per mistake (the environment file's two phrases are one message).
    assert_eq!(got.len(), expected.len() - 1, "unexpected messages:\n{}", got.join("\n"));
}

#[test]
fn module_warns_when_containers_are_declared_but_the_service_is_off() {
    let work = tempdir();
    let config = work.path().join("off.nix");
    fs::write(&config, "{ pkgs, ... }: { services.nucleus.containers.web.closure = pkgs.hello; }").unwrap();
    let out = check(
        nix_support::nix_command("nix-instantiate", work.path())
            .arg(Path::new(ROOT).join("tests/nix/eval-module.nix"))
            .args(["--arg", "configuration"])
            .arg(&config)
            .args(["--arg", "busyboxFile", &nix_support::busybox()])
            .args(["--eval", "--strict", "--json", "-A", "summary"]),
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["units"], json!({}));
    let warnings = strings(&summary["warnings"]);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("services.nucleus.enable is false"), "{warnings:?}");
}

// ---------------------------------------------------------------------------
// Against the real CLI: `nucleus check-args` is the one validator.

/// `nucleus check-args ARGS…` as a build step runs it: no environment, a
/// directory with nothing in it, no root needed.
fn check_args(args: &[String]) -> Output {
    let work = tempdir();
    output(Command::new(NUCLEUS).arg("check-args").args(args).env_clear().current_dir(work.path()))
}

#[track_caller]
fn assert_refused(out: &Output, about: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(125), "expected a refusal about {about}; stderr: {err}");
    assert!(out.stdout.is_empty(), "check-args printed on stdout: {}", String::from_utf8_lossy(&out.stdout));
    assert!(err.lines().next().is_some_and(|l| l.starts_with("nucleus: ")), "not nucleus's own message: {err:?}");
    assert!(err.contains(about), "the message does not mention {about}: {err}");
}

#[test]
fn check_args_accepts_every_unit_of_the_module() {
    let summary = module_summary("module-config.nix");
    for (name, text) in summary["units"].as_object().unwrap() {
        let words = exec_start_words(text.as_str().unwrap(), name);
        assert_eq!(words[1], "run", "{words:?}");
        let out = check_args(&words[1..]);
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "check-args {:?} of {name}: {}\n{}",
            &words[1..],
            out.status,
            stderr(&out)
        );
    }
}

#[test]
fn check_args_refuses_the_refused_configuration_with_its_own_message() {
    let summary = module_summary("module-refused-config.nix");
    assert_eq!(summary["failedAssertions"], json!([]), "Nix alone must not see this mistake");
    let text = unit(&summary, "nucleus-refused.service");
    let words = exec_start_words(text, "nucleus-refused.service");
    assert_refused(&check_args(&words[1..]), "--pids");
}

/// What the plain-Nix validation used to let through; now nucleus decides.
#[test]
fn check_args_refuses_what_mk_run_args_builds_from_bad_values() {
    let cases: &[(&str, &str)] = &[
        (r#"{ memory = "99999999999G"; }"#, "--memory"),
        (r#"{ volumes = [ "/tmp/../proc:/data" ]; }"#, "--volume"),
        (r#"{ pids = 10; }"#, "--pids"),
        (r#"{ cpus = 0.001; }"#, "--cpus"),
        (r#"{ timeout = 4294967296; }"#, "--timeout"),
        (r#"{ name = builtins.concatStringsSep "" (builtins.genList (_: "n") 129); }"#, "--name"),
        (r#"{ secrets = [ "/var/lib/token:/etc/token" ]; }"#, "--secret"),
        (r#"{ ports = [ "127.0.0.1:99999:80" ]; }"#, "--publish"),
    ];
    for (fields, about) in cases {
        let args = strings(&eval(&format!(
            r#"lib.mkRunArgs ({fields} // {{ closure = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-rootfs"; command = [ "/bin/true" ]; }})"#
        )));
        assert_refused(&check_args(&args), about);
    }
    // The longest name nucleus allows is fine.
    let longest = strings(&eval(
        r#"lib.mkRunArgs { name = builtins.concatStringsSep "" (builtins.genList (_: "n") 128); command = [ "/bin/true" ]; }"#,
    ));
    let out = check_args(&longest);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The words of `--help` output that look like options.
fn help_flags(args: &[&str]) -> BTreeSet<String> {
    let out = check(Command::new(NUCLEUS).args(args));
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with('-') && w.len() > 1)
        .map(str::to_string)
        .collect()
}

#[test]
fn every_flag_the_lib_emits_is_in_run_help() {
    let run_flags = help_flags(&["run", "--help"]);
    let table = eval("lib.flagsByField");
    let mut flags: Vec<String> = table.as_object().unwrap().values().map(|f| f.as_str().unwrap().to_string()).collect();
    // The long forms of the short flags the lib writes.
    flags.extend(["--env", "--publish", "--volume", "--workdir", "--attr"].map(String::from));
    let missing: Vec<&String> = flags.iter().filter(|f| !run_flags.contains(*f)).collect();
    assert!(missing.is_empty(), "`nucleus run --help` lacks {missing:?}; it has {run_flags:?}");

    // The module uses `run`, `delete --force`, `check-args` and (documented) `kill`.
    let top = String::from_utf8_lossy(&check(Command::new(NUCLEUS).arg("--help")).stdout).into_owned();
    for sub in ["run", "check-args", "kill", "delete"] {
        assert!(top.lines().any(|l| l.trim_start().starts_with(sub)), "`nucleus --help` lists no `{sub}`:\n{top}");
    }
    assert!(help_flags(&["delete", "--help"]).contains("--force"), "`nucleus delete` has no --force");
}

/// Runs `nucleus run --dry-run ARGS` (ARGS: mkRunArgs's list without "run")
/// and returns the one JSON document it prints.
fn dry_run(work: &Path, run_args: &[String]) -> Value {
    assert_eq!(run_args.first().map(String::as_str), Some("run"), "{run_args:?}");
    let out = output(
        Command::new(NUCLEUS)
            .arg("run")
            .arg("--dry-run")
            .args(&run_args[1..])
            .current_dir(work)
            .env("NUCLEUS_STATE_ROOT", work.join("state"))
            .env("NIX_CONFIG", common::NIX_CONFIG)
            .env("XDG_CACHE_HOME", work.join(".cache")),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "nucleus run --dry-run {:?} failed with {}:\n{}\n{stdout}",
        &run_args[1..],
        out.status,
        stderr(&out)
    );
    let doc: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not one JSON document ({e}): {stdout}"));
    let digest = doc["digest"].as_str().unwrap_or_else(|| panic!("no digest in {doc:#}"));
    let hex = digest.strip_prefix("sha256:").unwrap_or_else(|| panic!("digest is not sha256:<hex>: {digest:?}"));
    assert!(hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()), "bad digest {digest:?}");
    assert!(doc["config"].is_object() && doc["launch"].is_object(), "{doc:#}");
    doc
}

fn mount<'a>(config: &'a Value, destination: &str) -> &'a Value {
    config["mounts"]
        .as_array()
        .expect("config.json has no mounts")
        .iter()
        .find(|m| m["destination"] == destination)
        .unwrap_or_else(|| panic!("no mount at {destination} in {:#}", config["mounts"]))
}

fn options(m: &Value) -> Vec<String> {
    m["options"].as_array().map(|o| o.iter().filter_map(|x| x.as_str().map(String::from)).collect()).unwrap_or_default()
}

#[test]
fn dry_run_config_carries_the_options_mk_run_args_emits() {
    let work = tempdir();
    let w = work.path();
    let hello = common::closure("hello").display().to_string();
    let data = w.join("data");
    fs::create_dir(&data).unwrap();
    let secret = w.join("token");
    fs::write(&secret, "s3cret").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let data_s = fs::canonicalize(&data).unwrap().display().to_string();
    let secret_s = fs::canonicalize(&secret).unwrap().display().to_string();

    let expr = r#"lib.mkRunArgs {
      name = "nix-eval-dry";
      hostname = "tiny-host";
      closure = args.hello;
      environment = { ZED = "last"; ALPHA = "first value"; PCT = "100% $HOME"; };
      volumes = [ "${args.data}:/data:rw" ];
      tmpfs = [ "/scratch:16M" ];
      secrets = [ "${args.secret}:/run/secrets/token" ];
      user = "1000:1000";
      workdir = "/data";
      memory = "64M";
      cpus = 1.5;
      pids = 128;
      timeout = 30;
      command = [ "/bin/sh" "-c" "echo $ALPHA" ];
    }"#;
    let args = strings(&eval_with(expr, &[("hello", &hello), ("data", &data_s), ("secret", &secret_s)]));
    let doc = dry_run(w, &args);
    let config = &doc["config"];
    assert_eq!(config["process"]["args"], json!(["/bin/sh", "-c", "echo $ALPHA"]));
    let env = strings(&config["process"]["env"]);
    for want in ["ALPHA=first value", "PCT=100% $HOME", "ZED=last"] {
        assert!(env.iter().any(|e| e == want), "{want} not in {env:?}");
    }
    assert_eq!(config["hostname"], "tiny-host");
    assert_eq!(config["process"]["user"]["uid"], 1000);
    assert_eq!(config["process"]["cwd"], "/data");
    // A run mounts each volume from its checked descriptor at a staging
    // path inside the bundle; the launch plan says which host path it is.
    let data_mount = mount(config, "/data");
    let staged = doc["launch"]["container"]["staged"].as_array().expect("no staged sources in the launch plan");
    let data_staged = staged.iter().find(|s| s["target"] == data_mount["source"]).expect("/data is not staged");
    assert_eq!(data_staged["hostPath"], data_s.as_str());
    assert!(options(data_mount).contains(&"rw".to_string()), "{data_mount}");
    assert_eq!(mount(config, "/scratch")["type"], "tmpfs");
    mount(config, "/run/secrets/token");
    assert!(!doc.to_string().contains("s3cret"), "the secret's content reached the dry run's output");
    let resources = &config["linux"]["resources"];
    assert_eq!(resources["memory"]["limit"], 64 * 1024 * 1024);
    assert_eq!(resources["pids"]["limit"], 128);

    // The same arguments give the same bundle digest.
    assert_eq!(dry_run(w, &args)["digest"], doc["digest"]);
}

#[test]
fn dry_run_takes_hooks_and_a_pinned_seccomp_profile() {
    let work = tempdir();
    let w = work.path();
    let hello = common::closure("hello").display().to_string();
    let hook = common::closure("hook").join("bin/hook").display().to_string();
    let hooks = w.join("hooks.json");
    fs::write(&hooks, json!({ "poststop": [ { "path": hook, "args": ["hook", "done"] } ] }).to_string()).unwrap();
    let profile = w.join("seccomp.json");
    let profile_bytes = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [ { "names": ["kexec_load"], "action": "SCMP_ACT_ERRNO" } ]
    })
    .to_string();
    fs::write(&profile, &profile_bytes).unwrap();
    let sha: String = Sha256::digest(profile_bytes.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let args = strings(&eval_with(
        r#"lib.mkRunArgs {
          closure = args.hello;
          hooks = args.hooks;
          seccompProfile = args.profile;
          seccompProfileSha256 = args.sha;
          command = [ "/bin/hello" ];
        }"#,
        &[
            ("hello", &hello),
            ("hooks", &hooks.display().to_string()),
            ("profile", &profile.display().to_string()),
            ("sha", &sha),
        ],
    ));
    let config = dry_run(w, &args)["config"].clone();
    assert_eq!(config["hooks"]["poststop"][0]["path"], hook.as_str(), "{:#}", config["hooks"]);
    assert_eq!(config["linux"]["seccomp"]["syscalls"][0]["names"], json!(["kexec_load"]));
}

// ---------------------------------------------------------------------------
// The test runner.

#[test]
fn mk_test_run_is_an_app_whose_script_runs_the_suite_under_nucleus() {
    let got = eval_with(
        r#"let t = import (/. + root + "/tests/nix/test-runner.nix") {
             busyboxFile = /. + args.busybox;
             command = [ "/bin/run-tests" "it's" ];
             timeout = 600;
           };
           in { inherit (t) app; script = t.runner.text; runner = t.runner.outPath; suite = t.suite.outPath; nucleus = t.nucleus.outPath; }"#,
        &[("busybox", &nix_support::busybox())],
    );
    let runner = got["runner"].as_str().unwrap();
    assert_eq!(got["app"], json!({ "type": "app", "program": format!("{runner}/bin/run-suite") }));
    let script = got["script"].as_str().unwrap();
    let suite = got["suite"].as_str().unwrap();
    let nucleus = got["nucleus"].as_str().unwrap();
    for want in [
        "set -eu".to_string(),
        "results='results'".to_string(),
        r#"mkdir -p -- "$results""#.to_string(),
        format!("exec '{nucleus}/bin/nucleus' 'run' '--timeout' '600'"),
        format!(r#"--volume "$results:/results:rw" '{suite}' '--' '/bin/run-tests' 'it'\''s'"#),
    ] {
        assert!(script.contains(&want), "the runner lacks {want:?}:\n{script}");
    }
}
