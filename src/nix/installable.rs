//! INSTALLABLE → StorePath: a store path or a path resolving to one
//! (`./result`), a `.nix` file for nix-build, or anything `nix build` takes
//! (flake references above all); and, when no command was given, the
//! program to run, picked as `nix run` picks it.
//!
//! Flake references are built with `nix build --json --no-link`, which
//! every Nix since 2.4 understands (`--print-out-paths` came with 2.6 and
//! was missing from some builds).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::command::{describe, nix, stdout_of, stdout_of_probe, Deadline};
use super::StorePath;
use crate::request::{InstallableRequest, NixArg};
use crate::{Error, Result};

/// How nucleus will turn the user's INSTALLABLE into a store path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Installable {
    /// A filesystem path that must resolve (symlinks followed) to a store path.
    Path(String),
    /// A Nix expression file, built with `nix-build`.
    NixFile { file: String, attr: Option<String>, args: Vec<NixArg> },
    /// Anything else (flake references above all), built with `nix build`.
    Flake(String),
}

/// What an installable resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedInstallable {
    pub root: StorePath,
    /// The program `nix run` would start, when it was asked for.
    pub main_program: Option<String>,
}

impl Installable {
    /// Classifies the request without touching Nix; only the filesystem is
    /// asked whether a path exists.
    pub fn classify(req: &InstallableRequest) -> Result<Self> {
        let text = req.text.as_str();
        let bad = |why: &str| Error::Installable { installable: text.to_string(), reason: why.to_string() };
        if text.is_empty() {
            return Err(bad("it is empty"));
        }
        if text.contains('\0') || text.contains('\n') {
            return Err(bad("it contains a NUL or newline"));
        }
        let looks_like_path =
            text.starts_with('/') || text.starts_with("./") || text.starts_with("../") || text == "." || text == "..";
        let is_flake_ref = text.contains('#') || (text.contains(':') && !looks_like_path);
        let installable = if is_flake_ref {
            Installable::Flake(text.to_string())
        } else if text.ends_with(".nix") {
            if !Path::new(text).is_file() {
                return Err(bad("no such .nix file"));
            }
            Installable::NixFile { file: text.to_string(), attr: req.attr.clone(), args: req.nix_args.clone() }
        } else if looks_like_path || Path::new(text).symlink_metadata().is_ok() {
            Installable::Path(text.to_string())
        } else {
            Installable::Flake(text.to_string())
        };
        let takes_nix_args = matches!(installable, Installable::NixFile { .. });
        if !takes_nix_args && (req.attr.is_some() || !req.nix_args.is_empty()) {
            return Err(bad("-A, --arg and --argstr apply only to a .nix file"));
        }
        Ok(installable)
    }

    /// Builds (if needed) and returns the top-level store path, and the
    /// main program when `main_program` asks for it.
    pub fn resolve(&self, main_program: bool, deadline: &Deadline) -> Result<ResolvedInstallable> {
        match self {
            Installable::Path(text) => {
                let root = resolve_path(text)?;
                let program = main_program.then(|| program_in_bin(text, &root, root.package_name())).transpose()?;
                Ok(ResolvedInstallable { root, main_program: program })
            }
            Installable::NixFile { file, attr, args } => {
                let mut cmd = Command::new("nix-build");
                cmd.args(["--no-out-link", file.as_str()]);
                add_nix_file_args(&mut cmd, attr.as_deref(), args);
                let root = first_store_path(file, &stdout_of(cmd, deadline)?)?;
                let program = if main_program {
                    let named = nix_file_main_program(file, attr.as_deref(), args, deadline)?;
                    Some(program_in_bin(file, &root, named.as_deref().unwrap_or(root.package_name()))?)
                } else {
                    None
                };
                Ok(ResolvedInstallable { root, main_program: program })
            }
            Installable::Flake(reference) => resolve_flake(reference, main_program, deadline),
        }
    }
}

fn add_nix_file_args(cmd: &mut Command, attr: Option<&str>, args: &[NixArg]) {
    if let Some(attr) = attr {
        cmd.args(["-A", attr]);
    }
    for arg in args {
        match arg {
            NixArg::Expr { name, expr } => cmd.args(["--arg", name, expr]),
            NixArg::Str { name, value } => cmd.args(["--argstr", name, value]),
        };
    }
}

fn resolve_path(text: &str) -> Result<StorePath> {
    let bad = |why: String| Error::Installable { installable: text.to_string(), reason: why };
    let canonical = std::fs::canonicalize(text).map_err(|e| bad(format!("cannot resolve it: {e}")))?;
    let resolved = canonical.to_str().ok_or_else(|| bad("it resolves to a path that is not UTF-8".into()))?;
    // Whether Nix has registered it is for the closure query to find out:
    // asking here would cost another Nix process on every run.
    StorePath::parse(resolved).map_err(|_| {
        bad(format!("it resolves to {resolved}, which is not a top-level /nix/store path; build it with Nix first"))
    })
}

