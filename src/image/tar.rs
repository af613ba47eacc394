//! A deterministic tar writer, and a reader for what it writes.
//!
//! Layers must be byte-for-byte the same wherever and whenever they are
//! made, so every field that could vary is fixed here: POSIX ustar headers
//! with uid and gid 0, no user or group names, mtime [`MTIME`], no device
//! numbers, and a pax extended header (POSIX, not GNU's `././@LongLink`)
//! only for what does not fit a ustar field: a name or link target over
//! 100 bytes, a size of 8 GiB or more. The `tar` crate was considered: it
//! writes GNU long-name entries for long paths whatever the header format,
//! and each header field would need overriding anyway; the format is small
//! enough that owning it keeps the bytes, and so the digests, under this
//! project's control across dependency upgrades.
//!
//! The reader accepts ustar and pax (plus GNU long names, which other tools
//! write) and hands entries over in archive order, which is what
//! `nucleus verify` needs to rebuild each store path's NAR stream.

use std::io::{self, Read, Write};

pub const BLOCK: usize = 512;

/// The modification time of every entry: 1 second after the epoch, what
/// Nix gives every file in the store.
pub const MTIME: u64 = 1;

/// The largest size a ustar header holds (11 octal digits).
const USTAR_MAX_SIZE: u64 = 0o77777777777;
const NAME_LEN: usize = 100;
const PAX_HEADER_NAME: &[u8] = b"././@PaxHeader";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TarEntryKind {
    Directory,
    Regular,
    Symlink,
    /// Anything else (hard links, devices, fifos): never written here.
    Other(u8),
}

impl TarEntryKind {
    fn flag(self) -> u8 {
        match self {
            TarEntryKind::Directory => b'5',
            TarEntryKind::Regular => b'0',
            TarEntryKind::Symlink => b'2',
            TarEntryKind::Other(flag) => flag,
        }
    }
}

/// Writes entries one after another; file contents go through
/// [`TarWriter::data`] between [`TarWriter::begin_file`] and
/// [`TarWriter::end_file`].
pub struct TarWriter<W: Write> {
    out: W,
    /// Bytes of the current file still expected.
    remaining: u64,
    /// The current file's size, for its padding.
    size: u64,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> Self {
        TarWriter { out, remaining: 0, size: 0 }
    }

    /// A directory; `path` is written with a trailing `/`.
    pub fn directory(&mut self, path: &[u8], mode: u32) -> io::Result<()> {
        let mut name = path.to_vec();
        if !name.ends_with(b"/") {
            name.push(b'/');
        }
        self.header(&name, TarEntryKind::Directory, mode, 0, b"")
    }

    pub fn symlink(&mut self, path: &[u8], target: &[u8]) -> io::Result<()> {
        self.header(path, TarEntryKind::Symlink, 0o777, 0, target)
    }

    /// The header of a regular file of `size` bytes; exactly `size` bytes
    /// must follow through [`TarWriter::data`].
    pub fn begin_file(&mut self, path: &[u8], mode: u32, size: u64) -> io::Result<()> {
        self.header(path, TarEntryKind::Regular, mode, size, b"")?;
        self.remaining = size;
        self.size = size;
        Ok(())
    }

    pub fn data(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.len() as u64 > self.remaining {
            return Err(io::Error::other("a file grew while it was archived"));
        }
        self.remaining -= bytes.len() as u64;
        self.out.write_all(bytes)
    }

    pub fn end_file(&mut self) -> io::Result<()> {
        if self.remaining != 0 {
            return Err(io::Error::other("a file shrank while it was archived"));
        }
        self.pad(self.size)
    }

    /// Two zero blocks, and the writer back.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0; 2 * BLOCK])?;
        Ok(self.out)
    }

    fn pad(&mut self, len: u64) -> io::Result<()> {
        let pad = padding(len);
        self.out.write_all(&[0; BLOCK][..pad])
    }

    fn header(&mut self, path: &[u8], kind: TarEntryKind, mode: u32, size: u64, link: &[u8]) -> io::Result<()> {
        let mut records: Vec<(&str, Vec<u8>)> = Vec::new();
        if path.len() > NAME_LEN {
            records.push(("path", path.to_vec()));
        }
        if link.len() > NAME_LEN {
            records.push(("linkpath", link.to_vec()));
        }
        if size > USTAR_MAX_SIZE {
            records.push(("size", size.to_string().into_bytes()));
        }
        if !records.is_empty() {
            let body = pax_records(&records);
            let header = ustar_header(PAX_HEADER_NAME, TarEntryKind::Other(b'x'), 0o644, body.len() as u64, b"");
            self.out.write_all(&header)?;
            self.out.write_all(&body)?;
            self.pad(body.len() as u64)?;
        }
        self.out.write_all(&ustar_header(path, kind, mode, size, link))
    }
}

