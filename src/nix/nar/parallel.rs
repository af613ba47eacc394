//! NAR hashes of many store paths at once, spread over the machine's cores.
//!
//! One sha256 stream cannot be split, so a single path is hashed no faster
//! than one core allows; a closure of many paths can keep every core
//! hashing a different path. The work is handed out one path at a time,
//! largest first when sizes are known, so that no core is left with one
//! big path after the others have run out of work.

use std::cmp::Reverse;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use super::{nar_sha256, InlineHasher};
use crate::error::{Error, Result};

/// The sha256 of each path's NAR, as [`nar_sha256`] computes it, in the
/// order of `paths`; one path failing does not stop the others.
///
/// Uses a thread per core (as `available_parallelism` counts them, so a
/// CPU quota or affinity mask is respected), the calling thread included,
/// each hashing one path at a time with a 512 KiB buffer of its own.
pub fn nar_sha256_all<P: AsRef<Path> + Sync>(paths: &[P]) -> Vec<Result<[u8; 32]>> {
    nar_sha256_all_sized(paths, &[])
}

/// [`nar_sha256_all`], hashing the largest paths first.
///
/// `size_hints[i]` is the expected size of `paths[i]` (its narSize, say);
/// it only decides the order of work, so a wrong or missing hint (a
/// shorter slice, or 0) costs time, never correctness. Paths without a
/// hint go last, in their given order.
pub fn nar_sha256_all_sized<P: AsRef<Path> + Sync>(paths: &[P], size_hints: &[u64]) -> Vec<Result<[u8; 32]>> {
    let cores = thread::available_parallelism().map_or(1, NonZeroUsize::get);
    hash_all(paths, size_hints, cores)
}

/// Hashes `paths` on up to `workers` threads, the calling thread being one
/// of them, so that the work gets done even if no thread can be started.
fn hash_all<P: AsRef<Path> + Sync>(paths: &[P], size_hints: &[u64], workers: usize) -> Vec<Result<[u8; 32]>> {
    let workers = workers.clamp(1, paths.len().max(1));
    if workers == 1 {
        // One core, or one path: all the parallelism there is comes from
        // the reader thread of the single-stream hasher.
        return paths.iter().map(|p| nar_sha256(p.as_ref())).collect();
    }

    // A stable sort: equal sizes keep their given order.
    let mut order: Vec<usize> = (0..paths.len()).collect();
    order.sort_by_key(|&i| Reverse(size_hints.get(i).copied().unwrap_or(0)));
    let next = AtomicUsize::new(0);
    // Takes the next path in `order` until none is left.
    let work = || {
        // Every core already hashes a path of its own, so no reader thread.
        let mut hasher = InlineHasher::new();
        let mut done = Vec::new();
        while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
            done.push((i, hasher.nar_sha256(paths[i].as_ref())));
        }
        done
    };

    let mut results: Vec<Option<Result<[u8; 32]>>> = paths.iter().map(|_| None).collect();
    thread::scope(|s| {
        let helpers: Vec<_> = (1..workers)
            // A thread that cannot be started leaves its share to the others.
            .filter_map(|n| thread::Builder::new().name(format!("nar-hash-{n}")).spawn_scoped(s, work).ok())
            .collect();
        let mut all = work();
        for helper in helpers {
            match helper.join() {
                Ok(done) => all.extend(done),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        for (i, result) in all {
            results[i] = Some(result);
        }
    });
    // Every index was taken by exactly one worker, and every worker
    // returned or re-raised its panic above, so none is left empty.
    results
        .into_iter()
        .zip(paths)
        .map(|(r, p)| {
            r.unwrap_or_else(|| Err(Error::io("cannot hash", p, std::io::Error::other("no worker hashed it"))))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::PathBuf;

    /// Trees of different shapes and sizes, and a missing path among them.
    fn sample(root: &Path) -> Vec<PathBuf> {
        let mut paths = Vec::new();
        for i in 0..23usize {
            let p = root.join(format!("p{i:02}"));
            match i % 4 {
                0 => fs::write(&p, vec![i as u8; i * 40_000]).unwrap(),
                1 => {
                    fs::create_dir_all(p.join("sub")).unwrap();
                    fs::write(p.join("sub/f"), vec![i as u8; i * 100_000 + 3]).unwrap();
                    std::os::unix::fs::symlink("sub/f", p.join("link")).unwrap();
                }
                2 => std::os::unix::fs::symlink(format!("/nowhere/{i}"), &p).unwrap(),
                _ => fs::create_dir(&p).unwrap(),
            }
            paths.push(p);
        }
        paths.insert(7, root.join("missing"));
        paths
    }

    fn assert_same(got: &[Result<[u8; 32]>], paths: &[PathBuf]) {
        assert_eq!(got.len(), paths.len());
        for (r, p) in got.iter().zip(paths) {
            match (r, nar_sha256(p)) {
                (Ok(a), Ok(b)) => assert_eq!(*a, b, "{p:?}"),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{p:?}"),
                (a, b) => panic!("{p:?}: parallel {a:?}, single {b:?}"),
            }
        }
    }

    #[test]
    fn equals_the_single_stream_hash_in_input_order() {
        let dir = tempfile::tempdir().unwrap();
        let paths = sample(dir.path());
        assert_same(&nar_sha256_all(&paths), &paths);
        for workers in [1, 2, 3, 8, 100] {
            assert_same(&hash_all(&paths, &[], workers), &paths);
        }
    }

    #[test]
    fn size_hints_change_only_the_order_of_work() {
        let dir = tempfile::tempdir().unwrap();
        let paths = sample(dir.path());
        let ascending: Vec<u64> = (0..paths.len() as u64).collect();
        let wrong = [u64::MAX, 0, 5];
        for hints in [&ascending[..], &wrong[..], &[]] {
            assert_same(&nar_sha256_all_sized(&paths, hints), &paths);
            assert_same(&hash_all(&paths, hints, 4), &paths);
        }
    }

    #[test]
    fn each_failure_stays_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        fs::write(&good, b"fine").unwrap();
        let paths = [dir.path().join("gone-1"), good.clone(), dir.path().join("gone-2"), good.clone()];
        let got = hash_all(&paths, &[], 3);
        let failed_at = |i: usize| match &got[i] {
            Err(Error::Io { path, .. }) => path.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(failed_at(0), paths[0]);
        assert_eq!(failed_at(2), paths[2]);
        let want = nar_sha256(&good).unwrap();
        assert_eq!(got[1].as_ref().unwrap(), &want);
        assert_eq!(got[3].as_ref().unwrap(), &want);
    }

    #[test]
    fn no_paths_no_results() {
        assert!(nar_sha256_all::<PathBuf>(&[]).is_empty());
        assert!(hash_all::<&Path>(&[], &[], 4).is_empty());
    }
}
