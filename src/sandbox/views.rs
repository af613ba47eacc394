//! Store views kept between runs, so that a large closure's view costs one
//! copy in the kernel instead of a mount per store path.
//!
//! A store view costs a mount per store path, about 11 µs each here: 33 ms
//! for 3000 paths, a quarter of a whole run. So the view of a closure of at
//! least [`WORTH_KEEPING`] paths is made once, in a mount namespace of its
//! own whose root is the view itself (no mount of the host is in it, so it
//! pins nothing but the store paths it shows), and that namespace is kept
//! by binding its nsfs file into the state root. Each later run clones the
//! view's tree into its own namespace (`open_tree(OPEN_TREE_CLONE |
//! AT_RECURSIVE)`: one copy in the kernel, about 4 ms for 3000 paths) and
//! moves it onto the bundle's `store-view`.
//!
//! ```text
//! STATE/.cache/views/           a small private tmpfs (a mount namespace file may only be
//!                               bound where mounts do not propagate)
//! STATE/.cache/views/KEY        a kept view: its mount namespace, bound on an empty file
//! STATE/.cache/views/KEY.used   the digest of its paths' names; its mtime is the last use
//! STATE/.cache/views.lock       held while views are looked up, made or removed, and while
//!                               the tmpfs is mounted or taken away (so it is not in it)
//! ```
//!
//! KEY is a digest of every store path's name, kind and [`Fingerprint`]. A
//! view is used only for exactly the closure it shows, and only while each
//! of its paths is still the directory entry it bound: a path the garbage
//! collector deleted (and Nix built again) has a new fingerprint, so its
//! closures have a new key and get a new view. The old one still pins the
//! deleted files, so it is removed as soon as a view of the same names
//! replaces it; any view is removed after [`IDLE`] without use, beyond the
//! [`MAX_VIEWS`] most recently used, or by [`remove_all`] (for a `gc` command).
//!
//! These are the only mounts nucleus leaves in the host's mount table, all
//! under the state root's `.cache`. They need the mount namespace nucleus
//! started in, as root: with `--rootless` every run makes its own view.

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use nix::fcntl::{open, Flock, FlockArg, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::Mode;
use rustix::mount::{move_mount, open_tree, MoveMountFlags, OpenTreeFlags};
use sha2::{Digest, Sha256};

use crate::bundle::layout::STORE_VIEW_DIR;
use crate::host::open::fd_proc_path;
use crate::rootfs::{Fingerprint, StoreEntry, StoreEntryKind};
use crate::state::layout::BUNDLE_DIR;
use crate::{Error, Result};

/// Closures with fewer paths make their view on each run: below this, the
/// view costs under 3 ms to make, and keeping it would cost host mounts.
pub const WORTH_KEEPING: usize = 256;

/// At most this many views are kept (each holds a mount per store path).
pub const MAX_VIEWS: usize = 4;

/// A view unused for this long is removed by the next run in the state
/// root (or by `nucleus gc`).
pub const IDLE: Duration = Duration::from_secs(15 * 60);

/// Below the state root.
pub const VIEWS_DIR: &str = ".cache/views";

/// Beside the views directory, not in its tmpfs: `gc` removes the tmpfs
/// under this lock, which a lock inside it would not survive.
const LOCK_FILE: &str = "views.lock";
/// Mounts taken off a view's file at most, when others were stacked on it.
const MAX_STACKED: usize = 1024;
const USED_SUFFIX: &str = ".used";

/// The mount namespace nucleus started in, where kept views are bound.
static ORIGINAL: OnceLock<OwnedFd> = OnceLock::new();

/// Remembers the mount namespace this process is in, before it leaves it
/// for a private one. Only in the initial user namespace: from any other,
/// the original namespace cannot be entered again.
pub fn remember_original_namespace() {
    if ORIGINAL.get().is_some() || !in_initial_user_namespace() {
        return;
    }
    if let Ok(fd) = open("/proc/self/ns/mnt", OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()) {
        let _ = ORIGINAL.set(fd);
    }
}

/// The initial user namespace maps every id to itself.
fn in_initial_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|map| map.split_whitespace().eq(["0", "0", "4294967295"]))
}

