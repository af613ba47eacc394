//! StorePath → Closure: every path the top-level path needs, with the NAR
//! hash, size and references that Nix recorded when it registered them.

use serde::Serialize;

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
    /// Nix 2.18, an object keyed by store path from 2.19 on.
    pub fn from_path_info_json(root: StorePath, json: &str) -> Result<Self> {
        let bad = |reason: String| Error::NixOutput { command: "nix path-info --json".into(), reason };
        let value: serde_json::Value = serde_json::from_str(json).map_err(|e| bad(format!("unreadable JSON: {e}")))?;
        let entries: Vec<(Option<&str>, &serde_json::Value)> = match &value {
            serde_json::Value::Array(items) => items.iter().map(|v| (None, v)).collect(),
            serde_json::Value::Object(map) => map.iter().map(|(k, v)| (Some(k.as_str()), v)).collect(),
            _ => return Err(bad("expected an array or an object".into())),
        };
        let mut paths = Vec::with_capacity(entries.len());
        for (key, entry) in entries {
            let path_text = key
                .or_else(|| entry.get("path").and_then(|p| p.as_str()))
                .ok_or_else(|| bad("an entry has no path".into()))?;
            if entry.is_null() {
                return Err(bad(format!("{path_text} is not valid in the Nix store")));
            }
            let nar_hash = entry
                .get("narHash")
                .and_then(|h| h.as_str())
                .ok_or_else(|| bad(format!("{path_text} has no narHash")))
                .and_then(|h| NarHash::parse(h).map_err(|e| bad(format!("{path_text}: {e}"))))?;
            let nar_size = entry
                .get("narSize")
                .and_then(|s| s.as_u64())
                .ok_or_else(|| bad(format!("{path_text} has no narSize")))?;
            let references = entry
                .get("references")
                .and_then(|r| r.as_array())
                .map(|refs| refs.iter().filter_map(|r| r.as_str()).map(full_store_path).collect())
                .unwrap_or_else(|| Ok(Vec::new()))
                .map_err(|e| bad(format!("{path_text}: a reference is {e}")))?;
            let path = StorePath::parse(path_text).map_err(|e| bad(format!("{path_text}: {e}")))?;
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
        Ok(Closure { root, paths })
    }

    pub fn contains(&self, path: &StorePath) -> bool {
        self.paths.binary_search_by(|p| p.path.cmp(path)).is_ok()
    }

    pub fn store_paths(&self) -> impl Iterator<Item = &StorePath> {
        self.paths.iter().map(|p| &p.path)
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
