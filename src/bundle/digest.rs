//! The bundle digest: `sha256:<hex>` over a canonical document made of the
//! config and the closure's (store path, narHash) pairs.
//!
//! The document (format 2) is canonical JSON ([`super::canonical`]):
//!
//! ```text
//! {"closure":[[PATH,NARHASH],…] or null,"config":CONFIG,"network":MODE,"nucleusDigest":2}
//! ```
//!
//! MODE is runsc's `--network` (`none`, `sandbox` or `host`), which the
//! workload can observe but config.json does not hold.
//!
//! CONFIG is config.json with what only places a bundle on one machine
//! normalised away, and nothing else:
//! - `linux.cgroupsPath` and the container-name annotation (unique per
//!   run, invisible to the workload) are left out;
//! - a network namespace path of `/proc/self/ns/net` (the namespace nucleus
//!   prepared for `run`) is left out, so `run` and `bundle` agree;
//! - a mount source inside the bundle is written as the host path it stages
//!   (for `run`'s volumes, from the record) or as `$BUNDLE/<rest>`;
//! - the store mounts, when they show exactly the recorded closure (one
//!   bind of the bundle's store view, or one bind per store path of the
//!   closure onto itself, with nucleus's options), become one entry
//!   `{"destination":"/nix/store","source":"$CLOSURE","type":"closure"}`,
//!   and the closure's narHashes stand for their contents. Any other store
//!   mount stays as it is, so pointing one elsewhere changes the digest.
//!
//! Every other field, every other mount (type, source, destination,
//! options) and their order are hashed as written.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::canonical::to_canonical_string;
use super::layout::{BundleLayout, STORE_VIEW_DIR};
use crate::nix::store_path::STORE_DIR;
use crate::nix::Closure;
use crate::oci::defaults;
use crate::policy::hex;

/// The version of the canonical document; it changes whenever the bytes
/// hashed for the same bundle would.
pub const DIGEST_FORMAT: u32 = 2;

pub const BUNDLE_PLACEHOLDER: &str = "$BUNDLE";
pub const CLOSURE_PLACEHOLDER: &str = "$CLOSURE";

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

/// What nucleus records beside config.json (`nucleus.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DigestRecord {
    pub digest_format: u32,
    pub nucleus_version: String,
    pub digest: Digest,
    /// Where the bundle was written; the digest normalises this prefix away.
    pub bundle_dir: PathBuf,
    /// The top-level store path; `None` in host mode.
    pub root: Option<String>,
    pub closure: Option<Vec<ClosureEntry>>,
    /// The network runsc gives the sandbox (its `--network`).
    pub network: String,
    /// For a bundle `nucleus run` prepared: which host path each staged
    /// source (relative to the bundle) stands for.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub staged_sources: BTreeMap<String, PathBuf>,
}

impl DigestRecord {
    /// The record for `config` written at `bundle_dir`.
    pub fn new(
        config: &Value,
        bundle_dir: &Path,
        closure: Option<&Closure>,
        network: &str,
        staged_sources: BTreeMap<String, PathBuf>,
    ) -> Result<Self, String> {
        let mut record = DigestRecord {
            digest_format: DIGEST_FORMAT,
            nucleus_version: env!("CARGO_PKG_VERSION").to_string(),
            digest: Digest(String::new()),
            bundle_dir: bundle_dir.to_path_buf(),
            root: closure.map(|c| c.root.to_string()),
            closure: closure.map(ClosureEntry::from_closure),
            network: network.to_string(),
            staged_sources,
        };
        record.digest = record.compute(config)?;
        Ok(record)
    }

    /// The digest of `config` under this record.
    pub fn compute(&self, config: &Value) -> Result<Digest, String> {
        let document = self.canonical_document(config)?;
        Ok(Digest(format!("sha256:{}", hex(&Sha256::digest(document.as_bytes())))))
    }

