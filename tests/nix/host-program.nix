# A program built outside Nix (by cargo) made runnable inside a Nix build
# sandbox, which has none of the host's libraries: the program and the
# dynamic loader and libraries it needs (as `ldd` lists them) are added to
# the store, and bin/NAME runs the program through that loader with only
# those libraries.
{
  busyboxFile ? /usr/bin/busybox,
  # bin/NAME
  name,
  # The program's absolute path on the host.
  program,
  # The loader's and each library's file name (as the program asks for it)
  # mapped to the host file that holds it, e.g. "libc.so.6" = "/usr/lib/x86_64-linux-gnu/libc.so.6".
  libraries,
  # The loader's file name among `libraries`.
  loader ? "ld-linux-x86-64.so.2",
}:
let
  inherit (import ../closures/lib.nix { inherit busyboxFile; }) busybox script;
  # builtins.path copies a file as it is, under a name of our choosing.
  hostFile =
    file:
    builtins.path {
      path = /. + file;
      name = "host-${baseNameOf file}";
    };
  programInStore = hostFile program;
in
script "host-program-${name}" ''
  set -e
  mkdir -p $out/bin $out/lib
  ${toString (
    map (soname: "cp ${hostFile libraries.${soname}} $out/lib/${soname}\n") (builtins.attrNames libraries)
  )}
  printf '#!%s\nexec %s --argv0 "$0" --library-path %s %s "$@"\n' \
    ${busybox}/bin/sh $out/lib/${loader} $out/lib ${programInStore} > $out/bin/${name}
  chmod +x $out/bin/${name}
''
