//! The bundle digest: sha256 over a canonical document made of the config
//! (sorted keys, no whitespace) and the closure's (store path, narHash)
//! pairs.
//!
//! Host paths that only exist for one run are normalised out rather than
//! kept out of config.json: runsc needs real sources, so config.json names
//! the bundle's own store view and secret staging files, and the digest
//! replaces the bundle directory with `$BUNDLE`. The store mounts are
//! replaced by the closure itself, so a bundle with one bind per store path
//! and one with a prepared view of the same closure share a digest.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::nix::Closure;
use crate::oci::build::STORE_DIR;
use crate::policy::hex;

pub const BUNDLE_PLACEHOLDER: &str = "$BUNDLE";

/// `sha256:<64 hex>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Digest(String);

impl Digest {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One closure entry as the digest sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosureEntry {
    pub path: String,
    #[serde(rename = "narHash")]
    pub nar_hash: String,
}

impl ClosureEntry {
    pub fn from_closure(closure: &Closure) -> Vec<ClosureEntry> {
        closure
            .paths
            .iter()
            .map(|p| ClosureEntry { path: p.path.to_string(), nar_hash: p.nar_hash.to_string() })
            .collect()
    }
}

/// Computes the digest of `config` (as written to config.json) for a bundle
/// created at `bundle_dir`. `closure` is `None` in host mode.
pub fn compute(config: &Value, bundle_dir: &Path, closure: Option<&[ClosureEntry]>) -> Digest {
    let mut hasher = Sha256::new();
    hasher.update(canonical_document(config, bundle_dir, closure).as_bytes());
    Digest(format!("sha256:{}", hex(&hasher.finalize())))
}

/// The exact text that is hashed; exposed so tests and users can see why two
/// digests differ.
pub fn canonical_document(config: &Value, bundle_dir: &Path, closure: Option<&[ClosureEntry]>) -> String {
    let mut config = config.clone();
    // Where the cgroup sits on the host is unique per run and invisible to
    // the workload, whose limits are in linux.resources.
    if let Some(linux) = config.get_mut("linux").and_then(Value::as_object_mut) {
        linux.remove("cgroupsPath");
    }
    let bundle_prefix = format!("{}/", bundle_dir.display());
    if let Some(mounts) = config.get_mut("mounts").and_then(Value::as_array_mut) {
        if closure.is_some() {
            mounts.retain(|m| !is_store_mount(m));
        }
        for mount in mounts.iter_mut() {
            if let Some(Value::String(source)) = mount.get_mut("source") {
                if let Some(rest) = source.strip_prefix(&bundle_prefix) {
                    *source = format!("{BUNDLE_PLACEHOLDER}/{rest}");
                }
            }
        }
    }
    let pairs: Option<Vec<[&str; 2]>> =
        closure.map(|entries| entries.iter().map(|e| [e.path.as_str(), e.nar_hash.as_str()]).collect());
    // serde_json's map is a BTreeMap (the `preserve_order` feature is off),
    // so every object serialises with its keys sorted.
    serde_json::json!({ "closure": pairs, "config": config }).to_string()
}

fn is_store_mount(mount: &Value) -> bool {
    mount
        .get("destination")
        .and_then(Value::as_str)
        .is_some_and(|d| d == STORE_DIR || d.starts_with(&format!("{STORE_DIR}/")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entries() -> Vec<ClosureEntry> {
        vec![ClosureEntry { path: "/nix/store/a-x".into(), nar_hash: "sha256-AAAA".into() }]
    }

    #[test]
    fn keys_are_sorted_and_the_bundle_location_is_normalised() {
        let a = json!({"z": 1, "a": 2, "mounts": [{"destination": "/run/secrets/t", "source": "/x/b1/secrets/0"}]});
        let b =
            json!({"a": 2, "mounts": [{"source": "/elsewhere/b2/secrets/0", "destination": "/run/secrets/t"}], "z": 1});
        let e = entries();
        assert_eq!(compute(&a, Path::new("/x/b1"), Some(&e)), compute(&b, Path::new("/elsewhere/b2"), Some(&e)));
        assert!(canonical_document(&a, Path::new("/x/b1"), Some(&e)).contains("$BUNDLE/secrets/0"));
    }

    #[test]
    fn store_mounts_are_replaced_by_the_closure() {
        let per_path = json!({"mounts": [{"destination": "/nix/store/a-x", "source": "/nix/store/a-x"}]});
        let view = json!({"mounts": [{"destination": "/nix/store", "source": "/b/store-view"}]});
        let e = entries();
        assert_eq!(compute(&per_path, Path::new("/b"), Some(&e)), compute(&view, Path::new("/b"), Some(&e)));
        let other = vec![ClosureEntry { path: "/nix/store/a-x".into(), nar_hash: "sha256-BBBB".into() }];
        assert_ne!(compute(&view, Path::new("/b"), Some(&e)), compute(&view, Path::new("/b"), Some(&other)));
    }

    #[test]
    fn the_cgroup_placement_is_not_part_of_the_digest() {
        let a = json!({"linux": {"cgroupsPath": "/nucleus-1", "resources": {"pids": {"limit": 64}}}});
        let b = json!({"linux": {"cgroupsPath": "/nucleus-2", "resources": {"pids": {"limit": 64}}}});
        assert_eq!(compute(&a, Path::new("/b"), None), compute(&b, Path::new("/b"), None));
    }

    #[test]
    fn host_mode_keeps_the_store_mount() {
        let host = json!({"mounts": [{"destination": "/nix/store", "source": "/nix/store"}]});
        assert!(canonical_document(&host, Path::new("/b"), None).contains("/nix/store"));
        assert!(compute(&host, Path::new("/b"), None).as_str().starts_with("sha256:"));
        assert_eq!(compute(&host, Path::new("/b"), None).as_str().len(), 71);
    }
}
