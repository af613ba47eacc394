//! A private mount namespace for nucleus and the runsc it starts.
//!
//! runsc boots at most ~236 bind mounts, and each costs about a millisecond.
//! So the closure's store paths are bound into one directory, the store
//! view, and runsc gets a single rbind of it. The binds are made in a mount
//! namespace of our own that runsc inherits: the host never sees them, and
//! they vanish with the last process in the namespace, even if nucleus is
//! killed. Secrets are staged on a tmpfs in the same namespace.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::nix::StorePath;
use crate::{Error, Result};

/// Moves this thread (and the children it will start) into a new mount
/// namespace whose mounts do not propagate back to the host.
pub fn enter_private_mount_namespace() -> Result<()> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| {
        Error::Runsc(format!("cannot create a private mount namespace ({e}); run as root, or use --rootless"))
    })?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(|e| Error::Runsc(format!("cannot make mounts private ({e})")))
}

/// Fills `view` (an empty directory) with read-only binds of `paths`, then
/// makes the view itself read-only.
pub fn prepare_store_view(view: &Path, paths: &[StorePath]) -> Result<()> {
    let fail = |what: &str, path: &Path, e: nix::Error| Error::io(what, path, e.into());
    let tmpfs_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("tmpfs"), view, Some("tmpfs"), tmpfs_flags, Some("mode=0755,size=1m"))
        .map_err(|e| fail("cannot mount the store view on", view, e))?;
    for path in paths {
        let mountpoint = view.join(path.base_name());
        if path.as_path().is_dir() {
            std::fs::create_dir(&mountpoint).map_err(|e| Error::io("cannot create", &mountpoint, e))?;
        } else {
            File::create(&mountpoint).map_err(|e| Error::io("cannot create", &mountpoint, e))?;
        }
        bind_read_only(path.as_path(), &mountpoint)?;
    }
    mount(None::<&str>, view, None::<&str>, MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | tmpfs_flags, None::<&str>)
        .map_err(|e| fail("cannot make read-only", view, e))
}

/// A bind mount is created writable; read-only takes a second, remounting
/// call.
fn bind_read_only(source: &Path, target: &Path) -> Result<()> {
    let fail = |e: nix::Error| Error::io(&format!("cannot bind {} on", source.display()), target, e.into());
    mount(Some(source), target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>).map_err(fail)?;
    let read_only = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount(None::<&str>, target, None::<&str>, read_only, None::<&str>).map_err(fail)
}

/// One secret to stage: its bytes were read before anything was created.
pub struct StagedSecret<'a> {
    pub target: &'a Path,
    pub contents: &'a [u8],
}

/// Mounts a tmpfs on `dir` (when `in_memory`) and writes each secret 0400,
/// owned by the workload's user so it can read it and nobody else can.
pub fn stage_secrets(dir: &Path, secrets: &[StagedSecret<'_>], uid: u32, gid: u32, in_memory: bool) -> Result<()> {
    if in_memory {
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(Some("tmpfs"), dir, Some("tmpfs"), flags, Some("mode=0700,size=16m"))
            .map_err(|e| Error::io("cannot mount a tmpfs for secrets on", dir, e.into()))?;
    }
    for secret in secrets {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .custom_flags(libc::O_NOFOLLOW)
            .open(secret.target)
            .map_err(|e| Error::io("cannot stage secret at", secret.target, e))?;
        file.write_all(secret.contents).map_err(|e| Error::io("cannot stage secret at", secret.target, e))?;
        file.set_permissions(std::fs::Permissions::from_mode(0o400))
            .map_err(|e| Error::io("cannot protect", secret.target, e))?;
        nix::unistd::fchown(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )
        .map_err(|e| Error::io("cannot hand over", secret.target, e.into()))?;
    }
    Ok(())
}

/// Detaches a mount made by this module; the namespace going away would do
/// it too, but the bundle cannot be removed while it is mounted.
pub fn detach(path: &Path) {
    let _ = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH);
}
