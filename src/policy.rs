//! What is allowed. Every user-supplied value is parsed here into the typed
//! pieces of a [`RunRequest`](crate::request::RunRequest), before anything is
//! created on the host, so a refusal leaves nothing behind.

use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::request::{RunRequest, Secret, Tmpfs, UserSpec, Volume, DEFAULT_PATH};
use crate::{Error, Result};

/// Host paths that may never be shown to a workload: the kernel's views, the
/// host's configuration and secrets, runtime state, and the whole store with
/// its database and daemon socket.
const FORBIDDEN_SOURCES: &[&str] = &["/proc", "/sys", "/dev", "/boot", "/etc", "/root", "/run", "/var/run", "/nix"];

/// Secrets are files the operator chose to hand over (NixOS secret managers
/// keep them under /run and /etc), so only the kernel's views and the
/// world-readable store are refused.
const FORBIDDEN_SECRET_SOURCES: &[&str] = &["/proc", "/sys", "/dev", "/nix"];

/// Sandbox paths nucleus owns: the kernel's views, the store, the read-only
/// system directories, and the secrets directory.
const FORBIDDEN_DESTINATIONS: &[&str] =
    &["/proc", "/sys", "/dev", "/nix", "/bin", "/sbin", "/lib", "/lib64", "/usr", "/etc", "/run/secrets"];

pub const SECRETS_DIR: &str = "/run/secrets";
pub const CONTEXT_DIR: &str = "/context";

/// runsc cannot boot its own processes under a smaller pids limit.
pub const MIN_PIDS: u64 = 50;

/// `[A-Za-z0-9][A-Za-z0-9_.-]{0,127}`: safe as a file name and a runsc id.
pub fn parse_name(text: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 128
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(b));
    if ok {
        Ok(text.to_string())
    } else {
        Err(Error::invalid(
            "--name",
            format!("'{text}': use 1-128 characters of A-Z a-z 0-9 _ . -, starting with a letter or digit"),
        ))
    }
}

/// RFC 1123 host name: labels of letters, digits and inner dashes.
pub fn parse_hostname(text: &str) -> Result<String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if text.len() <= 253 && text.split('.').all(label_ok) {
        Ok(text.to_string())
    } else {
        Err(Error::invalid("--hostname", format!("'{text}' is not a valid host name (letters, digits, '-', '.')")))
    }
}

/// `KEY=VALUE`: KEY non-empty without `=`; no NUL anywhere.
pub fn parse_env(text: &str) -> Result<(String, String)> {
    let (key, value) =
        text.split_once('=').ok_or_else(|| Error::invalid("--env", format!("'{text}': expected KEY=VALUE")))?;
    if key.is_empty() {
        return Err(Error::invalid("--env", format!("'{text}': the name before '=' is empty")));
    }
    if text.contains('\0') {
        return Err(Error::invalid("--env", format!("'{key}': contains a NUL byte")));
    }
    Ok((key.to_string(), value.to_string()))
}

/// The workload's environment: the default `PATH` first, then the user's
/// entries. A later entry replaces an earlier one with the same key, so
/// there is never a second `PATH`.
pub fn build_env(entries: &[(String, String)]) -> Vec<String> {
    let mut env: Vec<(String, String)> = vec![("PATH".to_string(), DEFAULT_PATH.to_string())];
    for (key, value) in entries {
        match env.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.clone(),
            None => env.push((key.clone(), value.clone())),
        }
    }
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// `SRC:DST[:ro|rw]`, read-only unless `rw`.
pub fn parse_volume(text: &str) -> Result<Volume> {
    let what = "--volume";
    let parts: Vec<&str> = text.split(':').collect();
    let (src, dst, writable) = match parts.as_slice() {
        [src, dst] => (*src, *dst, false),
        [src, dst, "ro"] => (*src, *dst, false),
        [src, dst, "rw"] => (*src, *dst, true),
        [_, _, mode] => {
            return Err(Error::invalid(what, format!("'{text}': mode '{mode}' is neither ro nor rw")));
        }
        _ => return Err(Error::invalid(what, format!("'{text}': expected SRC:DST[:ro|rw]"))),
    };
    Ok(Volume {
        source: host_source(what, src, FORBIDDEN_SOURCES)?,
        destination: sandbox_destination(what, dst)?,
        writable,
    })
}

