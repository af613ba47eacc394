//! Seccomp profiles: the user's, checked strictly, and the setuid guard that
//! nucleus puts in front of it.
//!
//! What runsc (Debian's 2022 build) does with `linux.seccomp`, and so what is
//! refused here, before anything is written:
//! - it knows the actions KILL (a thread), TRAP, ERRNO, TRACE and ALLOW, and
//!   refuses the whole sandbox for any other;
//! - ERRNO and TRACE always return EPERM, whatever `errnoRet` says;
//! - `flags`, `listenerPath` and `listenerMetadata` are ignored;
//! - rules are tried in order and the first that matches wins;
//! - a system call name it does not know refuses the whole sandbox;
//! - the compiled filter must fit in 4096 BPF instructions.
//!
//! The `oci-spec` types accept unknown keys silently, so a typo (`argz` for
//! `args`) would widen a filter without a word. The JSON is therefore checked
//! key by key at every level before it is converted.

use std::collections::BTreeSet;
use std::path::Path;

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder, LinuxSeccompOperator, LinuxSyscall,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::hex;
use crate::{Error, Result};

/// runsc's BPF program limit (the kernel's `BPF_MAXINSNS`).
pub const RUNSC_BPF_LIMIT: usize = 4096;

/// Actions this runsc applies.
const SUPPORTED_ACTIONS: &[&str] =
    &["SCMP_ACT_KILL", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW"];

/// Actions of the runtime spec that this runsc refuses at start-up.
const UNSUPPORTED_ACTIONS: &[&str] =
    &["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"];

const OPERATORS: &[&str] =
    &["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"];

/// Checks `bytes` against the pinned sha256, if any.
pub fn check_pin(bytes: &[u8], pin: &str, file: &Path) -> Result<()> {
    let pin = pin.to_ascii_lowercase();
    if pin.len() != 64 || !pin.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid("--seccomp-profile-sha256", format!("'{pin}' is not 64 hex digits")));
    }
    let actual = hex(&Sha256::digest(bytes));
    if actual != pin {
        return Err(Error::invalid(
            "--seccomp-profile",
            format!("{} has sha256 {actual}, not the pinned {pin}", file.display()),
        ));
    }
    Ok(())
}

/// Parses and checks a user profile.
pub fn parse_profile(bytes: &[u8], file: &Path) -> Result<LinuxSeccomp> {
    let refuse = |why: String| Error::invalid("--seccomp-profile", format!("{}: {why}", file.display()));
    let value: Value = serde_json::from_slice(bytes).map_err(|e| refuse(format!("not JSON: {e}")))?;
    check_shape(&value).map_err(refuse)?;
    let profile: LinuxSeccomp = serde_json::from_value(value).map_err(|e| refuse(format!("malformed: {e}")))?;
    check_fits(&profile).map_err(|e| match e {
        Error::InvalidArgument { reason, .. } => refuse(reason),
        other => other,
    })?;
    Ok(profile)
}

