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
//!   closure onto itself, with nucleus's options, and no other mount among
//!   them), become one entry
//!   `{"destination":"/nix/store","source":"$CLOSURE","type":"closure"}`,
//!   and the closure's narHashes stand for their contents. Any other store
//!   mount stays as it is, so pointing one elsewhere changes the digest.
//!
//! Every other field, every other mount (type, source, destination,
//! options) and their order are hashed as written.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::canonical::{write_object, write_string, write_value, Member, Sink};
use super::layout::{BundleLayout, STORE_VIEW_DIR};
use crate::nix::store_path::STORE_DIR;
use crate::nix::Closure;
use crate::oci::{defaults, MountList, RuntimeConfig};
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

/// A config as the digest reads it: its members, and its mounts one at a
/// time. A per-path bundle has thousands of binds; they are never all held
/// as JSON values, and the document is hashed as it is written, not held
/// as text, so that `nucleus bundle` stays small for a whole system's
/// closure.
struct DigestConfig<'a> {
    /// The config; a `mounts` member in it is read from `mounts` instead.
    fields: &'a Value,
    mounts: Option<Mounts<'a>>,
}

enum Mounts<'a> {
    /// As nucleus builds them.
    Typed(&'a MountList),
    /// As read back from config.json.
    Listed(&'a [Value]),
    /// A config.json whose `mounts` is not a list: hashed as it is.
    Other(&'a Value),
}

impl<'a> DigestConfig<'a> {
    fn parsed(config: &'a Value) -> Self {
        let mounts = config.get("mounts").map(|mounts| match mounts {
            Value::Array(list) => Mounts::Listed(list),
            other => Mounts::Other(other),
        });
        DigestConfig { fields: config, mounts }
    }
}

impl Mounts<'_> {
    /// Each mount as JSON, made only when its turn comes.
    fn each(&self) -> Box<dyn Iterator<Item = Result<Cow<'_, Value>, String>> + '_> {
        match self {
            Mounts::Typed(mounts) => Box::new(mounts.iter().map(|m| {
                serde_json::to_value(&*m).map(Cow::Owned).map_err(|e| format!("cannot serialise a mount: {e}"))
            })),
            Mounts::Listed(mounts) => Box::new(mounts.iter().map(|m| Ok(Cow::Borrowed(m)))),
            Mounts::Other(_) => Box::new(std::iter::empty()),
        }
    }
}

impl DigestRecord {
    /// The record for `config` written at `bundle_dir`. Its mounts are
    /// hashed one at a time, never all held as JSON.
    pub fn new(
        config: &RuntimeConfig,
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
        let fields = serde_json::to_value(config.spec()).map_err(|e| format!("cannot serialise the config: {e}"))?;
        let built = DigestConfig { fields: &fields, mounts: Some(Mounts::Typed(config.mounts())) };
        record.digest = record.digest_of(&built)?;
        Ok(record)
    }

    /// The digest of `config` (config.json as read back) under this record.
    pub fn compute(&self, config: &Value) -> Result<Digest, String> {
        self.digest_of(&DigestConfig::parsed(config))
    }

    /// The exact text that is hashed; exposed so that tests and users can
    /// see why two digests differ.
    pub fn canonical_document(&self, config: &Value) -> Result<String, String> {
        let mut text = String::new();
        self.write_document(&DigestConfig::parsed(config), &mut text)?;
        Ok(text)
    }

    fn digest_of(&self, config: &DigestConfig<'_>) -> Result<Digest, String> {
        let mut hasher = Sha256::new();
        self.write_document(config, &mut hasher)?;
        Ok(Digest(format!("sha256:{}", hex(&hasher.finalize()))))
    }

    fn write_document(&self, config: &DigestConfig<'_>, out: &mut dyn Sink) -> Result<(), String> {
        self.check_normalisation()?;
        let collapse = match &config.mounts {
            Some(mounts) => self.check_mounts(mounts)?,
            None => false,
        };
        let fields = normalised_fields(config.fields);
        let network = Value::from(self.network.as_str());
        let format = Value::from(DIGEST_FORMAT);
        let members = vec![
            ("closure", Member::Written(Box::new(|out: &mut dyn Sink| self.write_closure(out)))),
            (
                "config",
                Member::Written(Box::new(|out: &mut dyn Sink| {
                    self.write_config(&fields, config.mounts.as_ref(), collapse, out)
                })),
            ),
            ("network", Member::Value(&network)),
            ("nucleusDigest", Member::Value(&format)),
        ];
        write_object(members, out)
    }

    /// `[[PATH,NARHASH],…]`, or `null` in host mode.
    fn write_closure(&self, out: &mut dyn Sink) -> Result<(), String> {
        let Some(entries) = &self.closure else {
            out.put("null");
            return Ok(());
        };
        out.put("[");
        for (i, entry) in entries.iter().enumerate() {
            out.put(if i > 0 { ",[" } else { "[" });
            write_string(&entry.path, out);
            out.put(",");
            write_string(&entry.nar_hash, out);
            out.put("]");
        }
        out.put("]");
        Ok(())
    }

    fn write_config(
        &self,
        fields: &Value,
        mounts: Option<&Mounts<'_>>,
        collapse: bool,
        out: &mut dyn Sink,
    ) -> Result<(), String> {
        let Value::Object(fields) = fields else { return write_value(fields, out) };
        let mut members: Vec<(&str, Member<'_>)> =
            fields.iter().map(|(name, value)| (name.as_str(), Member::Value(value))).collect();
        match mounts {
            None => {}
            Some(Mounts::Other(value)) => members.push(("mounts", Member::Value(value))),
            Some(mounts) => members.push((
                "mounts",
                Member::Written(Box::new(move |out: &mut dyn Sink| self.write_mounts(mounts, collapse, out))),
            )),
        }
        write_object(members, out)
    }

    /// The mounts, normalised; with `collapse`, the store mounts become one
    /// `closure` entry where the first of them was.
    fn write_mounts(&self, mounts: &Mounts<'_>, collapse: bool, out: &mut dyn Sink) -> Result<(), String> {
        let layout = BundleLayout::new(&self.bundle_dir);
        let closure_mount = json!({"destination": STORE_DIR, "source": CLOSURE_PLACEHOLDER, "type": "closure"});
        let mut closure_placed = false;
        let mut written = 0usize;
        out.put("[");
        for mount in mounts.each() {
            let mut mount = mount?;
            if collapse && is_store_mount(&mount) {
                if closure_placed {
                    continue;
                }
                closure_placed = true;
                mount = Cow::Borrowed(&closure_mount);
            } else if let Some(rest) = bundle_relative_source(&mount, &layout) {
                let source = match self.staged_sources.get(&rest) {
                    Some(host) => host.display().to_string(),
                    None => format!("{BUNDLE_PLACEHOLDER}/{rest}"),
                };
                if let Some(object) = mount.to_mut().as_object_mut() {
                    object.insert("source".into(), Value::String(source));
                }
            }
            if written > 0 {
                out.put(",");
            }
            write_value(&mount, out)?;
            written += 1;
        }
        out.put("]");
        Ok(())
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

    /// Refuses mounts that look like the placeholders, and tells whether
    /// the store mounts are exactly nucleus's store view of the closure
    /// (then they collapse into one entry): one read-only bind of the
    /// bundle's store view, or read-only binds of closure paths onto
    /// themselves (in order, each at most once), with no other mount among
    /// them (one there could cover some of them, and where it stands would
    /// be lost in the collapse). One pass, one mount at a time.
    fn check_mounts(&self, mounts: &Mounts<'_>) -> Result<bool, String> {
        let view = BundleLayout::new(&self.bundle_dir).path(STORE_VIEW_DIR).display().to_string();
        let mut closure_paths = self.closure.as_ref().map(|c| c.iter().map(|e| e.path.as_str()));
        let (mut store_mounts, mut only_the_view, mut each_a_closure_path) = (0usize, false, true);
        let (mut after_store, mut contiguous) = (false, true);
        for mount in mounts.each() {
            let mount = mount?;
            refuse_placeholder(&mount)?;
            let Some(paths) = closure_paths.as_mut() else { continue };
            if !is_store_mount(&mount) {
                after_store = store_mounts > 0;
                continue;
            }
            contiguous &= !after_store;
            store_mounts += 1;
            if store_mounts == 1 {
                only_the_view = is_standard_bind(&mount, &view, STORE_DIR);
            }
            if each_a_closure_path {
                let destination = mount.get("destination").and_then(Value::as_str);
                each_a_closure_path =
                    destination.is_some_and(|d| paths.any(|p| p == d) && is_standard_bind(&mount, d, d));
            }
        }
        Ok(closure_paths.is_some() && contiguous && ((store_mounts == 1 && only_the_view) || each_a_closure_path))
    }
}

/// The config's members but its mounts, without what only places a bundle
/// on one machine (see the module's documentation).
fn normalised_fields(config: &Value) -> Value {
    let Value::Object(fields) = config else { return config.clone() };
    let mut fields: serde_json::Map<String, Value> =
        fields.iter().filter(|(name, _)| *name != "mounts").map(|(k, v)| (k.clone(), v.clone())).collect();
    if let Some(Value::Object(annotations)) = fields.get_mut("annotations") {
        annotations.remove(crate::oci::build::CONTAINER_NAME_ANNOTATION);
        if annotations.is_empty() {
            fields.remove("annotations");
        }
    }
    if let Some(Value::Object(linux)) = fields.get_mut("linux") {
        linux.remove("cgroupsPath");
        for ns in linux.get_mut("namespaces").and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(ns) = ns.as_object_mut() {
                if ns.get("path").and_then(Value::as_str) == Some(crate::plan::PREPARED_NETWORK_NAMESPACE) {
                    ns.remove("path");
                }
            }
        }
    }
    Value::Object(fields)
}

fn is_store_mount(mount: &Value) -> bool {
    mount.get("destination").and_then(Value::as_str).is_some_and(|d| Path::new(d).starts_with(STORE_DIR))
}

/// Whether `mount` is exactly the read-only bind nucleus writes.
fn is_standard_bind(mount: &Value, source: &str, destination: &str) -> bool {
    serde_json::to_value(defaults::bind(source, destination, false, false)).is_ok_and(|expected| *mount == expected)
}

/// The mount's source relative to the bundle, if it is inside it.
fn bundle_relative_source(mount: &Value, layout: &BundleLayout) -> Option<String> {
    let source = mount.get("source").and_then(Value::as_str)?;
    layout.relative(Path::new(source)).map(|rest| rest.display().to_string())
}

/// The normalised document writes bundle paths as `$BUNDLE/…` and the
/// closure's store as a `closure` mount of `$CLOSURE`. A config that holds
/// such a mount itself would hash like a different config (one that binds
/// the bundle's own path, or shows the recorded closure), so it is refused:
/// nucleus never writes one, and no runtime could use one.
fn refuse_placeholder(mount: &Value) -> Result<(), String> {
    let source = mount.get("source").and_then(Value::as_str).unwrap_or_default();
    let kind = mount.get("type").and_then(Value::as_str).unwrap_or_default();
    if source.starts_with('$') || kind == "closure" {
        return Err(format!("a mount of '{source}' (type '{kind}') uses a name the digest reserves"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nix::closure::PathInfo;
    use crate::nix::hash::NarHash;
    use crate::nix::StorePath;

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

    /// `nucleus bundle` digests the spec it builds, mount by mount and
    /// straight into the hasher; `verify` digests config.json as read back.
    /// Both must give the digest of the one canonical document.
    #[test]
    fn the_spec_as_built_and_as_read_back_give_one_digest() {
        let paths = [(A, 1u8), (B, 2u8)].map(|(path, byte)| PathInfo {
            path: StorePath::parse(path).unwrap(),
            nar_hash: NarHash([byte; 32]),
            nar_size: 1,
            references: Vec::new(),
        });
        let closure = Closure { root: StorePath::parse(B).unwrap(), paths: paths.to_vec() };
        let staged: BTreeMap<String, PathBuf> = [("staging/volume-0".to_string(), PathBuf::from("/srv/data"))].into();
        let per_path = |paths: &[&str]| paths.iter().map(|p| StorePath::parse(p).unwrap()).collect::<Vec<_>>();
        let cases = [
            (vec![], per_path(&[A, B])),
            (vec![defaults::bind("/s/b/store-view", "/nix/store", false, false)], vec![]),
            (vec![], per_path(&[A])),
        ];
        for (store, store_binds) in cases {
            let typed = |source: &str, destination: &str| defaults::bind(source, destination, false, false);
            let mut before = vec![typed("/etc/resolv.conf", "/etc/resolv.conf")];
            before.extend(store);
            let after = vec![typed("/s/b/staging/volume-0", "/data"), typed("/s/b/secrets/0", "/run/secrets/t")];
            let spec = json!({
                "ociVersion": "1.0.2",
                "process": {"args": ["/bin/hello"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
                "annotations": {"nucleus.container-name": "x"},
                "linux": {"cgroupsPath": "/nucleus-x", "namespaces": [{"type": "network", "path": "/proc/self/ns/net"}]},
            });
            let config =
                RuntimeConfig::new(serde_json::from_value(spec).unwrap(), MountList { before, store_binds, after });
            let built = DigestRecord::new(&config, Path::new("/s/b"), Some(&closure), "none", staged.clone()).unwrap();
            let read_back: Value = serde_json::from_str(&serde_json::to_string(&config).unwrap()).unwrap();
            assert_eq!(read_back["mounts"].as_array().map(Vec::len), Some(config.mounts().len()));
            assert_eq!(built.compute(&read_back).unwrap(), built.digest);
            let document = built.canonical_document(&read_back).unwrap();
            assert_eq!(built.digest.as_str(), format!("sha256:{}", hex(&Sha256::digest(document.as_bytes()))));
        }
    }

    /// A mount among the store binds (a tmpfs on `/nix` after one of them)
    /// covers some of them in one order and none in another: the store
    /// binds then do not collapse, so the two orders hash differently.
    #[test]
    fn store_binds_collapse_only_when_nothing_stands_among_them() {
        let r = record("/s/b", Some(vec![(A, "sha256-AAAA"), (B, "sha256-BBBB")]));
        let tmpfs = serde_json::to_value(defaults::mount("tmpfs", "tmpfs", "/nix", &["nosuid"])).unwrap();
        let among = json!({"mounts": [bind(A, A), tmpfs.clone(), bind(B, B)]});
        let after = json!({"mounts": [bind(A, A), bind(B, B), tmpfs]});
        assert_ne!(digest(&r, &among), digest(&r, &after));
        assert!(r.canonical_document(&after).unwrap().contains(CLOSURE_PLACEHOLDER));
        assert!(!r.canonical_document(&among).unwrap().contains(CLOSURE_PLACEHOLDER));
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
