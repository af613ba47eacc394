//! Installables as `nix run` takes them: a local `path:` flake (no network,
//! no nixpkgs: busybox from the host, through tests/closures/lib.nix), the
//! main program picked without `-- COMMAND`, and `.nix` files with `-A`,
//! `--arg` and `--argstr`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

/// The flake's system: pure evaluation has no `builtins.currentSystem`.
fn system() -> String {
    format!("{}-linux", std::env::consts::ARCH)
}

/// A `path:` flake in `dir`, holding the host's busybox and copies of the
/// test closures' helpers (pure evaluation reads nothing outside the
/// flake). Its busybox is the same store path as the other tests' (same
/// file, same filter), so only the small derivations below are new.
///
/// - `packages.hello`: `hello-1.2` with /bin/hello and busybox applets;
/// - `packages.tool`: `py-tool-2.0` with bin/tool and `pname = "tool"`;
/// - `packages.default`: `multi-0.3` with bin/greet and bin/other, and
///   `meta.mainProgram = "greet"`;
/// - with `apps`: `apps.default` and `apps.tool`, both bin/other of multi.
fn write_flake(dir: &Path, apps: bool) -> String {
    std::fs::create_dir_all(dir.join("closures")).unwrap();
    std::fs::copy(busybox_file(), dir.join("busybox")).unwrap();
    for file in ["lib.nix", "busybox.nix"] {
        std::fs::copy(repo().join("tests/closures").join(file), dir.join("closures").join(file)).unwrap();
    }
    let apps = if apps {
        r#"apps.${system} = {
        default = { type = "app"; program = "${multi}/bin/other"; };
        tool = { type = "app"; program = "${multi}/bin/other"; };
      };"#
    } else {
        ""
    };
    let flake = format!(
        r#"{{
  outputs = {{ self }}:
    let
      system = "{system}";
      t = import ./closures/lib.nix {{ busyboxFile = ./busybox; inherit system; }};
      program = name: text: ''
        printf '#!${{t.busybox}}/bin/sh\n${{text}}\n' > $out/bin/${{name}}
        chmod +x $out/bin/${{name}}
      '';
      hello = t.toolbox "hello-1.2" (program "hello" "echo hello from a flake");
      multi = t.script "multi-0.3" ''
        mkdir -p $out/bin
        ${{program "greet" "echo greet, the main program"}}
        ${{program "other" "echo other, the app"}}
      '';
      # `nix run` takes pname before the name: bin/tool, not bin/py-tool.
      tool = t.script "py-tool-2.0" ''
        mkdir -p $out/bin
        ${{program "tool" "echo tool, by pname"}}
      '' // {{ pname = "tool"; }};
    in {{
      packages.${{system}} = {{
        inherit hello tool;
        default = multi // {{ meta.mainProgram = "greet"; }};
      }};
      {apps}
    }};
}}
"#,
        system = system(),
    );
    std::fs::write(dir.join("flake.nix"), flake).unwrap();
    format!("path:{}", dir.display())
}

/// A `.nix` file taking arguments, with four packages: `hello` (named
/// `hello-1.2`, /bin/hello printing GREETING and COUNT), `tools` (bin/alpha
/// and bin/beta, neither named after it), `empty` (no bin/ at all),
/// `named` (`py-named-2.0`, `pname = "named"`, bin/named).
fn write_nix_file(dir: &Path) -> PathBuf {
    let lib = repo().join("tests/closures/lib.nix");
    let text = format!(
        r#"{{ busyboxFile, greeting ? "hello", count ? 1 }}:
let
  t = import {lib} {{ inherit busyboxFile; }};
in {{
  hello = t.script "hello-1.2" ''
    mkdir -p $out/bin
    printf '#!${{t.busybox}}/bin/sh\necho "${{greeting}} x${{toString count}}"\n' > $out/bin/hello
    chmod +x $out/bin/hello
  '';
  tools = t.script "tools-1.0" ''
    mkdir -p $out/bin
    ln -s ${{t.busybox}}/bin/busybox $out/bin/alpha
    ln -s ${{t.busybox}}/bin/busybox $out/bin/beta
  '';
  empty = t.script "empty-1.0" "mkdir $out";
  named = t.script "py-named-2.0" ''
    mkdir -p $out/bin
    printf '#!${{t.busybox}}/bin/sh\necho "named by pname"\n' > $out/bin/named
    chmod +x $out/bin/named
  '' // {{ pname = "named"; }};
}}
"#,
        lib = lib.display()
    );
    let file = dir.join("packages.nix");
    std::fs::write(&file, text).unwrap();
    file
}

