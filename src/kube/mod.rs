//! RunRequest + image reference → Kubernetes manifest: the sandbox
//! `nucleus run` would make, said in Kubernetes' terms.
//!
//! | nucleus                          | Kubernetes                                                   |
//! |----------------------------------|--------------------------------------------------------------|
//! | gVisor (runsc)                   | `runtimeClassName: gvisor` (and the RuntimeClass object)     |
//! | read-only root                   | `readOnlyRootFilesystem: true`                               |
//! | no capabilities, noNewPrivileges | `capabilities.drop: [ALL]`, `allowPrivilegeEscalation: false`|
//! | `-u UID:GID`                     | `runAsUser`/`runAsGroup`, `runAsNonRoot` when UID is not 0   |
//! | seccomp profile                  | `Localhost` profile, else `RuntimeDefault` (see [`seccomp`]) |
//! | `/tmp`, `/dev/shm` tmpfs (64 MiB)| `emptyDir` with `medium: Memory` and a `sizeLimit`           |
//! | `--tmpfs DST[:SIZE]`             | the same, at DST                                             |
//! | `--memory`, `--cpus`             | limits, and equal requests (Guaranteed QoS)                  |
//! | `-v SRC:DST[:rw]`, `--context`   | a PVC (or, on request, hostPath) placeholder the user fills  |
//! | `-p HOSTPORT:PORT`               | `containerPort: PORT`; a Deployment's Service on HOSTPORT    |
//! | `--network none`                 | a NetworkPolicy that denies all traffic                      |
//! | no host environment              | `enableServiceLinks: false`, no service account token        |
//! | `--timeout`                      | `activeDeadlineSeconds` (a Job's or a Pod's)                 |

mod yaml;

use serde_json::{json, Map, Value};

use crate::request::{Network, RunRequest};
use crate::{Error, Result};

/// The RuntimeClass the workloads ask for, and the containerd handler it
/// names.
pub const RUNTIME_CLASS: &str = "gvisor";
pub const RUNTIME_HANDLER: &str = "runsc";
/// Where nucleus expects its Localhost seccomp profiles, below the
/// kubelet's seccomp directory.
pub const SECCOMP_DIR: &str = "nucleus";
/// nucleus's own `/tmp` and `/dev/shm` are 64 MiB tmpfs.
const SCRATCH_SIZE: &str = "64Mi";
const NAME_LABEL: &str = "app.kubernetes.io/name";

/// Which object runs the pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkloadKind {
    /// One pod, never restarted.
    Pod,
    /// A Job: runs to completion (test shards, batch), `--timeout` bounds it.
    Job,
    /// A Deployment: a service kept running.
    Deployment,
}

/// How a `-v` volume is shown to the pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum VolumeSource {
    /// A PersistentVolumeClaim named `<name>-<volume>`, to create or rename.
    Claim,
    /// The node's path SRC (hostPath): only for single-node or test clusters.
    HostPath,
}

pub struct KubeInput<'a> {
    pub request: &'a RunRequest,
    pub command: &'a [String],
    /// A DNS label, from [`parse_name`].
    pub name: &'a str,
    pub image: &'a str,
    pub kind: WorkloadKind,
    pub volume_source: VolumeSource,
    /// Indexed completions for a Job.
    pub shards: Option<u32>,
    pub bundle_digest: &'a str,
    pub image_digest: Option<&'a str>,
}

/// The manifest text, and what the user should know about it.
pub struct Manifest {
    pub text: String,
    /// The Localhost seccomp profile the pod refers to: its file name below
    /// the kubelet's seccomp directory, and its contents.
    pub seccomp_profile: Option<(String, Vec<u8>)>,
    pub warnings: Vec<String>,
}

