//! One layer's tar stream, made from the store as it is and checked against
//! Nix's narHash while it is made.
//!
//! A store layer holds `nix/`, `nix/store/` and its store paths, each walked
//! in NAR order (entries sorted by the raw bytes of their names). Nothing of
//! the host's metadata goes in: modes are what Nix canonicalises the store
//! to (0555 for directories and executables, 0444 for other files, which is
//! all a NAR records), owners 0, mtime 1. So a layer is a function of its
//! store paths alone, and a store path's layer is the same in every image.
//!
//! Every path's NAR hash is recomputed from the very entries written (see
//! [`super::nar_stream`]) and must equal the narHash Nix registered: an
//! image never records a hash its layer does not match.
//!
//! The root layer holds what makes the closure a root filesystem: `/bin`,
//! `/etc`, … as symlinks to the top-level path's directories (as the rootfs
//! plan resolved them, inside the closure), `/tmp` (1777) and the working
//! directory.

use std::ffi::OsString;
use std::fs::{self, FileType};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::nar_stream::{NarBuilder, Node};
use super::tar::TarWriter;
use crate::nix::hash::NarHash;
use crate::nix::nar::{list, open_listed_file};
use crate::nix::PathInfo;
use crate::sha256::BulkSha256;
use crate::{Error, Result};

const READ_CHUNK: usize = 256 * 1024;

/// What a layer is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerSource {
    /// Store paths, sorted by path.
    Store(Vec<PathInfo>),
    /// The root filesystem around the store.
    Root(RootEntries),
}

/// What the root layer holds besides `/tmp`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RootEntries {
    /// `/NAME -> TARGET` links for the top-level directories.
    pub links: Vec<(String, PathBuf)>,
    /// Directories (0755) without a leading `/`: the working directory and
    /// its parents, which a bundle's rootfs holds too.
    pub directories: Vec<String>,
}

impl LayerSource {
    /// Roughly how many bytes the layer holds, to start big layers first.
    pub fn weight(&self) -> u64 {
        match self {
            LayerSource::Store(paths) => paths.iter().map(|p| p.nar_size).sum(),
            LayerSource::Root(_) => 0,
        }
    }
}

/// A layer's digest (`sha256:<hex>`, also its diff_id: layers are not
/// compressed) and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
}

/// Whether to recompute each store path's NAR hash from what is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NarCheck {
    /// Check it against the narHash Nix registered.
    Check,
    /// Skip it: the caller checks the layer's digest against one made with
    /// [`NarCheck::Check`] (an archive's second pass).
    Skip,
}

/// Writes `source`'s tar stream to `out` and returns its digest and size.
pub fn write_layer(source: &LayerSource, out: impl Write, check: NarCheck) -> Result<Blob> {
    let mut hashing = HashingWriter { out, sha: BulkSha256::new(), written: 0 };
    let mut tar = TarWriter::new(&mut hashing);
    let failed = |e: io::Error| Error::io("cannot write a layer of", "the image", e);
    match source {
        LayerSource::Store(paths) => {
            tar.directory(b"nix", 0o755).map_err(failed)?;
            tar.directory(b"nix/store", 0o755).map_err(failed)?;
            let mut buf = vec![0u8; READ_CHUNK];
            for info in paths {
                write_store_path(&mut tar, info, &mut buf, check)?;
            }
        }
        LayerSource::Root(root) => {
            // Sorted by name, so a directory always comes before what is in it.
            let mut entries: Vec<(&str, Option<&Path>, u32)> =
                root.links.iter().map(|(n, t)| (n.as_str(), Some(t.as_path()), 0)).collect();
            entries.push(("tmp", None, 0o1777));
            entries.extend(root.directories.iter().map(|d| (d.as_str(), None, 0o755)));
            entries.sort();
            for (name, target, mode) in entries {
                match target {
                    Some(target) => tar.symlink(name.as_bytes(), target.as_os_str().as_bytes()),
                    None => tar.directory(name.as_bytes(), mode),
                }
                .map_err(failed)?;
            }
        }
    }
    tar.finish().map_err(failed)?;
    Ok(Blob { digest: format!("sha256:{}", crate::policy::hex(&hashing.sha.finish())), size: hashing.written })
}

