//! `nucleus verify`: does a bundle still say what its record says, does its
//! root filesystem hold only what the config needs, and do its store paths
//! still hold the bytes Nix registered?

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, SFlag};

use super::layout::{BundleLayout, ROOTFS_DIR, SECRETS_DIR, STAGING_DIR, STORE_VIEW_DIR};
use super::{Bundle, SafeDir};
use crate::host::open::{first_symlink, open_no_symlinks};
use crate::nix::closure::Closure;
use crate::nix::command::{nix, stdout_of, Deadline};
use crate::nix::hash::NarHash;
use crate::nix::nar::nar_sha256_all;
use crate::nix::store_path::STORE_DIR;
use crate::nix::StorePath;
use crate::{Error, Result};

/// Every difference found, in words; empty when the bundle checks out.
pub fn verify(bundle: &Bundle, deep: bool) -> Result<Vec<String>> {
    let mut differences = Vec::new();
    let recomputed = bundle.recompute_digest()?;
    if recomputed != bundle.record.digest {
        differences.push(format!(
            "config.json or the record changed: the digest is {recomputed}, recorded {}",
            bundle.record.digest
        ));
    }
    differences.extend(check_root(bundle));
    differences.extend(check_rootfs(bundle));
    differences.extend(check_sources(bundle));
    let Some(entries) = &bundle.record.closure else { return Ok(differences) };
    let mut recorded: Vec<(StorePath, NarHash)> = Vec::new();
    for entry in entries {
        match (StorePath::parse(&entry.path), NarHash::parse(&entry.nar_hash)) {
            (Ok(path), Ok(hash)) => recorded.push((path, hash)),
            _ => differences.push(format!("{}: the record's entry is unreadable", entry.path)),
        }
    }
    let paths: Vec<&StorePath> = recorded.iter().map(|(p, _)| p).collect();
    let registered = crate::interrupt::ending_nix_at_a_stop(|deadline| registered_hashes(&paths, deadline))?;
    for (path, recorded_hash) in &recorded {
        match registered.get(path) {
            None => differences.push(format!("{path}: not valid in the Nix store")),
            Some(nix_hash) if nix_hash != recorded_hash => {
                differences.push(format!("{path}: Nix records {nix_hash}, the bundle {recorded_hash}"))
            }
            Some(_) => {}
        }
    }
    if deep {
        let paths: Vec<PathBuf> = recorded.iter().map(|(p, _)| p.as_path().to_path_buf()).collect();
        for ((path, recorded_hash), actual) in recorded.iter().zip(nar_sha256_all(&paths)) {
            match actual {
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

/// nucleus writes the root as `rootfs` inside the bundle; anything else
/// makes the checks of `rootfs` below beside the point.
fn check_root(bundle: &Bundle) -> Option<String> {
    let root = bundle.config["root"]["path"].as_str();
    (root != Some(ROOTFS_DIR)).then(|| {
        format!("config.json's root is {root:?}, not the bundle's own {ROOTFS_DIR}", root = root.unwrap_or(""))
    })
}

/// Mount sources, as they are on disk now. The digest hashes a source by
/// name; what runsc mounts is whatever that name leads to when it starts,
/// symlinks followed. So:
/// - a bind source outside the bundle must be reached without a symlink
///   (runc's CVE-2021-30465 is a swapped one);
/// - a source inside the bundle exists only in bundles `nucleus run`
///   prepared (the store view, staged volumes and context, secrets), where
///   nucleus mounts the real thing at run time: on disk it must be an empty
///   mountpoint reached without a symlink, at one of those names, in a
///   bundle that is where its record says. Otherwise a symlink or a filled
///   directory there would show something else under the recorded digest.
fn check_sources(bundle: &Bundle) -> Vec<String> {
    let recorded = &bundle.record.bundle_dir;
    let here = crate::policy::normalise_lexically(bundle.layout.dir());
    let mut differences = Vec::new();
    for mount in bundle.config["mounts"].as_array().into_iter().flatten() {
        let Some(source) = mount["source"].as_str().map(Path::new).filter(|s| s.is_absolute()) else { continue };
        let destination = mount["destination"].as_str().unwrap_or("");
        if let Ok(rest) = source.strip_prefix(recorded) {
            if crate::policy::normalise_lexically(recorded) != here {
                differences.push(format!(
                    "the mount at {destination} comes from {}, inside {} where the record says the bundle was \
                     written, but the bundle is at {}",
                    source.display(),
                    recorded.display(),
                    here.display()
                ));
            } else if !is_run_mountpoint(rest) {
                differences.push(format!(
                    "the mount at {destination} comes from {} inside the bundle, which is not a place nucleus mounts \
                     anything from",
                    source.display()
                ));
            } else if let Some(problem) = not_an_empty_mountpoint(source) {
                differences
                    .push(format!("the mount at {destination} comes from {}, which {problem}", source.display()));
            }
            continue;
        }
        let bind = mount["options"].as_array().is_some_and(|o| o.iter().any(|o| o == "bind" || o == "rbind"))
            || mount["type"] == "bind";
        if !bind {
            continue;
        }
        if let Err(e) = open_no_symlinks(source, OFlag::O_PATH) {
            if e.raw_os_error() == Some(libc::ELOOP) {
                let link = first_symlink(source).unwrap_or_else(|| source.to_path_buf());
                differences.push(format!(
                    "the mount at {destination} comes from {}, which passes through the symlink {}: a runtime \
                     would follow it",
                    source.display(),
                    link.display()
                ));
            }
        }
    }
    differences
}

/// `store-view`, `staging/volume-N`, `staging/context` or `secrets/N`.
fn is_run_mountpoint(rest: &Path) -> bool {
    let rest = rest.to_str().unwrap_or("");
    let numbered = |prefix: &str| {
        rest.strip_prefix(prefix).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    rest == STORE_VIEW_DIR
        || rest == BundleLayout::context_staging()
        || numbered(&format!("{STAGING_DIR}/volume-"))
        || numbered(&format!("{SECRETS_DIR}/"))
}

/// What is wrong with `path` as a mountpoint on disk, if anything: it may
/// be missing (a secret's, whose tmpfs is gone), an empty directory or an
/// empty file, reached without a symlink.
fn not_an_empty_mountpoint(path: &Path) -> Option<String> {
    let fd = match open_no_symlinks(path, OFlag::O_PATH) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return None,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Some("is or passes through a symlink".into()),
        Err(e) => return Some(format!("cannot be opened: {e}")),
    };
    let stat = match nix::sys::stat::fstat(&fd) {
        Ok(stat) => stat,
        Err(e) => return Some(format!("cannot be examined: {e}")),
    };
    match SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT {
        SFlag::S_IFREG if stat.st_size == 0 => None,
        SFlag::S_IFREG => Some("is a file with contents, not an empty mountpoint".into()),
        SFlag::S_IFDIR => match SafeDir::open(path).and_then(|d| d.entries()) {
            Ok(names) if names.is_empty() => None,
            Ok(_) => Some("is a directory with contents, not an empty mountpoint".into()),
            Err(e) => Some(format!("cannot be listed: {e}")),
        },
        _ => Some("is neither a directory nor a file".into()),
    }
}

/// The root filesystem must be a real directory holding exactly the
/// mountpoints and links the config needs: anything else there (a symlink
/// to `/` in place of a mountpoint, say) would change what the sandbox sees
/// without changing config.json.
fn check_rootfs(bundle: &Bundle) -> Vec<String> {
    let rootfs_path = bundle.layout.rootfs();
    let rootfs = match bundle.layout.dir().join(ROOTFS_DIR).symlink_metadata() {
        Ok(meta) if meta.is_dir() => match SafeDir::open(&rootfs_path) {
            Ok(dir) => dir,
            Err(e) => return vec![format!("rootfs cannot be opened: {e}")],
        },
        Ok(_) => return vec!["rootfs is not a real directory (a symlink or a file stands in its place)".into()],
        Err(e) => return vec![format!("rootfs: {e}")],
    };
    let expected = expected_rootfs(&bundle.config, bundle.record.closure.as_deref().unwrap_or_default());
    let mut differences = Vec::new();
    let mut seen = BTreeSet::new();
    walk(&rootfs, Path::new("/"), &expected, &mut seen, &mut differences);
    for (path, what) in &expected {
        if !seen.contains(path) {
            differences.push(format!("rootfs{} is missing (expected {})", path.display(), what.describe()));
        }
    }
    differences
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Expected {
    Directory,
    /// A mountpoint: a directory or an empty file.
    Mountpoint,
    Symlink(PathBuf),
}

impl Expected {
    fn describe(&self) -> String {
        match self {
            Expected::Directory => "a directory".into(),
            Expected::Mountpoint => "a mountpoint".into(),
            Expected::Symlink(target) => format!("a symlink to {}", target.display()),
        }
    }
}

/// What rootfs must hold, by absolute path inside the sandbox.
fn expected_rootfs(config: &Value, closure: &[super::ClosureEntry]) -> BTreeMap<PathBuf, Expected> {
    let mut expected = BTreeMap::new();
    let add_dirs = |path: &Path, expected: &mut BTreeMap<PathBuf, Expected>| {
        for ancestor in path.ancestors().skip(1).filter(|a| *a != Path::new("/")) {
            expected.entry(ancestor.to_path_buf()).or_insert(Expected::Directory);
        }
    };
    let destinations: Vec<PathBuf> = config["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["destination"].as_str().map(PathBuf::from))
        .collect();
    for destination in &destinations {
        add_dirs(destination, &mut expected);
        expected.insert(destination.clone(), Expected::Mountpoint);
    }
    if let Some(cwd) = config["process"]["cwd"].as_str().map(PathBuf::from) {
        if !destinations.iter().any(|d| cwd.starts_with(d)) && cwd != Path::new("/") {
            add_dirs(&cwd, &mut expected);
            expected.entry(cwd).or_insert(Expected::Directory);
        }
    }
    let whole_store_mounted = destinations.iter().any(|d| d == Path::new(STORE_DIR));
    if !whole_store_mounted {
        for entry in closure {
            let path = PathBuf::from(&entry.path);
            if destinations.contains(&path) {
                continue;
            }
            if let Ok(target) = std::fs::read_link(&path) {
                add_dirs(&path, &mut expected);
                expected.insert(path, Expected::Symlink(target));
            }
        }
    }
    expected
}

fn walk(
    dir: &SafeDir,
    at: &Path,
    expected: &BTreeMap<PathBuf, Expected>,
    seen: &mut BTreeSet<PathBuf>,
    out: &mut Vec<String>,
) {
    let names = match dir.entries() {
        Ok(names) => names,
        Err(e) => return out.push(format!("rootfs{} cannot be listed: {e}", at.display())),
    };
    for name in names {
        let path = at.join(&name);
        let Ok(kind) = dir.kind_of(&name) else { continue };
        let want = expected.get(&path);
        let ok = match (want, kind) {
            (Some(Expected::Directory | Expected::Mountpoint), nix::sys::stat::SFlag::S_IFDIR) => true,
            // By its size: reading a file a hostile bundle planted could
            // take all memory.
            (Some(Expected::Mountpoint), SFlag::S_IFREG) => {
                fstatat(dir.fd(), name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW).is_ok_and(|s| s.st_size == 0)
            }
            (Some(Expected::Symlink(target)), nix::sys::stat::SFlag::S_IFLNK) => {
                nix::fcntl::readlinkat(dir.fd(), name.as_str()).is_ok_and(|t| Path::new(&t) == target)
            }
            _ => false,
        };
        if !ok {
            let what = want.map_or("nothing".to_string(), Expected::describe);
            out.push(format!("rootfs{} is unexpected (expected {what} there)", path.display()));
            continue;
        }
        seen.insert(path.clone());
        if kind == nix::sys::stat::SFlag::S_IFDIR {
            match dir.open_subdir(&name) {
                Ok(child) => walk(&child, &path, expected, seen, out),
                Err(e) => out.push(format!("rootfs{} cannot be opened: {e}", path.display())),
            }
        }
    }
}

/// Nix's registered narHash for each path that is still valid, in one call.
/// A path Nix calls not valid is left out (verify reports it); a Nix that
/// cannot answer, or a stop, is an error, never a verdict on the bundle.
fn registered_hashes(paths: &[&StorePath], deadline: &Deadline) -> Result<BTreeMap<StorePath, NarHash>> {
    let valid: Vec<&StorePath> = paths.iter().copied().filter(|p| p.as_path().symlink_metadata().is_ok()).collect();
    let Some(first) = valid.first() else { return Ok(BTreeMap::new()) };
    let mut cmd: Command = nix();
    cmd.args(["path-info", "--offline", "--json"]).args(valid.iter().map(|p| p.as_str()));
    let json = match stdout_of(cmd, deadline) {
        Ok(json) => json,
        // An invalid path makes path-info fail as a whole; one query per
        // path then finds which, and still checks the others.
        Err(e) if names_an_invalid_path(&e) && valid.len() > 1 => {
            let mut all = BTreeMap::new();
            for path in valid {
                all.extend(registered_hashes(&[path], deadline)?);
            }
            return Ok(all);
        }
        Err(e) if names_an_invalid_path(&e) => return Ok(BTreeMap::new()),
        Err(e) => return Err(e),
    };
    let closure = Closure::from_path_info_json((*first).clone(), &json)?;
    Ok(closure.paths.into_iter().map(|p| (p.path, p.nar_hash)).collect())
}

/// Whether Nix failed because a path it was asked about is not valid
/// (`path '/nix/store/…' is not valid`), rather than for another reason.
fn names_an_invalid_path(e: &Error) -> bool {
    matches!(e, Error::NixCommand { reason, .. } if reason.contains("is not valid"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expected_rootfs_holds_mountpoints_their_parents_and_the_workdir() {
        let config = json!({
            "mounts": [{"destination": "/proc"}, {"destination": "/data/sub"}, {"destination": "/run/secrets/t"}],
            "process": {"cwd": "/work/dir"}
        });
        let expected = expected_rootfs(&config, &[]);
        let get = |p: &str| expected.get(Path::new(p)).cloned();
        assert_eq!(get("/proc"), Some(Expected::Mountpoint));
        assert_eq!(get("/data"), Some(Expected::Directory));
        assert_eq!(get("/run/secrets"), Some(Expected::Directory));
        assert_eq!(get("/work/dir"), Some(Expected::Directory));
        assert_eq!(get("/"), None);
        assert_eq!(expected.len(), 8);
    }
}
