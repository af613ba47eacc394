//! `--hooks FILE`: `policy::hooks::parse` against a reference written from
//! its documentation (phases runsc runs, no unknown key at any level, env
//! entries `KEY=VALUE`, timeouts of at least a second, every program an
//! absolute path inside /nix/store without `.` or `..` and without NUL),
//! then the cheap half of the host's store rule: where
//! `host::store::resolve_in_store` resolves an accepted program, the result
//! is the canonical path of what was named, inside a store path that
//! contains it (`host::hooks::verify` also asks Nix whether that store path
//! is registered, which is not fuzzed).
//!
//! `@` followed by any character stands for one of a few store paths found
//! on this machine when the target starts (ones with symlinks inside the
//! store and out of it, left by the test suite, when present), so that the
//! fuzzer reaches real store paths without guessing their hashes.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nucleus::host::store::resolve_in_store;
use nucleus::nix::StorePath;
use nucleus::policy::hooks::{self, HookPhase, HookSpec};
use serde_json::Value;

const SUFFIXES: &[&str] =
    &["-busybox", "-hello", "-escape", "-nucleus-escape-etc-up", "-nucleus-link-up", "-nucleus-hook-up"];

/// The store paths `@x` stands for.
fn store_paths() -> &'static [String] {
    static PATHS: OnceLock<Vec<String>> = OnceLock::new();
    PATHS.get_or_init(|| {
        let mut names: Vec<String> = std::fs::read_dir("/nix/store")
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        let mut chosen: Vec<String> = SUFFIXES
            .iter()
            .filter_map(|s| names.iter().find(|n| n.ends_with(s)))
            .map(|n| format!("/nix/store/{n}"))
            .collect();
        if chosen.is_empty() {
            chosen.push("/nix/store/g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-busybox".into());
        }
        chosen
    })
}

fn substitute(data: &[u8]) -> Vec<u8> {
    let paths = store_paths();
    let mut out = Vec::with_capacity(data.len());
    let mut bytes = data.iter();
    while let Some(&b) = bytes.next() {
        if b == b'@' {
            let pick = bytes.next().map_or(0, |c| usize::from(*c));
            out.extend_from_slice(paths[pick % paths.len()].as_bytes());
        } else {
            out.push(b);
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let json = substitute(data);
    let parsed = hooks::parse(&json, Path::new("hooks.json"));
    let expected = reference(&json);
    assert_eq!(parsed.as_ref().ok(), expected.as_ref(), "{}", String::from_utf8_lossy(&json));
    for hook in parsed.iter().flatten() {
        let Ok(resolved) = resolve_in_store(Path::new(&hook.path), &|_| true) else { continue };
        let canonical = std::fs::canonicalize(&hook.path).unwrap();
        assert_eq!(resolved.path, canonical, "{}", hook.path);
        assert!(resolved.path.starts_with("/nix/store/"));
        assert_eq!(StorePath::containing(&resolved.path).as_ref(), Some(&resolved.owner));
        let fd = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&resolved.fd));
        assert_eq!(std::fs::read_link(fd).unwrap(), PathBuf::from(&canonical));
    }
});

/// The documented grammar, written out.
fn reference(json: &[u8]) -> Option<Vec<HookSpec>> {
    let value: Value = serde_json::from_slice(json).ok()?;
    let mut out = Vec::new();
    for (name, list) in value.as_object()? {
        let phase = match name.as_str() {
            "prestart" => HookPhase::Prestart,
            "createRuntime" => HookPhase::CreateRuntime,
            "poststart" => HookPhase::Poststart,
            "poststop" => HookPhase::Poststop,
            _ => return None,
        };
        assert_eq!(phase.name(), name);
        for hook in list.as_array()? {
            let fields = hook.as_object()?;
            if fields.keys().any(|k| !["path", "args", "env", "timeout"].contains(&k.as_str())) {
                return None;
            }
            let path = fields.get("path")?.as_str()?;
            let in_store = path.strip_prefix("/nix/store/")?;
            if in_store.split('/').any(|c| c == "." || c == "..") || path.contains('\0') {
                return None;
            }
            let strings = |key: &str| -> Option<Vec<String>> {
                match fields.get(key) {
                    None | Some(Value::Null) => Some(Vec::new()),
                    Some(v) => v.as_array()?.iter().map(|s| s.as_str().map(String::from)).collect(),
                }
            };
            let args = strings("args")?;
            let env = strings("env")?;
            if env.iter().any(|e| e.contains('\0') || e.split('=').next().unwrap().is_empty() || !e.contains('=')) {
                return None;
            }
            let timeout = match fields.get("timeout") {
                None | Some(Value::Null) => None,
                Some(t) => Some(u32::try_from(t.as_u64()?).ok().filter(|t| *t >= 1)?),
            };
            out.push(HookSpec { phase, path: path.to_string(), args, env, timeout });
        }
    }
    Some(out)
}
