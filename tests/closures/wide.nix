# A closure of `width` small leaf paths plus the toolbox: far more store
# paths than runsc accepts as separate bind mounts.
{ busyboxFile ? /usr/bin/busybox, width ? 600 }:
let
  t = import ./lib.nix { inherit busyboxFile; };
  leaves = builtins.genList (i: builtins.toFile "leaf-${toString i}" "leaf ${toString i}\n") width;
in t.toolbox "wide" ''
  for leaf in ${toString leaves}; do echo $leaf; done > $out/etc/leaves
''
