# Hermetic test runs: a test suite built by Nix, run under nucleus with no
# network, a read-only root holding only the suite's closure, a writable
# results directory and a deadline; the suite's exit status comes back.
# Part of nix/lib.nix, which passes its argument builder in.
{ mkRunArgs }:
let
  # POSIX shell quoting: single quotes, each ' written as '\''.
  escapeShellArg = arg: "'${builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString arg)}'";
  escapeShellArgs = args: builtins.concatStringsSep " " (map escapeShellArg args);

  # mkTestRunner: a package whose program runs `tests` (a derivation) under
  # nucleus. `command` is the program and its arguments inside the sandbox
  # (null: the suite's main program). RESULTS, relative to the working
  # directory unless absolute, is created if missing and shown read-write
  # at /results. The program's exit status is the suite's: 124 after
  # `timeout` seconds, 125 when nucleus itself failed. nucleus needs root
  # unless `rootless`.
  mkTestRunner =
    {
      pkgs,
      tests,
      command ? null,
      timeout ? 3600,
      nucleus ? pkgs.nucleus or (pkgs.callPackage ./package.nix { }),
      name ? "nucleus-test-run",
      results ? "results",
      rootless ? false,
      extraOptions ? [ ],
    }:
    let
      options = mkRunArgs { inherit timeout rootless extraOptions; };
      # [ "run" INSTALLABLE "--" COMMAND... ], without its "run".
      target = builtins.tail (mkRunArgs {
        closure = tests;
        inherit command;
      });
    in
    pkgs.writeShellScriptBin name ''
      set -eu
      results=${escapeShellArg results}
      case "$results" in
        /*) ;;
        *) results="$PWD/$results" ;;
      esac
      mkdir -p -- "$results"
      exec ${escapeShellArg "${nucleus}/bin/nucleus"} ${escapeShellArgs options} \
        --volume "$results:/results:rw" ${escapeShellArgs target}
    '';
in
{
  inherit mkTestRunner;

  # The same as a flake app, for `apps.<system>.NAME` and `nix run .#NAME`.
  mkTestRun = args: {
    type = "app";
    program = "${mkTestRunner args}/bin/${args.name or "nucleus-test-run"}";
  };
}
