//! What is allowed. Every value the user gives is parsed here into the typed
//! pieces of a [`RunRequest`](crate::request::RunRequest). These rules are
//! pure: they look at text only, never at the host, so `nucleus check-args`
//! applies exactly them and a refusal here leaves nothing behind. What can
//! only be judged on the host (does a source exist, is it a symlink, who owns
//! it) is checked later on an open descriptor, in [`crate::host`].

pub mod hooks;
pub mod mounts;
pub mod seccomp;

use std::path::{Component, Path, PathBuf};

use crate::request::{PortMapping, Secret, Tmpfs, UserSpec, Volume, DEFAULT_PATH};
use crate::{Error, Result};

/// Host paths that may never be shown to a workload: the kernel's views, the
/// host's configuration and secrets, runtime state, and the whole store with
/// its database and daemon socket.
pub const FORBIDDEN_SOURCES: &[&str] = &["/proc", "/sys", "/dev", "/boot", "/etc", "/root", "/run", "/var/run", "/nix"];

/// Secrets are files the operator chose to hand over (NixOS secret managers
/// and systemd credentials keep them under /run and /etc), so only the
/// kernel's views and the world-readable store are refused.
pub const FORBIDDEN_SECRET_SOURCES: &[&str] = &["/proc", "/sys", "/dev", "/nix"];

/// Sandbox paths nucleus owns: the kernel's views, the store, the read-only
/// system directories, and the secrets directory.
pub const FORBIDDEN_DESTINATIONS: &[&str] =
    &["/proc", "/sys", "/dev", "/nix", "/bin", "/sbin", "/lib", "/lib64", "/usr", "/etc", "/run/secrets"];

pub const SECRETS_DIR: &str = "/run/secrets";
pub const CONTEXT_DIR: &str = "/context";

/// runsc cannot boot its own processes under a smaller pids limit.
pub const MIN_PIDS: u64 = 50;

/// A name is a directory name in the state root and part of a cgroup's
/// name; runsc never sees it (its id is a hash, see `ContainerLayout`).
pub const MAX_NAME_LEN: usize = 128;

/// The kernel refuses a CFS quota under 1 ms; with nucleus's 100 ms period
/// that is a hundredth of a CPU.
pub const MIN_CPU_MILLIS: u64 = 10;

/// `--timeout` and `--boot-timeout` are bounded by what a 32-bit timer
/// holds, so that no value is silently truncated.
pub const MAX_TIMEOUT_SECONDS: u64 = u32::MAX as u64;

