//! Assembling the Spec from the plan and the request.

use std::path::{Path, PathBuf};

use super::defaults::{self, CPU_PERIOD_US};
use super::spec::{
    Capabilities, CpuLimit, Linux, MemoryLimit, Mount, PidsLimit, Process, Resources, Root, Spec, User, OCI_VERSION,
};
use crate::policy::CONTEXT_DIR;
use crate::request::{Network, RunRequest};
use crate::rootfs::{RootfsPlan, StoreView};

pub use crate::nix::store_path::STORE_DIR;

/// Names of the entries nucleus keeps inside a bundle directory.
pub const ROOTFS_DIR: &str = "rootfs";
pub const STORE_VIEW_DIR: &str = "store-view";
pub const SECRETS_STAGING_DIR: &str = "secrets";

/// The network namespace runsc joins for `--network sandbox`: its own,
/// which it inherits from nucleus.
pub const PREPARED_NETWORK_NAMESPACE: &str = "/proc/self/ns/net";

/// Who starts the bundle, and so what is prepared around it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launcher {
    /// `nucleus run` as root: a private mount namespace holding the store
    /// view, and for `--network sandbox` a network namespace of its own.
    Nucleus,
    /// `nucleus run --rootless`: no namespaces of its own to prepare.
    NucleusRootless,
    /// Any runtime reading the bundle from disk (`nucleus bundle`).
    Standalone,
}

/// How the closure's store paths reach `/nix/store`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreLayout {
    /// One bind per store path. Self-contained: any runtime can run the
    /// bundle, but runsc boots at most ~236 binds.
    PerPath,
    /// One rbind of `<bundle>/store-view`, a directory that the sandbox
    /// stage fills with per-path binds inside a private mount namespace.
    PreparedView,
}

impl Launcher {
    pub fn for_run(req: &RunRequest) -> Self {
        if req.rootless {
            Launcher::NucleusRootless
        } else {
            Launcher::Nucleus
        }
    }

    /// Host mode shows the whole store with one bind either way.
    pub fn store_layout(self, plan: &RootfsPlan) -> StoreLayout {
        match (self, &plan.store) {
            (Launcher::Nucleus, StoreView::Closure(_)) => StoreLayout::PreparedView,
            _ => StoreLayout::PerPath,
        }
    }
}

/// Where the staged copy of secret number `index` lives inside the bundle.
pub fn secret_staging_path(bundle_dir: &Path, index: usize) -> PathBuf {
    bundle_dir.join(SECRETS_STAGING_DIR).join(index.to_string())
}

/// Builds the hardened Spec. `bundle_dir` is where the bundle will live;
/// only the store view and staged secrets refer to it, and the digest
/// replaces it with a placeholder, so the location never reaches the digest.
pub fn build_spec(plan: &RootfsPlan, req: &RunRequest, launcher: Launcher, bundle_dir: &Path) -> Spec {
    let mut mounts = defaults::system_mounts();
    mounts.extend(plan.system.iter().map(|b| Mount::bind(b.source.display().to_string(), &b.destination, false)));
    mounts.extend(store_mounts(plan, launcher.store_layout(plan), bundle_dir));
    mounts.extend(user_mounts(req, bundle_dir));

    let mut linux = Linux {
        namespaces: defaults::namespaces(),
        resources: resources(req),
        masked_paths: defaults::MASKED_PATHS.iter().map(|p| p.to_string()).collect(),
        readonly_paths: defaults::READONLY_PATHS.iter().map(|p| p.to_string()).collect(),
        devices: defaults::devices(),
        rootfs_propagation: defaults::ROOTFS_PROPAGATION.into(),
        seccomp: seccomp(req),
        cgroups_path: None,
    };
    match req.network {
        Network::None => {}
        Network::Host => linux.namespaces.retain(|n| n.kind != "network"),
        // Under `nucleus run`, runsc joins the network namespace that the
        // sandbox stage prepared (loopback up, nothing else); runsc's own
        // fresh namespace would have loopback down, and no network at all.
        Network::Sandbox if launcher == Launcher::Nucleus => {
            for ns in linux.namespaces.iter_mut().filter(|n| n.kind == "network") {
                ns.path = Some(PREPARED_NETWORK_NAMESPACE.to_string());
            }
        }
        Network::Sandbox => {}
    }

    Spec {
        oci_version: OCI_VERSION.into(),
        process: Process {
            terminal: false,
            user: User { uid: req.user.uid, gid: req.user.gid, additional_gids: req.user.additional_gids.clone() },
            args: req.command.clone(),
            env: req.env.clone(),
            cwd: req.workdir.clone(),
            capabilities: Capabilities::default(),
            rlimits: defaults::rlimits(),
            no_new_privileges: true,
        },
        root: Root { path: ROOTFS_DIR.into(), readonly: true },
        hostname: req.hostname.clone(),
        mounts,
        hooks: req.hooks.clone(),
        linux,
    }
}

