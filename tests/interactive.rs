//! Interactive use: `run -it` with a real pseudo-terminal, `exec` into a
//! running container, `ps` and `state`, `-q` and `-v`.

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::termios::{tcgetattr, Termios};

/// A pseudo-terminal whose slave side is nucleus's terminal; the test plays
/// the user at the master side.
struct Terminal {
    master: std::fs::File,
    slave: OwnedFd,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Terminal {
    fn new(rows: u16, cols: u16) -> Terminal {
        let size = nix::pty::Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        let pty = nix::pty::openpty(Some(&size), None).unwrap();
        let master = std::fs::File::from(pty.master);
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().unwrap();
        let sink = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Terminal { master, slave: pty.slave, output }
    }

    /// `nucleus ARGS…` in a session of its own with this terminal as its
    /// controlling terminal and stdio.
    fn spawn(&self, w: &World, args: &[&str]) -> Child {
        self.spawn_with(w, &[], args)
    }

    /// [`Terminal::spawn`] with `env` set too (PATH among them).
    fn spawn_with(&self, w: &World, env: &[(&str, &str)], args: &[&str]) -> Child {
        self.spawn_program(w, env, NUCLEUS, args)
    }

    /// `PROGRAM ARGS…` in a session of its own on this terminal, with the
    /// environment [`Terminal::spawn`] gives nucleus.
    fn spawn_program(&self, w: &World, env: &[(&str, &str)], program: &str, args: &[&str]) -> Child {
        let mut cmd = Command::new("setsid");
        cmd.arg("-c").arg(program).args(args);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NIX_CONFIG", NIX_CONFIG)
            .env("NUCLEUS_STATE_ROOT", w.state_root())
            .envs(env.iter().copied())
            .current_dir(w.tmp.path());
        let stdio = || Stdio::from(self.slave.try_clone().unwrap());
        cmd.stdin(stdio()).stdout(stdio()).stderr(stdio()).spawn().unwrap()
    }

    fn type_text(&mut self, text: &str) {
        self.master.write_all(text.as_bytes()).unwrap();
    }

    /// Waits until the output so far contains `text`.
    #[track_caller]
    fn expect(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if String::from_utf8_lossy(&self.output.lock().unwrap()).contains(text) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no {text:?} in the terminal's output:\n{}", String::from_utf8_lossy(&self.output.lock().unwrap()));
    }

    fn settings(&self) -> Termios {
        tcgetattr(self.slave.as_fd()).unwrap()
    }

    /// Waits (15 s at most) for the terminal to be back in `mode`, which
    /// someone else restores.
    #[track_caller]
    fn assert_back_in(&self, mode: &Termios) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !same_settings(&self.settings(), mode) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(same_settings(&self.settings(), mode), "the terminal's mode was not restored");
    }
}

fn same_settings(a: &Termios, b: &Termios) -> bool {
    a.input_flags == b.input_flags
        && a.output_flags == b.output_flags
        && a.local_flags == b.local_flags
        && a.control_flags == b.control_flags
}

fn wait_status(child: &mut Child) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        assert!(Instant::now() < deadline, "nucleus did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A program Nix runs that asks on the terminal (ssh for a password, git
/// for credentials; here a stand-in `nix` that reads /dev/tty) fails at
/// once, in words, rather than waiting stopped on a terminal it cannot
/// read: Nix runs without one.
#[test]
fn a_nix_that_asks_on_the_terminal_fails_at_once_rather_than_waiting() {
    let w = World::new();
    let bin = w.path("asking-nix");
    std::fs::create_dir(&bin).unwrap();
    let pid_file = w.path("asking-nix.pid");
    let body = format!(
        "echo $$ > {}\nprintf 'Password: ' >/dev/tty && read -r answer </dev/tty\necho 'error: no password given' >&2\nexit 1",
        pid_file.display()
    );
    script(&bin, "nix", &body);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let terminal = Terminal::new(24, 80);
    // NIX_REMOTE names a store other than the daemon's: the closure is asked
    // of the nix command.
    let env = [("PATH", path.as_str()), ("NIX_REMOTE", "local")];
    let start = Instant::now();
    let mut nucleus = terminal.spawn_with(&w, &env, &["closure", &hello()]);
    let status =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wait_at_most(&mut nucleus, Duration::from_secs(20))));
    // A stand-in left waiting (stopped) is ended here, not left behind.
    if let Some(pid) = std::fs::read_to_string(&pid_file).ok().and_then(|p| p.trim().parse::<i32>().ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    let status = status.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    assert_eq!(status.code(), Some(125));
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
    terminal.expect("no password given");
    let shown = String::from_utf8_lossy(&terminal.output.lock().unwrap()).into_owned();
    assert!(!shown.contains("Password:"), "{shown}");
}