/// Mounts the kept view of `entries` on `view` (the empty `store-view`
/// directory of a container's bundle), making and keeping it first, with
/// `fill`, if there is none. `Ok(false)` when no view is kept for this run
/// (a small closure, `--rootless`, a kernel without `open_tree`, or keeping
/// failed, which is logged): then the caller makes the view itself. An
/// error means this process could not come back to its own mount
/// namespace, and the run cannot go on.
pub fn attach(view: &Path, entries: &[StoreEntry], fill: &dyn Fn(&Path) -> Result<()>) -> Result<bool> {
    let (Some(original), Some(dir)) = (ORIGINAL.get(), views_dir(view)) else { return Ok(false) };
    let home = match Home::here() {
        Ok(home) => home,
        Err(e) => {
            tracing::info!("no kept store view: {e}");
            return Ok(false);
        }
    };
    if entries.len() < WORTH_KEEPING {
        // Keeping no view, but taking away the idle ones, if there are any.
        if kept(&dir).iter().any(Kept::idle) {
            if let Err(e) = home.visit(|| prune(&dir, original))? {
                tracing::info!("idle store views not removed: {e}");
            }
        }
        return Ok(false);
    }
    let key = digest(entries, true);
    let attached = home.visit(|| {
        let tree = find_or_make(&dir, &key, view, entries, fill, original, &home)?;
        mount_tree(&tree, view, &home)
    })?;
    match attached {
        Ok(()) => {
            tracing::info!(paths = entries.len(), key = %key, "store view from a kept view");
            Ok(true)
        }
        Err(e) => {
            tracing::info!("no kept store view: {e}");
            Ok(false)
        }
    }
}

/// The views directory of the state root `view` is in:
/// `STATE/NAME/bundle/store-view` → `STATE/.cache/views`.
fn views_dir(view: &Path) -> Option<PathBuf> {
    let bundle = view.parent()?;
    if view.file_name()? != STORE_VIEW_DIR || bundle.file_name()? != BUNDLE_DIR {
        return None;
    }
    Some(bundle.parent()?.parent()?.join(VIEWS_DIR))
}

/// A digest of the entries' names, and (`with_identity`) of their kinds and
/// fingerprints: the key of a view, or what views of the same paths share.
fn digest(entries: &[StoreEntry], with_identity: bool) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"nucleus store view 1\0");
    for entry in entries {
        hasher.update(entry.path.base_name().as_bytes());
        hasher.update([0]);
        if !with_identity {
            continue;
        }
        match &entry.kind {
            StoreEntryKind::Directory => hasher.update(b"d"),
            StoreEntryKind::File => hasher.update(b"f"),
            StoreEntryKind::Symlink(target) => {
                hasher.update(b"l");
                hasher.update(target.as_os_str().as_bytes());
            }
        }
        hasher.update([0]);
        let Fingerprint(fields) = entry.fingerprint;
        for field in fields {
            hasher.update(field.to_le_bytes());
        }
    }
    crate::policy::hex(&hasher.finalize())
}

/// The kept view at `file`, if that is a mount namespace's file.
fn open_view(file: &Path) -> Option<OwnedFd> {
    let fd = open(file, OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW, Mode::empty()).ok()?;
    let is_namespace =
        nix::sys::statfs::fstatfs(&fd).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC);
    is_namespace.then_some(fd)
}

/// A copy of the kept view `held` (its whole tree, detached), taken while
/// in its namespace, if its root lists exactly the names of `entries`: a
/// namespace file swapped under the views directory (another closure's
/// view, a namespace of the host's) is not believed. Entered from, and
/// left for, `original`.
fn copy_if_exact(held: &OwnedFd, entries: &[StoreEntry], original: &OwnedFd) -> Result<Option<OwnedFd>> {
    enter(held, "a kept store view")?;
    let listed: Option<Vec<String>> = std::fs::read_dir("/").ok().map(|listing| {
        let mut names: Vec<String> = listing.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        names.sort_unstable();
        names
    });
    let mut expected: Vec<&str> = entries.iter().map(|e| e.path.base_name()).collect();
    expected.sort_unstable();
    let exact = listed.is_some_and(|names| names.iter().map(String::as_str).eq(expected.iter().copied()));
    let copy = if exact { Some(copy_root()?) } else { None };
    enter(original, "the original mount namespace")?;
    Ok(copy)
}