pub fn manifest(input: &KubeInput<'_>) -> Result<Manifest> {
    check(input)?;
    let req = input.request;
    let mut warnings = Vec::new();
    let seccomp_profile = seccomp::localhost_profile(req)?;
    let pod = pod_spec(input, seccomp_profile.as_ref().map(|(name, _)| name.as_str()), &mut warnings);
    let labels = json!({ NAME_LABEL: input.name });
    let mut annotations = Map::new();
    annotations.insert("nucleus/bundle-digest".into(), json!(input.bundle_digest));
    if let Some(digest) = input.image_digest {
        annotations.insert("nucleus/image-digest".into(), json!(digest));
    }
    let pod_metadata = json!({ "labels": labels, "annotations": annotations });
    let workload = match input.kind {
        WorkloadKind::Pod => json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": { "name": input.name, "labels": labels, "annotations": annotations },
            "spec": pod,
        }),
        WorkloadKind::Job => {
            let mut spec = json!({ "backoffLimit": 0, "template": { "metadata": pod_metadata, "spec": pod } });
            if let Some(timeout) = req.timeout {
                spec["activeDeadlineSeconds"] = json!(timeout.as_secs());
            }
            if let Some(shards) = input.shards {
                spec["completions"] = json!(shards);
                spec["parallelism"] = json!(shards);
                spec["completionMode"] = json!("Indexed");
            }
            json!({ "apiVersion": "batch/v1", "kind": "Job", "metadata": { "name": input.name, "labels": labels }, "spec": spec })
        }
        WorkloadKind::Deployment => json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": { "name": input.name, "labels": labels },
            "spec": {
                "replicas": 1,
                "selector": { "matchLabels": labels },
                "template": { "metadata": pod_metadata, "spec": pod },
            },
        }),
    };
    let mut documents = vec![runtime_class(), workload];
    if req.network == Network::None {
        documents.push(deny_all_policy(input.name));
    }
    if input.kind == WorkloadKind::Deployment && !req.publish.is_empty() {
        documents.push(service(input));
    }
    if req.limits.pids.is_some() {
        warnings.push("--pids has no per-pod field in Kubernetes; the kubelet's podPidsLimit sets it per node".into());
    }
    if req.network == Network::Host {
        warnings.push("--network host becomes hostNetwork: true: the pod shares the node's network stack".into());
    }
    let comments = header(input, seccomp_profile.as_ref().map(|(name, _)| name.as_str()));
    Ok(Manifest { text: yaml::stream(&comments, &documents), seccomp_profile, warnings })
}

/// What the manifest cannot say, refused with the reason.
fn check(input: &KubeInput<'_>) -> Result<()> {
    if input.kind == WorkloadKind::Deployment && input.request.timeout.is_some() {
        return Err(Error::invalid(
            "--timeout",
            "a Deployment runs until stopped; use --kind job (or pod) for a deadline",
        ));
    }
    if input.shards.is_some() && input.kind != WorkloadKind::Job {
        return Err(Error::invalid("--shards", "applies to --kind job"));
    }
    Ok(())
}

/// A Kubernetes object name (a DNS label, 1 to 52 characters so that a
/// Job's or Deployment's pods can add their suffixes), lowercase letters,
/// digits and `-`, starting with a letter (a Service needs that).
pub fn parse_name(text: &str) -> Result<String> {
    let valid = (1..=52).contains(&text.len())
        && text.starts_with(|c: char| c.is_ascii_lowercase())
        && !text.ends_with('-')
        && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(text.to_string())
    } else {
        Err(Error::invalid(
            "--name",
            format!(
                "'{}' is not a Kubernetes name: 1 to 52 lowercase letters, digits and '-', starting with a letter",
                crate::error::printable(text)
            ),
        ))
    }
}

/// A name for the objects when none is given: from the package name.
pub fn default_name(package: &str) -> String {
    let mut name: String = crate::image::oci::repository_name(package).replace(['.', '_'], "-");
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name = format!("app-{name}");
    }
    name.truncate(52);
    name.trim_end_matches('-').to_string()
}

fn header(input: &KubeInput<'_>, seccomp: Option<&str>) -> Vec<String> {
    let kind = match input.kind {
        WorkloadKind::Pod => "Pod",
        WorkloadKind::Job => "Job",
        WorkloadKind::Deployment => "Deployment",
    };
    let mut lines = vec![
        format!("nucleus kube: {} as a {kind}, image {}", input.name, input.image),
        format!("bundle digest {}", input.bundle_digest),
        String::new(),
        format!("Assumes nodes whose containerd runs gVisor as the handler '{RUNTIME_HANDLER}': runsc and"),
        "containerd-shim-runsc-v1 installed, and in /etc/containerd/config.toml".into(),
        "  [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runsc]".into(),
        "    runtime_type = \"io.containerd.runsc.v1\"".into(),
        "For the pod's seccomp profile to apply inside gVisor, runsc needs oci-seccomp (runsc.toml:".into(),
        "  [runsc_config] oci-seccomp = \"true\", named by the handler's ConfigPath option).".into(),
    ];
    match seccomp {
        Some(name) => lines.push(format!(
            "Localhost seccomp profile: install it on every node as <kubelet root>/seccomp/{name} (nucleus kube --seccomp-out FILE writes it)."
        )),
        None => lines.push("seccomp: RuntimeDefault, the runtime's own profile (gVisor's Sentry filters the host's side regardless).".into()),
    }
    if !input.request.volumes.is_empty() || input.request.context.is_some() {
        lines.push(match input.volume_source {
            VolumeSource::Claim => {
                "Volumes are PersistentVolumeClaims named <name>-<volume>: create them or point claimName elsewhere."
                    .into()
            }
            VolumeSource::HostPath => {
                "Volumes are hostPath: the node's own path, as on this host (single-node and test clusters only)."
                    .into()
            }
        });
    }
    if input.request.network == Network::None {
        lines
            .push("--network none: a NetworkPolicy denies all traffic (it needs a CNI that enforces policies).".into());
    }
    lines
}

