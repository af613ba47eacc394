//! Command-line definitions, and their conversion into a validated
//! [`RunRequest`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::host;
use crate::nix::hash::HashFormat;
use crate::policy::{self, EnvArg};
use crate::request::{NixArg, RunRequest, TerminalMode};
use crate::{Error, Result};

#[derive(Debug, Parser)]
#[command(
    name = "nucleus",
    version,
    about = "Run Nix-built programs in a gVisor sandbox that sees only their closure",
    long_about = "Run Nix-built programs in a gVisor sandbox that sees only their closure.\n\n\
        nucleus asks Nix for the closure of an installable, builds a read-only root filesystem \
        in which /nix/store holds only that closure, writes a hardened OCI bundle with a \
        reproducible digest, and runs it with runsc (gVisor).\n\n\
        Exit status of `run`: the workload's own; 128+N if it died of signal N; 124 after \
        --timeout; 125 if nucleus itself failed (the reason is on stderr).",
    after_help = "Examples:\n  nucleus run ./result -- /bin/hello\n  nucleus run -it ./result -- /bin/sh\n  \
        nucleus run --name web -p 8080:80 ./result -- /bin/httpd -f -p 80\n  nucleus exec -it web -- /bin/sh"
)]
pub struct Cli {
    /// Say what nucleus is doing (-vv: debug, and runsc's debug logs). Only before the
    /// subcommand: after it, -v means --volume; --verbose works anywhere.
    #[arg(short = 'v', action = clap::ArgAction::Count)]
    pub verbose_short: u8,

