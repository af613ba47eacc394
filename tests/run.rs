//! End to end: real closures under the real runsc, observed from inside.

mod common;

use common::*;

#[test]
fn runs_a_closure_and_prints_its_output() {
    let w = World::new();
    let hello = closure("hello");
    let out = w.run(&["run", hello.to_str().unwrap(), "--", "/bin/hello"]);
    assert_eq!(ok(&out), "hello from nix\n");
    w.assert_clean();
}

#[test]
fn the_store_holds_exactly_the_closure() {
    let w = World::new();
    let hello = closure("hello");
    let decoy = closure("decoy");
    let listing = ok(&w.sh(&hello, "ls /nix/store"));
    let inside: Vec<String> = listing.lines().map(|l| format!("/nix/store/{l}")).collect();
    let mut inside_sorted = inside.clone();
    inside_sorted.sort();
    assert_eq!(inside_sorted, requisites(&hello));
    // A path that exists on the host but is not in the closure is invisible.
    let probe = format!("cat {} 2>&1; echo status=$?", decoy.display());
    let seen = ok(&w.sh(&hello, &probe));
    assert!(seen.contains("status=1") && !seen.contains("leaks"), "{seen}");
    w.assert_clean();
}

#[test]
fn root_is_read_only_and_tmp_is_writable() {
    let w = World::new();
    let hello = closure("hello");
    let script = "echo x > /probe 2>/dev/null && echo root-writable; \
                  echo x > /bin/probe 2>/dev/null && echo bin-writable; \
                  echo x > /tmp/probe && cat /tmp/probe && echo tmp-ok; cat /etc/motd";
    let out = ok(&w.sh(&hello, script));
    assert_eq!(out, "x\ntmp-ok\nnucleus test closure\n");
    w.assert_clean();
}

#[test]
fn exit_status_passes_through() {
    let w = World::new();
    let hello = closure("hello");
    assert_status(&w.sh(&hello, "exit 7"), 7);
    assert_status(&w.sh(&hello, "exit 0"), 0);
    // Death by signal N is 128+N.
    assert_status(&w.sh(&hello, "kill -TERM $$"), 143);
    assert_status(&w.sh(&hello, "kill -KILL $$"), 137);
    w.assert_clean();
}

#[test]
fn a_result_symlink_works_as_installable() {
    let w = World::new();
    let hello = closure("hello");
    // Our own symlink, not `nix-build -o`, which would add a GC root.
    std::os::unix::fs::symlink(&hello, w.tmp.path().join("result")).unwrap();
    assert_eq!(ok(&w.run(&["run", "./result", "--", "/bin/hello"])), "hello from nix\n");
    w.assert_clean();
}

#[test]
fn a_nix_file_works_as_installable() {
    let w = World::new();
    closure("hello"); // built once already: this call only evaluates
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/closures/hello.nix");
    let out = w.run(&["run", file, "--", "/bin/hello"]);
    assert_eq!(ok(&out), "hello from nix\n");
}

#[test]
fn host_mode_shows_the_host_system_read_only_and_nothing_else() {
    let w = World::new();
    let script = "busybox ls /; busybox ls /etc 2>/dev/null && echo etc-visible; \
                  echo x > /usr/probe 2>/dev/null && echo usr-writable; echo from host mode";
    let out = ok(&w.run(&["run", "--", "/bin/busybox", "sh", "-c", script]));
    let dirs: Vec<&str> = out.lines().take_while(|l| *l != "from host mode").collect();
    for expected in ["bin", "nix", "usr", "tmp", "proc"] {
        assert!(dirs.contains(&expected), "{expected} missing in {dirs:?}");
    }
    for absent in ["etc", "root", "home", "var", "boot"] {
        assert!(!dirs.contains(&absent), "host {absent} visible: {dirs:?}");
    }
    assert!(out.ends_with("from host mode\n"), "{out}");
    w.assert_clean();
}

#[test]
fn output_redirected_to_a_regular_file_is_intact() {
    let w = World::new();
    let hello = closure("hello");
    let file = w.tmp.path().join("out.txt");
    std::fs::write(&file, "precious line\n").unwrap();
    let append = std::fs::OpenOptions::new().append(true).open(&file).unwrap();
    let status = w
        .nucleus()
        .args(["run", hello.to_str().unwrap(), "--", "/bin/sh", "-c", "echo one; echo two >&2; echo three"])
        .stdout(append.try_clone().unwrap())
        .stderr(append)
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("precious line\n"), "{text:?}");
    for line in ["one\n", "two\n", "three\n"] {
        assert!(text.contains(line), "{text:?}");
    }
    // A truncating redirect gets exactly the workload's output.
    let fresh = std::fs::File::create(w.tmp.path().join("fresh.txt")).unwrap();
    let status = w.nucleus().args(["run", hello.to_str().unwrap(), "--", "/bin/hello"]).stdout(fresh).status().unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read_to_string(w.tmp.path().join("fresh.txt")).unwrap(), "hello from nix\n");
    w.assert_clean();
}

