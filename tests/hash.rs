//! `nar_sha256` and `write_nar` against the real Nix: every tree built here
//! must hash exactly as `nix hash path` does and serialise exactly as
//! `nix-store --dump` does. Without Nix these tests fail rather than skip,
//! since passing them is the only evidence the hashes are right.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

mod common;

use common::{nix_bin, nix_hash};
use nucleus::nix::hash::{HashFormat, NarHash};
use nucleus::nix::nar::{nar_sha256, write_nar};

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed with {}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn nix_dump(path: &Path) -> Vec<u8> {
    run(Command::new(nix_bin("nix-store")).arg("--dump").arg(path))
}

/// Asserts that our hash and NAR of `path` agree with Nix in every format.
fn assert_matches_nix(path: &Path) {
    let ours = NarHash(nar_sha256(path).unwrap_or_else(|e| panic!("nar_sha256: {e}")));
    assert_eq!(ours.format(HashFormat::Sri), nix_hash(path, None), "SRI of {path:?}");
    assert_eq!(ours.format(HashFormat::Nix32), nix_hash(path, Some("--base32")), "nix32 of {path:?}");
    assert_eq!(ours.format(HashFormat::Base16), nix_hash(path, Some("--base16")), "hex of {path:?}");

    let mut nar = Vec::new();
    write_nar(path, &mut nar).unwrap_or_else(|e| panic!("write_nar: {e}"));
    let dumped = nix_dump(path);
    if nar != dumped {
        let at = nar.iter().zip(&dumped).position(|(a, b)| a != b).unwrap_or(nar.len().min(dumped.len()));
        panic!(
            "write_nar({path:?}) differs from nix-store --dump at byte {at} (ours {} bytes, nix {} bytes)",
            nar.len(),
            dumped.len()
        );
    }
}

fn write(path: &Path, data: &[u8], mode: u32) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Deterministic bytes that neither compress nor repeat at small periods.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn every_node_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    write(&root.join("regular"), b"some text\n", 0o644);
    write(&root.join("executable"), b"#!/bin/sh\necho hi\n", 0o755);
    write(&root.join("owner-exec-only"), b"x", 0o100);
    write(&root.join("group-exec-only"), b"x", 0o670);
    write(&root.join("unreadable-mode"), b"root reads it anyway", 0o000);
    write(&root.join("empty"), b"", 0o644);
    write(&root.join("empty-exec"), b"", 0o755);
    write(&root.join("eight"), b"12345678", 0o644);
    write(&root.join("nine"), b"123456789", 0o644);
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    write(&root.join("nested/deeper/still/file"), b"deep", 0o600);
    fs::create_dir_all(root.join("nested/deeper/empty")).unwrap();
    symlink("regular", root.join("link-relative")).unwrap();
    symlink("/etc/passwd", root.join("link-absolute")).unwrap();
    symlink("does/not/exist", root.join("link-dangling")).unwrap();
    symlink("nested", root.join("link-to-dir")).unwrap();
    symlink("../../outside", root.join("nested/link-up")).unwrap();
    symlink(OsStr::from_bytes(b"t\xffrget-\x80"), root.join("link-non-utf8")).unwrap();
    symlink("x".repeat(1000), root.join("link-long")).unwrap();
    assert_matches_nix(&root);
}

#[test]
fn entries_sort_by_raw_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let names: &[&[u8]] = &[
        b"a",
        b"a.b",
        b"a-b",
        b"a0",
        b"a~",
        b"aa",
        b"A",
        b"B",
        b"b",
        b"Z",
        b"_",
        b"-",
        b".hidden",
        b"10",
        b"9",
        b"\xc3\xa9",
        b"e\xcc\x81",
        b"\x80",
        b"\xff",
        b"\xfe\xff",
        b"z\xff",
        b" space",
        b"new\nline",
    ];
    for (i, name) in names.iter().enumerate() {
        write(&root.join(OsStr::from_bytes(name)), format!("{i}").as_bytes(), 0o644);
    }
    // Directories sort by their own name: `a` before `a-b` before `a.b`,
    // though `a/b` as a path would sort after both.
    fs::remove_file(root.join("a")).unwrap();
    write(&root.join("a/b"), b"nested", 0o644);
    write(&root.join("a/B"), b"nested", 0o755);
    fs::remove_file(root.join("a-b")).unwrap();
    write(&root.join("a-b/c"), b"nested", 0o644);
    assert_matches_nix(&root);
}

#[test]
fn root_is_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, data, mode) in [
        ("plain", &b"hello\n"[..], 0o644),
        ("exec", &b"#!/bin/sh\n"[..], 0o755),
        ("empty", &b""[..], 0o644),
        ("eight", &b"abcdefgh"[..], 0o644),
    ] {
        let p = tmp.path().join(name);
        write(&p, data, mode);
        assert_matches_nix(&p);
    }
}

#[test]
fn root_is_a_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("target-dir");
    write(&target.join("f"), b"not archived through the link", 0o644);
    for (name, to) in
        [("to-dir", target.as_os_str()), ("dangling", OsStr::new("nowhere")), ("absolute", OsStr::new("/nix/store"))]
    {
        let p = tmp.path().join(name);
        symlink(to, &p).unwrap();
        assert_matches_nix(&p);
    }
}

#[test]
fn root_is_an_empty_dir() {
    let tmp = tempfile::tempdir().unwrap();
    assert_matches_nix(tmp.path());
}

#[test]
fn large_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    // Spans many read buffers and ends off an 8-byte boundary.
    write(&root.join("big"), &pseudo_random(13 * 1024 * 1024 + 5, 1), 0o755);
    write(&root.join("small-after"), b"tail", 0o644);
    assert_matches_nix(&root);
    assert_matches_nix(&root.join("big"));
}

#[test]
fn thousands_of_small_files() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    for i in 0..3000usize {
        let path = root.join(format!("d{}/s{}/f{i}", i % 7, i % 13));
        let data = pseudo_random(i % 300, i as u64);
        write(&path, &data, if i % 5 == 0 { 0o755 } else { 0o644 });
        if i % 100 == 0 {
            symlink(format!("f{i}"), path.with_file_name(format!("l{i}"))).unwrap();
        }
    }
    assert_matches_nix(&root);
}

#[test]
fn nar_hash_parses_what_nix_prints() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("f");
    write(&p, b"parse me", 0o644);
    let ours = NarHash(nar_sha256(&p).unwrap());
    let nix32 = nix_hash(&p, Some("--base32"));
    for printed in [nix_hash(&p, None), format!("sha256:{nix32}"), nix32, nix_hash(&p, Some("--base16"))] {
        assert_eq!(NarHash::parse(&printed).unwrap(), ours, "{printed}");
    }
}