/// `nix-build FILE -A ATTR` as the harness builds closures (no GC root).
fn nix_build(file: &Path, attr: &str) -> PathBuf {
    let out = Command::new(nix_bin("nix-build"))
        .env("NIX_CONFIG", NIX_CONFIG)
        .args(["--no-out-link", "--option", "substituters", ""])
        .arg(file)
        .args(["-A", attr, "--arg", "busyboxFile", &busybox_file()])
        .output()
        .unwrap();
    assert!(out.status.success(), "nix-build failed: {}", stderr(&out));
    PathBuf::from(stdout(&out).trim())
}

/// Asserts a refusal whose one line of nucleus's own is the last on
/// stderr (Nix's context for it may stand above), mentioning each of
/// `words`.
#[track_caller]
fn assert_refused_saying(out: &Output, words: &[&str]) {
    assert_status(out, 125);
    assert!(stdout(out).is_empty(), "stdout: {}", stdout(out));
    let err = stderr(out);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("nucleus: "), "{err}");
    assert_eq!(err.matches("nucleus: ").count(), 1, "{err}");
    for word in words {
        assert!(last.contains(word), "{word:?} not in {last:?}");
    }
}

// ---------------------------------------------------------------------------
// Flakes

#[test]
fn a_path_flake_package_runs_with_and_without_a_command() {
    let w = World::new();
    let flake = write_flake(&w.path("flake"), false);
    let hello = format!("{flake}#hello");
    assert_eq!(ok(&w.run(&["run", &hello, "--", "/bin/hello"])), "hello from a flake\n");
    // No app named hello, no meta.mainProgram: bin/<name without version>.
    assert_eq!(ok(&w.run(&["run", &hello])), "hello from a flake\n");
    assert_eq!(ok(&w.run(&["run", &format!("{flake}#tool")])), "tool, by pname\n");
    // The command given wins over the main program.
    assert_eq!(ok(&w.run(&["run", &hello, "--", "/bin/echo", "mine"])), "mine\n");
    w.assert_clean();
}

#[test]
fn a_flake_s_default_package_runs_its_main_program() {
    let w = World::new();
    let flake = write_flake(&w.path("flake"), false);
    assert_eq!(ok(&w.run(&["run", &flake])), "greet, the main program\n");
    assert_eq!(ok(&w.run(&["run", &format!("{flake}#default")])), "greet, the main program\n");
    w.assert_clean();
}

#[test]
fn a_flake_app_runs_its_program() {
    let w = World::new();
    let flake = write_flake(&w.path("flake"), true);
    // apps.<system>.default before packages.<system>.default, as `nix run`.
    let out = w.run(&["run", &flake]);
    assert_eq!(ok(&out), "other, the app\n");
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    assert_eq!(ok(&w.run(&["run", &format!("{flake}#tool")])), "other, the app\n");
    let full = format!("{flake}#apps.{}.tool", system());
    assert_eq!(ok(&w.run(&["run", &full])), "other, the app\n");
    // A package of the same flake still runs as a package.
    assert_eq!(ok(&w.run(&["run", &format!("{flake}#hello")])), "hello from a flake\n");
    w.assert_clean();
}

#[test]
fn a_missing_flake_output_is_refused() {
    let w = World::new();
    let flake = write_flake(&w.path("flake"), false);
    let out = w.run(&["run", &format!("{flake}#nope"), "--", "/bin/true"]);
    assert_refused_saying(&out, &["nix build", "does not provide attribute", "nope"]);
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    let missing = format!("path:{}#x", w.path("no-such-flake").display());
    let out = w.run(&["run", &missing]);
    assert_refused_saying(&out, &["no-such-flake"]);
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    w.assert_clean();
}

// ---------------------------------------------------------------------------
// The main program of a store path, a result link, a .nix file

