//! INSTALLABLE → StorePath: a store path or a path resolving to one
//! (`./result`), a `.nix` file for nix-build, or anything `nix build` takes.

use std::path::Path;
use std::process::Command;

use super::command::{nix, stdout_of};
use super::StorePath;
use crate::{Error, Result};

/// How nucleus will turn the user's INSTALLABLE into a store path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Installable {
    /// A filesystem path that must resolve (symlinks followed) to a store path.
    Path(String),
    /// A Nix expression file, built with `nix-build`.
    NixFile(String),
    /// Anything else (flake references above all), built with `nix build`.
    NixBuild(String),
}

impl Installable {
    /// Classifies the text without touching Nix; only the filesystem is asked
    /// whether a path exists.
    pub fn parse(text: &str) -> Result<Self> {
        if text.is_empty() {
            return Err(bad(text, "it is empty"));
        }
        if text.contains('\0') || text.contains('\n') {
            return Err(bad(text, "it contains a NUL or newline"));
        }
        let looks_like_path =
            text.starts_with('/') || text.starts_with("./") || text.starts_with("../") || text == "." || text == "..";
        let is_flake_ref = text.contains('#') || (text.contains(':') && !looks_like_path);
        if is_flake_ref {
            return Ok(Installable::NixBuild(text.to_string()));
        }
        if text.ends_with(".nix") {
            return if Path::new(text).is_file() {
                Ok(Installable::NixFile(text.to_string()))
            } else {
                Err(bad(text, "no such .nix file"))
            };
        }
        if looks_like_path || Path::new(text).symlink_metadata().is_ok() {
            return Ok(Installable::Path(text.to_string()));
        }
        Ok(Installable::NixBuild(text.to_string()))
    }

    /// Builds (if needed) and returns the top-level store path.
    pub fn realise(&self) -> Result<StorePath> {
        match self {
            Installable::Path(text) => resolve_path(text),
            Installable::NixFile(file) => {
                let mut cmd = Command::new("nix-build");
                cmd.args(["--no-out-link", file]);
                first_store_path(file, &stdout_of(cmd)?)
            }
            Installable::NixBuild(reference) => {
                let mut cmd = nix();
                cmd.args(["build", "--no-link", "--print-out-paths", reference]);
                first_store_path(reference, &stdout_of(cmd)?)
            }
        }
    }
}

fn resolve_path(text: &str) -> Result<StorePath> {
    let canonical = std::fs::canonicalize(text).map_err(|e| bad(text, &format!("cannot resolve it: {e}")))?;
    let resolved = canonical.to_str().ok_or_else(|| bad(text, "it resolves to a path that is not UTF-8"))?;
    // Whether Nix has registered it is for the closure query to find out:
    // asking here would cost another Nix process on every run.
    StorePath::parse(resolved).map_err(|_| {
        bad(
            text,
            &format!("it resolves to {resolved}, which is not a top-level /nix/store path; build it with Nix first"),
        )
    })
}

/// Nix prints one line per output; the first is the default output.
fn first_store_path(installable: &str, stdout: &str) -> Result<StorePath> {
    let line = stdout
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or_else(|| bad(installable, "Nix built it but printed no output path"))?;
    StorePath::parse(line)
}

fn bad(installable: &str, why: &str) -> Error {
    Error::Installable { installable: installable.to_string(), why: why.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_installables() {
        assert_eq!(Installable::parse(".#hello").unwrap(), Installable::NixBuild(".#hello".into()));
        assert_eq!(Installable::parse("nixpkgs#hello").unwrap(), Installable::NixBuild("nixpkgs#hello".into()));
        assert_eq!(
            Installable::parse("github:NixOS/nixpkgs#hello").unwrap(),
            Installable::NixBuild("github:NixOS/nixpkgs#hello".into())
        );
        assert_eq!(Installable::parse("/nix/store/x").unwrap(), Installable::Path("/nix/store/x".into()));
        assert_eq!(Installable::parse("./result").unwrap(), Installable::Path("./result".into()));
        assert!(Installable::parse("./missing.nix").is_err());
        assert!(Installable::parse("").is_err());
        assert!(Installable::parse("a\0b").is_err());
    }

    #[test]
    fn a_path_outside_the_store_is_refused() {
        let err = Installable::parse("/usr/bin").unwrap().realise().unwrap_err();
        assert!(err.to_string().contains("not a top-level /nix/store path"), "{err}");
    }

    #[test]
    fn picks_the_first_output_line() {
        let out = "\n/nix/store/g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-busybox\n/nix/store/g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-busybox-man\n";
        assert_eq!(first_store_path("x", out).unwrap().base_name(), "g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-busybox");
        assert!(first_store_path("x", "\n").is_err());
    }
}
