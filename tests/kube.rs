//! `nucleus kube`: manifests that validate against Kubernetes' own schemas
//! (kubernetes-validate, which scripts/deps.sh installs) and say what
//! `nucleus run` would enforce.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::{json, Value};

/// Where scripts/deps.sh installs kubernetes-validate (and PyYAML with it).
fn python_path() -> PathBuf {
    PathBuf::from(std::env::var("NUCLEUS_TEST_PYTHONPATH").unwrap_or_else(|_| "/opt/nucleus-test/python".into()))
}

fn python() -> Command {
    let path = python_path();
    assert!(
        path.join("kubernetes_validate").is_dir(),
        "kubernetes-validate is not in {}: run scripts/deps.sh",
        path.display()
    );
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.env("PYTHONPATH", path);
    cmd
}

/// `nucleus kube OPTIONS hello -- COMMAND…`: the YAML, checked against the
/// Kubernetes schemas (strictly: no unknown fields), and its documents.
fn kube(w: &World, options: &[&str], command: &[&str]) -> (String, Vec<Value>) {
    let closure = hello();
    let mut args = vec!["kube"];
    args.extend_from_slice(options);
    args.extend_from_slice(&[&closure, "--"]);
    args.extend_from_slice(command);
    let text = ok(&w.run(&args));
    let file = w.path("manifest.yaml");
    std::fs::write(&file, &text).unwrap();
    let out = python().args(["-m", "kubernetes_validate", "--strict", "--quiet"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "kubernetes-validate refused:\n{}\n{}{text}", stdout(&out), stderr(&out));
    let script = "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))";
    let docs = python().args(["-c", script]).arg(&file).output().unwrap();
    let docs: Value = serde_json::from_str(&ok(&docs)).unwrap();
    (text, docs.as_array().unwrap().clone())
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind} in {docs:?}"))
}

fn pod_spec(workload: &Value) -> &Value {
    if workload["kind"] == "Pod" {
        &workload["spec"]
    } else {
        &workload["spec"]["template"]["spec"]
    }
}

#[test]
fn a_pod_is_hardened_as_a_run_and_names_the_image_nucleus_writes() {
    let w = World::new();
    let (text, docs) = kube(&w, &[], &["/bin/hello"]);
    assert!(text.starts_with("# nucleus kube: "), "{text}");
    assert!(text.contains("containerd"), "the node setup is said: {text}");
    let class = find(&docs, "RuntimeClass");
    assert_eq!((&class["metadata"]["name"], &class["handler"]), (&json!("gvisor"), &json!("runsc")));
    let pod = find(&docs, "Pod");
    let spec = pod_spec(pod);
    assert_eq!(spec["runtimeClassName"], "gvisor");
    assert_eq!(spec["restartPolicy"], "Never");
    assert_eq!(spec["automountServiceAccountToken"], false);
    assert_eq!(spec["enableServiceLinks"], false);
    assert_eq!(spec["securityContext"]["seccompProfile"], json!({ "type": "RuntimeDefault" }));
    assert_eq!(spec["securityContext"]["runAsUser"], 0);
    assert!(spec["securityContext"].get("runAsNonRoot").is_none(), "uid 0 cannot claim runAsNonRoot");
    let container = &spec["containers"][0];
    assert_eq!(container["command"], json!(["/bin/hello"]));
    assert_eq!(
        container["securityContext"],
        json!({
            "readOnlyRootFilesystem": true,
            "allowPrivilegeEscalation": false,
            "privileged": false,
            "capabilities": { "drop": ["ALL"] },
        })
    );
    let tmp = spec["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "tmp").unwrap();
    assert_eq!(tmp["emptyDir"], json!({ "medium": "Memory", "sizeLimit": "64Mi" }));
    assert!(container["volumeMounts"].as_array().unwrap().contains(&json!({ "name": "tmp", "mountPath": "/tmp" })));
    // --network none (the default): a policy that denies all traffic.
    let policy = find(&docs, "NetworkPolicy");
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));

    // The default image is the name `nucleus image` gives the same image.
    let layout = w.path("layout");
    let closure = hello();
    let digest = ok(&w.run(&["image", "--out", layout.to_str().unwrap(), &closure, "--", "/bin/hello"]));
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(container["image"], index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]);
    assert_eq!(pod["metadata"]["annotations"]["nucleus/image-digest"], digest.trim());
}

