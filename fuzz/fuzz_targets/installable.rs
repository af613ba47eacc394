//! INSTALLABLE classification (`Installable::classify`; `resolve` would run
//! Nix and is not fuzzed) against a reference written from its rules: never
//! panics, keeps the text (and `-A`, `--arg`, `--argstr`) as given, refuses
//! an empty text, NUL and newline; a `#`, or a `:` in what does not look
//! like a path, makes a flake reference; `.nix` is a file for nix-build only
//! when that file exists; what looks like a path or exists is a path;
//! anything else goes to `nix build`. `-A` and the arguments apply to a
//! `.nix` file only.
//!
//! Relative paths are relative to the fuzz crate's directory, where
//! `Cargo.toml`, `fuzz_targets/` and `../flake.nix` exist.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nucleus::nix::installable::Installable;
use nucleus::request::{InstallableRequest, NixArg};

fuzz_target!(|data: &[u8]| {
    // The text, then (after a 0xFF byte, which UTF-8 never holds) the `-A`
    // value, then NAME, VALUE pairs: `--arg` first, `--argstr` next, and so on.
    let mut parts = data.split(|b| *b == 0xff).map(|p| String::from_utf8_lossy(p).into_owned());
    let text = parts.next().unwrap();
    let attr = parts.next();
    let rest: Vec<String> = parts.collect();
    let nix_args = rest
        .chunks_exact(2)
        .enumerate()
        .map(|(i, pair)| {
            let (name, value) = (pair[0].clone(), pair[1].clone());
            if i % 2 == 0 {
                NixArg::Expr { name, expr: value }
            } else {
                NixArg::Str { name, value }
            }
        })
        .collect();
    let req = InstallableRequest { text, attr, nix_args };
    let got = Installable::classify(&req);
    assert_eq!(got.as_ref().ok(), reference(&req).as_ref(), "{req:?}");
    if let Err(e) = got {
        assert!(matches!(e, nucleus::Error::Installable { .. }), "{e:?}");
    }
});

fn reference(req: &InstallableRequest) -> Option<Installable> {
    let text = req.text.as_str();
    if text.is_empty() || text.contains('\0') || text.contains('\n') {
        return None;
    }
    let looks_like_path =
        text.starts_with('/') || text.starts_with("./") || text.starts_with("../") || text == "." || text == "..";
    let path = std::path::Path::new(text);
    let kind = if text.contains('#') || (text.contains(':') && !looks_like_path) {
        Installable::Flake(text.into())
    } else if text.ends_with(".nix") {
        // A directory or a dangling name ending in .nix is refused.
        if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
            return None;
        }
        return Some(Installable::NixFile { file: text.into(), attr: req.attr.clone(), args: req.nix_args.clone() });
    } else if looks_like_path || std::fs::symlink_metadata(path).is_ok() {
        Installable::Path(text.into())
    } else {
        Installable::Flake(text.into())
    };
    (req.attr.is_none() && req.nix_args.is_empty()).then_some(kind)
}
