//! The flake on the Nix installed here (the Nix 2.8 the docs name as the
//! least), with no network and no nixpkgs: `nix flake check --no-build` of a
//! copy of the repository, its nixpkgs input replaced by a stand-in flake
//! (tests/nix/stand-in/nixpkgs-flake.nix: the stand-in lib, NixOS and
//! package set). That evaluates every output for both systems with Nix's own
//! checks of the flake schema (Nix 2.8 refuses a NixOS module given as a
//! path, for instance), and the flake's checks: the library tests and the
//! module evaluated with `nixosSystem`.

use std::fs;
use std::path::Path;

mod common;
#[path = "common/nix_support.rs"]
mod nix_support;

use nix_support::{busybox, nix_command, output, stderr, tempdir, ROOT};

/// The files the flake reads, copied as they are.
const FLAKE_SOURCES: &[&str] = &["flake.nix", "flake.lock", "Cargo.toml", "Cargo.lock", "nix", "src", "tests"];

fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from).follow_links(false) {
        let entry = entry.unwrap();
        let relative = entry.path().strip_prefix(from).unwrap();
        let target = if relative.as_os_str().is_empty() { to.to_path_buf() } else { to.join(relative) };
        if entry.file_type().is_dir() {
            fs::create_dir_all(&target).unwrap();
        } else if entry.file_type().is_file() {
            fs::create_dir_all(target.parent().unwrap()).unwrap();
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn nix_flake_check_accepts_the_flake_with_a_stand_in_nixpkgs() {
    let work = tempdir();
    let flake = work.path().join("nucleus");
    for source in FLAKE_SOURCES {
        copy_tree(&Path::new(ROOT).join(source), &flake.join(source));
    }
    let nixpkgs = work.path().join("nixpkgs");
    fs::create_dir(&nixpkgs).unwrap();
    fs::write(
        nixpkgs.join("flake.nix"),
        format!(
            "{{ outputs = {{ self }}: import {ROOT}/tests/nix/stand-in/nixpkgs-flake.nix {{ busyboxFile = {}; }}; }}\n",
            busybox()
        ),
    )
    .unwrap();

    let out = output(
        nix_command("nix", work.path())
            .env("NIX_CONFIG", format!("{}\nexperimental-features = nix-command flakes", common::NIX_CONFIG))
            .args(["flake", "check", "--no-build", "--no-write-lock-file", "--impure"])
            .arg("--override-input")
            .arg("nixpkgs")
            .arg(format!("path:{}", nixpkgs.display()))
            .arg(format!("path:{}", flake.display())),
    );
    let log = stderr(&out);
    assert!(out.status.success(), "nix flake check failed:\n{log}");
    assert!(!log.contains("error:"), "{log}");
}
