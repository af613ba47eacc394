//! `nucleus verify`: does a bundle still say what its record says, and do
//! its store paths still hold the bytes Nix registered?

use std::process::Command;

use super::Bundle;
use crate::nix::closure::Closure;
use crate::nix::command::{nix, stdout_of};
use crate::nix::hash::NarHash;
use crate::nix::nar::nar_sha256;
use crate::nix::StorePath;
use crate::Result;

/// Every difference found, in words; empty when the bundle checks out.
pub fn verify(bundle: &Bundle, deep: bool) -> Result<Vec<String>> {
    let mut differences = Vec::new();
    let recomputed = bundle.recompute_digest();
    if recomputed != bundle.record.digest {
        differences.push(format!(
            "config.json or the closure record changed: digest is {recomputed}, recorded {}",
            bundle.record.digest
        ));
    }
    let Some(entries) = &bundle.record.closure else { return Ok(differences) };
    let recorded: Vec<(StorePath, Option<NarHash>)> = entries
        .iter()
        .map(|e| Ok((StorePath::parse(&e.path)?, NarHash::parse(&e.nar_hash).ok())))
        .collect::<Result<_>>()?;
    let registered = registered_hashes(recorded.iter().map(|(p, _)| p))?;
    for (path, recorded_hash) in &recorded {
        let Some(recorded_hash) = recorded_hash else {
            differences.push(format!("{path}: the recorded narHash is unreadable"));
            continue;
        };
        match registered.iter().find(|(p, _)| p == path) {
            None => differences.push(format!("{path}: not valid in the Nix store")),
            Some((_, nix_hash)) if nix_hash != recorded_hash => {
                differences.push(format!("{path}: Nix records {nix_hash}, the bundle {recorded_hash}"))
            }
            Some(_) => {}
        }
        if deep {
            match nar_sha256(path.as_path()) {
                Ok(bytes) if NarHash(bytes) == *recorded_hash => {}
                Ok(bytes) => {
                    differences.push(format!("{path}: contents hash to {}, recorded {recorded_hash}", NarHash(bytes)))
                }
                Err(e) => differences.push(format!("{path}: {e}")),
            }
        }
    }
    Ok(differences)
}

/// Nix's registered narHash for each path that is still valid, in one call.
fn registered_hashes<'a>(paths: impl Iterator<Item = &'a StorePath>) -> Result<Vec<(StorePath, NarHash)>> {
    let valid: Vec<&StorePath> = paths.filter(|p| p.as_path().exists()).collect();
    if valid.is_empty() {
        return Ok(Vec::new());
    }
    let mut cmd: Command = nix();
    cmd.args(["path-info", "--offline", "--json"]).args(valid.iter().map(|p| p.as_str()));
    // An invalid path makes path-info fail as a whole; fall back to one
    // query per path so the others are still checked.
    let json = match stdout_of(cmd) {
        Ok(json) => json,
        Err(_) if valid.len() > 1 => {
            let mut all = Vec::new();
            for path in valid {
                all.extend(registered_hashes(std::iter::once(path)).unwrap_or_default());
            }
            return Ok(all);
        }
        Err(e) => return Err(e),
    };
    let root = (*valid[0]).clone();
    let closure = Closure::from_path_info_json(root, &json)?;
    Ok(closure.paths.into_iter().map(|p| (p.path, p.nar_hash)).collect())
}
