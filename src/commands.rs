//! One function per subcommand, each reading like the pipeline it drives:
//! installable → closure → rootfs plan → launch plan (spec, bundle, digest)
//! → sandbox. They return the process's exit status; errors go to main.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::bundle::output_dir::Accept;
use crate::bundle::{self, Bundle};
use crate::cli::{
    BundleArgs, CheckTarget, Cli, Command, ExecArgs, HostAccess, ImageArgs, KubeArgs, RunArgs, SandboxArgs,
    WorkloadArgs,
};
use crate::host::sources::HostSources;
use crate::nix::cache::{ClosureCache, StoreStamp};
use crate::nix::closure::Closure;
use crate::nix::command::Deadline;
use crate::nix::hash::NarHash;
use crate::nix::installable::Installable;
use crate::nix::nar::nar_sha256;
use crate::plan::{ContainerTarget, LaunchPlan, PlanInput, PlanTarget};
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
            lifecycle::delete(state()?.container(&name)?, force)?;
            Ok(0)
        }
        Command::Exec(args) => exec(&args, &state()?),
        Command::Gc => collect_garbage(&state()?),
        Command::Image(args) => write_image(&args),
        Command::Kube(args) => kube(&args),
        Command::CheckArgs { target: CheckTarget::Run(args) } => {
            args.request(HostAccess::Offline)?;
            Ok(0)
        }
    }
}

/// `nucleus gc`: kept store views and the closure cache go (the next run
/// makes them again), and so do containers that were not kept and that no
/// process of theirs will ever clean up: a `nucleus run` and its supervisor
/// both killed outright (SIGKILL, the OOM killer) leave one behind.
fn collect_garbage(state: &StateRoot) -> Result<i32> {
    if state.open(false)?.is_none() {
        return Ok(0);
    }
    for container in state.containers()? {
        let Some(record) = container.record() else { continue };
        if !record.keep && !record.keepers_alive() && record.current_status() == crate::state::record::Status::Stopped {
            let name = container.name().to_string();
            tracing::info!(name = %name, "removing a container its killed run left behind");
            // One that cannot be removed keeps gc from nothing else.
            if let Err(e) = lifecycle::delete(container, false) {
                tracing::warn!(name = %name, "not removed: {e}");
            }
        }
    }
    let views = sandbox::views::remove_all(&state.dir)?;
    let cache = state.closure_cache_dir();
    // A run may add an entry while the directory is emptied: that entry is
    // the run's, not garbage, and may stay once a few tries found one.
    let not_empty = |e: &std::io::Error| e.raw_os_error() == Some(libc::ENOTEMPTY);
    for tries_left in (0..3).rev() {
        match std::fs::remove_dir_all(&cache) {
            Err(e) if not_empty(&e) && tries_left > 0 => continue,
            Err(e) if not_empty(&e) => {
                tracing::info!("a run wrote to the closure cache while it was removed; its entries stay");
            }
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io("cannot remove", &cache, e)),
            _ => {}
        }
        break;
    }
    tracing::info!(views, "removed the kept store views and the closure cache");
    Ok(0)
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
    // From the first moment: a stop signal then ends Nix's commands too,
    // and later the boot, and then reaches the workload.
    sandbox::block_signals()?;
    let req = args.request(HostAccess::Full)?;
    let name = args.name.clone().unwrap_or_else(generated_name);
    let runsc = match runsc::locate(args.runsc.as_deref()) {
        Ok(runsc) => runsc,
        Err(_) if args.dry_run => args.runsc.clone().unwrap_or_else(|| PathBuf::from("runsc")),
        Err(e) => return Err(e),
    };
    // Bad host paths are refused before anything is created. They are
    // opened again, for use, once in the private mount namespace: only
    // there can they be mounted from their descriptors.
    HostSources::open(&req)?.check_apart_from_state(&state.dir)?;
    // A dry run checks the state root as a run would, but creates nothing.
    state.open(!args.dry_run)?;
    let deadline = Deadline::after(req.timeout).stoppable();
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
    sources.check_apart_from_state(&state.dir)?;
    let target = PlanTarget::Container(ContainerTarget {
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
        tracing::warn!("--network host shares the host's network stack with the workload");
    }
    sandbox::launch(&plan, &sources, state, deadline, args.replace)
}

