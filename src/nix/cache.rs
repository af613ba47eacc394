//! A cache of closures, so that `run` does not start a `nix` process (tens
//! of milliseconds, most of nucleus's own start-up) for a closure it has
//! seen, nor look at each store path twice.
//!
//! What Nix records about a valid store path (narHash, narSize, references)
//! never changes while the path stays valid. A path that is deleted and
//! built or added again is a new directory entry, so each cached path
//! carries the [`Fingerprint`] of its top-level entry (device, inode, birth
//! time) and the whole entry is used only if every fingerprint still
//! matches; otherwise Nix is asked again. Each path also keeps what it is
//! (directory, file, or symlink and its target), which the same fingerprint
//! vouches for, so a hit needs one `fstatat` per path and nothing more.
//!
//! Even one `statx` per path is 3.5 ms for 3000 paths, so an entry also
//! keeps the [`StoreStamp`] of `/nix/store` itself, taken before its paths
//! were examined. A path cannot be deleted or added without changing the
//! store directory's modification and change times, so while the stamp is
//! the same, every path is still the one examined and none is looked at.
//! A stamp is recorded only once it is [settled](StoreStamp::settled) (the
//! directory unchanged for a while), so that a change within the same tick
//! of the file system's clock cannot go unseen. When the store has
//! changed, each path is examined again and, if all still match, the entry
//! is written again with the new stamp.
//!
//! References are kept as indices into the entry's sorted list of paths,
//! so an entry is closed under references by construction (an index out of
//! range is a miss), and a hand-edited or truncated entry can never shrink
//! the store view below the real closure; the root must be in the list.
//!
//! The cache lives in the state root, which nucleus only uses when no other
//! user can write it (see [`crate::host::trust`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::hash::{HashFormat, NarHash};
use super::{Closure, PathInfo, StorePath};
use crate::rootfs::{Fingerprint, StoreDir, StoreEntry, StoreEntryKind};

/// Format version of the cache files; bump it to drop old entries.
const VERSION: u32 = 2;

/// The cache's directory below the state root; a dot name is never a
/// container's.
pub const CACHE_DIR: &str = ".cache/closures";

pub struct ClosureCache {
    dir: PathBuf,
    /// `--dry-run` reads the cache but creates nothing.
    writable: bool,
}

/// One file: the closure of `root`, its paths sorted.
#[derive(Serialize, Deserialize)]
struct Entry<'a> {
    version: u32,
    #[serde(borrow)]
    root: &'a str,
    #[serde(borrow)]
    paths: Vec<CachedPath<'a>>,
    /// The store's stamp when the paths' fingerprints were taken, and a
    /// digest of it with them: an entry edited since is examined path by path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    store: Option<([i64; 6], &'a str)>,
}

/// Device, inode, modification and change times of `/nix/store`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreStamp([i64; 6]);

/// How long the store must have been unchanged before its stamp is
/// recorded: far longer than any file system's clock tick.
const SETTLED: std::time::Duration = std::time::Duration::from_secs(2);

impl StoreStamp {
    /// The stamp of `/nix/store` now; take it before examining paths.
    pub fn now() -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(super::store_path::STORE_DIR).ok()?;
        Some(StoreStamp([
            meta.dev() as i64,
            meta.ino() as i64,
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec(),
        ]))
    }

    /// Whether the store has been unchanged for [`SETTLED`]: a later change
    /// is then bound to give it new times.
    fn settled(&self) -> bool {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let newest = self.0[2].max(self.0[4]);
        newest.checked_add(SETTLED.as_secs() as i64).is_some_and(|t| t < now.as_secs() as i64)
    }

    /// Ties the stamp to the fingerprints it vouches for.
    fn digest(&self, entries: &[StoreEntry]) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        for field in self.0 {
            hasher.update(field.to_le_bytes());
        }
        for entry in entries {
            for field in entry.fingerprint.0 {
                hasher.update(field.to_le_bytes());
            }
        }
        crate::policy::hex(&hasher.finalize())
    }
}

