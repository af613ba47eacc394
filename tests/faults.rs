//! Faults injected into `run` and `exec`, and careless use of both: killed,
//! stopped and vanished callers, signals at the edges of a container's
//! life, kill and delete during a boot, a killed supervisor, runsc's own
//! complaints, closed pipes and many callers at once. After each, nothing
//! is left: no state entry, mount, runsc or nucleus process, or cgroup.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A running container (its `nucleus run`), killed if a test fails while
/// it runs: a SIGKILL of `nucleus run` takes its supervisor and every
/// process of the container with it.
struct Service {
    name: String,
    run: Option<Child>,
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut run) = self.run.take() {
            let _ = run.kill();
            let _ = run.wait();
        }
    }
}

/// A container whose workload runs until TERM, started and running.
fn service(w: &World, name: &str, options: &[&str]) -> Service {
    let mut service = Service { name: name.to_string(), run: None };
    service.run = Some(w.spawn_sh(name, options, "trap 'exit 0' TERM; while :; do sleep 0.1; done"));
    w.wait_running(name);
    service
}

/// Stops a [`service`] and checks that it ended as asked.
fn stop(w: &World, mut service: Service) {
    ok(&w.run(&["kill", &service.name]));
    let mut run = service.run.take().expect("stopped twice");
    let status = wait_at_most(&mut run, Duration::from_secs(20));
    assert_eq!(status.code(), Some(0));
}