/// The current namespace's root, its whole tree, as a detached copy that
/// can be mounted in another namespace.
fn copy_root() -> Result<OwnedFd> {
    let root = open("/", OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| Error::setup("open a kept store view", e))?;
    let flags = OpenTreeFlags::OPEN_TREE_CLONE
        | OpenTreeFlags::OPEN_TREE_CLOEXEC
        | OpenTreeFlags::AT_RECURSIVE
        | OpenTreeFlags::AT_EMPTY_PATH;
    open_tree(&root, "", flags).map_err(|e| Error::setup("copy a kept store view", e))
}

/// What `setns` moves: this process's mount namespace and working
/// directory, to come back to from another namespace.
struct Home {
    namespace: OwnedFd,
    cwd: OwnedFd,
}

impl Home {
    fn here() -> Result<Self> {
        let namespace = open("/proc/self/ns/mnt", OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| Error::setup("open the run's mount namespace", e))?;
        let cwd = open(".", OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| Error::setup("open the working directory", e))?;
        Ok(Home { namespace, cwd })
    }

    /// Runs `f`, which may enter other mount namespaces, and comes back:
    /// `f`'s result, or an error if this process could not come back.
    fn visit<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<Result<T>> {
        let result = f();
        let step = "return to the run's own mount namespace";
        setns(&self.namespace, CloneFlags::CLONE_NEWNS).map_err(|e| Error::setup(step, e))?;
        nix::unistd::fchdir(&self.cwd).map_err(|e| Error::setup(step, e))?;
        Ok(result)
    }
}

fn enter(namespace: &OwnedFd, which: &str) -> Result<()> {
    setns(namespace, CloneFlags::CLONE_NEWNS).map_err(|e| Error::setup(format!("enter {which}"), e))
}

/// Mounts `tree` (a kept view's copy) on `view`, in the run's namespace.
fn mount_tree(tree: &OwnedFd, view: &Path, home: &Home) -> Result<()> {
    enter(&home.namespace, "the run's mount namespace")?;
    let target = open(view, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| Error::setup(format!("open {}", view.display()), e))?;
    move_mount(tree, "", &target, "", MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH)
        .map_err(|e| Error::setup(format!("mount a kept store view on {}", view.display()), e))
}

/// A copy of the kept view of `entries` (see [`copy_if_exact`]), made now
/// with `fill` (on `view`) if there is none yet. Kept views live in the
/// original mount namespace (a namespace file's bind is never copied into
/// another), so they are looked up there, under the lock, and the idle
/// ones are pruned at the same time.
fn find_or_make(
    dir: &Path,
    key: &str,
    view: &Path,
    entries: &[StoreEntry],
    fill: &dyn Fn(&Path) -> Result<()>,
    original: &OwnedFd,
    home: &Home,
) -> Result<OwnedFd> {
    enter(original, "the original mount namespace")?;
    let _lock = lock(dir)?;
    prepare_dir(dir)?;
    if let Some(held) = open_view(&dir.join(key)) {
        if let Some(copy) = copy_if_exact(&held, entries, original)? {
            touch(&dir.join(format!("{key}{USED_SUFFIX}")));
            remove_stale(dir, None)?;
            return Ok(copy);
        }
        tracing::warn!(key = %key, "a kept store view does not show its closure; making it again");
        remove_view(dir, key);
    }
    remove_stale(dir, Some(&digest(entries, false)))?;
    // A namespace of its own, holding the view and nothing else, made from
    // the run's (private) namespace.
    enter(&home.namespace, "the run's mount namespace")?;
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| Error::setup("create a namespace for a store view", e))?;
    fill(view)?;
    let held = open("/proc/self/ns/mnt", OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| Error::setup("open a store view's namespace", e))?;
    let step = |what: &str| format!("make the store view the root of its namespace ({what})");
    nix::unistd::chdir(view).map_err(|e| Error::setup(step("chdir"), e))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| Error::setup(step("pivot_root"), e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| Error::setup(step("detach the old root"), e))?;
    let copy = copy_root()?;
    // Kept by a bind of its namespace file, in the original namespace.
    enter(original, "the original mount namespace")?;
    let file = dir.join(key);
    private_file(&file, true).map_err(|e| Error::setup(format!("create {}", file.display()), e))?;
    mount(Some(&fd_proc_path(&held)), &file, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| Error::setup(format!("keep a store view at {}", file.display()), e))?;
    let used = dir.join(format!("{key}{USED_SUFFIX}"));
    let written = private_file(&used, true).and_then(|mut f| f.write_all(digest(entries, false).as_bytes()));
    if let Err(e) = written {
        remove_view(dir, key);
        return Err(Error::setup(format!("write {}", used.display()), e));
    }
    tracing::info!(paths = entries.len(), key = %key, "kept a store view");
    Ok(copy)
}

