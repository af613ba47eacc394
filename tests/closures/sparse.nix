# A store path holding one sparse 2 GiB file: it costs no disk, reads fast,
# and still makes an image take long enough to be stopped half-way.
{ busyboxFile ? /usr/bin/busybox }:
let t = import ./lib.nix { inherit busyboxFile; };
in t.script "sparse" ''
  mkdir $out
  truncate -s 2G $out/zeros
''
