//! Asking the Nix daemon for a closure over its socket, in the worker
//! protocol that the nix CLI itself speaks to it in multi-user installs.
//!
//! Starting the nix CLI costs about 12 ms of CPU before it does anything
//! (it loads some sixty shared libraries here), so `nix path-info` takes
//! 17–20 ms even for a 3-path closure: most of a first run's cost. The
//! daemon answers the same question in about 3 ms (it forks a worker for
//! the connection), one `QueryPathInfo` per path, sent in batches so that
//! a closure costs a round trip per batch. It reads the same database, so
//! the answer is the one `nix path-info --recursive` gives.
//!
//! When there is no daemon to ask (none listening, `NIX_REMOTE` naming
//! another store, a daemon too old or answering in a way this does not
//! follow), [`closure`] says so and the caller runs the nix CLI instead.

use std::collections::HashSet;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use super::command::Deadline;
use super::hash::NarHash;
use super::{Closure, PathInfo, StorePath};
use crate::{Error, Result};

const WORKER_MAGIC_1: u64 = 0x6e69_7863;
const WORKER_MAGIC_2: u64 = 0x6478_696f;
/// The protocol version this client speaks: 1.34 (Nix 2.8). Newer daemons
/// speak it too; later versions only add steps to the handshake.
const CLIENT_VERSION: u64 = (1 << 8) | 34;
/// Path infos have had their present form since 1.17; 1.21 is Nix 2.0.
const OLDEST_MINOR: u64 = 21;

const OP_QUERY_PATH_INFO: u64 = 26;

const STDERR_NEXT: u64 = 0x6f6c_6d67;
const STDERR_READ: u64 = 0x6461_7461;
const STDERR_WRITE: u64 = 0x6461_7416;
const STDERR_LAST: u64 = 0x616c_7473;
const STDERR_ERROR: u64 = 0x6378_7470;
const STDERR_START_ACTIVITY: u64 = 0x5354_5254;
const STDERR_STOP_ACTIVITY: u64 = 0x5354_4f50;
const STDERR_RESULT: u64 = 0x5253_4c54;

/// Requests sent before their answers are read: few enough that the
/// requests never fill the socket's buffer while the daemon writes answers.
const BATCH: usize = 64;

/// No string in an answer is longer (a store path is at most 211 + 44
/// bytes; a reference list is counted, not a string).
const MAX_STRING: u64 = 1 << 20;

/// The closure of `root` as the daemon records it; `Ok(None)` when there is
/// no daemon to ask, and the nix CLI should be asked instead.
pub fn closure(root: &StorePath, deadline: &Deadline) -> Result<Option<Closure>> {
    let Some(socket) = socket_path() else { return Ok(None) };
    let stream = match UnixStream::connect(&socket) {
        Ok(stream) => stream,
        Err(e) => {
            tracing::debug!("no Nix daemon at {}: {e}", socket.display());
            return Ok(None);
        }
    };
    match query(stream, root, deadline) {
        Ok(closure) => closure.map(Some),
        Err(e) if deadline.expired() => {
            tracing::debug!("the Nix daemon did not answer in time: {e}");
            Err(deadline.timeout_error(DAEMON_QUERY))
        }
        Err(e) => match deadline.interruption(DAEMON_QUERY) {
            Some(stopped) => Err(stopped),
            None => {
                tracing::debug!("the Nix daemon's answer was not understood, asking the nix CLI: {e}");
                Ok(None)
            }
        },
    }
}

const DAEMON_QUERY: &str = "the Nix daemon (closure query)";

/// How long a read from the daemon waits before it looks at the deadline
/// and for a stop signal again: a daemon that never answers must not hold
/// a Ctrl-C off.
const READ_SLICE: Duration = Duration::from_millis(100);

/// The daemon's side of the socket, read in slices of [`READ_SLICE`]: a
/// read that times out is tried again, unless the deadline has passed
/// (`TimedOut`) or a stop signal is pending (`Other`). Retrying below the
/// buffered reader keeps the protocol's framing whole.
struct PatientReader {
    stream: UnixStream,
    deadline: Deadline,
}

impl Read for PatientReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.stream.read(buf) {
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    if self.deadline.expired() {
                        return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "past the deadline"));
                    }
                    if self.deadline.interruption(DAEMON_QUERY).is_some() {
                        return Err(std::io::Error::other("stopped by a signal"));
                    }
                }
                done => return done,
            }
        }
    }
}