fn runtime_class() -> Value {
    json!({
        "apiVersion": "node.k8s.io/v1",
        "kind": "RuntimeClass",
        "metadata": { "name": RUNTIME_CLASS },
        "handler": RUNTIME_HANDLER,
    })
}

fn deny_all_policy(name: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": { "name": format!("{name}-no-network") },
        "spec": {
            "podSelector": { "matchLabels": { NAME_LABEL: name } },
            "policyTypes": ["Ingress", "Egress"],
        },
    })
}

fn service(input: &KubeInput<'_>) -> Value {
    let ports: Vec<Value> = input
        .request
        .publish
        .iter()
        .map(|p| json!({ "name": format!("tcp-{}", p.host_port), "port": p.host_port, "targetPort": p.port, "protocol": "TCP" }))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": input.name },
        "spec": { "selector": { NAME_LABEL: input.name }, "ports": ports },
    })
}

fn pod_spec(input: &KubeInput<'_>, seccomp: Option<&str>, warnings: &mut Vec<String>) -> Value {
    let req = input.request;
    let mut security = json!({
        "runAsUser": req.user.uid,
        "runAsGroup": req.user.gid,
        "seccompProfile": match seccomp {
            Some(name) => json!({ "type": "Localhost", "localhostProfile": name }),
            None => json!({ "type": "RuntimeDefault" }),
        },
    });
    if req.user.uid != 0 {
        security["runAsNonRoot"] = json!(true);
    }
    if !req.user.additional_gids.is_empty() {
        security["supplementalGroups"] = json!(req.user.additional_gids);
    }
    let (volumes, mounts) = volumes(input);
    let mut container = json!({
        "name": input.name,
        "image": input.image,
        "imagePullPolicy": "IfNotPresent",
        "command": input.command,
        "workingDir": req.workdir,
        "env": req.env.iter().map(|e| {
            let (name, value) = e.split_once('=').unwrap_or((e, ""));
            json!({ "name": name, "value": value })
        }).collect::<Vec<_>>(),
        "securityContext": {
            "readOnlyRootFilesystem": true,
            "allowPrivilegeEscalation": false,
            "privileged": false,
            "capabilities": { "drop": ["ALL"] },
        },
        "volumeMounts": mounts,
    });
    if let Some(resources) = resources(req) {
        container["resources"] = resources;
    }
    if !req.publish.is_empty() {
        container["ports"] = json!(req
            .publish
            .iter()
            .map(|p| json!({ "containerPort": p.port, "protocol": "TCP" }))
            .collect::<Vec<_>>());
    }
    let mut spec = json!({
        "runtimeClassName": RUNTIME_CLASS,
        "automountServiceAccountToken": false,
        "enableServiceLinks": false,
        "restartPolicy": if input.kind == WorkloadKind::Deployment { "Always" } else { "Never" },
        "securityContext": security,
        "containers": [container],
        "volumes": volumes,
    });
    if is_dns_label(&req.hostname) {
        spec["hostname"] = json!(req.hostname);
    } else {
        warnings.push(format!("hostname '{}' is not a DNS label; the pod keeps its own", req.hostname));
    }
    if req.network == Network::Host {
        spec["hostNetwork"] = json!(true);
    }
    if input.kind == WorkloadKind::Pod {
        if let Some(timeout) = req.timeout {
            spec["activeDeadlineSeconds"] = json!(timeout.as_secs());
        }
    }
    spec
}

