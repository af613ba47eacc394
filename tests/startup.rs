//! Start-up: the closure cache and the store views kept between runs show
//! exactly the closure, and never a store path that has been deleted.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use common::*;
use nucleus::sandbox::views::{VIEWS_DIR, WORTH_KEEPING};

/// Leaves in the test closures: enough for their views to be kept.
const WIDTH: &str = "300";

/// The keys of the views kept in `w`'s state root.
fn kept(w: &World) -> Vec<String> {
    entries(&w.state_root().join(VIEWS_DIR))
        .into_iter()
        .filter(|e| !e.starts_with('.') && !e.ends_with(".used"))
        .collect()
}

/// Mounts of the host's table below `w`'s state root.
fn mounts_below(w: &World) -> Vec<String> {
    let root = w.state_root().display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&root))
        .map(String::from)
        .collect()
}

/// `nucleus -v run CLOSURE -- /bin/sh -c SCRIPT`: its stdout, and whether
/// it used a view kept before (it says so at -v).
fn run_sh(w: &World, closure: &Path, script: &str) -> (String, bool) {
    let out = w.run(&["-v", "run", closure.to_str().unwrap(), "--", "/bin/sh", "-c", script]);
    let log = stderr(&out);
    (ok(&out), log.contains("store view from a kept view") && !log.contains("kept a store view"))
}

/// The base names of `nix-store -qR PATH`, sorted.
fn names(path: &Path) -> Vec<String> {
    requisites(path).iter().map(|p| p.trim_start_matches("/nix/store/").to_string()).collect()
}

#[test]
fn a_large_closure_keeps_its_view_and_it_shows_exactly_the_closure() {
    let w = World::new();
    let many = closure_with("many", &[("width", WIDTH)]);
    let expected = names(&many);
    assert!(expected.len() >= WORTH_KEEPING);
    let script = "ls /nix/store; cat $(head -n 1 /etc/leaves); ls -l /bin/sh";
    let (first, reused) = run_sh(&w, &many, script);
    assert!(!reused, "the first run made the view");
    let keys = kept(&w);
    assert_eq!(keys.len(), 1, "{keys:?}");
    let (second, reused) = run_sh(&w, &many, script);
    assert!(reused, "the second run used the kept view");
    assert_eq!(kept(&w), keys);
    assert_eq!(first, second);
    let listed: Vec<&str> = second.lines().take(expected.len()).collect();
    assert_eq!(listed, expected, "/nix/store shows exactly the closure");
    assert!(second.contains("leaf 0\n"), "{second}");
    // The view is the only thing of the run left in the host's mount table,
    // and `nucleus gc` takes it away, with the closure cache.
    w.assert_clean();
    ok(&w.run(&["gc"]));
    assert!(mounts_below(&w).is_empty(), "{:?}", mounts_below(&w));
    assert!(!w.state_root().join(VIEWS_DIR).exists());
    assert!(!w.state_root().join(".cache/closures").exists());
    // A run after that makes it again.
    let (third, reused) = run_sh(&w, &many, script);
    assert!(!reused);
    assert_eq!(third, first);
}

#[test]
fn a_small_closure_or_a_dry_run_keeps_no_view() {
    let w = World::new();
    let hello = closure("hello");
    ok(&w.run(&["run", hello.to_str().unwrap(), "--", "/bin/true"]));
    assert!(!w.state_root().join(VIEWS_DIR).exists());
    let fresh = World::new();
    let many = closure_with("many", &[("width", WIDTH)]);
    fresh.dry_run(&[many.to_str().unwrap(), "--", "/bin/true"]);
    assert!(!fresh.state_root().exists(), "a dry run created state");
    w.assert_clean();
}