fn plan(
    req: &RunRequest,
    resolved: &ResolvedRootfs,
    sources: &HostSources,
    target: &PlanTarget<'_>,
) -> Result<LaunchPlan> {
    let plan = LaunchPlan::new(
        &PlanInput {
            request: req,
            rootfs: &resolved.rootfs,
            closure: resolved.closure.as_ref(),
            command: &resolved.command,
            sources,
        },
        target,
    )?;
    for warning in &plan.warnings {
        tracing::warn!("{warning}");
    }
    Ok(plan)
}

fn write_bundle(args: &BundleArgs) -> Result<i32> {
    let deadline = crate::interrupt::stops_end_nix()?;
    let req = args.sandbox.request(&args.workload, HostAccess::Full)?;
    let out = absolute(&args.out)?;
    let sources = HostSources::open(&req)?;
    let resolved = resolve(&req, None, &deadline)?;
    let plan = plan(&req, &resolved, &sources, &PlanTarget::Directory(&out))?;
    bundle::write(&plan.bundle, Accept::NewOrEmpty)?;
    print_line(plan.bundle.record.digest.as_str())
}

fn verify(dir: &Path, deep: bool) -> Result<i32> {
    if crate::image::verify::is_image(dir) {
        return verify_image(dir);
    }
    let bundle = Bundle::read(&absolute(dir)?)?;
    let differences = bundle::verify::verify(&bundle, deep)?;
    if differences.is_empty() {
        return print_line(&format!("ok {}", bundle.record.digest));
    }
    let text: String = differences.iter().map(|d| format!("differs: {}\n", crate::error::printable(d))).collect();
    print_text(&text)?;
    Ok(1)
}

/// An image checks out on any machine: its layers are rehashed every time,
/// so `--deep` adds nothing.
fn verify_image(path: &Path) -> Result<i32> {
    let report = crate::image::verify::verify(&absolute(path)?)?;
    if report.differences.is_empty() {
        return print_line(&format!("ok {}", report.image_digest));
    }
    let text: String =
        report.differences.iter().map(|d| format!("differs: {}\n", crate::error::printable(d))).collect();
    print_text(&text)?;
    Ok(1)
}

/// An image's plan and what it was made from.
struct ImageSource {
    request: RunRequest,
    closure: Closure,
    command: Vec<String>,
    bundle_digest: String,
    plan: crate::image::ImagePlan,
}

/// installable → closure → bundle digest → image plan, for `image` and
/// `kube` alike, so both name the same image. No host path is opened: the
/// volumes of an image are the runtime's to provide.
fn image_source(sandbox: &SandboxArgs, workload: &WorkloadArgs, max_layers: u16) -> Result<ImageSource> {
    let deadline = crate::interrupt::stops_end_nix()?;
    let req = sandbox.request(workload, HostAccess::Full)?;
    crate::image::check_request(&req)?;
    if req.installable.is_none() {
        return Err(Error::invalid("INSTALLABLE", "an image holds a closure, and host mode has none"));
    }
    let resolved = resolve(&req, None, &deadline)?;
    let sources = HostSources::default();
    // The bundle digest does not depend on where a bundle is written; this
    // directory holds no volume source (nothing under /proc may be one).
    let target = PlanTarget::Directory(Path::new("/proc/nucleus-image"));
    let launch = LaunchPlan::new(
        &PlanInput {
            request: &req,
            rootfs: &resolved.rootfs,
            closure: resolved.closure.as_ref(),
            command: &resolved.command,
            sources: &sources,
        },
        &target,
    )?;
    let closure = resolved.closure.ok_or_else(|| Error::invalid("INSTALLABLE", "it resolved to no closure"))?;
    let bundle_digest = launch.bundle.record.digest.to_string();
    let plan = crate::image::ImagePlan::new(&crate::image::ImageInput {
        request: &req,
        closure: &closure,
        rootfs: &resolved.rootfs,
        command: &resolved.command,
        bundle_digest: &bundle_digest,
        max_layers: usize::from(max_layers),
    })?;
    Ok(ImageSource { request: req, closure, command: resolved.command, bundle_digest, plan })
}

