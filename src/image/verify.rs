//! `nucleus verify` for an image (a layout directory or an `oci-archive`):
//! do the blobs still hash to the digests that name them, and does every
//! store path in the layers still hash, as a NAR, to the narHash recorded
//! for it?
//!
//! Each layer is read once: its bytes feed the digest check while its tar
//! entries are turned back into each store path's NAR stream (see
//! [`super::nar_stream`]). Nothing here asks Nix: an image checks out (or
//! not) on any machine, store or no store.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use serde_json::Value;

use super::nar_stream::{NarBuilder, Node};
use super::oci::{self, BLOBS_DIR, INDEX_FILE, LAYOUT_FILE, SHA256_DIR};
use super::tar::{TarEntryKind, TarReader};
use crate::bundle::SafeDir;
use crate::nix::hash::NarHash;
use crate::nix::store_path::STORE_DIR;
use crate::sha256::BulkSha256;
use crate::{Error, Result};

/// JSON documents larger than this are not nucleus's.
const MAX_DOCUMENT: u64 = 16 << 20;

/// What verification found.
#[derive(Debug)]
pub struct ImageReport {
    /// The manifest's digest as index.json names it.
    pub image_digest: String,
    pub bundle_digest: Option<String>,
    /// Every difference, in words; empty when the image checks out.
    pub differences: Vec<String>,
}

/// Whether `path` is an image rather than a bundle: a file ending in
/// `.tar`, or a directory holding an `oci-layout` file.
pub fn is_image(path: &Path) -> bool {
    match path.symlink_metadata() {
        Ok(meta) if meta.is_file() => path.extension().is_some_and(|e| e == "tar"),
        Ok(meta) if meta.is_dir() => path.join(LAYOUT_FILE).symlink_metadata().is_ok(),
        _ => false,
    }
}

pub fn verify(path: &Path) -> Result<ImageReport> {
    let blobs = open_blobs(path)?;
    let unreadable = |what: &str, why: String| Error::io(format!("cannot read {what} of"), path, io::Error::other(why));
    let index =
        parse_json(&blobs.read_document(INDEX_FILE, None)?, "index.json").map_err(|w| unreadable("index.json", w))?;
    let manifest_ref = index["manifests"]
        .as_array()
        .and_then(|m| m.iter().find(|d| d["mediaType"] == oci::MEDIA_TYPE_MANIFEST))
        .ok_or_else(|| unreadable("index.json", "it names no image manifest".into()))?;
    let (manifest_digest, manifest_size) = descriptor(manifest_ref)
        .ok_or_else(|| unreadable("index.json", "the manifest's descriptor is incomplete".into()))?;
    let mut differences = Vec::new();
    let manifest_bytes = blobs.read_document(&blob_name(&manifest_digest)?, Some(manifest_size))?;
    check_document(&manifest_bytes, &manifest_digest, manifest_size, "the manifest", &mut differences);
    let manifest = parse_json(&manifest_bytes, "the manifest").map_err(|w| unreadable("the manifest", w))?;
    let (config_digest, config_size) = descriptor(&manifest["config"])
        .ok_or_else(|| unreadable("the manifest", "its config descriptor is incomplete".into()))?;
    let config_bytes = blobs.read_document(&blob_name(&config_digest)?, Some(config_size))?;
    check_document(&config_bytes, &config_digest, config_size, "the config", &mut differences);
    let config = parse_json(&config_bytes, "the config").map_err(|w| unreadable("the config", w))?;
    let diff_ids: Vec<&str> =
        config["rootfs"]["diff_ids"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    if diff_ids.len() != layers.len() {
        differences.push(format!("the config lists {} layers, the manifest {}", diff_ids.len(), layers.len()));
    }
    let recorded: Vec<BTreeMap<String, String>> =
        layers.iter().map(recorded_hashes).collect::<Result<_, _>>().map_err(|w| unreadable("the manifest", w))?;
    let everything: BTreeSet<String> = recorded.iter().flat_map(|r| r.keys().cloned()).collect();
    for (i, layer) in layers.iter().enumerate() {
        let what = format!("layer {}", i + 1);
        let Some((digest, size)) = descriptor(layer) else {
            differences.push(format!("{what}: its descriptor is incomplete"));
            continue;
        };
        if layer["mediaType"] != oci::MEDIA_TYPE_LAYER {
            differences.push(format!(
                "{what} is {}; nucleus writes (and checks) uncompressed tar layers only",
                layer["mediaType"]
            ));
            continue;
        }
        if diff_ids.get(i).is_some_and(|d| *d != digest) {
            differences.push(format!("{what}: the config's diff_id {} differs from its digest {digest}", diff_ids[i]));
        }
        let reader = blobs.open_blob(&blob_name(&digest)?)?;
        let mut check =
            LayerCheck { what: &what, recorded: &recorded[i], everything: &everything, differences: &mut differences };
        let (actual, actual_size) = check.run(reader)?;
        if actual != digest || actual_size != size {
            differences.push(format!(
                "{what}: its bytes hash to {actual} ({actual_size} bytes), recorded {digest} ({size} bytes)"
            ));
        }
    }
    let bundle_digest = manifest["annotations"][oci::ANNOTATION_BUNDLE_DIGEST].as_str().map(str::to_string);
    if bundle_digest.is_none() {
        differences.push(format!(
            "the manifest has no {} annotation: not an image nucleus wrote",
            oci::ANNOTATION_BUNDLE_DIGEST
        ));
    }
    Ok(ImageReport { image_digest: manifest_digest, bundle_digest, differences })
}

fn parse_json(bytes: &[u8], what: &str) -> std::result::Result<Value, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("{what} is not JSON: {e}"))
}

