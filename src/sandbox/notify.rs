//! systemd's readiness protocol: `READY=1` once the workload runs (or once
//! its `--ready-tcp` port accepts), `STOPPING=1` when it is being stopped.
//! Sent by the `nucleus run` process itself, the unit's main process, so a
//! `Type=notify` unit needs no `NotifyAccess=all`.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The socket named by `NOTIFY_SOCKET`, if any, read once at start-up, and
/// what systemd has been told. The supervisor's threads may each report the
/// end (the sandbox ended, the run is over, a signal stops it) and a
/// `--ready-tcp` probe may succeed as the workload ends: systemd hears each
/// state once, and never `READY=1` after `STOPPING=1`.
pub struct Notifier {
    address: Option<SocketAddr>,
    ready: bool,
    stopping: bool,
}

impl Notifier {
    pub fn from_env() -> Notifier {
        let address = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let path = path.to_string_lossy().into_owned();
            match path.strip_prefix('@') {
                Some(name) => SocketAddr::from_abstract_name(name.as_bytes()).ok(),
                None => SocketAddr::from_pathname(&path).ok(),
            }
        });
        Notifier { address, ready: false, stopping: false }
    }

    /// `READY=1`, once, unless the workload is already stopping.
    pub fn ready(&mut self) {
        if !self.ready && !self.stopping {
            self.ready = true;
            self.send("READY=1");
        }
    }

    /// `STOPPING=1`, once.
    pub fn stopping(&mut self) {
        if !self.stopping {
            self.stopping = true;
            self.send("STOPPING=1");
        }
    }

    /// Sends `state` (e.g. `READY=1`); failing to is not worth failing the run.
    fn send(&self, state: &str) {
        let Some(address) = &self.address else { return };
        let sent = UnixDatagram::unbound().and_then(|socket| socket.send_to_addr(state.as_bytes(), address));
        if let Err(e) = sent {
            tracing::warn!("cannot tell systemd {state}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let mut notifier =
            Notifier { address: Some(SocketAddr::from_pathname(&path).unwrap()), ready: false, stopping: false };
        notifier.ready();
        notifier.ready();
        notifier.stopping();
        notifier.ready();
        notifier.stopping();
        listener.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        while let Ok(n) = listener.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert_eq!(got, ["READY=1", "STOPPING=1"]);
        Notifier { address: None, ready: false, stopping: false }.ready();
    }

    #[test]
    fn no_ready_after_stopping() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let mut notifier =
            Notifier { address: Some(SocketAddr::from_pathname(&path).unwrap()), ready: false, stopping: false };
        notifier.stopping();
        notifier.ready();
        listener.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
        assert!(listener.recv(&mut buf).is_err());
    }
}
