//! The NAR hash of a store path rebuilt from a flat list of entries, as a
//! tar layer holds them.
//!
//! NAR (see [`crate::nix::nar`]) nests every directory's entries, sorted by
//! the raw bytes of their names, inside the directory's own node. A layer
//! lists the same tree flat, one entry per path, in the same depth-first
//! order. This builder turns that flat list back into the NAR stream and
//! hashes it as it goes, so neither building nor verifying an image holds
//! a store path in memory. An entry out of NAR order (a child before its
//! directory, siblings unsorted or repeated) is an error: nucleus writes
//! layers in NAR order, so anything else is not the image it wrote.

use crate::sha256::BulkSha256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node<'a> {
    Directory,
    Regular { executable: bool, size: u64 },
    Symlink { target: &'a [u8] },
}

/// An open directory: its name (none for the store path itself) and the
/// name of its last entry so far.
struct OpenDir {
    name: Option<Vec<u8>>,
    last_child: Option<Vec<u8>>,
}

struct PendingFile {
    remaining: u64,
    size: u64,
    in_entry: bool,
}

pub struct NarBuilder {
    sha: BulkSha256,
    open: Vec<OpenDir>,
    file: Option<PendingFile>,
    started: bool,
}

impl Default for NarBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl NarBuilder {
    pub fn new() -> Self {
        let mut builder = NarBuilder { sha: BulkSha256::new(), open: Vec::new(), file: None, started: false };
        builder.str(b"nix-archive-1");
        builder
    }

    /// The next entry, at `components` below the store path (none for the
    /// store path itself, which must come first).
    pub fn entry(&mut self, components: &[&[u8]], node: Node<'_>) -> Result<(), String> {
        if self.file.is_some() {
            return Err("an entry starts before the previous file's contents ended".into());
        }
        let Some((name, parents)) = components.split_last() else {
            if self.started {
                return Err("the store path itself appears twice".into());
            }
            self.started = true;
            return self.node(node, false);
        };
        if !self.started {
            return Err("an entry comes before the store path itself".into());
        }
        check_name(name)?;
        self.close_until(parents)?;
        let Some(parent) = self.open.last_mut() else {
            return Err(format!("{} has no directory to be in", show(components)));
        };
        if parent.last_child.as_deref().is_some_and(|last| last >= *name) {
            return Err(format!("{} is out of NAR order (names sorted by their bytes, each once)", show(components)));
        }
        parent.last_child = Some(name.to_vec());
        self.str(b"entry");
        self.str(b"(");
        self.str(b"name");
        self.str(name);
        self.str(b"node");
        self.node(node, true)
    }

    /// Contents of the current regular file.
    pub fn contents(&mut self, data: &[u8]) -> Result<(), String> {
        let Some(file) = &mut self.file else { return Err("file contents outside a file".into()) };
        if data.len() as u64 > file.remaining {
            return Err("a file holds more than its size".into());
        }
        file.remaining -= data.len() as u64;
        self.sha.update(data);
        if self.file.as_ref().is_some_and(|f| f.remaining == 0) {
            self.end_file();
        }
        Ok(())
    }

    /// The sha256 of the whole NAR.
    pub fn finish(mut self) -> Result<[u8; 32], String> {
        if !self.started {
            return Err("no entry for the store path itself".into());
        }
        if self.file.is_some() {
            return Err("the last file's contents are cut short".into());
        }
        if !self.open.is_empty() {
            self.close_until(&[])?;
            self.open.pop();
            self.str(b")");
        }
        Ok(self.sha.finish())
    }

    fn node(&mut self, node: Node<'_>, in_entry: bool) -> Result<(), String> {
        self.str(b"(");
        self.str(b"type");
        match node {
            Node::Directory => {
                self.str(b"directory");
                let name = if in_entry { self.pending_name() } else { None };
                self.open.push(OpenDir { name, last_child: None });
            }
            Node::Regular { executable, size } => {
                self.str(b"regular");
                if executable {
                    self.str(b"executable");
                    self.str(b"");
                }
                self.str(b"contents");
                self.sha.update(&size.to_le_bytes());
                self.file = Some(PendingFile { remaining: size, size, in_entry });
                if size == 0 {
                    self.end_file();
                }
            }
            Node::Symlink { target } => {
                self.str(b"symlink");
                self.str(b"target");
                self.str(target);
                self.str(b")");
                if in_entry {
                    self.str(b")");
                }
            }
        }
        Ok(())
    }

    /// The name just given to `entry`, which is the parent's last child.
    fn pending_name(&self) -> Option<Vec<u8>> {
        self.open.last().and_then(|d| d.last_child.clone())
    }

