//! One function per subcommand, each reading like the pipeline it drives.
//! They return the process's exit status; errors become 125 in main.

use std::io::Write;
use std::path::Path;

use crate::bundle::{self, Bundle, Target as BundleTarget};
use crate::cli::{BundleCmd, Cli, Command, RunCmd};
use crate::nix::cache::ClosureCache;
use crate::nix::closure::Closure;
use crate::nix::hash::NarHash;
use crate::nix::installable::Installable;
use crate::nix::nar::nar_sha256;
use crate::oci::{build_spec, Launcher};
use crate::request::{Network, RunRequest};
use crate::rootfs::RootfsPlan;
use crate::sandbox::{self, lifecycle, LaunchOptions, Runsc, StateRoot, MAX_RUNSC_BINDS};
use crate::{Error, Result};

pub fn dispatch(cli: Cli) -> Result<i32> {
    let state_root = cli.state_root;
    match cli.command {
        Command::Run(cmd) => run(cmd, state_root.as_deref(), cli.verbose > 1),
        Command::Bundle(cmd) => write_bundle(cmd),
        Command::Digest { dir } => {
            let bundle = Bundle::read(&absolute(&dir)?)?;
            print_line(bundle.recompute_digest().as_str())?;
            Ok(0)
        }
        Command::Verify { dir, deep } => verify(&dir, deep),
        Command::Hash { path, format } => {
            let hash = NarHash(nar_sha256(&path)?);
            print_line(&hash.format(format))?;
            Ok(0)
        }
        Command::Closure { installable, json } => closure(&installable, json),
        Command::Ps { all, json } => {
            let rows = lifecycle::list(&StateRoot::locate(state_root.as_deref())?, all)?;
            if json {
                print_line(&to_json(&rows)?)?;
            } else {
                print_text(&lifecycle::format_table(&rows))?;
            }
            Ok(0)
        }
        Command::State { name } => {
            let container = StateRoot::locate(state_root.as_deref())?.container(&name)?;
            let runsc = Runsc::locate(None).ok();
            print_line(&to_json(&lifecycle::oci_state(runsc.as_ref(), &container))?)?;
            Ok(0)
        }
        Command::Kill { name, signal, runsc } => {
            let signal = lifecycle::parse_signal(&signal)?;
            let container = StateRoot::locate(state_root.as_deref())?.container(&name)?;
            lifecycle::kill(&Runsc::locate(runsc.as_deref())?, &container, signal)?;
            Ok(0)
        }
        Command::Delete { name, force, runsc } => {
            let container = StateRoot::locate(state_root.as_deref())?.container(&name)?;
            lifecycle::delete(&Runsc::locate(runsc.as_deref())?, &container, force)?;
            Ok(0)
        }
    }
}

/// installable → closure → rootfs plan; `None` installable is host mode.
/// With a cache, a closure seen before costs no call to Nix.
fn resolve(installable: Option<&str>, cache: Option<&ClosureCache>) -> Result<(Option<Closure>, RootfsPlan)> {
    let Some(text) = installable else { return Ok((None, RootfsPlan::for_host()?)) };
    let root = Installable::parse(text)?.realise()?;
    let closure = match cache.and_then(|c| c.load(&root)) {
        Some(closure) => closure,
        None => {
            let closure = Closure::query(&root)?;
            if let Some(cache) = cache {
                cache.store(&closure);
            }
            closure
        }
    };
    let plan = RootfsPlan::for_closure(&closure)?;
    Ok((Some(closure), plan))
}

fn run(cmd: RunCmd, state_root: Option<&Path>, debug: bool) -> Result<i32> {
    let name = cmd.name.as_deref().map(crate::policy::parse_name).transpose()?;
    let req = cmd.spec.into_request(cmd.target, cmd.timeout.as_deref())?;
    // Everything that can be refused is checked before Nix builds anything.
    let runsc = if cmd.dry_run { None } else { Some(Runsc::locate(cmd.runsc.as_deref())?) };
    let state = StateRoot::locate(state_root)?;
    let cache = if cmd.dry_run {
        ClosureCache::read_only(state.closure_cache_dir())
    } else {
        ClosureCache::new(state.closure_cache_dir())
    };
    let (closure, plan) = resolve(req.installable.as_deref(), Some(&cache))?;
    tracing::debug!(store_paths = plan.store_paths().len(), "resolved the root filesystem");
    if req.network == Network::Host {
        eprintln!("nucleus: warning: --network host shares the host's network stack with the workload");
    }
    let Some(runsc) = runsc else {
        let name = name.unwrap_or_else(|| "dry-run".to_string());
        let bundle_dir = state.container_dir(&name).bundle_dir();
        let spec = build_spec(&plan, &req, Launcher::for_run(&req), &bundle_dir);
        let bundle = Bundle::prepare(&bundle_dir, &spec, closure.as_ref())?;
        print_text(&format!("{}\n{}\n", to_json(&bundle.config)?, bundle.record.digest))?;
        return Ok(0);
    };
    let opts = LaunchOptions { runsc, state, name, keep: cmd.keep, debug };
    sandbox::run(&req, closure.as_ref(), &plan, &opts)
}

fn write_bundle(cmd: BundleCmd) -> Result<i32> {
    let req: RunRequest = cmd.spec.into_request(cmd.target, None)?;
    if !req.secrets.is_empty() {
        return Err(Error::invalid(
            "--secret",
            "secrets are staged in memory for the length of a `nucleus run`; a bundle on disk cannot carry them",
        ));
    }
    let out = absolute(&cmd.out)?;
    let (closure, plan) = resolve(req.installable.as_deref(), None)?;
    if plan.store_paths().len() > MAX_RUNSC_BINDS {
        eprintln!(
            "nucleus: warning: {} store paths become {0} bind mounts; runsc boots at most {MAX_RUNSC_BINDS} (runc has no such limit, and `nucleus run` needs only one)",
            plan.store_paths().len()
        );
    }
    let spec = build_spec(&plan, &req, Launcher::Standalone, &out);
    let bundle = Bundle::prepare(&out, &spec, closure.as_ref())?;
    bundle.write(BundleTarget::EmptyOrNew, &spec)?;
    print_line(bundle.record.digest.as_str())?;
    Ok(0)
}

fn verify(dir: &Path, deep: bool) -> Result<i32> {
    let bundle = Bundle::read(&absolute(dir)?)?;
    let differences = bundle::verify::verify(&bundle, deep)?;
    if differences.is_empty() {
        print_line(&format!("ok {}", bundle.record.digest))?;
        return Ok(0);
    }
    for difference in &differences {
        print_line(&format!("differs: {difference}"))?;
    }
    Ok(1)
}

fn closure(installable: &str, json: bool) -> Result<i32> {
    let root = Installable::parse(installable)?.realise()?;
    let closure = Closure::query(&root)?;
    if json {
        print_line(&to_json(&closure.paths)?)?;
    } else {
        let text: String = closure.paths.iter().map(|p| format!("{}\n", p.path)).collect();
        print_text(&text)?;
    }
    Ok(0)
}

/// Makes `dir` absolute without resolving symlinks, so a bundle's recorded
/// location is the one the user named.
fn absolute(dir: &Path) -> Result<std::path::PathBuf> {
    std::path::absolute(dir).map_err(|e| Error::io("cannot resolve", dir, e))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| Error::Bundle(e.to_string()))
}

fn print_line(line: &str) -> Result<()> {
    print_text(&format!("{line}\n"))
}

/// stdout may be a closed pipe (`| head`); that is not nucleus failing.
fn print_text(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::io("cannot write to", "stdout", e)),
        _ => Ok(()),
    }
}
