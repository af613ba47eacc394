//! Store paths: `/nix/store/<32 nixbase32 chars>-<name>`, and nothing below.

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

pub const STORE_DIR: &str = "/nix/store";

const HASH_LEN: usize = 32;

/// A top-level store path such as `/nix/store/abc…-hello-2.12`.
///
/// Only the top level: `/nix/store/abc…-hello/bin/hello` is a path *inside*
/// a store path, see [`StorePath::containing`].
///
/// Shared, not copied: a closure names each of its paths many times (as a
/// path, in references, in the rootfs plan, as a bind).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StorePath(Arc<str>);

impl StorePath {
    /// Parses an absolute top-level store path, refusing anything else.
    /// The error says why; each caller puts it in the terms of its stage.
    pub fn parse(text: &str) -> Result<Self, NotAStorePath> {
        let base = text
            .strip_prefix(STORE_DIR)
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or(NotAStorePath("it is not under /nix/store"))?;
        validate_base_name(base).map_err(NotAStorePath)?;
        Ok(StorePath(text.into()))
    }

    /// The store path that `path` lies in, if it is lexically inside one.
    /// `path` must already be absolute and free of `..` (e.g. canonical).
    pub fn containing(path: &Path) -> Option<Self> {
        let rest = path.strip_prefix(STORE_DIR).ok()?;
        let first = match rest.components().next()? {
            Component::Normal(name) => name.to_str()?,
            _ => return None,
        };
        validate_base_name(first).ok()?;
        Some(StorePath(format!("{STORE_DIR}/{first}").into()))
    }

    /// Whether the two are one shared string, not equal copies.
    #[cfg(test)]
    pub fn shares_text_with(&self, other: &StorePath) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn as_path(&self) -> &Path {
        Path::new(&*self.0)
    }

    /// `<hash>-<name>`, the entry in `/nix/store`.
    pub fn base_name(&self) -> &str {
        &self.0[STORE_DIR.len() + 1..]
    }

    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.as_path().join(rel)
    }

    /// The name Nix gives the package: the base name without the hash,
    /// and without a version, split as `builtins.parseDrvName` does (at the
    /// first `-` that is followed by something other than a letter).
    pub fn package_name(&self) -> &str {
        let name = &self.base_name()[HASH_LEN + 1..];
        let bytes = name.as_bytes();
        let split =
            (0..bytes.len()).find(|&i| bytes[i] == b'-' && bytes.get(i + 1).is_some_and(|c| !c.is_ascii_alphabetic()));
        match split {
            Some(i) => &name[..i],
            None => name,
        }
    }
}

/// Why a text is not a top-level store path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotAStorePath(pub &'static str);

impl fmt::Display for NotAStorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a store path: {}", self.0)
    }
}

impl std::error::Error for NotAStorePath {}

/// Checks `<hash>-<name>` the way Nix does: 32 nixbase32 characters, a dash,
/// then a name of `[A-Za-z0-9+\-._?=]` that does not start with a dot.
fn validate_base_name(base: &str) -> std::result::Result<(), &'static str> {
    let bytes = base.as_bytes();
    if bytes.len() < HASH_LEN + 2 || bytes[HASH_LEN] != b'-' {
        return Err("expected <32-character hash>-<name>");
    }
    if !bytes[..HASH_LEN].iter().all(|b| super::base32::is_digit(*b)) {
        return Err("the hash part is not nixbase32");
    }
    let name = &bytes[HASH_LEN + 1..];
    if name.len() > 211 {
        return Err("the name is longer than 211 characters");
    }
    if name[0] == b'.' {
        return Err("the name starts with a dot");
    }
    if !name.iter().all(|b| b.is_ascii_alphanumeric() || b"+-._?=".contains(b)) {
        return Err("the name has a character Nix does not allow");
    }
    Ok(())
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for StorePath {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl AsRef<Path> for StorePath {
    fn as_ref(&self) -> &Path {
        self.as_path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "/nix/store/g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-busybox";

    #[test]
    fn parses_a_top_level_path() {
        let p = StorePath::parse(GOOD).unwrap();
        assert_eq!(p.base_name(), "g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-busybox");
        assert_eq!(p.join("bin/sh"), PathBuf::from(format!("{GOOD}/bin/sh")));
    }

    #[test]
    fn refuses_what_is_not_a_store_path() {
        for bad in [
            "/usr/bin",
            "/nix/store",
            "/nix/store/",
            "/nix/store/short-x",
            "/nix/store/g04kv8hlcgkldv0zdyi9y4zpy6hkq0pe-busybox", // 'e' is not nixbase32
            "/nix/store/g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-",
            "/nix/store/g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-.hidden",
            "/nix/store/g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-a/b",
            "/nix/store/g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-a b",
            "nix/store/g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-busybox",
            "/nix/store/../etc/g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-x",
        ] {
            assert!(StorePath::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn package_names_drop_the_version() {
        let name =
            |base: &str| StorePath::parse(&format!("/nix/store/g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-{base}")).unwrap();
        assert_eq!(name("hello-2.12.1").package_name(), "hello");
        assert_eq!(name("busybox").package_name(), "busybox");
        assert_eq!(name("python3.11-requests-2.31").package_name(), "python3.11-requests");
        assert_eq!(name("nucleus-test-hook").package_name(), "nucleus-test-hook");
    }

    #[test]
    fn finds_the_containing_store_path() {
        let inner = PathBuf::from(format!("{GOOD}/bin/busybox"));
        assert_eq!(StorePath::containing(&inner).unwrap().as_str(), GOOD);
        assert_eq!(StorePath::containing(Path::new(GOOD)).unwrap().as_str(), GOOD);
        assert!(StorePath::containing(Path::new("/nix/store")).is_none());
        assert!(StorePath::containing(Path::new("/usr/bin/true")).is_none());
    }
}
