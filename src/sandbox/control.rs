//! The supervisor's control socket (`control.sock` in the container's
//! directory): how `nucleus kill` and `nucleus exec` reach a running
//! container.
//!
//! runsc's own control socket is an abstract Unix socket, which lives in a
//! network namespace, and its state files hold pids of the container's pid
//! namespace: a runsc control call only works from inside the container's
//! namespaces. The supervisor is there, so every control call goes through
//! it. Each message is one line of JSON; `exec` sends its stdio along with
//! its request, and the supervisor sends a terminal back the same way.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::fdpass::{recv_with_fds, send_with_fds};
use crate::bundle::SafeDir;
use crate::state::layout::CONTROL_SOCKET;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Request {
    /// Signal the workload (its first process, or every one with `all`).
    Kill { signal: i32, all: bool },
    /// Run a command in the container; stdin, stdout and stderr come along
    /// (unless `tty`).
    Exec(ExecRequest),
    /// Signal the command this connection started.
    Signal { signal: i32 },
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecRequest {
    pub args: Vec<String>,
    /// `KEY=VALUE` entries added to the container's environment.
    pub env: Vec<String>,
    pub cwd: Option<String>,
    pub user: Option<(u32, u32)>,
    pub tty: bool,
    pub interactive: bool,
    /// With `tty`: the caller's own terminal follows the command's three
    /// stdio descriptors. The supervisor reads its mode on arrival (the
    /// caller makes it raw only once the command has started) and puts it
    /// back if the caller goes away while the command runs.
    #[serde(default)]
    pub caller_terminal: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "camelCase")]
pub enum Reply {
    Ok,
    Error {
        message: String,
    },
    /// The command runs, as this pid inside the container.
    Started {
        pid: i32,
    },
    /// The terminal's master end is attached to this message.
    Terminal,
    Exited {
        status: i32,
    },
}

/// The path that names the control socket of the container directory
/// `dir`, through its descriptor: short whatever the state root's length,
/// and immune to a swapped parent directory.
fn socket_path(dir: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}/{CONTROL_SOCKET}", dir.as_raw_fd()))
}

pub fn listen(dir: &SafeDir) -> std::io::Result<UnixListener> {
    UnixListener::bind(socket_path(dir.fd()))
}

/// One end of a control connection.
pub struct Connection {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Connection {
    pub fn connect(dir: &SafeDir) -> std::io::Result<Connection> {
        Connection::new(UnixStream::connect(socket_path(dir.fd()))?)
    }

    pub fn new(stream: UnixStream) -> std::io::Result<Connection> {
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Connection { stream, reader })
    }

    pub fn send<T: Serialize>(&self, message: &T, fds: &[BorrowedFd<'_>]) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(message).map_err(std::io::Error::other)?;
        line.push(b'\n');
        if fds.is_empty() {
            (&self.stream).write_all(&line)
        } else {
            send_with_fds(&self.stream, &line, fds)
        }
    }

    /// Reads the next message and any descriptors sent with it; `None` at
    /// the end of the connection.
    pub fn receive<T: for<'de> Deserialize<'de>>(&mut self) -> std::io::Result<Option<(T, Vec<OwnedFd>)>> {
        // Descriptors arrive with the first byte of their message, so the
        // first chunk is read with recvmsg, straight from the socket.
        let mut fds = Vec::new();
        if self.reader.buffer().is_empty() {
            let mut first = [0u8; 1];
            let (n, received) = recv_with_fds(self.stream.as_fd(), &mut first)?;
            if n == 0 {
                return Ok(None);
            }
            fds = received;
            let mut line = vec![first[0]];
            if first[0] != b'\n' {
                self.reader.read_until(b'\n', &mut line)?;
            }
            return parse(&line).map(|m| Some((m, fds)));
        }
        let mut line = Vec::new();
        if self.reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        parse(&line).map(|m| Some((m, fds)))
    }

    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }
}

fn parse<T: for<'de> Deserialize<'de>>(line: &[u8]) -> std::io::Result<T> {
    serde_json::from_slice(line).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_cross_with_their_descriptors() {
        let (a, b) = UnixStream::pair().unwrap();
        let (client, mut server) = (Connection::new(a).unwrap(), Connection::new(b).unwrap());
        let (_read, write) = nix::unistd::pipe().unwrap();
        let exec = Request::Exec(ExecRequest { args: vec!["/bin/sh".into()], ..Default::default() });
        client.send(&exec, &[write.as_fd(), write.as_fd()]).unwrap();
        client.send(&Request::Signal { signal: 2 }, &[]).unwrap();
        let (got, fds) = server.receive::<Request>().unwrap().unwrap();
        assert_eq!(got, exec);
        assert_eq!(fds.len(), 2);
        let (got, fds) = server.receive::<Request>().unwrap().unwrap();
        assert_eq!((got, fds.len()), (Request::Signal { signal: 2 }, 0));
        drop(client);
        assert!(server.receive::<Request>().unwrap().is_none());
    }
}