/// The profile's JSON shape, key by key. Errors name the offending place,
/// e.g. `syscalls[2].args[0]: unknown key 'argz'`.
fn check_shape(profile: &Value) -> std::result::Result<(), String> {
    let top = object("the profile", profile)?;
    only_keys(
        "the profile",
        top,
        &["defaultAction", "defaultErrnoRet", "architectures", "flags", "listenerPath", "listenerMetadata", "syscalls"],
    )?;
    action("defaultAction", top.get("defaultAction"))?;
    errno_ret("defaultErrnoRet", top.get("defaultErrnoRet"))?;
    if let Some(arches) = top.get("architectures") {
        strings("architectures", arches)?;
    }
    if top.get("flags").is_some_and(|f| f.as_array().is_none_or(|a| !a.is_empty())) {
        return Err("flags: this runsc ignores seccomp flags; remove them".into());
    }
    for key in ["listenerPath", "listenerMetadata"] {
        if top.contains_key(key) {
            return Err(format!("{key}: only SCMP_ACT_NOTIFY uses a listener, which this runsc cannot apply"));
        }
    }
    let rules = match top.get("syscalls") {
        None => return Ok(()),
        Some(Value::Array(rules)) => rules,
        Some(_) => return Err("syscalls must be a list".into()),
    };
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("syscalls[{i}]");
        let fields = object(&at, rule)?;
        only_keys(&at, fields, &["names", "action", "errnoRet", "args"])?;
        let names = strings(&format!("{at}.names"), fields.get("names").unwrap_or(&Value::Null))?;
        if names.is_empty() {
            return Err(format!("{at}.names must name at least one system call"));
        }
        if let Some(unknown) = names.iter().find(|n| !is_known_syscall(n)) {
            return Err(format!(
                "{at}.names: this runsc does not know the system call '{unknown}' and would refuse to start \
                 the sandbox; remove it"
            ));
        }
        action(&format!("{at}.action"), fields.get("action"))?;
        errno_ret(&format!("{at}.errnoRet"), fields.get("errnoRet"))?;
        let args = match fields.get("args") {
            None | Some(Value::Null) => continue,
            Some(Value::Array(args)) => args,
            Some(_) => return Err(format!("{at}.args must be a list")),
        };
        for (j, arg) in args.iter().enumerate() {
            let at = format!("{at}.args[{j}]");
            let fields = object(&at, arg)?;
            only_keys(&at, fields, &["index", "value", "valueTwo", "op"])?;
            match fields.get("index").and_then(Value::as_u64) {
                Some(index) if index < 6 => {}
                _ => return Err(format!("{at}.index must be an argument number from 0 to 5")),
            }
            if fields.get("value").and_then(Value::as_u64).is_none() {
                return Err(format!("{at}.value must be a non-negative integer"));
            }
            if fields.get("valueTwo").is_some_and(|v| v.as_u64().is_none()) {
                return Err(format!("{at}.valueTwo must be a non-negative integer"));
            }
            match fields.get("op").and_then(Value::as_str) {
                Some(op) if OPERATORS.contains(&op) => {}
                _ => return Err(format!("{at}.op must be one of {}", OPERATORS.join(", "))),
            }
        }
    }
    Ok(())
}

fn object<'a>(at: &str, value: &'a Value) -> std::result::Result<&'a serde_json::Map<String, Value>, String> {
    value.as_object().ok_or_else(|| format!("{at} must be a JSON object"))
}

fn only_keys(at: &str, object: &serde_json::Map<String, Value>, known: &[&str]) -> std::result::Result<(), String> {
    match object.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(format!("{at}: unknown key '{unknown}' (known: {})", known.join(", "))),
        None => Ok(()),
    }
}

fn strings(at: &str, value: &Value) -> std::result::Result<Vec<String>, String> {
    let list = value.as_array().ok_or_else(|| format!("{at} must be a list of strings"))?;
    list.iter().map(|s| s.as_str().map(String::from).ok_or_else(|| format!("{at} must be a list of strings"))).collect()
}

fn action(at: &str, value: Option<&Value>) -> std::result::Result<(), String> {
    match value.and_then(Value::as_str) {
        Some(a) if SUPPORTED_ACTIONS.contains(&a) => Ok(()),
        Some(a) if UNSUPPORTED_ACTIONS.contains(&a) => Err(format!(
            "{at}: {a} is an action this runsc cannot apply (it knows {}; SCMP_ACT_KILL kills the thread)",
            SUPPORTED_ACTIONS.join(", ")
        )),
        _ => Err(format!("{at} must be one of {}", SUPPORTED_ACTIONS.join(", "))),
    }
}

fn errno_ret(at: &str, value: Option<&Value>) -> std::result::Result<(), String> {
    match value {
        None | Some(Value::Null) => Ok(()),
        Some(v) if v.as_u64() == Some(libc::EPERM as u64) => Ok(()),
        Some(_) => Err(format!("{at}: this runsc always returns EPERM (1); another errno cannot be applied")),
    }
}