/// `DST[:SIZE]`.
pub fn parse_tmpfs(text: &str) -> Result<Tmpfs> {
    let (dst, size) = match text.split_once(':') {
        Some((dst, size)) => (dst, Some(parse_size("--tmpfs", size)?)),
        None => (text, None),
    };
    Ok(Tmpfs { destination: sandbox_destination("--tmpfs", dst)?, size_bytes: size })
}

/// `SRC:DST`, SRC a regular file, DST under `/run/secrets`.
pub fn parse_secret(text: &str) -> Result<Secret> {
    let what = "--secret";
    let (src, dst) = text.split_once(':').ok_or_else(|| Error::invalid(what, format!("'{text}': expected SRC:DST")))?;
    let source = host_source(what, src, FORBIDDEN_SECRET_SOURCES)?;
    if !source.is_file() {
        return Err(Error::invalid(what, format!("'{src}' is not a regular file")));
    }
    let destination = normalise_absolute(what, dst)?;
    if !destination.starts_with(&format!("{SECRETS_DIR}/")) {
        return Err(Error::invalid(what, format!("'{dst}' must be a file under {SECRETS_DIR}/")));
    }
    Ok(Secret { source, destination })
}

/// A host directory for `--context`, shown read-only at `/context`.
pub fn parse_context(text: &str) -> Result<PathBuf> {
    let source = host_source("--context", text, FORBIDDEN_SOURCES)?;
    if !source.is_dir() {
        return Err(Error::invalid("--context", format!("'{text}' is not a directory")));
    }
    Ok(source)
}

/// `UID[:GID]`, numeric. The group defaults to the user id.
pub fn parse_user(text: &str) -> Result<UserSpec> {
    let number =
        |s: &str| decimal(s).ok_or_else(|| Error::invalid("--user", format!("'{text}': expected numeric UID[:GID]")));
    let (uid, gid) = match text.split_once(':') {
        Some((u, g)) => (number(u)?, number(g)?),
        None => (number(text)?, number(text)?),
    };
    Ok(UserSpec { uid, gid, additional_gids: Vec::new() })
}

pub fn parse_gid(text: &str) -> Result<u32> {
    decimal(text).ok_or_else(|| Error::invalid("--group-add", format!("'{text}' is not a numeric group id")))
}

/// Digits only: Rust's parsers also take a leading `+`, and one value
/// should have one spelling.
fn decimal<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

pub fn parse_workdir(text: &str) -> Result<String> {
    normalise_absolute("--workdir", text)
}

/// `N`, `NK`, `NM`, `NG` (binary units, case-insensitive), at least 1 byte.
pub fn parse_size(what: &str, text: &str) -> Result<u64> {
    let bad = || Error::invalid(what, format!("'{text}': expected a size such as 512K, 64M or 2G"));
    let (digits, shift) = match text.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&text[..text.len() - 1], 10),
        Some('M') => (&text[..text.len() - 1], 20),
        Some('G') => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let bytes = n.checked_mul(1u64 << shift).filter(|b| *b > 0 && *b <= i64::MAX as u64).ok_or_else(bad)?;
    Ok(bytes)
}

/// `N` or `N.FFF` CPUs, kept in thousandths.
pub fn parse_cpus(text: &str) -> Result<u64> {
    let bad = || Error::invalid("--cpus", format!("'{text}': expected a positive number such as 1, 2 or 0.5"));
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits_ok(whole) || !digits_ok(frac) || frac.len() > 3 {
        return Err(bad());
    }
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| bad())? };
    let frac: u64 = format!("{frac:0<3}").parse().map_err(|_| bad())?;
    let millis = whole.checked_mul(1000).and_then(|w| w.checked_add(frac)).ok_or_else(bad)?;
    if millis == 0 || millis > 1_000_000 {
        return Err(bad());
    }
    Ok(millis)
}

