//! NAR ("Nix ARchive") serialisation, byte for byte what `nix-store --dump`
//! writes, and its sha256, which is what Nix records as a path's narHash.
//!
//! The format is a sequence of strings, each a little-endian u64 length
//! followed by the bytes and zero padding to a multiple of 8:
//!
//! ```text
//! "nix-archive-1" node
//! node  = "(" "type" ( "regular" ["executable" ""] "contents" BYTES
//!                    | "symlink" "target" BYTES
//!                    | "directory" { "entry" "(" "name" NAME "node" node ")" } ) ")"
//! ```
//!
//! Directory entries are sorted by the raw bytes of their names; of a file's
//! mode only the owner's execute bit is recorded.

use std::ffi::OsString;
use std::fs::{self, File, FileType};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread;

// SHA-256 from libcrypto, as Nix computes it (see `crate::sha256` for why).
use crate::sha256::BulkSha256;

use crate::error::{Error, Result};

mod parallel;
pub use parallel::{nar_sha256_all, nar_sha256_all_sized};

/// Size of each buffer handed from the reading thread to the hashing
/// thread. Smaller buffers mean more hand-offs between the threads: on a
/// 215 MB tree 256 KiB took 4% longer and 64 KiB 17% longer than 512 KiB,
/// while 1 MiB was no faster and cost 1.5 MB more peak memory.
const CHUNK: usize = 512 * 1024;
/// Buffers in flight: one being filled while the other is hashed. A third
/// made no difference on 200 MB, with SHA-NI or without, and cost 0.5 MB of
/// peak memory.
const BUFFERS: usize = 2;
/// Buffer for `write_nar`, which only has to amortise `write` calls.
const WRITE_CHUNK: usize = 64 * 1024;

/// Writes the NAR serialisation of `path` (not following it if it is a
/// symlink) to `out`, exactly as `nix-store --dump` does.
pub fn write_nar(path: &Path, out: &mut impl Write) -> Result<()> {
    let drain = WriteDrain { out, path };
    let mut enc = Encoder::new(vec![0; WRITE_CHUNK].into_boxed_slice(), drain);
    dump(path, &mut enc)?;
    enc.finish()
}

/// The sha256 of `path`'s NAR serialisation, equal to `nix hash path`.
///
/// sha256 over one stream is inherently sequential, so the calling thread
/// does nothing but hash while a reader thread walks the tree and lays out
/// the NAR stream into a few buffers ahead of it: reading (syscalls and
/// copies out of the page cache) then costs no time on two cores.
pub fn nar_sha256(path: &Path) -> Result<[u8; 32]> {
    let (full_tx, full_rx) = mpsc::sync_channel::<Filled>(BUFFERS);
    let (free_tx, free_rx) = mpsc::sync_channel::<Box<[u8]>>(BUFFERS);
    for _ in 1..BUFFERS {
        // Cannot fail: the channel has room for every buffer and its
        // receiver is alive.
        let _ = free_tx.send(vec![0; CHUNK].into_boxed_slice());
    }
    let first = vec![0; CHUNK].into_boxed_slice();

    thread::scope(|s| {
        let reader = thread::Builder::new()
            .name("nar-reader".into())
            .spawn_scoped(s, move || {
                let mut enc = Encoder::new(first, ChannelDrain { full: full_tx, free: free_rx });
                dump(path, &mut enc)?;
                enc.finish()
            })
            .map_err(|e| Error::io("cannot start a thread to read", path, e))?;

        let mut hasher = BulkSha256::new();
        // Ends when the reader finishes or fails and drops its sender.
        for Filled(buf, len) in full_rx {
            hasher.update(&buf[..len]);
            // The reader may already be gone; then the buffer is just freed.
            let _ = free_tx.send(buf);
        }
        match reader.join() {
            Ok(result) => result?,
            Err(panic) => std::panic::resume_unwind(panic),
        }
        Ok(hasher.finish())
    })
}

/// Hashes NARs on the calling thread alone, one path after another.
///
/// For callers that already keep every core busy with other paths: there a
/// reader thread per path only adds hand-offs between threads (hashing a
/// closure of 64 paths took 50% longer with [`nar_sha256`] on each core),
/// and one buffer kept for all the paths spares a fresh one's page faults.
pub(crate) struct InlineHasher {
    buf: Box<[u8]>,
}

impl InlineHasher {
    pub(crate) fn new() -> Self {
        InlineHasher { buf: vec![0; CHUNK].into_boxed_slice() }
    }