fn store_mounts(plan: &RootfsPlan, layout: StoreLayout, bundle_dir: &Path) -> Vec<Mount> {
    match (&plan.store, layout) {
        (StoreView::Host, _) => vec![Mount::bind(STORE_DIR, STORE_DIR, false)],
        (StoreView::Closure(_), StoreLayout::PreparedView) => {
            vec![Mount::bind(bundle_dir.join(STORE_VIEW_DIR).display().to_string(), STORE_DIR, false)]
        }
        (StoreView::Closure(paths), StoreLayout::PerPath) => {
            paths.iter().map(|p| Mount::bind(p.as_str(), p.as_str(), false)).collect()
        }
    }
}

/// Volumes, tmpfs, secrets and the context, ordered so that a mount never
/// comes before the mount that holds its mountpoint.
fn user_mounts(req: &RunRequest, bundle_dir: &Path) -> Vec<Mount> {
    let mut mounts: Vec<Mount> = Vec::new();
    for v in &req.volumes {
        mounts.push(Mount::bind(v.source.display().to_string(), &v.destination, v.writable));
    }
    for t in &req.tmpfs {
        let mut options = vec!["nosuid", "nodev", "mode=1777"].into_iter().map(String::from).collect::<Vec<_>>();
        if let Some(size) = t.size_bytes {
            options.push(format!("size={size}"));
        }
        mounts.push(Mount {
            destination: t.destination.clone(),
            kind: "tmpfs".into(),
            source: "tmpfs".into(),
            options,
        });
    }
    for (index, s) in req.secrets.iter().enumerate() {
        let mut m = Mount::bind(secret_staging_path(bundle_dir, index).display().to_string(), &s.destination, false);
        m.options.push("noexec".into());
        mounts.push(m);
    }
    if let Some(context) = &req.context {
        mounts.push(Mount::bind(context.display().to_string(), CONTEXT_DIR, false));
    }
    mounts.sort_by_key(|m| m.destination.matches('/').count());
    mounts
}

/// The user's profile, if any, plus — when a volume is writable — rules that
/// keep the workload from setting setuid or setgid bits: root inside is
/// root to the host's view of a volume, and a setuid-root file left there
/// would be a way up on the host.
fn seccomp(req: &RunRequest) -> Option<serde_json::Value> {
    if !req.volumes.iter().any(|v| v.writable) {
        return req.seccomp.clone();
    }
    let mut profile = req.seccomp.clone().unwrap_or_else(|| serde_json::json!({ "defaultAction": "SCMP_ACT_ALLOW" }));
    if let Some(object) = profile.as_object_mut() {
        let rules = object.entry("syscalls").or_insert_with(|| serde_json::json!([]));
        if let Some(rules) = rules.as_array_mut() {
            rules.extend(defaults::setid_guard_rules());
        }
    }
    Some(profile)
}

