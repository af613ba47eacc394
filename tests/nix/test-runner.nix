# lib.mkTestRun and lib.mkTestRunner with the stand-in nixpkgs and a busybox
# test suite, for tests/nix_eval.rs (the app's shape and script) and
# tests/nix_sandbox.rs (built, then run against the real nucleus).
#
# The suite's /bin/run-tests STATUS SECONDS writes /results/report.txt,
# sleeps SECONDS and exits with STATUS.
{
  busyboxFile ? /usr/bin/busybox,
  # The host's nucleus binary; the runner's package links to it.
  nucleusBinary ? "/usr/local/bin/nucleus",
  command ? [ "/bin/run-tests" ],
  timeout ? 60,
  results ? "results",
}:
let
  nucleusLib = import ../../nix/lib.nix;
  pkgs = import ./stand-in/pkgs.nix { inherit busyboxFile; };
  closures = import ../closures/lib.nix { inherit busyboxFile; };

  suite = closures.toolbox "nucleus-test-suite" ''
    cat > $out/bin/run-tests <<'SUITE'
    #!${closures.busybox}/bin/sh
    {
      echo "suite ran as $(id -u) in $(pwd)"
      if touch /probe 2>/dev/null; then echo "the root is writable"; else echo "the root is read-only"; fi
    } > /results/report.txt
    sleep "''${2:-0}"
    exit "''${1:-0}"
    SUITE
    chmod +x $out/bin/run-tests
  '';

  nucleus = closures.script "nucleus" ''
    mkdir -p $out/bin
    ln -s ${nucleusBinary} $out/bin/nucleus
  '';

  args = {
    inherit
      pkgs
      nucleus
      command
      timeout
      results
      ;
    tests = suite;
    name = "run-suite";
  };
in
{
  inherit suite nucleus;
  app = nucleusLib.mkTestRun args;
  runner = nucleusLib.mkTestRunner args;
}