    /// Say what nucleus is doing on stderr (twice: debug, and for run, runsc's debug logs).
    #[arg(long = "verbose", global = true, display_order = 900, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// No warnings: print only the result (for run and exec, the workload's output) and errors.
    #[arg(short, long, global = true, display_order = 901, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Where container state lives [default: /run/nucleus for root, $XDG_RUNTIME_DIR/nucleus otherwise].
    #[arg(long, global = true, display_order = 902, env = "NUCLEUS_STATE_ROOT", value_name = "DIR")]
    pub state_root: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// 0 quiet, 1 normal (warnings), 2 informative, 3 debug.
    pub fn verbosity(&self) -> u8 {
        if self.quiet {
            0
        } else {
            1 + self.verbose_short.saturating_add(self.verbose)
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run COMMAND inside gVisor with INSTALLABLE's closure as its world.
    #[command(after_help = RUN_AFTER_HELP)]
    Run(RunArgs),
    /// Write the OCI bundle to DIR and print its digest; launch nothing.
    Bundle(BundleArgs),
    /// Recompute a bundle's digest from its config.json and its record.
    Digest {
        /// A bundle written by `nucleus bundle` or kept by `nucleus run --keep`.
        dir: PathBuf,
    },
    /// Check a bundle against its recorded digest, its root filesystem and Nix's narHashes; or an
    /// image (layout directory or .tar) against its blob digests and recorded narHashes.
    Verify {
        /// A bundle directory, an image layout directory, or an image .tar.
        dir: PathBuf,
        /// Also rehash every store path's contents (in parallel).
        #[arg(long)]
        deep: bool,
    },
    /// Print the NAR sha256 of PATH, as `nix hash path` does.
    Hash {
        /// Any file, directory or symlink (a symlink is hashed as the link itself).
        path: PathBuf,
        /// How to print the hash: SRI (sha256-…), Nix's base32, or hex.
        #[arg(long, default_value = "sri", value_name = "sri|nix32|base16")]
        format: HashFormat,
    },
    /// Print INSTALLABLE's closure (with --json: path, narHash, narSize, references).
    Closure {
        /// Store path, ./result, FILE.nix or flake reference.
        installable: String,
        /// One JSON array of {path, narHash, narSize, references}.
        #[arg(long)]
        json: bool,
    },
    /// List containers: name, status, pid, exit status, installable, command.
    Ps {
        /// Include stopped containers.
        #[arg(short, long)]
        all: bool,
        /// One JSON array of the containers' records.
        #[arg(long)]
        json: bool,
    },
    /// Print a container's OCI state as JSON.
    State {
        /// The container's name.
        name: String,
    },
    /// Send SIGNAL (default TERM) to a container's workload.
    Kill {
        /// The container's name.
        name: String,
        /// A signal name (TERM, SIGKILL, …) or number.
        #[arg(default_value = "TERM")]
        signal: String,
        /// Signal every process of the container, not only its first.
        #[arg(short, long)]
        all: bool,
    },
    /// Remove a stopped container; --force stops a running one first.
    Delete {
        /// The container's name.
        name: String,
        /// Stop the container first if it is running (KILL).
        #[arg(short, long)]
        force: bool,
    },
    /// Run COMMAND in a running container, with its mounts and namespaces.
    Exec(ExecArgs),
    /// Remove what runs keep for the next one: the store views of large
    /// closures (mounts that keep their store paths' files alive, even
    /// after Nix's garbage collector deleted them) and the closure cache;
    /// and containers no process of theirs will clean up, left when a run
    /// and its supervisor were both killed outright. Kept containers
    /// (--keep) and live ones are left alone.
    Gc,
    /// Write INSTALLABLE's closure as an OCI image (a layout directory, or an oci-archive when PATH
    /// ends in .tar) and print its digest.
    #[command(after_help = IMAGE_AFTER_HELP)]
    Image(ImageArgs),
    /// Print a Kubernetes manifest that runs INSTALLABLE's image in gVisor, hardened as `run` is.
    #[command(after_help = KUBE_AFTER_HELP)]
    Kube(KubeArgs),
    /// Check arguments as `run` would, without touching the host: no file is read, no
    /// installable resolved. Exit 0 when acceptable, else 125 with the reason.
    #[command(name = "check-args")]
    CheckArgs {
        #[command(subcommand)]
        target: CheckTarget,
    },
}

const RUN_AFTER_HELP: &str = "INSTALLABLE is a store path or a path resolving to one (./result), a .nix \
    file (built with nix-build; -A, --arg and --argstr apply), or anything `nix build` accepts \
    (.#app, path:/dir#pkg). Without it, nucleus runs in host mode: the host's /bin /sbin /usr /lib \
    /lib64 and /nix/store, read-only, and nothing else of the host. Without `-- COMMAND`, the \
    installable's main program runs, as `nix run` picks it.\n\n\
    Examples:\n  nucleus run ./result -- /bin/hello\n  nucleus run ./result\n  \
    nucleus run -v ./data:/data:rw --timeout 600 ./tests -- /bin/run-tests\n  \
    nucleus run --name web -p 8080:80 ./result -- /bin/httpd -f -p 80";

const IMAGE_AFTER_HELP: &str = "The image holds the closure's store paths as layers (the most referenced \
    paths one per layer, the rest together, at most --max-layers), links for /bin, /etc, … into the \
    top-level path, and /tmp. Its config holds the command, -e, -u, -w and -p; mounts and limits are \
    the runtime's (see `nucleus kube`). The same closure and options give the same digest anywhere.\n\n\
    Examples:\n  nucleus image --out hello.tar ./result -- /bin/hello\n  \
    podman load -i hello.tar && podman --runtime runsc --runtime-flag network=none run --rm --network none \
    localhost/hello:TAG";

const KUBE_AFTER_HELP: &str = "Give the options `nucleus image` was given: the default --image is the name \
    and tag that image gets (localhost/NAME:TAG, TAG from its digest). The manifest holds the RuntimeClass \
    (gvisor, handler runsc), the workload, and for --network none a NetworkPolicy denying all traffic.\n\n\
    Examples:\n  nucleus kube --kind job --timeout 600 ./tests -- /bin/run-tests | kubectl apply -f -\n  \
    nucleus kube --kind deployment --image registry.example/web:1 -p 8080:80 ./web -- /bin/httpd -f";

#[derive(Debug, Subcommand)]
pub enum CheckTarget {
    /// The arguments of `nucleus run`.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub sandbox: SandboxArgs,

    /// Container name, [A-Za-z0-9][A-Za-z0-9_.-]{0,127} [default: generated].
    #[arg(long)]
    pub name: Option<String>,
    /// Give the workload a pseudo-terminal (podman's -t).
    #[arg(short, long)]
    pub tty: bool,
    /// Attach nucleus's stdin to the workload (podman's -i); without it, stdin is empty.
    #[arg(short, long)]
    pub interactive: bool,
    /// Send TERM after SECONDS (Nix's part of the run included), KILL 5 s later; exit status 124.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<String>,
    /// Give up if the sandbox has not started after SECONDS [default: 30].
    #[arg(long, value_name = "SECONDS")]
    pub boot_timeout: Option<String>,
    /// With NOTIFY_SOCKET, send READY=1 only once PORT inside accepts connections.
    #[arg(long, value_name = "PORT")]
    pub ready_tcp: Option<String>,
    /// runsc binary [default: $NUCLEUS_RUNSC, then runsc on PATH].
    #[arg(long, value_name = "PATH", env = "NUCLEUS_RUNSC")]
    pub runsc: Option<PathBuf>,
    /// Print one JSON document (the digest, config.json and how it would be launched); launch nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep the container's bundle and logs after it exits (remove with `nucleus delete`).
    #[arg(long)]
    pub keep: bool,
    /// Replace a kept, stopped container of the same name.
    #[arg(long)]
    pub replace: bool,

    #[command(flatten)]
    pub workload: WorkloadArgs,
}

#[derive(Debug, Args)]
pub struct BundleArgs {
    /// Directory to write; must not exist or be empty (never a symlink).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    #[command(flatten)]
    pub sandbox: SandboxArgs,

    #[command(flatten)]
    pub workload: WorkloadArgs,
}

#[derive(Debug, Args)]
pub struct ImageArgs {
    /// Where to write the image: a new or empty directory (OCI layout), or a new FILE.tar (oci-archive).
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    /// The name in the image's index (what `podman load` calls it) [default: localhost/NAME:TAG].
    #[arg(long, value_name = "REF")]
    pub tag: Option<String>,

    #[command(flatten)]
    pub layers: LayerArgs,

    #[command(flatten)]
    pub sandbox: SandboxArgs,

    #[command(flatten)]
    pub workload: WorkloadArgs,
}

#[derive(Debug, Args)]
pub struct LayerArgs {
    /// The most layers the image has, its root layer included (2 to 125).
    #[arg(long, value_name = "N", default_value_t = crate::image::layers::DEFAULT_MAX_LAYERS as u16,
          value_parser = clap::value_parser!(u16).range(2..=125))]
    pub max_layers: u16,
}

