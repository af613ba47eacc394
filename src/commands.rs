//! One function per subcommand, each reading like the pipeline it drives:
//! installable → closure → rootfs plan → launch plan (spec, bundle, digest)
//! → sandbox. They return the process's exit status; errors go to main.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::bundle::{self, Bundle, Destination};
use crate::cli::{BundleArgs, CheckTarget, Cli, Command, ExecArgs, HostAccess, RunArgs};
use crate::host::sources::HostSources;
use crate::nix::cache::{ClosureCache, StoreStamp};
use crate::nix::closure::Closure;
use crate::nix::command::Deadline;
use crate::nix::hash::NarHash;
use crate::nix::installable::Installable;
use crate::nix::nar::nar_sha256;
use crate::plan::{ContainerTarget, LaunchPlan, Resolved, Target};
use crate::request::RunRequest;
use crate::rootfs::{self, RootfsPlan};
use crate::sandbox::{self, control::ExecRequest, lifecycle, runsc};
use crate::state::StateRoot;
use crate::{policy, Error, Result};

pub fn dispatch(cli: Cli) -> Result<i32> {
    let state_root = cli.state_root.clone();
    let verbosity = cli.verbosity();
    let state = || StateRoot::locate(state_root.as_deref());
    match cli.command {
        Command::Run(args) => run(&args, &state()?, verbosity),
        Command::Bundle(args) => write_bundle(&args),
        Command::Digest { dir } => {
            let bundle = Bundle::read(&absolute(&dir)?)?;
            print_line(bundle.recompute_digest()?.as_str())
        }
        Command::Verify { dir, deep } => verify(&dir, deep),
        Command::Hash { path, format } => print_line(&NarHash(nar_sha256(&path)?).format(format)),
        Command::Closure { installable, json } => closure(&installable, json),
        Command::Ps { all, json } => {
            let rows = lifecycle::list(&state()?, all)?;
            if json {
                print_line(&to_json(&rows)?)
            } else {
                print_text(&lifecycle::format_table(&rows))
            }
        }
        Command::State { name } => print_line(&to_json(&lifecycle::oci_state(&state()?.container(&name)?))?),
        Command::Kill { name, signal, all } => {
            let signal = lifecycle::parse_signal(&signal)?;
            lifecycle::kill(&state()?.container(&name)?, signal, all)?;
            Ok(0)
        }
        Command::Delete { name, force } => {
            let state = state()?;
            let container = state.container(&name)?;
            lifecycle::delete(&state, container, force)?;
            Ok(0)
        }
        Command::Exec(args) => exec(&args, &state()?),
        Command::CheckArgs { target: CheckTarget::Run(args) } => {
            args.request(HostAccess::Offline)?;
            Ok(0)
        }
    }
}

/// What resolving an installable gave: the rootfs plan, the closure (none
/// in host mode) and the command to run.
struct ResolvedRootfs {
    rootfs: RootfsPlan,
    closure: Option<Closure>,
    command: Vec<String>,
}

/// installable → closure → rootfs plan; no installable is host mode. With
/// a cache, a closure seen before costs no call to Nix.
fn resolve(req: &RunRequest, cache: Option<&ClosureCache>, deadline: &Deadline) -> Result<ResolvedRootfs> {
    let Some(installable) = &req.installable else {
        let command =
            req.command.clone().ok_or_else(|| Error::invalid("COMMAND", "host mode needs a command after `--`"))?;
        return Ok(ResolvedRootfs { rootfs: RootfsPlan::for_host(Path::new("/")), closure: None, command });
    };
    let resolved = Installable::classify(installable)?.resolve(req.command.is_none(), deadline)?;
    tracing::info!(installable = %installable.text, root = %resolved.root, "resolved the installable");
    let (closure, entries) = match cache.and_then(|c| c.load(&resolved.root)) {
        Some(cached) => {
            tracing::info!(paths = cached.0.paths.len(), "closure from the cache");
            cached
        }
        None => {
            let closure = Closure::query(&resolved.root, deadline)?;
            tracing::info!(paths = closure.paths.len(), "closure from Nix");
            let stamp = StoreStamp::now();
            let entries = rootfs::store_entries(&closure)?;
            if let Some(cache) = cache {
                cache.store(&closure, &entries, stamp);
            }
            (closure, entries)
        }
    };
    let rootfs = RootfsPlan::for_closure_entries(&closure, entries)?;
    let command = match (&req.command, resolved.main_program) {
        (Some(command), _) => command.clone(),
        (None, Some(program)) => vec![program],
        (None, None) => return Err(Error::invalid("COMMAND", "give the program to run after `--`")),
    };
    Ok(ResolvedRootfs { rootfs, closure: Some(closure), command })
}

