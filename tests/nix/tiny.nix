# A tiny rootfs closure for tests/nix_eval.rs, built without nixpkgs:
#   nix-build --option sandbox true --option substituters '' tests/nix/tiny.nix
# A static busybox from the host becomes a store path, and a rootfs on top
# of it refers to it, so `nix-store -qR` shows a real two-path closure. The
# top level looks like lib.mkRootfs's output: bin/ and etc/.
{
  busyboxFile ? /usr/bin/busybox,
}:
let
  system = builtins.currentSystem;

  # Only the busybox file itself, not the rest of its directory.
  src = builtins.path {
    path = dirOf busyboxFile;
    name = "busybox-static";
    filter = p: _type: baseNameOf p == baseNameOf busyboxFile;
  };

  # busybox picks its applet from argv[0]: `busybox sh -c …`.
  busybox = derivation {
    name = "busybox";
    inherit system;
    builder = "${src}/${baseNameOf busyboxFile}";
    args = [
      "sh"
      "-c"
      "mkdir -p $out/bin && cp ${src}/${baseNameOf busyboxFile} $out/bin/busybox && ln -s busybox $out/bin/sh"
    ];
  };
in
derivation {
  name = "nucleus-tiny-rootfs";
  inherit system;
  builder = "${busybox}/bin/sh";
  PATH = "${busybox}/bin";
  args = [
    "-c"
    ''
      set -e
      mkdir -p $out/bin $out/etc
      ln -s ${busybox}/bin/busybox $out/bin/sh
      printf '#!${busybox}/bin/sh\necho hello from tiny\n' > $out/bin/hello
      printf '#!${busybox}/bin/sh\nexit 0\n' > $out/bin/hook
      chmod 0555 $out/bin/hello $out/bin/hook
      printf 'root:x:0:0:root:/:/bin/sh\n' > $out/etc/passwd
      printf 'root:x:0:\n' > $out/etc/group
    ''
  ];
}
