//! Lifecycle: names, ps/state/kill/delete, signals, timeouts, no orphans,
//! parallel runs, and hooks confined to /nix/store.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Starts `nucleus run --name NAME hello -- /bin/sh -c SCRIPT` in the
/// background, with stdout piped.
fn spawn(w: &World, name: &str, script: &str) -> Child {
    w.nucleus()
        .args(["run", "--name", name, &hello(), "--", "/bin/sh", "-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the container reports `running` and its workload printed a
/// line (so its signal handlers are installed).
fn wait_ready(w: &World, child: &mut Child, name: &str) {
    use std::io::BufRead;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let state = w.run(&["state", name]);
        if stdout(&state).contains("\"running\"") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
}

use libc::{SIGINT, SIGKILL, SIGTERM, SIGUSR1};

#[test]
fn signals_reach_a_trapping_workload() {
    let w = World::new();
    for (sig, name, expected) in [(SIGTERM, "TERM", 42), (SIGINT, "INT", 43), (SIGUSR1, "USR1", 44)] {
        let script =
            format!("trap 'echo got-{name}; exit {expected}' {name}; echo ready; while true; do sleep 0.1; done");
        let container = format!("sig-{}", name.to_lowercase());
        let mut child = spawn(&w, &container, &script);
        wait_ready(&w, &mut child, &container);
        signal(&child, sig);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(expected), "{name}: {}", stderr(&out));
        assert_eq!(stdout(&out), format!("got-{name}\n"));
    }
    w.assert_clean();
}

#[test]
fn ps_state_kill_and_delete_a_named_container() {
    let w = World::new();
    let mut child = spawn(&w, "web", "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.1; done");
    wait_ready(&w, &mut child, "web");
    let ps: serde_json::Value = serde_json::from_str(&ok(&w.run(&["ps", "--json"]))).unwrap();
    assert_eq!(ps[0]["name"], "web");
    assert_eq!(ps[0]["status"], "running");
    assert!(ok(&w.run(&["ps"])).contains("web"));
    let state: serde_json::Value = serde_json::from_str(&ok(&w.run(&["state", "web"]))).unwrap();
    assert_eq!(state["id"], "web");
    assert_eq!(state["status"], "running");
    assert!(state["pid"].as_u64().unwrap() > 1);
    assert!(state["bundle"].as_str().unwrap().starts_with(w.state_root().to_str().unwrap()));
    assert!(state["ociVersion"].is_string());
    // The name is taken while the container runs.
    let clash = w.run(&["run", "--name", "web", &hello(), "--", "/bin/true"]);
    assert_status(&clash, 125);
    assert!(stderr(&clash).contains("is running"), "{}", stderr(&clash));
    // delete refuses a running container without --force.
    assert_status(&w.run(&["delete", "web"]), 125);
    ok(&w.run(&["kill", "web"]));
    let out = child.wait_with_output().unwrap();
    assert_eq!(stdout(&out), "bye\n");
    assert_eq!(out.status.code(), Some(0));
    assert!(ok(&w.run(&["ps", "--all", "--json"])).trim() == "[]");
    w.assert_clean();

    // delete --force stops a running one first.
    let mut child = spawn(&w, "db", "echo ready; sleep 30");
    wait_ready(&w, &mut child, "db");
    ok(&w.run(&["delete", "--force", "db"]));
    assert_eq!(child.wait().unwrap().code(), Some(137));
    w.assert_clean();
}

#[test]
fn a_timeout_sends_term_then_kill() {
    let w = World::new();
    let start = Instant::now();
    let out = w.run(&[
        "run",
        "--timeout",
        "1",
        &hello(),
        "--",
        "/bin/sh",
        "-c",
        "trap 'echo term; exit 1' TERM; while true; do sleep 0.1; done",
    ]);
    assert_status(&out, 124);
    assert_eq!(stdout(&out), "term\n");
    // A workload that ignores TERM is killed after the grace period.
    let out = w.run(&["run", "--timeout", "1", &hello(), "--", "/bin/sh", "-c", "trap '' TERM; sleep 60"]);
    assert_status(&out, 124);
    assert!(start.elapsed() < Duration::from_secs(30));
    w.assert_clean();
}

#[test]
fn a_killed_nucleus_leaves_no_sandbox_behind() {
    let w = World::new();
    let mut child = spawn(&w, "orphan", "echo ready; sleep 60");
    wait_ready(&w, &mut child, "orphan");
    assert!(!w.runsc_processes().is_empty());
    signal(&child, SIGKILL);
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !w.runsc_processes().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(w.runsc_processes(), Vec::<String>::new(), "runsc outlived nucleus");
    // Its supervisor cleaned up after it: not even the name is left.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ok(&w.run(&["ps", "--all", "--json"])).trim() != "[]" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ok(&w.run(&["ps", "--all", "--json"])).trim(), "[]");
    w.assert_clean();
}

#[test]
fn a_stale_name_is_reclaimed() {
    let w = World::new();
    let mut child = spawn(&w, "svc", "echo ready; sleep 60");
    wait_ready(&w, &mut child, "svc");
    signal(&child, SIGKILL);
    child.wait().unwrap();
    // As systemd would restart it after a crash: same name, no delete first.
    assert_eq!(ok(&w.run(&["run", "--name", "svc", &hello(), "--", "/bin/hello"])), "hello from nix\n");
    w.assert_clean();
}

#[test]
fn ten_parallel_runs() {
    let w = World::new();
    let children: Vec<(usize, Child)> = (0..10)
        .map(|i| {
            let child = w
                .nucleus()
                .args(["run", &hello(), "--", "/bin/sh", "-c", &format!("echo run-{i}; exit {i}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (i, child)
        })
        .collect();
    for (i, child) in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(i as i32), "{}", stderr(&out));
        assert_eq!(stdout(&out), format!("run-{i}\n"));
    }
    w.assert_clean();
}

/// A hooks file calling the test hook for `phases`, logging to `log`.
fn hooks_file(w: &World, phases: &[(&str, &str)], log: &std::path::Path) -> std::path::PathBuf {
    let hook = closure("hook").join("bin/hook");
    let mut object = serde_json::Map::new();
    for (phase, action) in phases {
        let entry = serde_json::json!({
            "path": hook,
            "args": ["hook", action, log],
            "env": ["HOOK_VAR=declared"],
            "timeout": 2,
        });
        object.entry(phase.to_string()).or_insert_with(|| serde_json::json!([])).as_array_mut().unwrap().push(entry);
    }
    let file = w.tmp.path().join(format!("hooks-{}.json", phases.len()));
    std::fs::write(&file, serde_json::Value::Object(object).to_string()).unwrap();
    file
}

fn log_lines(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log).unwrap_or_default().lines().map(String::from).collect()
}

#[test]
fn hook_phases_run_once_each_in_order_with_state_on_stdin() {
    let w = World::new();
    let log = w.tmp.path().join("hooks.log");
    let hooks = hooks_file(
        &w,
        &[("poststop", "poststop"), ("poststart", "poststart"), ("createRuntime", "env"), ("prestart", "prestart")],
        &log,
    );
    let out = w.run(&[
        "run",
        "--name",
        "hooked",
        "--hooks",
        hooks.to_str().unwrap(),
        &hello(),
        "--",
        "/bin/sh",
        "-c",
        "exit 5",
    ]);
    assert_status(&out, 5);
    let lines = log_lines(&log);
    let phases: Vec<&str> =
        lines.iter().filter(|l| !l.starts_with("  env: ")).map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(phases, ["prestart", "env", "poststart", "poststop"], "{lines:#?}");
    for line in lines.iter().filter(|l| !l.starts_with("  env: ")) {
        let state: serde_json::Value = serde_json::from_str(line.split_once(' ').unwrap().1).unwrap();
        // runsc knows the container by a hashed id; the name is an annotation.
        assert!(state["id"].as_str().unwrap().starts_with("nucleus-"), "{state}");
        assert_eq!(state["annotations"]["nucleus.container-name"], "hooked");
        assert!(state["bundle"].as_str().unwrap().ends_with("/hooked/bundle"));
    }
    // Only the declared environment, plus what busybox sh sets by itself
    // (PWD, SHLVL, and its built-in PATH when none is given): not the host's.
    let env: Vec<&str> = lines.iter().filter_map(|l| l.strip_prefix("  env: ")).collect();
    let shell_own = ["PWD=", "SHLVL=", "PATH=/sbin:/usr/sbin:/bin:/usr/bin"];
    let foreign: Vec<&&str> =
        env.iter().filter(|e| !e.starts_with("HOOK_VAR=") && !shell_own.iter().any(|s| e.starts_with(s))).collect();
    assert!(env.contains(&"HOOK_VAR=declared") && foreign.is_empty(), "{env:?}");
    w.assert_clean();
}

/// Hooks start with no signal blocked, and outside nucleus's process
/// group. nucleus blocks the signals it forwards to the workload (TERM,
/// INT, HUP, QUIT, USR1, USR2, WINCH), and a blocked signal stays blocked
/// across `exec`: runsc, and every hook it runs, would start with them
/// blocked (a hook waiting for SIGUSR1 would wait forever). And a runsc in
/// nucleus's process group (a terminal's foreground group) would be ended
/// by a Ctrl-C half-way through `delete` and its poststop hooks.
#[test]
fn hooks_start_with_no_signal_blocked_outside_nucleus_s_process_group() {
    let w = World::new();
    let log = w.tmp.path().join("hooks.log");
    let phases = [("createRuntime", "signals"), ("prestart", "signals"), ("poststop", "signals")];
    let hooks = hooks_file(&w, &phases, &log);
    let child = w
        .nucleus()
        .args(["run", "--hooks", hooks.to_str().unwrap(), &hello(), "--", "/bin/true"])
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let group = child.id().to_string();
    let out = child.wait_with_output().unwrap();
    assert_status(&out, 0);
    let lines = log_lines(&log);
    let masks: Vec<&str> = lines.iter().filter_map(|l| l.trim().strip_prefix("SigBlk:")).map(str::trim).collect();
    assert_eq!(masks, ["0000000000000000"; 3], "{lines:#?}");
    let groups: Vec<&str> = lines.iter().filter_map(|l| l.trim().strip_prefix("pgrp:")).map(str::trim).collect();
    assert_eq!(groups.len(), 3, "{lines:#?}");
    assert!(groups.iter().all(|g| *g != group), "a hook ran in nucleus's process group {group}: {lines:#?}");
    w.assert_clean();
}

#[test]
fn a_failing_create_runtime_hook_aborts_and_poststop_still_runs() {
    let w = World::new();
    let log = w.tmp.path().join("hooks.log");
    let hooks = hooks_file(&w, &[("createRuntime", "fail"), ("poststop", "poststop")], &log);
    let out = w.run(&["run", "--hooks", hooks.to_str().unwrap(), &hello(), "--", "/bin/sh", "-c", "echo must-not-run"]);
    assert_status(&out, 125);
    assert!(!stdout(&out).contains("must-not-run"));
    let phases: Vec<String> = log_lines(&log).iter().map(|l| l.split(' ').next().unwrap().to_string()).collect();
    assert_eq!(phases, ["fail", "poststop"]);
    w.assert_clean();
    // runsc kills a hook that outlives its timeout but then never starts
    // nor stops the sandbox; --timeout still bounds the whole run.
    let hooks = hooks_file(&w, &[("createRuntime", "hang")], &log);
    let start = Instant::now();
    let out = w.run(&["run", "--timeout", "3", "--hooks", hooks.to_str().unwrap(), &hello(), "--", "/bin/true"]);
    assert_status(&out, 124);
    assert!(start.elapsed() < Duration::from_secs(30));
    assert!(w.runsc_processes().is_empty());
    w.assert_clean();
}

#[test]
fn hooks_outside_the_store_are_refused_before_anything_runs() {
    let w = World::new();
    let hook = closure("hook").join("bin/hook");
    let copy = w.tmp.path().join("hook-copy");
    std::fs::copy(&hook, &copy).unwrap();
    let link_dir = w.tmp.path().join("links");
    std::fs::create_dir(&link_dir).unwrap();
    let outside_link = link_dir.join("to-usr");
    std::os::unix::fs::symlink("/usr/bin/true", &outside_link).unwrap();
    let log = w.tmp.path().join("never.log");
    let refused = [
        copy.display().to_string(),
        "/usr/bin/true".to_string(),
        "/nix/store/../../usr/bin/true".to_string(),
        "relative/hook".to_string(),
        outside_link.display().to_string(),
        format!("{}/../bin/hook", closure("hook").display()),
        closure("hook").display().to_string(), // a directory
        "/nix/store/00000000000000000000000000000000-missing/bin/hook".to_string(),
    ];
    for path in &refused {
        for phase in ["poststop", "createContainer"] {
            let file = w.tmp.path().join("hooks.json");
            let json = serde_json::json!({ phase: [{"path": path, "args": ["hook", "x", log]}] });
            std::fs::write(&file, json.to_string()).unwrap();
            let out = w.run(&["run", "--hooks", file.to_str().unwrap(), &hello(), "--", "/bin/sh", "-c", "echo ran"]);
            assert_status(&out, 125);
            assert!(stdout(&out).is_empty(), "{path}");
            assert!(stderr(&out).contains("hook"), "{path}: {}", stderr(&out));
        }
    }
    // Phases runsc would skip silently are refused, even for a good hook.
    for phase in ["createContainer", "startContainer"] {
        let file = w.tmp.path().join("hooks.json");
        std::fs::write(&file, serde_json::json!({ phase: [{"path": hook}] }).to_string()).unwrap();
        let out = w.run(&["run", "--hooks", file.to_str().unwrap(), &hello(), "--", "/bin/true"]);
        assert_status(&out, 125);
        assert!(stderr(&out).contains(phase), "{}", stderr(&out));
    }
    assert!(!log.exists(), "a refused hook ran");
    w.assert_clean();
}

#[test]
fn a_hermetic_test_run() {
    // The recipe from the README: no network, read-only root, a writable
    // results volume, the suite's status, a timeout, nothing of the host's
    // environment.
    let w = World::new();
    let results = w.tmp.path().join("results");
    std::fs::create_dir(&results).unwrap();
    let suite = "echo 'ok 1 - store is visible' > /results/report.tap; \
                 env > /results/env.txt; \
                 nc -w 1 127.0.0.1 1 </dev/null 2>/dev/null && echo 'network reached' >> /results/report.tap; \
                 exit 3";
    let out = w
        .nucleus()
        .env("SECRET_TOKEN", "hunter2")
        .args(["run", "--timeout", "60", "-v", "./results:/results:rw", &hello(), "--", "/bin/sh", "-c", suite])
        .output()
        .unwrap();
    assert_status(&out, 3);
    assert_eq!(std::fs::read_to_string(results.join("report.tap")).unwrap(), "ok 1 - store is visible\n");
    let env = std::fs::read_to_string(results.join("env.txt")).unwrap();
    assert!(!env.contains("SECRET_TOKEN"), "{env}");
    w.assert_clean();
}
