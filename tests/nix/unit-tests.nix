# nucleus's library unit tests (the test program cargo built), run inside a
# Nix build sandbox: no /usr, no /etc beyond Nix's minimal one, no network,
# an unprivileged build user. The build fails if any test fails, or if it
# is not sandboxed after all.
{
  busyboxFile ? /usr/bin/busybox,
  # The unit-test program and its libraries, as host-program.nix takes them.
  program,
  libraries,
}:
let
  closures = import ../closures/lib.nix { inherit busyboxFile; };
  unitTests = import ./host-program.nix {
    inherit busyboxFile program libraries;
    name = "nucleus-unit-tests";
  };
in
closures.script "nucleus-unit-tests-in-sandbox" ''
  for host in /usr /etc/hostname /lib64 /run; do
    if [ -e "$host" ]; then
      echo "$host exists: this build is not sandboxed" >&2
      exit 1
    fi
  done
  ${unitTests}/bin/nucleus-unit-tests
  touch $out
''