#[derive(Serialize, Deserialize)]
struct CachedPath<'a> {
    path: &'a str,
    #[serde(rename = "narHash")]
    nar_hash: &'a str,
    #[serde(rename = "narSize")]
    nar_size: u64,
    /// Indices into the entry's `paths`.
    refs: Vec<u32>,
    fingerprint: [i64; 4],
    /// `d`irectory, `f`ile or `l`ink (to `target`).
    kind: char,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<&'a str>,
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

    /// The cached closure of `root` and its store entries (one per path, in
    /// the closure's order), if every path is still the one cached.
    pub fn load(&self, root: &StorePath) -> Option<(Closure, Vec<StoreEntry>)> {
        let text = std::fs::read(self.file(root)).ok()?;
        let entry: Entry<'_> = serde_json::from_slice(&text).ok()?;
        let stamp = StoreStamp::now();
        let recorded = entry.store.map(|(stamp, digest)| (StoreStamp(stamp), digest));
        if let (Some(now), Some((then, digest))) = (stamp, recorded) {
            if now == then {
                let (closure, entries) = decode(&entry, root, None)?;
                if then.digest(&entries) == digest {
                    return Some((closure, entries));
                }
            }
        }
        let store = StoreDir::open().ok()?;
        let found = decode(&entry, root, Some(&|path| store.stat(path).ok().map(|(fingerprint, _)| fingerprint)))?;
        // The store changed, but not these paths: the next run need not
        // look at them again.
        if stamp.is_some_and(|s| s.settled()) {
            self.store(&found.0, &found.1, stamp);
        }
        Some(found)
    }

    /// Remembers `closure` and its store entries (one per path, in the
    /// closure's order), examined after `stamp` was taken. Failing to is
    /// harmless: the next run asks Nix.
    pub fn store(&self, closure: &Closure, entries: &[StoreEntry], stamp: Option<StoreStamp>) {
        if !self.writable {
            return;
        }
        // Hex: the quickest of Nix's forms to read back.
        let hashes: Vec<String> = closure.paths.iter().map(|p| p.nar_hash.format(HashFormat::Base16)).collect();
        let Some(mut entry) = encode(closure, entries, &hashes) else { return };
        let digest = stamp.filter(StoreStamp::settled).map(|s| (s, s.digest(entries)));
        entry.store = digest.as_ref().map(|(s, d)| (s.0, d.as_str()));
        if let Err(e) = self.write(&closure.root, &entry) {
            tracing::debug!("closure cache not written: {e}");
        }
    }

    fn write(&self, root: &StorePath, entry: &Entry<'_>) -> std::io::Result<()> {
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

/// The entry for `closure`; `hashes` are its paths' narHashes as text (any
/// form [`NarHash::parse`] reads).
/// `None` if it cannot be written (a reference outside the closure, a
/// symlink target that is not UTF-8).
fn encode<'a>(closure: &'a Closure, entries: &'a [StoreEntry], hashes: &'a [String]) -> Option<Entry<'a>> {
    let matches = entries.len() == closure.paths.len() && hashes.len() == closure.paths.len();
    if !matches {
        return None;
    }
    let index = |r: &StorePath| closure.paths.binary_search_by(|p| p.path.cmp(r)).ok().map(|i| i as u32);
    let mut paths = Vec::with_capacity(closure.paths.len());
    for ((info, entry), nar_hash) in closure.paths.iter().zip(entries).zip(hashes) {
        let (kind, target) = match &entry.kind {
            StoreEntryKind::Directory => ('d', None),
            StoreEntryKind::File => ('f', None),
            StoreEntryKind::Symlink(target) => ('l', Some(target.to_str()?)),
        };
        paths.push(CachedPath {
            path: info.path.as_str(),
            nar_hash,
            nar_size: info.nar_size,
            refs: info.references.iter().map(index).collect::<Option<_>>()?,
            fingerprint: entry.fingerprint.0,
            kind,
            target,
        });
    }
    Some(Entry { version: VERSION, root: closure.root.as_str(), paths, store: None })
}

/// A path's fingerprint as it is now; `None` if it is gone.
type FingerprintNow<'a> = dyn Fn(&StorePath) -> Option<Fingerprint> + 'a;

