//! `--volume`, `--tmpfs`, `--secret` and `--context`: whatever the text, an
//! accepted mount has a canonical host source outside the host's sensitive
//! trees (a narrower list for secrets, which may come from /etc and /run)
//! and a normalised destination outside the trees nucleus owns.
//!
//! `@` in the input stands for a fixture directory holding a file, a
//! directory, symlinks into /etc, /proc and / and a dangling one, so that
//! the fuzzer reaches real paths without guessing a temporary name.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nucleus::policy;

const FORBIDDEN_SOURCES: &[&str] = &["/proc", "/sys", "/dev", "/boot", "/etc", "/root", "/run", "/var/run", "/nix"];
/// Secrets are single files that services keep under /etc or /run.
const FORBIDDEN_SECRET_SOURCES: &[&str] = &["/proc", "/sys", "/dev", "/nix"];
const FORBIDDEN_DESTINATIONS: &[&str] =
    &["/proc", "/sys", "/dev", "/nix", "/bin", "/sbin", "/lib", "/lib64", "/usr", "/etc", "/run/secrets"];

/// A fixed directory under the fuzz crate's target/ (created once, shared by
/// runs and reproductions, so that a saved input means the same thing).
fn fixture() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/fixture"));
        if !dir.join("dir/hostname").exists() {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("dir")).unwrap();
            std::fs::write(dir.join("file"), b"x").unwrap();
            std::os::unix::fs::symlink("/etc", dir.join("etc")).unwrap();
            std::os::unix::fs::symlink("/proc/self", dir.join("proc")).unwrap();
            std::os::unix::fs::symlink("/", dir.join("root")).unwrap();
            std::os::unix::fs::symlink("../..", dir.join("up")).unwrap();
            std::os::unix::fs::symlink("nowhere", dir.join("dangling")).unwrap();
            std::os::unix::fs::symlink("/etc/hostname", dir.join("dir/hostname")).unwrap();
        }
        dir.canonicalize().unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let text = text.replace('@', fixture().to_str().unwrap());

    if let Ok(v) = policy::parse_volume(&text) {
        check_source(&v.source, &text, FORBIDDEN_SOURCES);
        check_destination(&v.destination, &text);
        assert_eq!(v.writable, text.ends_with(":rw"), "{text:?}");
    }
    if let Ok(t) = policy::parse_tmpfs(&text) {
        check_destination(&t.destination, &text);
        assert!(t.size_bytes.map_or(true, |s| s > 0), "{text:?}");
        assert_eq!(t.size_bytes.is_some(), text.contains(':'), "{text:?}");
    }
    if let Ok(s) = policy::parse_secret(&text) {
        check_source(&s.source, &text, FORBIDDEN_SECRET_SOURCES);
        assert!(s.source.is_file(), "{text:?}");
        assert!(is_normalised(&s.destination), "{text:?} -> {}", s.destination);
        let rest = s.destination.strip_prefix("/run/secrets/").unwrap_or_else(|| panic!("{text:?} -> {}", s.destination));
        assert!(!rest.is_empty(), "{text:?}");
    }
    if let Ok(dir) = policy::parse_context(&text) {
        check_source(&dir, &text, FORBIDDEN_SOURCES);
        assert!(dir.is_dir());
    }
});

fn check_source(source: &Path, text: &str, forbidden: &[&str]) {
    assert!(source.is_absolute(), "{text:?} -> {}", source.display());
    assert_ne!(source, Path::new("/"), "{text:?}");
    assert_eq!(std::fs::canonicalize(source).ok().as_deref(), Some(source), "{text:?}: source not canonical");
    for prefix in forbidden {
        assert!(!source.starts_with(prefix), "{text:?} -> {} is under {prefix}", source.display());
    }
}

fn check_destination(dst: &str, text: &str) {
    assert!(is_normalised(dst), "{text:?} -> {dst}");
    assert_ne!(dst, "/", "{text:?}");
    for prefix in FORBIDDEN_DESTINATIONS {
        assert!(!Path::new(dst).starts_with(prefix), "{text:?} -> {dst} is under {prefix}");
    }
}

/// `/a/b`: absolute, no empty, `.` or `..` component, no NUL, no trailing slash.
fn is_normalised(path: &str) -> bool {
    path == "/"
        || (path.starts_with('/')
            && !path.contains('\0')
            && path[1..].split('/').all(|c| !c.is_empty() && c != "." && c != ".."))
}
