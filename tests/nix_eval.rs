//! The Nix side of nucleus (flake.nix, nix/lib.nix, nix/module.nix), checked
//! with the real Nix: `nix-instantiate --parse` of every `.nix` file,
//! `nix-instantiate --eval --strict --json` of nix/lib.nix (mkRunArgs, the
//! systemd quoting, the module's per-container commands and checks), and
//! `nucleus run --help` / `nucleus run --dry-run` fed with what the Nix
//! library produces.
//!
//! Without Nix these tests fail rather than skip: the module and the flake
//! cannot be checked any other way here. They only write to temporary
//! directories, and build their closure without a GC root.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

mod common;

use common::nix_bin;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const NUCLEUS: &str = env!("CARGO_BIN_EXE_nucleus");

// ---------------------------------------------------------------------------
// Running Nix.

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("nucleus-nix-eval-").tempdir().expect("cannot create a temporary directory")
}

/// A Nix command that runs in `work` and keeps its caches there too.
fn nix_command(name: &str, work: &Path) -> Command {
    let mut cmd = Command::new(nix_bin(name));
    cmd.current_dir(work).env("XDG_CACHE_HOME", work.join(".cache"));
    cmd
}

fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn check(cmd: &mut Command) -> Output {
    let out = output(cmd);
    assert!(out.status.success(), "{cmd:?} failed with {}:\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out
}

/// The evaluation command for `expr`, in which `lib` is nix/lib.nix and
/// `args.NAME` is each string given here (passed with --argstr, so they
/// need no Nix quoting).
fn eval_command(work: &Path, expr: &str, strings: &[(&str, &str)]) -> Command {
    let mut cmd = nix_command("nix-instantiate", work);
    cmd.args(["--eval", "--strict", "--json", "--argstr", "root", ROOT]);
    for (name, value) in strings {
        cmd.args(["--argstr", name, value]);
    }
    let full = format!("{{ root, ... }}@args: let lib = import (/. + root + \"/nix/lib.nix\"); in ({expr})");
    cmd.arg("--expr").arg(full);
    cmd
}

fn eval_with(expr: &str, strings: &[(&str, &str)]) -> Value {
    let work = tempdir();
    let out = check(&mut eval_command(work.path(), expr, strings));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("nix-instantiate printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn eval(expr: &str) -> Value {
    eval_with(expr, &[])
}

/// Evaluates `expr`, which must fail; returns the error text.
fn eval_error(expr: &str) -> String {
    let work = tempdir();
    let out = output(&mut eval_command(work.path(), expr, &[]));
    assert!(!out.status.success(), "expected `{expr}` to fail, got {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a JSON list, got {v}"))
        .iter()
        .map(|s| s.as_str().unwrap_or_else(|| panic!("expected strings, got {s}")).to_string())
        .collect()
}

/// The hello test closure (tests/closures/hello.nix: busybox, /bin/hello),
/// built once without a GC root.
fn hello_closure() -> String {
    common::closure("hello").display().to_string()
}

// ---------------------------------------------------------------------------
// Every .nix file parses.

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
        let out = output(nix_command("nix-instantiate", work.path()).arg("--parse").arg(entry.path()));
        if !out.status.success() {
            failures.push(format!("{rel}: {}", String::from_utf8_lossy(&out.stderr)));
        }
        found.insert(rel);
    }
    for required in [
        "flake.nix",
        "nix/lib.nix",
        "nix/module.nix",
        "nix/package.nix",
        "tests/closures/hello.nix",
        "tests/nix/lib-tests.nix",
        "tests/nix/module-config.nix",
        "tests/nix/module-bad-config.nix",
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

// ---------------------------------------------------------------------------
// mkRunArgs.

#[test]
fn mk_run_args_emits_every_field_in_order() {
    let got = eval(
        r#"lib.mkRunArgs {
          command = [ "/bin/app" "--flag" "two words" ];
          closure = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-rootfs";
          extraArgs = [ "--keep" ];
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
          environment = { B = "2"; A = "1"; };
          hostname = "box";
          name = "web";
        }"#,
    );
    assert_eq!(
        got,
        json!([
            "run",
            "--name",
            "web",
            "--hostname",
            "box",
            "-e",
            "A=1",
            "-e",
            "B=2",
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
        ])
    );
}

