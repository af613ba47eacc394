//! Bundle → Sandbox → exit status: the only stage that touches runsc.

pub mod lifecycle;
pub mod namespace;
pub mod runsc;
pub mod state;
pub mod supervise;

use std::path::PathBuf;

use crate::bundle::{Bundle, Target};
use crate::nix::Closure;
use crate::oci::build::{secret_staging_path, SECRETS_STAGING_DIR, STORE_VIEW_DIR};
use crate::oci::{build_spec, Launcher, StoreLayout};
use crate::request::{Network, RunRequest};
use crate::rootfs::RootfsPlan;
use crate::{Error, Result};

pub use runsc::{Globals, Runsc};
pub use state::{ContainerDir, StateRoot, Status};

/// runsc fails to boot with more bind mounts than this (`FD 256 is already
/// in use`); a few are left for the system and user mounts.
pub const MAX_RUNSC_BINDS: usize = 236;

/// How to launch, as opposed to what to run.
#[derive(Clone, Debug)]
pub struct LaunchOptions {
    pub runsc: Runsc,
    pub state: StateRoot,
    pub name: Option<String>,
    /// Keep the container's directory (bundle, logs) after the run.
    pub keep: bool,
    /// Ask runsc for debug-level logs.
    pub debug: bool,
}

/// Writes the bundle, starts the sandbox, waits for it and cleans up.
/// Returns the workload's exit status.
pub fn run(req: &RunRequest, closure: Option<&Closure>, plan: &RootfsPlan, opts: &LaunchOptions) -> Result<i32> {
    // Before any thread exists, so that only the forwarder receives them.
    let signals = supervise::block_signals()?;
    let name = match &opts.name {
        Some(name) => name.clone(),
        None => generated_name(),
    };
    let bundle_dir = opts.state.container_dir(&name).bundle_dir();
    let launcher = Launcher::for_run(req);
    let layout = launcher.store_layout(plan);
    let mut spec = build_spec(plan, req, launcher, &bundle_dir);
    let binds = spec.mounts.iter().filter(|m| m.is_bind()).count();
    if binds > MAX_RUNSC_BINDS {
        return Err(Error::Rootfs(format!(
            "this run needs {binds} bind mounts and runsc boots at most {MAX_RUNSC_BINDS}; \
             --rootless binds each of the {} store paths on its own",
            plan.store_paths().len()
        )));
    }
    if req.limits.any() {
        // Unique per run, unlike the name: state roots do not share names.
        spec.linux.cgroups_path = Some(format!("/{}", generated_name()));
    }
    let secrets: Vec<Vec<u8>> = req
        .secrets
        .iter()
        .map(|s| {
            std::fs::read(&s.source).map_err(|e| Error::invalid("--secret", format!("{}: {e}", s.source.display())))
        })
        .collect::<Result<_>>()?;

    let container = opts.state.reserve(&name)?;
    let mut cleanup = Cleanup { container: container.clone(), mounts: Vec::new(), secrets: None, keep: opts.keep };

    let bundle = Bundle::prepare(&bundle_dir, &spec, closure)?;
    bundle.write(Target::New, &spec)?;
    let me = std::process::id();
    let mut record = state::Record {
        id: name.clone(),
        status: Status::Created,
        pid: me,
        pid_start: state::process_start_time(me).unwrap_or(0),
        runsc_pid: None,
        bundle: bundle_dir.clone(),
        created: state::now_seconds(),
        digest: bundle.record.digest.to_string(),
        command: req.command.clone(),
        exit_status: None,
    };
    container.write_record(&record)?;
    tracing::debug!(bundle = %bundle_dir.display(), "wrote the bundle");

    let in_memory = !req.rootless;
    if in_memory {
        namespace::enter_private_mount_namespace()?;
        if req.network == Network::Sandbox {
            namespace::prepare_sandbox_network()?;
        }
    }
    if layout == StoreLayout::PreparedView {
        let view = bundle_dir.join(STORE_VIEW_DIR);
        cleanup.mounts.push(view.clone());
        namespace::prepare_store_view(&view, plan.store_paths())?;
    }
    if !req.secrets.is_empty() {
        let dir = bundle_dir.join(SECRETS_STAGING_DIR);
        cleanup.secrets = Some(dir.clone());
        if in_memory {
            cleanup.mounts.push(dir.clone());
        }
        let targets: Vec<PathBuf> = (0..secrets.len()).map(|i| secret_staging_path(&bundle_dir, i)).collect();
        let staged: Vec<namespace::StagedSecret> = targets
            .iter()
            .zip(&secrets)
            .map(|(target, contents)| namespace::StagedSecret { target, contents })
            .collect();
        namespace::stage_secrets(&dir, &staged, req.user.uid, req.user.gid, in_memory)?;
    }

    tracing::debug!("prepared the mount namespace");
    let globals = Globals {
        root: container.runsc_root(),
        log: Some(container.runsc_log()),
        debug_log_dir: opts.debug.then(|| container.debug_log_dir()),
        network: req.network,
        platform: req.platform.clone(),
        rootless: req.rootless,
        cgroups: req.limits.any(),
        oci_seccomp: spec.linux.seccomp.is_some(),
    };
    let launch = supervise::Launch {
        runsc: &opts.runsc,
        globals: &globals,
        bundle: &bundle_dir,
        id: &name,
        timeout: req.timeout,
    };
    let outcome = launch.run(signals, |runsc_pid| {
        record.status = Status::Running;
        record.runsc_pid = Some(runsc_pid);
        if let Err(e) = container.write_record(&record) {
            tracing::warn!("cannot update the container record: {e}");
        }
    })?;
    tracing::debug!(status = ?outcome.status, "runsc exited");
    if outcome.forced {
        supervise::reap_strays(&container.runsc_root());
    }
    let code = supervise::exit_code(&outcome);
    if code == 128 && !outcome.timed_out {
        if let Some(cause) = runsc::failure_cause(&container.runsc_log()) {
            return Err(Error::Runsc(cause));
        }
    }
    record.status = Status::Stopped;
    record.exit_status = Some(code);
    if opts.keep {
        container.write_record(&record)?;
    }
    drop(cleanup);
    Ok(code)
}

/// Undoes a run on every path out of [`run`], errors included.
struct Cleanup {
    container: ContainerDir,
    mounts: Vec<PathBuf>,
    /// Staged secrets go even when the rest is kept.
    secrets: Option<PathBuf>,
    keep: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for mount in self.mounts.iter().rev() {
            namespace::detach(mount);
        }
        if let Some(secrets) = &self.secrets {
            let _ = std::fs::remove_dir_all(secrets);
        }
        if self.keep {
            return;
        }
        if let Err(e) = self.container.remove() {
            tracing::warn!("{e}");
        }
    }
}

/// `nucleus-` and 12 random hex digits: unique among concurrent runs.
pub fn generated_name() -> String {
    let mut bytes = [0u8; 6];
    let filled =
        std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes)).is_ok();
    if !filled {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let mixed = nanos ^ (u128::from(std::process::id()) << 64);
        bytes.copy_from_slice(&mixed.to_le_bytes()[..6]);
    }
    format!("nucleus-{}", crate::policy::hex(&bytes))
}
