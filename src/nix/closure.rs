//! StorePath → Closure: every path the top-level path needs, with the NAR
//! hash, size and references that Nix recorded when it registered them.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::command::{nix, stdout_of, Deadline};
use super::hash::NarHash;
use super::StorePath;
use crate::{Error, Result};

/// One store path as Nix's database records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PathInfo {
    pub path: StorePath,
    #[serde(rename = "narHash", serialize_with = "sri")]
    pub nar_hash: NarHash,
    #[serde(rename = "narSize")]
    pub nar_size: u64,
    pub references: Vec<StorePath>,
}

fn sri<S: serde::Serializer>(hash: &NarHash, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&hash.to_string())
}

/// The closure of `root`, sorted by path so that it hashes the same
/// whatever order Nix printed it in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closure {
    pub root: StorePath,
    pub paths: Vec<PathInfo>,
}

impl Closure {
    /// Asks Nix once for the whole closure: the daemon when one listens
    /// (see [`super::daemon`]), else `nix path-info`, where `--offline`
    /// keeps Nix from asking a binary cache about a path it already has.
    pub fn query(root: &StorePath, deadline: &Deadline) -> Result<Self> {
        if let Some(closure) = super::daemon::closure(root, deadline)? {
            return Ok(closure);
        }
        let mut cmd = nix();
        cmd.args(["path-info", "--offline", "--json", "--recursive", root.as_str()]);
        let json = stdout_of(cmd, deadline)?;
        Self::from_path_info_json(root.clone(), &json)
    }

    /// Parses `nix path-info --json --recursive`: an array of objects up to
    /// Nix 2.18, an object keyed by store path from 2.19 on. Read into typed
    /// values that borrow the text, not a JSON tree: for 3000 paths the tree
    /// took 4 MB.
    pub fn from_path_info_json(root: StorePath, json: &str) -> Result<Self> {
        let bad = |reason: String| Error::NixOutput { command: "nix path-info --json".into(), reason };
        let entries: Vec<(Option<Cow<'_, str>>, Option<JsonInfo<'_>>)> = match json.trim_start().as_bytes().first() {
            Some(b'[') => serde_json::from_str::<Vec<JsonInfo<'_>>>(json)
                .map(|items| items.into_iter().map(|i| (None, Some(i))).collect()),
            Some(b'{') => serde_json::from_str::<KeyedInfos<'_>>(json)
                .map(|keyed| keyed.0.into_iter().map(|(k, v)| (Some(k), v)).collect()),
            _ => return Err(bad("expected an array or an object".into())),
        }
        .map_err(|e| bad(format!("unreadable JSON: {e}")))?;
        let mut paths = Vec::with_capacity(entries.len());
        for (key, entry) in entries {
            let path_text = key
                .or_else(|| entry.as_ref().and_then(|e| e.path.clone()))
                .ok_or_else(|| bad("an entry has no path".into()))?;
            let Some(entry) = entry else {
                return Err(bad(format!("{path_text} is not valid in the Nix store")));
            };
            let nar_hash = entry
                .nar_hash
                .as_deref()
                .ok_or_else(|| bad(format!("{path_text} has no narHash")))
                .and_then(|h| NarHash::parse(h).map_err(|e| bad(format!("{path_text}: {e}"))))?;
            let nar_size = entry.nar_size.ok_or_else(|| bad(format!("{path_text} has no narSize")))?;
            let references = entry
                .references
                .iter()
                .map(|r| full_store_path(r))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| bad(format!("{path_text}: a reference is {e}")))?;
            let path = StorePath::parse(&path_text).map_err(|e| bad(format!("{path_text}: {e}")))?;
            paths.push(PathInfo { path, nar_hash, nar_size, references });
        }
        paths.sort_by(|a, b| a.path.cmp(&b.path));
        paths.dedup_by(|a, b| a.path == b.path);
        if !paths.iter().any(|p| p.path == root) {
            return Err(bad(format!("the closure of {root} does not contain {root} itself")));
        }
        for info in &mut paths {
            info.references.sort();
        }
        share_references(&mut paths);
        Ok(Closure { root, paths })
    }

    pub fn contains(&self, path: &StorePath) -> bool {
        self.paths.binary_search_by(|p| p.path.cmp(path)).is_ok()
    }

    pub fn store_paths(&self) -> impl Iterator<Item = &StorePath> {
        self.paths.iter().map(|p| &p.path)
    }
}