/// Zero bytes after `len` bytes of data, up to the next block.
pub fn padding(len: u64) -> usize {
    ((BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64) as usize
}

/// `"<len> <key>=<value>\n"` records, where `len` counts the whole record.
fn pax_records(records: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        let rest = 1 + key.len() + 1 + value.len() + 1;
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        out.extend_from_slice(format!("{len} {key}=").as_bytes());
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

fn ustar_header(path: &[u8], kind: TarEntryKind, mode: u32, size: u64, link: &[u8]) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    let name = &path[..path.len().min(NAME_LEN)];
    h[..name.len()].copy_from_slice(name);
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], if size > USTAR_MAX_SIZE { 0 } else { size });
    octal(&mut h[136..148], MTIME);
    h[156] = kind.flag();
    let link = &link[..link.len().min(NAME_LEN)];
    h[157..157 + link.len()].copy_from_slice(link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    octal(&mut h[329..337], 0);
    octal(&mut h[337..345], 0);
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let text = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(text.as_bytes());
    h
}

/// Zero-padded octal filling the field but its last byte, which is NUL.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

/// One entry as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Without a leading `./` or a trailing `/`.
    pub path: Vec<u8>,
    pub kind: TarEntryKind,
    pub mode: u32,
    pub size: u64,
    pub link: Vec<u8>,
}

/// Reads entries in archive order; an entry's data is read with
/// [`TarReader::read_data`] before asking for the next one (whatever is
/// left unread is skipped).
pub struct TarReader<R: Read> {
    inner: R,
    remaining: u64,
    pad: usize,
}

