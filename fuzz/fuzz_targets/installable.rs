//! INSTALLABLE classification (`Installable::parse`; `realise` would run
//! Nix and is not fuzzed): never panics, keeps the text as given, refuses
//! NUL and newline.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nucleus::nix::installable::Installable;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Installable::parse(text) {
        Ok(Installable::Path(t)) | Ok(Installable::NixBuild(t)) => {
            assert_eq!(t, text);
            assert!(!text.is_empty() && !text.contains('\0') && !text.contains('\n'));
        }
        Ok(Installable::NixFile(t)) => {
            assert_eq!(t, text);
            assert!(text.ends_with(".nix") && std::path::Path::new(text).is_file());
        }
        Err(_) => {}
    }
});
