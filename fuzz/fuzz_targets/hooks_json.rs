//! `--hooks FILE`: the JSON shape, then the store-only validation. An
//! accepted object survives a round trip, and validation never accepts a
//! hook outside /nix/store.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nucleus::hooks;

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = hooks::parse(data) else { return };
    let again = serde_json::to_vec(&parsed).unwrap();
    assert_eq!(hooks::parse(&again).unwrap(), parsed, "round trip of {}", String::from_utf8_lossy(data));
    if hooks::validate(&parsed).is_ok() {
        for (phase, list) in parsed.phases() {
            assert!(phase != "createContainer" && phase != "startContainer" || list.is_empty());
            for hook in list {
                let real = std::fs::canonicalize(&hook.path).unwrap();
                assert!(real.starts_with("/nix/store/"), "{} accepted", hook.path);
                assert!(hook.timeout != Some(0));
            }
        }
    }
});