#[test]
fn a_600_path_closure_runs() {
    let w = World::new();
    let wide = closure("wide");
    assert!(requisites(&wide).len() >= 600);
    let out = ok(&w.sh(&wide, "ls /nix/store | wc -l; head -c 5 $(head -n 1 /etc/leaves)"));
    let mut lines = out.lines();
    assert_eq!(lines.next().unwrap().trim(), requisites(&wide).len().to_string());
    assert_eq!(lines.next().unwrap(), "leaf ");
    w.assert_clean();
}

#[test]
fn stdin_passes_through() {
    let w = World::new();
    let hello = closure("hello");
    let mut child = w
        .nucleus()
        .args(["run", "-i", hello.to_str().unwrap(), "--", "/bin/sh", "-c", "wc -l"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"a\nb\nc\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(ok(&out).trim(), "3");
    // Without -i (podman's meaning), the workload's stdin is empty.
    let mut child = w
        .nucleus()
        .args(["run", hello.to_str().unwrap(), "--", "/bin/sh", "-c", "wc -l"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(b"a\nb\n");
    assert_eq!(ok(&child.wait_with_output().unwrap()).trim(), "0");
}

#[test]
fn a_symlink_out_of_the_closure_is_refused() {
    let w = World::new();
    let escape = closure("escape");
    let out = w.run(&["run", escape.to_str().unwrap(), "--", "/bin/sh", "-c", "cat /etc/hostname"]);
    assert_status(&out, 125);
    assert!(stderr(&out).contains("outside /nix/store"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    w.assert_clean();
}

#[test]
fn a_runsc_failure_is_125_with_the_real_cause() {
    let w = World::new();
    let hello = closure("hello");
    let out = w.run(&["run", hello.to_str().unwrap(), "--", "/bin/does-not-exist"]);
    assert_status(&out, 125);
    let err = stderr(&out);
    assert!(err.lines().last().unwrap().starts_with("nucleus: runsc: "), "{err}");
    assert!(err.contains("/bin/does-not-exist"), "{err}");
    assert!(!err.contains("waiting for sandbox to start: EOF"), "{err}");
    w.assert_clean();
}

#[test]
fn hardened_defaults_hold_inside() {
    let w = World::new();
    let hello = closure("hello");
    // gVisor's /proc/self/status has no CapAmb or NoNewPrivs line (it always
    // behaves as if no_new_privs were set); the four sets it shows must be empty.
    let script = "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status; \
                  hostname; id -u; echo $PATH; env | grep -v -E '^(PATH|PWD|SHLVL|HOSTNAME|HOME|_)=' | sort";
    let out = ok(&w.sh(&hello, script));
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd"] {
        let line = out.lines().find(|l| l.starts_with(cap)).unwrap_or_else(|| panic!("{cap} missing: {out}"));
        assert!(line.ends_with("0000000000000000"), "{line}");
    }
    assert!(out.lines().filter(|l| l.starts_with("Cap")).all(|l| l.ends_with("0000000000000000")), "{out}");
    // The fixed hostname, root inside, the fixed PATH, and no other variable.
    assert!(out.ends_with("nucleus\n0\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"), "{out}");
    w.assert_clean();
}

#[test]
fn the_closure_cache_is_used_only_while_every_path_is_unchanged() {
    let w = World::new();
    let hello = closure("hello");
    let dry = |w: &World| w.dry_run(&[hello.to_str().unwrap(), "--", "/bin/hello"]).digest;
    let fresh = dry(&w);
    assert!(!w.state_root().exists(), "a dry run created state");
    // A real run fills the cache.
    ok(&w.run(&["run", hello.to_str().unwrap(), "--", "/bin/true"]));
    let name = hello.file_name().unwrap().to_str().unwrap();
    let entry = w.state_root().join(".cache/closures").join(format!("{name}.json"));
    let mut cached: serde_json::Value = serde_json::from_slice(&std::fs::read(&entry).unwrap()).unwrap();
    // A forged narHash with matching fingerprints is believed (no Nix call)…
    cached["paths"][0]["narHash"] = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into();
    std::fs::write(&entry, cached.to_string()).unwrap();
    assert_ne!(dry(&w), fresh, "the cache was not used");
    // …but once a path's fingerprint differs (as after a rebuild), Nix is
    // asked again, and the next run rewrites the entry.
    cached["paths"][0]["fingerprint"][1] = 1.into();
    std::fs::write(&entry, cached.to_string()).unwrap();
    assert_eq!(dry(&w), fresh);
    ok(&w.run(&["run", hello.to_str().unwrap(), "--", "/bin/true"]));
    let rewritten: serde_json::Value = serde_json::from_slice(&std::fs::read(&entry).unwrap()).unwrap();
    assert_ne!(rewritten["paths"][0]["fingerprint"][1], 1);
    assert_eq!(dry(&w), fresh);
}