/// The views directory, a private tmpfs of its own (made in the original
/// namespace, where this process must be).
fn prepare_dir(dir: &Path) -> Result<()> {
    let step = |what: &str| format!("{what} {}", dir.display());
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| Error::setup(step("create"), e))?;
    let parent = dir.parent().unwrap_or(dir);
    let device = |p: &Path| p.symlink_metadata().map(|m| m.dev()).map_err(|e| Error::setup(step("examine"), e));
    if device(dir)? != device(parent)? {
        return Ok(());
    }
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("tmpfs"), dir, Some("tmpfs"), flags, Some("mode=0700,size=1m"))
        .map_err(|e| Error::setup(step("mount a tmpfs on"), e))?;
    mount(None::<&str>, dir, None::<&str>, MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(|e| Error::setup(step("make private"), e))
}

/// A file of the views' own, opened for writing (created 0600 if it is
/// missing, emptied with `truncate`), never through a symlink.
fn private_file(path: &Path, truncate: bool) -> std::io::Result<File> {
    File::options().write(true).create(true).truncate(truncate).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(path)
}

/// Takes the views' lock, beside `dir` (creating the directory it is in).
fn lock(dir: &Path) -> Result<Flock<File>> {
    let parent = dir.parent().unwrap_or(dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)
        .map_err(|e| Error::setup(format!("create {}", parent.display()), e))?;
    let path = parent.join(LOCK_FILE);
    let file = private_file(&path, false).map_err(|e| Error::setup(format!("open {}", path.display()), e))?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| Error::setup(format!("lock {}", path.display()), e))
}

/// In the original namespace, under the lock: removes the views idle too
/// long. (The directory is seen from a run's namespace too, so whether
/// there are any is known without this visit.)
fn prune(dir: &Path, original: &OwnedFd) -> Result<()> {
    enter(original, "the original mount namespace")?;
    let _lock = lock(dir)?;
    remove_stale(dir, None)
}

/// A kept view, as its `.used` file describes it; a view without one (its
/// making was cut short) counts as idle.
struct Kept {
    key: String,
    names: String,
    idle_since: Option<SystemTime>,
}

impl Kept {
    /// Unused for longer than [`IDLE`]; a last use in the future (the
    /// clock went back) counts as idle too, or it would never expire.
    fn idle(&self) -> bool {
        self.idle_since.is_none_or(|t| t.elapsed().map_or(true, |since| since > IDLE))
    }
}

fn kept(dir: &Path) -> Vec<Kept> {
    let Ok(listing) = std::fs::read_dir(dir) else { return Vec::new() };
    listing
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.') && !name.ends_with(USED_SUFFIX))
        .map(|key| {
            let used = dir.join(format!("{key}{USED_SUFFIX}"));
            let names = std::fs::read_to_string(&used).unwrap_or_default();
            let idle_since = used.symlink_metadata().and_then(|m| m.modified()).ok();
            Kept { key, names, idle_since }
        })
        .collect()
}

