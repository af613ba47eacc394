//! `StorePath::parse` against a reference written from Nix's rules, and
//! `StorePath::containing` on arbitrary (also non-UTF-8) paths.
#![no_main]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nucleus::nix::StorePath;

const NIX32: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";

fn reference(text: &str) -> bool {
    let Some(base) = text.strip_prefix("/nix/store/") else { return false };
    let b = base.as_bytes();
    if b.len() < 34 || b[32] != b'-' || !b[..32].iter().all(|c| NIX32.contains(c)) {
        return false;
    }
    let name = &b[33..];
    name.len() <= 211 && name[0] != b'.' && name.iter().all(|c| c.is_ascii_alphanumeric() || b"+-._?=".contains(c))
}

fuzz_target!(|data: &[u8]| {
    let path = Path::new(OsStr::from_bytes(data));
    if let Some(p) = StorePath::containing(path) {
        assert!(StorePath::parse(p.as_str()).is_ok(), "{p}");
        assert!(path.starts_with(p.as_path()), "{path:?} is not in {p}");
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    let parsed = StorePath::parse(text);
    assert_eq!(parsed.is_ok(), reference(text), "{text:?}");
    if let Ok(p) = parsed {
        assert_eq!(p.as_str(), text);
        assert_eq!(p.base_name(), &text["/nix/store/".len()..]);
        assert_eq!(StorePath::containing(Path::new(text)).as_ref(), Some(&p));
        assert_eq!(StorePath::containing(&p.join("bin/x")).as_ref(), Some(&p));
    }
});
