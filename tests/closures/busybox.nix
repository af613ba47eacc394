# A store path holding a static busybox and `sh`, built from the host's
# busybox-static without nixpkgs. busybox picks its applet from argv[0], so
# the first build runs it as `busybox sh` from a directory that holds only it.
{ busyboxFile ? /usr/bin/busybox, system ? builtins.currentSystem }:
let
  source = builtins.path {
    path = dirOf busyboxFile;
    name = "busybox-static";
    filter = path: type: baseNameOf path == baseNameOf busyboxFile;
  };
in
derivation {
  name = "busybox";
  inherit system;
  builder = "${source}/${baseNameOf busyboxFile}";
  args = [ "sh" "-c" "mkdir -p $out/bin && cp ${source}/${baseNameOf busyboxFile} $out/bin/busybox && ln -s busybox $out/bin/sh" ];
}
