//! `nucleus image` and `nucleus verify` of images, checked with the real
//! tools: skopeo reads them, umoci unpacks them, podman loads them and runs
//! them with runsc.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

/// `nucleus image --out OUT OPTIONS CLOSURE -- COMMAND…`; returns the digest.
fn image(w: &World, out: &Path, options: &[&str], closure: &str, command: &[&str]) -> String {
    let mut args = vec!["image", "--out", out.to_str().unwrap()];
    args.extend_from_slice(options);
    args.extend_from_slice(&[closure, "--"]);
    args.extend_from_slice(command);
    let digest = ok(&w.run(&args)).trim().to_string();
    assert!(is_digest(&digest), "{digest}");
    digest
}

fn tool(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): scripts/deps.sh installs it"))
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&ok(out)).unwrap()
}

/// The ref name in an image layout's index.json.
fn reference(layout: &Path) -> String {
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"].as_str().unwrap().to_string()
}

fn layer_digests(layout: &Path) -> Vec<String> {
    let manifest = json(&tool("skopeo", &["inspect", "--raw", &format!("oci:{}", layout.display())]));
    manifest["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()).collect()
}

#[test]
fn an_image_passes_skopeo_and_unpacks_with_umoci() {
    let w = World::new();
    let layout = w.path("layout");
    let options = ["-u", "1000:1000", "-e", "GREETING=hi", "-w", "/tmp", "-p", "8080:80"];
    let digest = image(&w, &layout, &options, &hello(), &["/bin/hello"]);
    let target = format!("oci:{}", layout.display());

    let inspected = json(&tool("skopeo", &["inspect", &target]));
    assert_eq!(inspected["Digest"], digest.as_str());
    assert_eq!(inspected["Os"], "linux");
    let config = json(&tool("skopeo", &["inspect", "--config", &target]));
    assert_eq!(config["config"]["User"], "1000:1000");
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["/bin/hello"]));
    assert_eq!(config["config"]["WorkingDir"], "/tmp");
    assert!(config["config"]["Env"].as_array().unwrap().iter().any(|e| e == "GREETING=hi"));
    assert!(config["config"]["ExposedPorts"]["80/tcp"].is_object());
    // The bundle digest recorded is the one `nucleus bundle` prints for the
    // same installable and options.
    let bundle_dir = w.path("bundle");
    let mut args = vec!["bundle", "--out", bundle_dir.to_str().unwrap()];
    args.extend_from_slice(&options);
    let hello_closure = hello();
    args.extend_from_slice(&[&hello_closure, "--", "/bin/hello"]);
    let bundle_digest = ok(&w.run(&args)).trim().to_string();
    assert_eq!(config["config"]["Labels"]["nucleus.bundle-digest"], bundle_digest.as_str());

    // Every store path of the closure, with Nix's narHash, in the layers.
    let manifest = json(&tool("skopeo", &["inspect", "--raw", &target]));
    assert_eq!(manifest["annotations"]["nucleus.bundle-digest"], bundle_digest.as_str());
    let mut recorded = Vec::new();
    for layer in manifest["layers"].as_array().unwrap() {
        assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar");
        if let Some(text) = layer["annotations"]["nucleus.nar-hashes"].as_str() {
            let hashes: std::collections::BTreeMap<String, String> = serde_json::from_str(text).unwrap();
            recorded.extend(hashes);
        }
    }
    recorded.sort();
    let paths: Vec<String> = recorded.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(paths, requisites(&closure("hello")));
    for (path, hash) in &recorded {
        assert_eq!(*hash, nix_hash(Path::new(path), None), "{path}");
    }

    // umoci unpacks it; each store path unpacked hashes as in the store.
    let unpacked = w.path("unpacked");
    let image_ref = format!("{}:{}", layout.display(), reference(&layout));
    ok(&tool("umoci", &["unpack", "--image", &image_ref, unpacked.to_str().unwrap()]));
    let rootfs = unpacked.join("rootfs");
    for (path, hash) in &recorded {
        let inside = rootfs.join(path.trim_start_matches('/'));
        assert_eq!(ok(&w.run(&["hash", inside.to_str().unwrap()])).trim(), hash, "{path}");
    }
    let bin = std::fs::read_link(rootfs.join("bin")).unwrap();
    assert_eq!(bin, closure("hello").join("bin"));
    let runtime: Value = serde_json::from_slice(&std::fs::read(unpacked.join("config.json")).unwrap()).unwrap();
    assert_eq!(runtime["process"]["user"]["uid"], 1000);
}