fn bad(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R) -> Self {
        TarReader { inner, remaining: 0, pad: 0 }
    }

    pub fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        self.skip_rest()?;
        let mut long_path: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax_size: Option<u64> = None;
        loop {
            let mut h = [0u8; BLOCK];
            if !self.read_block(&mut h)? || h.iter().all(|b| *b == 0) {
                return Ok(None);
            }
            check_checksum(&h)?;
            let size = match pax_size.take() {
                Some(size) => size,
                None => parse_number(&h[124..136])?,
            };
            let flag = h[156];
            match flag {
                b'x' | b'g' | b'L' | b'K' => {
                    let body = self.read_body(size)?;
                    match flag {
                        b'x' => {
                            for (key, value) in parse_pax(&body)? {
                                match key.as_slice() {
                                    b"path" => long_path = Some(value),
                                    b"linkpath" => long_link = Some(value),
                                    b"size" => {
                                        let text = String::from_utf8_lossy(&value).into_owned();
                                        pax_size = Some(text.parse().map_err(|_| bad("a pax size is not a number"))?);
                                    }
                                    _ => {}
                                }
                            }
                        }
                        b'L' => long_path = Some(until_nul(&body).to_vec()),
                        b'K' => long_link = Some(until_nul(&body).to_vec()),
                        _ => {}
                    }
                    continue;
                }
                _ => {}
            }
            let path = long_path.take().unwrap_or_else(|| ustar_name(&h));
            let link = long_link.take().unwrap_or_else(|| until_nul(&h[157..257]).to_vec());
            let kind = match flag {
                b'0' | 0 | b'7' => TarEntryKind::Regular,
                b'5' => TarEntryKind::Directory,
                b'2' => TarEntryKind::Symlink,
                other => TarEntryKind::Other(other),
            };
            let mode = u32::try_from(parse_number(&h[100..108])? & 0o7777).unwrap_or(0);
            let has_data = matches!(kind, TarEntryKind::Regular | TarEntryKind::Other(_));
            let size = if has_data { size } else { 0 };
            // A pax or base-256 size may be anything up to 2^64 - 1: the
            // data and its padding must still be a number of bytes to skip.
            if size.checked_add(padding(size) as u64).is_none() {
                return Err(bad("an entry's size does not fit in 64 bits with its padding"));
            }
            self.remaining = size;
            self.pad = padding(size);
            return Ok(Some(Entry { path: clean_path(&path), kind, mode, size, link }));
        }
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Reads the current entry's data; 0 at its end.
    pub fn read_data(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(bad("the archive ends inside an entry"));
        }
        self.remaining -= n as u64;
        Ok(n)
    }

    fn skip_rest(&mut self) -> io::Result<()> {
        let skip = self.remaining + self.pad as u64;
        let copied = io::copy(&mut (&mut self.inner).take(skip), &mut io::sink())?;
        if copied != skip {
            return Err(bad("the archive ends inside an entry"));
        }
        self.remaining = 0;
        self.pad = 0;
        Ok(())
    }

    fn read_body(&mut self, size: u64) -> io::Result<Vec<u8>> {
        const MAX_META: u64 = 1 << 20;
        if size > MAX_META {
            return Err(bad("an extended header is larger than 1 MiB"));
        }
        let mut body = vec![0; size as usize];
        self.inner.read_exact(&mut body)?;
        let mut pad = vec![0; padding(size)];
        self.inner.read_exact(&mut pad)?;
        Ok(body)
    }

    /// False at a clean end of input.
    fn read_block(&mut self, block: &mut [u8; BLOCK]) -> io::Result<bool> {
        let mut filled = 0;
        while filled < BLOCK {
            match self.inner.read(&mut block[filled..]) {
                Ok(0) if filled == 0 => return Ok(false),
                Ok(0) => return Err(bad("the archive ends inside a header")),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

fn check_checksum(h: &[u8; BLOCK]) -> io::Result<()> {
    let recorded = parse_number(&h[148..156])?;
    let sum: u64 = h.iter().enumerate().map(|(i, b)| if (148..156).contains(&i) { 32 } else { u64::from(*b) }).sum();
    if recorded != sum {
        return Err(bad("a header's checksum is wrong"));
    }
    Ok(())
}

fn until_nul(bytes: &[u8]) -> &[u8] {
    bytes.iter().position(|b| *b == 0).map_or(bytes, |end| &bytes[..end])
}

/// The name field, with ustar's prefix field in front when it is set.
fn ustar_name(h: &[u8; BLOCK]) -> Vec<u8> {
    let name = until_nul(&h[..100]);
    let prefix = if &h[257..262] == b"ustar" { until_nul(&h[345..500]) } else { b"" };
    if prefix.is_empty() {
        name.to_vec()
    } else {
        [prefix, b"/", name].concat()
    }
}

fn clean_path(path: &[u8]) -> Vec<u8> {
    let mut p = path;
    while let Some(rest) = p.strip_prefix(b"./") {
        p = rest;
    }
    while p.len() > 1 && p.ends_with(b"/") {
        p = &p[..p.len() - 1];
    }
    p.to_vec()
}

/// Octal (spaces and NULs around it allowed), or GNU's base-256 when the
/// high bit of the first byte is set.
fn parse_number(field: &[u8]) -> io::Result<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut value: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            value = value.checked_mul(256).ok_or_else(|| bad("a number field overflows"))? | u64::from(*b);
        }
        return Ok(value);
    }
    let text: Vec<u8> =
        field.iter().copied().skip_while(|b| *b == b' ').take_while(|b| (b'0'..=b'7').contains(b)).collect();
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(std::str::from_utf8(&text).unwrap_or("0"), 8).map_err(|_| bad("a number field is not octal"))
}