fn descriptor(value: &Value) -> Option<(String, u64)> {
    Some((value["digest"].as_str()?.to_string(), value["size"].as_u64()?))
}

/// `blobs/sha256/<hex>`, for a well-formed sha256 digest only.
fn blob_name(digest: &str) -> Result<String> {
    let hex = digest.strip_prefix("sha256:").filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    match hex {
        Some(hex) => Ok(format!("{BLOBS_DIR}/{SHA256_DIR}/{hex}")),
        None => Err(Error::io(
            "cannot verify",
            digest,
            io::Error::other("not a sha256 digest; nucleus writes sha256 blobs only"),
        )),
    }
}

fn check_document(bytes: &[u8], digest: &str, size: u64, what: &str, differences: &mut Vec<String>) {
    let actual = oci::sha256_digest(bytes);
    if actual != digest || bytes.len() as u64 != size {
        differences
            .push(format!("{what} hashes to {actual} ({} bytes), recorded {digest} ({size} bytes)", bytes.len()));
    }
}

/// A layer's recorded store paths and narHashes.
fn recorded_hashes(layer: &Value) -> std::result::Result<BTreeMap<String, String>, String> {
    match layer["annotations"][oci::ANNOTATION_NAR_HASHES].as_str() {
        None => Ok(BTreeMap::new()),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| format!("a layer's {} is not a JSON object: {e}", oci::ANNOTATION_NAR_HASHES)),
    }
}

/// Blobs of a layout directory or of an archive.
enum Blobs {
    Layout(SafeDir),
    Archive { file: File, entries: BTreeMap<String, (u64, u64)> },
}

fn open_blobs(path: &Path) -> Result<Blobs> {
    let meta = path.symlink_metadata().map_err(|e| Error::io("cannot examine", path, e))?;
    if meta.is_dir() {
        return Ok(Blobs::Layout(SafeDir::open(path).map_err(|e| Error::io("cannot open", path, e))?));
    }
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| Error::io("cannot open", path, e))?;
    let entries = archive_entries(&file).map_err(|e| Error::io("cannot read the archive", path, e))?;
    Ok(Blobs::Archive { file, entries })
}

/// Each regular file of the archive: where its data starts, and its size.
fn archive_entries(file: &File) -> io::Result<BTreeMap<String, (u64, u64)>> {
    let mut tar = TarReader::new(Counting { inner: io::BufReader::new(file), position: 0 });
    let mut entries = BTreeMap::new();
    while let Some(entry) = tar.next_entry()? {
        if entry.kind == TarEntryKind::Regular {
            entries.insert(String::from_utf8_lossy(&entry.path).into_owned(), (tar.get_ref().position, entry.size));
        }
    }
    Ok(entries)
}