fn is_dns_label(text: &str) -> bool {
    (1..=63).contains(&text.len())
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text.ends_with(|c: char| c.is_ascii_alphanumeric())
        && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The pod's volumes and the container's mounts: scratch space first, then
/// `--tmpfs`, then `-v` volumes and `--context`.
fn volumes(input: &KubeInput<'_>) -> (Vec<Value>, Vec<Value>) {
    let req = input.request;
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    let memory = |name: &str, size: Option<String>| {
        let mut empty_dir = json!({ "medium": "Memory" });
        if let Some(size) = size {
            empty_dir["sizeLimit"] = json!(size);
        }
        json!({ "name": name, "emptyDir": empty_dir })
    };
    let scratch = [("tmp", "/tmp"), ("dshm", "/dev/shm")];
    for (name, path) in scratch {
        if req.tmpfs.iter().any(|t| t.destination == path) {
            continue;
        }
        volumes.push(memory(name, Some(SCRATCH_SIZE.into())));
        mounts.push(json!({ "name": name, "mountPath": path }));
    }
    for (i, t) in req.tmpfs.iter().enumerate() {
        let name = format!("tmpfs-{i}");
        volumes.push(memory(&name, t.size_bytes.map(quantity_bytes)));
        mounts.push(json!({ "name": name, "mountPath": t.destination }));
    }
    let mut host = |name: String, source: &std::path::Path, destination: &str, writable: bool| {
        let volume = match input.volume_source {
            VolumeSource::Claim => json!({
                "name": name,
                "persistentVolumeClaim": { "claimName": format!("{}-{name}", input.name), "readOnly": !writable },
            }),
            VolumeSource::HostPath => json!({ "name": name, "hostPath": { "path": source.display().to_string() } }),
        };
        volumes.push(volume);
        mounts.push(json!({ "name": name, "mountPath": destination, "readOnly": !writable }));
    };
    for (i, v) in req.volumes.iter().enumerate() {
        host(format!("volume-{i}"), &v.source, &v.destination, v.writable);
    }
    if let Some(context) = &req.context {
        host("context".into(), context, crate::policy::CONTEXT_DIR, false);
    }
    (volumes, mounts)
}

/// Limits, and requests equal to them so that the pod is in the
/// Guaranteed QoS class, as a nucleus run's cgroup limits are hard limits.
fn resources(req: &RunRequest) -> Option<Value> {
    let mut limits = Map::new();
    if let Some(bytes) = req.limits.memory_bytes {
        limits.insert("memory".into(), json!(quantity_bytes(bytes)));
    }
    if let Some(millis) = req.limits.cpu_millis {
        let cpu = if millis % 1000 == 0 { (millis / 1000).to_string() } else { format!("{millis}m") };
        limits.insert("cpu".into(), json!(cpu));
    }
    if limits.is_empty() {
        return None;
    }
    Some(json!({ "limits": limits, "requests": limits }))
}

/// Bytes as a Kubernetes quantity, in the largest binary unit that is exact.
fn quantity_bytes(bytes: u64) -> String {
    for (unit, size) in [("Ti", 1u64 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if bytes >= size && bytes % size == 0 {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

/// The seccomp profile in Kubernetes terms.
///
/// nucleus hands runsc a profile only when the user gives one or a volume is
/// writable (the setuid guard, see [`crate::policy::seccomp`]). Kubernetes
/// can only point at a profile stored on each node (`Localhost`, below the
/// kubelet's seccomp directory), so that same effective profile is named by
/// its content hash and written out for the user to install. Otherwise the
/// pod asks for `RuntimeDefault`: the runtime's default profile, which the
/// restricted Pod Security Standard requires. Under gVisor a profile in the
/// OCI spec is enforced by the Sentry on the workload's system calls only
/// when runsc runs with `oci-seccomp`; either way the host is protected by
/// gVisor itself and by the Sentry's own host-side filters.
pub mod seccomp {
    use super::SECCOMP_DIR;
    use crate::policy::seccomp::effective_profile;
    use crate::request::RunRequest;
    use crate::{Error, Result};

    /// The profile's name below the kubelet's seccomp directory and its
    /// bytes, when the pod needs one of nucleus's.
    pub fn localhost_profile(req: &RunRequest) -> Result<Option<(String, Vec<u8>)>> {
        let Some(profile) = effective_profile(req.seccomp.as_ref(), req.has_writable_volume()) else { return Ok(None) };
        let value = serde_json::to_value(&profile)
            .map_err(|e| Error::Plan { reason: format!("cannot serialise the seccomp profile: {e}") })?;
        let text = crate::bundle::canonical::to_canonical_string(&value)
            .map_err(|why| Error::Plan { reason: format!("cannot serialise the seccomp profile: {why}") })?;
        let hash = crate::policy::hex(&<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()));
        Ok(Some((format!("{SECCOMP_DIR}/{}.json", &hash[..16]), text.into_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_use_exact_binary_units() {
        assert_eq!(quantity_bytes(64 << 20), "64Mi");
        assert_eq!(quantity_bytes(3 << 30), "3Gi");
        assert_eq!(quantity_bytes(1536 << 10), "1536Ki");
        assert_eq!(quantity_bytes(1000), "1000");
    }

    #[test]
    fn names_are_dns_labels() {
        assert!(parse_name("hello-1").is_ok());
        for bad in ["", "Hello", "1app", "app-", "a_b", &"a".repeat(53)] {
            assert!(matches!(parse_name(bad), Err(Error::InvalidArgument { .. })), "{bad:?}");
        }
        assert_eq!(default_name("hello"), "hello");
        assert_eq!(default_name("7zip_tool"), "app-7zip-tool");
    }
}