fn parse_pax(body: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let space = rest.iter().position(|b| *b == b' ').ok_or_else(|| bad("a pax record has no length"))?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|t| t.parse().ok())
            .filter(|len| *len > space && *len <= rest.len())
            .ok_or_else(|| bad("a pax record's length is wrong"))?;
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").ok_or_else(|| bad("a pax record does not end in a newline"))?;
        let eq = record.iter().position(|b| *b == b'=').ok_or_else(|| bad("a pax record has no '='"))?;
        out.push((record[..eq].to_vec(), record[eq + 1..].to_vec()));
        rest = &rest[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(write: impl FnOnce(&mut TarWriter<&mut Vec<u8>>)) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut tar = TarWriter::new(&mut bytes);
        write(&mut tar);
        tar.finish().unwrap();
        bytes
    }

    fn read_all(bytes: &[u8]) -> Vec<(Entry, Vec<u8>)> {
        let mut reader = TarReader::new(bytes);
        let mut out = Vec::new();
        while let Some(entry) = reader.next_entry().unwrap() {
            let mut data = Vec::new();
            let mut buf = [0u8; 7];
            loop {
                let n = reader.read_data(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&buf[..n]);
            }
            out.push((entry, data));
        }
        out
    }

    #[test]
    fn entries_round_trip_with_long_names_through_pax() {
        let long_name = format!("nix/store/{}/{}", "a".repeat(32), "b".repeat(120));
        let long_target = format!("/nix/store/{}", "c".repeat(150));
        let bytes = archive(|tar| {
            tar.directory(b"nix", 0o755).unwrap();
            tar.symlink(b"nix/link", long_target.as_bytes()).unwrap();
            tar.begin_file(long_name.as_bytes(), 0o555, 5).unwrap();
            tar.data(b"he").unwrap();
            tar.data(b"llo").unwrap();
            tar.end_file().unwrap();
            tar.begin_file(b"empty", 0o444, 0).unwrap();
            tar.end_file().unwrap();
        });
        assert_eq!(bytes.len() % BLOCK, 0);
        let entries = read_all(&bytes);
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0].0.path, b"nix");
        assert_eq!(entries[0].0.kind, TarEntryKind::Directory);
        assert_eq!(entries[1].0.link, long_target.as_bytes());
        assert_eq!(entries[2].0.path, long_name.as_bytes());
        assert_eq!((entries[2].0.mode, entries[2].1.as_slice()), (0o555, &b"hello"[..]));
        assert_eq!(entries[3].0.size, 0);
    }

    #[test]
    fn headers_are_fixed_and_match_what_gnu_tar_reads() {
        let bytes = archive(|tar| {
            tar.begin_file(b"f", 0o444, 3).unwrap();
            tar.data(b"abc").unwrap();
            tar.end_file().unwrap();
        });
        let h = &bytes[..BLOCK];
        assert_eq!(&h[100..108], b"0000444\0");
        assert_eq!(&h[136..148], b"00000000001\0", "mtime 1");
        assert_eq!(&h[257..265], b"ustar\x0000");
        assert_eq!(&bytes[BLOCK..BLOCK + 3], b"abc");
        assert_eq!(bytes.len(), 4 * BLOCK);
    }

    #[test]
    fn a_file_of_the_wrong_length_is_an_error() {
        let mut bytes = Vec::new();
        let mut tar = TarWriter::new(&mut bytes);
        tar.begin_file(b"f", 0o444, 2).unwrap();
        assert!(tar.data(b"abc").is_err());
        tar.data(b"a").unwrap();
        assert!(tar.end_file().is_err());
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        let body = pax_records(&[("path", vec![b'x'; 93])]);
        assert!(body.starts_with(b"103 path="), "{}", String::from_utf8_lossy(&body));
        assert_eq!(body.len(), 103);
        let body = pax_records(&[("path", vec![b'x'; 1])]);
        assert_eq!(body, b"9 path=x\n", "9 bytes, the length digit included");
    }

    #[test]
    fn a_size_too_large_to_pad_is_refused() {
        // A pax size of 2^64 - 1: skipping its data and padding would
        // overflow (found by fuzz/fuzz_targets/image_tar.rs).
        for (size, fits) in [(u64::MAX, false), (u64::MAX - 510, false), (u64::MAX - 511, true)] {
            let mut bytes = Vec::new();
            TarWriter::new(&mut bytes).begin_file(b"big", 0o444, size).unwrap();
            let mut reader = TarReader::new(bytes.as_slice());
            match reader.next_entry() {
                Ok(Some(entry)) => {
                    assert!(fits, "{size}");
                    assert_eq!(entry.size, size);
                    assert!(reader.next_entry().is_err(), "the archive ends inside the entry");
                }
                other => {
                    assert!(!fits, "{size}: {other:?}");
                    assert_eq!(other.unwrap_err().kind(), io::ErrorKind::InvalidData);
                }
            }
        }
    }

    #[test]
    fn a_corrupt_header_is_refused() {
        let mut bytes = archive(|tar| tar.directory(b"d", 0o755).unwrap());
        bytes[0] = b'e';
        assert!(TarReader::new(bytes.as_slice()).next_entry().is_err());
    }
}
