//! Writing a bundle: a directory nucleus creates (or an empty one the user
//! names), filled through descriptors, fsynced, and removed again if any
//! step fails.

use std::collections::HashMap;
use std::path::Path;

use super::layout::{CONFIG_FILE, RECORD_FILE};
use super::{BundleContents, EntryKind, SafeDir};
use crate::{Error, Result};

/// Whether the bundle directory is nucleus's to create or the user's to fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// Inside a container's state directory, which `parent` holds: the
    /// bundle directory must not exist.
    New,
    /// `bundle --out`: an empty directory, or one that does not exist yet.
    EmptyOrNew,
}

/// Writes `contents` into its layout's directory. On any failure, whatever
/// this call created is removed again.
pub fn write(contents: &BundleContents, destination: Destination) -> Result<()> {
    let dir = contents.layout.dir();
    let (handle, created) = open_destination(dir, destination)?;
    let written = write_into(&handle, contents).map_err(|e| Error::bundle(dir, "cannot be written", Some(e)));
    if written.is_err() {
        remove_partial(&handle, dir, created);
    }
    written
}

fn write_into(dir: &SafeDir, contents: &BundleContents) -> std::io::Result<()> {
    let mut parents: HashMap<String, SafeDir> = HashMap::new();
    for entry in &contents.entries {
        let (parent, name) = entry.path.rsplit_once('/').unwrap_or(("", entry.path.as_str()));
        if !parents.contains_key(parent) {
            let opened = if parent.is_empty() { dir.try_clone()? } else { dir.subdirs(parent, 0o755)? };
            parents.insert(parent.to_string(), opened);
        }
        let Some(parent_dir) = parents.get(parent) else { continue };
        match &entry.kind {
            EntryKind::Directory => drop(parent_dir.subdir(name, 0o755, false)?),
            EntryKind::File => parent_dir.touch(name, 0o444)?,
            EntryKind::Symlink(target) => parent_dir.symlink(name, target)?,
        }
    }
    let config = serde_json::to_vec_pretty(&contents.config).map_err(std::io::Error::other)?;
    let record = serde_json::to_vec_pretty(&contents.record).map_err(std::io::Error::other)?;
    dir.write_new_file(CONFIG_FILE, 0o600, &config)?;
    dir.write_new_file(RECORD_FILE, 0o600, &record)?;
    for parent in parents.values() {
        parent.sync()?;
    }
    dir.sync()
}

fn open_destination(dir: &Path, destination: Destination) -> Result<(SafeDir, bool)> {
    match dir.symlink_metadata() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let created = SafeDir::create(dir, 0o700).map_err(|e| Error::bundle(dir, "cannot be created", Some(e)))?;
            Ok((created, true))
        }
        Err(e) => Err(Error::bundle(dir, "cannot be examined", Some(e))),
        Ok(_) if destination == Destination::New => {
            Err(Error::bundle(dir, "already exists; nucleus writes bundles only into new directories", None))
        }
        Ok(meta) if meta.file_type().is_symlink() => {
            Err(Error::invalid("--out", format!("{} is a symlink; give a real directory", dir.display())))
        }
        Ok(meta) if !meta.is_dir() => Err(Error::invalid("--out", format!("{} is not a directory", dir.display()))),
        Ok(_) => {
            let handle = SafeDir::open(dir).map_err(|e| Error::bundle(dir, "cannot be opened", Some(e)))?;
            let entries = handle.entries().map_err(|e| Error::bundle(dir, "cannot be listed", Some(e)))?;
            if !entries.is_empty() {
                return Err(Error::invalid(
                    "--out",
                    format!("{} is not empty; nucleus never overwrites files", dir.display()),
                ));
            }
            Ok((handle, false))
        }
    }
}

/// Removes a half-written bundle: the directory if this call created it,
/// else only its contents (it was empty before).
fn remove_partial(handle: &SafeDir, dir: &Path, created: bool) {
    if created {
        if let (Some(parent), Some(name)) = (dir.parent(), dir.file_name().and_then(|n| n.to_str())) {
            if let Ok(parent) = SafeDir::open(parent) {
                let _ = parent.remove_tree(name);
            }
        }
    } else {
        for name in handle.entries().unwrap_or_default() {
            let _ = handle.remove_tree(&name);
        }
    }
}
