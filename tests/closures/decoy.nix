# A store path that no other test closure references.
{ busyboxFile ? /usr/bin/busybox }:
let t = import ./lib.nix { inherit busyboxFile; };
in t.script "nucleus-decoy" ''
  echo "if you can read this, the store view leaks" > $out
''