struct HashingWriter<W: Write> {
    out: W,
    sha: BulkSha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.sha.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A directory being walked: its entries still to write, in NAR order.
struct Frame {
    entries: std::vec::IntoIter<(OsString, FileType)>,
}

/// Walks one store path in NAR order into `tar`, and checks the NAR hash
/// of what was written against the one Nix registered.
fn write_store_path<W: Write>(tar: &mut TarWriter<W>, info: &PathInfo, buf: &mut [u8], check: NarCheck) -> Result<()> {
    let root = info.path.as_path();
    let mut nar = (check == NarCheck::Check).then(NarBuilder::new);
    let kind = fs::symlink_metadata(root).map_err(|e| Error::io("cannot stat", root, e))?.file_type();
    let mut components: Vec<OsString> = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    if let Some(frame) = write_entry(tar, &mut nar, root, &components, kind, buf)? {
        stack.push(frame);
    }
    while let Some(frame) = stack.last_mut() {
        // A stop ends the image here and in the loop over a file's data;
        // the image's writer takes back what it wrote.
        crate::interrupt::check("making the image's layers")?;
        let Some((name, kind)) = frame.entries.next() else {
            stack.pop();
            components.pop();
            continue;
        };
        components.push(name);
        let path: PathBuf = components.iter().fold(root.to_path_buf(), |p, c| p.join(c));
        match write_entry(tar, &mut nar, &path, &components, kind, buf)? {
            Some(frame) => stack.push(frame),
            None => {
                components.pop();
            }
        }
    }
    let Some(nar) = nar else { return Ok(()) };
    let hash = NarHash(nar.finish().map_err(|why| Error::Rootfs { reason: format!("{}: {why}", info.path) })?);
    if hash != info.nar_hash {
        return Err(Error::Rootfs {
            reason: format!(
                "the contents of {} hash to {hash}, but Nix registered {}; repair it (nix-store --repair-path) \
                 before making an image of it",
                info.path, info.nar_hash
            ),
        });
    }
    Ok(())
}

/// Writes one entry to the tar and the NAR; for a directory, returns its
/// entries to walk next.
fn write_entry<W: Write>(
    tar: &mut TarWriter<W>,
    nar: &mut Option<NarBuilder>,
    path: &Path,
    components: &[OsString],
    kind: FileType,
    buf: &mut [u8],
) -> Result<Option<Frame>> {
    let failed = |e: io::Error| Error::io("cannot archive", path, e);
    let nar_failed = |why: String| Error::Rootfs { reason: format!("{}: {why}", path.display()) };
    let name = tar_name(path);
    let parts: Vec<&[u8]> = components.iter().map(|c| c.as_bytes()).collect();
    if kind.is_dir() {
        tar.directory(&name, 0o555).map_err(failed)?;
        nar_entry(nar, &parts, Node::Directory).map_err(nar_failed)?;
        return Ok(Some(Frame { entries: list(path)?.into_iter() }));
    }
    if kind.is_symlink() {
        let target = fs::read_link(path).map_err(|e| Error::io("cannot read symlink", path, e))?;
        tar.symlink(&name, target.as_os_str().as_bytes()).map_err(failed)?;
        nar_entry(nar, &parts, Node::Symlink { target: target.as_os_str().as_bytes() }).map_err(nar_failed)?;
        return Ok(None);
    }
    if !kind.is_file() {
        let why = "it is neither a regular file, a directory nor a symlink, so no NAR and no image holds it";
        return Err(Error::io("cannot archive", path, io::Error::other(why)));
    }
    let (mut file, meta) = open_listed_file(path)?;
    let executable = meta.permissions().mode() & 0o100 != 0;
    let size = meta.len();
    tar.begin_file(&name, if executable { 0o555 } else { 0o444 }, size).map_err(failed)?;
    nar_entry(nar, &parts, Node::Regular { executable, size }).map_err(nar_failed)?;
    loop {
        crate::interrupt::check("making the image's layers")?;
        let n = match file.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("cannot read", path, e)),
        };
        tar.data(&buf[..n]).map_err(failed)?;
        if let Some(nar) = nar {
            nar.contents(&buf[..n]).map_err(nar_failed)?;
        }
    }
    tar.end_file().map_err(failed)?;
    Ok(None)
}

fn nar_entry(nar: &mut Option<NarBuilder>, parts: &[&[u8]], node: Node<'_>) -> std::result::Result<(), String> {
    match nar {
        Some(nar) => nar.entry(parts, node),
        None => Ok(()),
    }
}

/// The name inside the layer: the absolute path without its leading `/`.
fn tar_name(path: &Path) -> Vec<u8> {
    let bytes = path.as_os_str().as_bytes();
    bytes.strip_prefix(b"/").unwrap_or(bytes).to_vec()
}
