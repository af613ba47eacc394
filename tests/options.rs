//! Run options, each observed from inside a real sandbox, and bad input:
//! exit status 125, a short reason, and nothing left behind.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

#[test]
fn env_is_exactly_what_was_given() {
    let w = World::new();
    let out = w
        .nucleus()
        .env("SECRET_TOKEN", "hunter2")
        .args(["run", "-e", "FOO=bar baz", "-e", "EMPTY=", "-e", "PATH=/bin", &hello(), "--"])
        .args(["/bin/sh", "-c", "env | sort"])
        .output()
        .unwrap();
    let env = ok(&out);
    assert!(env.contains("FOO=bar baz\n") && env.contains("EMPTY=\n"), "{env}");
    assert_eq!(env.matches("PATH=").count(), 1, "{env}");
    assert!(env.contains("PATH=/bin\n"));
    assert!(!env.contains("SECRET_TOKEN") && !env.contains("hunter2"), "host env leaked: {env}");
    assert!(!env.contains("NUCLEUS_STATE_ROOT") && !env.contains("NIX_CONFIG"), "{env}");
}

#[test]
fn volumes_are_read_only_unless_rw() {
    let w = World::new();
    let data = w.tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("in.txt"), "from host\n").unwrap();
    let ro = format!("{}:/data", data.display());
    let out = ok(&w.sh_with(&["-v", &ro], "cat /data/in.txt; echo x > /data/new 2>/dev/null || echo refused"));
    assert_eq!(out, "from host\nrefused\n");
    assert!(!data.join("new").exists());
    let ro_explicit = format!("{}:/data:ro", data.display());
    assert_eq!(ok(&w.sh_with(&["-v", &ro_explicit], "echo x > /data/new 2>/dev/null || echo refused")), "refused\n");
    let rw = format!("{}:/data:rw", data.display());
    ok(&w.sh_with(&["-v", &rw], "echo written inside > /data/new"));
    assert_eq!(std::fs::read_to_string(data.join("new")).unwrap(), "written inside\n");
    w.assert_clean();
}

#[test]
fn tmpfs_size_is_enforced() {
    let w = World::new();
    let script = "dd if=/dev/zero of=/scratch/a bs=1k count=512 2>/dev/null && echo small-fits; \
                  dd if=/dev/zero of=/scratch/b bs=1k count=2048 2>/dev/null || echo big-refused";
    assert_eq!(ok(&w.sh_with(&["--tmpfs", "/scratch:1M"], script)), "small-fits\nbig-refused\n");
    // Without a size, a tmpfs is still writable.
    assert_eq!(ok(&w.sh_with(&["--tmpfs", "/scratch"], "echo x > /scratch/f && cat /scratch/f")), "x\n");
}

#[test]
fn secrets_are_read_only_0400_and_leave_no_trace() {
    let w = World::new();
    let secret = w.tmp.path().join("token");
    std::fs::write(&secret, "s3cret-value").unwrap();
    let spec = format!("{}:/run/secrets/api/token", secret.display());
    let script = "cat /run/secrets/api/token; echo; stat -c '%a %u' /run/secrets/api/token; \
                  echo x > /run/secrets/api/token 2>/dev/null || echo refused";
    let out = ok(&w.sh_with(&["--secret", &spec, "--user", "1000:1000"], script));
    assert_eq!(out, "s3cret-value\n400 1000\nrefused\n");
    w.assert_clean();
    // Staging is removed when the run fails too.
    assert_status(&w.sh_with(&["--secret", &spec], "exit 3"), 3);
    w.assert_clean();
    assert_status(&w.run(&["run", "--secret", &spec, &hello(), "--", "/bin/no-such-program"]), 125);
    w.assert_clean();
}