    /// The exact text that is hashed; exposed so that tests and users can
    /// see why two digests differ.
    pub fn canonical_document(&self, config: &Value) -> Result<String, String> {
        self.check_normalisation()?;
        // Everything but the mounts is copied; the mounts are normalised
        // from the original, so a 3000-path bundle's binds are not copied
        // only to be collapsed into one entry.
        let mut config = match config {
            Value::Object(fields) => {
                let mut copy: serde_json::Map<String, Value> =
                    fields.iter().filter(|(k, _)| *k != "mounts").map(|(k, v)| (k.clone(), v.clone())).collect();
                if let Some(mounts) = fields.get("mounts") {
                    let normalised = match mounts.as_array() {
                        Some(mounts) => {
                            refuse_placeholders(mounts)?;
                            Value::Array(self.canonical_mounts(mounts))
                        }
                        None => mounts.clone(),
                    };
                    copy.insert("mounts".into(), normalised);
                }
                Value::Object(copy)
            }
            other => other.clone(),
        };
        if let Some(object) = config.as_object_mut() {
            let annotations = object.get_mut("annotations").and_then(Value::as_object_mut);
            if let Some(annotations) = annotations {
                annotations.remove(crate::oci::build::CONTAINER_NAME_ANNOTATION);
                if annotations.is_empty() {
                    object.remove("annotations");
                }
            }
        }
        if let Some(linux) = config.get_mut("linux").and_then(Value::as_object_mut) {
            linux.remove("cgroupsPath");
            for ns in linux.get_mut("namespaces").and_then(Value::as_array_mut).into_iter().flatten() {
                if let Some(ns) = ns.as_object_mut() {
                    if ns.get("path").and_then(Value::as_str) == Some("/proc/self/ns/net") {
                        ns.remove("path");
                    }
                }
            }
        }
        let pairs: Option<Vec<[&str; 2]>> = self
            .closure
            .as_ref()
            .map(|entries| entries.iter().map(|e| [e.path.as_str(), e.nar_hash.as_str()]).collect());
        let document =
            json!({ "nucleusDigest": DIGEST_FORMAT, "closure": pairs, "config": config, "network": self.network });
        to_canonical_string(&document)
    }

    /// The record's fields that steer the normalisation (`bundleDir`,
    /// `stagedSources`) are not hashed themselves, so they must have the
    /// only shapes nucleus writes: otherwise a record could make another
    /// config hash like this one (a `bundleDir` of `/` and a staged source
    /// `etc` standing for a volume would turn a bind of the host's `/etc`
    /// into that volume's).
    fn check_normalisation(&self) -> Result<(), String> {
        let normal = |p: &Path| p.is_absolute() && crate::policy::normalise_lexically(p).as_os_str() == p.as_os_str();
        let bundle_dir_ok =
            self.bundle_dir.is_absolute() && crate::policy::normalise_lexically(&self.bundle_dir) != Path::new("/");
        if !bundle_dir_ok {
            return Err(format!(
                "the record's bundleDir {} is not a directory nucleus writes bundles in",
                self.bundle_dir.display()
            ));
        }
        for (staged, host) in &self.staged_sources {
            let volume = staged
                .strip_prefix(&format!("{}/volume-", super::layout::STAGING_DIR))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if !(volume || *staged == BundleLayout::context_staging()) || !normal(host) {
                return Err(format!(
                    "the record's staged source {staged} ({}) is not one nucleus stages",
                    host.display()
                ));
            }
        }
        Ok(())
    }

    fn canonical_mounts(&self, mounts: &[Value]) -> Vec<Value> {
        // (Mounts that already look like the placeholders were refused.)
        let layout = BundleLayout::new(&self.bundle_dir);
        let store_mount = |m: &Value| {
            m.get("destination").and_then(Value::as_str).is_some_and(|d| Path::new(d).starts_with(STORE_DIR))
        };
        let collapse =
            self.closure.is_some() && self.store_mounts_show_the_closure(mounts.iter().filter(|m| store_mount(m)));
        let mut out = Vec::with_capacity(mounts.len());
        let mut closure_placed = false;
        for mount in mounts {
            if collapse && store_mount(mount) {
                if !closure_placed {
                    out.push(json!({"destination": STORE_DIR, "source": CLOSURE_PLACEHOLDER, "type": "closure"}));
                    closure_placed = true;
                }
                continue;
            }
            let mut mount = mount.clone();
            if let Some(Value::String(source)) = mount.get_mut("source") {
                if let Some(rest) = layout.relative(Path::new(source.as_str())).map(|r| r.display().to_string()) {
                    *source = match self.staged_sources.get(&rest) {
                        Some(host) => host.display().to_string(),
                        None => format!("{BUNDLE_PLACEHOLDER}/{rest}"),
                    };
                }
            }
            out.push(mount);
        }
        out
    }

