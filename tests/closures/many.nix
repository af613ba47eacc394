# A closure of `width` small leaf paths plus the toolbox, like wide.nix, for
# widths whose list of paths is longer than one argument may be.
{ busyboxFile ? /usr/bin/busybox, width ? 2998 }:
let t = import ./lib.nix { inherit busyboxFile; };
in t.withLeaves "many" width ''
  echo "nucleus test closure" > $out/etc/motd
''
