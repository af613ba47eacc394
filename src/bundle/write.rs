//! Writing a bundle: a directory nucleus creates (or an empty one the user
//! names), filled through descriptors, fsynced, and removed again if any
//! step fails.

use std::collections::HashMap;

use super::layout::{CONFIG_FILE, RECORD_FILE};
use super::output_dir::{Accept, OutputDir};
use super::{BundleContents, EntryKind, SafeDir};
use crate::{Error, Result};

/// Writes `contents` into its layout's directory. On any failure, whatever
/// this call created is removed again.
/// A container's bundle must be new (`Accept::New`); `bundle --out` may
/// also fill an empty directory.
pub fn write(contents: &BundleContents, accept: Accept) -> Result<()> {
    let dir = contents.layout.dir();
    OutputDir::open(dir, 0o700, accept)?.fill(|handle| write_into(handle, contents))
}

fn write_into(dir: &SafeDir, contents: &BundleContents) -> Result<()> {
    let failed = |e| Error::bundle(contents.layout.dir(), "cannot be written", Some(e));
    let mut parents: HashMap<String, SafeDir> = HashMap::new();
    for entry in &contents.entries {
        // A stop takes the bundle back (a per-path bundle of a large
        // closure has thousands of mountpoints to make).
        crate::interrupt::check("writing the bundle")?;
        let (parent, name) = entry.path.rsplit_once('/').unwrap_or(("", entry.path.as_str()));
        if !parents.contains_key(parent) {
            let opened = if parent.is_empty() { dir.try_clone() } else { dir.subdirs(parent, 0o755) };
            parents.insert(parent.to_string(), opened.map_err(failed)?);
        }
        let Some(parent_dir) = parents.get(parent) else { continue };
        match &entry.kind {
            EntryKind::Directory => parent_dir.subdir(name, 0o755, false).map(drop),
            EntryKind::File => parent_dir.touch(name, 0o444),
            EntryKind::Symlink(target) => parent_dir.symlink(name, target),
        }
        .map_err(failed)?;
    }
    write_json(dir, CONFIG_FILE, &contents.config).map_err(failed)?;
    write_json(dir, RECORD_FILE, &contents.record).map_err(failed)?;
    for parent in parents.values() {
        parent.sync().map_err(failed)?;
    }
    dir.sync().map_err(failed)?;
    crate::interrupt::check_now("writing the bundle")
}

/// `value` as pretty JSON in a new file, streamed.
fn write_json(dir: &SafeDir, name: &str, value: &impl serde::Serialize) -> std::io::Result<()> {
    dir.write_new_file_with(name, 0o600, |out| serde_json::to_writer_pretty(out, value).map_err(std::io::Error::other))
}
