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

  # A toolbox that also references `count` small leaf paths, listed in
  # $out/etc/leaves. The list reaches the builder as a file (passAsFile),
  # not in its argv, so it may be longer than one argument may be (128 KiB).
  withLeaves = name: count: extra: derivation {
    inherit name system;
    builder = "${busybox}/bin/sh";
    PATH = "${busybox}/bin";
    leaves = builtins.concatStringsSep "\n"
      (builtins.genList (i: builtins.toFile "leaf-${toString i}" "leaf ${toString i}\n") count);
    passAsFile = [ "leaves" ];
    args = [ "-c" ''
      mkdir -p $out/bin $out/etc
      for a in ${toString applets}; do ln -s ${busybox}/bin/busybox $out/bin/$a; done
      cat "$leavesPath" > $out/etc/leaves
      ${extra}
    '' ];
  };
}