pub fn parse_pids(text: &str) -> Result<u64> {
    let n: u64 = decimal(text).ok_or_else(|| Error::invalid("--pids", format!("'{text}' is not a whole number")))?;
    if n < MIN_PIDS {
        return Err(Error::invalid(
            "--pids",
            format!("{n} is below {MIN_PIDS}: gVisor's own processes count against the limit and it could not boot"),
        ));
    }
    Ok(n)
}

pub fn parse_timeout(text: &str) -> Result<u64> {
    match decimal::<u64>(text) {
        Some(n) if n > 0 => Ok(n),
        _ => Err(Error::invalid("--timeout", format!("'{text}': expected a whole number of seconds above 0"))),
    }
}

/// runsc's platforms; which of them work depends on the runsc build and
/// the machine (this one's Debian build knows ptrace and kvm).
pub const PLATFORMS: &[&str] = &["ptrace", "kvm", "systrap"];

pub fn parse_platform(text: &str) -> Result<String> {
    if PLATFORMS.contains(&text) {
        Ok(text.to_string())
    } else {
        Err(Error::invalid("--platform", format!("unknown platform '{text}' (runsc knows {})", PLATFORMS.join(", "))))
    }
}

/// Reads an OCI seccomp profile, checking the pinned sha256 first.
pub fn load_seccomp_profile(file: &Path, pinned_sha256: Option<&str>) -> Result<serde_json::Value> {
    let what = "--seccomp-profile";
    let bytes = std::fs::read(file).map_err(|e| Error::invalid(what, format!("{}: {e}", file.display())))?;
    if let Some(pin) = pinned_sha256 {
        let pin = pin.to_ascii_lowercase();
        if pin.len() != 64 || !pin.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::invalid("--seccomp-profile-sha256", format!("'{pin}' is not 64 hex digits")));
        }
        let actual = hex(&Sha256::digest(&bytes));
        if actual != pin {
            return Err(Error::invalid(what, format!("{} has sha256 {actual}, not the pinned {pin}", file.display())));
        }
    }
    let profile: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::invalid(what, format!("{} is not JSON: {e}", file.display())))?;
    validate_seccomp(&profile).map_err(|why| Error::invalid(what, format!("{}: {why}", file.display())))?;
    Ok(profile)
}

const SECCOMP_ACTIONS: &[&str] = &[
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
];

/// The shape the runtime spec gives `linux.seccomp`, checked field by field
/// so that a typo is an error here rather than a silently open sandbox.
fn validate_seccomp(profile: &serde_json::Value) -> std::result::Result<(), String> {
    let obj = profile.as_object().ok_or("the profile must be a JSON object")?;
    const KNOWN: &[&str] =
        &["defaultAction", "defaultErrnoRet", "architectures", "flags", "listenerPath", "listenerMetadata", "syscalls"];
    if let Some(unknown) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!("unknown field '{unknown}'"));
    }
    let action_ok =
        |v: Option<&serde_json::Value>| v.and_then(|a| a.as_str()).is_some_and(|a| SECCOMP_ACTIONS.contains(&a));
    if !action_ok(obj.get("defaultAction")) {
        return Err(format!("defaultAction must be one of {}", SECCOMP_ACTIONS.join(", ")));
    }
    let strings = |v: &serde_json::Value| v.as_array().is_some_and(|a| a.iter().all(|s| s.is_string()));
    for list in ["architectures", "flags"] {
        if obj.get(list).is_some_and(|v| !strings(v)) {
            return Err(format!("{list} must be a list of strings"));
        }
    }
    for (i, rule) in obj.get("syscalls").and_then(|s| s.as_array()).into_iter().flatten().enumerate() {
        let names_ok = rule.get("names").is_some_and(|n| strings(n) && n.as_array().is_some_and(|a| !a.is_empty()));
        if !names_ok {
            return Err(format!("syscalls[{i}].names must be a non-empty list of strings"));
        }
        if !action_ok(rule.get("action")) {
            return Err(format!("syscalls[{i}].action must be one of {}", SECCOMP_ACTIONS.join(", ")));
        }
    }
    if obj.get("syscalls").is_some_and(|s| !s.is_array()) {
        return Err("syscalls must be a list".into());
    }
    Ok(())
}

