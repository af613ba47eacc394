//! The hardened Spec, built field by field. Pure and deterministic: the same
//! input gives the same Spec.
//!
//! `oci-spec`'s `Default` values are not a starting point: they bring their
//! own hostname, mounts, capabilities and environment. Every field of every
//! struct nucleus writes is set here explicitly, and a test pins the exact
//! set of keys config.json holds.

use std::collections::HashMap;
use std::path::PathBuf;

use oci_spec::runtime::{
    Hooks, Linux, LinuxCapabilities, LinuxCpu, LinuxMemory, LinuxNamespaceType, LinuxPids, LinuxResources,
    LinuxSeccomp, Process, Root, Spec, User,
};

use super::config::{MountList, RuntimeConfig};
use super::defaults::{self, CPU_PERIOD_US};
use crate::request::RunRequest;

pub const OCI_VERSION: &str = "1.0.2";

/// The name of the root filesystem directory inside a bundle.
pub const ROOTFS_DIR: &str = "rootfs";

/// How the sandbox gets its network namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkNamespace {
    /// A namespace of the sandbox's own (runsc makes it).
    Own,
    /// Join the namespace at this path (one nucleus prepared).
    Join(PathBuf),
    /// No namespace: the host's network.
    Host,
}

/// Everything the Spec is made of, decided by the launch plan.
pub struct SpecInput<'a> {
    pub request: &'a RunRequest,
    /// The program and its arguments.
    pub args: &'a [String],
    /// Every mount after the system ones, in mount order.
    pub mounts: MountList,
    pub network: NetworkNamespace,
    pub cgroups_path: Option<String>,
    /// The effective profile (the user's and the setuid guard).
    pub seccomp: Option<LinuxSeccomp>,
    pub hooks: Option<Hooks>,
    /// The container's name, for `run`: runsc knows the container by a
    /// hashed id, so hooks find the name in the state's annotations.
    pub container_name: Option<&'a str>,
}

/// The annotation that carries a run's container name (outside the digest).
pub const CONTAINER_NAME_ANNOTATION: &str = "nucleus.container-name";

pub fn hardened_spec(input: SpecInput<'_>) -> Result<RuntimeConfig, oci_spec::OciSpecError> {
    let mut mounts = input.mounts;
    mounts.before.splice(0..0, defaults::system_mounts());
    let mut spec = Spec::default();
    spec.set_version(OCI_VERSION.to_string());
    spec.set_root(Some(root()));
    spec.set_mounts(None);
    spec.set_process(Some(process(input.request, input.args)?));
    spec.set_hostname(Some(input.request.hostname.clone()));
    spec.set_domainname(None);
    spec.set_annotations(
        input.container_name.map(|name| [(CONTAINER_NAME_ANNOTATION.to_string(), name.to_string())].into()),
    );
    spec.set_hooks(input.hooks);
    spec.set_linux(Some(linux(input.request, &input.network, input.cgroups_path, input.seccomp)));
    spec.set_solaris(None);
    spec.set_windows(None);
    spec.set_vm(None);
    spec.set_zos(None);
    spec.set_uid_mappings(None);
    spec.set_gid_mappings(None);
    Ok(RuntimeConfig::new(spec, mounts))
}

fn root() -> Root {
    let mut root = Root::default();
    root.set_path(ROOTFS_DIR.into());
    root.set_readonly(Some(true));
    root
}

fn process(req: &RunRequest, args: &[String]) -> Result<Process, oci_spec::OciSpecError> {
    let mut user = User::default();
    user.set_uid(req.user.uid);
    user.set_gid(req.user.gid);
    user.set_umask(None);
    user.set_additional_gids(if req.user.additional_gids.is_empty() {
        None
    } else {
        Some(req.user.additional_gids.clone())
    });
    user.set_username(None);

    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(Default::default()));
    caps.set_effective(Some(Default::default()));
    caps.set_inheritable(Some(Default::default()));
    caps.set_permitted(Some(Default::default()));
    caps.set_ambient(Some(Default::default()));

    let mut p = Process::default();
    p.set_terminal(Some(req.terminal.tty));
    p.set_console_size(None);
    p.set_user(user);
    p.set_args(Some(args.to_vec()));
    p.set_command_line(None);
    p.set_env(Some(req.env.clone()));
    p.set_cwd(req.workdir.clone().into());
    p.set_capabilities(Some(caps));
    p.set_rlimits(Some(defaults::rlimits()?));
    p.set_no_new_privileges(Some(true));
    p.set_apparmor_profile(None);
    p.set_oom_score_adj(None);
    p.set_selinux_label(None);
    p.set_io_priority(None);
    p.set_scheduler(None);
    p.set_exec_cpu_affinity(None);
    Ok(p)
}

