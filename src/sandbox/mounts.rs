//! The supervisor's private mount namespace, and what is mounted in it.
//!
//! Everything runsc is given lives under the bundle directory and is
//! mounted here, in a mount namespace that runsc inherits and the host never
//! sees: the store view, the host sources (mounted from the descriptors they
//! were checked on), and the secrets' tmpfs. It all vanishes with the
//! namespace, even if nucleus is killed.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use super::views;
use crate::host::open::fd_proc_path;
use crate::host::sources::OpenedSource;
use crate::nix::store_path::STORE_DIR;
use crate::plan::StagedSecret;
use crate::rootfs::{StoreEntry, StoreEntryKind};
use crate::{Error, Result};

/// Moves this process into a new mount namespace whose mounts do not
/// propagate back to the host. The first time, the namespace it leaves is
/// remembered: kept store views are bound there (see [`views`]).
pub fn make_private() -> Result<()> {
    views::remember_original_namespace();
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| Error::setup("create a private mount namespace", e))?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(|e| Error::setup("make the mount namespace private", e))
}

/// The supervisor's own mount namespace (a copy of `nucleus run`'s, with
/// everything staged), with a /proc of the container's pid namespace:
/// runsc reads /proc/self and its children's /proc entries, which must be
/// those of the pid namespace it runs in.
pub fn enter_supervisor_namespace() -> Result<()> {
    make_private()?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("proc"), "/proc", Some("proc"), flags, None::<&str>)
        .map_err(|e| Error::setup("mount /proc for the sandbox's pid namespace", e))
}

/// runsc decides that it is in the host's network namespace when
/// `/proc/sys/net/core/rmem_default` exists, and then refuses to start its
/// network stack; kernels since about 6.x show that file in every namespace
/// (gVisor issue 10704). The sandbox runs in a namespace of its own all the
/// same, so hide the marker from runsc's view of /proc: an empty read-only
/// tmpfs over `/proc/sys/net`, in this mount namespace only.
pub fn hide_root_network_marker() -> Result<()> {
    let net = Path::new("/proc/sys/net");
    if !net.join("core/rmem_default").exists() {
        return Ok(());
    }
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("tmpfs"), net, Some("tmpfs"), flags, Some("size=4k")).map_err(|e| Error::setup("mask /proc/sys/net", e))
}

/// Fills `view` (an empty directory) with the closure: a copy of the view
/// kept for it when there is one (see [`views`]), else, as [`fill_store_view`]
/// makes it, a read-only bind of each directory or file store path and each
/// symlink store path as the same symlink.
pub fn prepare_store_view(view: &Path, entries: &[StoreEntry]) -> Result<()> {
    if views::attach(view, entries, &|view| fill_store_view(view, entries))? {
        return Ok(());
    }
    fill_store_view(view, entries)
}

