# A ~200 MB store path for benches/hash.sh: ~350 files of 0 B to 16 MiB of
# incompressible, deterministic bytes in nested directories, plus a few
# empty files and symlinks. Needs no nixpkgs: the builder is the host's
# static busybox, as for the test closures.
#
#   nix-build --option sandbox true --option substituters '' benches/random-200mb.nix
{ busyboxFile ? /usr/bin/busybox }:
let
  t = import ../tests/closures/lib.nix { inherit busyboxFile; };
  pool = import ./random-pool.nix { inherit t; };
in
t.script "random-200mb" ''
  set -e
  # One line per file: path, size, offset into the pool, executable.
  awk '
    function rnd(m) { x = (x * 69069 + 1) % 4294967296; return int(x / 256) % m }
    function emit(name, size) { print name, size, rnd(33554432 - size), (rnd(4) == 0) }
    BEGIN {
      x = 42
      for (i = 0; i < 4; i++) emit("large/blob-" i, 16777216 + rnd(65536))
      for (i = 0; i < 40; i++) emit("medium/m" (i % 5) "/file-" i, 1048576 + rnd(2097152))
      for (i = 0; i < 300; i++) emit("small/s" (i % 20) "/part-" (i % 3) "/f" i, rnd(409600))
    }' > list
  while read name size off exe; do
    mkdir -p "$out/''${name%/*}"
    dd if=${pool} of="$out/$name" bs=65536 skip="$off" count="$size" iflag=skip_bytes,count_bytes 2>/dev/null
    if [ "$exe" = 1 ]; then chmod +x "$out/$name"; fi
  done < list
  mkdir -p $out/empty-dir
  touch $out/small/empty-1 $out/small/empty-2
  ln -s large/blob-0 $out/link-to-blob
  ln -s /nonexistent $out/dangling
  rm list
''
