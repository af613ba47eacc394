//! systemd's readiness protocol: `READY=1` once the workload runs (or once
//! its `--ready-tcp` port accepts), `STOPPING=1` when it is being stopped.
//! Sent by the `nucleus run` process itself, the unit's main process, so a
//! `Type=notify` unit needs no `NotifyAccess=all`.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The socket named by `NOTIFY_SOCKET`, if any, read once at start-up.
pub struct Notifier {
    address: Option<SocketAddr>,
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
        Notifier { address }
    }

    /// Sends `state` (e.g. `READY=1`); failing to is not worth failing the run.
    pub fn send(&self, state: &str) {
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
        let notifier = Notifier { address: Some(SocketAddr::from_pathname(&path).unwrap()) };
        notifier.send("READY=1");
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        Notifier { address: None }.send("READY=1");
    }
}
