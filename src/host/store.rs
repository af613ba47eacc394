//! Resolving a path inside the Nix store as a process that sees only part
//! of the store would: symlinks are followed one component at a time, an
//! absolute target must stay inside `/nix/store`, `..` may not climb out of
//! it, and every store path entered on the way must be one of those
//! allowed (the closure, say). The result is the canonical path and an open
//! descriptor of what it names.
//!
//! This is how a hook's program is found (it must not leave the store) and
//! how the top level's `/bin`, `/etc`, … are found (they must not leave the
//! closure): a closure built by someone else may hold symlinks to anywhere,
//! and the host's own resolution would follow them there.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{openat, readlinkat, OFlag};
use nix::sys::stat::{fstat, Mode, SFlag};

use super::open::open_no_symlinks;
use crate::nix::store_path::{StorePath, STORE_DIR};

/// Linux's own limit on symlinks followed in one resolution.
const MAX_SYMLINKS: usize = 40;

/// What a store-confined resolution found.
#[derive(Debug)]
pub struct FoundInStore {
    /// Canonical: no symlink in any component.
    pub path: PathBuf,
    /// An `O_PATH` descriptor of it.
    pub fd: OwnedFd,
    pub kind: SFlag,
    /// The store path it lies in.
    pub owner: StorePath,
}

/// Resolves `path`, which must start with `/nix/store/`, entering only
/// store paths for which `allowed` holds. The error says why in words.
pub fn resolve_in_store(path: &Path, allowed: &dyn Fn(&StorePath) -> bool) -> Result<FoundInStore, String> {
    let store = Path::new(STORE_DIR);
    let found = resolve_below(store, path, &|name: &str| {
        StorePath::parse(&format!("{STORE_DIR}/{name}")).is_ok_and(|p| allowed(&p))
    })?;
    let owner =
        StorePath::containing(&found.path).ok_or_else(|| format!("{} names the store itself", path.display()))?;
    Ok(FoundInStore { path: found.path, fd: found.fd, kind: found.kind, owner })
}

/// What [`resolve_below`] found.
struct Found {
    path: PathBuf,
    fd: OwnedFd,
    kind: SFlag,
}

/// The resolution itself, below any `root` standing for the store;
/// `allowed` judges each top-level entry entered, by name.
fn resolve_below(store: &Path, path: &Path, allowed: &dyn Fn(&str) -> bool) -> Result<Found, String> {
    let rest = path.strip_prefix(store).map_err(|_| format!("{} is not inside {}", path.display(), store.display()))?;
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
    let store_fd = open_no_symlinks(store, dir_flags).map_err(|e| format!("cannot open {}: {e}", store.display()))?;
    let mut queue: VecDeque<OsString> = components(rest, path)?;
    // The canonical components below the store directory so far, and a
    // descriptor of the directory they name.
    let mut walked: Vec<OsString> = Vec::new();
    let mut dir: Option<OwnedFd> = None;
    let mut last: Option<(OwnedFd, SFlag)> = None;
    let mut links = 0;
    while let Some(name) = queue.pop_front() {
        // The mark of a trailing `/` (see `components`): whatever came
        // before it was a directory, or the step before refused it.
        if name == "." {
            continue;
        }
        if name == ".." {
            if walked.pop().is_none() {
                return Err(format!("{} climbs out of {}", path.display(), store.display()));
            }
            dir = reopen(&store_fd, &walked)?;
            last = None;
            continue;
        }
        let parent = dir.as_ref().unwrap_or(&store_fd);
        let fd = openat(parent, name.as_os_str(), OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| format!("{}: {e}", display(store, &walked, &name)))?;
        let kind = SFlag::from_bits_truncate(fstat(&fd).map_err(|e| e.to_string())?.st_mode) & SFlag::S_IFMT;
        if walked.is_empty() && !allowed(&name.to_string_lossy()) {
            return Err(format!("it leads into {}, which is not allowed here", display(store, &walked, &name)));
        }
        if kind == SFlag::S_IFLNK {
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(format!("more than {MAX_SYMLINKS} symlinks while resolving {}", path.display()));
            }
            let target = readlinkat(parent, name.as_os_str()).map_err(|e| e.to_string())?;
            let target = PathBuf::from(std::ffi::OsStr::from_bytes(target.as_bytes()));
            let mut next = if target.is_absolute() {
                let inside = target.strip_prefix(store).map_err(|_| {
                    format!(
                        "{} points to {}, outside {}",
                        display(store, &walked, &name),
                        target.display(),
                        store.display()
                    )
                })?;
                walked.clear();
                dir = None;
                components(inside, &target)?
            } else {
                components(&target, &target)?
            };
            next.extend(queue.drain(..));
            queue = next;
            last = None;
            continue;
        }
        walked.push(name);
        if kind == SFlag::S_IFDIR {
            dir = Some(fd.try_clone().map_err(|e| e.to_string())?);
        } else if !queue.is_empty() {
            return Err(format!("{} is not a directory", display(store, &walked, &OsString::new())));
        }
        last = Some((fd, kind));
    }
    let (fd, kind) = match last {
        Some(found) => found,
        None => {
            let fd = reopen(&store_fd, &walked)?.ok_or_else(|| format!("{} names the store itself", path.display()))?;
            (fd, SFlag::S_IFDIR)
        }
    };
    if walked.is_empty() {
        return Err(format!("{} names the store itself", path.display()));
    }
    let mut canonical = store.to_path_buf();
    canonical.extend(&walked);
    Ok(Found { path: canonical, fd, kind })
}

