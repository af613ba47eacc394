# The toolbox plus the busybox applets an attacker reaches for: raw sockets
# (ping, arping, traceroute), namespaces and mounts (unshare, chroot,
# umount), and the kernel's own controls (devmem, dmesg, sysctl, ip,
# ifconfig). tests/security.rs runs them inside the sandbox.
{ busyboxFile ? /usr/bin/busybox }:
let t = import ./lib.nix { inherit busyboxFile; };
in t.toolbox "nucleus-probes" ''
  for a in ping arping traceroute unshare chroot umount devmem dmesg sysctl ip ifconfig; do
    ln -s ${t.busybox}/bin/busybox $out/bin/$a
  done
''