    /// The sha256 of `path`'s NAR, equal to [`nar_sha256`]'s.
    pub(crate) fn nar_sha256(&mut self, path: &Path) -> Result<[u8; 32]> {
        if self.buf.is_empty() {
            self.buf = vec![0; CHUNK].into_boxed_slice();
        }
        let mut enc = Encoder::new(std::mem::take(&mut self.buf), HashDrain(BulkSha256::new()));
        let done = dump(path, &mut enc).and_then(|()| enc.flush_tail());
        // `HashDrain` hands each buffer straight back, so this is the one
        // lent above, whether or not the dump succeeded.
        self.buf = std::mem::take(&mut enc.buf);
        done?;
        Ok(enc.drain.0.finish())
    }
}

/// A buffer and how many of its leading bytes are NAR data.
struct Filled(Box<[u8]>, usize);

/// Takes a filled buffer and returns an empty one to fill next.
trait Drain {
    fn drain(&mut self, buf: Box<[u8]>, len: usize) -> Result<Box<[u8]>>;
}

struct WriteDrain<'a, W: Write> {
    out: &'a mut W,
    path: &'a Path,
}

impl<W: Write> Drain for WriteDrain<'_, W> {
    fn drain(&mut self, buf: Box<[u8]>, len: usize) -> Result<Box<[u8]>> {
        self.out.write_all(&buf[..len]).map_err(|e| Error::io("cannot write the NAR of", self.path, e))?;
        Ok(buf)
    }
}

/// Hashes each buffer in place and hands it straight back.
struct HashDrain(BulkSha256);

impl Drain for HashDrain {
    fn drain(&mut self, buf: Box<[u8]>, len: usize) -> Result<Box<[u8]>> {
        self.0.update(&buf[..len]);
        Ok(buf)
    }
}

struct ChannelDrain {
    full: SyncSender<Filled>,
    free: Receiver<Box<[u8]>>,
}

impl Drain for ChannelDrain {
    fn drain(&mut self, buf: Box<[u8]>, len: usize) -> Result<Box<[u8]>> {
        // The hashing side only hangs up if it panicked; that panic is
        // re-raised by `nar_sha256`, so this error is never seen.
        let gone = || Error::io("cannot hash", "", io::Error::other("the hashing thread stopped"));
        self.full.send(Filled(buf, len)).map_err(|_| gone())?;
        self.free.recv().map_err(|_| gone())
    }
}

/// Lays out NAR bytes into fixed-size buffers, handing each to a [`Drain`]
/// when full.
struct Encoder<D: Drain> {
    buf: Box<[u8]>,
    len: usize,
    drain: D,
}

impl<D: Drain> Encoder<D> {
    fn new(buf: Box<[u8]>, drain: D) -> Self {
        Encoder { buf, len: 0, drain }
    }

    fn flush(&mut self) -> Result<()> {
        let buf = std::mem::take(&mut self.buf);
        self.buf = self.drain.drain(buf, self.len)?;
        self.len = 0;
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        self.flush_tail()
    }

    /// Drains what is left, keeping the encoder.
    fn flush_tail(&mut self) -> Result<()> {
        if self.len > 0 {
            self.flush()?;
        }
        Ok(())
    }

    fn bytes(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            if self.len == self.buf.len() {
                self.flush()?;
            }
            let n = data.len().min(self.buf.len() - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&data[..n]);
            self.len += n;
            data = &data[n..];
        }
        Ok(())
    }

    fn u64(&mut self, n: u64) -> Result<()> {
        self.bytes(&n.to_le_bytes())
    }

    fn padding(&mut self, len: u64) -> Result<()> {
        let pad = (8 - (len % 8) as usize) % 8;
        self.bytes(&[0; 8][..pad])
    }

    fn str(&mut self, s: &[u8]) -> Result<()> {
        self.u64(s.len() as u64)?;
        self.bytes(s)?;
        self.padding(s.len() as u64)
    }

    /// Writes `size` and then exactly `size` bytes of `file`, read straight
    /// into the buffers.
    fn contents(&mut self, file: &mut File, size: u64, path: &Path) -> Result<()> {
        self.u64(size)?;
        let mut left = size;
        while left > 0 {
            if self.len == self.buf.len() {
                self.flush()?;
            }
            let room = (self.buf.len() - self.len).min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match file.read(&mut self.buf[self.len..self.len + room]) {
                // The header already promised `size` bytes.
                Ok(0) => {
                    let why = format!("file shrank while being read ({left} of {size} bytes missing)");
                    return Err(Error::io("cannot read", path, io::Error::new(io::ErrorKind::UnexpectedEof, why)));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("cannot read", path, e)),
            };
            self.len += n;
            left -= n as u64;
        }
        self.padding(size)
    }
}

/// A directory being serialised: the entries still to write, in NAR order.
struct Frame {
    entries: std::vec::IntoIter<(OsString, FileType)>,
}

