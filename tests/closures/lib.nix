# Helpers for the test closures: derivations whose builder is busybox's sh.
# A flake passes `system`: pure evaluation has no builtins.currentSystem.
{ busyboxFile ? /usr/bin/busybox, system ? builtins.currentSystem }:
rec {
  busybox = import ./busybox.nix { inherit busyboxFile system; };

  # A derivation built by a shell script; the script sees busybox on PATH.
  script = name: text: derivation {
    inherit name system;
    builder = "${busybox}/bin/sh";
    PATH = "${busybox}/bin";
    args = [ "-c" text ];
  };

  applets = [ "sh" "ls" "cat" "echo" "mkdir" "touch" "rm" "wc" "id" "hostname" "sleep" "kill"
              "mount" "mknod" "chmod" "env" "head" "dd" "stat" "sort" "readlink" "nc" "ps" "grep"
              "true" "false" "printf" "test" "uname" "df" "trap" "cp" "ln" "tr" "seq" "basename"
              "stty" "tty" "wget" "httpd" "yes" ];

  # /bin with busybox applets, all resolving into the busybox store path.
  toolbox = name: extra: script name ''
    mkdir -p $out/bin $out/etc
    for a in ${toString applets}; do ln -s ${busybox}/bin/busybox $out/bin/$a; done
    echo "nucleus test closure" > $out/etc/motd
    ${extra}
  '';
}
