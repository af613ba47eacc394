//! Every path of a container's state directory, in one place.
//!
//! ```text
//! STATE_ROOT/NAME/record.json     the container record (status, supervisor, exit status)
//! STATE_ROOT/NAME/bundle/         the OCI bundle (see bundle::layout)
//! STATE_ROOT/NAME/runsc/          runsc --root
//! STATE_ROOT/NAME/runsc.log       runsc's own messages
//! STATE_ROOT/NAME/debug/          runsc's debug logs (-vv)
//! STATE_ROOT/NAME/control.sock    the supervisor's control socket
//! STATE_ROOT/NAME/console.sock    where runsc hands over a terminal (-t)
//! STATE_ROOT/NAME/sandbox.pid     the sandbox's pid, written by runsc
//! ```

use std::path::{Path, PathBuf};

use crate::bundle::BundleLayout;

pub const RECORD_FILE: &str = "record.json";
pub const BUNDLE_DIR: &str = "bundle";
pub const RUNSC_ROOT_DIR: &str = "runsc";
pub const RUNSC_LOG_FILE: &str = "runsc.log";
pub const DEBUG_DIR: &str = "debug";
pub const CONTROL_SOCKET: &str = "control.sock";
pub const CONSOLE_SOCKET: &str = "console.sock";
pub const SANDBOX_PID_FILE: &str = "sandbox.pid";

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ContainerLayout {
    pub name: String,
    pub dir: PathBuf,
    /// The id runsc knows the container by. runsc names its control socket
    /// after it in the abstract namespace, which every user of a network
    /// namespace shares: with the bare name, anyone's container called
    /// `web` would keep root's `web` from starting. So the id is the state
    /// root and the name, hashed; it is also short enough for the socket's
    /// 108 bytes whatever the name.
    pub runsc_id: String,
}

impl ContainerLayout {
    pub fn new(state_root: &Path, name: &str) -> Self {
        ContainerLayout { name: name.to_string(), dir: state_root.join(name), runsc_id: runsc_id(state_root, name) }
    }

    pub fn bundle(&self) -> BundleLayout {
        BundleLayout::new(self.dir.join(BUNDLE_DIR))
    }

    pub fn runsc_root(&self) -> PathBuf {
        self.dir.join(RUNSC_ROOT_DIR)
    }

    pub fn runsc_log(&self) -> PathBuf {
        self.dir.join(RUNSC_LOG_FILE)
    }

    pub fn debug_dir(&self) -> PathBuf {
        self.dir.join(DEBUG_DIR)
    }

    pub fn control_socket(&self) -> PathBuf {
        self.dir.join(CONTROL_SOCKET)
    }

    pub fn console_socket(&self) -> PathBuf {
        self.dir.join(CONSOLE_SOCKET)
    }

    pub fn sandbox_pid_file(&self) -> PathBuf {
        self.dir.join(SANDBOX_PID_FILE)
    }
}

/// `nucleus-` and 24 hex digits of sha256(state root, NUL, name).
fn runsc_id(state_root: &Path, name: &str) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(state_root.as_os_str().as_encoded_bytes());
    hasher.update([0]);
    hasher.update(name.as_bytes());
    format!("nucleus-{}", &crate::policy::hex(&hasher.finalize())[..24])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runsc_ids_differ_between_state_roots_and_names() {
        let a = ContainerLayout::new(Path::new("/run/nucleus"), "web");
        let b = ContainerLayout::new(Path::new("/run/user/1000/nucleus"), "web");
        let c = ContainerLayout::new(Path::new("/run/nucleus"), "web2");
        assert_ne!(a.runsc_id, b.runsc_id);
        assert_ne!(a.runsc_id, c.runsc_id);
        assert_eq!(a.runsc_id, ContainerLayout::new(Path::new("/run/nucleus"), "web").runsc_id);
        assert_eq!(a.runsc_id.len(), "nucleus-".len() + 24);
    }
}
