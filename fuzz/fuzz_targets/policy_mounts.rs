//! `--volume`, `--tmpfs`, `--secret` and `--context`, then the host checks.
//!
//! Each line of the input is tried as every one of the four options, with
//! the fixture directory as the working directory (a line starting with
//! `-v `, `-t `, `-s ` or `-c ` is tried without that prefix, and joins the
//! request as that option). The parsers are lexical:
//! an accepted mount equals a reference written here from the documented
//! grammar (the source made absolute against the working directory and
//! normalised, refused at `/` and under the host's sensitive trees, a
//! narrower list for secrets; the destination normalised and outside the
//! trees nucleus owns; secrets under `/run/secrets/`). The accepted mounts
//! together then go through `policy::mounts::check` (no two on one
//! destination, nothing inside a host directory) and, for sources inside
//! the fixture, through `HostSources::open`, which opens them without
//! following symlinks: what it opens is where the kernel says it is, which
//! is the canonical path the user wrote.
//!
//! `@` in the input stands for the fixture directory, which holds a file, a
//! directory, symlinks into /etc, /proc and / and a dangling one, so that
//! the fuzzer reaches real paths without guessing a temporary name.
#![no_main]

use std::os::fd::AsRawFd;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nucleus::host::sources::{HostSources, SourceKind};
use nucleus::policy;
use nucleus::request::{RunRequest, Secret, Volume};

#[path = "reference/paths.rs"]
mod paths;
use paths::normalised;

const FORBIDDEN_SOURCES: &[&str] = &["/proc", "/sys", "/dev", "/boot", "/etc", "/root", "/run", "/var/run", "/nix"];
/// Secrets are single files that services keep under /etc or /run.
const FORBIDDEN_SECRET_SOURCES: &[&str] = &["/proc", "/sys", "/dev", "/nix"];
const FORBIDDEN_DESTINATIONS: &[&str] =
    &["/proc", "/sys", "/dev", "/nix", "/bin", "/sbin", "/lib", "/lib64", "/usr", "/etc", "/run/secrets"];

/// A fixed directory under the fuzz crate's target/ (created once, shared by
/// runs and reproductions, so that a saved input means the same thing).
fn fixture() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/fixture"));
        if dir.join("dir/alias").symlink_metadata().is_err() {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("dir/sub")).unwrap();
            std::fs::write(dir.join("file"), b"x").unwrap();
            std::fs::write(dir.join("dir/file"), b"y").unwrap();
            std::os::unix::fs::symlink("/etc", dir.join("etc")).unwrap();
            std::os::unix::fs::symlink("/proc/self", dir.join("proc")).unwrap();
            std::os::unix::fs::symlink("/", dir.join("root")).unwrap();
            std::os::unix::fs::symlink("../..", dir.join("up")).unwrap();
            std::os::unix::fs::symlink("nowhere", dir.join("dangling")).unwrap();
            std::os::unix::fs::symlink("/etc/hostname", dir.join("dir/hostname")).unwrap();
            std::os::unix::fs::symlink("sub", dir.join("dir/alias")).unwrap();
        }
        dir.canonicalize().unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let cwd = fixture();
    let text = text.replace('@', cwd.to_str().unwrap());

    let mut req = RunRequest::new(None, None);
    for line in text.lines().take(8) {
        // `-v `, `-t `, `-s ` or `-c ` in front: the mount joins the request.
        let (option, line) = match line.get(..3) {
            Some(o @ ("-v " | "-t " | "-s " | "-c ")) => (o.as_bytes()[1], &line[3..]),
            _ => (0, line),
        };
        let volume = policy::parse_volume(line, cwd).ok();
        assert_eq!(volume, reference_volume(line, cwd), "parse_volume({line:?})");

        let tmpfs = policy::parse_tmpfs(line).ok();
        if let Some(t) = &tmpfs {
            check_destination(&t.destination, line);
            assert!(t.size_bytes.is_none_or(|s| s > 0), "{line:?}");
            assert_eq!(t.size_bytes.is_some(), line.contains(':'), "{line:?}");
            assert_eq!(Some(&t.destination), destination(line.split(':').next().unwrap()).as_ref(), "{line:?}");
        }

        let secret = policy::parse_secret(line, cwd).ok();
        assert_eq!(secret, reference_secret(line, cwd), "parse_secret({line:?})");

        let context = policy::parse_context(line, cwd).ok();
        assert_eq!(context, source(line, cwd, FORBIDDEN_SOURCES), "parse_context({line:?})");

        match option {
            b'v' => req.volumes.extend(volume),
            b't' => req.tmpfs.extend(tmpfs),
            b's' => req.secrets.extend(secret),
            b'c' if req.context.is_none() => req.context = context,
            _ => {}
        }
    }

    let together = policy::mounts::check(&req.volumes, &req.tmpfs, &req.secrets, req.context.as_deref());
    let mut targets: Vec<(&str, bool)> = req.volumes.iter().map(|v| (v.destination.as_str(), true)).collect();
    targets.extend(req.tmpfs.iter().map(|t| (t.destination.as_str(), false)));
    targets.extend(req.secrets.iter().map(|s| (s.destination.as_str(), false)));
    if req.context.is_some() {
        targets.push((policy::CONTEXT_DIR, true));
    }
    let clash = targets.iter().enumerate().any(|(i, a)| targets[..i].iter().any(|b| a.0 == b.0));
    let nested = targets
        .iter()
        .filter(|outer| outer.1)
        .any(|outer| targets.iter().any(|inner| inner.0 != outer.0 && Path::new(inner.0).starts_with(outer.0)));
    assert_eq!(together.is_ok(), !clash && !nested, "mounts::check on {targets:?}");

    // The host half, for what lies in the fixture: a source is opened only
    // where no symlink leads, so it is where it was named.
    let inside = |p: &Path| p.starts_with(cwd);
    req.volumes.retain(|v| inside(&v.source));
    req.secrets.retain(|s| inside(&s.source));
    req.context = req.context.filter(|c| inside(c));
    req.tmpfs.clear();
    let Ok(sources) = HostSources::open(&req) else { return };
    let opened = sources.volumes.iter().chain(&sources.context);
    for (source, named) in opened.zip(req.volumes.iter().map(|v| &v.source).chain(&req.context)) {
        let actual = std::fs::read_link(format!("/proc/self/fd/{}", source.fd.as_raw_fd())).unwrap();
        assert_eq!(&actual, named, "{text:?}: opened elsewhere");
        assert_eq!(std::fs::canonicalize(named).unwrap(), *named, "{text:?}: not canonical");
        let meta = named.symlink_metadata().unwrap();
        let kind = if meta.is_dir() { SourceKind::Directory } else { SourceKind::File };
        assert!(meta.is_dir() || meta.is_file());
        assert_eq!(source.kind, kind, "{text:?}");
    }
    assert!(sources.context.as_ref().is_none_or(|c| c.kind == SourceKind::Directory));
    for (bytes, secret) in sources.secrets.iter().zip(&req.secrets) {
        assert_eq!(std::fs::canonicalize(&secret.source).unwrap(), secret.source, "{text:?}: not canonical");
        assert_eq!(bytes, &std::fs::read(&secret.source).unwrap(), "{text:?}");
    }
});

