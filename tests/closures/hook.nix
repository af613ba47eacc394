# An OCI hook for the tests. It appends "PHASE <state JSON from stdin>" to
# the file named by its second argument; PHASE `env` also appends its
# environment, `signals` the signals it starts with blocked (SigBlk) and its
# process group, `fail` exits 3, and `hang` sleeps past any timeout. Hooks run
# on the host, so the busybox it runs with comes from the store too.
{ busyboxFile ? /usr/bin/busybox }:
let
  t = import ./lib.nix { inherit busyboxFile; };
  bb = "${t.busybox}/bin/busybox";
in
t.script "nucleus-test-hook" ''
  mkdir -p $out/bin
  cat > $out/bin/hook <<'HOOK'
  #!${t.busybox}/bin/sh
  state=$(${bb} cat)
  echo "$1 $state" >> "$2"
  case "$1" in
    env) ${bb} env | ${bb} sort | ${bb} sed 's/^/  env: /' >> "$2" ;;
    signals)
      ${bb} grep '^SigBlk' /proc/self/status | ${bb} sed 's/^/  /' >> "$2"
      echo "  pgrp: $(${bb} cut -d' ' -f5 /proc/self/stat)" >> "$2" ;;
    fail) exit 3 ;;
    hang) ${bb} sleep 30 ;;
  esac
  HOOK
  chmod 555 $out/bin/hook
''