#[test]
fn the_main_program_is_bin_name_without_its_version() {
    let w = World::new();
    let file = write_nix_file(w.tmp.path());
    let hello = nix_build(&file, "hello");
    assert!(hello.to_str().unwrap().ends_with("-hello-1.2"), "{}", hello.display());
    assert_eq!(ok(&w.run(&["run", hello.to_str().unwrap()])), "hello x1\n");
    std::os::unix::fs::symlink(&hello, w.path("result")).unwrap();
    assert_eq!(ok(&w.run(&["run", "./result"])), "hello x1\n");
    let busybox = busybox_file();
    let run = ["run", "./packages.nix", "-A", "hello", "--arg", "busyboxFile", &busybox];
    assert_eq!(ok(&w.run(&run)), "hello x1\n");
    w.assert_clean();
}

#[test]
fn no_main_program_is_refused_with_what_bin_holds() {
    let w = World::new();
    let file = write_nix_file(w.tmp.path());
    let tools = nix_build(&file, "tools");
    assert_refused_saying(&w.run(&["run", tools.to_str().unwrap()]), &["bin/tools", "alpha, beta", "--"]);
    let empty = nix_build(&file, "empty");
    assert_refused_saying(&w.run(&["run", empty.to_str().unwrap()]), &["no bin/"]);
    w.assert_clean();
}

// ---------------------------------------------------------------------------
// .nix files taking arguments

#[test]
fn a_nix_file_takes_attr_arg_and_argstr() {
    let w = World::new();
    write_nix_file(w.tmp.path());
    let busybox = busybox_file();
    let base = ["run", "./packages.nix", "--arg", "busyboxFile", busybox.as_str()];
    let run = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        w.run(&args)
    };
    assert_eq!(ok(&run(&["-A", "hello"])), "hello x1\n");
    let out = run(&["-A", "hello", "--argstr", "greeting", "hi there", "--arg", "count", "1 + 2"]);
    assert_eq!(ok(&out), "hi there x3\n");
    assert_eq!(ok(&run(&["--attr", "hello", "--", "/bin/hello"])), "hello x1\n");
    // `nix run` takes pname before the name without its version.
    assert_eq!(ok(&run(&["-A", "named"])), "named by pname\n");
    // A bad attribute or expression: 125, Nix's reason in nucleus's one line.
    let bad_attr = run(&["-A", "nope"]);
    assert_refused_saying(&bad_attr, &["nix-build", "'nope'", "not found"]);
    assert_eq!(stderr(&bad_attr).lines().count(), 1, "{}", stderr(&bad_attr));
    assert_refused_saying(&run(&["-A", "hello", "--arg", "count", "no such"]), &["undefined variable"]);
    w.assert_clean();
}

#[test]
fn nix_arguments_apply_only_to_nix_files() {
    let w = World::new();
    let flake = write_flake(&w.path("flake"), false);
    for installable in [hello(), format!("{flake}#hello")] {
        for option in [&["-A", "x"][..], &["--argstr", "a", "b"], &["--arg", "a", "1"]] {
            let mut args = vec!["run"];
            args.extend_from_slice(option);
            args.extend_from_slice(&[&installable, "--", "/bin/true"]);
            let out = w.run(&args);
            assert_refused(&out);
            assert_eq!(stderr(&out).lines().count(), 1, "{args:?}: {}", stderr(&out));
        }
    }
    w.assert_clean();
}

/// A builder's own `error: …` line just before Nix's report is shown as a
/// line of its log; the reason nucleus gives is Nix's own headline.
#[test]
fn a_failed_build_gives_nix_s_reason_not_the_builder_s_last_words() {
    let w = World::new();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let nix_file = w.path("fails.nix");
    std::fs::write(
        &nix_file,
        format!(
            "let t = import {} {{ busyboxFile = {}; }};\n\
             in t.script \"fails-{nanos}\" \"echo 'error: expected test failure'; exit 1\"\n",
            repo().join("tests/closures/lib.nix").display(),
            busybox_file()
        ),
    )
    .unwrap();
    let out = w.run(&["run", nix_file.to_str().unwrap(), "--", "/bin/true"]);
    assert_status(&out, 125);
    let err = stderr(&out);
    let reason = err.lines().last().unwrap_or_default();
    assert!(reason.contains("builder for") && reason.contains("failed with exit code 1"), "{err}");
    assert!(err.lines().any(|l| l == "error: expected test failure"), "{err}");
}
