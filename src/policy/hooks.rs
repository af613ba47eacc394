//! The shape of an OCI `hooks` object, checked strictly before anything
//! else. Hooks run on the host with nucleus's privileges, so where each
//! program lives is checked too: here lexically (inside `/nix/store`, no
//! `.` or `..`), and then on the host by [`crate::host::hooks`], which
//! resolves it without leaving the store and hands runsc the verified path.

use std::path::Path;

use serde_json::Value;

use crate::{Error, Result};

/// A hook phase that this runsc runs. `createContainer` and
/// `startContainer` are not among them: runsc skips them without a word,
/// so asking for them is an error rather than a silent no-op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum HookPhase {
    Prestart,
    CreateRuntime,
    Poststart,
    Poststop,
}

impl HookPhase {
    pub fn name(self) -> &'static str {
        match self {
            HookPhase::Prestart => "prestart",
            HookPhase::CreateRuntime => "createRuntime",
            HookPhase::Poststart => "poststart",
            HookPhase::Poststop => "poststop",
        }
    }
}

/// One hook as the user wrote it; its path is not verified yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookSpec {
    pub phase: HookPhase,
    pub path: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub timeout: Option<u32>,
}

const PHASES: &[&str] = &["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"];

/// Parses a `hooks` object, refusing unknown keys at every level.
pub fn parse(json: &[u8], file: &Path) -> Result<Vec<HookSpec>> {
    let refuse = |why: String| Error::invalid("--hooks", format!("{}: {why}", file.display()));
    let value: Value = serde_json::from_slice(json).map_err(|e| refuse(format!("not JSON: {e}")))?;
    let object = value.as_object().ok_or_else(|| refuse("expected a JSON object of hook phases".into()))?;
    let mut hooks = Vec::new();
    for (name, list) in object {
        let phase = match name.as_str() {
            "prestart" => HookPhase::Prestart,
            "createRuntime" => HookPhase::CreateRuntime,
            "poststart" => HookPhase::Poststart,
            "poststop" => HookPhase::Poststop,
            "createContainer" | "startContainer" => {
                return Err(Error::Hook {
                    path: name.clone(),
                    reason: format!(
                        "runsc cannot run {name} hooks (it would skip them); use createRuntime or poststart instead"
                    ),
                })
            }
            _ => return Err(refuse(format!("unknown hook phase '{name}' (known: {})", PHASES.join(", ")))),
        };
        let list = list.as_array().ok_or_else(|| refuse(format!("{name} must be a list of hooks")))?;
        for (i, hook) in list.iter().enumerate() {
            hooks.push(parse_hook(phase, hook).map_err(|why| refuse(format!("{name}[{i}]: {why}")))?);
        }
    }
    for hook in &hooks {
        check_location(hook)?;
    }
    Ok(hooks)
}

fn parse_hook(phase: HookPhase, hook: &Value) -> std::result::Result<HookSpec, String> {
    let fields = hook.as_object().ok_or("a hook must be a JSON object")?;
    if let Some(unknown) = fields.keys().find(|k| !["path", "args", "env", "timeout"].contains(&k.as_str())) {
        return Err(format!("unknown key '{unknown}' (known: path, args, env, timeout)"));
    }
    let path = fields.get("path").and_then(Value::as_str).ok_or("path must be a string")?.to_string();
    let strings = |key: &str| -> std::result::Result<Vec<String>, String> {
        match fields.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|s| s.as_str().map(String::from).ok_or_else(|| format!("{key} must be a list of strings")))
                .collect(),
            Some(_) => Err(format!("{key} must be a list of strings")),
        }
    };
    let args = strings("args")?;
    let env = strings("env")?;
    for entry in &env {
        match entry.split_once('=') {
            Some((key, _)) if !key.is_empty() && !entry.contains('\0') => {}
            _ => return Err(format!("env entry '{entry}' is not KEY=VALUE")),
        }
    }
    let timeout = match fields.get("timeout") {
        None | Some(Value::Null) => None,
        Some(t) => match t.as_u64().and_then(|t| u32::try_from(t).ok()) {
            Some(t) if t > 0 => Some(t),
            _ => return Err("timeout must be a whole number of seconds, at least 1".into()),
        },
    };
    Ok(HookSpec { phase, path, args, env, timeout })
}

/// The lexical half of the store rule.
fn check_location(hook: &HookSpec) -> Result<()> {
    let refuse = |reason: &str| Error::Hook { path: hook.path.clone(), reason: reason.to_string() };
    if !hook.path.starts_with("/nix/store/") {
        return Err(refuse("hooks must be absolute paths inside /nix/store"));
    }
    // Split by hand: `Path::components` folds `.` away.
    if hook.path.split('/').any(|c| c == "." || c == "..") {
        return Err(refuse("the path contains '..' or '.'"));
    }
    if hook.path.contains('\0') {
        return Err(refuse("the path contains a NUL byte"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<Vec<HookSpec>> {
        parse(s.as_bytes(), Path::new("hooks.json"))
    }

    #[test]
    fn parses_phases_and_refuses_unknown_keys() {
        let hooks = parse_str(r#"{"poststop":[{"path":"/nix/store/x","args":["x","a"],"timeout":5}]}"#).unwrap();
        assert_eq!(hooks[0].phase, HookPhase::Poststop);
        assert_eq!(hooks[0].args, ["x", "a"]);
        for bad in [
            r#"{"postStop":[]}"#,
            r#"{"poststop":[{"path":"/nix/store/x","bogus":1}]}"#,
            r#"{"poststop":{"path":"/nix/store/x"}}"#,
            r#"{"poststop":[{"path":"/nix/store/x","timeout":0}]}"#,
            r#"{"poststop":[{"path":"/nix/store/x","env":["NOEQUALS"]}]}"#,
            r#"[]"#,
            "{",
        ] {
            assert!(matches!(parse_str(bad), Err(Error::InvalidArgument { .. })), "{bad}");
        }
    }

    #[test]
    fn refuses_paths_outside_the_store_and_phases_runsc_skips() {
        for path in ["/usr/bin/true", "relative/hook", "/nix/store/../../usr/bin/true", "/nix/store/./x"] {
            let json = format!(r#"{{"poststop":[{{"path":"{path}"}}]}}"#);
            assert!(matches!(parse_str(&json), Err(Error::Hook { .. })), "{path}");
        }
        let err = parse_str(r#"{"startContainer":[{"path":"/nix/store/x"}]}"#).unwrap_err();
        assert!(matches!(err, Error::Hook { .. }));
    }
}
