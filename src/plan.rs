//! The launch plan: every decision a run needs, made in one pure function.
//!
//! `run`, `run --dry-run` and `bundle` all build their bundle here, so a
//! dry run shows exactly what a run would use and refuses exactly what it
//! refuses. The sandbox stage then only carries the plan out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::Mount;
use serde::Serialize;

use crate::bundle::{BundleContents, BundleEntry, BundleLayout, DigestRecord, EntryKind};
use crate::host::sources::{HostSources, SourceKind};
use crate::nix::store_path::STORE_DIR;
use crate::nix::Closure;
use crate::oci::build::{hardened_spec, NetworkNamespace, SpecInput};
use crate::oci::defaults::{self, bind};
use crate::oci::{MountList, RuntimeConfig};
use crate::policy::seccomp::{check_fits, effective_profile};
use crate::policy::CONTEXT_DIR;
use crate::request::{Network, PortMapping, RunRequest, TerminalMode};
use crate::rootfs::{RootfsPlan, StoreEntryKind, StoreView};
use crate::sandbox::runsc::RunscFlags;
use crate::state::layout::ContainerLayout;
use crate::{Error, Result};

/// runsc fails to boot with more bind mounts than this (`FD 256 is
/// already in use`).
pub const MAX_RUNSC_BINDS: usize = 236;

/// The network namespace runsc joins under `nucleus run --network
/// sandbox`: the one it inherits from nucleus, which nucleus prepared.
pub const PREPARED_NETWORK_NAMESPACE: &str = "/proc/self/ns/net";

/// What the pipeline resolved before planning.
pub struct PlanInput<'a> {
    pub request: &'a RunRequest,
    pub rootfs: &'a RootfsPlan,
    /// `None` in host mode.
    pub closure: Option<&'a Closure>,
    /// The program and its arguments (given, or the main program).
    pub command: &'a [String],
    pub sources: &'a HostSources,
}

/// Where the bundle goes.
pub enum PlanTarget<'a> {
    /// A container under a state root, launched by `nucleus run`.
    Container(ContainerTarget<'a>),
    /// A self-contained directory any runtime can run (`nucleus bundle`).
    Directory(&'a Path),
}

pub struct ContainerTarget<'a> {
    pub state_root: &'a Path,
    pub name: &'a str,
    pub runsc: &'a Path,
    pub keep: bool,
    /// Ask runsc for debug logs.
    pub debug: bool,
}

