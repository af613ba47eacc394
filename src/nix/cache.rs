//! A cache of closures, so that `run` does not start a `nix` process (about
//! 30 ms, most of nucleus's own start-up) for a closure it has seen.
//!
//! What Nix records about a valid store path (narHash, narSize, references)
//! never changes while the path stays valid. A path that is deleted and
//! built or added again is a new directory entry with a new inode and change
//! time, so each cached path carries a fingerprint of its top-level entry
//! (device, inode, ctime) and the whole entry is used only if every
//! fingerprint still matches; otherwise Nix is asked again. An entry must
//! also be closed under references (every reference of every path is in
//! it, the root included), so a hand-edited or truncated entry can never
//! shrink the store view below the real closure.
//!
//! The cache lives in the state root, which nucleus only uses when no other
//! user can write it (see [`crate::host::trust`]).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::hash::NarHash;
use super::{Closure, PathInfo, StorePath};

/// Format version of the cache files; bump it to drop old entries.
const VERSION: u32 = 1;

/// The cache's directory below the state root; a dot name is never a
/// container's.
pub const CACHE_DIR: &str = ".cache/closures";

pub struct ClosureCache {
    dir: PathBuf,
    /// `--dry-run` reads the cache but creates nothing.
    writable: bool,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    version: u32,
    root: String,
    paths: Vec<CachedPath>,
}

#[derive(Serialize, Deserialize)]
struct CachedPath {
    path: String,
    #[serde(rename = "narHash")]
    nar_hash: String,
    #[serde(rename = "narSize")]
    nar_size: u64,
    references: Vec<String>,
    fingerprint: [i64; 4],
}

impl ClosureCache {
    /// A cache in `dir`, created on first store.
    pub fn new(dir: PathBuf) -> Self {
        ClosureCache { dir, writable: true }
    }

    /// A cache that is consulted but never written.
    pub fn read_only(dir: PathBuf) -> Self {
        ClosureCache { dir, writable: false }
    }

    fn file(&self, root: &StorePath) -> PathBuf {
        self.dir.join(format!("{}.json", root.base_name()))
    }

    /// The cached closure of `root`, if every path is still the one cached.
    pub fn load(&self, root: &StorePath) -> Option<Closure> {
        let text = std::fs::read(self.file(root)).ok()?;
        let entry: Entry = serde_json::from_slice(&text).ok()?;
        if entry.version != VERSION || entry.root != root.as_str() {
            return None;
        }
        let mut paths = Vec::with_capacity(entry.paths.len());
        for cached in entry.paths {
            if fingerprint(Path::new(&cached.path))? != cached.fingerprint {
                return None;
            }
            paths.push(PathInfo {
                path: StorePath::parse(&cached.path).ok()?,
                nar_hash: NarHash::parse(&cached.nar_hash).ok()?,
                nar_size: cached.nar_size,
                references: cached.references.iter().map(|r| StorePath::parse(r)).collect::<Result<_, _>>().ok()?,
            });
        }
        paths.sort_by(|a, b| a.path.cmp(&b.path));
        let closure = Closure { root: root.clone(), paths };
        is_closed(&closure).then_some(closure)
    }

    /// Remembers `closure`. Failing to is harmless: the next run asks Nix.
    pub fn store(&self, closure: &Closure) {
        if !self.writable {
            return;
        }
        let paths: Option<Vec<CachedPath>> = closure
            .paths
            .iter()
            .map(|p| {
                Some(CachedPath {
                    path: p.path.to_string(),
                    nar_hash: p.nar_hash.to_string(),
                    nar_size: p.nar_size,
                    references: p.references.iter().map(|r| r.to_string()).collect(),
                    fingerprint: fingerprint(p.path.as_path())?,
                })
            })
            .collect();
        let Some(paths) = paths else { return };
        let entry = Entry { version: VERSION, root: closure.root.to_string(), paths };
        if let Err(e) = self.write(&closure.root, &entry) {
            tracing::debug!("closure cache not written: {e}");
        }
    }

    fn write(&self, root: &StorePath, entry: &Entry) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir)?;
        let text = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        // Unique per process, renamed into place: concurrent runs never see
        // half a file, and a failed write (a full disk) leaves nothing.
        let tmp = self.dir.join(format!(".{}.{}.tmp", root.base_name(), std::process::id()));
        let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, self.file(root)));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }
}

/// Every reference of every path is in the closure, and so is the root.
fn is_closed(closure: &Closure) -> bool {
    closure.contains(&closure.root) && closure.paths.iter().all(|p| p.references.iter().all(|r| closure.contains(r)))
}

/// Device, inode and change time of a store path's top-level entry.
fn fingerprint(path: &Path) -> Option<[i64; 4]> {
    let meta = path.symlink_metadata().ok()?;
    Some([meta.dev() as i64, meta.ino() as i64, meta.ctime(), meta.ctime_nsec()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_foreign_entry_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ClosureCache::new(dir.path().join("closures"));
        let root = StorePath::parse("/nix/store/g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-busybox").unwrap();
        assert!(cache.load(&root).is_none());
        std::fs::create_dir_all(dir.path().join("closures")).unwrap();
        std::fs::write(cache.file(&root), "not json").unwrap();
        assert!(cache.load(&root).is_none());
        let other = r#"{"version":1,"root":"/nix/store/g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-other","paths":[]}"#;
        std::fs::write(cache.file(&root), other).unwrap();
        assert!(cache.load(&root).is_none());
    }

    #[test]
    fn an_entry_must_be_closed_under_references() {
        let p = |name: &str| StorePath::parse(&format!("/nix/store/g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-{name}")).unwrap();
        let info = |path: StorePath, refs: Vec<StorePath>| PathInfo {
            path,
            nar_hash: NarHash([0; 32]),
            nar_size: 1,
            references: refs,
        };
        let closed = Closure { root: p("a"), paths: vec![info(p("a"), vec![p("b")]), info(p("b"), vec![])] };
        assert!(is_closed(&closed));
        let open = Closure { root: p("a"), paths: vec![info(p("a"), vec![p("b")])] };
        assert!(!is_closed(&open));
        let rootless = Closure { root: p("c"), paths: vec![info(p("b"), vec![])] };
        assert!(!is_closed(&rootless));
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ClosureCache::new(dir.path().join("closures"));
        let root = StorePath::parse("/nix/store/g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-busybox").unwrap();
        // The entry's final name is taken by a directory: the rename fails.
        std::fs::create_dir_all(cache.file(&root).join("x")).unwrap();
        let entry = Entry { version: VERSION, root: root.to_string(), paths: vec![] };
        assert!(cache.write(&root, &entry).is_err());
        let left: Vec<_> = std::fs::read_dir(dir.path().join("closures")).unwrap().flatten().collect();
        assert_eq!(left.len(), 1, "only the directory in the way remains");
    }
}