/// Nix prints one line per output; the first is the default output.
fn first_store_path(installable: &str, stdout: &str) -> Result<StorePath> {
    let line = stdout.lines().map(str::trim).find(|l| !l.is_empty()).ok_or_else(|| Error::NixOutput {
        command: format!("nix-build {installable}"),
        reason: "Nix built it but printed no output path".into(),
    })?;
    StorePath::parse(line)
        .map_err(|e| Error::NixOutput { command: format!("nix-build {installable}"), reason: format!("{line}: {e}") })
}

/// The program `nix run` names for a `.nix` file's derivation:
/// `meta.mainProgram`, else `pname`, if it has either. (nix-instantiate
/// calls the file's function with the arguments; `nix eval --file` on Nix
/// 2.8 does not, so each is a probe of its own.)
fn nix_file_main_program(
    file: &str,
    attr: Option<&str>,
    args: &[NixArg],
    deadline: &Deadline,
) -> Result<Option<String>> {
    for name in ["meta.mainProgram", "pname"] {
        let mut cmd = Command::new("nix-instantiate");
        cmd.args(["--eval", "--json", file]);
        let path = match attr {
            Some(attr) => format!("{attr}.{name}"),
            None => name.to_string(),
        };
        add_nix_file_args(&mut cmd, Some(&path), args);
        // No such attribute is the common case, not an error; an expired
        // deadline still is one.
        match stdout_of_probe(cmd, deadline) {
            Ok(json) => {
                if let Ok(program) = serde_json::from_str::<String>(json.trim()) {
                    return Ok(Some(program));
                }
            }
            Err(e @ (Error::Timeout { .. } | Error::Interrupted { .. })) => return Err(e),
            Err(_) => {}
        }
    }
    Ok(None)
}