#[test]
fn an_interactive_shell_gets_a_terminal_and_ctrl_c_reaches_it() {
    let w = World::new();
    let mut terminal = Terminal::new(40, 100);
    let before = terminal.settings();
    let mut nucleus = terminal.spawn(&w, &["run", "-it", &hello(), "--", "/bin/sh"]);
    terminal.expect("# ");
    terminal.type_text("stty size; [ -t 0 ] && echo on-a-terminal\n");
    terminal.expect("40 100");
    terminal.expect("on-a-terminal");
    // Ctrl-C interrupts the foreground job inside; the shell goes on.
    terminal.type_text("sleep 30\n");
    std::thread::sleep(Duration::from_millis(500));
    terminal.type_text("\x03");
    terminal.type_text("echo sleep-ended-$?\n");
    terminal.expect("sleep-ended-130");
    terminal.type_text("echo still-here\n");
    terminal.expect("still-here");
    // The window size follows the terminal's.
    let size = rustix::termios::Winsize { ws_row: 30, ws_col: 90, ws_xpixel: 0, ws_ypixel: 0 };
    rustix::termios::tcsetwinsize(&terminal.master, size).unwrap();
    signal(&nucleus, libc::SIGWINCH);
    std::thread::sleep(Duration::from_millis(300));
    terminal.type_text("stty size\n");
    terminal.expect("30 90");
    terminal.type_text("exit 3\n");
    assert_eq!(wait_status(&mut nucleus), 3);
    assert!(same_settings(&terminal.settings(), &before), "the terminal's mode was not restored");
    w.assert_clean();
}

#[test]
fn a_killed_run_gives_the_terminal_its_mode_back() {
    let w = World::new();
    let terminal = Terminal::new(24, 80);
    let before = terminal.settings();
    let mut nucleus = terminal.spawn(&w, &["run", "-it", &hello(), "--", "/bin/sh"]);
    terminal.expect("# ");
    assert!(!same_settings(&terminal.settings(), &before), "the terminal is not raw");
    // SIGKILL: nucleus restores nothing itself; its supervisor, which
    // cleans up after it, puts the terminal back.
    signal(&nucleus, libc::SIGKILL);
    nucleus.wait().unwrap();
    terminal.assert_back_in(&before);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !entries(&w.state_root()).iter().all(|e| e == ".cache") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    w.assert_clean();
}

#[test]
fn tty_needs_a_terminal() {
    let w = World::new();
    let out = w.run(&["run", "-t", &hello(), "--", "/bin/true"]);
    assert_refused(&out);
    assert!(stderr(&out).contains("terminal"), "{}", stderr(&out));
    w.assert_clean();
}

/// Starts a long-lived container and waits until it runs.
fn service(w: &World, name: &str, options: &[&str]) -> Child {
    let child = w.spawn_sh(name, options, "echo up; trap 'exit 0' TERM; while :; do sleep 0.1; done");
    w.wait_running(name);
    child
}