    /// Whether `mounts` are exactly nucleus's store view of the closure:
    /// one read-only bind of the bundle's store view, or read-only binds of
    /// closure paths onto themselves (in order, each at most once).
    fn store_mounts_show_the_closure<'a>(&self, mounts: impl Iterator<Item = &'a Value>) -> bool {
        let mounts: Vec<&Value> = mounts.collect();
        let Some(closure) = &self.closure else { return false };
        let standard = |m: &Value, source: &str, destination: &str| {
            let expected = serde_json::to_value(defaults::bind(source, destination, false, false)).ok();
            Some(m) == expected.as_ref()
        };
        let view = BundleLayout::new(&self.bundle_dir).path(STORE_VIEW_DIR);
        if let [only] = mounts.as_slice() {
            if standard(only, &view.display().to_string(), STORE_DIR) {
                return true;
            }
        }
        let mut paths = closure.iter().map(|e| e.path.as_str());
        mounts.iter().all(|m| {
            let Some(dest) = m.get("destination").and_then(Value::as_str) else { return false };
            paths.any(|p| p == dest) && standard(m, dest, dest)
        })
    }
}

/// The normalised document writes bundle paths as `$BUNDLE/…` and the
/// closure's store as a `closure` mount of `$CLOSURE`. A config that holds
/// such a mount itself would hash like a different config (one that binds
/// the bundle's own path, or shows the recorded closure), so it is refused:
/// nucleus never writes one, and no runtime could use one.
fn refuse_placeholders(mounts: &[Value]) -> Result<(), String> {
    for mount in mounts {
        let source = mount.get("source").and_then(Value::as_str).unwrap_or_default();
        let kind = mount.get("type").and_then(Value::as_str).unwrap_or_default();
        if source.starts_with('$') || kind == "closure" {
            return Err(format!("a mount of '{source}' (type '{kind}') uses a name the digest reserves"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "/nix/store/g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-busybox";
    const B: &str = "/nix/store/iyfbhgnyacs9c74b5s3lp4vynl972yly-hello";

    fn record(dir: &str, closure: Option<Vec<(&str, &str)>>) -> DigestRecord {
        DigestRecord {
            digest_format: DIGEST_FORMAT,
            nucleus_version: "0".into(),
            digest: Digest(String::new()),
            bundle_dir: dir.into(),
            root: None,
            closure: closure
                .map(|c| c.into_iter().map(|(p, h)| ClosureEntry { path: p.into(), nar_hash: h.into() }).collect()),
            network: "none".into(),
            staged_sources: BTreeMap::new(),
        }
    }

    fn bind(source: &str, destination: &str) -> Value {
        serde_json::to_value(defaults::bind(source, destination, false, false)).unwrap()
    }

    fn digest(r: &DigestRecord, config: &Value) -> Digest {
        r.compute(config).unwrap()
    }

    #[test]
    fn the_bundle_location_and_cgroup_do_not_count() {
        let a = json!({"mounts": [bind("/x/b1/secrets/0", "/run/secrets/t")], "linux": {"cgroupsPath": "/n-1"},
                       "annotations": {"nucleus.container-name": "one"}});
        let b = json!({"linux": {"cgroupsPath": "/n-2"}, "mounts": [bind("/y/b2/secrets/0", "/run/secrets/t")]});
        assert_eq!(digest(&record("/x/b1", None), &a), digest(&record("/y/b2", None), &b));
        assert!(record("/x/b1", None).canonical_document(&a).unwrap().contains("$BUNDLE/secrets/0"));
    }

    #[test]
    fn a_view_and_per_path_binds_of_the_same_closure_agree() {
        let closure = Some(vec![(A, "sha256-AAAA"), (B, "sha256-BBBB")]);
        let view = json!({"mounts": [bind("/s/b/store-view", "/nix/store")]});
        let per_path = json!({"mounts": [bind(A, A), bind(B, B)]});
        let r = record("/s/b", closure.clone());
        assert_eq!(digest(&r, &view), digest(&r, &per_path));
        let other = record("/s/b", Some(vec![(A, "sha256-AAAA"), (B, "sha256-CCCC")]));
        assert_ne!(digest(&r, &view), digest(&other, &view), "a byte of a store path counts");
    }

    #[test]
    fn store_mounts_pointed_elsewhere_or_extra_binds_change_the_digest() {
        let r = record("/s/b", Some(vec![(A, "sha256-AAAA")]));
        let honest = json!({"mounts": [bind(A, A)]});
        let redirected = json!({"mounts": [bind("/etc", A)]});
        let host_root = json!({"mounts": [bind(A, A), bind("/", "/host")]});
        let writable = json!({"mounts": [serde_json::to_value(defaults::bind(A, A, true, false)).unwrap()]});
        let outside = json!({"mounts": [bind("/nix/store/00000000000000000000000000000000-x", "/nix/store/00000000000000000000000000000000-x")]});
        let d = digest(&r, &honest);
        for tampered in [redirected, host_root, writable, outside] {
            assert_ne!(digest(&r, &tampered), d, "{tampered}");
        }
    }

    #[test]
    fn staged_sources_hash_as_the_host_paths_they_stand_for() {
        let mut r = record("/s/b", None);
        r.staged_sources.insert("staging/volume-0".into(), "/srv/data".into());
        let staged = json!({"mounts": [bind("/s/b/staging/volume-0", "/data")]});
        let direct = json!({"mounts": [bind("/srv/data", "/data")]});
        assert_eq!(digest(&r, &staged), digest(&record("/elsewhere", None), &direct));
        let moved = json!({"mounts": [bind("/srv/other", "/data")]});
        assert_ne!(digest(&r, &staged), digest(&record("/s/b", None), &moved));
    }

    #[test]
    fn a_record_cannot_steer_the_normalisation_elsewhere() {
        let honest = json!({"mounts": [bind("/srv/data", "/data")]});
        let digest_of_honest = digest(&record("/s/b", None), &honest);
        // The host's /etc, claimed to stand for /srv/data.
        let mut forged = record("/", None);
        forged.staged_sources.insert("etc".into(), "/srv/data".into());
        assert!(forged.compute(&json!({"mounts": [bind("/etc", "/data")]})).is_err());
        let mut forged = record("/s/b", None);
        forged.staged_sources.insert("rootfs/../../../etc".into(), "/srv/data".into());
        assert!(forged.compute(&json!({"mounts": [bind("/s/b/rootfs/../../../etc", "/data")]})).is_err());
        for dir in ["/", "relative", "/s/..", "/."] {
            assert!(record(dir, None).compute(&honest).is_err(), "{dir}");
        }
        let mut staged = record("/s/b", None);
        staged.staged_sources.insert("staging/volume-0".into(), "/srv/data".into());
        let via_staging = json!({"mounts": [bind("/s/b/staging/volume-0", "/data")]});
        assert_eq!(digest(&staged, &via_staging), digest_of_honest);
        staged.staged_sources.insert("staging/volume-x".into(), "/srv/data".into());
        assert!(staged.compute(&via_staging).is_err());
    }

    #[test]
    fn the_network_mode_counts() {
        let config = json!({"mounts": []});
        let mut sandbox = record("/s/b", None);
        sandbox.network = "sandbox".into();
        assert_ne!(digest(&record("/s/b", None), &config), digest(&sandbox, &config));
    }

    #[test]
    fn the_prepared_network_namespace_is_the_sandbox_s_own() {
        let r = record("/s/b", None);
        let prepared = json!({"linux": {"namespaces": [{"type": "network", "path": "/proc/self/ns/net"}]}});
        let own = json!({"linux": {"namespaces": [{"type": "network"}]}});
        let host = json!({"linux": {"namespaces": [{"type": "network", "path": "/proc/1/ns/net"}]}});
        assert_eq!(digest(&r, &prepared), digest(&r, &own));
        assert_ne!(digest(&r, &host), digest(&r, &own));
    }

    /// The digest is a published value: a fixed bundle keeps it across
    /// versions, and whichever map order serde_json is built with
    /// (`scripts/test.sh` runs this with `preserve_order` too).
    #[test]
    fn a_fixed_bundle_keeps_its_published_digest() {
        let mut r = record("/s/b", Some(vec![(B, "sha256-BBBB"), (A, "sha256-AAAA")]));
        r.staged_sources.insert("staging/volume-0".into(), "/srv/data".into());
        let config = json!({
            "process": {"args": ["/bin/hello"], "env": ["PATH=/bin"], "cwd": "/"},
            "mounts": [bind("/s/b/store-view", "/nix/store"), bind("/s/b/staging/volume-0", "/data")],
            "hostname": "nucleus",
            "linux": {"cgroupsPath": "/nucleus-x", "namespaces": [{"type": "pid"}, {"type": "network"}]},
            "ociVersion": "1.0.2",
        });
        assert_eq!(
            digest(&r, &config).to_string(),
            "sha256:e4367e8c03d6e7321568f3115362b3805c20a5d3240f5e3484fa3298986d74b9"
        );
    }

    #[test]
    fn mounts_that_look_like_the_placeholders_are_refused() {
        let closure = Some(vec![(A, "sha256-AAAA")]);
        let r = record("/s/b", closure);
        let bundle_alias = json!({"mounts": [bind("$BUNDLE/staging/volume-0", "/data")]});
        let closure_alias = json!({"mounts": [{"destination": "/nix/store", "source": "$CLOSURE", "type": "closure"}]});
        for forged in [bundle_alias, closure_alias] {
            assert!(r.compute(&forged).is_err(), "{forged}");
        }
    }
}