struct Counting<R: Read> {
    inner: R,
    position: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.position += n as u64;
        Ok(n)
    }
}

/// `size` bytes of `file` from `offset`, through `pread`.
struct Slice<'a> {
    file: &'a File,
    offset: u64,
    end: u64,
}

impl Read for Slice<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min(usize::try_from(self.end - self.offset).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

impl Blobs {
    fn open_blob(&self, name: &str) -> Result<Box<dyn Read + '_>> {
        match self {
            Blobs::Layout(dir) => {
                let (parent, file) = name.rsplit_once('/').unwrap_or(("", name));
                let missing = |e: io::Error| Error::io("cannot open the blob", dir.path().join(name), e);
                let mut handle = dir.try_clone().map_err(missing)?;
                for component in parent.split('/').filter(|c| !c.is_empty()) {
                    handle = handle.open_subdir(component).map_err(missing)?;
                }
                let flags = nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC;
                let fd = nix::fcntl::openat(handle.fd(), file, flags, nix::sys::stat::Mode::empty())
                    .map_err(|e| missing(e.into()))?;
                Ok(Box::new(io::BufReader::with_capacity(1 << 20, File::from(fd))))
            }
            Blobs::Archive { file, entries } => match entries.get(name) {
                Some((offset, size)) => {
                    let slice = Slice { file, offset: *offset, end: offset + size };
                    Ok(Box::new(io::BufReader::with_capacity(1 << 20, slice)))
                }
                None => Err(Error::io("cannot find", name, io::Error::other("the archive has no such blob"))),
            },
        }
    }

    /// A small file read whole; `expected` bounds how much is read.
    fn read_document(&self, name: &str, expected: Option<u64>) -> Result<Vec<u8>> {
        let limit = expected.map_or(MAX_DOCUMENT, |s| s.min(MAX_DOCUMENT)) + 1;
        let mut bytes = Vec::new();
        self.open_blob(name)?.take(limit).read_to_end(&mut bytes).map_err(|e| Error::io("cannot read", name, e))?;
        Ok(bytes)
    }
}

/// One layer's walk: its digest, and each store path's NAR hash against
/// the recorded one.
struct LayerCheck<'a> {
    what: &'a str,
    recorded: &'a BTreeMap<String, String>,
    /// Every store path recorded in any layer: links outside the store may
    /// point into these.
    everything: &'a BTreeSet<String>,
    differences: &'a mut Vec<String>,
}

/// The store path being rebuilt; `nar` is `None` once it is known to differ.
struct Current {
    path: String,
    nar: Option<NarBuilder>,
}

