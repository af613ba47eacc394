//! Bundles, digests and hashes: `hash`, `closure`, `bundle`, `digest`,
//! `verify` and `run --dry-run`, checked against Nix, the OCI schema and runc.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const SCHEMA_DIR: &str = "/usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema";

/// `nucleus bundle --out DIR OPTIONS hello -- COMMAND…`; returns the digest.
fn bundle(w: &World, dir: &Path, options: &[&str], command: &[&str]) -> String {
    let closure = hello();
    let mut args = vec!["bundle", "--out", dir.to_str().unwrap()];
    args.extend_from_slice(options);
    args.extend_from_slice(&[&closure, "--"]);
    args.extend_from_slice(command);
    let digest = ok(&w.run(&args)).trim().to_string();
    assert!(is_digest(&digest), "{digest}");
    digest
}

#[test]
fn hash_matches_nix_in_every_format() {
    let w = World::new();
    let hello = closure("hello");
    for path in requisites(&hello) {
        let path = Path::new(&path);
        let ours = |format: &str| ok(&w.run(&["hash", "--format", format, path.to_str().unwrap()])).trim().to_string();
        assert_eq!(ours("sri"), nix_hash(path, None), "{}", path.display());
        assert_eq!(ours("nix32"), nix_hash(path, Some("--base32")));
        assert_eq!(ours("base16"), nix_hash(path, Some("--base16")));
    }
    // The default format is SRI, and a missing path is a clear error.
    assert!(ok(&w.run(&["hash", hello.to_str().unwrap()])).starts_with("sha256-"));
    let missing = w.run(&["hash", "/nonexistent/path"]);
    assert_status(&missing, 125);
    assert!(stderr(&missing).contains("/nonexistent/path"));
}

/// libcrypto is loaded when hashing starts, not linked. A library the
/// loader finds first under libcrypto's sonames that is not OpenSSL (here:
/// the three calls by name, without OpenSSL's symbol versions, and bodies
/// that would corrupt memory and give a wrong hash) is passed over: `hash`
/// falls back to the `sha2` crate and still agrees with Nix. `bundle`
/// never loads libcrypto.
#[test]
fn hashing_without_a_usable_libcrypto_still_matches_nix() {
    let w = World::new();
    let fake = w.path("fake-libs");
    std::fs::create_dir(&fake).unwrap();
    let source = w.path("fake.c");
    std::fs::write(
        &source,
        "#include <string.h>\n\
         int SHA256_Init(void *c) { memset(c, 0, 4096); return 1; }\n\
         int SHA256_Update(void *c, const void *d, unsigned long n) { return 1; }\n\
         int SHA256_Final(unsigned char *md, void *c) { memset(md, 0xaa, 32); return 1; }\n",
    )
    .unwrap();
    for soname in ["libcrypto.so.3", "libcrypto.so.1.1"] {
        let out =
            Command::new("cc").args(["-shared", "-fPIC", "-o"]).arg(fake.join(soname)).arg(&source).output().unwrap();
        assert!(out.status.success(), "cc: {}", stderr(&out));
    }
    let hello = closure("hello");
    let hash = |fake_libs: bool| {
        let mut cmd = w.nucleus();
        if fake_libs {
            cmd.env("LD_LIBRARY_PATH", &fake);
        }
        cmd.args(["--verbose", "--verbose", "hash", hello.to_str().unwrap()]).output().unwrap()
    };
    let (real, fallback) = (hash(false), hash(true));
    assert_eq!(ok(&real).trim(), nix_hash(&hello, None));
    assert_eq!(ok(&fallback).trim(), nix_hash(&hello, None));
    assert!(stderr(&real).contains("SHA-256 from libcrypto"), "{}", stderr(&real));
    // A build that names its libcrypto by path (the Nix package) never
    // looks at the loader's search path.
    if option_env!("NUCLEUS_LIBCRYPTO").is_none() {
        assert!(stderr(&fallback).contains("SHA-256 from the sha2 crate"), "{}", stderr(&fallback));
    }
    // A bundle hashes only its config: libcrypto stays unloaded.
    let mut bundle = w.nucleus();
    bundle.env("LD_DEBUG", "files").args(["bundle", "--out"]).arg(w.path("b")).arg(&hello).args(["--", "/bin/hello"]);
    let out = bundle.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("libcrypto"), "{}", stderr(&out));
}

