//! The directory a command writes its output into (`bundle --out`,
//! `image --out`, a container's bundle): one nucleus creates, or an empty
//! real directory the user names, and never anything else, so nothing of
//! the user's is ever overwritten. A failed write is taken back.

use std::path::{Path, PathBuf};

use super::SafeDir;
use crate::{Error, Result};

/// Which directories are acceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    /// Only a directory created now.
    New,
    /// A directory created now, or an existing empty one (not a symlink).
    NewOrEmpty,
}

/// An output directory, open, and whether this call created it.
pub struct OutputDir {
    pub handle: SafeDir,
    path: PathBuf,
    created: bool,
}

impl OutputDir {
    /// Creates `dir` with `mode`, or opens it when `accept` allows an
    /// existing empty directory. Refusals name `--out`, where users give it.
    pub fn open(dir: &Path, mode: u32, accept: Accept) -> Result<OutputDir> {
        let refuse = |why: &str| Error::invalid("--out", format!("{} {why}", dir.display()));
        let handle = match dir.symlink_metadata() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let handle = SafeDir::create(dir, mode).map_err(|e| Error::io("cannot create", dir, e))?;
                return Ok(OutputDir { handle, path: dir.to_path_buf(), created: true });
            }
            Err(e) => return Err(Error::io("cannot examine", dir, e)),
            Ok(_) if accept == Accept::New => {
                return Err(Error::bundle(dir, "already exists; nucleus writes only into new directories", None));
            }
            Ok(meta) if meta.file_type().is_symlink() => return Err(refuse("is a symlink; give a real directory")),
            Ok(meta) if !meta.is_dir() => {
                return Err(refuse("exists and is not a directory; nucleus never overwrites files"));
            }
            Ok(_) => SafeDir::open(dir).map_err(|e| Error::io("cannot open", dir, e))?,
        };
        let entries = handle.entries().map_err(|e| Error::io("cannot list", dir, e))?;
        if !entries.is_empty() {
            return Err(refuse("is not empty; nucleus never overwrites files"));
        }
        Ok(OutputDir { handle, path: dir.to_path_buf(), created: false })
    }

    /// Takes a failed write back: removes the directory if this call
    /// created it, else only what was written into it (it was empty).
    pub fn discard(&self) {
        if self.created {
            if let (Some(parent), Some(name)) = (self.path.parent(), self.path.file_name().and_then(|n| n.to_str())) {
                if let Ok(parent) = SafeDir::open(parent) {
                    let _ = parent.remove_tree(name);
                }
            }
        } else {
            for name in self.handle.entries().unwrap_or_default() {
                let _ = self.handle.remove_tree(&name);
            }
        }
    }

    /// Runs `fill` on the directory, and takes everything back if it fails.
    pub fn fill<T>(&self, fill: impl FnOnce(&SafeDir) -> Result<T>) -> Result<T> {
        let filled = fill(&self.handle);
        if filled.is_err() {
            self.discard();
        }
        filled
    }
}