fn write_image(args: &ImageArgs) -> Result<i32> {
    let out = absolute(&args.out)?;
    let tag = args.tag.as_deref().map(|t| crate::image::oci::parse_reference("--tag", t)).transpose()?;
    let source = image_source(&args.sandbox, &args.workload, args.layers.max_layers)?;
    let output = crate::image::Output::for_path(&out);
    let documents = crate::image::output::write(&source.plan, &output, tag.as_deref())?;
    tracing::info!(reference = %documents.reference, layers = source.plan.layers.len(), "wrote the image");
    print_line(documents.image_digest())
}

fn kube(args: &KubeArgs) -> Result<i32> {
    let name = args.name.as_deref().map(crate::kube::parse_name).transpose()?;
    let image = args.image.as_deref().map(|i| crate::image::oci::parse_reference("--image", i)).transpose()?;
    let timeout = args.timeout.as_deref().map(|t| policy::parse_seconds("--timeout", t)).transpose()?;
    let mut source = image_source(&args.sandbox, &args.workload, args.layers.max_layers)?;
    source.request.timeout = timeout.map(std::time::Duration::from_secs);
    // Without --image, the reference is the one `nucleus image` writes into
    // the image's index, which needs the image's digest.
    let (image, image_digest) = match image {
        Some(image) => (image, None),
        None => {
            let documents = source.plan.documents(&source.plan.digest_layers()?, None)?;
            (documents.reference.clone(), Some(documents.image_digest().to_string()))
        }
    };
    let name = name.unwrap_or_else(|| crate::kube::default_name(source.closure.root.package_name()));
    let manifest = crate::kube::manifest(&crate::kube::KubeInput {
        request: &source.request,
        command: &source.command,
        name: &name,
        image: &image,
        kind: args.kind,
        volume_source: args.volumes_as,
        shards: args.shards,
        bundle_digest: &source.bundle_digest,
        image_digest: image_digest.as_deref(),
    })?;
    crate::interrupt::check_now("making the manifest")?;
    if let Some(file) = &args.seccomp_out {
        let Some((_, profile)) = &manifest.seccomp_profile else {
            return Err(Error::invalid(
                "--seccomp-out",
                "the pod needs no Localhost profile (no --seccomp-profile and no writable volume)",
            ));
        };
        write_new_file("--seccomp-out", &absolute(file)?, profile)?;
    }
    for warning in &manifest.warnings {
        eprintln!("nucleus: warning: {warning}");
    }
    print_text(&manifest.text)
}

/// A new file (never replacing one, never through a symlink).
fn write_new_file(option: &str, path: &Path, contents: &[u8]) -> Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Err(Error::invalid(option, format!("{} does not name a file", path.display())));
    };
    let dir = bundle::SafeDir::open(parent).map_err(|e| Error::io("cannot open the directory of", path, e))?;
    dir.write_new_file(name, 0o644, contents).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            Error::invalid(option, format!("{} exists; nucleus never overwrites files", path.display()))
        }
        _ => Error::io("cannot write", path, e),
    })
}

fn closure(installable: &str, json: bool) -> Result<i32> {
    let deadline = crate::interrupt::stops_end_nix()?;
    let request = crate::request::InstallableRequest { text: installable.to_string(), ..Default::default() };
    let root = Installable::classify(&request)?.resolve(false, &deadline)?.root;
    let closure = Closure::query(&root, &deadline)?;
    crate::interrupt::check_now("asking Nix for the closure")?;
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
    let request = ExecRequest {
        args: args.command.clone(),
        env,
        cwd,
        user,
        tty: args.tty,
        interactive: args.interactive,
        caller_terminal: false,
    };
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
/// A stop signal a command blocked acts again from here: the output is
/// complete, and a full pipe must not hold the stop off.
fn print_text(text: &str) -> Result<i32> {
    crate::interrupt::unblock_stops();
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::io("cannot write to", "stdout", e)),
        _ => Ok(0),
    }
}
