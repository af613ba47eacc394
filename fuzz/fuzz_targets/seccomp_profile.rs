//! `--seccomp-profile FILE [--seccomp-profile-sha256 HEX]`: the file's bytes
//! are the fuzz input.
//!
//! The pin: the right one (either case) is accepted, a wrong one never, and
//! the input's own first bytes as a pin only when they are the right one.
//!
//! The profile: what `parse_profile` accepts is JSON whose every key, at
//! every level, is one the runtime spec knows and this runsc applies (no
//! flags, no listener, errno 1 only), whose actions are among the five this
//! runsc knows, whose rules name at least one system call, and which fits
//! the BPF limit; the typed profile says what the JSON says, and survives a
//! round trip. With the setuid guard in front, the guard's rules come
//! first and the user's follow unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nucleus::policy::seccomp;
use serde_json::Value;
use sha2::{Digest, Sha256};

const ACTIONS: &[&str] = &["SCMP_ACT_KILL", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW"];
const OPERATORS: &[&str] =
    &["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"];

fuzz_target!(|data: &[u8]| {
    let file = std::path::Path::new("profile.json");
    let pin: String = Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect();
    assert!(seccomp::check_pin(data, &pin, file).is_ok());
    assert!(seccomp::check_pin(data, &pin.to_uppercase(), file).is_ok());
    let mut wrong = pin.clone().into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    assert!(seccomp::check_pin(data, std::str::from_utf8(&wrong).unwrap(), file).is_err());
    // The input's own text as a pin: anything at all, no panic.
    if let Ok(text) = std::str::from_utf8(&data[..data.len().min(80)]) {
        if seccomp::check_pin(data, text, file).is_ok() {
            assert!(text.eq_ignore_ascii_case(&pin));
        }
    }

    let Ok(profile) = seccomp::parse_profile(data, file) else { return };
    let json: Value = serde_json::from_slice(data).unwrap();
    check_json(&json);
    assert!(seccomp::check_fits(&profile).is_ok());
    assert!(seccomp::estimate_instructions(&profile) <= seccomp::RUNSC_BPF_LIMIT);

    let typed = serde_json::to_value(&profile).unwrap();
    assert_eq!(typed["defaultAction"], json["defaultAction"]);
    let rules = json["syscalls"].as_array().cloned().unwrap_or_default();
    let typed_rules = profile.syscalls().clone().unwrap_or_default();
    assert_eq!(typed_rules.len(), rules.len());
    for (rule, typed_rule) in rules.iter().zip(&typed_rules) {
        assert_eq!(&Value::from(typed_rule.names().clone()), &rule["names"]);
        assert_eq!(serde_json::to_value(typed_rule.action()).unwrap(), rule["action"]);
        let args = rule["args"].as_array().cloned().unwrap_or_default();
        assert_eq!(typed_rule.args().as_ref().map_or(0, Vec::len), args.len());
    }
    let again = seccomp::parse_profile(&serde_json::to_vec(&profile).unwrap(), file).unwrap();
    assert_eq!(again, profile);

    let guarded = seccomp::effective_profile(Some(&profile), true).unwrap();
    let guard = seccomp::setid_guard();
    let all = guarded.syscalls().clone().unwrap();
    assert_eq!(all[..guard.len()], guard[..]);
    assert_eq!(all[guard.len()..], typed_rules[..]);
    assert_eq!(guarded.default_action(), profile.default_action());
    assert_eq!(seccomp::effective_profile(Some(&profile), false).as_ref(), Some(&profile));
});

/// The JSON shape, key by key, written from the rules in the module's doc.
fn check_json(json: &Value) {
    let top = json.as_object().unwrap();
    for key in top.keys() {
        assert!(
            ["defaultAction", "defaultErrnoRet", "architectures", "flags", "syscalls"].contains(&key.as_str()),
            "{key}"
        );
    }
    assert!(ACTIONS.contains(&top["defaultAction"].as_str().unwrap()));
    errno(top.get("defaultErrnoRet"));
    if let Some(flags) = top.get("flags") {
        assert!(flags.is_null() || flags.as_array().is_some_and(Vec::is_empty), "flags {flags}");
    }
    for rule in top.get("syscalls").and_then(Value::as_array).into_iter().flatten() {
        let rule = rule.as_object().unwrap();
        for key in rule.keys() {
            assert!(["names", "action", "errnoRet", "args"].contains(&key.as_str()), "{key}");
        }
        let names = rule["names"].as_array().unwrap();
        assert!(!names.is_empty());
        assert!(names.iter().all(|n| n.as_str().is_some_and(|n| !n.is_empty() || cfg!(not(target_arch = "x86_64")))));
        assert!(ACTIONS.contains(&rule["action"].as_str().unwrap()));
        errno(rule.get("errnoRet"));
        for arg in rule.get("args").and_then(Value::as_array).into_iter().flatten() {
            let arg = arg.as_object().unwrap();
            for key in arg.keys() {
                assert!(["index", "value", "valueTwo", "op"].contains(&key.as_str()), "{key}");
            }
            assert!(arg["index"].as_u64().unwrap() < 6);
            assert!(arg["value"].as_u64().is_some());
            assert!(arg.get("valueTwo").is_none_or(|v| v.as_u64().is_some()));
            assert!(OPERATORS.contains(&arg["op"].as_str().unwrap()));
        }
    }
}

/// This runsc always returns EPERM.
fn errno(value: Option<&Value>) {
    assert!(value.is_none_or(|v| v.is_null() || v.as_u64() == Some(1)), "errnoRet {value:?}");
}
