# An OCI hook for the tests: appends "PHASE <state JSON from stdin>" to the
# file named by its second argument. Hooks run on the host, so the busybox
# it runs with comes from the store, like everything else here.
{ busyboxFile ? /usr/bin/busybox }:
let t = import ./lib.nix { inherit busyboxFile; };
in t.script "nucleus-test-hook" ''
  mkdir -p $out/bin
  printf '#!${t.busybox}/bin/sh\nstate=$(${t.busybox}/bin/busybox cat)\necho "$1 $state" >> "$2"\n[ "$1" != fail ] || exit 3\n' > $out/bin/hook
  chmod 555 $out/bin/hook
''