/// `nucleus exec NAME -- /bin/sh -c SCRIPT` in the background, stdout and
/// stderr piped.
fn spawn_exec(w: &World, name: &str, script: &str) -> Child {
    w.nucleus()
        .args(["exec", name, "--", "/bin/sh", "-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The processes inside container `name`, as its own `ps` lists them.
fn processes_inside(w: &World, name: &str) -> String {
    ok(&w.run(&["exec", name, "--", "/bin/ps"]))
}

/// [`World::assert_clean`], and no process left that nucleus started for
/// this world: every one of them (run, supervisor, exec, runsc) carries
/// the world's state root in its environment.
fn assert_all_gone(w: &World) {
    w.assert_clean();
    let needle = format!("NUCLEUS_STATE_ROOT={}", w.state_root().display());
    let left = || -> Vec<String> {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
            .filter(|e| {
                std::fs::read(e.path().join("environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
            })
            .map(|e| {
                let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                format!("{:?}: {}", e.file_name(), String::from_utf8_lossy(&cmdline).replace('\0', " "))
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !left().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(left(), Vec::<String>::new(), "processes left behind");
}

#[test]
fn a_killed_exec_caller_ends_its_command_and_everything_it_started() {
    let w = World::new();
    let child = service(&w, "victim", &[]);
    // A command with children and a grandchild, all still running.
    let mut exec = spawn_exec(&w, "victim", "sleep 41 & sh -c 'sleep 42; true' & echo ready; wait");
    assert_eq!(first_line(&mut exec), "ready");
    let before = processes_inside(&w, "victim");
    assert!(before.contains("sleep 41") && before.contains("sleep 42"), "{before}");
    signal(&exec, libc::SIGKILL);
    exec.wait().unwrap();
    eventually(Duration::from_secs(15), "the command's processes end", || {
        let now = processes_inside(&w, "victim");
        !now.contains("sleep 41") && !now.contains("sleep 42")
    });
    stop(&w, child);
    assert_all_gone(&w);
}

#[test]
fn exec_output_into_a_closed_pipe_or_one_file_behaves_as_run() {
    let w = World::new();
    let child = service(&w, "pipes", &[]);
    // `| head -1`: the command dies of SIGPIPE, as `yes | head -1` does,
    // and never fills stderr with write errors first.
    let mut exec = spawn_exec(&w, "pipes", "while :; do echo y; done");
    assert_eq!(first_line(&mut exec), "y");
    drop(exec.stdout.take());
    let mut err = String::new();
    exec.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = wait_at_most(&mut exec, Duration::from_secs(20));
    assert_eq!(status.code(), Some(128 + libc::SIGPIPE), "{err}");
    assert_eq!(err, "");
    // `> log 2>&1` keeps the order in which the command wrote.
    let log = w.path("log");
    let file = std::fs::File::create(&log).unwrap();
    let order = "i=0; while [ $i -lt 100 ]; do echo out-$i; echo err-$i >&2; i=$((i+1)); done";
    let status = w
        .nucleus()
        .args(["exec", "pipes", "--", "/bin/sh", "-c", order])
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .status()
        .unwrap();
    assert!(status.success());
    let expected: String = (0..100).map(|i| format!("out-{i}\nerr-{i}\n")).collect();
    assert_eq!(std::fs::read_to_string(&log).unwrap(), expected);
    stop(&w, child);
    assert_all_gone(&w);
}

#[test]
fn exec_statuses_and_runsc_complaints_in_one_line() {
    let w = World::new();
    let child = service(&w, "status", &[]);
    // runsc's reason, once, as nucleus's one line; never 127 or 128.
    for (args, reason) in [
        (vec!["status", "--", "/bin/nope"], "/bin/nope"),
        (vec!["-w", "/nonexistent", "status", "--", "/bin/pwd"], "/nonexistent"),
    ] {
        let mut all = vec!["exec"];
        all.extend(args);
        let out = w.run(&all);
        assert_refused(&out);
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("nucleus: runsc: ") && err.contains(reason), "{err}");
    }
    let out = w.run(&["run", &hello(), "--", "/bin/nope"]);
    assert_refused(&out);
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("/bin/nope"), "{}", stderr(&out));
    // Ended by a signal: 128+N. A real 128 is the command's own.
    let out = w.run(&["exec", "status", "--", "/bin/sh", "-c", "echo before; kill -KILL $$"]);
    assert_status(&out, 128 + libc::SIGKILL);
    assert_eq!(stdout(&out), "before\n");
    assert_status(&w.run(&["exec", "status", "--", "/bin/sh", "-c", "exit 128"]), 128);
    // Careless use: no terminal for -t, a user by name.
    let out = w.run(&["exec", "-t", "status", "--", "/bin/true"]);
    assert_refused(&out);
    assert!(stderr(&out).contains("terminal"), "{}", stderr(&out));
    assert_refused(&w.run(&["exec", "-u", "nobody", "status", "--", "/bin/true"]));
    stop(&w, child);
    assert_all_gone(&w);
}

#[test]
fn many_execs_at_once_and_big_streams_through_one() {
    let w = World::new();
    let child = service(&w, "busy", &[]);
    let execs: Vec<(i32, Child)> =
        (1..=10).map(|i| (i, spawn_exec(&w, "busy", &format!("echo out-{i}; echo err-{i} >&2; exit {i}")))).collect();
    for (i, exec) in execs {
        let out = exec.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(i), "{}", stderr(&out));
        assert_eq!((stdout(&out), stderr(&out)), (format!("out-{i}\n"), format!("err-{i}\n")));
    }
    // 50 MB in through -i and back out, byte for byte; EOF reaches it.
    let data: Vec<u8> = (0..50_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let mut exec = w
        .nucleus()
        .args(["exec", "-i", "busy", "--", "/bin/sh", "-c", "cat; echo eof-seen >&2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = exec.stdin.take().unwrap();
    let input = data.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = exec.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout == data, "50 MB came back altered ({} bytes)", out.stdout.len());
    assert_eq!(stderr(&out), "eof-seen\n");
    stop(&w, child);
    assert_all_gone(&w);
}

#[test]
fn a_stopped_exec_caller_does_not_hold_up_the_end_of_the_run() {
    let w = World::new();
    let mut held = service(&w, "held", &[]);
    let mut exec = spawn_exec(&w, "held", "echo ready; sleep 60");
    assert_eq!(first_line(&mut exec), "ready");
    // Ctrl-Z on the caller, then the container is stopped.
    signal(&exec, libc::SIGSTOP);
    ok(&w.run(&["kill", "held"]));
    let status = wait_at_most(&mut held.run.take().unwrap(), Duration::from_secs(20));
    assert_eq!(status.code(), Some(0));
    // Woken, the caller learns that its command was killed.
    signal(&exec, libc::SIGCONT);
    let status = wait_at_most(&mut exec, Duration::from_secs(20));
    let mut said = String::new();
    exec.stderr.take().map(|mut e| std::io::Read::read_to_string(&mut e, &mut said));
    assert_eq!(status.code(), Some(128 + libc::SIGKILL), "{said}");
    assert_all_gone(&w);
}

#[test]
fn signals_at_the_moment_the_workload_starts_are_never_lost() {
    let w = World::new();
    // TERM at moments spread over the boot: each run ends promptly, as
    // 125 (stopped before it started) or 143 (the workload got TERM), or,
    // in its very first moment, killed by it; none goes on to the
    // workload's own end.
    for step in 0..16u64 {
        let mut child = w.spawn_sh("edge", &[], "sleep 30");
        std::thread::sleep(Duration::from_millis(20 * step));
        signal(&child, libc::SIGTERM);
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        let status = wait_at_most(&mut child, Duration::from_secs(20));
        use std::os::unix::process::ExitStatusExt;
        let stopped = matches!(status.code(), Some(125 | 143)) || status.signal() == Some(libc::SIGTERM);
        assert!(stopped, "after {} ms: {status:?} {err}", 20 * step);
        assert_all_gone(&w);
    }
}

/// Starts `nucleus ARGS…` with `env`, stdout and stderr piped.
fn spawn_nucleus(w: &World, env: &[(&str, &str)], args: &[&str]) -> Child {
    let mut cmd = w.nucleus();
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// Whether `pid` has started a child yet.
fn has_children(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).is_ok_and(|c| !c.trim().is_empty())
}

/// A `nucleus` this test started, stopped with SIGINT (which it handles,
/// ending what it started) if the test fails while it runs.
struct Stopped(Option<Child>);

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            signal(&child, libc::SIGINT);
            if wait_briefly(&mut child, Duration::from_secs(10)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The child's status, if it ends within `limit`.
fn wait_briefly(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Every command that asks Nix ends Nix's commands at a stop signal (they
/// run in process groups of their own, which a terminal's Ctrl-C does not
/// reach), leaves no output, and says what it was waiting for.
#[test]
fn a_stop_signal_while_nix_works_ends_nix_too() {
    let w = World::new();
    // Every Nix command hangs.
    let path = w.hanging_nix_path();
    let nix_file = w.path("slow.nix");
    std::fs::write(&nix_file, "derivation { name = \"x\"; system = \"x86_64-linux\"; builder = \"/bin/sh\"; }")
        .unwrap();
    let nix_file = nix_file.to_str().unwrap();
    let out = w.path("out");
    let out = out.to_str().unwrap();
    let commands: [&[&str]; 5] = [
        &["run", nix_file, "--", "/bin/true"],
        &["bundle", "--out", out, nix_file, "--", "/bin/true"],
        &["image", "--out", out, nix_file, "--", "/bin/true"],
        &["kube", nix_file, "--", "/bin/true"],
        &["closure", nix_file],
    ];
    for (args, signal_number) in commands.iter().zip([libc::SIGTERM, libc::SIGINT].into_iter().cycle()) {
        let child = spawn_nucleus(&w, &[("PATH", &path)], args);
        let pid = child.id();
        eventually(Duration::from_secs(20), "nix-build runs", || has_children(pid));
        signal(&child, signal_number);
        let output = child.wait_with_output().unwrap();
        assert_refused(&output);
        assert!(stderr(&output).contains("while nix-build"), "{args:?}: {}", stderr(&output));
        assert!(!Path::new(out).exists(), "{args:?} left its output");
        assert_all_gone(&w);
    }
}

/// A build Nix runs itself (root, a local store) ends with nucleus, and
/// leaves no build directory: Nix is asked to stop first and stops its
/// builder, which runs in a session of its own that SIGKILL of Nix's
/// process group would leave running.
#[test]
fn a_stop_signal_ends_a_build_nix_runs_itself() {
    let w = World::new();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let marker = format!("slow-{}-{nanos}", std::process::id());
    let nix_file = w.path("slow.nix");
    let lib = repo().join("tests/closures/lib.nix");
    std::fs::write(
        &nix_file,
        format!(
            "let t = import {} {{ busyboxFile = {}; }};\n\
             in t.script \"{marker}\" \"echo {marker}; sleep 600\"\n",
            lib.display(),
            busybox_file()
        ),
    )
    .unwrap();
    // The builder (sh, then the sleep it execs) has the derivation's
    // attributes in its environment.
    let needle = format!("name={marker}");
    let builder_runs = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
        })
    };
    let out = w.path("out");
    let mut run =
        Stopped(Some(spawn_nucleus(&w, &[], &["bundle", "--out", out.to_str().unwrap(), nix_file.to_str().unwrap()])));
    eventually(Duration::from_secs(60), "the builder runs", builder_runs);
    let child = run.0.take().unwrap();
    signal(&child, libc::SIGINT);
    let output = child.wait_with_output().unwrap();
    // Nix's own progress comes first on stderr; nucleus's reason last.
    assert_status(&output, 125);
    let reason = stderr(&output).lines().last().unwrap_or_default().to_string();
    assert!(reason.starts_with("nucleus: stopped by SIGINT while nix-build"), "{reason}");
    eventually(Duration::from_secs(10), "the builder is gone", || !builder_runs());
    let build_dirs: Vec<String> = entries(&std::env::temp_dir())
        .into_iter()
        .filter(|name| name.starts_with("nix-build-") && name.contains(&marker))
        .collect();
    assert!(build_dirs.is_empty(), "{build_dirs:?}");
    assert!(!out.exists());
    assert_all_gone(&w);
}

/// A process a Nix command leaves behind outside its process group (in a
/// session of its own) may hold nucleus's pipes open for as long as it
/// lives: a stop still ends nucleus within moments.
#[test]
fn a_stop_signal_is_not_held_off_by_a_process_nix_left_behind() {
    let w = World::new();
    let left = LeftBehind::start(&w, "exec sleep 600");
    let started = Instant::now();
    let status = left.stop();
    let elapsed = started.elapsed();
    assert_eq!(status.code(), Some(125));
    assert!(elapsed < Duration::from_secs(4), "took {elapsed:?}");
    assert_all_gone(&w);
}

/// `nucleus closure` of a .nix file, where every Nix command leaves a
/// process in a session of its own holding its pipes, then runs `then`.
struct LeftBehind {
    run: Child,
    pid_file: PathBuf,
}

impl LeftBehind {
    fn start(w: &World, then: &str) -> LeftBehind {
        let bin = w.path("leaving-nix");
        std::fs::create_dir_all(&bin).unwrap();
        let pid_file = w.path("left-behind.pid");
        let body = format!("setsid sleep 300 & echo $! > {}\n{then}", pid_file.display());
        for name in ["nix", "nix-store", "nix-build", "nix-instantiate"] {
            script(&bin, name, &body);
        }
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        let nix_file = w.path("x.nix");
        std::fs::write(&nix_file, "derivation { name = \"x\"; system = \"x86_64-linux\"; builder = \"/bin/sh\"; }")
            .unwrap();
        // stdout and stderr are piped, and never read.
        let run = spawn_nucleus(w, &[("PATH", &path)], &["closure", nix_file.to_str().unwrap()]);
        eventually(Duration::from_secs(20), "the process left behind runs", || {
            std::fs::read_to_string(&pid_file).is_ok_and(|pid| !pid.trim().is_empty())
        });
        LeftBehind { run, pid_file }
    }

    /// SIGTERM to nucleus; its status (within 15 s), once the process left
    /// behind is killed too.
    fn stop(mut self) -> std::process::ExitStatus {
        signal(&self.run, libc::SIGTERM);
        let status = wait_at_most(&mut self.run, Duration::from_secs(15));
        let pid: i32 = std::fs::read_to_string(&self.pid_file).unwrap().trim().parse().unwrap();
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        status
    }
}

/// Once the output is complete only printing is left, and a reader that
/// never reads (`| less`, a full pipe) does not hold a stop off.
#[test]
fn a_stop_signal_ends_a_command_whose_reader_does_not_read() {
    let w = World::new();
    let many = closure_with("many", &[("width", "300")]);
    // More than a pipe holds (64 KiB): the write blocks.
    let mut child = w
        .nucleus()
        .args(["closure", "--json", many.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    eventually(Duration::from_secs(20), "the write blocks", || {
        std::fs::read_to_string(format!("/proc/{pid}/wchan")).is_ok_and(|w| w.contains("pipe"))
    });
    signal(&child, libc::SIGTERM);
    let status = wait_at_most(&mut child, Duration::from_secs(5));
    assert!(!status.success(), "{status:?}");
    assert_all_gone(&w);
}

/// A daemon that takes the connection and never answers holds no stop off,
/// with no `--timeout` to end the wait.
#[test]
fn a_stop_signal_ends_a_wait_on_a_silent_nix_daemon() {
    let w = World::new();
    let silent = w.path("daemon-socket");
    let _listener = std::os::unix::net::UnixListener::bind(&silent).unwrap();
    let hello = hello();
    let out = w.path("out");
    let out = out.to_str().unwrap();
    let commands: [&[&str]; 3] = [
        &["run", &hello, "--", "/bin/true"],
        &["bundle", "--out", out, &hello, "--", "/bin/true"],
        &["closure", &hello],
    ];
    for args in commands {
        let mut child = spawn_nucleus(&w, &[("NIX_DAEMON_SOCKET_PATH", silent.to_str().unwrap())], args);
        // Time to connect and wait (there is nothing else to wait for).
        std::thread::sleep(Duration::from_millis(500));
        let started = Instant::now();
        signal(&child, libc::SIGINT);
        let status = wait_at_most(&mut child, Duration::from_secs(10));
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert_eq!(status.code(), Some(125), "{args:?}: {err}");
        assert!(err.contains("Nix daemon"), "{args:?}: {err}");
        assert!(started.elapsed() < Duration::from_secs(2), "{args:?}: took {:?}", started.elapsed());
        assert!(!Path::new(out).exists(), "{args:?} left its output");
        assert_all_gone(&w);
    }
}

/// An image stopped while its layers are written is taken back whole: no
/// layout directory, no archive, no temporary file beside it.
#[test]
fn a_stop_signal_while_an_image_is_written_leaves_nothing() {
    let w = World::new();
    let sparse = closure("sparse");
    let sparse = sparse.to_str().unwrap();
    let layout = w.path("layout");
    let archive = w.path("image.tar");
    for (out, being_written) in [(&layout, layout.join("blobs/sha256")), (&archive, w.path("."))] {
        let child = spawn_nucleus(&w, &[], &["image", "--out", out.to_str().unwrap(), sparse, "--", "/zeros"]);
        // A layout writes its layer to a temporary file in blobs/sha256; an
        // archive hashes its layers before it writes anything.
        eventually(Duration::from_secs(20), "the image is being made", || {
            let pending = std::fs::read_dir(&being_written).into_iter().flatten().flatten();
            out == &archive || pending.into_iter().any(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        });
        if out == &archive {
            std::thread::sleep(Duration::from_millis(200));
        }
        signal(&child, libc::SIGINT);
        let output = child.wait_with_output().unwrap();
        assert_refused(&output);
        assert!(stderr(&output).contains("while making the image's layers"), "{}", stderr(&output));
        assert!(!out.exists(), "{} is left", out.display());
        let left: Vec<String> = entries(w.tmp.path()).into_iter().filter(|n| n.ends_with(".tmp")).collect();
        assert!(left.is_empty(), "{left:?}");
    }
    assert_all_gone(&w);
}

#[test]
fn kill_and_delete_during_a_boot_stop_it_at_once() {
    let w = World::new();
    // A runsc that never comes back keeps the container booting.
    let hang = script(w.tmp.path(), "hang", "exec sleep 600");
    let boot = |name: &str| {
        let child = w
            .nucleus()
            .args(["run", "--name", name, "--runsc", hang.to_str().unwrap(), &hello(), "--", "/bin/true"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        eventually(Duration::from_secs(20), "the container is being created", || {
            stdout(&w.run(&["state", name])).contains("\"creating\"")
        });
        child
    };
    for (name, command) in [("killed", vec!["kill", "killed"]), ("deleted", vec!["delete", "--force", "deleted"])] {
        let child = boot(name);
        let started = Instant::now();
        ok(&w.run(&command));
        let out = child.wait_with_output().unwrap();
        assert!(started.elapsed() < Duration::from_secs(4), "{command:?} took {:?}", started.elapsed());
        assert_refused(&out);
        assert!(stderr(&out).contains("before the sandbox started"), "{}", stderr(&out));
        assert_all_gone(&w);
    }
}

/// The cgroup directories named `cgroups_path` that exist now.
fn cgroup_dirs(cgroups_path: &str) -> Vec<PathBuf> {
    let name = cgroups_path.trim_start_matches('/');
    let mut found: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|h| h.path().join(name))
        .filter(|d| d.is_dir())
        .collect();
    let unified = Path::new("/sys/fs/cgroup").join(name);
    if unified.is_dir() {
        found.push(unified);
    }
    found
}

/// The pid of `nucleus run`'s child, the supervisor.
fn supervisor_of(run: &Child) -> i32 {
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", run.id())).unwrap();
    children.split_whitespace().next().expect("no supervisor").parse().unwrap()
}

#[test]
fn a_killed_supervisor_leaves_no_state_and_its_volume_intact() {
    let w = World::new();
    let data = w.path("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("precious"), "keep me\n").unwrap();
    let secret = w.path("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let options = [
        "-v",
        &format!("{}:/data:rw", data.display()),
        "--secret",
        &format!("{}:/run/secrets/s", secret.display()),
        "--memory",
        "64m",
    ];
    let mut dry = vec!["--name", "crash"];
    dry.extend_from_slice(&options);
    let cgroups_path = w.dry_run_hello(&dry, &["/bin/true"]).config["linux"]["cgroupsPath"]
        .as_str()
        .expect("no cgroupsPath")
        .to_string();
    let mut run = w.spawn_sh("crash", &options, "echo up; sleep 60");
    assert_eq!(first_line(&mut run), "up");
    assert!(!cgroup_dirs(&cgroups_path).is_empty(), "runsc made no cgroup");
    // The OOM killer, or an operator's kill -9, takes the supervisor.
    let supervisor = nix::unistd::Pid::from_raw(supervisor_of(&run));
    nix::sys::signal::kill(supervisor, nix::sys::signal::Signal::SIGKILL).unwrap();
    let mut err = String::new();
    run.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = wait_at_most(&mut run, Duration::from_secs(20));
    assert_eq!(status.code(), Some(125), "{err}");
    assert!(err.starts_with("nucleus: ") && err.contains("supervisor"), "{err}");
    // `nucleus run` cleared the name itself, and never emptied the volume
    // that was still mounted in its own namespace.
    assert_eq!(std::fs::read_to_string(data.join("precious")).unwrap(), "keep me\n");
    assert_eq!(cgroup_dirs(&cgroups_path), Vec::<PathBuf>::new());
    assert_all_gone(&w);
}

#[test]
fn one_name_under_two_state_roots() {
    // Two services, or two test runs, that happen to pick the same name.
    let (a, b) = (World::new(), World::new());
    let first = service(&a, "same", &[]);
    let second = service(&b, "same", &[]);
    assert_eq!(ok(&b.run(&["exec", "same", "--", "/bin/echo", "b"])), "b\n");
    assert_eq!(ok(&a.run(&["exec", "same", "--", "/bin/echo", "a"])), "a\n");
    stop(&b, second);
    stop(&a, first);
    assert_all_gone(&a);
    assert_all_gone(&b);
}

#[test]
fn delete_racing_a_run_of_the_same_name_never_removes_the_new_one() {
    let w = World::new();
    for _ in 0..6 {
        // A container whose `nucleus run` was killed: its name is free to
        // take, and `delete` clears it.
        let mut ghost = w.spawn_sh("contended", &[], "echo up; sleep 60");
        assert_eq!(first_line(&mut ghost), "up");
        signal(&ghost, libc::SIGKILL);
        ghost.wait().unwrap();
        let run = w
            .nucleus()
            .args(["run", "--name", "contended", &hello(), "--", "/bin/sh", "-c", "echo ran"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let delete = w.nucleus().args(["delete", "contended"]).stderr(Stdio::piped()).spawn().unwrap();
        let (run, delete) = (run.wait_with_output().unwrap(), delete.wait_with_output().unwrap());
        assert_eq!(ok(&run), "ran\n");
        // It cleared the ghost, or found the name already gone or taken by
        // the new run (which it refuses to delete while it runs).
        let err = stderr(&delete);
        assert!(
            delete.status.success() || err.contains("does not exist") || err.contains("is running"),
            "{:?} {err}",
            delete.status
        );
        assert_all_gone(&w);
    }
    // Two deletes of one kept container: both see it gone.
    ok(&w.run(&["run", "--name", "kept", "--keep", &hello(), "--", "/bin/true"]));
    let deletes: Vec<Child> =
        (0..2).map(|_| w.nucleus().args(["delete", "kept"]).stderr(Stdio::piped()).spawn().unwrap()).collect();
    for delete in deletes {
        let out = delete.wait_with_output().unwrap();
        assert!(out.status.success() || stderr(&out).contains("does not exist"), "{}", stderr(&out));
    }
    assert_all_gone(&w);
}

#[test]
fn a_killed_run_leaves_nothing_at_all() {
    let w = World::new();
    let data = w.path("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("precious"), "keep me\n").unwrap();
    let options = ["-v", &format!("{}:/data:rw", data.display()), "--memory", "64m"];
    let mut dry = vec!["--name", "killed"];
    dry.extend_from_slice(&options);
    let cgroups_path = w.dry_run_hello(&dry, &["/bin/true"]).config["linux"]["cgroupsPath"]
        .as_str()
        .expect("no cgroupsPath")
        .to_string();
    // SIGKILL once its supervisor watches it (its control socket is
    // there): while it boots, while it runs, and with an exec inside. The
    // supervisor sees it gone, kills the workload and cleans up, so that
    // not even the name's entry is left for the next run to clear. (Killed
    // earlier, the next run clears the name: see process.rs.)
    for moment in ["booting", "running", "executing"] {
        let mut run = w.spawn_sh("killed", &options, "echo up; sleep 60");
        let socket = w.state_root().join("killed/control.sock");
        eventually(Duration::from_secs(20), "the supervisor listens", || socket.exists());
        let exec = if moment == "booting" {
            None
        } else {
            assert_eq!(first_line(&mut run), "up");
            w.wait_running("killed");
            (moment == "executing").then(|| {
                let mut exec = spawn_exec(&w, "killed", "echo in; sleep 60");
                assert_eq!(first_line(&mut exec), "in");
                exec
            })
        };
        signal(&run, libc::SIGKILL);
        run.wait().unwrap();
        if let Some(exec) = exec {
            let out = exec.wait_with_output().unwrap();
            assert!(matches!(out.status.code(), Some(125 | 137)), "{:?} {}", out.status, stderr(&out));
        }
        eventually(Duration::from_secs(15), &format!("killed while {moment}, the entry is gone"), || {
            entries(&w.state_root()).iter().all(|e| e == ".cache")
        });
        assert_all_gone(&w);
        eventually(Duration::from_secs(10), "its cgroups are released", || cgroup_dirs(&cgroups_path).is_empty());
        assert_eq!(std::fs::read_to_string(data.join("precious")).unwrap(), "keep me\n");
    }
}

#[test]
fn a_state_root_that_runs_full_at_any_point_fails_cleanly_or_not_at_all() {
    let w = World::new();
    let root = w.state_root();
    std::fs::create_dir(&root).unwrap();
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    // Every size from too small for the bundle to plenty: the disk fills
    // at every step of a run, one after the other.
    for kib in (8..=48).step_by(4) {
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k,mode=0700"), "tmpfs"])
            .arg(&root)
            .status()
            .unwrap();
        assert!(mounted.success());
        let _unmount = Unmount(root.clone());
        let out = w.run(&["run", "--name", "full", &hello(), "--", "/bin/sh", "-c", "echo ran; exit 3"]);
        let err = stderr(&out);
        match out.status.code() {
            // Refused before the workload ran: one line, no output.
            Some(125) => {
                assert_refused(&out);
                assert_eq!(err.lines().count(), 1, "{kib} KiB: {err}");
            }
            // The workload ran: its output and status, at most a warning.
            Some(3) => {
                assert_eq!(stdout(&out), "ran\n", "{kib} KiB");
                assert!(err.lines().all(|l| l.starts_with("nucleus: warning: ")), "{kib} KiB: {err}");
            }
            other => panic!("{kib} KiB: {other:?} {err}"),
        }
        let left: Vec<String> = entries(&root).into_iter().filter(|e| e != ".cache").collect();
        assert!(left.is_empty(), "{kib} KiB: left {left:?}");
        drop(_unmount);
    }
    assert_all_gone(&w);
}

#[test]
fn kill_gives_up_on_a_supervisor_that_does_not_answer() {
    let w = World::new();
    let mut svc = service(&w, "frozen", &[]);
    let supervisor = nix::unistd::Pid::from_raw(supervisor_of(svc.run.as_ref().unwrap()));
    nix::sys::signal::kill(supervisor, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let started = Instant::now();
    let out = w.run(&["kill", "frozen"]);
    let took = started.elapsed();
    nix::sys::signal::kill(supervisor, nix::sys::signal::Signal::SIGCONT).unwrap();
    assert_refused(&out);
    assert!(stderr(&out).contains("did not answer"), "{}", stderr(&out));
    assert!(took < Duration::from_secs(30), "took {took:?}");
    // Woken, it takes the TERM that waited and the workload ends on it.
    let status = wait_at_most(&mut svc.run.take().unwrap(), Duration::from_secs(20));
    assert_eq!(status.code(), Some(0));
    assert_all_gone(&w);
}

/// A container whose `nucleus run` and supervisor were both killed outright
/// (nothing of nucleus can clean up after that) is garbage unless it was
/// kept: `nucleus gc` removes it, and leaves a kept one to its owner.
#[test]
fn gc_removes_what_runs_killed_outright_left_unless_kept() {
    let w = World::new();
    // A runsc that never comes back keeps each container being created.
    let hang = script(w.tmp.path(), "hang", "exec sleep 600");
    let hello = hello();
    for (name, keep) in [("left", false), ("kept", true)] {
        let mut args = vec!["run", "--name", name, "--runsc", hang.to_str().unwrap()];
        if keep {
            args.push("--keep");
        }
        args.extend([hello.as_str(), "--", "/bin/true"]);
        let mut run = spawn_nucleus(&w, &[], &args);
        let pid = run.id();
        eventually(Duration::from_secs(20), "the supervisor runs", || has_children(pid));
        eventually(Duration::from_secs(20), "the container is recorded", || w.run(&["state", name]).status.success());
        let supervisor = nix::unistd::Pid::from_raw(supervisor_of(&run));
        nix::sys::signal::kill(supervisor, nix::sys::signal::Signal::SIGKILL).unwrap();
        run.kill().unwrap();
        run.wait().unwrap();
    }
    let listed = ok(&w.run(&["ps", "-a"]));
    assert!(listed.contains("left") && listed.contains("kept"), "{listed}");
    ok(&w.run(&["gc"]));
    assert!(!w.run(&["state", "left"]).status.success(), "gc left it");
    assert!(w.run(&["state", "kept"]).status.success(), "gc removed a kept container");
    ok(&w.run(&["delete", "kept"]));
    assert_all_gone(&w);
}

/// `verify` asks Nix for each path's registered narHash. A stop while Nix
/// hangs ends Nix too, and a Nix that cannot answer is an error (125), not
/// a verdict that the bundle differs.
#[test]
fn verify_gives_no_verdict_without_nix_and_a_stop_ends_nix() {
    let w = World::new();
    let dir = w.path("bundle");
    ok(&w.run(&["bundle", "--out", dir.to_str().unwrap(), &hello(), "--", "/bin/true"]));
    let child = spawn_nucleus(&w, &[("PATH", &w.hanging_nix_path())], &["verify", dir.to_str().unwrap()]);
    let pid = child.id();
    eventually(Duration::from_secs(20), "nix path-info runs", || has_children(pid));
    signal(&child, libc::SIGINT);
    let output = child.wait_with_output().unwrap();
    assert_refused(&output);
    assert!(stderr(&output).contains("while nix path-info"), "{}", stderr(&output));
    assert_all_gone(&w);
    let no_nix = w.path("no-nix");
    std::fs::create_dir_all(&no_nix).unwrap();
    let out = w.nucleus().env("PATH", &no_nix).args(["verify", dir.to_str().unwrap()]).output().unwrap();
    assert_refused(&out);
    assert!(stderr(&out).contains("nix"), "{}", stderr(&out));
    ok(&w.run(&["verify", dir.to_str().unwrap()]));
}

/// A Nix command that floods stderr, which no one reads from nucleus
/// (`2>&1 | less`, stopped), and leaves a process holding the pipes: a
/// stop still ends nucleus, by the signal itself when its own report could
/// not be written either.
#[test]
fn a_stop_signal_ends_nucleus_when_no_one_reads_its_stderr() {
    let w = World::new();
    let left = LeftBehind::start(&w, "while :; do echo 'progress progress progress' >&2; done");
    // Time for the pipes to fill.
    std::thread::sleep(Duration::from_millis(500));
    let status = left.stop();
    assert!(!status.success(), "{status:?}");
    assert_all_gone(&w);
}
