//! Hooks run on the host with nucleus's privileges. Each program must be a
//! regular, executable file inside a registered store path, reached without
//! leaving the store; runsc then gets that verified, canonical path, not the
//! one the user wrote, so a symlink flipped afterwards changes nothing (the
//! store itself is immutable).

use nix::sys::stat::{fstat, SFlag};
use oci_spec::runtime::{Hook, Hooks};

use super::store::resolve_in_store;
use crate::nix::command::is_valid_path;
use crate::policy::hooks::{HookPhase, HookSpec};
use crate::{Error, Result};

/// Verifies every hook and returns them as the runtime spec's `hooks`.
pub fn verify(specs: &[HookSpec]) -> Result<Hooks> {
    let mut phases: [Vec<Hook>; 4] = Default::default();
    for spec in specs {
        let hook = verify_one(spec)?;
        let slot = match spec.phase {
            HookPhase::Prestart => 0,
            HookPhase::CreateRuntime => 1,
            HookPhase::Poststart => 2,
            HookPhase::Poststop => 3,
        };
        phases[slot].push(hook);
    }
    let [prestart, create_runtime, poststart, poststop] = phases;
    let some = |hooks: Vec<Hook>| if hooks.is_empty() { None } else { Some(hooks) };
    let mut hooks = Hooks::default();
    #[allow(deprecated)]
    hooks.set_prestart(some(prestart));
    hooks.set_create_runtime(some(create_runtime));
    hooks.set_create_container(None);
    hooks.set_start_container(None);
    hooks.set_poststart(some(poststart));
    hooks.set_poststop(some(poststop));
    Ok(hooks)
}

fn verify_one(spec: &HookSpec) -> Result<Hook> {
    let refuse = |reason: String| Error::Hook { path: spec.path.clone(), reason };
    let resolved = resolve_in_store(std::path::Path::new(&spec.path), &|_| true).map_err(refuse)?;
    if !is_valid_path(resolved.owner.as_str())? {
        return Err(refuse(format!("{} is not a valid (registered) store path", resolved.owner)));
    }
    if resolved.kind != SFlag::S_IFREG {
        return Err(refuse(format!("{} is not a regular file", resolved.path.display())));
    }
    let mode = fstat(&resolved.fd).map_err(|e| refuse(format!("cannot examine it: {e}")))?.st_mode & 0o7777;
    if mode & 0o111 == 0 {
        return Err(refuse("it is not executable".into()));
    }
    if mode & 0o022 != 0 {
        return Err(refuse(format!("it is writable by group or others (mode {mode:o})")));
    }
    if mode & 0o6000 != 0 {
        return Err(refuse("it has the setuid or setgid bit".into()));
    }
    let mut hook = Hook::default();
    hook.set_path(resolved.path);
    hook.set_args(if spec.args.is_empty() { None } else { Some(spec.args.clone()) });
    hook.set_env(if spec.env.is_empty() { None } else { Some(spec.env.clone()) });
    hook.set_timeout(spec.timeout.map(i64::from));
    Ok(hook)
}
