# A closure of `width` leaves (more than nucleus keeps store views for), the
# toolbox, and a stamp: a store path whose contents differ each time it is
# built (the kernel's random uuid), so that deleting it and building it again
# gives new contents under the same store path, as a path that the garbage
# collector deleted and Nix built again may. `salt` makes the stamp and the
# top level one test's own, so that it may delete them.
{ busyboxFile ? /usr/bin/busybox, width ? 300, salt ? "0" }:
let
  t = import ./lib.nix { inherit busyboxFile; };
  leaves = builtins.genList (i: builtins.toFile "leaf-${toString i}" "leaf ${toString i}\n") width;
  stamp = t.script "stamp-${salt}" ''
    mkdir $out
    cat /proc/sys/kernel/random/uuid > $out/stamp
  '';
in derivation {
  name = "stamped-${salt}";
  system = builtins.currentSystem;
  builder = "${t.busybox}/bin/sh";
  PATH = "${t.busybox}/bin";
  leaves = builtins.concatStringsSep "\n" leaves;
  passAsFile = [ "leaves" ];
  args = [ "-c" ''
    mkdir -p $out/bin $out/etc
    for a in ${toString t.applets}; do ln -s ${t.busybox}/bin/busybox $out/bin/$a; done
    cat "$leavesPath" > $out/etc/leaves
    echo ${stamp} > $out/etc/stamp
  '' ];
}