/// The names to walk in `path`, a part of `whole` that ends where it ends.
/// `Path::components` (and `strip_prefix`) forget a trailing `/` or `/.`,
/// which to the kernel means that what it follows must be a directory
/// (`bin/sh/` is not the file `bin/sh`): it is kept as a last `.`, so that a
/// file before it has a name after it and is refused as not a directory.
fn components(path: &Path, whole: &Path) -> Result<VecDeque<OsString>, String> {
    let mut out = VecDeque::new();
    for c in path.components() {
        match c {
            Component::Normal(name) => out.push_back(name.to_os_string()),
            Component::ParentDir => out.push_back(OsString::from("..")),
            Component::CurDir | Component::RootDir => {}
            Component::Prefix(_) => return Err("unexpected path prefix".into()),
        }
    }
    let bytes = whole.as_os_str().as_bytes();
    if bytes.ends_with(b"/") || bytes.ends_with(b"/.") {
        out.push_back(OsString::from("."));
    }
    Ok(out)
}

/// Opens the directory `walked` names below the store (no symlinks in it).
fn reopen(store_fd: &OwnedFd, walked: &[OsString]) -> Result<Option<OwnedFd>, String> {
    let mut dir: Option<OwnedFd> = None;
    for name in walked {
        let parent = dir.as_ref().unwrap_or(store_fd);
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        dir = Some(openat(parent, name.as_os_str(), flags, Mode::empty()).map_err(|e| e.to_string())?);
    }
    Ok(dir)
}

fn display(store: &Path, walked: &[OsString], name: &OsString) -> String {
    let mut p = store.to_path_buf();
    p.extend(walked);
    if !name.is_empty() {
        p.push(name);
    }
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A stand-in store with entries `a`, `b`, `evil`; `allowed` takes `a`, `b`.
    fn store() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let s = tmp.path().canonicalize().unwrap().join("store");
        std::fs::create_dir_all(s.join("a/bin")).unwrap();
        std::fs::create_dir_all(s.join("b/lib")).unwrap();
        std::fs::create_dir_all(s.join("evil")).unwrap();
        std::fs::write(s.join("b/lib/real"), "x").unwrap();
        symlink(s.join("b/lib/real"), s.join("a/bin/abs")).unwrap();
        symlink("../../b/lib/real", s.join("a/bin/rel")).unwrap();
        symlink("/etc/passwd", s.join("a/bin/host")).unwrap();
        symlink(s.join("evil"), s.join("a/bin/evil")).unwrap();
        symlink("../../..", s.join("a/bin/up")).unwrap();
        symlink("loop", s.join("a/bin/loop")).unwrap();
        symlink("../../b/lib/real/", s.join("a/bin/slash")).unwrap();
        symlink("../../b/lib/", s.join("a/bin/dir")).unwrap();
        (tmp, s)
    }

    fn resolve(s: &Path, rel: &str) -> Result<Found, String> {
        resolve_below(s, &s.join(rel), &|name| name == "a" || name == "b")
    }

    #[test]
    fn follows_links_that_stay_inside_what_is_allowed() {
        let (_tmp, s) = store();
        for rel in ["a/bin/abs", "a/bin/rel", "b/lib/real", "a/bin/../../b/lib/real"] {
            let found = resolve(&s, rel).unwrap_or_else(|e| panic!("{rel}: {e}"));
            assert_eq!(found.path, s.join("b/lib/real"), "{rel}");
            assert_eq!(found.kind, SFlag::S_IFREG);
        }
        assert_eq!(resolve(&s, "a/bin").unwrap().kind, SFlag::S_IFDIR);
        for rel in ["a/bin/", "a/bin/.", "a/bin/dir", "a/bin/dir/", "a/bin/dir/."] {
            let found = resolve(&s, rel).unwrap_or_else(|e| panic!("{rel}: {e}"));
            assert_eq!(found.kind, SFlag::S_IFDIR, "{rel}");
        }
        assert_eq!(resolve(&s, "a/bin/dir/real").unwrap().path, s.join("b/lib/real"));
    }

    /// A trailing `/` asks for a directory, as it does of the kernel
    /// (found by fuzz/fuzz_targets/hooks_json.rs: `bin/sh/` resolved to the
    /// file `bin/sh`, which the host's own resolution refuses).
    #[test]
    fn a_trailing_slash_needs_a_directory() {
        let (_tmp, s) = store();
        for rel in ["b/lib/real/", "b/lib/real/.", "b/lib/real/..", "a/bin/abs/", "a/bin/rel/", "a/bin/slash"] {
            assert!(resolve(&s, rel).is_err(), "{rel}");
            assert!(std::fs::canonicalize(s.join(rel)).is_err(), "{rel}: the kernel agrees");
        }
    }

    #[test]
    fn refuses_links_out_of_the_store_or_into_other_paths() {
        let (_tmp, s) = store();
        for rel in ["a/bin/host", "a/bin/evil", "a/bin/up/etc", "a/bin/loop", "evil", "a/../..", "a/bin/rel/x"] {
            assert!(resolve(&s, rel).is_err(), "{rel}");
        }
    }
}
