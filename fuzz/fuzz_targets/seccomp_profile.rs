//! `--seccomp-profile FILE [--seccomp-profile-sha256 HEX]`: the file is the
//! fuzz input. A profile is accepted the same with or without its correct
//! pin, never with a wrong one, and what is accepted has a known default
//! action.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nucleus::policy;
use sha2::{Digest, Sha256};

const ACTIONS: &[&str] = &[
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
];

fuzz_target!(|data: &[u8]| {
    let temp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(temp.path(), data).unwrap();
    let file = temp.path();
    let plain = policy::load_seccomp_profile(file, None);
    let pin: String = Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect();
    let pinned = policy::load_seccomp_profile(file, Some(&pin));
    let shouted = policy::load_seccomp_profile(file, Some(&pin.to_uppercase()));
    assert_eq!(plain.as_ref().ok(), pinned.as_ref().ok());
    assert_eq!(plain.as_ref().ok(), shouted.as_ref().ok());
    let mut wrong = pin.clone().into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    assert!(policy::load_seccomp_profile(file, Some(std::str::from_utf8(&wrong).unwrap())).is_err());
    // The input's own text as a pin: anything at all, no panic.
    if let Ok(text) = std::str::from_utf8(&data[..data.len().min(80)]) {
        if policy::load_seccomp_profile(file, Some(text)).is_ok() {
            assert!(text.eq_ignore_ascii_case(&pin));
        }
    }
    if let Ok(profile) = plain {
        assert_eq!(serde_json::from_slice::<serde_json::Value>(data).unwrap(), profile);
        let action = profile["defaultAction"].as_str().unwrap();
        assert!(ACTIONS.contains(&action));
        for rule in profile.get("syscalls").and_then(|s| s.as_array()).into_iter().flatten() {
            assert!(ACTIONS.contains(&rule["action"].as_str().unwrap()));
            assert!(!rule["names"].as_array().unwrap().is_empty());
        }
    }
});
