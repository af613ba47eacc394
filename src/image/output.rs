//! Writing an image: an OCI image-layout directory, or the same layout as
//! one `oci-archive` tarball when the path ends in `.tar`.
//!
//! Like a bundle, an image is written through descriptors, never following
//! a symlink, into a directory that did not exist or was empty, or into a
//! file that did not exist; and whatever a failed write created is removed.
//!
//! A layout is written in one pass: each layer streams into a temporary
//! file in `blobs/sha256/` (on every core at once) and is renamed to its
//! digest. An archive names each layer's entry by its digest *before* the
//! layer's bytes, so layers are hashed first (in parallel, written
//! nowhere) and streamed into the archive in a second pass, whose digests
//! must come out the same. Reading the store twice costs less than writing
//! every layer to disk twice, and nothing big is ever held in memory.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{openat, renameat, renameat2, OFlag, RenameFlags};
use nix::sys::stat::Mode;

use super::layer::{write_layer, Blob, NarCheck};
use super::oci::{self, Document, BLOBS_DIR, INDEX_FILE, LAYOUT_FILE, SHA256_DIR};
use super::tar::TarWriter;
use super::{Documents, ImagePlan};
use crate::bundle::output_dir::{Accept, OutputDir};
use crate::bundle::SafeDir;
use crate::{Error, Result};

/// Where the image goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// An image-layout directory: new, or empty.
    Layout(PathBuf),
    /// An `oci-archive` tarball: a new file.
    Archive(PathBuf),
}

impl Output {
    /// An archive when `path` ends in `.tar`, else a layout directory.
    pub fn for_path(path: &Path) -> Output {
        if path.extension().is_some_and(|e| e == "tar") {
            Output::Archive(path.to_path_buf())
        } else {
            Output::Layout(path.to_path_buf())
        }
    }
}

/// Writes the image and returns its documents (and so its digest).
pub fn write(plan: &ImagePlan, output: &Output, reference: Option<&str>) -> Result<Documents> {
    match output {
        Output::Layout(dir) => write_layout(plan, dir, reference),
        Output::Archive(file) => write_archive(plan, file, reference),
    }
}

fn write_failed(path: &Path, e: io::Error) -> Error {
    Error::io("cannot write the image", path, e)
}

fn write_layout(plan: &ImagePlan, dir: &Path, reference: Option<&str>) -> Result<Documents> {
    OutputDir::open(dir, 0o755, Accept::NewOrEmpty)?.fill(|handle| fill_layout(plan, handle, reference))
}

fn fill_layout(plan: &ImagePlan, dir: &SafeDir, reference: Option<&str>) -> Result<Documents> {
    let failed = |e| write_failed(dir.path(), e);
    let blobs = dir.subdir(BLOBS_DIR, 0o755, true).map_err(failed)?;
    let sha256 = blobs.subdir(SHA256_DIR, 0o755, true).map_err(failed)?;
    let layers = plan.for_each_layer(|i, source| {
        let tmp = format!(".layer-{i}.tmp");
        let file = create_file(&sha256, &tmp).map_err(failed)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let blob = write_layer(source, &mut out, NarCheck::Check)?;
        let file = out.into_inner().map_err(|e| failed(e.into_error()))?;
        file.sync_all().map_err(failed)?;
        renameat(sha256.fd(), tmp.as_str(), sha256.fd(), oci::hex_of(&blob.digest)).map_err(|e| failed(e.into()))?;
        Ok(blob)
    })?;
    let documents = plan.documents(&layers, reference)?;
    for document in [&documents.config, &documents.manifest] {
        sha256.write_new_file(document.hex(), 0o644, &document.bytes).map_err(failed)?;
    }
    dir.write_new_file(LAYOUT_FILE, 0o644, &Document::new(&oci::layout())?.bytes).map_err(failed)?;
    dir.write_new_file(INDEX_FILE, 0o644, &documents.index.bytes).map_err(failed)?;
    sha256.sync().and_then(|()| blobs.sync()).and_then(|()| dir.sync()).map_err(failed)?;
    // A stop that came while the last layer was synced takes it all back.
    crate::interrupt::check_now("writing the image")?;
    Ok(documents)
}

/// A new file in `dir`, never following a symlink.
fn create_file(dir: &SafeDir, name: &str) -> io::Result<File> {
    let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    Ok(File::from(openat(dir.fd(), name, flags, Mode::from_bits_truncate(0o644))?))
}