#[test]
fn context_user_groups_hostname_and_workdir() {
    let w = World::new();
    let ctx = w.tmp.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("file"), "context file\n").unwrap();
    let options = [
        "--context",
        ctx.to_str().unwrap(),
        "--user",
        "1000:100",
        "--group-add",
        "5",
        "--hostname",
        "box",
        "-w",
        "/tmp",
    ];
    let script = "cat /context/file; echo x > /context/new 2>/dev/null || echo ro; id -u; id -g; id -G; hostname; pwd";
    let out = ok(&w.sh_with(&options, script));
    assert_eq!(out, "context file\nro\n1000\n100\n100 5\nbox\n/tmp\n");
    // A working directory that exists nowhere yet is created in the root.
    assert_eq!(ok(&w.sh_with(&["-w", "/work/dir"], "pwd")), "/work/dir\n");
}

#[test]
fn memory_and_cpu_limits_are_enforced() {
    let w = World::new();
    let out = ok(&w.sh_with(&["--memory", "256M"], "grep MemTotal /proc/meminfo"));
    assert_eq!(out.split_whitespace().nth(1), Some("262144"), "{out}");
    // The CPU quota lands on the sandbox's cgroup on the host.
    let mut child = w
        .nucleus()
        .args([
            "run",
            "--name",
            "cpu",
            "--cpus",
            "0.5",
            &hello(),
            "--",
            "/bin/sh",
            "-c",
            "trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let quota = (0..200)
        .find_map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let state = w.run(&["state", "cpu"]);
            let pid = serde_json::from_slice::<serde_json::Value>(&state.stdout).ok()?["pid"].as_u64()?;
            let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
            let path =
                cgroups.lines().find(|l| l.split(':').nth(1).is_some_and(|c| c.split(',').any(|c| c == "cpu")))?;
            let path = path.splitn(3, ':').nth(2)?;
            std::fs::read_to_string(format!("/sys/fs/cgroup/cpu{path}/cpu.cfs_quota_us")).ok()
        })
        .expect("no cgroup with a CPU quota for the sandbox");
    assert_eq!(quota.trim(), "50000");
    // Stop it once its TERM handler is in place.
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.as_mut().unwrap()), &mut ready).unwrap();
    assert_eq!(ready, "ready\n");
    ok(&w.run(&["kill", "cpu"]));
    ok(&child.wait_with_output().unwrap());
    w.assert_clean();
}

#[test]
fn a_pids_limit_stops_a_fork_storm() {
    let w = World::new();
    let storm = "for i in $(seq 1 80); do sleep 3 & done; echo all-started";
    assert_eq!(ok(&w.sh_with(&[], storm)), "all-started\n");
    let limited = w.sh_with(&["--pids", "64"], storm);
    // gVisor cannot fail one fork; the whole sandbox is stopped instead.
    assert!(!limited.status.success(), "{}", stdout(&limited));
    assert!(!stdout(&limited).contains("all-started"));
    w.assert_clean();
}

#[test]
fn a_seccomp_profile_applies_inside_and_its_pin_is_checked() {
    let w = World::new();
    let profile = w.tmp.path().join("deny-mkdir.json");
    let text =
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#;
    std::fs::write(&profile, text).unwrap();
    let script = "mkdir /tmp/d 2>/dev/null && echo made || echo denied; echo x > /tmp/f && echo write-ok";
    assert_eq!(ok(&w.sh_with(&[], script)), "made\nwrite-ok\n");
    let p = profile.to_str().unwrap();
    assert_eq!(ok(&w.sh_with(&["--seccomp-profile", p], script)), "denied\nwrite-ok\n");
    use sha2::Digest;
    let pin = nucleus::policy::hex(&sha2::Sha256::digest(text.as_bytes()));
    assert_eq!(
        ok(&w.sh_with(&["--seccomp-profile", p, "--seccomp-profile-sha256", &pin], script)),
        "denied\nwrite-ok\n"
    );
    let wrong = "0".repeat(64);
    let out = w.sh_with(&["--seccomp-profile", p, "--seccomp-profile-sha256", &wrong], script);
    assert_status(&out, 125);
    assert!(stderr(&out).contains("not the pinned"), "{}", stderr(&out));
    w.assert_clean();
}

