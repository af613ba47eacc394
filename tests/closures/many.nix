# A closure of `width` small leaf paths plus the toolbox, like wide.nix, for
# widths whose list of paths is longer than one argument may be (128 KiB):
# the list reaches the builder as a file (passAsFile), not in its argv.
{ busyboxFile ? /usr/bin/busybox, width ? 2998 }:
let
  t = import ./lib.nix { inherit busyboxFile; };
  leaves = builtins.genList (i: builtins.toFile "leaf-${toString i}" "leaf ${toString i}\n") width;
in derivation {
  name = "many";
  system = builtins.currentSystem;
  builder = "${t.busybox}/bin/sh";
  PATH = "${t.busybox}/bin";
  leaves = builtins.concatStringsSep "\n" leaves;
  passAsFile = [ "leaves" ];
  args = [ "-c" ''
    mkdir -p $out/bin $out/etc
    for a in ${toString t.applets}; do ln -s ${t.busybox}/bin/busybox $out/bin/$a; done
    echo "nucleus test closure" > $out/etc/motd
    cat "$leavesPath" > $out/etc/leaves
  '' ];
}