/// `[A-Za-z0-9][A-Za-z0-9_.-]{0,127}`: safe as a file name and a cgroup name.
pub fn parse_name(text: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(b));
    if ok {
        Ok(text.to_string())
    } else {
        Err(Error::invalid(
            "--name",
            format!("'{text}': use 1-{MAX_NAME_LEN} characters of A-Z a-z 0-9 _ . -, starting with a letter or digit"),
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

/// One `-e` value: `KEY=VALUE`, or a bare `KEY` that takes the caller's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvArg {
    Set(String, String),
    Inherit(String),
}

/// `KEY=VALUE` or `KEY`: KEY non-empty and without blanks (podman refuses
/// them too: `KEY =x` is a mistake, not a name ending in a space), no NUL
/// anywhere; the value is kept verbatim.
pub fn parse_env(text: &str) -> Result<EnvArg> {
    if text.contains('\0') {
        return Err(Error::invalid("--env", "an entry contains a NUL byte"));
    }
    let (key, value) = match text.split_once('=') {
        Some((key, value)) => (key, Some(value)),
        None => (text, None),
    };
    if text.is_empty() {
        return Err(Error::invalid("--env", "an entry is empty"));
    }
    if key.is_empty() {
        return Err(Error::invalid("--env", format!("'{text}': the name before '=' is empty")));
    }
    if key.contains(char::is_whitespace) {
        return Err(Error::invalid("--env", format!("'{key}': a name cannot contain blanks")));
    }
    Ok(match value {
        Some(value) => EnvArg::Set(key.to_string(), value.to_string()),
        None => EnvArg::Inherit(key.to_string()),
    })
}

/// Entries of an environment file in podman's format: `KEY=VALUE` lines,
/// `#` comments and blank lines; blanks before KEY are dropped, the value
/// is kept verbatim (no quotes removed, trailing blanks kept); a bare `KEY`
/// takes the caller's value.
pub fn parse_env_file(text: &str, file: &Path) -> Result<Vec<EnvArg>> {
    let mut entries = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let entry = parse_env(trimmed).map_err(|e| {
            Error::invalid("--env-file", format!("{} line {}: {}", file.display(), number + 1, reason_of(&e)))
        })?;
        entries.push(entry);
    }
    Ok(entries)
}

fn reason_of(e: &Error) -> String {
    match e {
        Error::InvalidArgument { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

/// The workload's environment: the default `PATH` first, then the entries
/// in order. A later entry replaces an earlier one with the same key, so
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

/// `SRC:DST[:ro|rw]`, read-only unless `rw`. SRC is made absolute against
/// `cwd` and normalised, but not resolved: the host is asked later.
pub fn parse_volume(text: &str, cwd: &Path) -> Result<Volume> {
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
        source: host_source(what, src, cwd, FORBIDDEN_SOURCES)?,
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

/// `SRC:DST`, DST a file under `/run/secrets`.
pub fn parse_secret(text: &str, cwd: &Path) -> Result<Secret> {
    let what = "--secret";
    let (src, dst) = text.split_once(':').ok_or_else(|| Error::invalid(what, format!("'{text}': expected SRC:DST")))?;
    let source = host_source(what, src, cwd, FORBIDDEN_SECRET_SOURCES)?;
    let destination = normalise_absolute(what, dst)?;
    if !destination.starts_with(&format!("{SECRETS_DIR}/")) {
        return Err(Error::invalid(what, format!("'{dst}' must be a file under {SECRETS_DIR}/")));
    }
    Ok(Secret { source, destination })
}

/// A host directory for `--context`, shown read-only at `/context`.
pub fn parse_context(text: &str, cwd: &Path) -> Result<PathBuf> {
    host_source("--context", text, cwd, FORBIDDEN_SOURCES)
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

/// `N`, `NK`, `NM`, `NG` (binary units, case-insensitive), at least 1 byte
/// and at most what a signed 64-bit limit holds.
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
    n.checked_mul(1u64 << shift).filter(|b| *b > 0 && *b <= i64::MAX as u64).ok_or_else(bad)
}

/// `N` or `N.FFF` CPUs, kept in thousandths; at least 0.01.
pub fn parse_cpus(text: &str) -> Result<u64> {
    let bad =
        || Error::invalid("--cpus", format!("'{text}': expected a number of CPUs from 0.01 to 1000, such as 0.5"));
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
    if millis < MIN_CPU_MILLIS {
        return Err(Error::invalid(
            "--cpus",
            format!("'{text}' is below 0.01: the kernel refuses a CPU quota under 1 ms per 100 ms"),
        ));
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

/// Whole seconds from 1 to [`MAX_TIMEOUT_SECONDS`].
pub fn parse_seconds(option: &str, text: &str) -> Result<u64> {
    match decimal::<u64>(text) {
        Some(n) if (1..=MAX_TIMEOUT_SECONDS).contains(&n) => Ok(n),
        _ => Err(Error::invalid(
            option,
            format!("'{text}': expected a whole number of seconds from 1 to {MAX_TIMEOUT_SECONDS}"),
        )),
    }
}

/// runsc's platforms; which of them work depends on the runsc build and
/// the machine (Debian's 2022 build knows ptrace and kvm).
pub const PLATFORMS: &[&str] = &["ptrace", "kvm", "systrap"];

pub fn parse_platform(text: &str) -> Result<String> {
    if PLATFORMS.contains(&text) {
        Ok(text.to_string())
    } else {
        Err(Error::invalid("--platform", format!("unknown platform '{text}' (runsc knows {})", PLATFORMS.join(", "))))
    }
}

/// `[HOSTIP:]HOSTPORT:PORT[/tcp]`; the host address defaults to loopback
/// and may be written in one pair of brackets (`[::1]:8080:80`).
pub fn parse_publish(text: &str) -> Result<PortMapping> {
    let bad = |why: &str| Error::invalid("--publish", format!("'{text}': {why}"));
    let spec = match text.rsplit_once('/') {
        Some((spec, "tcp")) => spec,
        Some((_, proto)) => return Err(bad(&format!("protocol '{proto}' is not supported (only tcp)"))),
        None => text,
    };
    let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
    let (host_ip, host_port, port) = match parts.as_slice() {
        [port, host_port] => ("127.0.0.1", *host_port, *port),
        [port, host_port, ip] => {
            (ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')).unwrap_or(ip), *host_port, *port)
        }
        _ => return Err(bad("expected [HOSTIP:]HOSTPORT:PORT[/tcp]")),
    };
    let port_number = |p: &str| decimal::<u16>(p).filter(|n| *n > 0);
    let host_ip: std::net::IpAddr = host_ip.parse().map_err(|_| bad(&format!("'{host_ip}' is not an IP address")))?;
    Ok(PortMapping {
        host_ip,
        host_port: port_number(host_port)
            .ok_or_else(|| bad(&format!("'{host_port}' is not a port from 1 to 65535")))?,
        port: port_number(port).ok_or_else(|| bad(&format!("'{port}' is not a port from 1 to 65535")))?,
    })
}

pub fn parse_port(option: &str, text: &str) -> Result<u16> {
    decimal::<u16>(text)
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::invalid(option, format!("'{text}' is not a port from 1 to 65535")))
}

/// `NAME` for `--arg`/`--argstr`: a Nix identifier.
pub fn parse_nix_identifier(option: &str, text: &str) -> Result<String> {
    let mut chars = text.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || "_'-".contains(c)) {
        Ok(text.to_string())
    } else {
        Err(Error::invalid(option, format!("'{text}' is not a Nix identifier")))
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An absolute, lexically normalised host path, refused at `/` and at or
/// under any of `forbidden`. Symlinks are not followed here: the host path
/// is opened later without following any.
pub fn host_source(what: &str, text: &str, cwd: &Path, forbidden: &[&str]) -> Result<PathBuf> {
    if text.is_empty() {
        return Err(Error::invalid(what, "the source path is empty"));
    }
    if text.contains('\0') {
        return Err(Error::invalid(what, "the source path contains a NUL byte"));
    }
    let joined = if text.starts_with('/') { PathBuf::from(text) } else { cwd.join(text) };
    let normal = normalise_lexically(&joined);
    if normal == Path::new("/") {
        return Err(Error::invalid(what, "the host's root directory cannot be shared"));
    }
    if let Some(prefix) = forbidden_prefix(&normal, forbidden) {
        return Err(Error::invalid(
            what,
            format!("source '{text}' ({}) is under {prefix}, which is never shared", normal.display()),
        ));
    }
    Ok(normal)
}

/// The first of `forbidden` that `path` is at or under.
pub fn forbidden_prefix<'a>(path: &Path, forbidden: &[&'a str]) -> Option<&'a str> {
    forbidden.iter().copied().find(|p| path.starts_with(p))
}

/// `/a/./b//c/../d` → `/a/b/d`. Only for absolute paths; `..` at the root
/// stays at the root, as the kernel does.
pub fn normalise_lexically(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// An absolute, normalised sandbox path outside the trees nucleus owns.
pub fn sandbox_destination(what: &str, text: &str) -> Result<String> {
    let dst = normalise_absolute(what, text)?;
    if dst == "/" {
        return Err(Error::invalid(what, "the destination cannot be /"));
    }
    if let Some(prefix) = forbidden_prefix(Path::new(&dst), FORBIDDEN_DESTINATIONS) {
        return Err(Error::invalid(what, format!("destination '{dst}' is under {prefix}, which nucleus manages")));
    }
    Ok(dst)
}

/// Absolute, no `..`, no NUL; `.` and repeated slashes folded away.
pub fn normalise_absolute(what: &str, text: &str) -> Result<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cwd() -> PathBuf {
        PathBuf::from("/home/u")
    }

    #[test]
    fn names() {
        for good in ["a", "web-1", "A.b_c", &"x".repeat(MAX_NAME_LEN)] {
            assert!(parse_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", ".a", "a/b", "a b", "ä", "a\nb", &"x".repeat(MAX_NAME_LEN + 1)] {
            assert!(matches!(parse_name(bad), Err(Error::InvalidArgument { .. })), "{bad}");
        }
    }

    #[test]
    fn env_entries_files_and_path_replacement() {
        assert_eq!(parse_env("A=b=c").unwrap(), EnvArg::Set("A".into(), "b=c".into()));
        assert_eq!(parse_env("A=").unwrap(), EnvArg::Set("A".into(), "".into()));
        assert_eq!(parse_env("HOME").unwrap(), EnvArg::Inherit("HOME".into()));
        assert!(parse_env("=x").is_err());
        assert!(parse_env("").is_err());
        assert!(parse_env("A=x\0y").is_err());
        assert!(matches!(parse_env("A B=1"), Err(Error::InvalidArgument { .. })));
        assert!(matches!(parse_env("A\t"), Err(Error::InvalidArgument { .. })));
        let file = "# comment\n\nA=1\n  # indented comment\nB=two words \n\t  C\nD=\"q\"\r\n";
        let parsed = parse_env_file(file, Path::new("f")).unwrap();
        assert_eq!(
            parsed,
            [
                EnvArg::Set("A".into(), "1".into()),
                EnvArg::Set("B".into(), "two words ".into()),
                EnvArg::Inherit("C".into()),
                EnvArg::Set("D".into(), "\"q\"".into()),
            ]
        );
        for bad in ["=x\n", "KEY =x\n", " =x\n"] {
            assert!(matches!(parse_env_file(bad, Path::new("f")), Err(Error::InvalidArgument { .. })), "{bad:?}");
        }
        let env = build_env(&[("PATH".into(), "/bin".into()), ("X".into(), "1".into()), ("X".into(), "2".into())]);
        assert_eq!(env, vec!["PATH=/bin", "X=2"]);
        assert_eq!(build_env(&[]), vec![format!("PATH={DEFAULT_PATH}")]);
    }

    #[test]
    fn volumes_are_judged_lexically() {
        let v = parse_volume("/srv/data:/data", &cwd()).unwrap();
        assert!(!v.writable);
        assert_eq!((v.source.as_path(), v.destination.as_str()), (Path::new("/srv/data"), "/data"));
        assert_eq!(parse_volume("data:/d/./x//y:rw", &cwd()).unwrap().source, Path::new("/home/u/data"));
        assert_eq!(parse_volume("/srv/data:/d/./x//y:rw", &cwd()).unwrap().destination, "/d/x/y");
        for bad in [
            "/srv:/data:rx",
            "/srv",
            "/srv:relative",
            "/srv:/a/../b",
            "/srv:/",
            "/srv:/proc/x",
            "/srv:/nix",
            "/srv:/usr",
            "/srv:/run/secrets/a",
            "/:/data",
            "/etc:/data",
            "/tmp/../proc:/data",
            "/proc/self:/data",
            "/nix/store:/data",
            "../../../../etc:/data",
            "/srv:/data:rw:x",
            ":/data",
        ] {
            assert!(matches!(parse_volume(bad, &cwd()), Err(Error::InvalidArgument { .. })), "{bad}");
        }
    }

    #[test]
    fn sizes_cpus_pids_seconds() {
        assert_eq!(parse_size("x", "1").unwrap(), 1);
        assert_eq!(parse_size("x", "64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("x", "2g").unwrap(), 2 << 30);
        for bad in ["", "M", "0", "1.5G", "-1", "12T", "99999999999999999999", "9999999999G", "99999999999G"] {
            assert!(parse_size("x", bad).is_err(), "{bad}");
        }
        assert_eq!(parse_cpus("0.5").unwrap(), 500);
        assert_eq!(parse_cpus("2").unwrap(), 2000);
        assert_eq!(parse_cpus(".25").unwrap(), 250);
        assert_eq!(parse_cpus("0.01").unwrap(), 10);
        for bad in ["0", "", ".", "1.2345", "-1", "a", "1e3", "0.001", "0.009", "1001"] {
            assert!(parse_cpus(bad).is_err(), "{bad}");
        }
        assert!(parse_pids("49").is_err());
        assert!(parse_pids("+64").is_err());
        assert_eq!(parse_pids("64").unwrap(), 64);
        assert_eq!(parse_seconds("--timeout", "4294967295").unwrap(), 4_294_967_295);
        for bad in ["0", "+5", "4294967296", "99999999999999999999999", "soon", ""] {
            assert!(parse_seconds("--timeout", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn users_and_secrets_need_no_host_files() {
        assert_eq!(parse_user("1000").unwrap(), UserSpec { uid: 1000, gid: 1000, additional_gids: vec![] });
        assert_eq!(parse_user("1:2").unwrap().gid, 2);
        assert!(parse_user("root").is_err());
        assert!(parse_user("+0").is_err());
        let s = parse_secret("/var/lib/s/token:/run/secrets/token", &cwd()).unwrap();
        assert_eq!((s.source.as_path(), s.destination.as_str()), (Path::new("/var/lib/s/token"), "/run/secrets/token"));
        assert!(parse_secret("/x:/run/secrets", &cwd()).is_err());
        assert!(parse_secret("/x:/tmp/token", &cwd()).is_err());
        // Secret managers and systemd credentials keep their files under
        // /run or /etc; the kernel's views and the store stay refused.
        assert!(parse_secret("/run/credentials/u/token:/run/secrets/t", &cwd()).is_ok());
        assert!(parse_secret("/etc/secret:/run/secrets/t", &cwd()).is_ok());
        assert!(parse_secret("/proc/self/status:/run/secrets/s", &cwd()).is_err());
        assert!(parse_secret("/nix/store/x:/run/secrets/s", &cwd()).is_err());
    }

    #[test]
    fn published_ports() {
        let p = parse_publish("8080:80").unwrap();
        assert_eq!((p.host_ip.to_string().as_str(), p.host_port, p.port), ("127.0.0.1", 8080, 80));
        let p = parse_publish("0.0.0.0:8443:443/tcp").unwrap();
        assert_eq!((p.host_ip.to_string().as_str(), p.host_port, p.port), ("0.0.0.0", 8443, 443));
        assert_eq!(parse_publish("[::1]:9000:90").unwrap().host_ip.to_string(), "::1");
        assert_eq!(parse_publish("[127.0.0.2]:9000:90").unwrap().host_ip.to_string(), "127.0.0.2");
        // One pair of brackets, not any number of either (found by
        // fuzz/fuzz_targets/policy_values.rs).
        for bad in ["[[::1]]:80:80", "[::1:80:80", "::1]:80:80", "[]:80:80", "[[1.2.3.4]:80:80"] {
            assert!(matches!(parse_publish(bad), Err(Error::InvalidArgument { .. })), "{bad}");
        }
        for bad in ["80", "0:80", "8080:0", "8080:80/udp", "x:80", "1.2.3:80:80", "65536:1", "a:b:c:d"] {
            assert!(parse_publish(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hostnames() {
        assert!(parse_hostname("box-1.example").is_ok());
        for bad in ["", "-a", "a_b", "a..b", &"x".repeat(64)] {
            assert!(parse_hostname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lexical_normalisation() {
        assert_eq!(normalise_lexically(Path::new("/a/./b//c/../d")), Path::new("/a/b/d"));
        assert_eq!(normalise_lexically(Path::new("/../../etc")), Path::new("/etc"));
        assert!(parse_nix_identifier("--arg", "busyboxFile").is_ok());
        assert!(parse_nix_identifier("--arg", "1x").is_err());
    }
}