#[derive(Debug, Args)]
pub struct KubeArgs {
    /// The object that runs the pod.
    #[arg(long, value_enum, default_value = "pod")]
    pub kind: crate::kube::WorkloadKind,
    /// The image's reference [default: the name `nucleus image` gives it, localhost/NAME:TAG].
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// The objects' name [default: from the installable's package name].
    #[arg(long)]
    pub name: Option<String>,
    /// Deadline in seconds: a Job's or a Pod's activeDeadlineSeconds.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<String>,
    /// Run a Job as N indexed shards (JOB_COMPLETION_INDEX tells each which it is).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub shards: Option<u32>,
    /// How -v volumes reach the pod: PersistentVolumeClaims to create, or the node's own paths.
    #[arg(long, value_enum, default_value = "claim")]
    pub volumes_as: crate::kube::VolumeSource,
    /// Write the Localhost seccomp profile the pod names to FILE (a new file), to install on the nodes.
    #[arg(long, value_name = "FILE")]
    pub seccomp_out: Option<PathBuf>,

    #[command(flatten)]
    pub layers: LayerArgs,

    #[command(flatten)]
    pub sandbox: SandboxArgs,

    #[command(flatten)]
    pub workload: WorkloadArgs,
}

#[derive(Debug, Args)]
pub struct WorkloadArgs {
    /// Store path, ./result, FILE.nix or flake reference; omit for host mode.
    pub installable: Option<String>,
    /// The program and its arguments, after `--` [default: the installable's main program].
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Give the command a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Attach nucleus's stdin to the command.
    #[arg(short, long)]
    pub interactive: bool,
    /// Set KEY=VALUE (or KEY, the caller's value) for the command (repeatable).
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Numeric user and group for the command [default: the container's].
    #[arg(short, long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Working directory for the command [default: the container's].
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// The running container's name.
    pub name: String,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Options that shape the sandbox, shared by `run`, `bundle` and `check-args`.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Host name inside the sandbox [default: nucleus].
    #[arg(long)]
    pub hostname: Option<String>,
    /// Set KEY=VALUE in the workload's environment, or KEY to pass the caller's value (repeatable).
    #[arg(short, long, value_name = "KEY[=VALUE]")]
    pub env: Vec<String>,
    /// Read KEY=VALUE lines from FILE (podman's format; # comments); -e wins over it (repeatable).
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Show host SRC at DST, read-only unless :rw (repeatable); always nosuid,nodev.
    #[arg(short, long, value_name = "SRC:DST[:ro|rw]")]
    pub volume: Vec<String>,
    /// A fresh tmpfs at DST, optionally SIZE bytes (K/M/G) (repeatable).
    #[arg(long, value_name = "DST[:SIZE]")]
    pub tmpfs: Vec<String>,
    /// Host file SRC staged in memory, read-only at DST under /run/secrets (repeatable; `run` only).
    #[arg(long, value_name = "SRC:DST")]
    pub secret: Vec<String>,
    /// Host directory shown read-only at /context.
    #[arg(long, value_name = "DIR")]
    pub context: Option<String>,
    /// Numeric user and group inside the sandbox [default: 0:0].
    #[arg(short, long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Extra numeric group (repeatable).
    #[arg(long, value_name = "GID")]
    pub group_add: Vec<String>,
    /// Working directory inside the sandbox [default: /].
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Memory limit (K/M/G, binary units).
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// CPU limit, fractions allowed (0.5; at least 0.01).
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,
    /// Process limit (at least 50: gVisor's own threads count).
    #[arg(long, value_name = "N")]
    pub pids: Option<String>,
    /// OCI seccomp profile (JSON) applied inside the sandbox.
    #[arg(long, value_name = "FILE")]
    pub seccomp_profile: Option<PathBuf>,
    /// Refuse the profile unless its sha256 is HEX.
    #[arg(long, value_name = "HEX", requires = "seccomp_profile")]
    pub seccomp_profile_sha256: Option<String>,
    /// OCI hooks object (JSON). Hooks must be executables in valid /nix/store paths; they run
    /// ON THE HOST with nucleus's privileges. Supported: prestart, createRuntime, poststart, poststop.
    #[arg(long, value_name = "FILE")]
    pub hooks: Option<PathBuf>,
    /// Network: none (loopback only), sandbox (gVisor's own stack) or host (the host's; unsafe).
    #[arg(long, value_enum)]
    pub network: Option<NetworkArg>,
    /// Publish PORT inside at HOSTIP:HOSTPORT on the host (HOSTIP defaults to 127.0.0.1;
    /// repeatable; implies --network sandbox).
    #[arg(short, long, value_name = "[HOSTIP:]HOSTPORT:PORT[/tcp]")]
    pub publish: Vec<String>,
    /// runsc platform (e.g. ptrace, kvm) [default: runsc's own].
    #[arg(long, value_name = "NAME")]
    pub platform: Option<String>,
    /// Run as an unprivileged user (in a user namespace of nucleus's own).
    #[arg(long)]
    pub rootless: bool,
    /// For a .nix INSTALLABLE: the attribute to build (as nix-build -A).
    #[arg(short = 'A', long = "attr", value_name = "ATTR")]
    pub attr: Option<String>,
    /// For a .nix INSTALLABLE: pass NAME = EXPR to its function (as nix-build --arg).
    #[arg(long, num_args = 2, value_names = ["NAME", "EXPR"], action = clap::ArgAction::Append)]
    pub arg: Vec<String>,
    /// For a .nix INSTALLABLE: pass NAME = "VALUE" to its function (as nix-build --argstr).
    #[arg(long, num_args = 2, value_names = ["NAME", "VALUE"], action = clap::ArgAction::Append)]
    pub argstr: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NetworkArg {
    None,
    Sandbox,
    Host,
}

/// How much of the host converting arguments may look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostAccess {
    /// `run`, `bundle`: read the files named (profiles, hooks, environment
    /// files) and the caller's environment.
    Full,
    /// `check-args`: text only, so that it gives the same answer in a Nix
    /// build sandbox as on the machine that will run the container.
    Offline,
}

impl RunArgs {
    pub fn request(&self, access: HostAccess) -> Result<RunRequest> {
        let mut req = self.sandbox.request(&self.workload, access)?;
        req.terminal = TerminalMode { tty: self.tty, interactive: self.interactive };
        if let Some(t) = &self.timeout {
            req.timeout = Some(Duration::from_secs(policy::parse_seconds("--timeout", t)?));
        }
        if let Some(t) = &self.boot_timeout {
            req.boot_timeout = Duration::from_secs(policy::parse_seconds("--boot-timeout", t)?);
        }
        if let Some(port) = &self.ready_tcp {
            req.ready_tcp = Some(policy::parse_port("--ready-tcp", port)?);
            if req.network != crate::request::Network::Sandbox {
                return Err(Error::invalid("--ready-tcp", "needs --network sandbox (or -p), to reach the port"));
            }
        }
        if let Some(name) = &self.name {
            policy::parse_name(name)?;
        }
        Ok(req)
    }
}

impl SandboxArgs {
    /// Validates every value. With [`HostAccess::Full`] the files named are
    /// read and checked too; nothing is created either way.
    pub fn request(&self, workload: &WorkloadArgs, access: HostAccess) -> Result<RunRequest> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let command = if workload.command.is_empty() { None } else { Some(workload.command.clone()) };
        let mut req = RunRequest::new(workload.installable.as_deref(), command);
        if let Some(installable) = &mut req.installable {
            installable.attr = self.attr.clone();
            installable.nix_args = self.nix_args()?;
        } else if self.attr.is_some() || !self.arg.is_empty() || !self.argstr.is_empty() {
            return Err(Error::invalid("-A/--arg/--argstr", "apply to a .nix INSTALLABLE, and none was given"));
        }
        if let Some(host) = &self.hostname {
            req.hostname = policy::parse_hostname(host)?;
        }
        req.env = self.environment(access)?;
        req.volumes = self.volume.iter().map(|v| policy::parse_volume(v, &cwd)).collect::<Result<_>>()?;
        req.tmpfs = self.tmpfs.iter().map(|t| policy::parse_tmpfs(t)).collect::<Result<_>>()?;
        req.secrets = self.secret.iter().map(|s| policy::parse_secret(s, &cwd)).collect::<Result<_>>()?;
        req.context = self.context.as_deref().map(|c| policy::parse_context(c, &cwd)).transpose()?;
        if let Some(user) = &self.user {
            req.user = policy::parse_user(user)?;
        }
        req.user.additional_gids = self.group_add.iter().map(|g| policy::parse_gid(g)).collect::<Result<_>>()?;
        if let Some(dir) = &self.workdir {
            req.workdir = policy::parse_workdir(dir)?;
        }
        req.limits.memory_bytes = self.memory.as_deref().map(|m| policy::parse_size("--memory", m)).transpose()?;
        req.limits.cpu_millis = self.cpus.as_deref().map(policy::parse_cpus).transpose()?;
        req.limits.pids = self.pids.as_deref().map(policy::parse_pids).transpose()?;
        if let Some(pin) = &self.seccomp_profile_sha256 {
            if pin.len() != 64 || !pin.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::invalid("--seccomp-profile-sha256", format!("'{pin}' is not 64 hex digits")));
            }
        }
        if access == HostAccess::Full {
            if let Some(file) = &self.seccomp_profile {
                let bytes = host::read_input_file("--seccomp-profile", file)?;
                if let Some(pin) = &self.seccomp_profile_sha256 {
                    policy::seccomp::check_pin(&bytes, pin, file)?;
                }
                req.seccomp = Some(policy::seccomp::parse_profile(&bytes, file)?);
            }
            if let Some(file) = &self.hooks {
                let specs = policy::hooks::parse(&host::read_input_file("--hooks", file)?, file)?;
                req.hooks = Some(host::hooks::verify(&specs)?);
            }
        }
        req.publish = self.publish.iter().map(|p| policy::parse_publish(p)).collect::<Result<_>>()?;
        req.network = match (self.network, req.publish.is_empty()) {
            (None, true) | (Some(NetworkArg::None), true) => crate::request::Network::None,
            (None, false) | (Some(NetworkArg::Sandbox), _) => crate::request::Network::Sandbox,
            (Some(NetworkArg::Host), true) => crate::request::Network::Host,
            (Some(other), false) => {
                let name = format!("{other:?}").to_lowercase();
                return Err(Error::invalid("--publish", format!("needs --network sandbox, not --network {name}")));
            }
        };
        req.platform = self.platform.as_deref().map(policy::parse_platform).transpose()?;
        req.rootless = self.rootless;
        check_combinations(&req)?;
        Ok(req)
    }

    fn nix_args(&self) -> Result<Vec<NixArg>> {
        let mut args = Vec::new();
        for pair in self.arg.chunks(2) {
            if let [name, expr] = pair {
                args.push(NixArg::Expr { name: policy::parse_nix_identifier("--arg", name)?, expr: expr.clone() });
            }
        }
        for pair in self.argstr.chunks(2) {
            if let [name, value] = pair {
                args.push(NixArg::Str { name: policy::parse_nix_identifier("--argstr", name)?, value: value.clone() });
            }
        }
        Ok(args)
    }

    /// Environment files first, then `-e` entries, each later one winning.
    fn environment(&self, access: HostAccess) -> Result<Vec<String>> {
        let mut entries: Vec<EnvArg> = Vec::new();
        for file in &self.env_file {
            if access == HostAccess::Full {
                let bytes = host::read_input_file("--env-file", file)?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| Error::invalid("--env-file", format!("{} is not UTF-8", file.display())))?;
                entries.extend(policy::parse_env_file(&text, file)?);
            } else if !file.is_absolute() && file.as_os_str().is_empty() {
                return Err(Error::invalid("--env-file", "the path is empty"));
            }
        }
        for e in &self.env {
            entries.push(policy::parse_env(e)?);
        }
        let mut pairs = Vec::with_capacity(entries.len());
        for entry in entries {
            match entry {
                EnvArg::Set(key, value) => pairs.push((key, value)),
                EnvArg::Inherit(key) if access == HostAccess::Full => {
                    let value = std::env::var(&key).map_err(|_| {
                        Error::invalid("--env", format!("'{key}' is not set in nucleus's own environment"))
                    })?;
                    pairs.push((key, value));
                }
                EnvArg::Inherit(key) => pairs.push((key, String::new())),
            }
        }
        Ok(policy::build_env(&pairs))
    }
}