#[test]
fn a_job_carries_the_deadline_user_limits_volumes_and_seccomp_profile() {
    let w = World::new();
    let profile_file = w.path("profile.json");
    let options = [
        "--kind",
        "job",
        "--timeout",
        "600",
        "--shards",
        "4",
        "-u",
        "1000:1000",
        "--group-add",
        "27",
        "--memory",
        "512M",
        "--cpus",
        "1.5",
        "-e",
        "SUITE=unit",
        "-v",
        "/srv/results:/results:rw",
        "--context",
        "/srv/src",
        "--tmpfs",
        "/cache:32M",
        "--seccomp-out",
        profile_file.to_str().unwrap(),
    ];
    let (_, docs) = kube(&w, &options, &["/bin/sh", "-c", "echo \"shard $JOB_COMPLETION_INDEX\""]);
    let job = find(&docs, "Job");
    assert_eq!(job["spec"]["activeDeadlineSeconds"], 600);
    assert_eq!(job["spec"]["backoffLimit"], 0);
    assert_eq!((&job["spec"]["completions"], &job["spec"]["completionMode"]), (&json!(4), &json!("Indexed")));
    let spec = pod_spec(job);
    assert_eq!(spec["restartPolicy"], "Never");
    let security = &spec["securityContext"];
    assert_eq!((&security["runAsUser"], &security["runAsGroup"]), (&json!(1000), &json!(1000)));
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["supplementalGroups"], json!([27]));
    let container = &spec["containers"][0];
    let limits = json!({ "memory": "512Mi", "cpu": "1500m" });
    assert_eq!(container["resources"], json!({ "limits": limits, "requests": limits }));
    assert!(container["env"].as_array().unwrap().contains(&json!({ "name": "SUITE", "value": "unit" })));
    let volumes = spec["volumes"].as_array().unwrap();
    let claim = volumes.iter().find(|v| v["name"] == "volume-0").unwrap();
    assert_eq!(claim["persistentVolumeClaim"], json!({ "claimName": "hello-volume-0", "readOnly": false }));
    let context = volumes.iter().find(|v| v["name"] == "context").unwrap();
    assert_eq!(context["persistentVolumeClaim"]["readOnly"], true);
    let cache = volumes.iter().find(|v| v["name"] == "tmpfs-0").unwrap();
    assert_eq!(cache["emptyDir"], json!({ "medium": "Memory", "sizeLimit": "32Mi" }));
    let mounts = container["volumeMounts"].as_array().unwrap();
    assert!(mounts.contains(&json!({ "name": "volume-0", "mountPath": "/results", "readOnly": false })));
    assert!(mounts.contains(&json!({ "name": "context", "mountPath": "/context", "readOnly": true })));

    // A writable volume brings nucleus's setuid guard: a Localhost profile,
    // written for the nodes, named by its content.
    let seccomp = &security["seccompProfile"];
    assert_eq!(seccomp["type"], "Localhost");
    let name = seccomp["localhostProfile"].as_str().unwrap();
    let profile = std::fs::read(&profile_file).unwrap();
    let hash = sha256_hex(&profile_file);
    assert_eq!(name, format!("nucleus/{}.json", &hash[..16]));
    let profile: Value = serde_json::from_slice(&profile).unwrap();
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ALLOW");
    assert!(profile["syscalls"].as_array().unwrap().iter().any(|r| r["names"].to_string().contains("chmod")));
}

/// The sha256 of a file, in hex, by sha256sum(1).
fn sha256_hex(file: &Path) -> String {
    let out = Command::new("sha256sum").arg(file).output().unwrap();
    ok(&out).split_whitespace().next().unwrap().to_string()
}

#[test]
fn a_deployment_publishes_its_ports_through_a_service() {
    let w = World::new();
    let data = w.path("data");
    let volume = format!("{}:/data", data.display());
    let options = [
        "--kind",
        "deployment",
        "--image",
        "registry.example:5000/web:1",
        "--name",
        "web",
        "-p",
        "8080:80",
        "--volumes-as",
        "host-path",
        "-v",
        &volume,
    ];
    let (_, docs) = kube(&w, &options, &["/bin/httpd", "-f", "-p", "80"]);
    let deployment = find(&docs, "Deployment");
    assert_eq!(deployment["metadata"]["name"], "web");
    assert_eq!(deployment["spec"]["selector"]["matchLabels"], json!({ "app.kubernetes.io/name": "web" }));
    let spec = pod_spec(deployment);
    assert_eq!(spec["restartPolicy"], "Always");
    let container = &spec["containers"][0];
    assert_eq!(container["image"], "registry.example:5000/web:1");
    assert_eq!(container["ports"], json!([{ "containerPort": 80, "protocol": "TCP" }]));
    let host = spec["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "volume-0").unwrap();
    assert_eq!(host["hostPath"]["path"], data.to_str().unwrap());
    let service = find(&docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], 80);
    assert!(docs.iter().all(|d| d["kind"] != "NetworkPolicy"), "-p means --network sandbox");
}

#[test]
fn what_a_manifest_cannot_say_is_refused() {
    let w = World::new();
    let closure = hello();
    let hooks = w.path("hooks.json");
    std::fs::write(&hooks, "{}").unwrap();
    let profile_file = w.path("profile.json");
    for options in [
        &["--kind", "deployment", "--timeout", "60"][..],
        &["--shards", "2"],
        &["--name", "Not_A_Name"],
        &["--image", "has space"],
        &["--hooks", hooks.to_str().unwrap()],
        &["--rootless"],
        &["--seccomp-out", profile_file.to_str().unwrap()],
        &["--kind", "daemonset"],
    ] {
        let mut args = vec!["kube"];
        args.extend_from_slice(options);
        args.extend_from_slice(&[&closure, "--", "/bin/hello"]);
        assert_refused(&w.run(&args));
    }
    assert!(!profile_file.exists(), "no profile is needed without --seccomp-profile or a writable volume");
}