/// Checks that need the whole request: a command to run, and no two user
/// mounts on the same destination.
pub fn check_request(req: &RunRequest) -> Result<()> {
    match req.command.first() {
        Some(program) if !program.is_empty() && !program.contains('\0') => {}
        _ => return Err(Error::invalid("COMMAND", "give the program to run after `--`")),
    }
    if req.command.iter().any(|a| a.contains('\0')) {
        return Err(Error::invalid("COMMAND", "an argument contains a NUL byte"));
    }
    let mut destinations: Vec<&str> = req
        .volumes
        .iter()
        .map(|v| v.destination.as_str())
        .chain(req.tmpfs.iter().map(|t| t.destination.as_str()))
        .chain(req.secrets.iter().map(|s| s.destination.as_str()))
        .chain(req.context.as_ref().map(|_| CONTEXT_DIR))
        .collect();
    destinations.sort_unstable();
    if let Some(pair) = destinations.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::invalid("mounts", format!("two mounts target {}", pair[0])));
    }
    Ok(())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Canonicalises a host path and refuses it at or under any of `forbidden`.
fn host_source(what: &str, text: &str, forbidden: &[&str]) -> Result<PathBuf> {
    if text.is_empty() {
        return Err(Error::invalid(what, "the source path is empty"));
    }
    let canonical = std::fs::canonicalize(text).map_err(|e| Error::invalid(what, format!("source '{text}': {e}")))?;
    if canonical == Path::new("/") {
        return Err(Error::invalid(what, "the host's root directory cannot be shared"));
    }
    if let Some(prefix) = forbidden.iter().find(|p| is_at_or_under(&canonical, Path::new(p))) {
        return Err(Error::invalid(
            what,
            format!("source '{text}' ({}) is under {prefix}, which is never shared", canonical.display()),
        ));
    }
    Ok(canonical)
}

/// An absolute, normalised sandbox path outside the trees nucleus owns.
fn sandbox_destination(what: &str, text: &str) -> Result<String> {
    let dst = normalise_absolute(what, text)?;
    if dst == "/" {
        return Err(Error::invalid(what, "the destination cannot be /"));
    }
    if let Some(prefix) = FORBIDDEN_DESTINATIONS.iter().find(|p| is_at_or_under(Path::new(&dst), Path::new(p))) {
        return Err(Error::invalid(what, format!("destination '{dst}' is under {prefix}, which nucleus manages")));
    }
    Ok(dst)
}

/// Absolute, no `..`, no NUL; `.` and repeated slashes folded away.
fn normalise_absolute(what: &str, text: &str) -> Result<String> {
    if !text.starts_with('/') {
        return Err(Error::invalid(what, format!("'{text}' is not an absolute path")));
    }
    if text.contains('\0') {
        return Err(Error::invalid(what, "the path contains a NUL byte"));
    }
    let mut parts = Vec::new();
    for component in Path::new(text).components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => parts.push(name.to_string_lossy().into_owned()),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::invalid(what, format!("'{text}' contains '..'")));
            }
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

