//! config.json as nucleus builds it: the spec, and its mounts apart.
//!
//! A bundle for other runtimes (`nucleus bundle`) binds every store path
//! of its closure onto itself: thousands of mounts for a whole system's
//! closure. Those binds are not held as `Mount` values (about 600 bytes of
//! heap each); [`MountList`] makes each one when its turn comes, whenever
//! the list is read: written to config.json, hashed for the digest,
//! counted, walked for mountpoints. What nucleus holds for such a bundle
//! then grows by one store path per path, not by a mount.

use std::borrow::Cow;

use oci_spec::runtime::{Mount, Spec};
use serde::{Serialize, Serializer};

use super::defaults;
use crate::nix::StorePath;

/// The mounts of config.json, in mount order: `before`, then one
/// read-only bind of each of `store_binds` onto itself, then `after`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MountList {
    pub before: Vec<Mount>,
    pub store_binds: Vec<StorePath>,
    pub after: Vec<Mount>,
}

impl MountList {
    /// Every mount, each store bind made as it is reached.
    pub fn iter(&self) -> impl Iterator<Item = Cow<'_, Mount>> + '_ {
        self.before
            .iter()
            .map(Cow::Borrowed)
            .chain(self.store_binds.iter().map(|path| Cow::Owned(store_bind(path))))
            .chain(self.after.iter().map(Cow::Borrowed))
    }

    pub fn len(&self) -> usize {
        self.before.len() + self.store_binds.len() + self.after.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many are binds (what runsc's limit counts).
    pub fn binds(&self) -> usize {
        let held = self.before.iter().chain(&self.after).filter(|m| defaults::is_bind(m)).count();
        held + self.store_binds.len()
    }
}

/// A store path bound read-only onto itself, as a per-path bundle shows it.
pub fn store_bind(path: &StorePath) -> Mount {
    defaults::bind(path.as_str(), path.as_str(), false, false)
}

impl Serialize for MountList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// config.json: every member of `spec` but its mounts, which `mounts`
/// holds (the spec's own `mounts` is never set).
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    spec: Spec,
    mounts: MountList,
}

impl RuntimeConfig {
    /// `spec`'s own mounts, if any, come first in the list.
    pub fn new(mut spec: Spec, mut mounts: MountList) -> Self {
        if let Some(own) = spec.mounts_mut().take() {
            mounts.before.splice(0..0, own);
        }
        RuntimeConfig { spec, mounts }
    }

    /// The spec without its mounts.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    pub fn mounts(&self) -> &MountList {
        &self.mounts
    }
}

impl Serialize for RuntimeConfig {
    /// The spec's members with `mounts` among them, streamed: the store
    /// binds are never all held, not even as JSON.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Document<'a> {
            #[serde(flatten)]
            spec: &'a Spec,
            mounts: &'a MountList,
        }
        Document { spec: &self.spec, mounts: &self.mounts }.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(name: &str) -> StorePath {
        StorePath::parse(&format!("/nix/store/{}-{name}", "a".repeat(32))).unwrap()
    }

    /// Written, the list is exactly the spec with every mount in it.
    #[test]
    fn serialises_as_the_whole_spec_would() {
        let proc_mount = defaults::mount("proc", "proc", "/proc", &["nosuid"]);
        let user = defaults::bind("/srv", "/data", true, false);
        let list = MountList {
            before: vec![proc_mount.clone()],
            store_binds: vec![path("a"), path("b")],
            after: vec![user.clone()],
        };
        let mut spec = Spec::default();
        spec.set_hostname(Some("h".into()));
        spec.set_mounts(None);
        let config = RuntimeConfig::new(spec.clone(), list.clone());
        let mut whole = spec;
        whole.set_mounts(Some(vec![proc_mount, store_bind(&path("a")), store_bind(&path("b")), user]));
        assert_eq!(serde_json::to_value(&config).unwrap(), serde_json::to_value(&whole).unwrap());
        assert_eq!(list.len(), 4);
        assert_eq!(list.binds(), 3);
        let back: Spec = serde_json::from_str(&serde_json::to_string_pretty(&config).unwrap()).unwrap();
        assert_eq!(back.mounts().as_ref().map(Vec::len), Some(4));
    }

    /// A spec that arrives with mounts keeps them, first.
    #[test]
    fn a_specs_own_mounts_come_first() {
        let own = defaults::mount("proc", "proc", "/proc", &[]);
        let mut spec = Spec::default();
        spec.set_mounts(Some(vec![own.clone()]));
        let config = RuntimeConfig::new(spec, MountList { store_binds: vec![path("a")], ..MountList::default() });
        assert!(config.spec().mounts().is_none());
        let all: Vec<Mount> = config.mounts().iter().map(Cow::into_owned).collect();
        assert_eq!(all, [own, store_bind(&path("a"))]);
    }
}