/// Loads `archive` and runs it (its own command, then `extra` if given),
/// with podman and runsc, in a private mount namespace: podman's storage,
/// run and temporary directories are under `dir`, and the host paths that
/// podman 4.3 writes regardless of its options (its blob-info cache under
/// /var/lib/containers, archive extraction under /var/tmp) are covered by
/// tmpfs, so the host's container storage is never touched.
fn podman_run(dir: &Path, archive: &Path, extra: &[&str]) -> Output {
    const SCRIPT: &str = r#"set -eu
dir=$1; archive=$2; shift 2
if [ -d /var/lib/containers ]; then mount -t tmpfs tmpfs /var/lib/containers; else mount -t tmpfs tmpfs /var/lib; fi
mount -t tmpfs tmpfs /var/tmp
export TMPDIR="$dir/tmp"; mkdir -p "$TMPDIR"
podman() {
  command podman --root "$dir/root" --runroot "$dir/runroot" --tmpdir "$dir/tmp" --volumepath "$dir/volumes" \
    --network-config-dir "$dir/net" --storage-driver vfs --cgroup-manager cgroupfs --events-backend file \
    --runtime "$(command -v runsc)" --runtime-flag network=none --runtime-flag ignore-cgroups \
    --runtime-flag root="$dir/runsc" "$@"
}
ref=$(podman load -q -i "$archive" | sed -n 's/^Loaded image: //p')
echo "loaded $ref" >&2
podman run --rm --network none "$ref"
if [ $# -gt 0 ]; then podman run --rm --network none "$ref" "$@"; fi
"#;
    assert!(which("podman").is_some(), "podman not found: scripts/deps.sh installs it");
    Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", SCRIPT, "sh"])
        .arg(dir)
        .arg(archive)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn podman_loads_the_archive_and_runs_it_with_runsc() {
    let w = World::new();
    let archive = w.path("hello.tar");
    let script = "echo \"$GREETING from $(id -u):$(id -g) in $(pwd)\"";
    // The working directory is part of the image, as of a bundle's rootfs.
    let options = ["-u", "1000:1000", "-e", "GREETING=hi", "-w", "/srv/work"];
    image(&w, &archive, &options, &hello(), &["/bin/sh", "-c", script]);
    let out = podman_run(&w.path("podman"), &archive, &["/bin/hello"]);
    assert_eq!(ok(&out), "hi from 1000:1000 in /srv/work\nhello from nix\n", "stderr: {}", stderr(&out));
    assert!(stderr(&out).contains("loaded localhost/hello:"), "{}", stderr(&out));
}

#[test]
fn the_same_closure_and_options_give_the_same_image_anywhere_at_any_time() {
    let w = World::new();
    let closure = hello();
    let first = image(&w, &w.path("one.tar"), &["-e", "A=1"], &closure, &["/bin/hello"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let elsewhere = World::new();
    std::fs::create_dir_all(elsewhere.path("deeper/than/that")).unwrap();
    let second = image(
        &elsewhere,
        &elsewhere.path("deeper/than/that").join("two.tar"),
        &["-e", "A=1"],
        &closure,
        &["/bin/hello"],
    );
    let layout = image(&elsewhere, &elsewhere.path("layout"), &["-e", "A=1"], &closure, &["/bin/hello"]);
    assert_eq!(first, second);
    assert_eq!(first, layout, "a layout and an archive of the same image have one digest");
    let bytes = |p: &Path| std::fs::read(p).unwrap();
    assert!(bytes(&w.path("one.tar")) == bytes(&elsewhere.path("deeper/than/that/two.tar")), "archives differ");
    // What the workload would see changes the digest.
    let other = image(&w, &w.path("three.tar"), &["-e", "A=2"], &closure, &["/bin/hello"]);
    assert_ne!(first, other);
}

#[test]
fn verify_rehashes_layers_and_store_paths() {
    let w = World::new();
    let layout = w.path("layout");
    let archive = w.path("image.tar");
    let digest = image(&w, &layout, &[], &hello(), &["/bin/hello"]);
    image(&w, &archive, &[], &hello(), &["/bin/hello"]);
    assert_eq!(ok(&w.run(&["verify", layout.to_str().unwrap()])).trim(), format!("ok {digest}"));
    assert_eq!(ok(&w.run(&["verify", archive.to_str().unwrap()])).trim(), format!("ok {digest}"));

    // Change one byte of /bin/hello's script inside its layer.
    let blobs = layout.join("blobs/sha256");
    let needle = b"hello from nix";
    let (blob, mut bytes) = entries(&blobs)
        .into_iter()
        .map(|name| blobs.join(name))
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .find(|(_, b)| b.windows(needle.len()).any(|win| win == needle))
        .expect("a layer holds the hello script");
    let at = bytes.windows(needle.len()).position(|win| win == needle).unwrap();
    bytes[at] = b'j';
    std::fs::write(&blob, &bytes).unwrap();
    let out = w.run(&["verify", layout.to_str().unwrap()]);
    assert_status(&out, 1);
    let report = stdout(&out);
    let hello_path = hello();
    assert!(report.lines().all(|l| l.starts_with("differs: ")), "{report}");
    assert!(report.contains("its bytes hash to"), "the layer digest: {report}");
    assert!(report.contains(&format!("{hello_path}: the layer's entries hash to")), "the narHash: {report}");
}

#[test]
fn a_wide_closure_fits_the_layer_budget_and_related_closures_share_layers() {
    let w = World::new();
    let a = closure_with("wide", &[("width", "150")]);
    let b = closure_with("wide", &[("width", "151")]);
    let (la, lb) = (w.path("a"), w.path("b"));
    image(&w, &la, &[], a.to_str().unwrap(), &["/bin/true"]);
    image(&w, &lb, &[], b.to_str().unwrap(), &["/bin/true"]);
    let (da, db) = (layer_digests(&la), layer_digests(&lb));
    assert_eq!((da.len(), db.len()), (100, 100), "152 store paths in 100 layers");
    let shared = da.iter().collect::<BTreeSet<_>>().intersection(&db.iter().collect()).count();
    // The closures differ in one leaf (and so in their top-level path): at
    // most the layers holding those, the shared last layer, the root
    // layer and a path pushed out of the budget by the new one differ.
    assert!(shared >= 95, "only {shared} of 100 layers shared");
    assert_eq!(ok(&w.run(&["verify", la.to_str().unwrap()])).trim(), format!("ok {}", image_digest(&la)));

    let small = w.path("small");
    image(&w, &small, &["--max-layers", "5"], a.to_str().unwrap(), &["/bin/true"]);
    assert_eq!(layer_digests(&small).len(), 5);
    assert!(ok(&w.run(&["verify", small.to_str().unwrap()])).starts_with("ok sha256:"));
}

fn image_digest(layout: &Path) -> String {
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"].as_str().unwrap().to_string()
}

#[test]
fn bad_outputs_and_options_are_refused_and_nothing_is_left_behind() {
    let w = World::new();
    let closure = hello();
    let full = w.path("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("keep"), "x").unwrap();
    let existing = w.path("existing.tar");
    std::fs::write(&existing, "mine").unwrap();
    let link = w.path("link");
    std::os::unix::fs::symlink(&full, &link).unwrap();
    let run = |out: &Path, options: &[&str]| {
        let mut args = vec!["image", "--out", out.to_str().unwrap()];
        args.extend_from_slice(options);
        args.extend_from_slice(&[&closure, "--", "/bin/hello"]);
        w.run(&args)
    };
    assert_refused(&run(&full, &[]));
    assert_refused(&run(&existing, &[]));
    assert_refused(&run(&link, &[]));
    assert_refused(&run(&w.path("missing/dir/x.tar"), &[]));
    assert_eq!(entries(&full), ["keep"]);
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "mine");

    let hooks = w.path("hooks.json");
    std::fs::write(&hooks, "{}").unwrap();
    let secret = w.path("secret");
    std::fs::write(&secret, "s").unwrap();
    let secret_spec = format!("{}:/run/secrets/s", secret.display());
    for options in [
        &["--hooks", hooks.to_str().unwrap()][..],
        &["--secret", &secret_spec],
        &["--rootless"],
        &["--platform", "ptrace"],
        &["--max-layers", "1"],
        &["--tag", "not a reference"],
    ] {
        assert_refused(&run(&w.path("new.tar"), options));
        assert_refused(&run(&w.path("new-dir"), options));
    }
    assert_refused(&w.run(&["image", "--out", w.path("host.tar").to_str().unwrap(), "--", "/bin/true"]));
    let left: Vec<String> = entries(w.tmp.path())
        .into_iter()
        .filter(|e| !["full", "existing.tar", "link", "hooks.json", "secret"].contains(&e.as_str()))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