fn write_archive(plan: &ImagePlan, file: &Path, reference: Option<&str>) -> Result<Documents> {
    let (parent, name) = archive_destination(file)?;
    let layers = plan.for_each_layer(|_, source| write_layer(source, io::sink(), NarCheck::Check))?;
    let documents = plan.documents(&layers, reference)?;
    let tmp = format!(".{name}.{}.tmp", std::process::id());
    let out = create_file(&parent, &tmp).map_err(|e| write_failed(file, e))?;
    let written = fill_archive(plan, &layers, &documents, out, file).and_then(|()| {
        renameat2(parent.fd(), tmp.as_str(), parent.fd(), name.as_str(), RenameFlags::RENAME_NOREPLACE)
            .map_err(|e| write_failed(file, e.into()))
    });
    if let Err(e) = written {
        let _ = parent.remove_file(&tmp);
        return Err(e);
    }
    // The archive is in place now: a stop that came meanwhile takes it
    // back, as does a failed sync.
    let kept = parent
        .sync()
        .map_err(|e| write_failed(file, e))
        .and_then(|()| crate::interrupt::check_now("writing the image"));
    if let Err(e) = kept {
        let _ = parent.remove_file(&name);
        return Err(e);
    }
    Ok(documents)
}

/// The archive's directory, opened without following symlinks, and its
/// file name, which must not exist yet.
fn archive_destination(file: &Path) -> Result<(SafeDir, String)> {
    let (Some(parent), Some(name)) = (file.parent(), file.file_name().and_then(|n| n.to_str())) else {
        return Err(Error::invalid("--out", format!("{} does not name a file", file.display())));
    };
    match file.symlink_metadata() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("cannot examine", file, e)),
        Ok(_) => {
            return Err(Error::invalid("--out", format!("{} exists; nucleus never overwrites files", file.display())))
        }
    }
    let parent_dir = SafeDir::open(parent).map_err(|e| Error::io("cannot open the directory of", file, e))?;
    Ok((parent_dir, name.to_string()))
}

/// Writes the layout as one tar: `oci-layout`, `index.json`, then the
/// blobs (config, manifest, layers bottom first), with the same fixed
/// metadata as the layers themselves.
fn fill_archive(plan: &ImagePlan, layers: &[Blob], documents: &Documents, out: File, path: &Path) -> Result<()> {
    let failed = |e| write_failed(path, e);
    let mut tar = TarWriter::new(BufWriter::with_capacity(1 << 20, out));
    let small_file = |tar: &mut TarWriter<BufWriter<File>>, name: &str, bytes: &[u8]| -> io::Result<()> {
        tar.begin_file(name.as_bytes(), 0o644, bytes.len() as u64)?;
        tar.data(bytes)?;
        tar.end_file()
    };
    small_file(&mut tar, LAYOUT_FILE, &Document::new(&oci::layout())?.bytes).map_err(failed)?;
    small_file(&mut tar, INDEX_FILE, &documents.index.bytes).map_err(failed)?;
    tar.directory(BLOBS_DIR.as_bytes(), 0o755).map_err(failed)?;
    tar.directory(format!("{BLOBS_DIR}/{SHA256_DIR}").as_bytes(), 0o755).map_err(failed)?;
    let blob_name = |digest: &str| format!("{BLOBS_DIR}/{SHA256_DIR}/{}", oci::hex_of(digest));
    for document in [&documents.config, &documents.manifest] {
        small_file(&mut tar, &blob_name(&document.blob.digest), &document.bytes).map_err(failed)?;
    }
    for (source, expected) in plan.layers.iter().zip(layers) {
        tar.begin_file(blob_name(&expected.digest).as_bytes(), 0o644, expected.size).map_err(failed)?;
        // The first pass checked the narHashes; equal digests mean equal bytes.
        let blob = write_layer(source, EntryData(&mut tar), NarCheck::Skip)?;
        if blob != *expected {
            return Err(write_failed(path, io::Error::other("a layer's contents changed while the image was written")));
        }
        tar.end_file().map_err(failed)?;
    }
    let file = tar.finish().and_then(|w| w.into_inner().map_err(|e| e.into_error())).map_err(failed)?;
    file.sync_all().map_err(failed)
}

/// The current archive entry's data, as a `Write`.
struct EntryData<'a, W: Write>(&'a mut TarWriter<W>);

impl<W: Write> Write for EntryData<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.data(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