/// The main program of a package: `bin/<name>` inside `root`, which must
/// exist; otherwise the error lists what `bin/` holds.
fn program_in_bin(installable: &str, root: &StorePath, name: &str) -> Result<String> {
    let program = root.join("bin").join(name);
    if program.symlink_metadata().is_ok() && !name.contains('/') {
        return Ok(program.display().to_string());
    }
    let mut entries: Vec<String> = std::fs::read_dir(root.join("bin"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    entries.sort();
    let listing =
        if entries.is_empty() { "no bin/ at all".to_string() } else { format!("bin/ holds {}", entries.join(", ")) };
    Err(Error::Installable {
        installable: installable.to_string(),
        reason: format!("cannot tell which program to run: {root} has no bin/{name} ({listing}); give one after `--`"),
    })
}

/// Builds a flake output; when asked for its main program, evaluates its
/// `meta.mainProgram` (or an app's `program`) first, trying `apps` before
/// packages as `nix run` does.
fn resolve_flake(reference: &str, main_program: bool, deadline: &Deadline) -> Result<ResolvedInstallable> {
    if main_program {
        if let Some(app) = app_candidate(reference) {
            if let Some(resolved) = resolve_app(&app, deadline)? {
                return Ok(resolved);
            }
        }
    }
    let mut cmd = nix();
    cmd.args(["build", "--json", "--no-link", reference]);
    let shown = describe(&cmd);
    let json = stdout_of(cmd, deadline)?;
    let root = built_output(&json).map_err(|reason| Error::NixOutput { command: shown, reason })?;
    if !main_program {
        return Ok(ResolvedInstallable { root, main_program: None });
    }
    let info = eval_json(reference, MAIN_PROGRAM_APPLY, deadline, true)?.unwrap_or(Value::Null);
    let name = info.get("mainProgram").and_then(Value::as_str).map(String::from);
    let program = program_in_bin(reference, &root, name.as_deref().unwrap_or(root.package_name()))?;
    Ok(ResolvedInstallable { root, main_program: Some(program) })
}

/// Picks the program's name as `nix run` does: `meta.mainProgram`, else
/// `pname` (else the name without its version, the store path's own, read
/// later).
const MAIN_PROGRAM_APPLY: &str = "x: { mainProgram = x.meta.mainProgram or x.pname or null; }";

/// For an app: its program and the derivations its string depends on.
const APP_APPLY: &str = "x: if (x.type or null) == \"app\" then { program = x.program; \
    drvs = builtins.attrNames (builtins.getContext x.program); } else null";

/// `url#attr` → `url#apps.<system>.attr`, when `attr` is a bare name.
fn app_candidate(reference: &str) -> Option<String> {
    let (url, attr) = reference.rsplit_once('#').unwrap_or((reference, "default"));
    let prefixed =
        ["apps.", "packages.", "legacyPackages.", "checks.", "devShells."].iter().any(|p| attr.starts_with(p));
    if prefixed {
        return attr.starts_with("apps.").then(|| reference.to_string());
    }
    Some(format!("{url}#apps.{}-linux.{attr}", std::env::consts::ARCH))
}

/// An app's program, with the store paths it needs built.
fn resolve_app(reference: &str, deadline: &Deadline) -> Result<Option<ResolvedInstallable>> {
    let Some(app) = eval_json(reference, APP_APPLY, deadline, false)? else { return Ok(None) };
    let Some(program) = app.get("program").and_then(Value::as_str) else { return Ok(None) };
    let drvs: Vec<&str> =
        app.get("drvs").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    for drv in drvs.iter().filter(|d| d.ends_with(".drv")) {
        let mut cmd = Command::new("nix-store");
        // Like `nix run`, no GC root, and so no warning that there is none.
        cmd.args(["--realise", "--no-gc-warning", drv]);
        stdout_of(cmd, deadline)?;
    }
    let root = StorePath::containing(Path::new(program)).ok_or_else(|| Error::Installable {
        installable: reference.to_string(),
        reason: format!("the app's program {program} is not inside the store"),
    })?;
    Ok(Some(ResolvedInstallable { root, main_program: Some(program.to_string()) }))
}

/// `nix eval --json REF --apply F`; `None` when the attribute does not
/// exist (or, with `required` false, when the evaluation fails at all).
fn eval_json(reference: &str, apply: &str, deadline: &Deadline, required: bool) -> Result<Option<Value>> {
    let mut cmd = nix();
    cmd.args(["eval", "--json", reference, "--apply", apply]);
    let shown = describe(&cmd);
    let outcome = if required { stdout_of(cmd, deadline) } else { stdout_of_probe(cmd, deadline) };
    let json = match outcome {
        Ok(json) => json,
        Err(Error::NixCommand { .. }) if !required => return Ok(None),
        Err(e) => return Err(e),
    };
    let value: Value = serde_json::from_str(&json)
        .map_err(|e| Error::NixOutput { command: shown, reason: format!("not JSON: {e}") })?;
    Ok(if value.is_null() { None } else { Some(value) })
}

/// The first output of the first derivation in `nix build --json`:
/// `[{"drvPath": …, "outputs": {"out": "/nix/store/…"}}]`.
fn built_output(json: &str) -> std::result::Result<StorePath, String> {
    let value: Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let outputs = value
        .as_array()
        .and_then(|built| built.first())
        .and_then(|first| first.get("outputs"))
        .and_then(Value::as_object)
        .ok_or("expected a list of built derivations with their outputs")?;
    let path = outputs
        .get("out")
        .or_else(|| outputs.values().next())
        .and_then(Value::as_str)
        .ok_or("the derivation has no output path")?;
    StorePath::parse(path).map_err(|e| format!("{path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(text: &str) -> Result<Installable> {
        Installable::classify(&InstallableRequest { text: text.into(), ..Default::default() })
    }

    #[test]
    fn classifies_installables() {
        assert_eq!(classify(".#hello").unwrap(), Installable::Flake(".#hello".into()));
        assert_eq!(classify("nixpkgs#hello").unwrap(), Installable::Flake("nixpkgs#hello".into()));
        assert_eq!(classify("path:/tmp/f#x").unwrap(), Installable::Flake("path:/tmp/f#x".into()));
        assert_eq!(classify("/nix/store/x").unwrap(), Installable::Path("/nix/store/x".into()));
        assert_eq!(classify("./result").unwrap(), Installable::Path("./result".into()));
        assert!(classify("./missing.nix").is_err());
        assert!(classify("").is_err());
        assert!(classify("a\0b").is_err());
        let with_attr = InstallableRequest { text: ".#x".into(), attr: Some("a".into()), nix_args: vec![] };
        assert!(matches!(Installable::classify(&with_attr), Err(Error::Installable { .. })));
    }

    #[test]
    fn a_path_outside_the_store_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let text = tmp.path().to_str().unwrap();
        let err = classify(text).unwrap().resolve(false, &Deadline::none()).unwrap_err();
        assert!(matches!(err, Error::Installable { .. }), "{err}");
    }

    #[test]
    fn reads_what_nix_build_json_prints() {
        let json = r#"[{"drvPath":"/nix/store/g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-x.drv",
                        "outputs":{"man":"/nix/store/iyfbhgnyacs9c74b5s3lp4vynl972yly-x-man",
                                   "out":"/nix/store/g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-x"}}]"#;
        assert_eq!(built_output(json).unwrap().as_str(), "/nix/store/g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-x");
        assert!(built_output("[]").is_err());
        assert!(built_output(r#"[{"outputs":{"out":"/usr/bin"}}]"#).is_err());
        let out = "\n/nix/store/g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-busybox\n";
        assert_eq!(first_store_path("x", out).unwrap().base_name(), "g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-busybox");
        assert!(matches!(first_store_path("x", "\n"), Err(Error::NixOutput { .. })));
    }

    #[test]
    fn apps_are_tried_as_nix_run_does() {
        let arch = std::env::consts::ARCH;
        assert_eq!(app_candidate(".#hello").unwrap(), format!(".#apps.{arch}-linux.hello"));
        assert_eq!(app_candidate("path:/f").unwrap(), format!("path:/f#apps.{arch}-linux.default"));
        assert_eq!(app_candidate(".#apps.x86_64-linux.x").unwrap(), ".#apps.x86_64-linux.x");
        assert!(app_candidate(".#packages.x86_64-linux.x").is_none());
    }
}
