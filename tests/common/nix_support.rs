//! What the tests of the Nix side share (tests/nix_eval.rs, tests/nix_sandbox.rs):
//! running Nix in a temporary directory, evaluating nix/lib.nix and the NixOS
//! module (tests/nix/eval-module.nix, no nixpkgs needed), making host-built
//! programs runnable in a Nix sandbox (tests/nix/host-program.nix), and
//! reading unit files back with systemd's rules.
//!
//! Used as `#[path = "common/nix_support.rs"] mod nix_support;` next to
//! `mod common;`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::{nix_bin, NIX_CONFIG};

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("nucleus-nix-test-").tempdir().expect("cannot create a temporary directory")
}

/// A Nix command that runs in `work`, keeps its caches there, uses no
/// binary cache and builds in the sandbox.
pub fn nix_command(name: &str, work: &Path) -> Command {
    let mut cmd = Command::new(nix_bin(name));
    cmd.current_dir(work).env("XDG_CACHE_HOME", work.join(".cache")).env("NIX_CONFIG", NIX_CONFIG);
    cmd
}

pub fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
pub fn check(cmd: &mut Command) -> Output {
    let out = output(cmd);
    assert!(out.status.success(), "{cmd:?} failed with {}:\n{}", out.status, stderr(&out));
    out
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("Nix printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

// ---------------------------------------------------------------------------
// Evaluating nix/lib.nix.

/// The evaluation of `expr`, in which `lib` is nix/lib.nix, `root` the
/// repository, and `args.NAME` each string given here (passed with
/// --argstr, so they need no Nix quoting).
pub fn eval_command(work: &Path, expr: &str, strings: &[(&str, &str)]) -> Command {
    let mut cmd = nix_command("nix-instantiate", work);
    cmd.args(["--eval", "--strict", "--json", "--argstr", "root", ROOT]);
    for (name, value) in strings {
        cmd.args(["--argstr", name, value]);
    }
    let full = format!("{{ root, ... }}@args: let lib = import (/. + root + \"/nix/lib.nix\"); in ({expr})");
    cmd.arg("--expr").arg(full);
    cmd
}

#[track_caller]
pub fn eval_with(expr: &str, strings: &[(&str, &str)]) -> Value {
    let work = tempdir();
    json(&check(&mut eval_command(work.path(), expr, strings)))
}

#[track_caller]
pub fn eval(expr: &str) -> Value {
    eval_with(expr, &[])
}

/// Evaluates `expr`, which must fail; returns the error text.
#[track_caller]
pub fn eval_error(expr: &str) -> String {
    let work = tempdir();
    let out = output(&mut eval_command(work.path(), expr, &[]));
    assert!(!out.status.success(), "expected `{expr}` to fail, got {}", String::from_utf8_lossy(&out.stdout));
    stderr(&out)
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a JSON list, got {v}"))
        .iter()
        .map(|s| s.as_str().unwrap_or_else(|| panic!("expected strings, got {s}")).to_string())
        .collect()
}

// ---------------------------------------------------------------------------
// The NixOS module, evaluated with the stand-in NixOS.

/// `tests/nix/eval-module.nix`'s summary of a configuration in tests/nix/:
/// failed assertions, warnings, unit texts, the package, the checks' names.
#[track_caller]
pub fn module_summary(configuration: &str) -> Value {
    let work = tempdir();
    let out = check(module_eval(work.path(), configuration).args(["--eval", "--strict", "--json", "-A", "summary"]));
    json(&out)
}

/// `nix-instantiate` of tests/nix/eval-module.nix with a configuration
/// file from tests/nix/; add the mode and attribute.
pub fn module_eval(work: &Path, configuration: &str) -> Command {
    let mut cmd = nix_command("nix-instantiate", work);
    module_args(&mut cmd, configuration);
    cmd
}

pub fn module_args(cmd: &mut Command, configuration: &str) {
    cmd.arg(Path::new(ROOT).join("tests/nix/eval-module.nix"))
        .arg("--arg")
        .arg("configuration")
        .arg(Path::new(ROOT).join("tests/nix").join(configuration))
        .args(["--arg", "busyboxFile", &busybox()]);
}

/// The host's static busybox, canonical (test closures are built from it).
pub fn busybox() -> String {
    let found = crate::common::which("busybox").expect("busybox not found: install busybox-static (.ci/run does)");
    found.canonicalize().unwrap().display().to_string()
}

// ---------------------------------------------------------------------------
// Host programs in the Nix sandbox.

/// The dynamic loader and libraries `program` needs, as `ldd` lists them:
/// JSON mapping each file name to the canonical host file, for
/// tests/nix/host-program.nix.
pub fn host_libraries(program: &Path) -> String {
    let out = check(Command::new("ldd").arg(program));
    let mut libraries = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let line = line.trim();
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or the loader
        // "/lib64/ld-linux-x86-64.so.2 (0x…)"; the vDSO has no file.
        let (name, file) = match line.split_once(" => ") {
            Some((name, rest)) => (name.to_string(), rest.split(" (").next().unwrap_or("").to_string()),
            None if line.starts_with('/') => {
                let file = line.split(" (").next().unwrap().to_string();
                (Path::new(&file).file_name().unwrap().to_string_lossy().into_owned(), file)
            }
            None => continue,
        };
        if file.is_empty() || !file.starts_with('/') {
            continue;
        }
        let canonical = Path::new(&file).canonicalize().unwrap_or_else(|e| panic!("{file}: {e}"));
        libraries.insert(name, canonical.display().to_string());
    }
    assert!(libraries.keys().any(|k| k.starts_with("ld-linux")), "ldd named no loader for {}", program.display());
    serde_json::to_string(&libraries).unwrap()
}

/// The library's unit-test program cargo built (`target/debug/deps/nucleus-HASH`
/// whose `--list` names the `policy::` tests), the newest if there are several.
/// The test does not run cargo itself (cargo holds the build lock), so a
/// program older than the sources is an error: build it with
/// `cargo test --no-run`, as `cargo test` does before running anything.
pub fn unit_test_program() -> PathBuf {
    let deps = Path::new(NUCLEUS_BIN).parent().unwrap().join("deps");
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&deps)
        .unwrap_or_else(|e| panic!("{}: {e}", deps.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("nucleus-") && !name.contains('.') && is_executable(p)
        })
        .filter(|p| {
            Command::new(p)
                .args(["--list", "--format", "terse"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("policy::"))
        })
        .map(|p| (p.metadata().unwrap().modified().unwrap(), p))
        .collect();
    found.sort();
    let (built, program) = found.pop().unwrap_or_else(|| {
        panic!("no unit-test program of the library in {}: build it with `cargo test --no-run`", deps.display())
    });
    let newest_source = walkdir::WalkDir::new(Path::new(ROOT).join("src"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .max()
        .unwrap();
    assert!(
        built >= newest_source,
        "{} is older than src/: build it with `cargo test --no-run` (as `cargo test` does)",
        program.display()
    );
    program
}

const NUCLEUS_BIN: &str = env!("CARGO_BIN_EXE_nucleus");

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `nix-build --no-out-link` in the sandbox (and never without it).
pub fn nix_build(work: &Path) -> Command {
    let mut cmd = nix_command("nix-build", work);
    cmd.args(["--no-out-link", "--option", "sandbox", "true", "--option", "sandbox-fallback", "false"]);
    cmd
}

// ---------------------------------------------------------------------------
// Reading unit files as systemd does.

/// The values of `key` in `section` of a unit file, in order.
pub fn unit_values(text: &str, section: &str, key: &str) -> Vec<String> {
    let mut current = "";
    let mut values = Vec::new();
    for line in text.lines() {
        if line.starts_with('[') && line.ends_with(']') {
            current = &line[1..line.len() - 1];
        } else if current == section {
            if let Some((k, v)) = line.split_once('=') {
                if k == key {
                    values.push(v.to_string());
                }
            }
        }
    }
    values
}

/// The single value of `key` in `section`.
#[track_caller]
pub fn unit_value(text: &str, section: &str, key: &str) -> String {
    let values = unit_values(text, section, key);
    assert_eq!(values.len(), 1, "[{section}] {key}= in:\n{text}");
    values.into_iter().next().unwrap()
}

/// The argument vector systemd runs for an ExecStart=-style value (without
/// its `-`/`@`/`+` prefixes): words split at blanks, double and single
/// quotes removed, C escapes decoded (`\n`, `\xNN`, `\uNNNN` …); then, in
/// each word, specifiers expanded (`%%` is `%`; `specifiers` gives the
/// others' values, and any other is an error), and `$$` made `$` (a lone
/// `$` before a name would be expanded from the environment: an error).
#[track_caller]
pub fn systemd_words(line: &str, specifiers: &[(char, &str)]) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut word = String::new();
        let mut quote = None;
        while let Some(c) = chars.next() {
            match (c, quote) {
                ('"' | '\'', None) => quote = Some(c),
                (q, Some(open)) if q == open => quote = None,
                (' ' | '\t', None) => break,
                ('\\', _) => word.push(unescape(&mut chars, line)),
                (c, _) => {
                    assert!(c >= ' ', "raw control character {c:?} in {line:?}");
                    word.push(c)
                }
            }
        }
        assert!(quote.is_none(), "unterminated quote in {line:?}");
        words.push(expand_dollars(&expand_specifiers(&word, specifiers)));
    }
    words
}

fn unescape(chars: &mut std::iter::Peekable<std::str::Chars>, line: &str) -> char {
    let hex = |chars: &mut std::iter::Peekable<std::str::Chars>, n: usize| {
        let digits: String = (0..n).map(|_| chars.next().expect("short escape")).collect();
        let code = u32::from_str_radix(&digits, 16).unwrap_or_else(|_| panic!("bad escape in {line:?}"));
        assert_ne!(code, 0, "systemd refuses \\0 in {line:?}");
        char::from_u32(code).unwrap()
    };
    match chars.next().unwrap_or_else(|| panic!("dangling backslash in {line:?}")) {
        'a' => '\x07',
        'b' => '\x08',
        'f' => '\x0c',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\x0b',
        's' => ' ',
        'x' => hex(chars, 2),
        'u' => hex(chars, 4),
        'U' => hex(chars, 8),
        c @ ('\\' | '"' | '\'') => c,
        other => panic!("unexpected escape \\{other} in {line:?}"),
    }
}

#[track_caller]
fn expand_specifiers(word: &str, specifiers: &[(char, &str)]) -> String {
    let mut out = String::new();
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(s) => match specifiers.iter().find(|(k, _)| *k == s) {
                Some((_, value)) => out.push_str(value),
                None => panic!("systemd would expand the specifier %{s} in {word:?}"),
            },
            None => panic!("a lone % at the end of {word:?}"),
        }
    }
    out
}

#[track_caller]
fn expand_dollars(word: &str) -> String {
    let mut out = String::new();
    let mut chars = word.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' {
            match chars.peek() {
                Some('$') => {
                    chars.next();
                }
                Some(n) if *n == '{' || n.is_ascii_alphabetic() || *n == '_' => {
                    panic!("systemd would expand an environment variable in {word:?}")
                }
                _ => {}
            }
        }
        out.push(c);
    }
    out
}
