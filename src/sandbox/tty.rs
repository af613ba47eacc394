//! `-t`: the workload's pseudo-terminal, relayed to nucleus's own.
//!
//! runsc makes the terminal inside the sandbox and hands its master end over
//! a Unix socket (`--console-socket`). nucleus puts its own terminal in raw
//! mode, so Ctrl-C, Ctrl-Z and Ctrl-\ travel as bytes to the terminal
//! inside, whose line discipline turns them into signals for the workload's
//! foreground process group, and copies bytes both ways. The window size is
//! copied at the start and on every SIGWINCH. The host terminal's mode is
//! restored by [`RawMode`]'s drop, on every way out; when `nucleus run` or
//! `nucleus exec` is killed, the container's supervisor restores it
//! ([`restore`], [`set_mode_from_anywhere`]).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::thread::JoinHandle;

use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

use super::fdpass::recv_with_fds;
use crate::{Error, Result};

/// Whether nucleus's stdin is a terminal.
pub fn stdin_is_terminal() -> bool {
    nix::unistd::isatty(std::io::stdin()).unwrap_or(false)
}

/// nucleus's terminal in raw mode until dropped.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    pub fn enter() -> Result<RawMode> {
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).map_err(|e| Error::setup("read the terminal's settings", e))?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSADRAIN, &raw).map_err(|e| Error::setup("put the terminal in raw mode", e))?;
        Ok(RawMode { saved })
    }
}

impl RawMode {
    /// The mode to go back to.
    pub fn saved(&self) -> Termios {
        self.saved.clone()
    }
}

impl Drop for RawMode {
    /// As any program that changed its terminal: from a background job,
    /// the change waits (SIGTTOU stops nucleus) until it is in the
    /// foreground again.
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin(), SetArg::TCSADRAIN, &self.saved);
    }
}

/// Puts the terminal of a `nucleus run` that is gone back in `mode`, from
/// its supervisor.
pub fn restore(mode: &Termios) {
    set_mode_from_anywhere(std::io::stdin(), SetArg::TCSADRAIN, mode);
}

/// Sets `terminal`'s mode from a process that may be in a background
/// process group of it (a supervisor of a `nucleus run` that is a shell's
/// background job). There the kernel answers `tcsetattr` with SIGTTOU for
/// the whole group and restarts the call; the supervisor, the init of its
/// pid namespace, discards that signal, so the call would spin forever. With
/// SIGTTOU blocked in this thread, the change is simply made.
pub fn set_mode_from_anywhere(terminal: impl AsFd, how: SetArg, mode: &Termios) {
    let ttou = SigSet::from(Signal::SIGTTOU);
    let mut before = SigSet::empty();
    if pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&ttou), Some(&mut before)).is_err() {
        return;
    }
    // Blocked, SIGTTOU is not sent at all: the mask can be put back as it was.
    let _ = tcsetattr(terminal, how, mode);
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&before), None);
}

/// Accepts runsc's connection on `listener` and takes the terminal's master
/// end from it.
pub fn receive_master(listener: &UnixListener) -> Result<OwnedFd> {
    let (stream, _) = listener.accept().map_err(|e| Error::setup("accept runsc's console connection", e))?;
    let mut buf = [0u8; 4096];
    let (_, mut fds) =
        recv_with_fds(&stream, &mut buf).map_err(|e| Error::setup("receive the terminal from runsc", e))?;
    if fds.is_empty() {
        return Err(Error::runsc("sent no terminal over the console socket"));
    }
    Ok(fds.remove(0))
}

/// A new pseudo-terminal, sized as nucleus's own: its master end, and its
/// replica end for the command.
pub fn open_pair() -> Result<(OwnedFd, OwnedFd)> {
    let size = rustix::termios::tcgetwinsize(std::io::stdin()).ok().map(|s| nix::pty::Winsize {
        ws_row: s.ws_row,
        ws_col: s.ws_col,
        ws_xpixel: s.ws_xpixel,
        ws_ypixel: s.ws_ypixel,
    });
    let pty = nix::pty::openpty(size.as_ref(), None).map_err(|e| Error::setup("open a terminal", e))?;
    Ok((pty.master, pty.slave))
}

/// Copies nucleus's window size to the workload's terminal.
pub fn copy_window_size(master: impl AsFd) {
    if let Ok(size) = rustix::termios::tcgetwinsize(std::io::stdin()) {
        let _ = rustix::termios::tcsetwinsize(master, size);
    }
}

/// Relays the terminal: master → stdout until the terminal closes (the
/// returned thread), and, when `interactive`, stdin → master (a detached
/// thread; it ends with the process).
pub fn relay(master: OwnedFd, interactive: bool) -> Result<JoinHandle<()>> {
    let copy = |e| Error::setup("duplicate the terminal", e);
    if interactive {
        let mut to_master = File::from(master.try_clone().map_err(copy)?);
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 || to_master.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    }
    let mut from_master = File::from(master);
    Ok(std::thread::spawn(move || {
        let mut stdout = std::io::stdout();
        let mut buf = [0u8; 4096];
        // EIO once the last process holding the terminal's other end is gone.
        while let Ok(n) = from_master.read(&mut buf) {
            if n == 0 || stdout.write_all(&buf[..n]).and_then(|()| stdout.flush()).is_err() {
                break;
            }
        }
    }))
}