    fn end_file(&mut self) {
        if let Some(file) = self.file.take() {
            self.padding(file.size);
            self.str(b")");
            if file.in_entry {
                self.str(b")");
            }
        }
    }

    /// Closes open directories until the deepest is `parents` (relative to
    /// the store path), which must be open.
    fn close_until(&mut self, parents: &[&[u8]]) -> Result<(), String> {
        while self.open.len() > parents.len() + 1 {
            self.open.pop();
            self.str(b")");
            self.str(b")");
        }
        let open_names = self.open.iter().skip(1).map(|d| d.name.as_deref().unwrap_or_default());
        if self.open.len() != parents.len() + 1 || !open_names.eq(parents.iter().copied()) {
            return Err(format!("{} comes before or without its directory", show(parents)));
        }
        Ok(())
    }

    fn str(&mut self, s: &[u8]) {
        self.sha.update(&(s.len() as u64).to_le_bytes());
        self.sha.update(s);
        self.padding(s.len() as u64);
    }

    fn padding(&mut self, len: u64) {
        let pad = (8 - (len % 8) as usize) % 8;
        self.sha.update(&[0; 8][..pad]);
    }
}

fn check_name(name: &[u8]) -> Result<(), String> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0) {
        return Err(format!("'{}' is not a valid file name", String::from_utf8_lossy(name)));
    }
    Ok(())
}

fn show(components: &[&[u8]]) -> String {
    let joined: Vec<String> = components.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    format!("'{}'", joined.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nix::nar::nar_sha256;
    use std::fs;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn a_flat_walk_hashes_as_nix_does() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("sub/deeper")).unwrap();
        fs::write(root.join("a"), b"0123456789").unwrap();
        fs::set_permissions(root.join("a"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(root.join("sub/deeper/x"), b"").unwrap();
        fs::write(root.join("sub/y"), b"why").unwrap();
        symlink("../a", root.join("sub/z")).unwrap();
        fs::create_dir(root.join("zz")).unwrap();

        let mut nar = NarBuilder::new();
        nar.entry(&[], Node::Directory).unwrap();
        nar.entry(&[b"a"], Node::Regular { executable: true, size: 10 }).unwrap();
        nar.contents(b"01234").unwrap();
        nar.contents(b"56789").unwrap();
        nar.entry(&[b"sub"], Node::Directory).unwrap();
        nar.entry(&[b"sub", b"deeper"], Node::Directory).unwrap();
        nar.entry(&[b"sub", b"deeper", b"x"], Node::Regular { executable: false, size: 0 }).unwrap();
        nar.entry(&[b"sub", b"y"], Node::Regular { executable: false, size: 3 }).unwrap();
        nar.contents(b"why").unwrap();
        nar.entry(&[b"sub", b"z"], Node::Symlink { target: b"../a" }).unwrap();
        nar.entry(&[b"zz"], Node::Directory).unwrap();
        assert_eq!(nar.finish().unwrap(), nar_sha256(&root).unwrap());
    }

    #[test]
    fn a_single_file_or_symlink_store_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, b"text").unwrap();
        let mut nar = NarBuilder::new();
        nar.entry(&[], Node::Regular { executable: false, size: 4 }).unwrap();
        nar.contents(b"text").unwrap();
        assert_eq!(nar.finish().unwrap(), nar_sha256(&file).unwrap());
        let link = dir.path().join("l");
        symlink("/nix/store/elsewhere", &link).unwrap();
        let mut nar = NarBuilder::new();
        nar.entry(&[], Node::Symlink { target: b"/nix/store/elsewhere" }).unwrap();
        assert_eq!(nar.finish().unwrap(), nar_sha256(&link).unwrap());
    }

    #[test]
    fn entries_out_of_order_are_refused() {
        let mut nar = NarBuilder::new();
        nar.entry(&[], Node::Directory).unwrap();
        nar.entry(&[b"b"], Node::Directory).unwrap();
        assert!(nar.entry(&[b"a"], Node::Directory).is_err(), "siblings must be sorted");
        let mut nar = NarBuilder::new();
        nar.entry(&[], Node::Directory).unwrap();
        assert!(nar.entry(&[b"missing", b"child"], Node::Directory).is_err(), "a child needs its directory first");
        let mut nar = NarBuilder::new();
        nar.entry(&[], Node::Directory).unwrap();
        nar.entry(&[b"a"], Node::Directory).unwrap();
        assert!(nar.entry(&[b"a"], Node::Directory).is_err(), "no name twice");
        let mut nar = NarBuilder::new();
        nar.entry(&[], Node::Regular { executable: false, size: 2 }).unwrap();
        nar.contents(b"a").unwrap();
        assert!(nar.finish().is_err(), "a short file");
    }
}
