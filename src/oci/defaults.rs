//! The hardened defaults every run starts from. runsc ignores some of them
//! (masked and read-only /proc paths, devices: gVisor synthesises /proc and
//! /dev itself); they stay so the bundle is just as hard under runc or crun.

use super::spec::{Device, DeviceRule, Mount, Namespace, Rlimit};

pub const NAMESPACES: &[&str] = &["pid", "network", "ipc", "uts", "mount"];

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
/// `rprivate` option on every bind mount, see [`Mount::bind`].
pub const ROOTFS_PROPAGATION: &str = "private";

/// Size of `/tmp` and `/dev/shm`.
pub const SCRATCH_TMPFS_SIZE: &str = "size=64m";

pub const NOFILE_LIMIT: u64 = 1024;
pub const MEMLOCK_LIMIT: u64 = 64 * 1024;

/// CFS period used to express `--cpus` as a quota.
pub const CPU_PERIOD_US: u64 = 100_000;

pub fn namespaces() -> Vec<Namespace> {
    NAMESPACES.iter().map(|n| Namespace { kind: n.to_string(), path: None }).collect()
}

pub fn rlimits() -> Vec<Rlimit> {
    vec![
        Rlimit { kind: "RLIMIT_NOFILE".into(), hard: NOFILE_LIMIT, soft: NOFILE_LIMIT },
        Rlimit { kind: "RLIMIT_MEMLOCK".into(), hard: MEMLOCK_LIMIT, soft: MEMLOCK_LIMIT },
    ]
}

/// The kernel filesystems and scratch space every sandbox gets, parents
/// before children.
pub fn system_mounts() -> Vec<Mount> {
    vec![
        Mount {
            destination: "/proc".into(),
            kind: "proc".into(),
            source: "proc".into(),
            options: strings(&["nosuid", "noexec", "nodev"]),
        },
        Mount::tmpfs("/dev", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
        Mount::tmpfs("/dev/shm", &["nosuid", "nodev", "noexec", "mode=1777", SCRATCH_TMPFS_SIZE]),
        Mount {
            destination: "/sys".into(),
            kind: "sysfs".into(),
            source: "sysfs".into(),
            options: strings(&["nosuid", "noexec", "nodev", "ro"]),
        },
        Mount::tmpfs("/tmp", &["nosuid", "nodev", "noexec", "mode=1777", SCRATCH_TMPFS_SIZE]),
    ]
}

/// null, zero, full, random, urandom: what programs expect, nothing more.
pub fn devices() -> Vec<Device> {
    [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9)]
        .into_iter()
        .map(|(name, major, minor)| Device {
            kind: "c".into(),
            path: format!("/dev/{name}"),
            major,
            minor,
            file_mode: 0o666,
            uid: 0,
            gid: 0,
        })
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Deny every device, then allow exactly the ones in [`devices`].
pub fn device_rules() -> Vec<DeviceRule> {
    let deny_all = DeviceRule { allow: false, kind: None, major: None, minor: None, access: "rwm".into() };
    std::iter::once(deny_all)
        .chain(devices().into_iter().map(|d| DeviceRule {
            allow: true,
            kind: Some(d.kind),
            major: Some(d.major),
            minor: Some(d.minor),
            access: "rwm".into(),
        }))
        .collect()
}

/// Syscalls that can set a file's mode, with the index of the mode
/// argument: chmod(path, mode), fchmodat(dirfd, path, mode), open(path,
/// flags, mode), openat(dirfd, path, flags, mode)…
const MODE_SETTING_SYSCALLS: &[(&[&str], u32)] = &[
    (&["chmod", "fchmod", "creat", "mknod", "mkdir"], 1),
    (&["fchmodat", "open", "mknodat", "mkdirat"], 2),
    (&["openat"], 3),
];

/// Seccomp rules (OCI form) that fail with EPERM any call that would set
/// the setuid or setgid bit: one rule per bit combination, since a rule
/// matches `(mode & 06000) == value`.
pub fn setid_guard_rules() -> Vec<serde_json::Value> {
    const SETID_BITS: u64 = 0o6000;
    let mut rules = Vec::new();
    for (names, index) in MODE_SETTING_SYSCALLS {
        for bits in [0o4000u64, 0o2000, 0o6000] {
            rules.push(serde_json::json!({
                "names": names,
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": libc::EPERM,
                "args": [{ "index": index, "value": SETID_BITS, "valueTwo": bits, "op": "SCMP_CMP_MASKED_EQ" }],
            }));
        }
    }
    rules
}