fn resources(req: &RunRequest) -> Resources {
    let limits = &req.limits;
    Resources {
        devices: defaults::device_rules(),
        memory: limits.memory_bytes.map(|b| MemoryLimit { limit: b as i64 }),
        cpu: limits.cpu_millis.map(|m| CpuLimit { quota: (m * CPU_PERIOD_US / 1000) as i64, period: CPU_PERIOD_US }),
        pids: limits.pids.map(|p| PidsLimit { limit: p as i64 }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nix::StorePath;
    use crate::request::{Tmpfs, Volume};

    fn closure_plan() -> RootfsPlan {
        RootfsPlan {
            system: vec![crate::rootfs::SystemBind {
                source: "/nix/store/g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-busybox/bin".into(),
                destination: "/bin".into(),
            }],
            store: StoreView::Closure(vec![
                StorePath::parse("/nix/store/g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-busybox").unwrap(),
                StorePath::parse("/nix/store/iyfbhgnyacs9c74b5s3lp4vynl972yly-hello").unwrap(),
            ]),
        }
    }

    #[test]
    fn hardened_defaults() {
        let req = RunRequest::new(Some("x".into()), vec!["/bin/hello".into()]);
        let spec = build_spec(&closure_plan(), &req, Launcher::Standalone, Path::new("/b"));
        let p = &spec.process;
        assert!(p.no_new_privileges);
        let caps = &p.capabilities;
        assert!(caps.bounding.is_empty() && caps.effective.is_empty() && caps.permitted.is_empty());
        assert!(caps.inheritable.is_empty() && caps.ambient.is_empty());
        assert_eq!(p.env, vec![format!("PATH={}", crate::request::DEFAULT_PATH)]);
        assert_eq!((p.user.uid, p.user.gid, p.cwd.as_str()), (0, 0, "/"));
        assert!(spec.root.readonly);
        assert_eq!(spec.hostname, "nucleus");
        let ns: Vec<&str> = spec.linux.namespaces.iter().map(|n| n.kind.as_str()).collect();
        assert_eq!(ns, ["pid", "network", "ipc", "uts", "mount"]);
        assert_eq!(spec.linux.masked_paths.len(), 16);
        assert_eq!(spec.linux.devices.len(), 5);
        assert_eq!(spec.linux.rootfs_propagation, "private");
        assert!(spec.mounts.iter().filter(|m| m.is_bind()).all(|m| m.options.contains(&"rprivate".to_string())));
        let tmp = spec.mounts.iter().find(|m| m.destination == "/tmp").unwrap();
        for opt in ["nosuid", "nodev", "noexec", "mode=1777", "size=64m"] {
            assert!(tmp.options.iter().any(|o| o == opt), "{opt}");
        }
        let store: Vec<&Mount> = spec.mounts.iter().filter(|m| m.destination.starts_with("/nix/store/")).collect();
        assert_eq!(store.len(), 2);
        assert!(store.iter().all(|m| m.options.contains(&"ro".to_string()) && m.is_bind()));
    }

    #[test]
    fn the_prepared_view_is_one_bind_inside_the_bundle() {
        let req = RunRequest::new(Some("x".into()), vec!["/bin/hello".into()]);
        let spec = build_spec(&closure_plan(), &req, Launcher::Nucleus, Path::new("/run/b"));
        let store: Vec<&Mount> = spec.mounts.iter().filter(|m| m.destination.starts_with(STORE_DIR)).collect();
        assert_eq!(store.len(), 1);
        assert_eq!(store[0].source, "/run/b/store-view");
        assert_eq!(store[0].destination, STORE_DIR);
    }

    #[test]
    fn user_mounts_follow_their_parents() {
        let mut req = RunRequest::new(None, vec!["/bin/true".into()]);
        req.volumes.push(Volume { source: "/srv/a".into(), destination: "/data/sub/x".into(), writable: true });
        req.tmpfs.push(Tmpfs { destination: "/data".into(), size_bytes: Some(1024) });
        req.limits.cpu_millis = Some(500);
        req.limits.memory_bytes = Some(64 << 20);
        let spec = build_spec(&RootfsPlan::for_host().unwrap(), &req, Launcher::Standalone, Path::new("/b"));
        let dests: Vec<&str> = spec.mounts.iter().map(|m| m.destination.as_str()).collect();
        let data = dests.iter().position(|d| *d == "/data").unwrap();
        let sub = dests.iter().position(|d| *d == "/data/sub/x").unwrap();
        assert!(data < sub);
        let vol = &spec.mounts[sub];
        assert!(vol.options.contains(&"rw".to_string()) && vol.options.contains(&"nosuid".to_string()));
        assert!(spec.mounts[data].options.contains(&"size=1024".to_string()));
        assert_eq!(spec.linux.resources.cpu.as_ref().unwrap().quota, 50_000);
        assert_eq!(spec.linux.resources.memory.as_ref().unwrap().limit, 64 << 20);
    }

    #[test]
    fn a_writable_volume_brings_the_setid_guard() {
        let mut req = RunRequest::new(None, vec!["/bin/true".into()]);
        let plan = RootfsPlan::for_host().unwrap();
        assert!(build_spec(&plan, &req, Launcher::Nucleus, Path::new("/b")).linux.seccomp.is_none());
        req.volumes.push(Volume { source: "/srv".into(), destination: "/data".into(), writable: true });
        let seccomp = build_spec(&plan, &req, Launcher::Nucleus, Path::new("/b")).linux.seccomp.unwrap();
        assert_eq!(seccomp["defaultAction"], "SCMP_ACT_ALLOW");
        let chmod = seccomp["syscalls"].as_array().unwrap().iter().filter(|r| r["names"][0] == "chmod").count();
        assert_eq!(chmod, 3, "one rule each for setuid, setgid and both");
        // A user's profile keeps its own rules and gains the guard.
        req.seccomp = Some(
            serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}),
        );
        let seccomp = build_spec(&plan, &req, Launcher::Nucleus, Path::new("/b")).linux.seccomp.unwrap();
        assert_eq!(seccomp["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(seccomp["syscalls"][0]["names"][0], "read");
        assert!(seccomp["syscalls"].as_array().unwrap().len() > 1);
    }

    #[test]
    fn json_shape() {
        let req = RunRequest::new(Some("x".into()), vec!["/bin/hello".into()]);
        let spec = build_spec(&closure_plan(), &req, Launcher::Standalone, Path::new("/b"));
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(v["ociVersion"], "1.0.2");
        assert_eq!(v["process"]["noNewPrivileges"], true);
        assert_eq!(v["linux"]["rootfsPropagation"], "private");
        assert_eq!(v["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
        assert_eq!(v["linux"]["devices"][0]["fileMode"], 0o666);
        assert!(v.get("hooks").is_none(), "empty hooks are left out");
        assert_eq!(v["linux"]["resources"]["devices"][0], serde_json::json!({"allow": false, "access": "rwm"}));
        assert!(v["linux"]["resources"].get("memory").is_none());
        assert!(v["linux"].get("seccomp").is_none());
    }
}