fn linux(
    req: &RunRequest,
    network: &NetworkNamespace,
    cgroups_path: Option<String>,
    seccomp: Option<LinuxSeccomp>,
) -> Linux {
    let mut namespaces = defaults::namespaces();
    match network {
        NetworkNamespace::Own => {}
        NetworkNamespace::Host => namespaces.retain(|n| n.typ() != LinuxNamespaceType::Network),
        NetworkNamespace::Join(path) => {
            for ns in namespaces.iter_mut().filter(|n| n.typ() == LinuxNamespaceType::Network) {
                ns.set_path(Some(path.clone()));
            }
        }
    }
    let mut l = Linux::default();
    l.set_net_devices(None);
    l.set_uid_mappings(None);
    l.set_gid_mappings(None);
    l.set_sysctl(None);
    l.set_resources(Some(resources(req)));
    l.set_cgroups_path(cgroups_path.map(PathBuf::from));
    l.set_namespaces(Some(namespaces));
    l.set_devices(Some(defaults::devices()));
    l.set_seccomp(seccomp);
    l.set_rootfs_propagation(Some(defaults::ROOTFS_PROPAGATION.to_string()));
    l.set_masked_paths(Some(defaults::MASKED_PATHS.iter().map(|p| p.to_string()).collect()));
    l.set_readonly_paths(Some(defaults::READONLY_PATHS.iter().map(|p| p.to_string()).collect()));
    l.set_mount_label(None);
    l.set_intel_rdt(None);
    l.set_memory_policy(None);
    l.set_personality(None);
    l.set_time_offsets(None);
    l
}