#[test]
fn mk_run_args_null_and_absent_fields_emit_nothing() {
    let expected = json!(["run", "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-rootfs", "--", "/bin/true"]);
    let base = r#"{ closure = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-rootfs"; command = [ "/bin/true" ]; }"#;
    assert_eq!(eval(&format!("lib.mkRunArgs {base}")), expected, "absent fields");
    // Every known field null, then the two that are set.
    let all_null = format!(
        "lib.mkRunArgs (builtins.listToAttrs (map (n: {{ name = n; value = null; }}) lib.runArgFields) // {base})"
    );
    assert_eq!(eval(&all_null), expected, "null fields");
    let empty = format!("lib.mkRunArgs ({base} // {{ environment = {{ }}; volumes = [ ]; tmpfs = [ ]; secrets = [ ]; extraArgs = [ ]; }})");
    assert_eq!(eval(&empty), expected, "empty collections");
    assert_eq!(eval("lib.mkRunArgs { }"), json!(["run"]));
    // The field list itself covers every flag and the three positional fields.
    let fields = strings(&eval("lib.runArgFields"));
    assert_eq!(fields.len(), 20, "{fields:?}");
}

#[test]
fn mk_run_args_orders_the_environment_by_key() {
    let got = eval(r#"lib.mkRunArgs { environment = { zeta = "z"; ALPHA = "a"; Mid = 3; _x = ""; "B" = "x=y"; }; }"#);
    assert_eq!(got, json!(["run", "-e", "ALPHA=a", "-e", "B=x=y", "-e", "Mid=3", "-e", "_x=", "-e", "zeta=z"]));
}

#[test]
fn mk_run_args_coerces_derivations_paths_and_numbers() {
    // A derivation-like set becomes its out path; a path literal stays a
    // path (not copied to the store); floats are written with at most three
    // decimals, as --cpus requires.
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
    let cpus = eval("map (c: builtins.elemAt (lib.mkRunArgs { cpus = c; }) 2) [ 2.0 0.1 1.0004 0.0625 3 ]");
    assert_eq!(cpus, json!(["2", "0.1", "1", "0.063", "3"]));
}

#[test]
fn mk_run_args_refuses_mistakes() {
    assert!(eval_error(r#"lib.mkRunArgs { enviroment.A = "b"; }"#).contains("unknown field(s) enviroment"));
    assert!(eval_error("lib.mkRunArgs { timeout = true; }").contains("timeout"));
    assert!(eval_error(r#"lib.mkRunArgs { volumes = "/a:/b"; }"#).contains("volumes must be a list"));
    assert!(eval_error(r#"lib.mkRunArgs { command = "/bin/sh -c x"; }"#).contains("command must be a list"));
}

#[test]
fn the_nix_lib_test_suite_passes() {
    let got = eval("import (/. + root + \"/tests/nix/lib-tests.nix\") { nucleusLib = lib; }");
    assert_eq!(got["failures"], json!([]), "tests/nix/lib-tests.nix failed: {got:#}");
    assert!(got["passed"].as_u64().unwrap() >= 20, "{got}");
}

// ---------------------------------------------------------------------------
// systemd quoting.

/// Splits an ExecStart= value the way systemd does for the cases the
/// escaping produces: words separated by blanks, double quotes, C escapes
/// inside quotes, then `%%` -> `%` (any other specifier would be expanded)
/// and `$$` -> `$` (any other `$` would be an environment variable).
/// Panics on anything systemd would expand or reinterpret.
fn systemd_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        assert_eq!(first, '"', "unquoted word in {line:?}");
        chars.next();
        let mut raw = String::new();
        loop {
            match chars.next().unwrap_or_else(|| panic!("unterminated quote in {line:?}")) {
                '"' => break,
                '\\' => match chars.next().unwrap_or_else(|| panic!("dangling backslash in {line:?}")) {
                    '\\' => raw.push('\\'),
                    '"' => raw.push('"'),
                    'n' => raw.push('\n'),
                    't' => raw.push('\t'),
                    'r' => raw.push('\r'),
                    other => panic!("unexpected escape \\{other} in {line:?}"),
                },
                '\n' => panic!("raw newline in {line:?}"),
                c => raw.push(c),
            }
        }
        let next = chars.peek().copied();
        assert!(next.is_none() || next == Some(' '), "word not followed by a blank in {line:?}");
        words.push(undouble(&undouble(&raw, '%'), '$'));
    }
    words
}

/// `%%` -> `%`; a lone `%` would be a specifier.
fn undouble(s: &str, special: char) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == special {
            assert_eq!(chars.next(), Some(special), "a lone {special} in {s:?} would be expanded by systemd");
        }
        out.push(c);
    }
    out
}

#[test]
fn systemd_escaping_of_tricky_strings() {
    let cases: &[(&str, &str)] = &[
        ("plain", r#""plain""#),
        ("two words", r#""two words""#),
        ("%h", r#""%%h""#),
        ("100%", r#""100%%""#),
        ("$HOME", r#""$$HOME""#),
        ("${HOME}", r#""$${HOME}""#),
        ("say \"hi\"", r#""say \"hi\"""#),
        ("back\\slash", r#""back\\slash""#),
        ("trailing\\", r#""trailing\\""#),
        ("a\nb", r#""a\nb""#),
        ("tab\there", r#""tab\there""#),
        ("'single' quotes", r#""'single' quotes""#),
        (";", r#"";""#),
        ("", r#""""#),
        ("%%$$\\\"", r#""%%%%$$$$\\\"""#),
    ];
    for (input, expected) in cases {
        let got = eval_with("lib.escapeSystemdExecArg args.s", &[("s", input)]);
        assert_eq!(got.as_str(), Some(*expected), "escaping {input:?}");
        assert_eq!(systemd_words(expected), vec![input.to_string()], "systemd reads {expected} back");
    }
    // A whole list: one quoted word per argument.
    let all: Vec<&str> = cases.iter().map(|(i, _)| *i).collect();
    let got = eval_with(
        "lib.escapeSystemdExecArgs (builtins.fromJSON args.list)",
        &[("list", &serde_json::to_string(&all).unwrap())],
    );
    assert_eq!(systemd_words(got.as_str().unwrap()), all);
}

// ---------------------------------------------------------------------------
// The NixOS module's per-container logic (nix/lib.nix's mkExecCommands and
// validateContainer; the module itself needs nixpkgs and is evaluated by
// the flake's checks).

/// A container as the module hands it over with every option at its default.
const MODULE_DEFAULTS: &str = r#"{
  enable = true; name = "web"; command = [ "/bin/app" ];
  environment = { }; volumes = [ ]; tmpfs = [ ]; secrets = [ ]; extraArgs = [ ];
  hostname = null; user = null; workdir = null; memory = null; cpus = null; pids = null;
  network = "none"; platform = null; seccompProfile = null; seccompProfileSha256 = null;
  hooks = null; timeout = null;
}"#;

const FAKE_PKG: &str = "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-nucleus-0.1.0";
const FAKE_ROOTFS: &str = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-rootfs";

#[test]
fn module_commands_are_systemd_quoted_run_and_delete() {
    let container = format!(
        r#"({MODULE_DEFAULTS} // {{
          name = null;
          closure = "{FAKE_ROOTFS}";
          command = [ "/bin/sh" "-c" "echo \"$HOME\" is 100% done; exit 0" ];
          environment = {{ SPEC = "%h %n"; PRICE = "$5"; }};
          volumes = [ "/srv/my data:/data:rw" ];
        }})"#
    );
    let got = eval(&format!(
        r#"let c = {container}; cmds = lib.mkExecCommands {{ package = "{FAKE_PKG}"; name = "web"; container = c; }};
           in cmds // {{ runArgs = lib.mkRunArgs (lib.containerRunArgs "web" c); }}"#
    ));
    assert_eq!(got["unitName"], "nucleus-web");
    assert_eq!(got["runtimeDirectory"], "nucleus-web");
    assert_eq!(got["stateRoot"], "/run/nucleus-web");
    assert_eq!(got["containerName"], "web");

    let exe = format!("{FAKE_PKG}/bin/nucleus");
    let run_args = strings(&got["runArgs"]);
    assert_eq!(run_args[..3], ["run", "--name", "web"]);
    // What systemd hands to nucleus is exactly the mkRunArgs list.
    let mut expected = vec![exe.clone()];
    expected.extend(run_args.iter().cloned());
    let start = got["execStart"].as_str().unwrap();
    assert_eq!(systemd_words(start), expected);
    assert!(start.contains(r#""-e" "PRICE=$$5" "-e" "SPEC=%%h %%n""#), "{start}");
    assert!(start.contains(r#""echo \"$$HOME\" is 100%% done; exit 0""#), "{start}");

    for key in ["execStartPre", "execStopPost"] {
        let line = got[key].as_str().unwrap();
        let rest = line.strip_prefix('-').unwrap_or_else(|| panic!("{key} lacks the '-' prefix: {line}"));
        assert_eq!(systemd_words(rest), [exe.as_str(), "delete", "--force", "web"], "{key}");
    }
}

#[test]
fn module_defaults_pass_the_cli_rules() {
    let got = eval(&format!(
        r#"lib.validateContainer {{ name = "web"; container = {MODULE_DEFAULTS} // {{ closure = "{FAKE_ROOTFS}"; }}; }}"#
    ));
    assert_eq!(got, json!([]));
    // Host mode (closure = null) is valid too.
    let got = eval(&format!(
        r#"lib.validateContainer {{ name = "web"; container = {MODULE_DEFAULTS} // {{ closure = null; }}; }}"#
    ));
    assert_eq!(got, json!([]));
}

#[test]
fn module_checks_report_what_the_cli_would_refuse() {
    let got = strings(&eval(&format!(
        r#"lib.validateContainer {{
          name = "ok";
          container = {MODULE_DEFAULTS} // {{
            name = "no/slash";
            closure = "{FAKE_ROOTFS}";
            command = [ ];
            pids = 49;
            memory = "12Q";
            network = "bridge";
            volumes = [ "data:/data" "/srv/x:relative" "/srv/y:/usr/y" ];
            tmpfs = [ "/t:big" ];
            secrets = [ "${{builtins.toFile "leak" "x"}}:/run/secrets/leak" "/var/lib/k:/etc/k" ];
            seccompProfileSha256 = "00";
          }};
        }}"#
    )));
    let want = [
        "name: 'no/slash' must match",
        "pids: 49 is below 50",
        "memory: '12Q' is not a size",
        "network: 'bridge' must be one of none, sandbox, host",
        "volumes: 'data:/data': the source 'data' must be an absolute host path",
        "volumes: '/srv/x:relative': 'relative' is not an absolute path",
        "volumes: '/srv/y:/usr/y': destination '/usr/y' is under /usr",
        "tmpfs: '/t:big': 'big' is not a size",
        "the source is in the Nix store",
        "refers to a store path",
        "the destination must be a file under /run/secrets/",
        "seccompProfileSha256: '00' is not 64 hex digits",
        "seccompProfileSha256 is set but seccompProfile is not",
        "command: give the program to run",
    ];
    for w in want {
        assert!(got.iter().any(|m| m.contains(w)), "no message contains {w:?}:\n{}", got.join("\n"));
    }
    assert_eq!(got.len(), want.len(), "unexpected extra messages:\n{}", got.join("\n"));

    let bad_unit = strings(&eval(&format!(
        r#"lib.validateContainer {{ name = "has space"; container = {MODULE_DEFAULTS} // {{ name = "fine"; closure = null; }}; }}"#
    )));
    assert_eq!(bad_unit.len(), 1, "{bad_unit:?}");
    assert!(bad_unit[0].contains("nucleus-has space.service"), "{bad_unit:?}");
}

// ---------------------------------------------------------------------------
// Against the real CLI.

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
    let table = eval("lib.optionFlags");
    let table = table.as_array().unwrap();
    assert_eq!(table.len(), 17, "{table:?}");
    let mut missing = Vec::new();
    for entry in table {
        for key in ["flag", "long"] {
            let flag = entry[key].as_str().unwrap();
            if !run_flags.contains(flag) {
                missing.push(format!("{flag} (option {})", entry["option"]));
            }
        }
    }
    assert!(missing.is_empty(), "`nucleus run --help` lacks {missing:?}; it has {run_flags:?}");

    // The module uses `run`, `delete --force` and (documented) `kill`: nothing else.
    let top = String::from_utf8_lossy(&check(Command::new(NUCLEUS).arg("--help")).stdout).into_owned();
    for sub in ["run", "kill", "delete"] {
        assert!(top.lines().any(|l| l.trim_start().starts_with(sub)), "`nucleus --help` lists no `{sub}`:\n{top}");
    }
    assert!(help_flags(&["delete", "--help"]).contains("--force"), "`nucleus delete` has no --force");
}

/// Runs `nucleus run --dry-run ARGS` (ARGS: mkRunArgs's list without "run")
/// and returns the printed config.json and the digest line.
fn dry_run(work: &Path, run_args: &[String]) -> (Value, String) {
    assert_eq!(run_args.first().map(String::as_str), Some("run"), "{run_args:?}");
    let out = output(
        Command::new(NUCLEUS)
            .arg("run")
            .arg("--dry-run")
            .args(&run_args[1..])
            .current_dir(work)
            .env("NUCLEUS_STATE_ROOT", work.join("state"))
            .env("XDG_CACHE_HOME", work.join(".cache")),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "nucleus run --dry-run {:?} failed with {}:\n{}\n{stdout}",
        &run_args[1..],
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let trimmed = stdout.trim_end();
    let (config, digest) = trimmed.rsplit_once('\n').unwrap_or_else(|| panic!("no digest line in {stdout}"));
    let hex = digest.strip_prefix("sha256:").unwrap_or_else(|| panic!("last line is not sha256:<hex>: {digest:?}"));
    assert!(hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()), "bad digest line {digest:?}");
    let config: Value =
        serde_json::from_str(config).unwrap_or_else(|e| panic!("config.json is not JSON ({e}): {config}"));
    (config, digest.to_string())
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
    let tiny = hello_closure();
    let data = w.join("data");
    let ro = w.join("ro");
    fs::create_dir(&data).unwrap();
    fs::create_dir(&ro).unwrap();
    let secret = w.join("token");
    fs::write(&secret, "s3cret").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let data_s = fs::canonicalize(&data).unwrap().display().to_string();
    let ro_s = fs::canonicalize(&ro).unwrap().display().to_string();
    let secret_s = fs::canonicalize(&secret).unwrap().display().to_string();

    let expr = r#"lib.mkRunArgs {
      name = "nix-eval-dry";
      hostname = "tiny-host";
      closure = args.tiny;
      environment = { ZED = "last"; ALPHA = "first value"; PCT = "100% $HOME"; };
      volumes = [ "${args.data}:/data:rw" "${args.ro}:/ro" ];
      tmpfs = [ "/scratch:16M" ];
      secrets = [ "${args.secret}:/run/secrets/token" ];
      user = "1000:1000";
      workdir = "/data";
      memory = "64M";
      cpus = 1.5;
      pids = 128;
      network = "none";
      platform = "ptrace";
      timeout = 30;
      command = [ "/bin/sh" "-c" "echo $ALPHA" ];
    }"#;
    let args = strings(&eval_with(expr, &[("tiny", &tiny), ("data", &data_s), ("ro", &ro_s), ("secret", &secret_s)]));
    let (config, digest) = dry_run(w, &args);

    assert_eq!(config["process"]["args"], json!(["/bin/sh", "-c", "echo $ALPHA"]));
    let env = strings(&config["process"]["env"]);
    for want in ["ALPHA=first value", "PCT=100% $HOME", "ZED=last"] {
        assert!(env.iter().any(|e| e == want), "{want} not in {env:?}");
    }
    assert_eq!(config["hostname"], "tiny-host");
    assert_eq!(config["process"]["user"]["uid"], 1000);
    assert_eq!(config["process"]["user"]["gid"], 1000);
    assert_eq!(config["process"]["cwd"], "/data");

    let data_mount = mount(&config, "/data");
    assert_eq!(data_mount["source"], data_s.as_str());
    assert!(options(data_mount).contains(&"rw".to_string()), "{data_mount}");
    let ro_mount = mount(&config, "/ro");
    assert_eq!(ro_mount["source"], ro_s.as_str());
    assert!(options(ro_mount).contains(&"ro".to_string()), "{ro_mount}");
    let scratch = mount(&config, "/scratch");
    assert_eq!(scratch["type"], "tmpfs");
    let size = options(scratch).into_iter().find(|o| o.starts_with("size=")).expect("tmpfs without size");
    assert!(size == "size=16777216" || size.eq_ignore_ascii_case("size=16m"), "tmpfs size {size} is not 16M");
    mount(&config, "/run/secrets/token");
    assert!(!config.to_string().contains("s3cret"), "the secret's content reached config.json");

    let resources = &config["linux"]["resources"];
    assert_eq!(resources["memory"]["limit"], 64 * 1024 * 1024);
    let quota = resources["cpu"]["quota"].as_f64().expect("no cpu quota");
    let period = resources["cpu"]["period"].as_f64().expect("no cpu period");
    assert!((quota / period - 1.5).abs() < 1e-9, "cpu {quota}/{period} is not 1.5 CPUs");
    assert_eq!(resources["pids"]["limit"], 128);
    let namespaces: Vec<&str> =
        config["linux"]["namespaces"].as_array().unwrap().iter().filter_map(|n| n["type"].as_str()).collect();
    assert!(namespaces.contains(&"network"), "network none needs its own namespace: {namespaces:?}");

    // The same arguments give the same bundle digest.
    let (_, again) = dry_run(w, &args);
    assert_eq!(digest, again);
}

#[test]
fn dry_run_takes_hooks_and_a_pinned_seccomp_profile() {
    let work = tempdir();
    let w = work.path();
    let tiny = hello_closure();
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

    let hooks_s = hooks.display().to_string();
    let profile_s = profile.display().to_string();
    let args = strings(&eval_with(
        r#"lib.mkRunArgs {
          closure = args.tiny;
          hooks = args.hooks;
          seccompProfile = args.profile;
          seccompProfileSha256 = args.sha;
          command = [ "/bin/hello" ];
        }"#,
        &[("tiny", &tiny), ("hooks", &hooks_s), ("profile", &profile_s), ("sha", &sha)],
    ));
    let (config, _) = dry_run(w, &args);
    assert_eq!(config["hooks"]["poststop"][0]["path"], hook.as_str(), "{:#}", config["hooks"]);
    assert_eq!(config["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ALLOW");
    assert_eq!(config["linux"]["seccomp"]["syscalls"][0]["names"], json!(["kexec_load"]));
    assert_eq!(config["process"]["args"], json!(["/bin/hello"]));
}

#[test]
fn dry_run_accepts_a_container_left_at_the_module_defaults() {
    let work = tempdir();
    let w = work.path();
    let tiny = hello_closure();
    let args = strings(&eval_with(
        &format!(r#"lib.mkRunArgs (lib.containerRunArgs "web" ({MODULE_DEFAULTS} // {{ closure = args.tiny; }}))"#),
        &[("tiny", &tiny)],
    ));
    assert_eq!(args, ["run", "--name", "web", "--network", "none", tiny.as_str(), "--", "/bin/app"]);
    let (config, _) = dry_run(w, &args);
    assert_eq!(config["process"]["args"], json!(["/bin/app"]));
}
