//! OCI hooks, confined to the Nix store. Hooks run on the host with
//! nucleus's privileges, so each one must be an immutable, registered store
//! file: checked here, before anything is created.

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path};

use crate::nix::command::is_valid_path;
use crate::nix::StorePath;
use crate::oci::spec::{Hook, Hooks};
use crate::{Error, Result};

/// Phases that runsc skips without a word; running them is impossible, so
/// asking for them is an error rather than a silent no-op.
const UNSUPPORTED_PHASES: &[&str] = &["createContainer", "startContainer"];

/// Reads an OCI `hooks` object from `file` and validates every hook.
pub fn load(file: &Path) -> Result<Hooks> {
    let text = std::fs::read(file).map_err(|e| Error::invalid("--hooks", format!("{}: {e}", file.display())))?;
    let hooks = parse(&text).map_err(|why| Error::invalid("--hooks", format!("{}: {why}", file.display())))?;
    validate(&hooks)?;
    Ok(hooks)
}

/// The JSON shape only; paths are checked by [`validate`].
pub fn parse(json: &[u8]) -> std::result::Result<Hooks, String> {
    let value: serde_json::Value = serde_json::from_slice(json).map_err(|e| format!("not JSON: {e}"))?;
    let object = value.as_object().ok_or("expected a JSON object of hook phases")?;
    // Unknown phases are errors: a misspelt phase must not drop its hooks.
    const PHASES: &[&str] =
        &["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"];
    if let Some(unknown) = object.keys().find(|k| !PHASES.contains(&k.as_str())) {
        return Err(format!("unknown hook phase '{unknown}' (known: {})", PHASES.join(", ")));
    }
    serde_json::from_value(value).map_err(|e| format!("malformed hook: {e}"))
}

pub fn validate(hooks: &Hooks) -> Result<()> {
    for (phase, list) in hooks.phases() {
        if list.is_empty() {
            continue;
        }
        if UNSUPPORTED_PHASES.contains(&phase) {
            return Err(Error::Hook {
                path: list[0].path.clone(),
                why: format!(
                    "runsc cannot run {phase} hooks (it would skip them); use createRuntime or poststart instead"
                ),
            });
        }
        for hook in list {
            validate_hook(hook)?;
        }
    }
    Ok(())
}

fn validate_hook(hook: &Hook) -> Result<()> {
    let refuse = |why: String| Error::Hook { path: hook.path.clone(), why };
    let path = Path::new(&hook.path);
    if !hook.path.starts_with("/nix/store/") {
        return Err(refuse("hooks must be absolute paths inside /nix/store".into()));
    }
    if path.components().any(|c| matches!(c, Component::ParentDir | Component::CurDir)) {
        return Err(refuse("the path contains '..' or '.'".into()));
    }
    let resolved = path.canonicalize().map_err(|e| refuse(format!("cannot resolve it: {e}")))?;
    let owner = StorePath::containing(&resolved)
        .ok_or_else(|| refuse(format!("it resolves to {}, outside the Nix store", resolved.display())))?;
    if !is_valid_path(owner.as_str())? {
        return Err(refuse(format!("{owner} is not a valid (registered) store path")));
    }
    let meta = resolved.metadata().map_err(|e| refuse(e.to_string()))?;
    if !meta.is_file() {
        return Err(refuse("it is not a regular file".into()));
    }
    let mode = meta.mode();
    if mode & 0o111 == 0 {
        return Err(refuse("it is not executable".into()));
    }
    if mode & 0o022 != 0 {
        return Err(refuse(format!("it is writable by group or others (mode {:o})", mode & 0o7777)));
    }
    if mode & 0o6000 != 0 {
        return Err(refuse("it has the setuid or setgid bit".into()));
    }
    for entry in &hook.env {
        crate::policy::parse_env(entry).map_err(|e| refuse(e.to_string()))?;
    }
    if hook.timeout == Some(0) {
        return Err(refuse("timeout must be at least 1 second".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_phases_and_refuses_unknown_fields() {
        let hooks = parse(br#"{"poststop":[{"path":"/nix/store/x","args":["x","a"],"timeout":5}]}"#).unwrap();
        assert_eq!(hooks.poststop[0].args, ["x", "a"]);
        assert!(parse(br#"{"postStop":[]}"#).is_err());
        assert!(parse(br#"{"poststop":[{"path":"/x","bogus":1}]}"#).is_err());
        assert!(parse(br#"[]"#).is_err());
        assert!(parse(b"{").is_err());
    }

    #[test]
    fn refuses_paths_outside_the_store() {
        for path in ["/usr/bin/true", "relative/hook", "/nix/store/../../usr/bin/true", "/nix/store/./x"] {
            let hook = Hook { path: path.into(), args: vec![], env: vec![], timeout: None };
            assert!(validate_hook(&hook).is_err(), "{path}");
        }
    }

    #[test]
    fn refuses_phases_runsc_skips() {
        let hook = Hook { path: "/nix/store/x".into(), args: vec![], env: vec![], timeout: None };
        let hooks = Hooks { start_container: vec![hook], ..Hooks::default() };
        assert!(validate(&hooks).unwrap_err().to_string().contains("startContainer"));
    }
}