/// Makes each reference to a path of the (sorted) closure share that
/// path's string rather than hold a copy.
fn share_references(paths: &mut [PathInfo]) {
    for i in 0..paths.len() {
        for j in 0..paths[i].references.len() {
            if let Ok(k) = paths.binary_search_by(|p| p.path.cmp(&paths[i].references[j])) {
                let shared = paths[k].path.clone();
                paths[i].references[j] = shared;
            }
        }
    }
}

/// One entry of `nix path-info --json`; other fields are ignored.
#[derive(Deserialize)]
struct JsonInfo<'a> {
    #[serde(borrow, default)]
    path: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "narHash")]
    nar_hash: Option<Cow<'a, str>>,
    #[serde(default, rename = "narSize")]
    nar_size: Option<u64>,
    #[serde(borrow, default)]
    references: Vec<Cow<'a, str>>,
}

/// Nix 2.19's form: path → entry, `null` for a path that is not valid.
struct KeyedInfos<'a>(Vec<(Cow<'a, str>, Option<JsonInfo<'a>>)>);

impl<'de: 'a, 'a> Deserialize<'de> for KeyedInfos<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = KeyedInfos<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object keyed by store path")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> std::result::Result<Self::Value, M::Error> {
                let mut entries = Vec::new();
                while let Some((key, value)) = map.next_entry::<Cow<'de, str>, Option<JsonInfo<'de>>>()? {
                    entries.push((key, value));
                }
                Ok(KeyedInfos(entries))
            }
        }
        deserializer.deserialize_map(Visitor(std::marker::PhantomData))
    }
}

/// Newer Nix may print references as bare `<hash>-<name>`.
fn full_store_path(reference: &str) -> std::result::Result<StorePath, super::store_path::NotAStorePath> {
    if reference.starts_with('/') {
        StorePath::parse(reference)
    } else {
        StorePath::parse(&format!("{}/{reference}", super::store_path::STORE_DIR))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BB: &str = "/nix/store/g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-busybox";
    const HELLO: &str = "/nix/store/iyfbhgnyacs9c74b5s3lp4vynl972yly-hello";
    const SRI: &str = "sha256-HQSV/PgXO9v7Qj5uQt71RduDHcAQxi0aEJPTEw2BpFQ=";

    #[test]
    fn reads_the_array_form_of_nix_2_8() {
        let json = format!(
            r#"[{{"path":"{HELLO}","narHash":"{SRI}","narSize":10,"references":["{BB}"]}},
                {{"path":"{BB}","narHash":"{SRI}","narSize":20,"references":[]}}]"#
        );
        let c = Closure::from_path_info_json(StorePath::parse(HELLO).unwrap(), &json).unwrap();
        assert_eq!(c.paths.len(), 2);
        assert_eq!(c.paths[0].path.as_str(), BB, "sorted by path");
        assert_eq!(c.paths[1].references, vec![StorePath::parse(BB).unwrap()]);
        assert!(c.contains(&StorePath::parse(BB).unwrap()));
        // The reference holds the path's own string, not a copy.
        assert!(c.paths[1].references[0].shares_text_with(&c.paths[0].path));
    }

    #[test]
    fn reads_the_object_form_of_newer_nix() {
        let json = format!(
            r#"{{"{HELLO}":{{"narHash":"{SRI}","narSize":10,"references":["g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-busybox"]}},
                "{BB}":{{"narHash":"{SRI}","narSize":20,"references":[]}}}}"#
        );
        let c = Closure::from_path_info_json(StorePath::parse(HELLO).unwrap(), &json).unwrap();
        assert_eq!(c.paths[1].references[0].as_str(), BB);
    }

    #[test]
    fn refuses_invalid_entries_as_nix_output_errors() {
        let root = StorePath::parse(HELLO).unwrap();
        let bad_path = format!(r#"[{{"path":"/nix/store/not-a-hash","narHash":"{SRI}","narSize":1}}]"#);
        for json in [format!(r#"{{"{HELLO}":null}}"#), "[]".into(), "42".into(), bad_path] {
            let err = Closure::from_path_info_json(root.clone(), &json).unwrap_err();
            assert!(matches!(err, Error::NixOutput { .. }), "{json}: {err}");
        }
    }
}