/// The x86-64 system call names this runsc (Debian's 0.0~20221219) knows,
/// as its syscall table spells them (`pselect` and `sysctl`, not Linux's
/// `pselect6` and `_sysctl`). Linux calls newer than its table (`openat2`,
/// `landlock_*`, `futex_waitv`, …) are not among them.
#[cfg(target_arch = "x86_64")]
const RUNSC_SYSCALLS: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "acct",
    "add_key",
    "adjtimex",
    "afs_syscall",
    "alarm",
    "arch_prctl",
    "bind",
    "bpf",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chroot",
    "clock_adjtime",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "clock_settime",
    "clone",
    "clone3",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "create_module",
    "delete_module",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fallocate",
    "fanotify_init",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchownat",
    "fcntl",
    "fdatasync",
    "fgetxattr",
    "finit_module",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsconfig",
    "fsetxattr",
    "fsmount",
    "fsopen",
    "fspick",
    "fstat",
    "fstatfs",
    "fsync",
    "ftruncate",
    "futex",
    "futimesat",
    "get_kernel_syms",
    "get_mempolicy",
    "get_robust_list",
    "get_thread_area",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getpmsg",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "gettid",
    "gettimeofday",
    "getuid",
    "getxattr",
    "init_module",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_setup",
    "io_submit",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioctl",
    "ioperm",
    "iopl",
    "ioprio_get",
    "ioprio_set",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "kill",
    "lchown",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "lookup_dcookie",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "madvise",
    "mbind",
    "membarrier",
    "memfd_create",
    "migrate_pages",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "modify_ldt",
    "mount",
    "move_mount",
    "move_pages",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedsend",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "nfsservctl",
    "open",
    "open_by_handle_at",
    "open_tree",
    "openat",
    "pause",
    "perf_event_open",
    "personality",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pivot_root",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_vm_readv",
    "process_vm_writev",
    "pselect",
    "ptrace",
    "putpmsg",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "query_module",
    "quotactl",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "reboot",
    "recvfrom",
    "recvmmsg",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "request_key",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_tgsigqueueinfo",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "security",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "sendfile",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "set_mempolicy",
    "set_robust_list",
    "set_thread_area",
    "set_tid_address",
    "setdomainname",
    "setfsgid",
    "setfsuid",
    "setgid",
    "setgroups",
    "sethostname",
    "setitimer",
    "setns",
    "setpgid",
    "setpriority",
    "setregid",
    "setresgid",
    "setresuid",
    "setreuid",
    "setrlimit",
    "setsid",
    "setsockopt",
    "settimeofday",
    "setuid",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "socket",
    "socketpair",
    "splice",
    "stat",
    "statfs",
    "statx",
    "swapoff",
    "swapon",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysctl",
    "sysfs",
    "sysinfo",
    "syslog",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_settime",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_settime",
    "times",
    "tkill",
    "truncate",
    "tuxcall",
    "umask",
    "umount2",
    "uname",
    "unlink",
    "unlinkat",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "utime",
    "utimensat",
    "utimes",
    "vfork",
    "vhangup",
    "vmsplice",
    "vserver",
    "wait4",
    "waitid",
    "write",
    "writev",
];

#[cfg(target_arch = "x86_64")]
fn is_known_syscall(name: &str) -> bool {
    RUNSC_SYSCALLS.binary_search(&name).is_ok()
}

/// Elsewhere nucleus has no table to check against; runsc itself refuses an
/// unknown name when the sandbox starts.
#[cfg(not(target_arch = "x86_64"))]
fn is_known_syscall(_name: &str) -> bool {
    true
}

/// Syscalls that can set a file's mode, with the index of the mode
/// argument: chmod(path, mode), fchmodat(dirfd, path, mode), open(path,
/// flags, mode), openat(dirfd, path, flags, mode)…
const MODE_SETTING_SYSCALLS: &[(&[&str], usize)] = &[
    (&["chmod", "fchmod", "creat", "mknod", "mkdir"], 1),
    (&["fchmodat", "open", "mknodat", "mkdirat"], 2),
    (&["openat"], 3),
];

/// Rules that fail with EPERM any call that would set the setuid or setgid
/// bit: one rule per bit, since a rule matches `(mode & mask) == value`.
///
/// Root inside the sandbox owns what it creates in a read-write volume on
/// the host, and a setuid-root file left there would be a way up for anyone
/// on the host who runs it. These rules must come first: runsc applies the
/// first rule that matches, so a user rule allowing `chmod` would otherwise
/// win.
pub fn setid_guard() -> Vec<LinuxSyscall> {
    let mut rules = Vec::new();
    for (names, index) in MODE_SETTING_SYSCALLS {
        for bit in [0o4000u64, 0o2000] {
            let built = LinuxSeccompArgBuilder::default()
                .index(*index)
                .value(bit)
                .value_two(bit)
                .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                .build();
            // Every field is set, so building cannot fail; if it ever did,
            // a guard without this rule would be weaker, so fall back to a
            // rule that refuses the call outright.
            let arg: Option<LinuxSeccompArg> = built.ok();
            let mut rule = LinuxSyscall::default();
            rule.set_names(names.iter().map(|n| n.to_string()).collect());
            rule.set_action(LinuxSeccompAction::ScmpActErrno);
            rule.set_errno_ret(Some(libc::EPERM as u32));
            rule.set_args(arg.map(|a| vec![a]));
            rules.push(rule);
        }
    }
    rules
}