#[test]
fn networks() {
    let w = World::new();
    let interfaces = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' '";
    assert_eq!(ok(&w.sh_with(&[], interfaces)), "lo ");
    assert_eq!(ok(&w.sh_with(&["--network", "none"], interfaces)), "lo ");
    // gVisor's own stack: loopback works inside the sandbox.
    let echo = "(echo pong | nc -l -p 8080 &); sleep 0.5; nc 127.0.0.1 8080 </dev/null";
    assert_eq!(ok(&w.sh_with(&["--network", "sandbox"], echo)), "pong\n");
    let host = w.sh_with(&["--network", "host"], interfaces);
    let seen = ok(&host);
    assert!(seen.split_whitespace().count() > 1, "host interfaces not visible: {seen}");
    assert!(stderr(&host).contains("--network host"), "{}", stderr(&host));
    w.assert_clean();
}

#[test]
fn platforms() {
    let w = World::new();
    assert_eq!(ok(&w.sh_with(&["--platform", "ptrace"], "echo ok")), "ok\n");
    let out = w.sh_with(&["--platform", "warp"], "echo ok");
    assert_status(&out, 125);
    assert!(stderr(&out).contains("unknown platform"), "{}", stderr(&out));
}

/// The unprivileged user that `.ci/run` creates (in group nix-users, so it
/// can reach the Nix daemon that `.ci/run` starts).
const ROOTLESS_USER: &str = "nucleus-ci";