/// Rules between options.
fn check_combinations(req: &RunRequest) -> Result<()> {
    if let Some(command) = &req.command {
        match command.first() {
            Some(program) if !program.is_empty() => {}
            _ => return Err(Error::invalid("COMMAND", "the program to run after `--` is empty")),
        }
        if command.iter().any(|a| a.contains('\0')) {
            return Err(Error::invalid("COMMAND", "an argument contains a NUL byte"));
        }
    } else if req.installable.is_none() {
        return Err(Error::invalid("COMMAND", "give the program to run after `--` (host mode has no main program)"));
    }
    if req.rootless {
        if req.network != crate::request::Network::None {
            return Err(Error::invalid("--rootless", "supports only --network none (runsc's rule)"));
        }
        if req.limits.any() {
            return Err(Error::invalid(
                "--rootless",
                "--memory, --cpus and --pids need cgroups, which only root can set up",
            ));
        }
    }
    policy::mounts::check(&req.volumes, &req.tmpfs, &req.secrets, req.context.as_deref())
}

/// The one-line `Path` form used in several messages.
pub fn display_path(path: &Path) -> String {
    crate::error::printable(&path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> std::result::Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("nucleus").chain(args.iter().copied()))
    }

    fn run_request(args: &[&str], access: HostAccess) -> Result<RunRequest> {
        let Command::Run(run) = parse(args).expect("parses").command else { panic!("not run") };
        run.request(access)
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_command_follows_a_double_dash_and_is_optional() {
        let cli = parse(&["run", "-v", "/a:/b", "./result", "--", "/bin/sh", "-c", "x"]).unwrap();
        let Command::Run(run) = cli.command else { panic!("not run") };
        assert_eq!(run.workload.installable.as_deref(), Some("./result"));
        assert_eq!(run.workload.command, ["/bin/sh", "-c", "x"]);
        assert_eq!(run.sandbox.volume, ["/a:/b"]);
        let Command::Run(run) = parse(&["run", "./result"]).unwrap().command else { panic!() };
        assert!(run.workload.command.is_empty());
        assert!(matches!(run_request(&["run", "--", ""], HostAccess::Offline), Err(Error::InvalidArgument { .. })));
        assert!(run_request(&["run"], HostAccess::Offline).is_err());
    }

    #[test]
    fn global_options_work_after_the_subcommand() {
        let cli = parse(&["run", "--verbose", "--state-root", "/s", "-q", "x", "--", "y"]);
        assert!(cli.is_err(), "--quiet and --verbose conflict");
        let cli = parse(&["run", "--verbose", "--state-root", "/s", "x", "--", "y"]).unwrap();
        assert_eq!(cli.verbosity(), 2);
        assert_eq!(cli.state_root.as_deref(), Some(Path::new("/s")));
        assert_eq!(parse(&["-vv", "ps"]).unwrap().verbosity(), 3);
        assert_eq!(parse(&["ps", "-q"]).unwrap().verbosity(), 0);
        let Command::Run(run) = parse(&["run", "-v", "/a:/b", "x", "--", "y"]).unwrap().command else { panic!() };
        assert_eq!(run.sandbox.volume, ["/a:/b"], "-v after run is --volume");
    }

    #[test]
    fn offline_checks_need_no_host() {
        let req = run_request(
            &[
                "run",
                "-e",
                "HOME",
                "--env-file",
                "/nonexistent",
                "--seccomp-profile",
                "/nonexistent",
                "-p",
                "8080:80",
                "x",
            ],
            HostAccess::Offline,
        )
        .unwrap();
        assert_eq!(req.network, crate::request::Network::Sandbox);
        assert_eq!(req.publish.len(), 1);
        for bad in [
            &["run", "--name", "a b", "x"][..],
            &["run", "--cpus", "0.001", "x"],
            &["run", "--timeout", "4294967296", "x"],
            &["run", "-p", "80:80", "--network", "host", "x"],
            &["run", "--ready-tcp", "80", "x"],
            &["run", "-v", "/srv/a:/data", "-v", "/srv/b:/data/sub", "x"],
            &["run", "-A", "hello", "--", "/bin/true"],
            &["run", "--rootless", "--memory", "1G", "x"],
            &["run", "--seccomp-profile", "/p", "--seccomp-profile-sha256", "00", "x"],
        ] {
            assert!(run_request(bad, HostAccess::Offline).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn nix_arguments_and_the_environment_keep_their_order() {
        let req = run_request(
            &["run", "-A", "pkg", "--arg", "n", "1", "--argstr", "s", "two", "-e", "A=1", "-e", "A=2", "f.nix"],
            HostAccess::Offline,
        )
        .unwrap();
        let installable = req.installable.unwrap();
        assert_eq!(installable.attr.as_deref(), Some("pkg"));
        assert_eq!(
            installable.nix_args,
            [
                NixArg::Expr { name: "n".into(), expr: "1".into() },
                NixArg::Str { name: "s".into(), value: "two".into() }
            ]
        );
        assert_eq!(req.env.last().map(String::as_str), Some("A=2"));
        assert!(req.env.iter().filter(|e| e.starts_with("A=")).count() == 1);
    }

    #[test]
    fn env_files_come_before_env_options() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("env");
        std::fs::write(&file, "# settings\nA=from-file\nB=file\n").unwrap();
        let req = run_request(&["run", "--env-file", file.to_str().unwrap(), "-e", "A=option", "x"], HostAccess::Full)
            .unwrap();
        assert!(req.env.contains(&"A=option".to_string()) && req.env.contains(&"B=file".to_string()));
        let missing = "NUCLEUS_TEST_SURELY_UNSET_VARIABLE";
        assert!(run_request(&["run", "-e", missing, "x"], HostAccess::Full).is_err());
    }
}