/// Serialises the tree at `root` into `enc`, with an explicit stack so that
/// deep trees cannot overflow the thread's stack.
fn dump<D: Drain>(root: &Path, enc: &mut Encoder<D>) -> Result<()> {
    enc.str(b"nix-archive-1")?;
    let kind = fs::symlink_metadata(root).map_err(|e| Error::io("cannot stat", root, e))?.file_type();
    let mut path = root.to_path_buf();
    let mut stack: Vec<Frame> = Vec::new();
    if let Some(frame) = node(&path, kind, enc)? {
        stack.push(frame);
    }
    while let Some(frame) = stack.last_mut() {
        let Some((name, kind)) = frame.entries.next() else {
            enc.str(b")")?;
            stack.pop();
            // The root's own path is never popped: only entries close.
            if !stack.is_empty() {
                enc.str(b")")?;
                path.pop();
            }
            continue;
        };
        enc.str(b"entry")?;
        enc.str(b"(")?;
        enc.str(b"name")?;
        enc.str(name.as_bytes())?;
        enc.str(b"node")?;
        path.push(&name);
        match node(&path, kind, enc)? {
            Some(frame) => stack.push(frame),
            None => {
                enc.str(b")")?;
                path.pop();
            }
        }
    }
    Ok(())
}

/// Writes a whole node for files and symlinks; for a directory writes its
/// header and returns its entries, which the caller closes after them.
fn node<D: Drain>(path: &Path, kind: FileType, enc: &mut Encoder<D>) -> Result<Option<Frame>> {
    enc.str(b"(")?;
    enc.str(b"type")?;
    if kind.is_file() {
        let (mut file, meta) = open_listed_file(path)?;
        enc.str(b"regular")?;
        // Nix records only the owner's execute bit.
        if meta.permissions().mode() & 0o100 != 0 {
            enc.str(b"executable")?;
            enc.str(b"")?;
        }
        enc.str(b"contents")?;
        enc.contents(&mut file, meta.len(), path)?;
        enc.str(b")")?;
        Ok(None)
    } else if kind.is_symlink() {
        let target = fs::read_link(path).map_err(|e| Error::io("cannot read symlink", path, e))?;
        enc.str(b"symlink")?;
        enc.str(b"target")?;
        enc.str(target.as_os_str().as_bytes())?;
        enc.str(b")")?;
        Ok(None)
    } else if kind.is_dir() {
        enc.str(b"directory")?;
        Ok(Some(Frame { entries: list(path)?.into_iter() }))
    } else {
        let what = if kind.is_socket() {
            "a socket"
        } else if kind.is_fifo() {
            "a named pipe"
        } else if kind.is_block_device() || kind.is_char_device() {
            "a device"
        } else {
            "of an unknown type"
        };
        let why = format!("it is {what}; a NAR holds only regular files, directories and symlinks");
        Err(Error::io("cannot archive", path, io::Error::other(why)))
    }
}

/// Opens a file that listing its directory showed as a regular file, and
/// refuses it if it is not one any more: O_NOFOLLOW makes a file replaced
/// by a symlink fail rather than yield what the link points to, and
/// O_NONBLOCK keeps one replaced by a FIFO from blocking the open (a
/// regular file's reads ignore the flag).
pub(crate) fn open_listed_file(path: &Path) -> Result<(File, fs::Metadata)> {
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io("cannot open", path, e))?;
    let meta = file.metadata().map_err(|e| Error::io("cannot stat", path, e))?;
    if !meta.is_file() {
        return Err(Error::io("cannot archive", path, io::Error::other("it changed type while being archived")));
    }
    Ok((file, meta))
}

