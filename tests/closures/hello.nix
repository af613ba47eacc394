# The smallest useful closure: /bin/hello (a script), busybox applets in /bin.
{ busyboxFile ? /usr/bin/busybox }:
let t = import ./lib.nix { inherit busyboxFile; };
in t.toolbox "hello" ''
  printf '#!${t.busybox}/bin/sh\necho "hello from nix"\n' > $out/bin/hello
  chmod +x $out/bin/hello
''