#[test]
fn rootless_runs_the_same_closure() {
    let w = World::new();
    let runtime_dir = w.tmp.path().join("xdg");
    std::fs::create_dir(&runtime_dir).unwrap();
    let chown = Command::new("chown").arg(ROOTLESS_USER).arg(&runtime_dir).status().unwrap();
    assert!(chown.success(), "user {ROOTLESS_USER} missing: .ci/run creates it");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(w.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_user = |args: &[&str]| {
        Command::new("runuser")
            .args(["-u", ROOTLESS_USER, "--", "env", "-i"])
            .arg(format!("PATH={}", std::env::var("PATH").unwrap()))
            .arg(format!("XDG_RUNTIME_DIR={}", runtime_dir.display()))
            .arg("NIX_REMOTE=daemon")
            .arg(NUCLEUS)
            .args(args)
            .current_dir(&runtime_dir)
            .output()
            .unwrap()
    };
    let out = as_user(&["run", "--rootless", &hello(), "--", "/bin/sh", "-c", "/bin/hello; ls /nix/store | wc -l"]);
    let text = ok(&out);
    assert_eq!(text, format!("hello from nix\n{}\n", requisites(&closure("hello")).len()));
    let state = runtime_dir.join("nucleus");
    let left: Vec<String> = entries(&state).into_iter().filter(|e| e != ".cache").collect();
    assert!(left.is_empty(), "rootless run left state behind: {left:?}");
    // In a user namespace of its own, nucleus builds the same store view as
    // root does: a 600-path closure runs too.
    let wide = closure("wide");
    let out = as_user(&["run", "--rootless", wide.to_str().unwrap(), "--", "/bin/sh", "-c", "ls /nix/store | wc -l"]);
    assert_eq!(ok(&out).trim(), requisites(&wide).len().to_string());
}

#[test]
fn bad_input_is_125_with_a_reason_and_leaves_nothing() {
    let w = World::new();
    let dir = w.tmp.path().join("dir");
    std::fs::create_dir(&dir).unwrap();
    let file = w.tmp.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let bad_json = w.tmp.path().join("bad.json");
    std::fs::write(&bad_json, "{ not json").unwrap();
    let bad_profile = w.tmp.path().join("profile.json");
    std::fs::write(&bad_profile, r#"{"defaultAction":"ALLOW"}"#).unwrap();
    let outside_hook = w.tmp.path().join("hooks.json");
    std::fs::write(&outside_hook, r#"{"poststop":[{"path":"/usr/bin/true"}]}"#).unwrap();
    let fifo = w.tmp.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let huge = w.tmp.path().join("huge-secret");
    std::fs::File::create(&huge).unwrap().set_len(2 << 30).unwrap();
    let link = w.tmp.path().join("link-to-dir");
    std::os::unix::fs::symlink(&dir, &link).unwrap();
    let (d, f) = (dir.to_str().unwrap(), file.to_str().unwrap());
    let vol = |spec: &str| {
        let spec = spec.replace("FIFO", fifo.to_str().unwrap()).replace("LINK", link.to_str().unwrap());
        vec!["-v".to_string(), spec.replace("DIR", d)]
    };
    let mut cases: Vec<Vec<String>> = vec![
        vec!["--name=-bad".into()],
        vec!["--name".into(), "a/b".into()],
        vec!["--name".into(), "x".repeat(129)],
        vec!["--name".into(), "two\nlines".into()],
        vec!["--timeout".into(), "4294967296".into()],
        vec!["--timeout".into(), "99999999999999999999".into()],
        vec!["--boot-timeout".into(), "0".into()],
        vec!["--cpus".into(), "0.001".into()],
        vec!["--secret".into(), format!("{}:/run/secrets/big", huge.display())],
        vec!["--secret".into(), format!("{}:/run/secrets/fifo", fifo.display())],
        vec!["--rootless".into(), "--publish".into(), "8080:80".into()],
        vec!["--ready-tcp".into(), "80".into()],
        vec!["-p".into(), "80".into()],
        vec!["-p".into(), "8080:80".into(), "--network".into(), "host".into()],
        vec!["-e".into(), "NUCLEUS_TEST_UNSET_VARIABLE".into()],
        vec!["--env-file".into(), "/missing".into()],
        vec!["-v".into(), format!("{d}:/data"), "-v".into(), format!("{d}:/data/sub/deeper")],
        vec!["-v".into(), format!("{d}:/run"), "--secret".into(), format!("{f}:/run/secrets/x")],
        vec!["-A".into(), "x".into()],
        vec!["-e".into(), "=x".into()],
        vec!["-e".into(), "NOEQUALS".into()],
        vec!["--tmpfs".into(), "/scratch:12Q".into()],
        vec!["--tmpfs".into(), "relative".into()],
        vec!["--tmpfs".into(), "/proc/x".into()],
        vec!["--secret".into(), format!("{d}:/run/secrets/x")],
        vec!["--secret".into(), format!("{f}:/tmp/x")],
        vec!["--secret".into(), "/missing:/run/secrets/x".into()],
        vec!["--context".into(), "/missing".into()],
        vec!["--context".into(), f.into()],
        vec!["--user".into(), "root".into()],
        vec!["--user".into(), "1:x".into()],
        vec!["--group-add".into(), "wheel".into()],
        vec!["-w".into(), "relative".into()],
        vec!["-w".into(), "/a/../b".into()],
        vec!["--hostname".into(), "bad_host".into()],
        vec!["--memory".into(), "12Q".into()],
        vec!["--memory".into(), "0".into()],
        vec!["--cpus".into(), "0".into()],
        vec!["--cpus".into(), "many".into()],
        vec!["--pids".into(), "10".into()],
        vec!["--pids".into(), "x".into()],
        vec!["--seccomp-profile".into(), "/missing.json".into()],
        vec!["--seccomp-profile".into(), bad_json.to_str().unwrap().into()],
        vec!["--seccomp-profile".into(), bad_profile.to_str().unwrap().into()],
        vec!["--seccomp-profile-sha256".into(), "00".into()],
        vec!["--hooks".into(), "/missing.json".into()],
        vec!["--hooks".into(), bad_json.to_str().unwrap().into()],
        vec!["--hooks".into(), outside_hook.to_str().unwrap().into()],
        vec!["--network".into(), "bogus".into()],
        vec!["--platform".into(), "bogus".into()],
        vec!["--timeout".into(), "0".into()],
        vec!["--timeout".into(), "soon".into()],
        vec!["--rootless".into(), "--network".into(), "sandbox".into()],
        vec!["--rootless".into(), "--memory".into(), "64M".into()],
        vec!["--bogus-flag".into()],
    ];
    for spec in [
        "/:/data",
        "/etc:/data",
        "/proc:/data",
        "/sys:/data",
        "/dev:/data",
        "/root:/data",
        "/run:/data",
        "/var/run:/data",
        "/nix:/data",
        "/nix/store:/data",
        "/nix/var/nix/db:/data",
        "/missing:/data",
        "DIR:relative",
        "DIR:/",
        "DIR:/proc/x",
        "DIR:/sys",
        "DIR:/dev/x",
        "DIR:/nix",
        "DIR:/nix/store/x",
        "DIR:/bin",
        "DIR:/sbin",
        "DIR:/lib",
        "DIR:/lib64",
        "DIR:/usr/local",
        "DIR:/etc",
        "DIR:/run/secrets/x",
        "DIR:/a/../b",
        "DIR:/data:rx",
        "DIR:/data:rw:x",
        "DIR",
        "FIFO:/data",
        "LINK:/data",
        "/tmp/../proc:/data",
    ] {
        cases.push(vol(spec));
    }
    if Path::new("/boot").exists() {
        cases.push(vol("/boot:/data"));
    }
    let before = entries(&w.tmp.path().join("tmp"));
    std::fs::create_dir_all(w.tmp.path().join("tmp")).unwrap();
    for case in &cases {
        let mut args: Vec<&str> = vec!["run"];
        args.extend(case.iter().map(String::as_str));
        let closure = hello();
        args.extend_from_slice(&[&closure, "--", "/bin/true"]);
        let out = w.nucleus().env("TMPDIR", w.tmp.path().join("tmp")).args(&args).output().unwrap();
        assert_refused(&out);
        let err = stderr(&out);
        // A value nucleus refuses is one line; what clap refuses (an
        // unknown flag, a value outside a list) is one short block.
        let usage = case.iter().any(|a| a == "--bogus-flag" || a == "bogus")
            || case.len() == 2 && case[0] == "--seccomp-profile-sha256";
        let limit = if usage { 10 } else { 1 };
        assert!(err.lines().count() <= limit, "{case:?}: {} lines of stderr:\n{err}", err.lines().count());
        w.assert_clean();
        assert_eq!(entries(&w.tmp.path().join("tmp")), before, "{case:?} left files in TMPDIR");
    }
}

#[test]
fn bad_installables_and_usage_are_125() {
    let w = World::new();
    let cases: Vec<Vec<&str>> = vec![
        vec!["run", "/nix/store/00000000000000000000000000000000-missing", "--", "/bin/true"],
        vec!["run", "/usr/bin", "--", "/bin/true"],
        vec!["run", "./missing", "--", "/bin/true"],
        vec!["run", "missing.nix", "--", "/bin/true"],
        vec!["run", "--", ""],
        vec!["run", "/bin/true"],
        vec!["run"],
        vec!["frobnicate"],
        vec![],
        vec!["kill", "no-such-container"],
        vec!["delete", "no-such-container"],
        vec!["state", "no-such-container"],
        vec!["kill", "x", "NOTASIGNAL"],
    ];
    for case in cases {
        let out = w.run(&case);
        assert_refused(&out);
        assert!(stderr(&out).lines().count() <= 10, "{case:?}: {}", stderr(&out));
        w.assert_clean();
    }
    assert_status(&w.run(&["--help"]), 0);
    assert_status(&w.run(&["run", "--help"]), 0);
}

/// Usage errors keep clap's useful parts: the argument a typo resembles,
/// the name of a missing argument, the possible values, and where the
/// command goes.
#[test]
fn usage_errors_say_what_would_be_right() {
    let w = World::new();
    let hello = hello();
    let err = |args: &[&str]| {
        let out = w.run(args);
        assert_refused(&out);
        stderr(&out)
    };
    let similar = err(&["run", "--netwrok", "none", &hello, "--", "/bin/true"]);
    assert!(similar.contains("--network"), "{similar}");
    let values = err(&["run", "--network", "bridge", &hello, "--", "/bin/true"]);
    assert!(values.contains("none") && values.contains("sandbox") && values.contains("host"), "{values}");
    let missing = err(&["exec", "web"]);
    assert!(missing.contains("COMMAND"), "{missing}");
    let after = err(&["run", &hello, "/bin/hello", "--flag"]);
    assert!(after.contains("--"), "{after}");
    assert!(err(&["kill"]).contains("NAME"));
}
