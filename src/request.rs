//! RunRequest: what the user asked for, every value already checked by
//! [`crate::policy`]. Host paths in it are absolute and normalised but not
//! yet opened; [`crate::host`] opens them once, without following symlinks,
//! and the launch plan refers to what was opened.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use oci_spec::runtime::{Hooks, LinuxSeccomp};

/// The default `PATH` inside the sandbox: fixed, never the host's.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
pub const DEFAULT_HOSTNAME: &str = "nucleus";

/// How long runsc may take to bring the sandbox up, unless told otherwise.
pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, PartialEq)]
pub struct RunRequest {
    /// `None` means host mode.
    pub installable: Option<InstallableRequest>,
    /// `None` means the installable's main program, as `nix run` picks it.
    pub command: Option<Vec<String>>,
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
    /// The user's seccomp profile, checked; the setuid guard is added by the
    /// plan when a volume is writable.
    pub seccomp: Option<LinuxSeccomp>,
    /// Hooks with verified store paths.
    pub hooks: Option<Hooks>,
    pub network: Network,
    pub publish: Vec<PortMapping>,
    /// Send READY=1 only once this port inside accepts connections.
    pub ready_tcp: Option<u16>,
    pub platform: Option<String>,
    pub rootless: bool,
    pub timeout: Option<Duration>,
    pub boot_timeout: Duration,
    pub terminal: TerminalMode,
}

/// The installable and, for a `.nix` file, what to hand `nix-build`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstallableRequest {
    pub text: String,
    pub attr: Option<String>,
    /// `--arg NAME EXPR` and `--argstr NAME VALUE`, in order.
    pub nix_args: Vec<NixArg>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NixArg {
    Expr { name: String, expr: String },
    Str { name: String, value: String },
}

/// A host path shown inside the sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    /// Absolute, lexically normalised host path.
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

/// `-p HOSTIP:HOSTPORT:PORT`: connections to the host address reach PORT
/// inside the sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub port: u16,
}

/// `-t` and `-i`, with podman's meaning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TerminalMode {
    /// The workload gets a pseudo-terminal.
    pub tty: bool,
    /// The workload's stdin is nucleus's; without it, stdin is empty.
    pub interactive: bool,
}

impl RunRequest {
    /// A request that runs `command` with every default; the starting point
    /// for the CLI and for tests.
    pub fn new(installable: Option<&str>, command: Option<Vec<String>>) -> Self {
        RunRequest {
            installable: installable.map(|text| InstallableRequest { text: text.to_string(), ..Default::default() }),
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
            hooks: None,
            network: Network::None,
            publish: Vec::new(),
            ready_tcp: None,
            platform: None,
            rootless: false,
            timeout: None,
            boot_timeout: DEFAULT_BOOT_TIMEOUT,
            terminal: TerminalMode::default(),
        }
    }

    /// Whether any volume can be written from inside.
    pub fn has_writable_volume(&self) -> bool {
        self.volumes.iter().any(|v| v.writable)
    }
}