fn resources(req: &RunRequest) -> LinuxResources {
    let limits = &req.limits;
    let memory = limits.memory_bytes.map(|bytes| {
        let mut m = LinuxMemory::default();
        m.set_limit(Some(bytes as i64));
        m.set_reservation(None);
        m.set_swap(None);
        m.set_kernel(None);
        m.set_kernel_tcp(None);
        m.set_swappiness(None);
        m.set_disable_oom_killer(None);
        m.set_use_hierarchy(None);
        m.set_check_before_update(None);
        m
    });
    let cpu = limits.cpu_millis.map(|millis| {
        let mut c = LinuxCpu::default();
        c.set_shares(None);
        c.set_quota(Some((millis * CPU_PERIOD_US / 1000) as i64));
        c.set_idle(None);
        c.set_burst(None);
        c.set_period(Some(CPU_PERIOD_US));
        c.set_realtime_runtime(None);
        c.set_realtime_period(None);
        c.set_cpus(None);
        c.set_mems(None);
        c
    });
    let pids = limits.pids.map(|n| {
        let mut p = LinuxPids::default();
        p.set_limit(n as i64);
        p
    });
    let mut r = LinuxResources::default();
    r.set_devices(Some(defaults::device_rules()));
    r.set_memory(memory);
    r.set_cpu(cpu);
    r.set_pids(pids);
    r.set_block_io(None);
    r.set_hugepage_limits(None);
    r.set_network(None);
    r.set_rdma(None::<HashMap<_, _>>);
    r.set_unified(None);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Volume;
    use serde_json::Value;

    fn spec_for(req: &RunRequest, network: NetworkNamespace) -> RuntimeConfig {
        let args = vec!["/bin/hello".to_string()];
        let bin = defaults::bind("/nix/store/g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7-busybox/bin", "/bin", false, false);
        let mounts = MountList { before: vec![bin], ..MountList::default() };
        hardened_spec(SpecInput {
            request: req,
            args: &args,
            mounts,
            network,
            cgroups_path: None,
            seccomp: None,
            hooks: None,
            container_name: None,
        })
        .unwrap()
    }

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
        k.sort_unstable();
        k
    }

    #[test]
    fn every_key_is_one_nucleus_chose() {
        let req = RunRequest::new(Some("x"), None);
        let v = serde_json::to_value(spec_for(&req, NetworkNamespace::Own)).unwrap();
        assert_eq!(keys(&v), ["hostname", "linux", "mounts", "ociVersion", "process", "root"]);
        assert_eq!(
            keys(&v["process"]),
            ["args", "capabilities", "cwd", "env", "noNewPrivileges", "rlimits", "terminal", "user"]
        );
        assert_eq!(keys(&v["process"]["user"]), ["gid", "uid"]);
        assert_eq!(
            keys(&v["linux"]),
            ["devices", "maskedPaths", "namespaces", "readonlyPaths", "resources", "rootfsPropagation"]
        );
        assert_eq!(keys(&v["linux"]["resources"]), ["devices"]);
        assert!(!v.to_string().contains("youki"));
    }

    #[test]
    fn hardened_defaults() {
        let req = RunRequest::new(Some("x"), None);
        let v = serde_json::to_value(spec_for(&req, NetworkNamespace::Own)).unwrap();
        assert_eq!(v["ociVersion"], "1.0.2");
        assert_eq!(v["process"]["noNewPrivileges"], true);
        for set in ["bounding", "effective", "inheritable", "permitted", "ambient"] {
            assert_eq!(v["process"]["capabilities"][set], serde_json::json!([]), "{set}");
        }
        assert_eq!(v["process"]["env"], serde_json::json!([format!("PATH={}", crate::request::DEFAULT_PATH)]));
        assert_eq!(v["root"], serde_json::json!({"path": "rootfs", "readonly": true}));
        assert_eq!(v["hostname"], "nucleus");
        let ns: Vec<&str> =
            v["linux"]["namespaces"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
        assert_eq!(ns, ["pid", "network", "ipc", "uts", "mount"]);
        assert_eq!(v["linux"]["maskedPaths"].as_array().unwrap().len(), 16);
        assert_eq!(v["linux"]["devices"].as_array().unwrap().len(), 5);
        assert_eq!(v["linux"]["devices"][0]["fileMode"], 0o666);
        assert_eq!(v["linux"]["resources"]["devices"][0], serde_json::json!({"allow": false, "access": "rwm"}));
        assert_eq!(v["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
        let tmp = v["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == "/tmp").unwrap();
        for opt in ["nosuid", "nodev", "noexec", "mode=1777", "size=64m"] {
            assert!(tmp["options"].as_array().unwrap().iter().any(|o| o == opt), "{opt}");
        }
    }

    #[test]
    fn limits_network_and_user() {
        let mut req = RunRequest::new(Some("x"), None);
        req.limits.cpu_millis = Some(500);
        req.limits.memory_bytes = Some(64 << 20);
        req.limits.pids = Some(64);
        req.user.uid = 1000;
        req.user.additional_gids = vec![5];
        req.volumes.push(Volume { source: "/srv".into(), destination: "/data".into(), writable: true });
        let v = serde_json::to_value(spec_for(&req, NetworkNamespace::Join("/proc/self/ns/net".into()))).unwrap();
        assert_eq!(v["linux"]["resources"]["cpu"], serde_json::json!({"quota": 50000, "period": 100000}));
        assert_eq!(v["linux"]["resources"]["memory"], serde_json::json!({"limit": 64 << 20}));
        assert_eq!(v["linux"]["resources"]["pids"], serde_json::json!({"limit": 64}));
        assert_eq!(v["process"]["user"], serde_json::json!({"uid": 1000, "gid": 0, "additionalGids": [5]}));
        assert_eq!(v["linux"]["namespaces"][1], serde_json::json!({"type": "network", "path": "/proc/self/ns/net"}));
        let host = serde_json::to_value(spec_for(&req, NetworkNamespace::Host)).unwrap();
        assert!(host["linux"]["namespaces"].as_array().unwrap().iter().all(|n| n["type"] != "network"));
    }
}
