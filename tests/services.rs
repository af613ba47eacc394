//! Services: published ports (busybox httpd inside, a client on the host,
//! loopback only), systemd's readiness protocol on a datagram socket of the
//! test's own, and environment files as podman reads them.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use libc::{SIGKILL, SIGTERM};

/// The port busybox httpd listens on inside.
const INSIDE: u16 = 8080;

/// A host port nobody listens on: random, from below Linux's ephemeral
/// range (so no outgoing connection holds it), and bindable right now.
/// Another test may still take it before nucleus does: [`start_published`]
/// then tries another.
fn free_port() -> u16 {
    static DRAWN: AtomicU32 = AtomicU32::new(0);
    loop {
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().subsec_nanos();
        let seed = std::process::id()
            .wrapping_mul(7919)
            .wrapping_add(DRAWN.fetch_add(1, Ordering::SeqCst).wrapping_mul(104_729))
            .wrapping_add(nanos);
        let port = 20_000 + (seed % 10_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Serves `body` at / with busybox httpd on port 8080 inside, until TERM.
fn httpd_script(body: &str) -> String {
    format!(
        "trap 'exit 0' TERM; mkdir -p /tmp/www && echo {body} > /tmp/www/index.html && \
         httpd -p {INSIDE} -h /tmp/www && while :; do sleep 0.1; done"
    )
}

/// A run in the background with a published port.
struct Published {
    child: Child,
    port: u16,
    /// When `nucleus state` first said the container runs.
    running_since: Instant,
}

/// Starts `nucleus run --name NAME -p PORT:8080 OPTIONS hello -- sh -c
/// SCRIPT` on a free host port (with `NOTIFY_SOCKET` if given) and waits
/// until the container runs. A port taken in the meantime by someone else
/// is refused with 125 before anything starts; then it tries another.
fn start_published(w: &World, name: &str, options: &[&str], notify: Option<&Path>, script: &str) -> Published {
    for _ in 0..5 {
        let port = free_port();
        let publish = format!("{port}:{INSIDE}");
        let mut cmd = w.nucleus();
        cmd.args(["run", "--name", name, "-p", &publish]).args(options);
        cmd.args([hello().as_str(), "--", "/bin/sh", "-c", script]);
        if let Some(socket) = notify {
            cmd.env("NOTIFY_SOCKET", socket);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if child.try_wait().unwrap().is_some() {
                let out = child.wait_with_output().unwrap();
                assert_status(&out, 125);
                assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
                break;
            }
            if stdout(&w.run(&["state", name])).contains("\"running\"") {
                return Published { child, port, running_since: Instant::now() };
            }
            assert!(Instant::now() < deadline, "container {name} never ran");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("no free host port in five tries");
}

/// `GET /` through 127.0.0.1:PORT: the whole response, if one came.
fn get(port: u16) -> Option<String> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// Waits until the server behind `port` answers `GET /` with `body`. Until
/// httpd listens inside, nucleus accepts and closes: an empty response.
fn wait_served(run: &mut Published, body: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(response) = get(run.port).filter(|r| !r.is_empty()) {
            assert!(response.starts_with("HTTP/1.") && response.contains(" 200 "), "{response}");
            assert!(response.ends_with(&format!("\r\n\r\n{body}\n")), "{response}");
            return response;
        }
        assert!(run.child.try_wait().unwrap().is_none(), "the run ended before it served");
        assert!(Instant::now() < deadline, "nothing served on port {}", run.port);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// TERM to `nucleus run`, which stops the workload; its output.
fn stop(run: Published) -> Output {
    signal(&run.child, SIGTERM);
    run.child.wait_with_output().unwrap()
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A process by pid and start time (so a reused pid is not mistaken for it).
type Process = (u32, u64);

fn stat_of(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some((fields.get(1)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}

/// Every process below `root` (nucleus's supervisor, runsc and its
/// sandbox): they alone hold the run's network namespaces.
fn descendants(root: u32) -> BTreeSet<Process> {
    let all: Vec<(u32, u32, u64)> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| stat_of(pid).map(|(ppid, start)| (pid, ppid, start)))
        .collect();
    let mut found = BTreeSet::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid, start) in &all {
            if ppid == parent && found.insert((pid, start)) {
                frontier.push(pid);
            }
        }
    }
    found
}

/// The network namespaces those processes' threads are in, other than the
/// test's own.
fn private_namespaces(processes: &BTreeSet<Process>) -> BTreeSet<String> {
    let own = std::fs::read_link("/proc/self/ns/net").unwrap();
    let mut found = BTreeSet::new();
    for (pid, _) in processes {
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
            if let Ok(ns) = std::fs::read_link(task.path().join("ns/net")) {
                if ns != own {
                    found.insert(ns.display().to_string());
                }
            }
        }
    }
    found
}

/// Waits (at most 10 s) until none of `processes` is alive, no mount on the
/// host holds a namespace of theirs, the host has no link of nucleus's, and
/// `port` is free again.
fn assert_gone(processes: &BTreeSet<Process>, namespaces: &BTreeSet<String>, port: u16) {
    let alive = || -> Vec<Process> {
        processes.iter().copied().filter(|&(pid, start)| stat_of(pid).is_some_and(|(_, s)| s == start)).collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while (!alive().is_empty() || !port_is_free(port)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(alive(), Vec::<Process>::new(), "processes of the run outlived it");
    assert!(port_is_free(port), "host port {port} still taken after the run");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for ns in namespaces {
        assert!(!mounts.contains(ns.as_str()), "{ns} is still mounted:\n{mounts}");
    }
    assert!(nix::net::if_::if_nametoindex("nucleus0").is_err(), "a link of nucleus's is on the host");
}

// ---------------------------------------------------------------------------
// Published ports

#[test]
fn a_published_port_reaches_the_server_inside_and_is_free_after_the_run() {
    let w = World::new();
    let mut run = start_published(&w, "web", &[], None, &httpd_script("served-from-the-sandbox"));
    let processes = descendants(run.child.id());
    let namespaces = private_namespaces(&processes);
    // nucleus's own namespace and the sandbox's.
    assert!(namespaces.len() >= 2, "{namespaces:?}");
    wait_served(&mut run, "served-from-the-sandbox");
    // Connections keep working, one after another.
    for _ in 0..3 {
        assert!(get(run.port).unwrap().ends_with("served-from-the-sandbox\n"));
    }
    let port = run.port;
    assert!(!port_is_free(port));
    let out = stop(run);
    assert_status(&out, 0);
    assert_gone(&processes, &namespaces, port);
    w.assert_clean();
}

#[test]
fn a_busy_host_port_is_refused_before_anything_starts() {
    let w = World::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out_dir = w.path("out");
    std::fs::create_dir(&out_dir).unwrap();
    let volume = format!("{}:/out:rw", out_dir.display());
    let publish = format!("{port}:{INSIDE}");
    let started = Instant::now();
    let out = w.sh_with(&["-p", &publish, "-v", &volume], "touch /out/ran");
    assert_refused(&out);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")) && err.contains("in use"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(entries(&out_dir), Vec::<String>::new(), "the workload ran");
    w.assert_clean();
    // The port is still the test's own.
    assert_eq!(taken.local_addr().unwrap().port(), port);
}

#[test]
fn a_killed_nucleus_frees_its_port_and_leaves_no_namespace() {
    let w = World::new();
    let mut run = start_published(&w, "killed", &[], None, &httpd_script("about-to-die"));
    wait_served(&mut run, "about-to-die");
    let processes = descendants(run.child.id());
    let namespaces = private_namespaces(&processes);
    let port = run.port;
    signal(&run.child, SIGKILL);
    run.child.wait().unwrap();
    assert_gone(&processes, &namespaces, port);
    assert!(get(port).is_none(), "something still answers on {port}");
    w.delete_killed("killed");
    w.assert_clean();
}

#[test]
fn two_parallel_runs_on_different_ports_are_both_served() {
    let w = World::new();
    let mut first = start_published(&w, "first", &[], None, &httpd_script("first-server"));
    let mut second = start_published(&w, "second", &[], None, &httpd_script("second-server"));
    assert_ne!(first.port, second.port);
    wait_served(&mut first, "first-server");
    wait_served(&mut second, "second-server");
    // Both at once, interleaved: each port reaches its own sandbox.
    for _ in 0..3 {
        assert!(get(first.port).unwrap().ends_with("first-server\n"));
        assert!(get(second.port).unwrap().ends_with("second-server\n"));
    }
    assert_status(&stop(first), 0);
    assert_status(&stop(second), 0);
    w.assert_clean();
}

// ---------------------------------------------------------------------------
// systemd readiness

/// A datagram socket standing in for systemd's notification socket.
fn notify_socket(w: &World) -> (UnixDatagram, std::path::PathBuf) {
    let path = w.path("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    (socket, path)
}

fn receive(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("no notification within 30 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Asserts nothing more was sent, waiting a little for stragglers.
fn assert_no_more(socket: &UnixDatagram) {
    socket.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut buf = [0u8; 256];
    if let Ok(n) = socket.recv(&mut buf) {
        panic!("unexpected notification {:?}", String::from_utf8_lossy(&buf[..n]));
    }
}

#[test]
fn ready_once_the_workload_runs_and_stopping_at_the_end() {
    let w = World::new();
    let (socket, path) = notify_socket(&w);
    let child = w
        .nucleus()
        .env("NOTIFY_SOCKET", &path)
        .args(["run", "--name", "notified", &hello(), "--", "/bin/sh", "-c", "env; sleep 1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(receive(&socket), "READY=1");
    // Sent once the workload runs, not before.
    assert!(stdout(&w.run(&["state", "notified"])).contains("\"running\""));
    let out = child.wait_with_output().unwrap();
    let env = ok(&out);
    assert!(env.contains("PATH="), "{env}");
    assert!(!env.contains("NOTIFY_SOCKET"), "NOTIFY_SOCKET reached the workload:\n{env}");
    assert_eq!(receive(&socket), "STOPPING=1");
    assert_no_more(&socket);
    w.assert_clean();
}

#[test]
fn ready_tcp_waits_until_the_port_inside_accepts() {
    let w = World::new();
    let (socket, path) = notify_socket(&w);
    // httpd listens only two seconds after the workload started.
    let script = format!("sleep 2; {}", httpd_script("ready-now"));
    let run = start_published(&w, "slow", &["--ready-tcp", "8080"], Some(&path), &script);
    assert_eq!(receive(&socket), "READY=1");
    let waited = run.running_since.elapsed();
    // (`running_since` is when the test saw it run, a little after it did.)
    assert!(waited >= Duration::from_secs(1), "READY=1 came {waited:?} after the workload started");
    // Ready means ready: the first request is served.
    let response = get(run.port).expect("no answer right after READY=1");
    assert!(response.ends_with("ready-now\n"), "{response}");
    assert_status(&stop(run), 0);
    assert_eq!(receive(&socket), "STOPPING=1");
    assert_no_more(&socket);
    w.assert_clean();
}

// ---------------------------------------------------------------------------
// Environment files and the caller's variables

#[test]
fn environment_files_are_read_as_podman_reads_them() {
    let w = World::new();
    let first = w.path("first.env");
    let second = w.path("second.env");
    std::fs::write(
        &first,
        "# a comment\n\n   # an indented comment\n  LEAD=blanks before the name go\nEQ=a=b=c\n\
         SPACES=two words and trailing  \nQUOTED=\"kept\"\nSHARED=first\nBOTH=first\nINHERITED\nEMPTY=\n",
    )
    .unwrap();
    std::fs::write(&second, "SHARED=second\nBOTH=second\n").unwrap();
    let (first, second) = (first.to_str().unwrap(), second.to_str().unwrap());
    // -e wins over every file wherever it stands; a later file over an
    // earlier one.
    let out = w
        .nucleus()
        .env("FROM_CALLER", "the caller's value")
        .env("INHERITED", "from the caller too")
        .args(["run", "-e", "BOTH=flag", "--env-file", first, "-e", "FROM_CALLER", "--env-file", second])
        .args([hello().as_str(), "--", "/bin/env"])
        .output()
        .unwrap();
    let env = ok(&out);
    let lines: BTreeSet<&str> = env.lines().collect();
    for want in [
        "LEAD=blanks before the name go",
        "EQ=a=b=c",
        "SPACES=two words and trailing  ",
        "QUOTED=\"kept\"",
        "SHARED=second",
        "BOTH=flag",
        "FROM_CALLER=the caller's value",
        "INHERITED=from the caller too",
        "EMPTY=",
    ] {
        assert!(lines.contains(want), "no {want:?} in:\n{env}");
    }
    assert!(!env.contains("comment") && !env.contains('#'), "{env}");
    assert_eq!(env.lines().filter(|l| l.starts_with("BOTH=") || l.starts_with("SHARED=")).count(), 2, "{env}");
    w.assert_clean();
}

#[test]
fn unset_variables_and_bad_environment_files_are_refused() {
    let w = World::new();
    let bad = w.path("bad.env");
    std::fs::write(&bad, "GOOD=1\nKEY =x\n").unwrap();
    let unset_in_file = w.path("unset.env");
    std::fs::write(&unset_in_file, "NUCLEUS_TEST_UNSET_IN_FILE\n").unwrap();
    let missing = w.path("missing.env");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["-e", "NUCLEUS_TEST_UNSET"], "NUCLEUS_TEST_UNSET"),
        (vec!["--env-file", missing.to_str().unwrap()], "missing.env"),
        (vec!["--env-file", bad.to_str().unwrap()], "line 2"),
        (vec!["--env-file", unset_in_file.to_str().unwrap()], "NUCLEUS_TEST_UNSET_IN_FILE"),
        (vec!["-e", "A B=1"], "'A B'"),
    ];
    for (options, about) in cases {
        let out = w.sh_with(&options, "echo ran");
        assert_refused(&out);
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{options:?}: {err}");
        assert!(err.contains(about), "{options:?}: {err}");
        w.assert_clean();
    }
}