fn is_at_or_under(path: &Path, prefix: &Path) -> bool {
    path.starts_with(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["a", "web-1", "A.b_c", &"x".repeat(128)] {
            assert!(parse_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", ".a", "a/b", "a b", "ä", &"x".repeat(129)] {
            assert!(parse_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_entries_and_path_replacement() {
        assert_eq!(parse_env("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert_eq!(parse_env("A=").unwrap(), ("A".into(), "".into()));
        assert!(parse_env("=x").is_err());
        assert!(parse_env("NOEQUALS").is_err());
        assert!(parse_env("A=x\0y").is_err());
        let env = build_env(&[("PATH".into(), "/bin".into()), ("X".into(), "1".into()), ("X".into(), "2".into())]);
        assert_eq!(env, vec!["PATH=/bin", "X=2"]);
        assert_eq!(build_env(&[]), vec![format!("PATH={DEFAULT_PATH}")]);
    }

    #[test]
    fn volumes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().to_str().unwrap();
        let v = parse_volume(&format!("{src}:/data")).unwrap();
        assert!(!v.writable);
        assert_eq!(v.destination, "/data");
        assert!(parse_volume(&format!("{src}:/data/./x//y:rw")).unwrap().writable);
        assert_eq!(parse_volume(&format!("{src}:/data/./x//y:rw")).unwrap().destination, "/data/x/y");
        for bad in [
            format!("{src}:/data:rx"),
            src.to_string(),
            format!("{src}:relative"),
            format!("{src}:/a/../b"),
            format!("{src}:/"),
            format!("{src}:/proc/x"),
            format!("{src}:/nix"),
            format!("{src}:/usr"),
            format!("{src}:/run/secrets/a"),
            "/:/data".to_string(),
            "/etc:/data".to_string(),
            "/proc/self:/data".to_string(),
            "/nix/store:/data".to_string(),
            "/does/not/exist:/data".to_string(),
            format!("{src}:/data:rw:x"),
        ] {
            assert!(parse_volume(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_cpus_pids() {
        assert_eq!(parse_size("x", "1").unwrap(), 1);
        assert_eq!(parse_size("x", "64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("x", "2g").unwrap(), 2 << 30);
        for bad in ["", "M", "0", "1.5G", "-1", "12T", "99999999999999999999", "9999999999G"] {
            assert!(parse_size("x", bad).is_err(), "{bad}");
        }
        assert_eq!(parse_cpus("0.5").unwrap(), 500);
        assert_eq!(parse_cpus("2").unwrap(), 2000);
        assert_eq!(parse_cpus(".25").unwrap(), 250);
        for bad in ["0", "", ".", "1.2345", "-1", "a", "1e3"] {
            assert!(parse_cpus(bad).is_err(), "{bad}");
        }
        assert!(parse_pids("49").is_err());
        assert!(parse_pids("+64").is_err());
        assert!(parse_timeout("+5").is_err());
        assert_eq!(parse_pids("64").unwrap(), 64);
    }

    #[test]
    fn users_and_secrets() {
        assert_eq!(parse_user("1000").unwrap(), UserSpec { uid: 1000, gid: 1000, additional_gids: vec![] });
        assert_eq!(parse_user("1:2").unwrap().gid, 2);
        assert!(parse_user("root").is_err());
        assert!(parse_user("+0").is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "x").unwrap();
        let f = file.to_str().unwrap();
        assert_eq!(parse_secret(&format!("{f}:/run/secrets/token")).unwrap().destination, "/run/secrets/token");
        assert!(parse_secret(&format!("{f}:/run/secrets")).is_err());
        assert!(parse_secret(&format!("{f}:/tmp/token")).is_err());
        assert!(parse_secret(&format!("{}:/run/secrets/d", dir.path().display())).is_err());
        // Secret managers keep their files under /run or /etc; the kernel's
        // views and the store stay refused.
        assert!(parse_secret("/etc/hostname:/run/secrets/h").is_ok());
        assert!(parse_secret("/proc/self/status:/run/secrets/s").is_err());
    }

    #[test]
    fn seccomp_profiles() {
        let ok = serde_json::json!({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]});
        assert!(validate_seccomp(&ok).is_ok());
        for bad in [
            serde_json::json!([]),
            serde_json::json!({"defaultAction":"ALLOW"}),
            serde_json::json!({"defaultAction":"SCMP_ACT_ALLOW","syscals":[]}),
            serde_json::json!({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":[],"action":"SCMP_ACT_ERRNO"}]}),
            serde_json::json!({"defaultAction":"SCMP_ACT_ALLOW","syscalls":{}}),
        ] {
            assert!(validate_seccomp(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hostnames() {
        assert!(parse_hostname("box-1.example").is_ok());
        for bad in ["", "-a", "a_b", "a..b", &"x".repeat(64)] {
            assert!(parse_hostname(bad).is_err(), "{bad}");
        }
    }
}