/// The entries of directory `path` in NAR order: sorted by the raw bytes
/// of their names.
pub(crate) fn list(path: &Path) -> Result<Vec<(OsString, FileType)>> {
    let read_err = |e| Error::io("cannot read directory", path, e);
    let mut entries = Vec::new();
    for entry in fs::read_dir(path).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        // The type readdir reports, so most entries need no stat.
        let kind = entry.file_type().map_err(|e| Error::io("cannot stat", entry.path(), e))?;
        entries.push((entry.file_name(), kind));
    }
    // OsString orders by raw bytes on Unix, which is the order Nix uses.
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    // The `sha2` crate as an independent reference for libcrypto's results.
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::symlink;

    fn nar(path: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        write_nar(path, &mut out).unwrap();
        out
    }

    fn s(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
        out.resize(out.len().next_multiple_of(8), 0);
    }

    #[test]
    fn regular_file_layout() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, b"hello").unwrap();
        let mut want = Vec::new();
        for t in ["nix-archive-1", "(", "type", "regular", "contents", "hello", ")"] {
            s(&mut want, t.as_bytes());
        }
        assert_eq!(nar(&f), want);
        assert_eq!(nar_sha256(&f).unwrap(), <[u8; 32]>::from(Sha256::digest(&want)));
    }

    #[test]
    fn executable_symlink_and_sorted_dir_layout() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        fs::write(root.join("b"), b"").unwrap();
        fs::set_permissions(root.join("b"), fs::Permissions::from_mode(0o755)).unwrap();
        symlink("/x", root.join("a")).unwrap();
        let mut want = Vec::new();
        for t in ["nix-archive-1", "(", "type", "directory"] {
            s(&mut want, t.as_bytes());
        }
        for t in ["entry", "(", "name", "a", "node", "(", "type", "symlink", "target", "/x", ")", ")"] {
            s(&mut want, t.as_bytes());
        }
        for t in ["entry", "(", "name", "b", "node", "(", "type", "regular", "executable", ""] {
            s(&mut want, t.as_bytes());
        }
        for t in ["contents", "", ")", ")", ")"] {
            s(&mut want, t.as_bytes());
        }
        assert_eq!(nar(&root), want);
    }

    #[test]
    fn hash_equals_sha256_of_written_nar_across_buffer_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (i, size) in [0, 1, 7, 8, 9, CHUNK - 3, CHUNK, CHUNK + 5, 3 * CHUNK + 1].iter().enumerate() {
            let data: Vec<u8> = (0..*size).map(|j| (j * 31 + i) as u8).collect();
            fs::write(root.join(format!("f{i}")), data).unwrap();
        }
        let sub = root.join("sub/deeper");
        fs::create_dir_all(&sub).unwrap();
        fs::write(sub.join("x"), b"x").unwrap();
        let want: [u8; 32] = Sha256::digest(nar(root)).into();
        assert_eq!(nar_sha256(root).unwrap(), want);
        // One inline hasher for all, its buffer reused after an error too.
        let mut inline = InlineHasher::new();
        assert_eq!(inline.nar_sha256(root).unwrap(), want);
        for i in [0, 3, 8] {
            let f = root.join(format!("f{i}"));
            assert!(inline.nar_sha256(&root.join("missing")).is_err());
            assert_eq!(inline.nar_sha256(&f).unwrap(), nar_sha256(&f).unwrap());
        }
        assert_eq!(inline.nar_sha256(root).unwrap(), want);
    }

    #[test]
    fn wide_mixed_tree_matches_the_reference() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for i in 0..600usize {
            let name = format!("e{i:04}");
            match i % 7 {
                0 => fs::create_dir_all(root.join(&name).join("inner")).unwrap(),
                1 => {
                    fs::create_dir(root.join(&name)).unwrap();
                    for j in 0..40u8 {
                        fs::write(root.join(&name).join(format!("f{j}")), [j; 3]).unwrap();
                    }
                }
                2 => symlink(&name, root.join(&name)).unwrap(),
                k => {
                    let size = [0, 9, 4096, 70_000][k - 3];
                    fs::write(root.join(&name), vec![i as u8; size]).unwrap();
                    if i % 3 == 0 {
                        fs::set_permissions(root.join(&name), fs::Permissions::from_mode(0o755)).unwrap();
                    }
                }
            }
        }
        let want: [u8; 32] = Sha256::digest(nar(root)).into();
        assert_eq!(nar_sha256(root).unwrap(), want);
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = dir.path().to_path_buf();
        for i in 0..1000 {
            p.push("d");
            if i == 100 {
                fs::create_dir_all(&p).unwrap();
                fs::write(p.join("file"), b"deep").unwrap();
                symlink("..", p.join("up")).unwrap();
            }
        }
        fs::create_dir_all(&p).unwrap();
        fs::write(p.join("bottom"), b"deepest").unwrap();
        let want: [u8; 32] = Sha256::digest(nar(dir.path())).into();
        assert_eq!(nar_sha256(dir.path()).unwrap(), want);
    }

    #[test]
    fn missing_path_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope");
        let err = nar_sha256(&p).unwrap_err();
        assert!(matches!(&err, Error::Io { path, .. } if *path == p), "{err}");
        assert_eq!(InlineHasher::new().nar_sha256(&p).unwrap_err().to_string(), err.to_string());
        assert!(write_nar(&p, &mut Vec::new()).is_err());
    }

    #[test]
    fn fifo_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fifo");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = nar_sha256(dir.path()).unwrap_err();
        assert!(matches!(&err, Error::Io { path, .. } if *path == p), "{err}");
    }

    /// A file listed as regular and swapped for a FIFO or a symlink before
    /// it is opened is refused, and the open does not wait for a writer.
    #[test]
    fn a_listed_file_swapped_for_a_fifo_or_symlink_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let link = dir.path().join("link");
        std::fs::write(dir.path().join("target"), b"x").unwrap();
        symlink("target", &link).unwrap();
        for path in [&fifo, &link] {
            let err = open_listed_file(path).unwrap_err();
            assert!(matches!(&err, Error::Io { path: p, .. } if p == path), "{err}");
        }
        assert!(open_listed_file(&dir.path().join("target")).is_ok());
    }
}