#[test]
fn closure_reports_what_nix_recorded() {
    let w = World::new();
    let hello = closure("hello");
    let listed = ok(&w.run(&["closure", hello.to_str().unwrap()]));
    assert_eq!(listed.lines().map(String::from).collect::<Vec<_>>(), requisites(&hello));
    let json: serde_json::Value =
        serde_json::from_str(&ok(&w.run(&["closure", "--json", hello.to_str().unwrap()]))).unwrap();
    let entries = json.as_array().unwrap();
    assert_eq!(entries.len(), requisites(&hello).len());
    for entry in entries {
        let path = entry["path"].as_str().unwrap();
        assert_eq!(entry["narHash"].as_str().unwrap(), nix_hash(Path::new(path), None));
        assert!(entry["narSize"].as_u64().unwrap() > 0);
        assert!(entry["references"].is_array());
    }
    let top = entries.iter().find(|e| e["path"] == hello.to_str().unwrap()).unwrap();
    let refs: Vec<&str> = top["references"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert!(refs.iter().any(|r| r.ends_with("-busybox")), "{refs:?}");
}

#[test]
fn a_bundle_is_written_whole_and_its_digest_recomputes() {
    let w = World::new();
    let dir = w.tmp.path().join("b");
    let digest = bundle(&w, &dir, &[], &["/bin/hello"]);
    for entry in ["config.json", "nucleus.json", "rootfs/proc", "rootfs/dev", "rootfs/sys", "rootfs/tmp", "rootfs/bin"]
    {
        assert!(dir.join(entry).exists(), "{entry} missing");
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(dir.join("config.json")).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(ok(&w.run(&["digest", dir.to_str().unwrap()])).trim(), digest);
    assert_eq!(ok(&w.run(&["verify", dir.to_str().unwrap()])).trim(), format!("ok {digest}"));
    assert_eq!(ok(&w.run(&["verify", "--deep", dir.to_str().unwrap()])).trim(), format!("ok {digest}"));
}

#[test]
fn the_digest_does_not_depend_on_place_time_or_state() {
    let w = World::new();
    let a = bundle(&w, &w.tmp.path().join("one"), &[], &["/bin/hello"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let other = tempfile::tempdir().unwrap();
    let b = bundle(&w, &other.path().join("two"), &[], &["/bin/hello"]);
    assert_eq!(a, b);
    // A dry run (prepared store view, different state root and working
    // directory) has the same digest as a written bundle (one bind per path).
    assert_eq!(w.dry_run_hello(&[], &["/bin/hello"]).digest, a);
    let elsewhere = World::new();
    assert_eq!(elsewhere.dry_run_hello(&["--name", "other-name"], &["/bin/hello"]).digest, a);
}

#[test]
fn secret_contents_and_staging_never_reach_the_digest() {
    let w = World::new();
    let secret = w.tmp.path().join("token");
    std::fs::write(&secret, "first").unwrap();
    let spec = format!("{}:/run/secrets/token", secret.display());
    let first = w.dry_run_hello(&["--secret", &spec], &["/bin/hello"]);
    std::fs::write(&secret, "second, longer").unwrap();
    let second = w.dry_run_hello(&["--secret", &spec], &["/bin/hello"]);
    assert_eq!(first.digest, second.digest);
    assert!(!first.config.to_string().contains("first") && !first.launch.to_string().contains("first"));
    // But where the secret appears inside is observable, so it counts.
    let moved = w.dry_run_hello(&["--secret", &format!("{}:/run/secrets/other", secret.display())], &["/bin/hello"]);
    assert_ne!(first.digest, moved.digest);
}

#[test]
fn every_observable_change_changes_the_digest() {
    let w = World::new();
    let data = w.tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let vol = format!("{}:/data", data.display());
    let vol_rw = format!("{}:/data:rw", data.display());
    let profile = w.tmp.path().join("seccomp.json");
    std::fs::write(&profile, r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).unwrap();
    let base = w.dry_run_hello(&[], &["/bin/hello"]).digest;
    let variants: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec![], vec!["/bin/sh"]),
        (vec![], vec!["/bin/hello", "arg"]),
        (vec!["-e", "A=1"], vec!["/bin/hello"]),
        (vec!["-e", "PATH=/bin"], vec!["/bin/hello"]),
        (vec!["-v", &vol], vec!["/bin/hello"]),
        (vec!["-v", &vol_rw], vec!["/bin/hello"]),
        (vec!["--tmpfs", "/scratch"], vec!["/bin/hello"]),
        (vec!["--tmpfs", "/scratch:1M"], vec!["/bin/hello"]),
        (vec!["--memory", "64M"], vec!["/bin/hello"]),
        (vec!["--cpus", "0.5"], vec!["/bin/hello"]),
        (vec!["--pids", "100"], vec!["/bin/hello"]),
        (vec!["--hostname", "other"], vec!["/bin/hello"]),
        (vec!["--user", "1000"], vec!["/bin/hello"]),
        (vec!["-w", "/tmp"], vec!["/bin/hello"]),
        (vec!["--network", "sandbox"], vec!["/bin/hello"]),
        (vec!["--seccomp-profile", profile.to_str().unwrap()], vec!["/bin/hello"]),
    ];
    let mut seen = vec![base.clone()];
    for (options, command) in &variants {
        let digest = w.dry_run_hello(options, command).digest;
        assert!(!seen.contains(&digest), "{options:?} {command:?} did not change the digest");
        seen.push(digest);
    }
    // Another closure (another byte in an exposed store path) changes it too.
    let wide = closure_with("wide", &[("width", "3")]);
    assert!(!seen.contains(&w.dry_run(&[wide.to_str().unwrap(), "--", "/bin/hello"]).digest));
}

#[test]
fn verify_catches_tampering() {
    let w = World::new();
    let dir = w.tmp.path().join("b");
    bundle(&w, &dir, &[], &["/bin/hello"]);
    let config_path = dir.join("config.json");
    let original = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(&config_path, original.replace("/bin/hello", "/bin/sh")).unwrap();
    let out = w.run(&["verify", dir.to_str().unwrap()]);
    assert_status(&out, 1);
    assert!(stdout(&out).contains("digest"), "{}", stdout(&out));
    std::fs::write(&config_path, &original).unwrap();
    ok(&w.run(&["verify", dir.to_str().unwrap()]));
    // A closure record whose narHash no longer matches what Nix registered.
    let record_path = dir.join("nucleus.json");
    let mut record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&record_path).unwrap()).unwrap();
    let entry = &mut record["closure"][0];
    let path = entry["path"].as_str().unwrap().to_string();
    entry["narHash"] = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into();
    std::fs::write(&record_path, serde_json::to_string(&record).unwrap()).unwrap();
    let out = w.run(&["verify", "--deep", dir.to_str().unwrap()]);
    assert_status(&out, 1);
    let report = stdout(&out);
    assert!(report.contains(&format!("{path}: Nix records")), "{report}");
    assert!(report.contains(&format!("{path}: contents hash to")), "{report}");
    assert_status(&w.run(&["verify", w.tmp.path().join("missing").to_str().unwrap()]), 125);
}

