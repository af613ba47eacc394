//! The image tar reader (`image::tar::TarReader`), which `nucleus verify`
//! runs on images from anywhere, and the writer it pairs with.
//!
//! Three shapes of input:
//! - raw bytes;
//! - crafted headers: every field chosen by the fuzzer (names, prefixes,
//!   octal, base-256 or raw numbers, any type flag, pax and GNU long-name
//!   records) but the checksum computed, so that the fuzzer gets past it
//!   (or, when asked, deliberately wrong);
//! - entries written by `TarWriter` (long names and links through pax, and
//!   a last header for a file of any size, up to 2^64 - 1 bytes, refused
//!   when its data and padding would not fit in 64 bits).
//!
//! Whatever the bytes, reading never panics and ends; every entry has a
//! clean path (no leading `./`, no trailing `/`), directories and links no
//! data, a mode of at most 0o7777, and its data is exactly its size when
//! the reader says the entry is complete. What `TarWriter` writes reads
//! back exactly as written.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use nucleus::image::tar::{padding, Entry, TarEntryKind, TarReader, TarWriter, BLOCK};

#[derive(Arbitrary, Debug)]
enum Input {
    Raw(Vec<u8>),
    Crafted(Vec<Crafted>),
    Written { entries: Vec<Written>, last_size: Option<u64> },
}

#[derive(Arbitrary, Debug)]
struct Crafted {
    name: Vec<u8>,
    mode: Number,
    size: Number,
    flag: u8,
    link: Vec<u8>,
    /// With the ustar magic (and so the prefix field), or the old format.
    ustar: bool,
    prefix: Vec<u8>,
    /// The checksum is right unless this is set.
    bad_checksum: bool,
    /// Data after the header; padded to a block unless `unpadded`.
    body: Body,
    unpadded: bool,
}

#[derive(Arbitrary, Debug)]
enum Number {
    Octal(u64),
    Base256(u64),
    Raw([u8; 12]),
}

#[derive(Arbitrary, Debug)]
enum Body {
    Bytes(Vec<u8>),
    /// `"<len> key=value\n"` records; `len` right unless `skew` is set.
    Pax {
        records: Vec<(Vec<u8>, Vec<u8>)>,
        skew: Option<i8>,
    },
}