impl LayerCheck<'_> {
    /// Returns the layer's digest and size.
    fn run(&mut self, reader: Box<dyn Read + '_>) -> Result<(String, u64)> {
        let mut tar = TarReader::new(Hashing { inner: reader, sha: BulkSha256::new(), count: 0 });
        if let Err(e) = self.walk(&mut tar) {
            self.differences.push(format!("{}: not a readable tar: {e}", self.what));
        }
        let mut hashing = tar.into_inner();
        io::copy(&mut hashing, &mut io::sink()).map_err(|e| Error::io("cannot read", self.what, e))?;
        Ok((format!("sha256:{}", crate::policy::hex(&hashing.sha.finish())), hashing.count))
    }

    fn walk<R: Read>(&mut self, tar: &mut TarReader<R>) -> io::Result<()> {
        let mut current: Option<Current> = None;
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut buf = vec![0u8; 256 * 1024];
        while let Some(entry) = tar.next_entry()? {
            let path = String::from_utf8_lossy(&entry.path).into_owned();
            let store_prefix = &STORE_DIR[1..];
            if path == "nix" || path == store_prefix {
                if entry.kind != TarEntryKind::Directory {
                    self.differences.push(format!("{}: /{path} is not a directory", self.what));
                }
                continue;
            }
            let mut parts = entry.path.split(|b| *b == b'/');
            let in_store = parts.next() == Some(b"nix") && parts.next() == Some(b"store");
            let base =
                parts.next().filter(|b| in_store && !b.is_empty()).map(|b| String::from_utf8_lossy(b).into_owned());
            let Some(base) = base else {
                self.finish(current.take());
                self.outside_store(&path, &entry.kind, &entry.link);
                continue;
            };
            let rest: Vec<&[u8]> = parts.filter(|c| !c.is_empty()).collect();
            let store_path = format!("{STORE_DIR}/{base}");
            if current.as_ref().is_some_and(|c| c.path != store_path) {
                self.finish(current.take());
            }
            let current = current.get_or_insert_with(|| self.start(&store_path, &mut seen));
            let Some(nar) = &mut current.nar else { continue };
            let node = match entry.kind {
                TarEntryKind::Directory => Node::Directory,
                TarEntryKind::Symlink => Node::Symlink { target: &entry.link },
                TarEntryKind::Regular => Node::Regular { executable: entry.mode & 0o100 != 0, size: entry.size },
                TarEntryKind::Other(flag) => {
                    self.differences
                        .push(format!("{}: /{path} is of tar type '{}', which no NAR holds", self.what, flag as char));
                    current.nar = None;
                    continue;
                }
            };
            let mut fed = nar.entry(&rest, node);
            if entry.kind == TarEntryKind::Regular {
                loop {
                    let n = tar.read_data(&mut buf)?;
                    if n == 0 || fed.is_err() {
                        break;
                    }
                    fed = nar.contents(&buf[..n]);
                }
            }
            if let Err(why) = fed {
                self.differences.push(format!("{store_path}: {why}"));
                current.nar = None;
            }
        }
        self.finish(current.take());
        for path in self.recorded.keys() {
            if !seen.contains(path) {
                self.differences.push(format!("{path}: recorded in {} but not in it", self.what));
            }
        }
        Ok(())
    }

    fn start(&mut self, store_path: &str, seen: &mut BTreeSet<String>) -> Current {
        if !seen.insert(store_path.to_string()) {
            self.differences.push(format!("{store_path}: its entries are split up in {}", self.what));
            return Current { path: store_path.to_string(), nar: None };
        }
        if !self.recorded.contains_key(store_path) {
            self.differences.push(format!("{store_path}: in {} without a recorded narHash", self.what));
            return Current { path: store_path.to_string(), nar: None };
        }
        Current { path: store_path.to_string(), nar: Some(NarBuilder::new()) }
    }

    fn finish(&mut self, current: Option<Current>) {
        let Some(Current { path, nar: Some(nar) }) = current else { return };
        let recorded = self.recorded.get(&path).map(|h| NarHash::parse(h));
        match (nar.finish(), recorded) {
            (Err(why), _) => self.differences.push(format!("{path}: {why}")),
            (_, None | Some(Err(_))) => self.differences.push(format!("{path}: the recorded narHash is unreadable")),
            (Ok(bytes), Some(Ok(recorded))) if NarHash(bytes) != recorded => self
                .differences
                .push(format!("{path}: the layer's entries hash to {}, recorded {recorded}", NarHash(bytes))),
            _ => {}
        }
    }

    /// Outside the store an image holds directories and links into the
    /// closure (the root layer), nothing else.
    fn outside_store(&mut self, path: &str, kind: &TarEntryKind, link: &[u8]) {
        let ok = match kind {
            TarEntryKind::Directory => true,
            TarEntryKind::Symlink => {
                let target = String::from_utf8_lossy(link);
                let base = target
                    .strip_prefix(STORE_DIR)
                    .and_then(|t| t.strip_prefix('/'))
                    .map(|t| t.split('/').next().unwrap_or_default());
                base.is_some_and(|b| self.everything.contains(&format!("{STORE_DIR}/{b}")))
            }
            _ => false,
        };
        if !ok {
            self.differences.push(format!(
                "{}: /{path} is outside /nix/store and is not a directory or a link into the closure",
                self.what
            ));
        }
    }
}

struct Hashing<R: Read> {
    inner: R,
    sha: BulkSha256,
    count: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}