fn run(args: &RunArgs, state: &StateRoot, verbosity: u8) -> Result<i32> {
    let req = args.request(HostAccess::Full)?;
    let name = args.name.clone().unwrap_or_else(generated_name);
    let runsc = match runsc::locate(args.runsc.as_deref()) {
        Ok(runsc) => runsc,
        Err(_) if args.dry_run => args.runsc.clone().unwrap_or_else(|| PathBuf::from("runsc")),
        Err(e) => return Err(e),
    };
    // A dry run checks the state root as a run would, but creates nothing.
    state.open(!args.dry_run)?;
    let deadline = Deadline::after(req.timeout);
    let cache = if args.dry_run {
        ClosureCache::read_only(state.closure_cache_dir())
    } else {
        ClosureCache::new(state.closure_cache_dir())
    };
    let resolved = resolve(&req, Some(&cache), &deadline)?;
    if !args.dry_run {
        sandbox::enter_private_mounts(req.rootless)?;
    }
    let sources = HostSources::open(&req)?;
    let target = Target::Container(ContainerTarget {
        state_root: &state.dir,
        name: &name,
        runsc: &runsc,
        keep: args.keep,
        debug: verbosity > 2,
    });
    let plan = plan(&req, &resolved, &sources, &target)?;
    tracing::info!(digest = %plan.bundle.record.digest, "planned the bundle");
    if args.dry_run {
        let launch = json!({ "store": plan.store, "container": plan.container });
        let document = json!({ "digest": plan.bundle.record.digest, "config": plan.bundle.config, "launch": launch });
        return print_line(&to_json(&document)?);
    }
    if req.network == crate::request::Network::Host {
        eprintln!("nucleus: warning: --network host shares the host's network stack with the workload");
    }
    sandbox::launch(&plan, &sources, state, deadline, args.replace)
}

fn plan(req: &RunRequest, resolved: &ResolvedRootfs, sources: &HostSources, target: &Target<'_>) -> Result<LaunchPlan> {
    let plan = LaunchPlan::new(
        &Resolved {
            request: req,
            rootfs: &resolved.rootfs,
            closure: resolved.closure.as_ref(),
            command: &resolved.command,
            sources,
        },
        target,
    )?;
    for warning in &plan.warnings {
        eprintln!("nucleus: warning: {warning}");
    }
    Ok(plan)
}

fn write_bundle(args: &BundleArgs) -> Result<i32> {
    let req = args.sandbox.request(&args.workload, HostAccess::Full)?;
    let out = absolute(&args.out)?;
    let sources = HostSources::open(&req)?;
    let resolved = resolve(&req, None, &Deadline::none())?;
    let plan = plan(&req, &resolved, &sources, &Target::Directory(&out))?;
    bundle::write(&plan.bundle, Destination::EmptyOrNew)?;
    print_line(plan.bundle.record.digest.as_str())
}

fn verify(dir: &Path, deep: bool) -> Result<i32> {
    let bundle = Bundle::read(&absolute(dir)?)?;
    let differences = bundle::verify::verify(&bundle, deep)?;
    if differences.is_empty() {
        return print_line(&format!("ok {}", bundle.record.digest));
    }
    let text: String = differences.iter().map(|d| format!("differs: {}\n", crate::error::printable(d))).collect();
    print_text(&text)?;
    Ok(1)
}

fn closure(installable: &str, json: bool) -> Result<i32> {
    let request = crate::request::InstallableRequest { text: installable.to_string(), ..Default::default() };
    let root = Installable::classify(&request)?.resolve(false, &Deadline::none())?.root;
    let closure = Closure::query(&root, &Deadline::none())?;
    if json {
        print_line(&to_json(&closure.paths)?)
    } else {
        print_text(&closure.paths.iter().map(|p| format!("{}\n", p.path)).collect::<String>())
    }
}

fn exec(args: &ExecArgs, state: &StateRoot) -> Result<i32> {
    let container = state.container(&args.name)?;
    let mut env = Vec::new();
    for entry in &args.env {
        match policy::parse_env(entry)? {
            policy::EnvArg::Set(key, value) => env.push(format!("{key}={value}")),
            policy::EnvArg::Inherit(key) => {
                let value = std::env::var(&key)
                    .map_err(|_| Error::invalid("--env", format!("'{key}' is not set in nucleus's own environment")))?;
                env.push(format!("{key}={value}"));
            }
        }
    }
    let user = args.user.as_deref().map(policy::parse_user).transpose()?.map(|u| (u.uid, u.gid));
    let cwd = args.workdir.as_deref().map(policy::parse_workdir).transpose()?;
    let request =
        ExecRequest { args: args.command.clone(), env, cwd, user, tty: args.tty, interactive: args.interactive };
    lifecycle::exec(&container, lifecycle::ExecOptions { request })
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
    format!("nucleus-{}", policy::hex(&bytes))
}

/// Makes `dir` absolute without resolving symlinks, so a bundle's recorded
/// location is the one the user named.
fn absolute(dir: &Path) -> Result<PathBuf> {
    std::path::absolute(dir).map_err(|e| Error::io("cannot resolve", dir, e))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| Error::io("cannot print", "stdout", std::io::Error::other(e)))
}

fn print_line(line: &str) -> Result<i32> {
    print_text(&format!("{line}\n"))
}

/// stdout may be a closed pipe (`| head`); that is not nucleus failing.
fn print_text(text: &str) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::io("cannot write to", "stdout", e)),
        _ => Ok(0),
    }
}