/// Builds `tests/closures/stamped.nix` with `salt`, every time (never from
/// the harness's memo: the test deletes and builds it again).
fn build_stamped(salt: &str) -> PathBuf {
    let file = repo().join("tests/closures/stamped.nix");
    let out = Command::new(nix_bin("nix-build"))
        .env("NIX_CONFIG", NIX_CONFIG)
        .args(["--no-out-link", "--option", "sandbox", "true", "--option", "substituters", ""])
        .arg(&file)
        .args(["--arg", "busyboxFile", &busybox_file(), "--arg", "width", WIDTH, "--argstr", "salt", salt])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "nix-build {} failed", file.display());
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Deletes store paths this test built (and nothing references).
fn delete(paths: &[&Path]) {
    let status = Command::new(nix_bin("nix-store")).arg("--delete").args(paths).stderr(Stdio::null()).status().unwrap();
    assert!(status.success(), "nix-store --delete {paths:?}");
}

#[test]
fn a_path_deleted_and_built_again_is_never_shown_from_an_old_view() {
    let w = World::new();
    let salt = format!("t{}", std::process::id());
    let root = build_stamped(&salt);
    let stamp = PathBuf::from(std::fs::read_to_string(root.join("etc/stamp")).unwrap().trim());
    let script = "cat $(cat /etc/stamp)/stamp";
    let before = std::fs::read_to_string(stamp.join("stamp")).unwrap();
    let (shown, _) = run_sh(&w, &root, script);
    assert_eq!(shown, before);
    let old = kept(&w);
    assert_eq!(old.len(), 1);
    // The collector deletes the stamp (and the top level, which refers to
    // it); Nix builds them again, with new contents at the same paths.
    delete(&[&root, &stamp]);
    assert!(!stamp.exists());
    assert_eq!(build_stamped(&salt), root);
    let after = std::fs::read_to_string(stamp.join("stamp")).unwrap();
    assert_ne!(after, before);
    let (shown, reused) = run_sh(&w, &root, script);
    assert!(!reused, "the old view was used");
    assert_eq!(shown, after, "the sandbox saw the deleted stamp");
    // The old view, which held the deleted files, is gone.
    let new = kept(&w);
    assert_eq!(new.len(), 1, "{new:?}");
    assert_ne!(new, old);
    // Deleted for good: the run is refused, not shown a stale view.
    delete(&[&root, &stamp]);
    let out = w.run(&["run", root.to_str().unwrap(), "--", "/bin/true"]);
    assert_refused(&out);
    w.assert_clean();
}

/// Makes the view `key` look unused for 20 minutes, past its idle time.
fn age(w: &World, key: &str) {
    let used = w.state_root().join(VIEWS_DIR).join(format!("{key}.used"));
    let file = std::fs::File::options().write(true).open(&used).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(20 * 60)).unwrap();
}

/// Mounts below `w`'s state root that mention `key`.
fn mounts_of(w: &World, key: &str) -> usize {
    mounts_below(w).iter().filter(|l| l.contains(key)).count()
}

#[test]
fn an_idle_view_goes_with_the_next_run_whatever_it_runs() {
    let w = World::new();
    let first = closure_with("many", &[("width", WIDTH)]);
    let second = closure_with("many", &[("width", "301")]);
    run_sh(&w, &first, "true");
    let first_key = kept(&w);
    assert_eq!(first_key.len(), 1);
    // Used again, a view is not idle.
    age(&w, &first_key[0]);
    let (_, reused) = run_sh(&w, &first, "true");
    assert!(reused);
    assert_eq!(kept(&w), first_key);
    // A run that uses another kept view takes an idle one away.
    run_sh(&w, &second, "true");
    let both = kept(&w);
    assert_eq!(both.len(), 2, "{both:?}");
    age(&w, &first_key[0]);
    let (_, reused) = run_sh(&w, &second, "true");
    assert!(reused);
    let left = kept(&w);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(!left.contains(&first_key[0]));
    assert_eq!(mounts_of(&w, &first_key[0]), 0);
    // So does a run of a closure too small to keep a view.
    age(&w, &left[0]);
    ok(&w.run(&["run", closure("hello").to_str().unwrap(), "--", "/bin/true"]));
    assert!(kept(&w).is_empty(), "{:?}", kept(&w));
    assert_eq!(mounts_of(&w, &left[0]), 0);
    ok(&w.run(&["gc"]));
    assert!(mounts_below(&w).is_empty(), "{:?}", mounts_below(&w));
}

