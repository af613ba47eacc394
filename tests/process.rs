//! A run behaves like a well-mannered Unix process, and a run killed at any
//! moment leaves nothing that blocks a name or leaks: pipes, output order,
//! runsc's own failures, ghosts, cgroups, bounded boots and timeouts, the
//! closure cache and the state root, kept containers, and leaks under load.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use libc::SIGKILL;

#[test]
fn a_closed_stdout_ends_the_run_as_it_ends_yes() {
    let w = World::new();
    let mut child = w
        .nucleus()
        .args(["run", &hello(), "--", "/bin/sh", "-c", "while :; do echo y; done"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -1`: one line, then the reader goes away.
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert_eq!(first, "y\n");
    let status = wait_at_most(&mut child, Duration::from_secs(20));
    // The shell died of SIGPIPE, as under `yes | head -1`.
    assert_eq!(status.code(), Some(128 + libc::SIGPIPE), "{status:?}");
    w.assert_clean();
}

#[test]
fn stdout_and_stderr_into_one_file_keep_their_order() {
    let w = World::new();
    let log = w.path("log");
    let file = std::fs::File::create(&log).unwrap();
    let script = "i=0; while [ $i -lt 200 ]; do echo out-$i; echo err-$i >&2; i=$((i+1)); done";
    let status = w
        .nucleus()
        .args(["run", &hello(), "--", "/bin/sh", "-c", script])
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .status()
        .unwrap();
    assert!(status.success());
    let expected: String = (0..200).map(|i| format!("out-{i}\nerr-{i}\n")).collect();
    assert_eq!(std::fs::read_to_string(&log).unwrap(), expected);
    w.assert_clean();
}

#[test]
fn runsc_failures_are_125_with_a_cause_never_the_workloads_status() {
    let w = World::new();
    // A runsc that fails outright, or rejects its flags as Go's flag
    // package does, exits 1 or 2: nucleus's failure, not the workload's.
    for (name, body) in [("exits-1", "echo 'runsc: something broke' >&2; exit 1"), ("exits-2", "exit 2")] {
        let runsc = script(w.tmp.path(), name, body);
        let out = w.run(&["run", "--runsc", runsc.to_str().unwrap(), &hello(), "--", "/bin/true"]);
        assert_refused(&out);
        // With no log to read, runsc's own last line is the cause.
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        if name == "exits-1" {
            assert!(err.contains("something broke"), "{err}");
        }
        w.assert_clean();
    }
    // A FIFO cannot be a volume.
    let fifo = w.path("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let out = w.sh_with(&["-v", &format!("{}:/x", fifo.display())], "true");
    assert_refused(&out);
    w.assert_clean();
}

#[test]
fn a_sandbox_that_dies_under_a_running_workload_is_reported_as_such() {
    let w = World::new();
    let mut child = w.spawn_sh("dies", &[], "echo up; sleep 60");
    w.wait_running("dies");
    // Kill runsc's sandbox process from outside, as an OOM killer would.
    let sandbox = w
        .runsc_processes()
        .into_iter()
        .find(|c| c.contains("runsc-sandbox") || c.contains(" boot "))
        .expect("no sandbox process");
    let pid = pid_of(&w, &sandbox);
    unsafe { libc::kill(pid, SIGKILL) };
    let status = wait_at_most(&mut child, Duration::from_secs(20));
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(125), "{err}");
    assert!(err.contains("nucleus: ") && err.contains("sandbox"), "{err}");
    w.assert_clean();
}

/// The pid of the process whose command line is `cmdline` (as
/// `runsc_processes` prints it).
fn pid_of(w: &World, cmdline: &str) -> i32 {
    let _ = w;
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " ") == cmdline)
                .unwrap_or(false)
        })
        .expect("process gone")
}

#[test]
fn a_run_killed_at_any_moment_leaves_no_ghost() {
    let w = World::new();
    // SIGKILL at several moments of the start, the earliest before the
    // record could have been written by a slower design.
    for delay_ms in [0u64, 2, 5, 10, 20, 50, 100, 300] {
        let child = w.spawn_sh("ghost", &[], "echo up; sleep 60");
        std::thread::sleep(Duration::from_millis(delay_ms));
        signal(&child, SIGKILL);
        let mut child = child;
        child.wait().unwrap();
        // The name is free at once: `ps` shows nothing running, and a new
        // run of the same name starts without waiting.
        let ps = stdout(&w.run(&["ps", "--json"]));
        assert!(!ps.contains("\"running\""), "after {delay_ms} ms: {ps}");
        let started = Instant::now();
        assert_eq!(ok(&w.run(&["run", "--name", "ghost", &hello(), "--", "/bin/hello"])), "hello from nix\n");
        assert!(started.elapsed() < Duration::from_secs(10), "the name stayed blocked");
        w.assert_clean();
    }
    // `delete` clears a dead container at once.
    let child = w.spawn_sh("ghost", &[], "echo up; sleep 60");
    w.wait_running("ghost");
    signal(&child, SIGKILL);
    let mut child = child;
    child.wait().unwrap();
    let started = Instant::now();
    w.delete_killed("ghost");
    assert!(started.elapsed() < Duration::from_secs(5), "delete took {:?}", started.elapsed());
    w.assert_clean();
}

/// The container's cgroup directories that exist now, over every hierarchy.
fn cgroup_dirs(cgroups_path: &str) -> Vec<PathBuf> {
    let name = cgroups_path.trim_start_matches('/');
    let mut found = Vec::new();
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let dir = hierarchy.path().join(name);
        if dir.is_dir() {
            found.push(dir);
        }
    }
    if Path::new("/sys/fs/cgroup").join(name).is_dir() {
        found.push(Path::new("/sys/fs/cgroup").join(name));
    }
    found
}

#[test]
fn cgroups_runsc_made_are_released_on_every_path_that_discards_a_container() {
    let w = World::new();
    let options = ["--memory", "64m", "--pids", "64"];
    let mut dry = vec!["--name", "limited"];
    dry.extend_from_slice(&options);
    let cgroups_path = w.dry_run_hello(&dry, &["/bin/true"]).config["linux"]["cgroupsPath"]
        .as_str()
        .expect("no cgroupsPath")
        .to_string();
    // Killed, then discarded by a new run of the same name; then by `delete`.
    for discard in ["run", "delete"] {
        let mut child = w.spawn_sh("limited", &options, "echo up; sleep 60");
        w.wait_running("limited");
        assert!(!cgroup_dirs(&cgroups_path).is_empty(), "runsc made no cgroup at {cgroups_path}");
        signal(&child, SIGKILL);
        child.wait().unwrap();
        match discard {
            "run" => {
                let mut args = vec!["run", "--name", "limited"];
                args.extend_from_slice(&options);
                let closure = hello();
                args.extend_from_slice(&[&closure, "--", "/bin/true"]);
                ok(&w.run(&args));
            }
            _ => w.delete_killed("limited"),
        }
        assert_eq!(cgroup_dirs(&cgroups_path), Vec::<PathBuf>::new(), "after {discard}");
        w.assert_clean();
    }
}

#[test]
fn a_boot_that_never_finishes_is_stopped_at_the_boot_timeout() {
    let w = World::new();
    // A runsc that never comes back stands for `--platform kvm` without a
    // usable /dev/kvm, which spins forever.
    let hang = script(w.tmp.path(), "hang", "exec sleep 600");
    let started = Instant::now();
    let out = w.run(&["run", "--runsc", hang.to_str().unwrap(), "--boot-timeout", "2", &hello(), "--", "/bin/true"]);
    assert_refused(&out);
    assert!(stderr(&out).contains("--boot-timeout"), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    assert!(w.runsc_processes().is_empty());
    w.assert_clean();
}

#[test]
fn timeout_bounds_nix_too() {
    let w = World::new();
    // Every Nix command hangs.
    let path = w.hanging_nix_path();
    // A daemon socket that takes connections and never says a word.
    let silent = w.path("daemon-socket");
    let _listener = std::os::unix::net::UnixListener::bind(&silent).unwrap();
    let nix_file = w.path("hello.nix");
    std::fs::write(&nix_file, "derivation { name = \"x\"; system = \"x86_64-linux\"; builder = \"/bin/sh\"; }")
        .unwrap();
    let cases = [
        (hello(), silent.clone(), "daemon"),
        (hello(), w.path("no-daemon-here"), "nix"),
        (nix_file.display().to_string(), w.path("no-daemon-here"), "nix"),
    ];
    for (installable, socket, what) in cases {
        let started = Instant::now();
        let out = w
            .nucleus()
            .env("PATH", &path)
            .env("NIX_DAEMON_SOCKET_PATH", &socket)
            .args(["run", "--timeout", "2", &installable, "--", "/bin/true"])
            .output()
            .unwrap();
        assert_status(&out, 124);
        let err = stderr(&out).to_lowercase();
        assert!(err.contains(what), "does not say what was running ({what}): {err}");
        assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
        w.assert_clean();
    }
}

#[test]
fn the_state_root_is_private_and_the_cache_holds_only_whole_closed_entries() {
    let w = World::new();
    let hello = hello();
    ok(&w.run(&["run", &hello, "--", "/bin/true"]));
    let root = w.state_root();
    let mode = std::fs::metadata(&root).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "state root is {mode:o}");
    let cache = root.join(".cache/closures");
    let names = entries(&cache);
    assert!(names.iter().all(|n| !n.contains("tmp")), "{names:?}");
    // A host-mode run makes the same state root the same way.
    let w2 = World::new();
    ok(&w2.run(&["run", "--", "/bin/true"]));
    let mode = std::fs::metadata(w2.state_root()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "host-mode state root is {mode:o}");
}

#[test]
fn a_full_disk_leaves_no_partial_cache_entry() {
    let w = World::new();
    // A state root on a tiny tmpfs, already full.
    let root = w.state_root();
    std::fs::create_dir(&root).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs"])
        .arg(&root)
        .status()
        .unwrap();
    assert!(mounted.success());
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(root.clone());
    // Fill it, leaving a few bytes.
    let filler = root.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 64 * 1024]);
    let out = w.run(&["run", &hello(), "--", "/bin/true"]);
    assert_refused(&out);
    let cache = root.join(".cache/closures");
    let names = entries(&cache);
    assert!(names.iter().all(|n| !n.contains("tmp") && !n.starts_with('.')), "{names:?}");
}

#[test]
fn a_kept_container_is_replaced_only_when_asked() {
    let w = World::new();
    ok(&w.run(&["run", "--name", "kept", "--keep", &hello(), "--", "/bin/true"]));
    let out = w.run(&["run", "--name", "kept", &hello(), "--", "/bin/true"]);
    assert_refused(&out);
    assert!(stderr(&out).contains("--replace"), "{}", stderr(&out));
    assert!(w.state_root().join("kept").exists(), "the kept container was discarded");
    ok(&w.run(&["run", "--name", "kept", "--replace", &hello(), "--", "/bin/true"]));
    assert!(!w.state_root().join("kept").exists());
    w.assert_clean();
}

#[test]
fn parallel_and_sequential_runs_leak_nothing() {
    let load = repo().join("benches/load.sh");
    let out = std::process::Command::new("bash")
        .arg(&load)
        .args(["--parallel", "8", "--sequential", "20"])
        .env("NUCLEUS", NUCLEUS)
        .env("NIX_CONFIG", NIX_CONFIG)
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    for counter in ["failures", "processes", "mounts", "cgroups", "state entries"] {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(counter))
            .unwrap_or_else(|| panic!("no {counter} line: {text}"));
        assert!(line.trim_end().ends_with(" 0"), "{line}\n{text}");
    }
}
