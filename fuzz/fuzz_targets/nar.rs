//! The NAR writer on generated trees: files (empty, small, and large enough
//! to cross the writer's buffers), executables, symlinks with any target,
//! directories with arbitrary byte names and many entries. `write_nar` must
//! equal a straightforward serialisation of the generated tree, written
//! here from the NAR grammar, and `nar_sha256` its sha256.
#![no_main]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

/// What the fuzzer generates.
#[derive(Arbitrary, Debug)]
enum Node {
    /// `contents` repeated `repeat` times (at least once).
    File { contents: Vec<u8>, mode: u16, repeat: u16 },
    Symlink { target: Vec<u8> },
    Dir(Vec<(Vec<u8>, Node)>),
    /// `count` files `f0`, `f1`, … with the same contents: wide directories.
    Many { count: u8, contents: Vec<u8>, executable: bool },
}

/// The tree as it will exist on disk.
enum Tree {
    File { data: Vec<u8>, mode: u32 },
    Symlink(Vec<u8>),
    /// Names in byte order, which is NAR order.
    Dir(BTreeMap<Vec<u8>, Tree>),
}

/// All file contents together stay below this, so each run stays quick.
const BUDGET: usize = 4 << 20;

fn resolve(node: &Node, budget: &mut usize, depth: usize) -> Tree {
    match node {
        Node::File { contents, mode, repeat } => {
            let times = if contents.is_empty() { 1 } else { usize::from(*repeat).max(1) };
            let len = (contents.len() * times).min(*budget);
            *budget -= len;
            let data: Vec<u8> = contents.iter().copied().cycle().take(len).collect();
            Tree::File { data, mode: u32::from(*mode) & 0o777 | 0o400 }
        }
        Node::Symlink { target } => {
            let mut t: Vec<u8> = target.iter().copied().filter(|&b| b != 0).take(1000).collect();
            if t.is_empty() {
                t.push(b'x');
            }
            Tree::Symlink(t)
        }
        Node::Dir(entries) => {
            let mut map = BTreeMap::new();
            if depth < 64 {
                for (name, child) in entries {
                    let Some(name) = file_name(name) else { continue };
                    if let std::collections::btree_map::Entry::Vacant(slot) = map.entry(name) {
                        slot.insert(resolve(child, budget, depth + 1));
                    }
                }
            }
            Tree::Dir(map)
        }
        Node::Many { count, contents, executable } => {
            let mut map = BTreeMap::new();
            for i in 0..usize::from(*count) {
                let len = contents.len().min(*budget);
                *budget -= len;
                let mode = if *executable { 0o755 } else { 0o644 };
                map.insert(format!("f{i}").into_bytes(), Tree::File { data: contents[..len].to_vec(), mode });
            }
            Tree::Dir(map)
        }
    }
}

/// A valid file name made from arbitrary bytes, or none.
fn file_name(raw: &[u8]) -> Option<Vec<u8>> {
    let name: Vec<u8> = raw.iter().copied().filter(|&b| b != 0 && b != b'/').take(255).collect();
    (!name.is_empty() && name != b"." && name != b"..").then_some(name)
}

fn create(path: &Path, tree: &Tree) {
    match tree {
        Tree::File { data, mode } => {
            std::fs::write(path, data).unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode)).unwrap();
        }
        Tree::Symlink(target) => std::os::unix::fs::symlink(OsStr::from_bytes(target), path).unwrap(),
        Tree::Dir(entries) => {
            std::fs::create_dir(path).unwrap();
            for (name, child) in entries {
                create(&path.join(OsStr::from_bytes(name)), child);
            }
        }
    }
}

fn s(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
    out.resize(out.len().div_ceil(8) * 8, 0);
}

/// The NAR grammar, from the tree rather than the disk.
fn serialise(out: &mut Vec<u8>, tree: &Tree) {
    s(out, b"(");
    s(out, b"type");
    match tree {
        Tree::File { data, mode } => {
            s(out, b"regular");
            if mode & 0o100 != 0 {
                s(out, b"executable");
                s(out, b"");
            }
            s(out, b"contents");
            s(out, data);
        }
        Tree::Symlink(target) => {
            s(out, b"symlink");
            s(out, b"target");
            s(out, target);
        }
        Tree::Dir(entries) => {
            s(out, b"directory");
            for (name, child) in entries {
                s(out, b"entry");
                s(out, b"(");
                s(out, b"name");
                s(out, name);
                s(out, b"node");
                serialise(out, child);
                s(out, b")");
            }
        }
    }
    s(out, b")");
}

fuzz_target!(|root: Node| {
    let mut budget = BUDGET;
    let tree = resolve(&root, &mut budget, 0);
    // Memory-backed where there is one: the trees are rebuilt every run.
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
    let dir = tempfile::Builder::new().prefix("nucleus-fuzz-nar-").tempdir_in(base).unwrap();
    let path = dir.path().join("root");
    create(&path, &tree);

    let mut want = Vec::new();
    s(&mut want, b"nix-archive-1");
    serialise(&mut want, &tree);

    let mut got = Vec::new();
    nucleus::nix::nar::write_nar(&path, &mut got).unwrap();
    assert!(got == want, "write_nar differs from the reference ({} vs {} bytes)", got.len(), want.len());
    let hash = nucleus::nix::nar::nar_sha256(&path).unwrap();
    assert_eq!(hash, <[u8; 32]>::from(Sha256::digest(&want)), "nar_sha256 differs from sha256(NAR)");
});
