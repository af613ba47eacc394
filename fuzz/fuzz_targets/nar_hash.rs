//! `NarHash::parse`: every notation Nix prints reads back to the same
//! value, and each accepted text is the canonical spelling of its value in
//! its notation (no two texts in one notation name one hash).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nucleus::nix::hash::{HashFormat, NarHash};

const FORMATS: [HashFormat; 3] = [HashFormat::Sri, HashFormat::Nix32, HashFormat::Base16];

fuzz_target!(|data: &[u8]| {
    // Any 32 bytes print and parse back in every format.
    if data.len() >= 32 {
        let h = NarHash(data[..32].try_into().unwrap());
        for f in FORMATS {
            let text = h.format(f);
            assert_eq!(NarHash::parse(&text).unwrap(), h, "{text}");
            if f != HashFormat::Sri {
                assert_eq!(NarHash::parse(&format!("sha256:{text}")).unwrap(), h, "{text}");
            }
        }
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(h) = NarHash::parse(text) else { return };
    let t = text.trim();
    let bare = t.strip_prefix("sha256:").unwrap_or(t);
    if let Some(b64) = t.strip_prefix("sha256-") {
        assert_eq!(h.format(HashFormat::Sri), format!("sha256-{b64}"), "{text:?}");
    } else if bare.len() == 64 {
        assert_eq!(h.format(HashFormat::Base16), bare.to_ascii_lowercase(), "{text:?}");
    } else if bare.len() == 52 {
        assert_eq!(h.format(HashFormat::Nix32), bare, "{text:?}");
    } else {
        assert_eq!(bare.len(), 44, "{text:?}");
        assert!(t.starts_with("sha256:"), "{text:?}");
        assert_eq!(h.format(HashFormat::Sri), format!("sha256-{bare}"), "{text:?}");
    }
    for f in FORMATS {
        assert_eq!(NarHash::parse(&h.format(f)).unwrap(), h);
    }
});