/// In the original namespace, under the lock: removes the views that hold
/// the same paths as `names` (replaced by a new view of them), those idle
/// too long, and the least recently used beyond [`MAX_VIEWS`] (counting
/// the one about to be made when `names` is given).
fn remove_stale(dir: &Path, names: Option<&str>) -> Result<()> {
    let mut views = kept(dir);
    views.sort_by_key(|v| std::cmp::Reverse(v.idle_since));
    let room = MAX_VIEWS - usize::from(names.is_some());
    for (i, view) in views.iter().enumerate() {
        let replaced = names.is_some_and(|n| n == view.names);
        if replaced || view.idle() || i >= room {
            remove_view(dir, &view.key);
        }
    }
    Ok(())
}

/// Removes one kept view: its namespace's bind (and any mount stacked on
/// it), its file and its `.used`.
fn remove_view(dir: &Path, key: &str) {
    let file = dir.join(key);
    for _ in 0..MAX_STACKED {
        if umount2(&file, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW).is_err() {
            break;
        }
    }
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(dir.join(format!("{key}{USED_SUFFIX}")));
    tracing::info!(key = %key, "removed a kept store view");
}

/// Marks a view used now.
fn touch(used: &Path) {
    if let Ok(file) = File::options().write(true).custom_flags(libc::O_NOFOLLOW).open(used) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// Removes every kept view of the state root `state_root`, and the views
/// directory's tmpfs, as a `gc` command would. Run it in the mount namespace
/// nucleus runs in (the host's). Returns how many views there were.
pub fn remove_all(state_root: &Path) -> Result<usize> {
    let dir = state_root.join(VIEWS_DIR);
    if !dir.exists() {
        return Ok(0);
    }
    let _lock = lock(&dir)?;
    let views = kept(&dir);
    for view in &views {
        remove_view(&dir, &view.key);
    }
    let _ = umount2(&dir, MntFlags::MNT_DETACH);
    std::fs::remove_dir_all(&dir).map_err(|e| Error::io("cannot remove", &dir, e))?;
    Ok(views.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nix::StorePath;

    fn entry(name: &str, kind: StoreEntryKind, inode: i64) -> StoreEntry {
        let path = StorePath::parse(&format!("/nix/store/g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-{name}")).unwrap();
        StoreEntry { path, kind, fingerprint: Fingerprint([1, inode, 3, 4]) }
    }

    #[test]
    fn the_key_changes_with_any_path_and_names_only_with_the_names() {
        let a = vec![entry("a", StoreEntryKind::Directory, 1), entry("b", StoreEntryKind::File, 2)];
        let rebuilt = vec![entry("a", StoreEntryKind::Directory, 9), entry("b", StoreEntryKind::File, 2)];
        let retyped = vec![entry("a", StoreEntryKind::Symlink("b".into()), 1), entry("b", StoreEntryKind::File, 2)];
        let fewer = vec![entry("a", StoreEntryKind::Directory, 1)];
        assert_ne!(digest(&a, true), digest(&rebuilt, true));
        assert_ne!(digest(&a, true), digest(&retyped, true));
        assert_ne!(digest(&a, true), digest(&fewer, true));
        assert_eq!(digest(&a, false), digest(&rebuilt, false));
        assert_ne!(digest(&a, false), digest(&fewer, false));
        assert_eq!(digest(&a, true).len(), 64);
    }

    #[test]
    fn views_are_kept_only_for_a_container_bundle() {
        let view = Path::new("/run/nucleus/web/bundle/store-view");
        assert_eq!(views_dir(view), Some(PathBuf::from("/run/nucleus/.cache/views")));
        assert_eq!(views_dir(Path::new("/tmp/out/store-view")), None);
        assert_eq!(views_dir(Path::new("/run/nucleus/web/bundle/rootfs")), None);
    }
}
