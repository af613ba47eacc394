//! The hardened defaults every run starts from. runsc ignores some of them
//! (masked and read-only /proc paths, devices: gVisor synthesises /proc and
//! /dev itself); they stay so the bundle is just as hard under runc or crun.

use oci_spec::runtime::{
    LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, LinuxNamespace, LinuxNamespaceType, Mount, PosixRlimit,
    PosixRlimitBuilder, PosixRlimitType,
};

pub const NAMESPACES: &[LinuxNamespaceType] = &[
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Mount,
];

pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sysrq-trigger",
    "/proc/kpagecount",
    "/proc/kpageflags",
    "/proc/kpagecgroup",
    "/proc/config.gz",
    "/proc/kallsyms",
    "/sys/firmware",
];

pub const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys"];

/// The runtime spec allows only private, shared, slave and unbindable here
/// (its schema refuses `rprivate`); the recursive half is carried by the
/// `rprivate` option on every bind mount, see [`bind`].
pub const ROOTFS_PROPAGATION: &str = "private";

/// Size of `/tmp` and `/dev/shm`.
pub const SCRATCH_TMPFS_SIZE: &str = "size=64m";

pub const NOFILE_LIMIT: u64 = 1024;
pub const MEMLOCK_LIMIT: u64 = 64 * 1024;

/// CFS period used to express `--cpus` as a quota.
pub const CPU_PERIOD_US: u64 = 100_000;

pub fn namespaces() -> Vec<LinuxNamespace> {
    NAMESPACES.iter().map(|kind| namespace(*kind, None)).collect()
}

pub fn namespace(kind: LinuxNamespaceType, path: Option<std::path::PathBuf>) -> LinuxNamespace {
    let mut ns = LinuxNamespace::default();
    ns.set_typ(kind);
    ns.set_path(path);
    ns
}

pub fn rlimits() -> Result<Vec<PosixRlimit>, oci_spec::OciSpecError> {
    [(PosixRlimitType::RlimitNofile, NOFILE_LIMIT), (PosixRlimitType::RlimitMemlock, MEMLOCK_LIMIT)]
        .into_iter()
        .map(|(kind, limit)| PosixRlimitBuilder::default().typ(kind).hard(limit).soft(limit).build())
        .collect()
}

/// A mount with every field set.
pub fn mount(kind: &str, source: &str, destination: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(destination.into());
    m.set_typ(Some(kind.to_string()));
    m.set_source(Some(source.into()));
    m.set_options(Some(options.iter().map(|o| o.to_string()).collect()));
    m.set_uid_mappings(None);
    m.set_gid_mappings(None);
    m
}

/// A bind mount: `rbind` (runc and crun want `bind` or `rbind` to treat it
/// as a bind at all), `rprivate` so no mount event crosses between host and
/// sandbox, never setuid or device files, and `noexec` where asked.
pub fn bind(source: &str, destination: &str, writable: bool, noexec: bool) -> Mount {
    let mut options = vec!["rbind", "rprivate", if writable { "rw" } else { "ro" }, "nosuid", "nodev"];
    if noexec {
        options.push("noexec");
    }
    mount("bind", source, destination, &options)
}

pub fn is_bind(m: &Mount) -> bool {
    m.options().as_ref().is_some_and(|o| o.iter().any(|o| o == "bind" || o == "rbind"))
}

/// The kernel filesystems and scratch space every sandbox gets, parents
/// before children.
pub fn system_mounts() -> Vec<Mount> {
    vec![
        mount("proc", "proc", "/proc", &["nosuid", "noexec", "nodev"]),
        mount("tmpfs", "tmpfs", "/dev", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
        mount("tmpfs", "tmpfs", "/dev/shm", &["nosuid", "nodev", "noexec", "mode=1777", SCRATCH_TMPFS_SIZE]),
        mount("sysfs", "sysfs", "/sys", &["nosuid", "noexec", "nodev", "ro"]),
        mount("tmpfs", "tmpfs", "/tmp", &["nosuid", "nodev", "noexec", "mode=1777", SCRATCH_TMPFS_SIZE]),
    ]
}

const DEVICES: &[(&str, i64, i64)] =
    &[("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9)];

/// null, zero, full, random, urandom: what programs expect, nothing more.
pub fn devices() -> Vec<LinuxDevice> {
    DEVICES
        .iter()
        .map(|(name, major, minor)| {
            let mut d = LinuxDevice::default();
            d.set_path(format!("/dev/{name}").into());
            d.set_typ(LinuxDeviceType::C);
            d.set_major(*major);
            d.set_minor(*minor);
            d.set_file_mode(Some(0o666));
            d.set_uid(Some(0));
            d.set_gid(Some(0));
            d
        })
        .collect()
}

/// Deny every device, then allow exactly the ones in [`devices`]: runc and
/// crun deny a listed device unless the device cgroup allows it too.
pub fn device_rules() -> Vec<LinuxDeviceCgroup> {
    let rule = |allow: bool, device: Option<(i64, i64)>| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(allow);
        r.set_typ(device.map(|_| LinuxDeviceType::C));
        r.set_major(device.map(|d| d.0));
        r.set_minor(device.map(|d| d.1));
        r.set_access(Some("rwm".to_string()));
        r
    };
    std::iter::once(rule(false, None))
        .chain(DEVICES.iter().map(|(_, major, minor)| rule(true, Some((*major, *minor)))))
        .collect()
}