/// Where the daemon listens, unless `NIX_REMOTE` names another store.
fn socket_path() -> Option<PathBuf> {
    match std::env::var("NIX_REMOTE").unwrap_or_default().as_str() {
        "" | "daemon" => {}
        _ => return None,
    }
    if let Some(path) = std::env::var_os("NIX_DAEMON_SOCKET_PATH") {
        return Some(PathBuf::from(path));
    }
    let state = std::env::var_os("NIX_STATE_DIR").map_or_else(|| PathBuf::from("/nix/var/nix"), PathBuf::from);
    Some(state.join("daemon-socket/socket"))
}

/// The connection and its protocol version, after the handshake.
struct Connection {
    reader: BufReader<PatientReader>,
    writer: BufWriter<UnixStream>,
    minor: u64,
}

/// Inner result: an I/O or protocol error means "ask the CLI"; an error
/// the daemon reported about the closure is the run's answer.
fn query(stream: UnixStream, root: &StorePath, deadline: &Deadline) -> std::io::Result<Result<Closure>> {
    let limit = deadline.remaining().unwrap_or(Duration::from_secs(600)).max(Duration::from_millis(1));
    stream.set_read_timeout(Some(READ_SLICE.min(limit)))?;
    stream.set_write_timeout(Some(limit))?;
    let mut conn = Connection::open(stream, *deadline)?;
    let mut seen: HashSet<StorePath> = HashSet::from([root.clone()]);
    let mut pending = vec![root.clone()];
    let mut paths = Vec::new();
    while !pending.is_empty() {
        let batch: Vec<StorePath> = pending.drain(..pending.len().min(BATCH)).collect();
        for path in &batch {
            conn.write_u64(OP_QUERY_PATH_INFO)?;
            conn.write_str(path.as_str())?;
        }
        conn.writer.flush()?;
        for path in batch {
            if let Err(message) = conn.read_stderr()? {
                return Ok(Err(bad(format!("{path}: {message}"))));
            }
            let mut info = match conn.read_path_info(path)? {
                Ok(info) => info,
                Err(e) => return Ok(Err(e)),
            };
            // Each reference shares the one string of its path.
            for reference in &mut info.references {
                match seen.get(reference) {
                    Some(known) => *reference = known.clone(),
                    None => {
                        seen.insert(reference.clone());
                        pending.push(reference.clone());
                    }
                }
            }
            paths.push(info);
        }
    }
    paths.sort_by(|a, b| a.path.cmp(&b.path));
    for info in &mut paths {
        info.references.sort();
    }
    Ok(Ok(Closure { root: root.clone(), paths }))
}

fn bad(reason: String) -> Error {
    Error::NixOutput { command: "the Nix daemon's QueryPathInfo".into(), reason }
}