/// The closure and store entries `entry` holds for `root`, if it is
/// well-formed and `fingerprint` (of the path as it is now, `None` if it is
/// gone) matches every path's; with no `fingerprint`, the recorded ones are
/// taken as they are.
fn decode(
    entry: &Entry<'_>,
    root: &StorePath,
    fingerprint: Option<&FingerprintNow<'_>>,
) -> Option<(Closure, Vec<StoreEntry>)> {
    if entry.version != VERSION || entry.root != root.as_str() {
        return None;
    }
    let names = entry.paths.iter().map(|p| StorePath::parse(p.path).ok()).collect::<Option<Vec<_>>>()?;
    // Sorted and without duplicates, as written: the closure is searched by
    // path, and each index names one path.
    if !names.windows(2).all(|w| w[0] < w[1]) || names.binary_search(root).is_err() {
        return None;
    }
    let mut paths = Vec::with_capacity(names.len());
    let mut entries = Vec::with_capacity(names.len());
    for (cached, path) in entry.paths.iter().zip(&names) {
        let now = match fingerprint {
            Some(fingerprint) => fingerprint(path)?,
            None => Fingerprint(cached.fingerprint),
        };
        if now.0 != cached.fingerprint {
            return None;
        }
        let kind = match (cached.kind, cached.target) {
            ('d', None) => StoreEntryKind::Directory,
            ('f', None) => StoreEntryKind::File,
            ('l', Some(target)) => StoreEntryKind::Symlink(target.into()),
            _ => return None,
        };
        let references = cached.refs.iter().map(|&i| names.get(i as usize).cloned()).collect::<Option<Vec<_>>>()?;
        paths.push(PathInfo {
            path: path.clone(),
            nar_hash: NarHash::parse(cached.nar_hash).ok()?,
            nar_size: cached.nar_size,
            references,
        });
        entries.push(StoreEntry { path: path.clone(), kind, fingerprint: now });
    }
    Some((Closure { root: root.clone(), paths }, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7";

    fn p(name: &str) -> StorePath {
        StorePath::parse(&format!("/nix/store/{HASH}-{name}")).unwrap()
    }

    /// A closure `a → b`, `a → c`, `c` a symlink, and its entries.
    fn sample() -> (Closure, Vec<StoreEntry>, Vec<String>) {
        let info = |path: StorePath, references: Vec<StorePath>| PathInfo {
            path,
            nar_hash: NarHash([7; 32]),
            nar_size: 1,
            references,
        };
        let closure = Closure {
            root: p("a"),
            paths: vec![info(p("a"), vec![p("b"), p("c")]), info(p("b"), vec![]), info(p("c"), vec![])],
        };
        let kinds = [StoreEntryKind::Directory, StoreEntryKind::File, StoreEntryKind::Symlink("b/x".into())];
        let entries = closure
            .paths
            .iter()
            .zip(kinds)
            .zip(1..)
            .map(|((info, kind), n)| StoreEntry { path: info.path.clone(), kind, fingerprint: Fingerprint([n; 4]) })
            .collect();
        let hashes = closure.paths.iter().map(|p| p.nar_hash.to_string()).collect();
        (closure, entries, hashes)
    }

    /// Every path still has the fingerprint it was written with.
    fn unchanged(entries: &[StoreEntry]) -> impl Fn(&StorePath) -> Option<Fingerprint> + '_ {
        |path| entries.iter().find(|e| e.path == *path).map(|e| e.fingerprint)
    }

    /// `entry` as JSON, edited by `edit`, read back.
    fn edited(entry: &Entry<'_>, edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut value = serde_json::to_value(entry).unwrap();
        edit(&mut value);
        value.to_string()
    }

    #[test]
    fn an_entry_reads_back_as_written() {
        let (closure, entries, hashes) = sample();
        let entry = encode(&closure, &entries, &hashes).unwrap();
        let text = serde_json::to_string(&entry).unwrap();
        let read: Entry<'_> = serde_json::from_str(&text).unwrap();
        let (again, again_entries) = decode(&read, &closure.root, Some(&unchanged(&entries))).unwrap();
        assert_eq!(again, closure);
        assert_eq!(again_entries, entries);
    }

    #[test]
    fn a_changed_or_missing_path_is_a_miss() {
        let (closure, entries, hashes) = sample();
        let entry = encode(&closure, &entries, &hashes).unwrap();
        let rebuilt =
            |path: &StorePath| Some(if *path == p("b") { Fingerprint([9; 4]) } else { unchanged(&entries)(path)? });
        assert!(decode(&entry, &closure.root, Some(&rebuilt)).is_none());
        let gone = |path: &StorePath| if *path == p("c") { None } else { unchanged(&entries)(path) };
        assert!(decode(&entry, &closure.root, Some(&gone)).is_none());
    }

    #[test]
    fn a_malformed_entry_is_a_miss() {
        let (closure, entries, hashes) = sample();
        let entry = encode(&closure, &entries, &hashes).unwrap();
        let edits: [fn(&mut serde_json::Value); 9] = [
            // A reference outside the list: the view would miss a path.
            |v| v["paths"][0]["refs"][1] = 3.into(),
            // A path dropped: the root's reference to it now points past the end.
            |v| {
                v["paths"].as_array_mut().unwrap().pop();
            },
            // The root dropped from the list.
            |v| {
                v["paths"].as_array_mut().unwrap().remove(0);
            },
            // Out of order.
            |v| v["paths"].as_array_mut().unwrap().swap(1, 2),
            |v| v["paths"][1]["kind"] = "x".into(),
            |v| v["paths"][2]["target"] = serde_json::Value::Null,
            |v| v["paths"][1]["narHash"] = "md5:00".into(),
            |v| v["version"] = 1.into(),
            |v| v["root"] = p("b").to_string().into(),
        ];
        for edit in edits {
            let text = edited(&entry, edit);
            let read: Entry<'_> = serde_json::from_str(&text).unwrap();
            assert!(decode(&read, &closure.root, Some(&unchanged(&entries))).is_none(), "{text}");
        }
    }

    #[test]
    fn a_store_stamp_counts_once_settled_and_vouches_for_its_fingerprints_only() {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let stamp = |t: i64| StoreStamp([1, 2, t, 0, t, 0]);
        assert!(stamp(now - 60).settled());
        assert!(!stamp(now).settled(), "a store changed this second may change again unseen");
        assert!(!stamp(now + 60).settled());
        let (_, entries, _) = sample();
        let mut edited = entries.clone();
        edited[1].fingerprint = Fingerprint([9; 4]);
        assert_ne!(stamp(1).digest(&entries), stamp(1).digest(&edited));
        assert_ne!(stamp(1).digest(&entries), stamp(2).digest(&entries));
    }

    #[test]
    fn without_a_check_the_recorded_fingerprints_are_taken() {
        let (closure, entries, hashes) = sample();
        let entry = encode(&closure, &entries, &hashes).unwrap();
        let (again, again_entries) = decode(&entry, &closure.root, None).unwrap();
        assert_eq!((again, again_entries), (closure, entries));
    }

    #[test]
    fn a_missing_or_unreadable_file_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ClosureCache::new(dir.path().join("closures"));
        let root = p("busybox");
        assert!(cache.load(&root).is_none());
        std::fs::create_dir_all(dir.path().join("closures")).unwrap();
        std::fs::write(cache.file(&root), "not json").unwrap();
        assert!(cache.load(&root).is_none());
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ClosureCache::new(dir.path().join("closures"));
        let root = p("busybox");
        // The entry's final name is taken by a directory: the rename fails.
        std::fs::create_dir_all(cache.file(&root).join("x")).unwrap();
        let entry = Entry { version: VERSION, root: root.as_str(), paths: vec![], store: None };
        assert!(cache.write(&root, &entry).is_err());
        let left: Vec<_> = std::fs::read_dir(dir.path().join("closures")).unwrap().flatten().collect();
        assert_eq!(left.len(), 1, "only the directory in the way remains");
    }
}
