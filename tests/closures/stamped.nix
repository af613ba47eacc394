# A closure of `width` leaves (more than nucleus keeps store views for), the
# toolbox, and a stamp: a store path whose contents differ each time it is
# built (the kernel's random uuid), so that deleting it and building it again
# gives new contents under the same store path, as a path that the garbage
# collector deleted and Nix built again may. `salt` makes the stamp and the
# top level one test's own, so that it may delete them.
{ busyboxFile ? /usr/bin/busybox, width ? 300, salt ? "0" }:
let
  t = import ./lib.nix { inherit busyboxFile; };
  stamp = t.script "stamp-${salt}" ''
    mkdir $out
    cat /proc/sys/kernel/random/uuid > $out/stamp
  '';
in t.withLeaves "stamped-${salt}" width ''
  echo ${stamp} > $out/etc/stamp
''