/// `SRC:DST[:ro|rw]`.
fn reference_volume(text: &str, cwd: &Path) -> Option<Volume> {
    let parts: Vec<&str> = text.split(':').collect();
    let writable = match parts.get(2).copied() {
        None | Some("ro") => false,
        Some("rw") => true,
        Some(_) => return None,
    };
    if parts.len() > 3 {
        return None;
    }
    Some(Volume {
        source: source(parts[0], cwd, FORBIDDEN_SOURCES)?,
        destination: destination(parts.get(1)?)?,
        writable,
    })
}

/// `SRC:DST` (split at the first `:`), DST a file under `/run/secrets/`.
fn reference_secret(text: &str, cwd: &Path) -> Option<Secret> {
    let (src, dst) = text.split_once(':')?;
    let destination = normalised(dst)?;
    let name = destination.strip_prefix("/run/secrets/")?;
    assert!(!name.is_empty());
    Some(Secret { source: source(src, cwd, FORBIDDEN_SECRET_SOURCES)?, destination })
}

/// A host path: absolute against `cwd`, `.` and `..` resolved by name (`..`
/// at the root stays there), not `/`, not at or under `forbidden`.
fn source(text: &str, cwd: &Path, forbidden: &[&str]) -> Option<PathBuf> {
    if text.is_empty() || text.contains('\0') {
        return None;
    }
    let joined = if text.starts_with('/') { PathBuf::from(text) } else { cwd.join(text) };
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in joined.components() {
        match c {
            Component::Normal(name) => parts.push(name),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    if parts.is_empty() {
        return None;
    }
    let path: PathBuf = std::iter::once(std::ffi::OsStr::new("/")).chain(parts).collect();
    if forbidden.iter().any(|f| path.starts_with(f)) {
        return None;
    }
    check_source(&path, text, forbidden);
    Some(path)
}

/// A sandbox path: normalised, not `/`, not at or under what nucleus owns.
fn destination(text: &str) -> Option<String> {
    let dst = normalised(text)?;
    if dst == "/" || FORBIDDEN_DESTINATIONS.iter().any(|f| Path::new(&dst).starts_with(f)) {
        return None;
    }
    check_destination(&dst, text);
    Some(dst)
}

/// What an accepted source must be, whichever way it was computed.
fn check_source(source: &Path, text: &str, forbidden: &[&str]) {
    let shown = source.to_str().unwrap();
    assert!(is_normalised(shown) && shown != "/", "{text:?} -> {shown}");
    for prefix in forbidden {
        assert!(!source.starts_with(prefix), "{text:?} -> {shown} is under {prefix}");
    }
}

fn check_destination(dst: &str, text: &str) {
    assert!(is_normalised(dst), "{text:?} -> {dst}");
    assert_ne!(dst, "/", "{text:?}");
    for prefix in FORBIDDEN_DESTINATIONS {
        assert!(!Path::new(dst).starts_with(prefix), "{text:?} -> {dst} is under {prefix}");
    }
}

/// `/a/b`: absolute, no empty, `.` or `..` component, no NUL, no trailing slash.
fn is_normalised(path: &str) -> bool {
    path == "/"
        || (path.starts_with('/')
            && !path.contains('\0')
            && path[1..].split('/').all(|c| !c.is_empty() && c != "." && c != ".."))
}