fn stop(w: &World, name: &str, mut child: Child) {
    ok(&w.run(&["kill", name]));
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn exec_runs_in_the_container_with_its_mounts_status_and_signals() {
    let w = World::new();
    let data = w.path("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("file"), "from the volume\n").unwrap();
    let volume = format!("{}:/data", data.display());
    for network in ["none", "sandbox"] {
        let name = format!("svc-{network}");
        let child = service(&w, &name, &["-v", &volume, "--network", network]);
        let out = w.run(&["exec", &name, "--", "/bin/sh", "-c", "cat /data/file; echo to-stderr >&2; exit 7"]);
        assert_status(&out, 7);
        assert_eq!(stdout(&out), "from the volume\n");
        assert_eq!(stderr(&out), "to-stderr\n");
        let out = w.run(&["exec", "-u", "1000:100", "-e", "GREETING=hi", "-w", "/tmp", &name, "--"]);
        assert_refused(&out);
        let out = w.run(&[
            "exec",
            "-u",
            "1000:100",
            "-e",
            "GREETING=hi",
            "-w",
            "/tmp",
            &name,
            "--",
            "/bin/sh",
            "-c",
            "id -u; id -g; echo $GREETING; pwd",
        ]);
        assert_eq!(ok(&out), "1000\n100\nhi\n/tmp\n");
        // A signal to `nucleus exec` reaches the command.
        let mut exec = w
            .nucleus()
            .args([
                "exec",
                &name,
                "--",
                "/bin/sh",
                "-c",
                "trap 'echo got-term; exit 5' TERM; echo ready; while :; do sleep 0.1; done",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 6];
        exec.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
        assert_eq!(&first, b"ready\n");
        signal(&exec, libc::SIGTERM);
        let out = exec.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(5));
        assert_eq!(stdout(&out), "got-term\n");
        // Output into a regular file arrives intact, after what was there.
        let log = w.path(&format!("exec-{network}.log"));
        std::fs::write(&log, "kept\n").unwrap();
        let append = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        let status =
            w.nucleus().args(["exec", &name, "--", "/bin/sh", "-c", "seq 1 3"]).stdout(append).status().unwrap();
        assert!(status.success());
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "kept\n1\n2\n3\n");
        stop(&w, &name, child);
    }
    // nucleus's own failures are 125.
    assert_refused(&w.run(&["exec", "no-such", "--", "/bin/true"]));
    let out = w.run(&["run", "--name", "done", "--keep", &hello(), "--", "/bin/true"]);
    ok(&out);
    assert_refused(&w.run(&["exec", "done", "--", "/bin/true"]));
    ok(&w.run(&["delete", "done"]));
    w.assert_clean();
}

#[test]
fn exec_with_a_terminal() {
    let w = World::new();
    let child = service(&w, "tty-svc", &["--network", "sandbox"]);
    let mut terminal = Terminal::new(24, 60);
    let before = terminal.settings();
    let mut exec = terminal.spawn(&w, &["exec", "-it", "tty-svc", "--", "/bin/sh"]);
    terminal.expect("# ");
    terminal.type_text("stty size; exit 4\n");
    terminal.expect("24 60");
    assert_eq!(wait_status(&mut exec), 4);
    assert!(same_settings(&terminal.settings(), &before));
    stop(&w, "tty-svc", child);
    w.assert_clean();
}

/// `exec -it` killed outright (SIGKILL) restores nothing itself: the
/// container's supervisor, which holds the caller's terminal for that, puts
/// its mode back and ends the command; the container runs on.
#[test]
fn a_killed_exec_gives_the_terminal_its_mode_back() {
    let w = World::new();
    let child = service(&w, "tty-kill", &[]);
    let mut terminal = Terminal::new(24, 60);
    let before = terminal.settings();
    let mut exec = terminal.spawn(&w, &["exec", "-it", "tty-kill", "--", "/bin/sh"]);
    terminal.expect("# ");
    terminal.type_text("echo typed-in-raw\n");
    terminal.expect("typed-in-raw");
    assert!(!same_settings(&terminal.settings(), &before), "the terminal is not raw");
    // The caller's own terminal went to the supervisor, not in: every host
    // file the command holds is its one pseudo-terminal (the shell keeps a
    // copy of it at fd 10).
    terminal.type_text("echo host-files-$(ls -l /proc/self/fd | grep -o 'host:.[0-9]*' | sort -u | wc -l)\n");
    terminal.expect("host-files-1\r");
    signal(&exec, libc::SIGKILL);
    exec.wait().unwrap();
    terminal.assert_back_in(&before);
    assert!(ok(&w.run(&["exec", "tty-kill", "--", "/bin/echo", "still-running"])).contains("still-running"));
    stop(&w, "tty-kill", child);
    w.assert_clean();
}

/// The processes whose command line mentions `text`, and their parents.
fn processes_mentioning(text: &str) -> Vec<(i32, i32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok());
        if cmdline.contains(text) {
            found.push((pid, ppid.unwrap_or(0), cmdline));
        }
    }
    found
}

