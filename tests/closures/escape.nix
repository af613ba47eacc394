# A top level whose /etc points outside its closure; nucleus must refuse it.
{ busyboxFile ? /usr/bin/busybox }:
let t = import ./lib.nix { inherit busyboxFile; };
in t.script "escape" ''
  mkdir -p $out/bin
  ln -s ${t.busybox}/bin/busybox $out/bin/sh
  ln -s /etc $out/etc
''
