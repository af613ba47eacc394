//! Command-line definitions, and their conversion into a validated
//! [`RunRequest`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::nix::hash::HashFormat;
use crate::policy;
use crate::request::{Network, RunRequest};
use crate::Result;

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
        --timeout; 125 if nucleus itself failed (the reason is on stderr)."
)]
pub struct Cli {
    /// More messages on stderr (-v: info, -vv: debug and runsc debug logs); RUST_LOG also works.
    /// Give it before the subcommand: after it, -v means --volume.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Where container state lives [default: /run/nucleus for root, $XDG_RUNTIME_DIR/nucleus otherwise].
    #[arg(long, global = true, env = "NUCLEUS_STATE_ROOT", value_name = "DIR")]
    pub state_root: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run COMMAND inside gVisor with INSTALLABLE's closure as its world.
    #[command(after_help = "INSTALLABLE is a store path or a path resolving to one (./result), a .nix file \
            (built with nix-build), or anything `nix build` accepts (e.g. .#app). Without it, \
            nucleus runs in host mode: the host's /bin /sbin /usr /lib /lib64 and /nix/store, \
            read-only, and nothing else of the host.\n\n\
            Example: nucleus run ./result -- /bin/hello")]
    Run(RunCmd),
    /// Write the OCI bundle to DIR and print its digest; launch nothing.
    Bundle(BundleCmd),
    /// Recompute a bundle's digest from its config.json and closure record.
    Digest {
        /// A bundle written by `nucleus bundle` or kept by `nucleus run --keep`.
        dir: PathBuf,
    },
    /// Check a bundle against its recorded digest and Nix's narHash of every store path.
    Verify {
        dir: PathBuf,
        /// Also rehash every store path's bytes (slow for big closures).
        #[arg(long)]
        deep: bool,
    },
    /// Print the NAR sha256 of PATH, as `nix hash path` does.
    Hash {
        path: PathBuf,
        #[arg(long, default_value = "sri", value_name = "sri|nix32|base16")]
        format: HashFormat,
    },
    /// Print INSTALLABLE's closure (with --json: path, narHash, narSize, references).
    Closure {
        installable: String,
        #[arg(long)]
        json: bool,
    },
    /// List containers (running ones; --all for stopped ones too).
    Ps {
        #[arg(short, long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Print a container's OCI state as JSON.
    State { name: String },
    /// Send SIGNAL (default TERM) to a container's workload.
    Kill {
        name: String,
        #[arg(default_value = "TERM")]
        signal: String,
        /// runsc to use [default: --runsc, $NUCLEUS_RUNSC, then PATH].
        #[arg(long, value_name = "PATH")]
        runsc: Option<PathBuf>,
    },
    /// Remove a stopped container's state; --force stops a running one first.
    Delete {
        name: String,
        #[arg(short, long)]
        force: bool,
        #[arg(long, value_name = "PATH")]
        runsc: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct RunCmd {
    #[command(flatten)]
    pub spec: SpecArgs,

    /// Container name, [A-Za-z0-9][A-Za-z0-9_.-]{0,127} [default: generated].
    #[arg(long)]
    pub name: Option<String>,
    /// Send TERM after SECONDS, KILL a few seconds later; exit status 124.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<String>,
    /// runsc binary [default: $NUCLEUS_RUNSC, then runsc on PATH].
    #[arg(long, value_name = "PATH")]
    pub runsc: Option<PathBuf>,
    /// Print config.json and the digest; create and launch nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep the container's bundle and logs after it exits (remove with `nucleus delete`).
    #[arg(long)]
    pub keep: bool,

    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct BundleCmd {
    /// Directory to write; must not exist or be empty (never a symlink).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    #[command(flatten)]
    pub spec: SpecArgs,

    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct Target {
    /// Store path, ./result, FILE.nix or flake reference; omit for host mode.
    pub installable: Option<String>,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Options that shape the sandbox, shared by `run` and `bundle`.
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// Host name inside the sandbox [default: nucleus].
    #[arg(long)]
    pub hostname: Option<String>,
    /// Set KEY=VALUE in the workload's environment (repeatable); nothing of the host's leaks in.
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
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
    /// CPU limit, fractions allowed (0.5).
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
    #[arg(long, value_enum, default_value_t = NetworkArg::None)]
    pub network: NetworkArg,
    /// runsc platform (e.g. ptrace, kvm) [default: runsc's own].
    #[arg(long, value_name = "NAME")]
    pub platform: Option<String>,
    /// Run as an unprivileged user (runsc --rootless --network=none).
    #[arg(long)]
    pub rootless: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NetworkArg {
    None,
    Sandbox,
    Host,
}

impl SpecArgs {
    /// Validates every value; nothing is created.
    pub fn into_request(self, target: Target, timeout: Option<&str>) -> Result<RunRequest> {
        let mut req = RunRequest::new(target.installable, target.command);
        if let Some(host) = &self.hostname {
            req.hostname = policy::parse_hostname(host)?;
        }
        let env: Vec<(String, String)> = self.env.iter().map(|e| policy::parse_env(e)).collect::<Result<_>>()?;
        req.env = policy::build_env(&env);
        req.volumes = self.volume.iter().map(|v| policy::parse_volume(v)).collect::<Result<_>>()?;
        req.tmpfs = self.tmpfs.iter().map(|t| policy::parse_tmpfs(t)).collect::<Result<_>>()?;
        req.secrets = self.secret.iter().map(|s| policy::parse_secret(s)).collect::<Result<_>>()?;
        req.context = self.context.as_deref().map(policy::parse_context).transpose()?;
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
        if let Some(profile) = &self.seccomp_profile {
            req.seccomp = Some(policy::load_seccomp_profile(profile, self.seccomp_profile_sha256.as_deref())?);
        }
        if let Some(file) = &self.hooks {
            req.hooks = crate::hooks::load(file)?;
        }
        req.network = match self.network {
            NetworkArg::None => Network::None,
            NetworkArg::Sandbox => Network::Sandbox,
            NetworkArg::Host => Network::Host,
        };
        req.platform = self.platform.as_deref().map(policy::parse_platform).transpose()?;
        req.rootless = self.rootless;
        if req.rootless && req.network != Network::None {
            return Err(crate::Error::invalid("--network", "--rootless supports only --network none"));
        }
        if req.rootless && req.limits.any() {
            return Err(crate::Error::invalid(
                "--rootless",
                "--memory, --cpus and --pids need cgroups, which only root can set up",
            ));
        }
        req.timeout = timeout.map(policy::parse_timeout).transpose()?.map(Duration::from_secs);
        policy::check_request(&req)?;
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_command_follows_a_double_dash() {
        let cli =
            Cli::try_parse_from(["nucleus", "run", "-v", "/a:/b", "./result", "--", "/bin/sh", "-c", "x"]).unwrap();
        let Command::Run(run) = cli.command else { panic!("not run") };
        assert_eq!(run.target.installable.as_deref(), Some("./result"));
        assert_eq!(run.target.command, ["/bin/sh", "-c", "x"]);
        assert_eq!(run.spec.volume, ["/a:/b"]);
        let host = Cli::try_parse_from(["nucleus", "run", "--", "/bin/true"]).unwrap();
        let Command::Run(run) = host.command else { panic!("not run") };
        assert!(run.target.installable.is_none());
        assert!(Cli::try_parse_from(["nucleus", "run", "./result"]).is_err());
    }
}