/// The profile the sandbox gets: `user`'s (or allow-all) with the setuid
/// guard in front when `guard` is set.
pub fn effective_profile(user: Option<&LinuxSeccomp>, guard: bool) -> Option<LinuxSeccomp> {
    if !guard {
        return user.cloned();
    }
    let mut profile = user.cloned().unwrap_or_else(|| {
        let mut allow_all = LinuxSeccomp::default();
        allow_all.set_default_action(LinuxSeccompAction::ScmpActAllow);
        allow_all
    });
    let mut rules = setid_guard();
    rules.extend(profile.syscalls().clone().unwrap_or_default());
    profile.set_syscalls(Some(rules));
    Some(profile)
}

/// Refuses a profile whose filter would not fit in runsc's BPF limit.
pub fn check_fits(profile: &LinuxSeccomp) -> Result<()> {
    let estimate = estimate_instructions(profile);
    if estimate > RUNSC_BPF_LIMIT {
        return Err(Error::invalid(
            "--seccomp-profile",
            format!(
                "its rules compile to about {estimate} BPF instructions, more than runsc's limit of \
                 {RUNSC_BPF_LIMIT}; merge rules that share an action"
            ),
        ));
    }
    Ok(())
}

/// An upper estimate of the instructions runsc compiles `profile` into,
/// fitted to runsc's own failures: a fixed prologue, a few instructions per
/// distinct system call (its binary search tree: measured at 4.1 to 4.4 for
/// 10 to 348 distinct calls, dense or sparse), one per unconditional rule
/// and name, and per conditional rule and name one jump plus a comparison
/// of 32-bit halves per argument condition (more for masks and orderings).
pub fn estimate_instructions(profile: &LinuxSeccomp) -> usize {
    const PROLOGUE: usize = 30;
    const PER_SYSCALL: usize = 5;
    let rules = profile.syscalls().clone().unwrap_or_default();
    let mut names = BTreeSet::new();
    let mut total = PROLOGUE;
    for rule in &rules {
        names.extend(rule.names().iter().cloned());
        let args = rule.args().clone().unwrap_or_default();
        let per_name = if args.is_empty() {
            1
        } else {
            let cost = |a: &LinuxSeccompArg| match a.op() {
                LinuxSeccompOperator::ScmpCmpEq | LinuxSeccompOperator::ScmpCmpNe => 4,
                _ => 6,
            };
            // runsc ORs conditions on a repeated argument index, ANDs the rest.
            let repeated = args.iter().enumerate().any(|(i, a)| args[..i].iter().any(|b| b.index() == a.index()));
            if repeated {
                args.iter().map(|a| 1 + cost(a)).sum()
            } else {
                1 + args.iter().map(cost).sum::<usize>()
            }
        };
        total += per_name * rule.names().len();
    }
    total + PER_SYSCALL * names.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<LinuxSeccomp> {
        parse_profile(v.to_string().as_bytes(), Path::new("p.json"))
    }

    #[test]
    fn a_plain_profile_is_accepted() {
        let p =
            parse(json!({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}))
                .unwrap();
        assert_eq!(p.syscalls().as_ref().unwrap()[0].names(), &["mkdir".to_string()]);
    }

    #[test]
    fn unknown_keys_are_refused_at_every_level() {
        for bad in [
            json!([]),
            json!({"defaultAction":"ALLOW"}),
            json!({"defaultAction":"SCMP_ACT_ALLOW","syscals":[]}),
            json!({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":[],"action":"SCMP_ACT_ERRNO"}]}),
            json!({"defaultAction":"SCMP_ACT_ALLOW","syscalls":{}}),
            json!({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod"],"action":"SCMP_ACT_ERRNO","argz":[]}]}),
            json!({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod"],"action":"SCMP_ACT_ERRNO",
                   "args":[{"index":1,"value":1,"op":"SCMP_CMP_EQ","valu2":3}]}]}),
            json!({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod"],"action":"SCMP_ACT_ERRNO",
                   "args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}),
            json!({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod"],"action":"SCMP_ACT_ERRNO",
                   "args":[{"index":1,"value":-1,"op":"SCMP_CMP_EQ"}]}]}),
            json!({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod"],"action":"SCMP_ACT_ERRNO",
                   "args":[{"index":1,"value":1,"op":"EQ"}]}]}),
        ] {
            assert!(matches!(parse(bad.clone()), Err(Error::InvalidArgument { .. })), "{bad}");
        }
    }

    #[test]
    fn what_runsc_cannot_apply_is_refused() {
        for action in UNSUPPORTED_ACTIONS {
            assert!(parse(json!({"defaultAction": action})).is_err(), "{action}");
            assert!(
                parse(json!({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["x"],"action":action}]})).is_err()
            );
        }
        assert!(parse(json!({"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38})).is_err());
        assert!(parse(json!({"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1})).is_ok());
        assert!(parse(json!({"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_LOG"]})).is_err());
        assert!(parse(json!({"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/x"})).is_err());
        // Too many conditional rules for 4096 instructions.
        let rules: Vec<Value> = (0..800)
            .map(|i| {
                json!({"names":["chmod"],"action":"SCMP_ACT_ERRNO",
                             "args":[{"index":1,"value":4095,"valueTwo":i,"op":"SCMP_CMP_MASKED_EQ"}]})
            })
            .collect();
        assert!(parse(json!({"defaultAction":"SCMP_ACT_ALLOW","syscalls":rules})).is_err());
        let rules: Vec<Value> = (0..500)
            .map(|i| json!({"names":["chmod"],"action":"SCMP_ACT_ERRNO","args":[{"index":1,"value":i,"op":"SCMP_CMP_EQ"}]}))
            .collect();
        assert!(parse(json!({"defaultAction":"SCMP_ACT_ALLOW","syscalls":rules})).is_ok());
    }

    #[test]
    fn system_calls_this_runsc_does_not_know_are_refused() {
        #[cfg(target_arch = "x86_64")]
        assert!(RUNSC_SYSCALLS.windows(2).all(|w| w[0] < w[1]), "the table is sorted, for binary_search");
        let named = |name: &str| {
            parse(
                json!({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read", name],"action":"SCMP_ACT_ALLOW"}]}),
            )
        };
        for known in ["chmod", "openat", "pselect", "sysctl", "clone3", "faccessat2", "epoll_pwait2"] {
            assert!(named(known).is_ok(), "{known}");
        }
        if cfg!(target_arch = "x86_64") {
            for unknown in ["nosuchcall", "openat2", "pselect6", "_sysctl", "fchmodat2", "futex_waitv", "CHMOD", ""] {
                assert!(matches!(named(unknown), Err(Error::InvalidArgument { .. })), "{unknown}");
            }
        }
    }

    #[test]
    fn repeated_system_calls_count_toward_the_limit() {
        // Unconditional rules cycling over every known call: runsc's filter
        // for 2700 of them does not fit (it fits at most about 2600).
        let names: Vec<&str> = if cfg!(target_arch = "x86_64") { RUNSC_SYSCALLS.to_vec() } else { vec!["read"] };
        let rules: Vec<Value> =
            (0..2700).map(|i| json!({"names":[names[i % names.len()]],"action":"SCMP_ACT_ALLOW"})).collect();
        if cfg!(target_arch = "x86_64") {
            assert!(parse(json!({"defaultAction":"SCMP_ACT_ALLOW","syscalls":rules})).is_err());
        }
    }

    #[test]
    fn the_guard_comes_first_and_fits() {
        let user = parse(
            json!({"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["chmod","read"],"action":"SCMP_ACT_ALLOW"}]}),
        )
        .unwrap();
        let merged = effective_profile(Some(&user), true).unwrap();
        let rules = merged.syscalls().clone().unwrap();
        assert_eq!(rules.len(), setid_guard().len() + 1);
        assert_eq!(rules.last().unwrap().names(), &["chmod".to_string(), "read".to_string()]);
        assert!(rules[..rules.len() - 1].iter().all(|r| r.action() == LinuxSeccompAction::ScmpActErrno));
        assert_eq!(merged.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert!(check_fits(&merged).is_ok());
        let alone = effective_profile(None, true).unwrap();
        assert_eq!(alone.default_action(), LinuxSeccompAction::ScmpActAllow);
        assert!(effective_profile(None, false).is_none());
    }

    #[test]
    fn pins() {
        let bytes = b"{}";
        let pin = hex(&Sha256::digest(bytes));
        assert!(check_pin(bytes, &pin, Path::new("p")).is_ok());
        assert!(check_pin(bytes, &pin.to_uppercase(), Path::new("p")).is_ok());
        assert!(check_pin(bytes, &"0".repeat(64), Path::new("p")).is_err());
        assert!(check_pin(bytes, "00", Path::new("p")).is_err());
    }
}