#[test]
fn bundle_refuses_a_symlink_or_a_non_empty_directory() {
    let w = World::new();
    let hello = closure("hello");
    let target = w.tmp.path().join("target");
    std::fs::create_dir(&target).unwrap();
    let link = w.tmp.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = w.run(&["bundle", "--out", link.to_str().unwrap(), hello.to_str().unwrap(), "--", "/bin/hello"]);
    assert_status(&out, 125);
    assert!(std::fs::read_dir(&target).unwrap().next().is_none(), "wrote through the symlink");
    std::fs::write(target.join("keep.txt"), "mine").unwrap();
    let out = w.run(&["bundle", "--out", target.to_str().unwrap(), hello.to_str().unwrap(), "--", "/bin/hello"]);
    assert_status(&out, 125);
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 1);
    assert_eq!(std::fs::read_to_string(target.join("keep.txt")).unwrap(), "mine");
    // An existing empty directory is fine.
    let empty = w.tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    bundle(&w, &empty, &[], &["/bin/hello"]);
}

#[test]
fn dry_run_prints_the_config_and_launches_nothing() {
    let w = World::new();
    let dry = w.dry_run_hello(&["--name", "dry"], &["/bin/hello"]);
    assert_eq!(dry.config["process"]["args"][0], "/bin/hello");
    assert_eq!(dry.config["root"]["readonly"], true);
    assert_eq!(dry.launch["container"]["layout"]["name"], "dry");
    assert!(!w.state_root().join("dry").exists());
    w.assert_clean();
}

#[test]
fn configs_validate_against_the_oci_schema() {
    let w = World::new();
    let data = w.tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let profile = w.tmp.path().join("seccomp.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let full = [
        "-e",
        "A=1",
        "-v",
        &format!("{}:/data:rw", data.display()),
        "--tmpfs",
        "/scratch:1M",
        "--memory",
        "64M",
        "--cpus",
        "1.5",
        "--pids",
        "100",
        "--user",
        "1000:100",
        "--group-add",
        "5",
        "-w",
        "/data",
        "--hostname",
        "box",
        "--seccomp-profile",
        profile.to_str().unwrap(),
    ];
    let dir = w.tmp.path().join("full");
    bundle(&w, &dir, &full, &["/bin/hello"]);
    let host = w.tmp.path().join("host");
    ok(&w.run(&["bundle", "--out", host.to_str().unwrap(), "--", "/bin/true"]));
    for config in [dir.join("config.json"), host.join("config.json")] {
        let out = Command::new("/usr/bin/python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/validate-oci-config.py"))
            .arg(SCHEMA_DIR)
            .arg(&config)
            .output()
            .expect("python3 with jsonschema (python3-jsonschema) is needed");
        assert!(out.status.success(), "{}: {}{}", config.display(), stdout(&out), stderr(&out));
    }
}

#[test]
fn a_200_path_bundle_runs_unchanged_under_runc() {
    let w = World::new();
    let dir = w.tmp.path().join("b");
    let wide = closure_with("wide", &[("width", "198")]);
    assert_eq!(requisites(&wide).len(), 200);
    let script = "cat /etc/motd; ls /nix/store | wc -l; echo x > /probe || echo read-only";
    ok(&w.run(&["bundle", "--out", dir.to_str().unwrap(), wide.to_str().unwrap(), "--", "/bin/sh", "-c", script]));
    let id = format!("nucleus-test-{}", std::process::id());
    let out = run_bundle_under("runc", &w.tmp.path().join("runc-root"), &[], &dir, &id);
    let text = ok(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("nucleus test closure"));
    assert_eq!(lines.next().map(str::trim), Some("200"));
    assert_eq!(lines.next(), Some("read-only"));
}