#[derive(Arbitrary, Debug)]
struct Written {
    kind: Kind,
    path: Vec<u8>,
    mode: u32,
    data: Vec<u8>,
    link: Vec<u8>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Kind {
    Directory,
    Regular,
    Symlink,
}

fuzz_target!(|input: Input| {
    match input {
        Input::Raw(bytes) => {
            let _ = read_all(&bytes);
        }
        Input::Crafted(entries) => {
            let mut bytes = Vec::new();
            for entry in &entries {
                craft(&mut bytes, entry);
            }
            let _ = read_all(&bytes);
        }
        Input::Written { entries, last_size } => round_trip(&entries, last_size),
    }
});

/// Entries with their data, as read.
type Read = Vec<(Entry, Vec<u8>)>;

/// Every entry and its data; `Err` where the reader stopped with an error.
fn read_all(bytes: &[u8]) -> (Read, Result<(), std::io::Error>) {
    let mut reader = TarReader::new(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 700];
    let mut chunk = 1;
    loop {
        let entry = match reader.next_entry() {
            Ok(Some(entry)) => entry,
            Ok(None) => return (out, Ok(())),
            Err(e) => return (out, Err(e)),
        };
        check_entry(&entry);
        let mut data = Vec::new();
        loop {
            // Vary the read size, across block boundaries.
            chunk = chunk * 7 % buf.len() + 1;
            match reader.read_data(&mut buf[..chunk]) {
                Ok(0) => break,
                Ok(n) => data.extend_from_slice(&buf[..n]),
                Err(e) => return (out, Err(e)),
            }
        }
        assert_eq!(data.len() as u64, entry.size, "{entry:?}");
        out.push((entry, data));
    }
}

fn check_entry(entry: &Entry) {
    assert!(!entry.path.starts_with(b"./"), "{entry:?}");
    assert!(entry.path.len() <= 1 || !entry.path.ends_with(b"/"), "{entry:?}");
    assert!(entry.mode <= 0o7777, "{entry:?}");
    if matches!(entry.kind, TarEntryKind::Directory | TarEntryKind::Symlink) {
        assert_eq!(entry.size, 0, "{entry:?}");
    }
}

fn craft(out: &mut Vec<u8>, entry: &Crafted) {
    let body = match &entry.body {
        Body::Bytes(bytes) => bytes.clone(),
        Body::Pax { records, skew } => {
            let mut body = Vec::new();
            for (key, value) in records {
                let rest = 1 + key.len() + 1 + value.len() + 1;
                let mut len = rest + 1;
                while len != rest + len.to_string().len() {
                    len = rest + len.to_string().len();
                }
                let len = len as i64 + i64::from(skew.unwrap_or(0));
                body.extend_from_slice(format!("{len} ").as_bytes());
                body.extend_from_slice(key);
                body.push(b'=');
                body.extend_from_slice(value);
                body.push(b'\n');
            }
            body
        }
    };
    let mut h = [0u8; BLOCK];
    let name = &entry.name[..entry.name.len().min(100)];
    h[..name.len()].copy_from_slice(name);
    number(&mut h[100..108], &entry.mode);
    number(&mut h[124..136], &entry.size);
    h[156] = entry.flag;
    let link = &entry.link[..entry.link.len().min(100)];
    h[157..157 + link.len()].copy_from_slice(link);
    if entry.ustar {
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        let prefix = &entry.prefix[..entry.prefix.len().min(155)];
        h[345..345 + prefix.len()].copy_from_slice(prefix);
    }
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let sum = if entry.bad_checksum { sum + 1 } else { sum };
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(&body);
    if !entry.unpadded {
        out.resize(out.len() + padding(body.len() as u64), 0);
    }
}

fn number(field: &mut [u8], n: &Number) {
    match n {
        Number::Octal(v) => {
            let digits = field.len() - 1;
            let text = format!("{v:0digits$o}");
            field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
        }
        Number::Base256(v) => {
            field.fill(0);
            field[0] = 0x80;
            let bytes = v.to_be_bytes();
            let len = field.len();
            field[len - 8..].copy_from_slice(&bytes);
        }
        Number::Raw(raw) => field.copy_from_slice(&raw[..field.len()]),
    }
}

/// What `TarWriter` writes, read back.
fn round_trip(entries: &[Written], last_size: Option<u64>) {
    let mut bytes = Vec::new();
    let mut tar = TarWriter::new(&mut bytes);
    let mut expected = Vec::new();
    for e in entries {
        // Paths as the reader hands them back: no NUL (a name field ends at
        // one), no leading `./`, no trailing `/`, not empty.
        let mut path: Vec<u8> = e.path.iter().copied().filter(|b| *b != 0).collect();
        while path.starts_with(b"./") {
            path.drain(..2);
        }
        while path.ends_with(b"/") {
            path.pop();
        }
        // A directory `.` is written as `./`, which reads back as the root.
        if path.is_empty() || (path == b"." && matches!(e.kind, Kind::Directory)) {
            path = b"x".to_vec();
        }
        let link: Vec<u8> = e.link.iter().copied().filter(|b| *b != 0).collect();
        let mode = e.mode & 0o7777;
        let entry = match e.kind {
            Kind::Directory => {
                tar.directory(&path, mode).unwrap();
                Entry { path, kind: TarEntryKind::Directory, mode, size: 0, link: Vec::new() }
            }
            Kind::Symlink => {
                tar.symlink(&path, &link).unwrap();
                Entry { path, kind: TarEntryKind::Symlink, mode: 0o777, size: 0, link }
            }
            Kind::Regular => {
                tar.begin_file(&path, mode, e.data.len() as u64).unwrap();
                let (a, b) = e.data.split_at(e.data.len() / 3);
                tar.data(a).unwrap();
                tar.data(b).unwrap();
                tar.end_file().unwrap();
                let size = e.data.len() as u64;
                Entry { path, kind: TarEntryKind::Regular, mode, size, link: Vec::new() }
            }
        };
        let data = if matches!(e.kind, Kind::Regular) { e.data.clone() } else { Vec::new() };
        expected.push((entry, data));
    }
    match last_size {
        None => {
            tar.finish().unwrap();
            assert_eq!(bytes.len() % BLOCK, 0);
            let (got, end) = read_all(&bytes);
            end.unwrap();
            assert_eq!(got, expected);
        }
        Some(size) => {
            // A header alone: the reader hands over the entry, then finds
            // the archive cut short inside it (unless it is empty).
            let name = b"nix/store/big";
            tar.begin_file(name, 0o444, size).unwrap();
            let mut reader = TarReader::new(bytes.as_slice());
            for (entry, _) in &expected {
                assert_eq!(&reader.next_entry().unwrap().unwrap(), entry);
            }
            if size.checked_add(padding(size) as u64).is_none() {
                assert!(reader.next_entry().is_err(), "{size} bytes cannot be padded");
                return;
            }
            let big = reader.next_entry().unwrap().unwrap();
            assert_eq!((big.path.as_slice(), big.size, big.kind), (&name[..], size, TarEntryKind::Regular));
            if size == 0 {
                assert!(reader.next_entry().unwrap().is_none());
            } else {
                assert!(reader.next_entry().is_err());
            }
        }
    }
}