/// A view's namespace file swapped under the views directory (for another
/// closure's view, or for the host's own mount namespace) is not believed:
/// the run shows exactly its closure, and the view is made again.
#[test]
fn a_swapped_view_is_not_believed() {
    let w = World::new();
    let first = closure_with("many", &[("width", WIDTH)]);
    let second = closure_with("many", &[("width", "301")]);
    let script = "ls /nix/store";
    run_sh(&w, &first, script);
    let first_key = kept(&w);
    run_sh(&w, &second, script);
    let second_key: Vec<String> = kept(&w).into_iter().filter(|k| !first_key.contains(k)).collect();
    let views = w.state_root().join(VIEWS_DIR);
    // A copy of the host's mount namespace, held by a process of the test's.
    let holder =
        Holder(Command::new("unshare").args(["-m", "--propagation", "private", "sleep", "600"]).spawn().unwrap());
    let host = PathBuf::from(format!("/proc/{}/ns/mnt", holder.0.id()));
    eventually(Duration::from_secs(5), "the namespace is made", || {
        std::fs::read_link(&host).ok() != std::fs::read_link("/proc/self/ns/mnt").ok()
    });
    let swaps = [views.join(&second_key[0]), host];
    for swapped_in in swaps {
        let target = views.join(&first_key[0]);
        let status = Command::new("mount").arg("--bind").arg(&swapped_in).arg(&target).status().unwrap();
        assert!(status.success(), "mount --bind {} {}", swapped_in.display(), target.display());
        let (shown, reused) = run_sh(&w, &first, script);
        assert!(!reused, "a swapped view was used");
        let listed: Vec<&str> = shown.lines().collect();
        assert_eq!(listed, names(&first), "/nix/store shows exactly the closure");
        assert_eq!(kept(&w).len(), 2);
        assert_eq!(mounts_of(&w, &first_key[0]), 1, "{:?}", mounts_below(&w));
        let (_, reused) = run_sh(&w, &first, script);
        assert!(reused, "the view made again is used");
    }
    drop(holder);
    ok(&w.run(&["gc"]));
    assert!(mounts_below(&w).is_empty(), "{:?}", mounts_below(&w));
}

/// A process of the test's, ended (by its pid) when the test ends.
struct Holder(std::process::Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `gc` while runs make and use views: every run shows its closure, every
/// `gc` succeeds, and the last one leaves no mount behind.
#[test]
fn gc_while_runs_make_and_use_views() {
    let w = World::new();
    let closures = [closure_with("many", &[("width", WIDTH)]), closure_with("many", &[("width", "301")])];
    let expected: Vec<usize> = closures.iter().map(|c| names(c).len()).collect();
    std::thread::scope(|scope| {
        let runners: Vec<_> = closures
            .iter()
            .zip(&expected)
            .map(|(closure, expected)| {
                let w = &w;
                scope.spawn(move || {
                    for _ in 0..6 {
                        let (shown, _) = run_sh(w, closure, "ls /nix/store | wc -l");
                        assert_eq!(shown.trim(), expected.to_string());
                    }
                })
            })
            .collect();
        while runners.iter().any(|r| !r.is_finished()) {
            let out = w.run(&["gc"]);
            assert!(out.status.success(), "gc: {}", stderr(&out));
        }
        for runner in runners {
            runner.join().unwrap();
        }
    });
    ok(&w.run(&["gc"]));
    assert!(mounts_below(&w).is_empty(), "{:?}", mounts_below(&w));
    w.assert_clean();
}