fn protocol(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

impl Connection {
    fn open(stream: UnixStream, deadline: Deadline) -> std::io::Result<Self> {
        let reader = PatientReader { stream: stream.try_clone()?, deadline };
        let mut conn = Connection {
            reader: BufReader::with_capacity(64 * 1024, reader),
            writer: BufWriter::new(stream),
            minor: 0,
        };
        conn.write_u64(WORKER_MAGIC_1)?;
        conn.writer.flush()?;
        if conn.read_u64()? != WORKER_MAGIC_2 {
            return Err(protocol("not a Nix daemon"));
        }
        let daemon = conn.read_u64()?;
        if daemon >> 8 != 1 || daemon & 0xff < OLDEST_MINOR {
            return Err(protocol("protocol version too old"));
        }
        let version = daemon.min(CLIENT_VERSION);
        conn.minor = version & 0xff;
        conn.write_u64(version)?;
        // No CPU affinity (1.14), no space reserved for the collector (1.11).
        conn.write_u64(0)?;
        conn.write_u64(0)?;
        conn.writer.flush()?;
        if conn.minor >= 33 {
            conn.read_string()?;
        }
        conn.read_stderr()?.map_err(|message| protocol(&message))?;
        Ok(conn)
    }

    /// One `QueryPathInfo` answer for `path`.
    fn read_path_info(&mut self, path: StorePath) -> std::io::Result<Result<PathInfo>> {
        if self.read_u64()? == 0 {
            return Ok(Err(bad(format!("{path} is not valid in the Nix store"))));
        }
        let _deriver = self.read_string()?;
        let hash = self.read_string()?;
        let references = self.read_strings()?;
        let _registration_time = self.read_u64()?;
        let nar_size = self.read_u64()?;
        let _ultimate = self.read_u64()?;
        let _signatures = self.read_strings()?;
        let _content_address = self.read_string()?;
        let nar_hash = match NarHash::parse(&hash) {
            Ok(hash) => hash,
            Err(e) => return Ok(Err(bad(format!("{path}: {e}")))),
        };
        let references = match references.iter().map(|r| StorePath::parse(r)).collect::<Result<Vec<_>, _>>() {
            Ok(references) => references,
            Err(e) => return Ok(Err(bad(format!("{path}: a reference is {e}")))),
        };
        Ok(Ok(PathInfo { path, nar_hash, nar_size, references }))
    }

    /// Reads the daemon's messages up to the end of an operation's log:
    /// `Err` with the daemon's message if it reported an error.
    fn read_stderr(&mut self) -> std::io::Result<std::result::Result<(), String>> {
        loop {
            match self.read_u64()? {
                STDERR_LAST => return Ok(Ok(())),
                STDERR_ERROR => return self.read_error().map(Err),
                STDERR_NEXT | STDERR_WRITE => {
                    self.read_string()?;
                }
                STDERR_START_ACTIVITY => {
                    let _activity = self.read_u64()?;
                    let _level = self.read_u64()?;
                    let _kind = self.read_u64()?;
                    self.read_string()?;
                    self.read_fields()?;
                    let _parent = self.read_u64()?;
                }
                STDERR_STOP_ACTIVITY => {
                    self.read_u64()?;
                }
                STDERR_RESULT => {
                    let _activity = self.read_u64()?;
                    let _kind = self.read_u64()?;
                    self.read_fields()?;
                }
                STDERR_READ => return Err(protocol("the daemon asked for data")),
                _ => return Err(protocol("unknown log message")),
            }
        }
    }

    fn read_error(&mut self) -> std::io::Result<String> {
        if self.minor < 26 {
            let message = self.read_string()?;
            let _status = self.read_u64()?;
            return Ok(message);
        }
        let _kind = self.read_string()?;
        let _level = self.read_u64()?;
        let _name = self.read_string()?;
        let message = self.read_string()?;
        let _position = self.read_u64()?;
        for _ in 0..self.read_u64()? {
            let _position = self.read_u64()?;
            self.read_string()?;
        }
        Ok(message)
    }

    fn read_fields(&mut self) -> std::io::Result<()> {
        for _ in 0..self.read_u64()? {
            match self.read_u64()? {
                0 => {
                    self.read_u64()?;
                }
                1 => {
                    self.read_string()?;
                }
                _ => return Err(protocol("unknown field type")),
            }
        }
        Ok(())
    }

    fn read_u64(&mut self) -> std::io::Result<u64> {
        let mut bytes = [0u8; 8];
        self.reader.read_exact(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    /// A length, the bytes, and zeros up to a multiple of 8.
    fn read_string(&mut self) -> std::io::Result<String> {
        let len = self.read_u64()?;
        if len > MAX_STRING {
            return Err(protocol("string too long"));
        }
        let padded = (len as usize).div_ceil(8) * 8;
        let mut bytes = vec![0u8; padded];
        self.reader.read_exact(&mut bytes)?;
        bytes.truncate(len as usize);
        String::from_utf8(bytes).map_err(|_| protocol("string is not UTF-8"))
    }

    fn read_strings(&mut self) -> std::io::Result<Vec<String>> {
        let count = self.read_u64()?;
        // Each string takes at least 8 bytes: a count past what any store
        // holds is a misread answer, not a reason to allocate.
        if count > MAX_STRING {
            return Err(protocol("list too long"));
        }
        (0..count).map(|_| self.read_string()).collect()
    }

    fn write_u64(&mut self, value: u64) -> std::io::Result<()> {
        self.writer.write_all(&value.to_le_bytes())
    }

    fn write_str(&mut self, text: &str) -> std::io::Result<()> {
        self.write_u64(text.len() as u64)?;
        self.writer.write_all(text.as_bytes())?;
        self.writer.write_all(&[0u8; 8][..text.len().div_ceil(8) * 8 - text.len()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    const ROOT: &str = "/nix/store/g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-hello";
    const DEP: &str = "/nix/store/iyfbhgnyacs9c74b5s3lp4vynl972yly-busybox";
    const HEX: &str = "1d0495fcf8173bdbfb423e6e42def545db831dc010c62d1a1093d3130d81a454";

    fn u64s(out: &mut Vec<u8>, value: u64) {
        out.extend_from_slice(&value.to_le_bytes());
    }

    fn string(out: &mut Vec<u8>, text: &str) {
        u64s(out, text.len() as u64);
        out.extend_from_slice(text.as_bytes());
        out.resize(out.len() + (text.len().div_ceil(8) * 8 - text.len()), 0);
    }

    fn info(out: &mut Vec<u8>, references: &[&str]) {
        u64s(out, STDERR_LAST);
        u64s(out, 1);
        string(out, "");
        string(out, HEX);
        u64s(out, references.len() as u64);
        for r in references {
            string(out, r);
        }
        u64s(out, 0);
        u64s(out, 120);
        u64s(out, 0);
        u64s(out, 0);
        string(out, "");
    }

    /// A daemon that answers the handshake and then writes `answers`,
    /// whatever it is asked; what it was sent comes back from the thread.
    fn fake_daemon(answers: Vec<u8>) -> (UnixStream, std::thread::JoinHandle<Vec<u8>>) {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("socket");
        let listener = UnixListener::bind(&socket).unwrap();
        let client = UnixStream::connect(&socket).unwrap();
        let server = std::thread::spawn(move || {
            let _dir = dir;
            let (mut stream, _) = listener.accept().unwrap();
            let mut hello = [0u8; 8];
            stream.read_exact(&mut hello).unwrap();
            let mut out = Vec::new();
            u64s(&mut out, WORKER_MAGIC_2);
            u64s(&mut out, (1 << 8) | 37);
            stream.write_all(&out).unwrap();
            let mut agreed = [0u8; 24];
            stream.read_exact(&mut agreed).unwrap();
            let mut out = Vec::new();
            string(&mut out, "2.24.0");
            u64s(&mut out, STDERR_NEXT);
            string(&mut out, "a log line");
            u64s(&mut out, STDERR_LAST);
            out.extend_from_slice(&answers);
            stream.write_all(&out).unwrap();
            stream.shutdown(std::net::Shutdown::Write).unwrap();
            let mut sent = agreed.to_vec();
            let _ = stream.read_to_end(&mut sent);
            sent
        });
        (client, server)
    }

    #[test]
    fn reads_a_closure_breadth_first() {
        let mut answers = Vec::new();
        info(&mut answers, &[DEP, ROOT]);
        info(&mut answers, &[]);
        let (client, server) = fake_daemon(answers);
        let root = StorePath::parse(ROOT).unwrap();
        let closure = query(client, &root, &Deadline::none()).unwrap().unwrap();
        assert_eq!(closure.store_paths().map(StorePath::as_str).collect::<Vec<_>>(), [ROOT, DEP]);
        assert_eq!(closure.paths[0].references.len(), 2);
        assert_eq!(closure.paths[1].nar_hash, NarHash::parse(HEX).unwrap());
        let sent = server.join().unwrap();
        // The version agreed on is this client's, then two zeros.
        assert_eq!(u64::from_le_bytes(sent[..8].try_into().unwrap()), CLIENT_VERSION);
        assert_eq!(u64::from_le_bytes(sent[24..32].try_into().unwrap()), OP_QUERY_PATH_INFO);
    }

    #[test]
    fn an_invalid_path_or_a_daemon_error_is_an_answer() {
        let mut invalid = Vec::new();
        u64s(&mut invalid, STDERR_LAST);
        u64s(&mut invalid, 0);
        let (client, _server) = fake_daemon(invalid);
        let root = StorePath::parse(ROOT).unwrap();
        let err = query(client, &root, &Deadline::none()).unwrap().unwrap_err();
        assert!(matches!(err, Error::NixOutput { .. }), "{err}");
        let mut error = Vec::new();
        u64s(&mut error, STDERR_ERROR);
        string(&mut error, "Error");
        u64s(&mut error, 0);
        string(&mut error, "Error");
        string(&mut error, "path is not in the store");
        u64s(&mut error, 0);
        u64s(&mut error, 0);
        let (client, _server) = fake_daemon(error);
        let err = query(client, &root, &Deadline::none()).unwrap().unwrap_err();
        assert!(
            matches!(&err, Error::NixOutput { reason, .. } if reason.contains("path is not in the store")),
            "{err}"
        );
    }

    #[test]
    fn a_cut_answer_means_asking_the_cli() {
        let mut cut = Vec::new();
        u64s(&mut cut, STDERR_LAST);
        u64s(&mut cut, 1);
        string(&mut cut, "");
        let (client, _server) = fake_daemon(cut);
        let root = StorePath::parse(ROOT).unwrap();
        assert!(query(client, &root, &Deadline::none()).is_err());
    }
}