#[derive(Debug)]
pub struct LaunchPlan {
    pub bundle: BundleContents,
    /// How `/nix/store` is made.
    pub store: StorePlan,
    /// Things worth a warning that do not stop the plan.
    pub warnings: Vec<String>,
    /// What `nucleus run` does around the bundle; `None` for `bundle`.
    pub container: Option<ContainerPlan>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum StorePlan {
    /// The host's whole store, one read-only bind (host mode).
    Host,
    /// One bind per store path; symlink store paths are symlinks in rootfs.
    PerPath,
    /// One bind of `view`, a tmpfs the sandbox stage fills with the closure
    /// inside nucleus's private mount namespace.
    View {
        view: PathBuf,
        #[serde(skip)]
        entries: Vec<crate::rootfs::StoreEntry>,
    },
}

/// Everything `nucleus run` does besides writing the bundle.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPlan {
    pub layout: ContainerLayout,
    /// Host sources mounted from their open descriptors into the bundle.
    pub staged: Vec<StagedSource>,
    pub secrets: Vec<StagedSecret>,
    /// A tmpfs for the secrets, if there are any.
    pub secrets_dir: Option<PathBuf>,
    pub user_namespace: bool,
    pub network: NetworkPlan,
    pub runsc: RunscFlags,
    pub cgroups_path: Option<String>,
    pub timeout: Option<Duration>,
    pub boot_timeout: Duration,
    pub terminal: TerminalMode,
    pub keep: bool,
    /// The workload's user, which `exec` uses unless told otherwise.
    pub user: (u32, u32),
    /// For the container record.
    pub installable: Option<String>,
    pub command: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StagedKind {
    Volume(usize),
    Context,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StagedSource {
    pub source: StagedKind,
    pub host_path: PathBuf,
    /// Where it is mounted, relative to the bundle and as a full path.
    pub relative: String,
    pub target: PathBuf,
    pub writable: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StagedSecret {
    /// Index into the request's secrets (and the read contents).
    pub index: usize,
    pub target: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "mode")]
pub enum NetworkPlan {
    /// runsc makes a namespace with only loopback.
    None,
    /// The host's network namespace.
    Host,
    /// gVisor's own stack over a namespace nucleus prepares: a fresh one
    /// with loopback (or the one nucleus runs in, if that is not the
    /// host's), and with `links` a veth pair to a namespace of nucleus's
    /// own, from which published ports are forwarded.
    Sandbox {
        #[serde(skip_serializing_if = "Vec::is_empty")]
        publish: Vec<PortMapping>,
        ready_tcp: Option<u16>,
    },
}

impl NetworkPlan {
    /// Whether the sandbox needs a link that nucleus can reach.
    pub fn needs_link(&self) -> bool {
        matches!(self, NetworkPlan::Sandbox { publish, ready_tcp } if !publish.is_empty() || ready_tcp.is_some())
    }
}

impl LaunchPlan {
    pub fn new(resolved: &PlanInput<'_>, target: &PlanTarget<'_>) -> Result<LaunchPlan> {
        let req = resolved.request;
        let layout = match target {
            PlanTarget::Container(c) => ContainerLayout::new(c.state_root, c.name).bundle(),
            PlanTarget::Directory(dir) => BundleLayout::new(*dir),
        };
        let in_container = matches!(target, PlanTarget::Container(_));
        if !in_container && !req.secrets.is_empty() {
            return Err(Error::invalid(
                "--secret",
                "secrets are staged in memory for the length of a `nucleus run`; a bundle on disk cannot carry them",
            ));
        }
        let store = store_plan(resolved.rootfs, &layout, in_container);
        let mounts = all_mounts(resolved.rootfs, &store, req, &layout, in_container);
        let warnings = check_bind_limit(&mounts, in_container)?;
        let (network, namespace) = network(req, in_container);
        let cgroups_path = match target {
            PlanTarget::Container(c) if req.limits.any() && !req.rootless => Some(cgroup_path(c.state_root, c.name)),
            _ => None,
        };
        let seccomp = effective_profile(req.seccomp.as_ref(), req.has_writable_volume());
        if let Some(profile) = &seccomp {
            check_fits(profile)?;
        }
        let config = hardened_spec(SpecInput {
            request: req,
            args: resolved.command,
            mounts,
            network: namespace,
            cgroups_path: cgroups_path.clone(),
            seccomp,
            hooks: req.hooks.clone(),
            container_name: match target {
                PlanTarget::Container(c) => Some(c.name),
                PlanTarget::Directory(_) => None,
            },
        })
        .map_err(|e| Error::Plan { reason: format!("cannot build the runtime spec: {e}") })?;
        let staged = staged_sources(req, resolved.sources, &layout, in_container);
        let staged_map: BTreeMap<String, PathBuf> =
            staged.iter().map(|s| (s.relative.clone(), s.host_path.clone())).collect();
        let record = DigestRecord::new(&config, layout.dir(), resolved.closure, req.network.runsc_flag(), staged_map)
            .map_err(|reason| Error::bundle(layout.dir(), reason, None))?;
        let entries = bundle_entries(&config, resolved.rootfs, &store, resolved.sources, &staged, req, in_container);
        let container = match target {
            PlanTarget::Container(c) => {
                let seccomp = config.spec().linux().as_ref().and_then(|l| l.seccomp().as_ref()).is_some();
                Some(container_plan(resolved, c, &layout, staged, network, cgroups_path, seccomp))
            }
            PlanTarget::Directory(_) => None,
        };
        let bundle = BundleContents { layout: layout.clone(), config, record, entries };
        Ok(LaunchPlan { bundle, store, warnings, container })
    }
}

/// The system binds, the store, then the user's mounts, in that order.
fn all_mounts(
    rootfs: &RootfsPlan,
    store: &StorePlan,
    req: &RunRequest,
    layout: &BundleLayout,
    in_container: bool,
) -> MountList {
    let mut before: Vec<Mount> =
        rootfs.system.iter().map(|b| bind(&b.source.display().to_string(), &b.destination, false, false)).collect();
    let store_binds = match store {
        StorePlan::Host => {
            before.push(bind(STORE_DIR, STORE_DIR, false, false));
            Vec::new()
        }
        StorePlan::View { view, .. } => {
            before.push(bind(&view.display().to_string(), STORE_DIR, false, false));
            Vec::new()
        }
        StorePlan::PerPath => rootfs
            .store_entries()
            .iter()
            .filter(|e| !matches!(e.kind, StoreEntryKind::Symlink(_)))
            .map(|e| e.path.clone())
            .collect(),
    };
    MountList { before, store_binds, after: user_mounts(req, layout, in_container) }
}

/// runsc boots at most [`MAX_RUNSC_BINDS`] binds: a run over it is refused;
/// a bundle on disk only warns, as other runtimes have no such limit.
fn check_bind_limit(mounts: &MountList, in_container: bool) -> Result<Vec<String>> {
    let binds = mounts.binds();
    if binds <= MAX_RUNSC_BINDS {
        return Ok(Vec::new());
    }
    let why = format!("{binds} bind mounts, and runsc boots at most {MAX_RUNSC_BINDS}");
    if in_container {
        return Err(Error::Plan { reason: format!("this run needs {why}") });
    }
    Ok(vec![format!("this bundle has {why} (runc has no such limit, and `nucleus run` needs only one for the store)")])
}

/// What only a run needs beyond its bundle.
fn container_plan(
    resolved: &PlanInput<'_>,
    target: &ContainerTarget<'_>,
    layout: &BundleLayout,
    staged: Vec<StagedSource>,
    network: NetworkPlan,
    cgroups_path: Option<String>,
    seccomp: bool,
) -> ContainerPlan {
    let req = resolved.request;
    let container_layout = ContainerLayout::new(target.state_root, target.name);
    ContainerPlan {
        secrets_dir: (!req.secrets.is_empty()).then(|| layout.path(crate::bundle::layout::SECRETS_DIR)),
        secrets: staged_secrets(req, layout),
        staged,
        user_namespace: req.rootless,
        runsc: RunscFlags::for_run(req, &container_layout, target.runsc, target.debug, cgroups_path.is_some(), seccomp),
        layout: container_layout,
        network,
        cgroups_path,
        timeout: req.timeout,
        boot_timeout: req.boot_timeout,
        terminal: req.terminal,
        keep: target.keep,
        user: (req.user.uid, req.user.gid),
        installable: req.installable.as_ref().map(|i| i.text.clone()),
        command: resolved.command.to_vec(),
    }
}

fn store_plan(rootfs: &RootfsPlan, layout: &BundleLayout, in_container: bool) -> StorePlan {
    match &rootfs.store {
        StoreView::Host => StorePlan::Host,
        StoreView::Closure(_) if !in_container => StorePlan::PerPath,
        StoreView::Closure(entries) => StorePlan::View { view: layout.store_view(), entries: entries.clone() },
    }
}

/// Volumes, tmpfs, secrets and the context, ordered so that a mount never
/// comes before the mount that holds its mountpoint.
fn user_mounts(req: &RunRequest, layout: &BundleLayout, in_container: bool) -> Vec<Mount> {
    let mut mounts: Vec<Mount> = Vec::new();
    for (i, v) in req.volumes.iter().enumerate() {
        let source = if in_container { layout.path(&BundleLayout::volume_staging(i)) } else { v.source.clone() };
        mounts.push(bind(&source.display().to_string(), &v.destination, v.writable, false));
    }
    for t in &req.tmpfs {
        let size = t.size_bytes.map(|s| format!("size={s}"));
        let mut options = vec!["nosuid", "nodev", "mode=1777"];
        options.extend(size.as_deref());
        mounts.push(defaults::mount("tmpfs", "tmpfs", &t.destination, &options));
    }
    for (i, s) in req.secrets.iter().enumerate() {
        mounts.push(bind(&layout.path(&BundleLayout::secret(i)).display().to_string(), &s.destination, false, true));
    }
    if let Some(context) = &req.context {
        let source = if in_container { layout.path(&BundleLayout::context_staging()) } else { context.clone() };
        mounts.push(bind(&source.display().to_string(), CONTEXT_DIR, false, false));
    }
    mounts.sort_by_key(|m| m.destination().components().count());
    mounts
}

fn network(req: &RunRequest, in_container: bool) -> (NetworkPlan, NetworkNamespace) {
    match req.network {
        Network::None => (NetworkPlan::None, NetworkNamespace::Own),
        Network::Host => (NetworkPlan::Host, NetworkNamespace::Host),
        Network::Sandbox if in_container => (
            NetworkPlan::Sandbox { publish: req.publish.clone(), ready_tcp: req.ready_tcp },
            NetworkNamespace::Join(PREPARED_NETWORK_NAMESPACE.into()),
        ),
        Network::Sandbox => {
            (NetworkPlan::Sandbox { publish: req.publish.clone(), ready_tcp: req.ready_tcp }, NetworkNamespace::Own)
        }
    }
}

/// Where runsc puts the container's cgroups: unique per state root and
/// name (a name is reserved in its state root while it lives), so that
/// two services with one container name never share a cgroup, and stable,
/// so that a dead run's cgroups can be found and released.
pub fn cgroup_path(state_root: &Path, name: &str) -> String {
    use sha2::Digest;
    let root = crate::policy::hex(&sha2::Sha256::digest(state_root.as_os_str().as_encoded_bytes()));
    format!("/nucleus-{}-{name}", &root[..12])
}

fn staged_sources(
    req: &RunRequest,
    sources: &HostSources,
    layout: &BundleLayout,
    in_container: bool,
) -> Vec<StagedSource> {
    if !in_container {
        return Vec::new();
    }
    let mut staged: Vec<StagedSource> = req
        .volumes
        .iter()
        .zip(&sources.volumes)
        .enumerate()
        .map(|(i, (v, opened))| StagedSource {
            source: StagedKind::Volume(i),
            host_path: opened.path.clone(),
            relative: BundleLayout::volume_staging(i),
            target: layout.path(&BundleLayout::volume_staging(i)),
            writable: v.writable,
        })
        .collect();
    if let Some(context) = &sources.context {
        staged.push(StagedSource {
            source: StagedKind::Context,
            host_path: context.path.clone(),
            relative: BundleLayout::context_staging(),
            target: layout.path(&BundleLayout::context_staging()),
            writable: false,
        });
    }
    staged
}

/// Secrets are owned by the workload's user, readable by it alone. In a
/// user namespace of nucleus's own (`--rootless`) only the caller is
/// mapped, as root; a workload running as another user gets them readable
/// by all (they sit in a directory only the caller can reach on the host).
fn staged_secrets(req: &RunRequest, layout: &BundleLayout) -> Vec<StagedSecret> {
    let (uid, gid, mode) = if req.rootless {
        (0, 0, if req.user.uid == 0 { 0o400 } else { 0o444 })
    } else {
        (req.user.uid, req.user.gid, 0o400)
    };
    (0..req.secrets.len())
        .map(|index| StagedSecret { index, target: layout.path(&BundleLayout::secret(index)), uid, gid, mode })
        .collect()
}

/// What the bundle directory must hold: a mountpoint in rootfs for every
/// mount (a file where a file is mounted), the working directory, the
/// symlink store paths of a per-path bundle, and the run's staging
/// mountpoints.
fn bundle_entries(
    config: &RuntimeConfig,
    rootfs: &RootfsPlan,
    store: &StorePlan,
    sources: &HostSources,
    staged: &[StagedSource],
    req: &RunRequest,
    in_container: bool,
) -> Vec<BundleEntry> {
    let rootfs_path = |dest: &Path| format!("{}{}", crate::bundle::layout::ROOTFS_DIR, dest.display());
    let mut entries =
        vec![BundleEntry { path: crate::bundle::layout::ROOTFS_DIR.to_string(), kind: EntryKind::Directory }];
    // A set (of borrowed paths): a 3000-path closure has as many mounts
    // to look up.
    let file_destinations: std::collections::HashSet<&Path> = req
        .volumes
        .iter()
        .zip(&sources.volumes)
        .filter(|(_, o)| o.kind == SourceKind::File)
        .map(|(v, _)| Path::new(&v.destination))
        .chain(req.secrets.iter().map(|s| Path::new(&s.destination)))
        .chain(rootfs.store_entries().iter().filter(|e| e.kind == StoreEntryKind::File).map(|e| e.path.as_path()))
        .collect();
    for mount in config.mounts().iter() {
        let dest = mount.destination();
        let kind = if file_destinations.contains(dest.as_path()) { EntryKind::File } else { EntryKind::Directory };
        entries.push(BundleEntry { path: rootfs_path(dest), kind });
    }
    if *store == StorePlan::PerPath {
        for entry in rootfs.store_entries() {
            if let StoreEntryKind::Symlink(target) = &entry.kind {
                entries.push(BundleEntry {
                    path: rootfs_path(entry.path.as_path()),
                    kind: EntryKind::Symlink(target.clone()),
                });
            }
        }
    }
    let cwd = Path::new(&req.workdir);
    let covered = config.mounts().iter().any(|m| cwd.starts_with(m.destination()));
    if !covered && cwd != Path::new("/") {
        entries.push(BundleEntry { path: rootfs_path(cwd), kind: EntryKind::Directory });
    }
    if in_container {
        if let StorePlan::View { .. } = store {
            entries
                .push(BundleEntry { path: crate::bundle::layout::STORE_VIEW_DIR.into(), kind: EntryKind::Directory });
        }
        for s in staged {
            entries.push(BundleEntry { path: s.relative.clone(), kind: staged_kind(s, sources) });
        }
        if !req.secrets.is_empty() {
            entries.push(BundleEntry { path: crate::bundle::layout::SECRETS_DIR.into(), kind: EntryKind::Directory });
        }
    }
    entries
}

fn staged_kind(s: &StagedSource, sources: &HostSources) -> EntryKind {
    let kind = match s.source {
        StagedKind::Volume(i) => sources.volumes.get(i).map(|o| o.kind),
        StagedKind::Context => Some(SourceKind::Directory),
    };
    if kind == Some(SourceKind::File) {
        EntryKind::File
    } else {
        EntryKind::Directory
    }
}
