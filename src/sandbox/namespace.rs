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
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::nix::store_path::STORE_DIR;
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

/// The network namespace whose interfaces gVisor's network stack copies for
/// `--network sandbox`: the one nucleus was started in (an operator gives a
/// sandbox a network with `ip netns exec NS nucleus run …`), except the
/// host's own, which is never copied: there nucleus makes a fresh one with
/// only loopback, up.
pub fn prepare_sandbox_network() -> Result<()> {
    if in_host_network_namespace() {
        unshare(CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::Runsc(format!("cannot create a network namespace for --network sandbox ({e})")))?;
        set_loopback_up().map_err(|e| Error::Runsc(format!("cannot bring up loopback for --network sandbox ({e})")))?;
    }
    hide_root_network_marker()
}

fn in_host_network_namespace() -> bool {
    use std::os::unix::fs::MetadataExt;
    let ns = |pid: &str| std::fs::metadata(format!("/proc/{pid}/ns/net")).map(|m| (m.dev(), m.ino()));
    // If init's namespace cannot be read, assume the worst.
    ns("1").ok().is_none_or(|init| ns("self").ok() == Some(init))
}

fn set_loopback_up() -> std::io::Result<()> {
    // SAFETY: plain socket and ioctl calls on a zeroed, NUL-terminated ifreq.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let sock = std::os::fd::OwnedFd::from_raw_fd(sock);
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// runsc decides that it is in the host's network namespace when
/// `/proc/sys/net/core/rmem_default` exists, and then refuses to start its
/// network stack; kernels since about 6.x show that file in every namespace
/// (gVisor issue 10704). The sandbox runs in a fresh network namespace all
/// the same, so hide the marker from runsc's view of /proc: an empty
/// read-only tmpfs over `/proc/sys/net`, in our mount namespace only. (The
/// `net` directory is shared by all network namespaces, `net/core` is not,
/// so the mount has to sit one level up to be seen from the sandbox's.)
fn hide_root_network_marker() -> Result<()> {
    let net = Path::new("/proc/sys/net");
    if !net.join("core/rmem_default").exists() {
        return Ok(());
    }
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("tmpfs"), net, Some("tmpfs"), flags, Some("size=4k"))
        .map_err(|e| Error::io("cannot mask", net, e.into()))
}

/// Fills `view` (an empty directory) with read-only binds of `paths`, then
/// makes the view itself read-only.
///
/// The store is bound read-only once, beside the per-path mountpoints, and
/// every path is bound from there: a bind inherits its source mount's
/// read-only, nosuid and nodev flags, which saves a remount per path.
pub fn prepare_store_view(view: &Path, paths: &[StorePath]) -> Result<()> {
    let fail = |what: &str, path: &Path, e: nix::Error| Error::io(what, path, e.into());
    let tmpfs_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("tmpfs"), view, Some("tmpfs"), tmpfs_flags, Some("mode=0755,size=1m"))
        .map_err(|e| fail("cannot mount the store view on", view, e))?;
    let staging = view.join(STAGING);
    std::fs::create_dir(&staging).map_err(|e| Error::io("cannot create", &staging, e))?;
    bind_read_only(Path::new(STORE_DIR), &staging)?;
    for path in paths {
        let mountpoint = view.join(path.base_name());
        if path.as_path().is_dir() {
            std::fs::create_dir(&mountpoint).map_err(|e| Error::io("cannot create", &mountpoint, e))?;
        } else {
            File::create(&mountpoint).map_err(|e| Error::io("cannot create", &mountpoint, e))?;
        }
        let source = staging.join(path.base_name());
        mount(Some(&source), &mountpoint, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
            .map_err(|e| fail(&format!("cannot bind {path} on"), &mountpoint, e))?;
    }
    // The staging bind (the whole store) must not be visible in the view.
    nix::mount::umount2(&staging, nix::mount::MntFlags::MNT_DETACH).map_err(|e| fail("cannot unmount", &staging, e))?;
    std::fs::remove_dir(&staging).map_err(|e| Error::io("cannot remove", &staging, e))?;
    mount(None::<&str>, view, None::<&str>, MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | tmpfs_flags, None::<&str>)
        .map_err(|e| fail("cannot make read-only", view, e))
}

/// Where the whole store is bound, briefly, inside the view. A store path's
/// name never starts with a dot, so this cannot collide with one.
const STAGING: &str = ".store";

/// A bind mount is created writable; read-only takes a second, remounting
/// call.
fn bind_read_only(source: &Path, target: &Path) -> Result<()> {
    let fail = |e: nix::Error| Error::io(format!("cannot bind {} on", source.display()), target, e.into());
    mount(Some(source), target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>).map_err(fail)?;
    let read_only =
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
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
