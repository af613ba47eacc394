//! RunRequest: what the user asked for, already validated by [`crate::policy`].
//! Everything downstream may trust these values.

use std::path::PathBuf;
use std::time::Duration;

use crate::oci::spec::Hooks;

/// The default `PATH` inside the sandbox: fixed, never the host's.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
pub const DEFAULT_HOSTNAME: &str = "nucleus";

#[derive(Clone, Debug, PartialEq)]
pub struct RunRequest {
    /// `None` means host mode.
    pub installable: Option<String>,
    pub command: Vec<String>,
    pub hostname: String,
    /// `KEY=VALUE` entries in order; exactly one of them is `PATH`.
    pub env: Vec<String>,
    pub volumes: Vec<Volume>,
    pub tmpfs: Vec<Tmpfs>,
    pub secrets: Vec<Secret>,
    /// Host directory shown read-only at `/context`.
    pub context: Option<PathBuf>,
    pub user: UserSpec,
    pub workdir: String,
    pub limits: Limits,
    pub seccomp: Option<serde_json::Value>,
    pub hooks: Hooks,
    pub network: Network,
    pub platform: Option<String>,
    pub rootless: bool,
    pub timeout: Option<Duration>,
}

/// A host path shown inside the sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    /// Canonical host path.
    pub source: PathBuf,
    /// Absolute, normalised path inside the sandbox.
    pub destination: String,
    pub writable: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tmpfs {
    pub destination: String,
    pub size_bytes: Option<u64>,
}

/// A host file staged in memory and shown read-only under `/run/secrets`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secret {
    pub source: PathBuf,
    pub destination: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserSpec {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    /// CPUs in thousandths, so that `--cpus 0.5` is exact.
    pub cpu_millis: Option<u64>,
    pub pids: Option<u64>,
}

impl Limits {
    pub fn any(&self) -> bool {
        self.memory_bytes.is_some() || self.cpu_millis.is_some() || self.pids.is_some()
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Network {
    /// Only loopback inside the sandbox.
    #[default]
    None,
    /// gVisor's own network stack (netstack).
    Sandbox,
    /// The host's network namespace.
    Host,
}

impl Network {
    /// The value of runsc's `--network` flag.
    pub fn runsc_flag(self) -> &'static str {
        match self {
            Network::None => "none",
            Network::Sandbox => "sandbox",
            Network::Host => "host",
        }
    }
}

impl RunRequest {
    /// A request that runs `command` with every default; the starting point
    /// for tests and for the CLI.
    pub fn new(installable: Option<String>, command: Vec<String>) -> Self {
        RunRequest {
            installable,
            command,
            hostname: DEFAULT_HOSTNAME.to_string(),
            env: vec![format!("PATH={DEFAULT_PATH}")],
            volumes: Vec::new(),
            tmpfs: Vec::new(),
            secrets: Vec::new(),
            context: None,
            user: UserSpec::default(),
            workdir: "/".to_string(),
            limits: Limits::default(),
            seccomp: None,
            hooks: Hooks::default(),
            network: Network::None,
            platform: None,
            rootless: false,
            timeout: None,
        }
    }
}