/// Mounts a tmpfs on `view` (an empty directory) holding the closure: a
/// read-only bind of each directory or file store path, and each symlink
/// store path as the same symlink, created on the view's own tmpfs (never
/// followed on the host). The view is then made read-only.
///
/// The store is bound read-only once, beside the mountpoints, and every path
/// is bound from there: a bind inherits its source mount's read-only,
/// nosuid and nodev flags, which saves a remount per path.
pub fn fill_store_view(view: &Path, entries: &[StoreEntry]) -> Result<()> {
    let step = |what: &str| format!("{what} in the store view {}", view.display());
    let tmpfs_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let size = format!("mode=0755,size={}k", 64 + entries.len() / 4);
    mount(Some("tmpfs"), view, Some("tmpfs"), tmpfs_flags, Some(size.as_str()))
        .map_err(|e| Error::setup(step("mount a tmpfs"), e))?;
    let staging = view.join(WHOLE_STORE);
    std::fs::create_dir(&staging).map_err(|e| Error::setup(step("create a staging directory"), e))?;
    bind_read_only(Path::new(STORE_DIR), &staging, true)?;
    for entry in entries {
        let mountpoint = view.join(entry.path.base_name());
        match &entry.kind {
            StoreEntryKind::Symlink(target) => std::os::unix::fs::symlink(target, &mountpoint),
            StoreEntryKind::Directory => std::fs::create_dir(&mountpoint),
            StoreEntryKind::File => std::fs::File::create(&mountpoint).map(drop),
        }
        .map_err(|e| Error::setup(step(&format!("make a place for {}", entry.path)), e))?;
        if matches!(entry.kind, StoreEntryKind::Symlink(_)) {
            continue;
        }
        let source = staging.join(entry.path.base_name());
        mount(Some(&source), &mountpoint, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
            .map_err(|e| Error::setup(step(&format!("bind {}", entry.path)), e))?;
    }
    // The staging bind (the whole store) must not be visible in the view.
    umount2(&staging, MntFlags::MNT_DETACH).map_err(|e| Error::setup(step("unmount the staging bind"), e))?;
    std::fs::remove_dir(&staging).map_err(|e| Error::setup(step("remove the staging directory"), e))?;
    mount(None::<&str>, view, None::<&str>, MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | tmpfs_flags, None::<&str>)
        .map_err(|e| Error::setup(step("make the view read-only"), e))
}

/// Where the whole store is bound, briefly, inside the view. A store path's
/// name never starts with a dot, so this cannot collide with one.
const WHOLE_STORE: &str = ".store";

/// Binds `source` onto `target` read-only, `nosuid,nodev` (and `rec`ursive
/// when asked). A bind is created writable; read-only takes a second call.
fn bind_read_only(source: &Path, target: &Path, recursive: bool) -> Result<()> {
    bind(source, target, false, recursive)
}

fn bind(source: &Path, target: &Path, writable: bool, recursive: bool) -> Result<()> {
    let step = format!("bind {} on {}", source.display(), target.display());
    let rec = if recursive { MsFlags::MS_REC } else { MsFlags::empty() };
    mount(Some(source), target, None::<&str>, MsFlags::MS_BIND | rec, None::<&str>)
        .map_err(|e| Error::setup(&step, e))?;
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    if !writable {
        flags |= MsFlags::MS_RDONLY;
    }
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>).map_err(|e| Error::setup(&step, e))
}

/// Mounts a host source from the descriptor it was checked on onto its
/// staging mountpoint in the bundle. The kernel resolves
/// `/proc/self/fd/N` to the open file itself, whatever now sits at its old
/// name, so a path swapped after the check changes nothing.
pub fn stage_source(source: &OpenedSource, target: &Path, writable: bool) -> Result<()> {
    bind(&fd_proc_path(&source.fd), target, writable, false)
}

/// Mounts a tmpfs on `dir` and writes each secret with its owner and mode,
/// never following a symlink.
pub fn stage_secrets(dir: &Path, secrets: &[StagedSecret], contents: &[Vec<u8>]) -> Result<()> {
    let total: usize = contents.iter().map(Vec::len).sum();
    let options = format!("mode=0700,size={}k", 64 + total / 1024 * 2);
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("tmpfs"), dir, Some("tmpfs"), flags, Some(options.as_str()))
        .map_err(|e| Error::setup("mount a tmpfs for the secrets", e))?;
    for secret in secrets {
        let bytes = contents.get(secret.index).map(Vec::as_slice).unwrap_or_default();
        let step = format!("stage a secret at {}", secret.target.display());
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&secret.target)
            .map_err(|e| Error::setup(&step, e))?;
        file.write_all(bytes).map_err(|e| Error::setup(&step, e))?;
        nix::unistd::fchown(
            &file,
            Some(nix::unistd::Uid::from_raw(secret.uid)),
            Some(nix::unistd::Gid::from_raw(secret.gid)),
        )
        .map_err(|e| Error::setup(&step, e))?;
        file.set_permissions(std::fs::Permissions::from_mode(secret.mode)).map_err(|e| Error::setup(&step, e))?;
    }
    Ok(())
}

/// Detaches a mount made here; the namespace going away would do it too,
/// but the bundle cannot be removed while something is mounted in it.
pub fn detach(path: &Path) {
    let _ = umount2(path, MntFlags::MNT_DETACH);
}
