//! Checks store paths against their recorded NAR hashes with
//! `nucleus::nix::nar::nar_sha256_all_sized`, the way `nucleus verify --deep`
//! does, for `benches/verify.sh`. Not part of the CLI.
//!
//! Reads one path a line from stdin as `PATH NARHASH [NARSIZE]` (NARHASH in
//! any form Nix prints), prints each mismatch or error, then a count, and
//! exits 1 if any path failed.
//!
//!   cargo run --release --example verify_nar_hashes < list

use std::io::{self, BufRead};
use std::path::PathBuf;
use std::process::ExitCode;

use nucleus::nix::hash::NarHash;
use nucleus::nix::nar::nar_sha256_all_sized;

fn main() -> ExitCode {
    let mut paths = Vec::new();
    let mut want = Vec::new();
    let mut sizes = Vec::new();
    for (n, line) in io::stdin().lock().lines().enumerate() {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                eprintln!("cannot read stdin: {e}");
                return ExitCode::from(2);
            }
        };
        let mut fields = line.split_whitespace();
        let (Some(path), Some(hash)) = (fields.next(), fields.next()) else {
            eprintln!("line {}: want `PATH NARHASH [NARSIZE]`, got '{line}'", n + 1);
            return ExitCode::from(2);
        };
        let hash = match NarHash::parse(hash) {
            Ok(hash) => hash,
            Err(e) => {
                eprintln!("line {}: {e}", n + 1);
                return ExitCode::from(2);
            }
        };
        paths.push(PathBuf::from(path));
        want.push(hash);
        sizes.push(fields.next().and_then(|s| s.parse().ok()).unwrap_or(0));
    }

    let mut failed = 0;
    for ((path, want), got) in paths.iter().zip(&want).zip(nar_sha256_all_sized(&paths, &sizes)) {
        match got {
            Ok(got) if NarHash(got) == *want => {}
            Ok(got) => {
                failed += 1;
                println!("{}: contents hash to {}, recorded {want}", path.display(), NarHash(got));
            }
            Err(e) => {
                failed += 1;
                println!("{}: {e}", path.display());
            }
        }
    }
    println!("{} of {} paths match their recorded hash", paths.len() - failed, paths.len());
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