/// As above, with `nucleus run` a background job of the very terminal
/// `exec -it` runs on (a shell's `&`): its supervisor is then in a
/// background process group of that terminal, where changing the mode is
/// answered with SIGTTOU. The mode still comes back, and the container
/// still answers.
#[test]
fn a_killed_exec_s_terminal_comes_back_when_run_is_a_background_job() {
    let w = World::new();
    let terminal = Terminal::new(24, 60);
    let before = terminal.settings();
    let hello = hello();
    let run_log = w.path("run.log");
    let script = format!(
        "set -m\n\
         {NUCLEUS} run --name bg {hello} -- /bin/sh -c 'trap \"exit 0\" TERM; while :; do sleep 0.1; done' >{log} 2>&1 &\n\
         until {NUCLEUS} exec bg -- /bin/true >/dev/null 2>&1; do sleep 0.2; done\n\
         {NUCLEUS} exec -it bg -- /bin/sh\n\
         echo exec-ended-$?\n\
         wait\n",
        log = run_log.display()
    );
    let mut shell = terminal.spawn_program(&w, &[], "bash", &["-c", &script]);
    let state_root = w.state_root().display().to_string();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        terminal.expect("# ");
        assert!(!same_settings(&terminal.settings(), &before), "the terminal is not raw");
        let exec = processes_mentioning(" exec -it bg ");
        let (pid, _, _) = exec.iter().find(|(_, ppid, _)| *ppid == shell.id() as i32).expect("the exec process");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), nix::sys::signal::Signal::SIGKILL).unwrap();
        terminal.expect("exec-ended-137");
        terminal.assert_back_in(&before);
        ok(&w.run(&["kill", "bg"]));
        assert_eq!(wait_at_most(&mut shell, Duration::from_secs(20)).code(), Some(0));
    }));
    if outcome.is_err() {
        // Whatever this test started and left: the run and its supervisor
        // (by the container's name, which no other test uses), and runsc
        // (by the test's state root).
        let left = processes_mentioning(" run --name bg ").into_iter().chain(processes_mentioning(&state_root));
        for (pid, _, _) in left {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        let _ = shell.kill();
        let _ = shell.wait();
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    w.assert_clean();
}

/// What is typed before the command runs waits for it: a Ctrl-D among it
/// does not end the relay of the keyboard (which would leave a session
/// that no key reaches, Ctrl-C included, the terminal being raw).
#[test]
fn keys_typed_before_exec_starts_do_not_end_its_input() {
    let w = World::new();
    let child = service(&w, "early", &[]);
    let mut terminal = Terminal::new(24, 60);
    let mut exec = terminal.spawn(&w, &["exec", "-it", "early", "--", "/bin/sh"]);
    terminal.type_text("\x04");
    let typed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        terminal.expect("# ");
        terminal.type_text("echo after-$((6*7))\n");
        terminal.expect("after-42");
        terminal.type_text("exit 3\n");
    }));
    if typed.is_err() {
        // A session no key reaches is ended here, not left behind.
        let _ = exec.kill();
    }
    let status = wait_at_most(&mut exec, Duration::from_secs(20));
    stop(&w, "early", child);
    if let Err(panic) = typed {
        std::panic::resume_unwind(panic);
    }
    assert_eq!(status.code(), Some(3));
    w.assert_clean();
}

#[test]
fn ps_and_state_tell_the_whole_story() {
    let w = World::new();
    let child = service(&w, "web", &[]);
    let ps: serde_json::Value = serde_json::from_str(&ok(&w.run(&["ps", "--json"]))).unwrap();
    let state: serde_json::Value = serde_json::from_str(&ok(&w.run(&["state", "web"]))).unwrap();
    assert_eq!(ps[0]["name"], "web");
    assert_eq!(ps[0]["status"], "running");
    assert_eq!(ps[0]["installable"], hello().as_str());
    assert!(ps[0]["pid"].as_u64().is_some_and(|p| p > 1), "{ps}");
    assert_eq!(ps[0]["pid"], state["pid"], "ps and state disagree on the pid");
    let pid = state["pid"].as_u64().unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(String::from_utf8_lossy(&cmdline).contains("runsc"), "pid {pid} is not the sandbox");
    stop(&w, "web", child);
    assert_status(&w.run(&["run", "--name", "kept", "--keep", &hello(), "--", "/bin/sh", "-c", "exit 3"]), 3);
    let table = ok(&w.run(&["ps", "--all"]));
    let line = table.lines().find(|l| l.starts_with("kept")).unwrap_or_else(|| panic!("{table}"));
    assert!(line.contains("stopped") && line.contains(" 3 ") && line.contains(&hello()), "{line}");
    let state: serde_json::Value = serde_json::from_str(&ok(&w.run(&["state", "kept"]))).unwrap();
    assert_eq!((state["status"].as_str(), state["exitStatus"].as_i64()), (Some("stopped"), Some(3)));
    assert!(state.get("pid").is_none());
    ok(&w.run(&["delete", "kept"]));
    w.assert_clean();
}

#[test]
fn quiet_leaves_only_the_workload_and_verbose_says_what_happens() {
    let w = World::new();
    let out = w.run(&["-q", "run", "--network", "host", &hello(), "--", "/bin/sh", "-c", "echo out; echo err >&2"]);
    assert_eq!((stdout(&out).as_str(), stderr(&out).as_str()), ("out\n", "err\n"));
    let out = w.run(&["-v", "run", &hello(), "--", "/bin/true"]);
    let err = stderr(&out);
    for said in ["resolved the installable", "closure", "digest", "starting the sandbox"] {
        assert!(err.contains(said), "-v does not say {said:?}:\n{err}");
    }
    assert!(stdout(&out).is_empty());
    let out = w.run(&["run", "--verbose", &hello(), "--", "/bin/true"]);
    assert!(stderr(&out).contains("digest"), "--verbose works after the subcommand");
}
