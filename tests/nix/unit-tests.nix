# nucleus's library unit tests (the test program cargo built), run inside a
# Nix build sandbox: no /usr, no /etc beyond Nix's minimal one, no network,
# an unprivileged build user. The build fails if any test fails, or if it
# is not sandboxed after all.
{
  busyboxFile ? /usr/bin/busybox,
  # The unit-test program, and its libraries as JSON (see host-program.nix).
  program,
  librariesJson,
}:
let
  closures = import ../closures/lib.nix { inherit busyboxFile; };
  unitTests = import ./host-program.nix {
    inherit busyboxFile program;
    name = "nucleus-unit-tests";
    libraries = builtins.fromJSON librariesJson;
  };
in
closures.script "nucleus-unit-tests-in-sandbox" ''
  set -e
  for host in /usr /etc/hostname /lib64 /run; do
    if [ -e "$host" ]; then
      echo "$host exists: this build is not sandboxed" >&2
      exit 1
    fi
  done
  # The report is the output, so a build Nix already has still shows it.
  ${unitTests}/bin/nucleus-unit-tests > report 2>&1 || { cat report >&2; exit 1; }
  cat report >&2
  cp report $out
''
