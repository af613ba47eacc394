# A closure for benches/verify.sh: a small top-level path that refers to 64
# store paths of 4 MiB of incompressible, deterministic bytes each. Needs no
# nixpkgs: every builder is the host's static busybox, as for the test
# closures.
#
#   nix-build --option sandbox true --option substituters '' benches/closure-64x4mb.nix
{ busyboxFile ? /usr/bin/busybox, count ? 64 }:
let
  t = import ../tests/closures/lib.nix { inherit busyboxFile; };

  # What the blobs are cut from; not in the closure.
  pool = import ./random-pool.nix { inherit t; };

  # Blob i: 16 pieces of 256 KiB from offsets an LCG seeded with i picks,
  # so no two blobs share their bytes.
  blob = i: t.script "random-4mb-${toString i}" ''
    set -e
    mkdir $out
    awk -v seed=${toString i} 'BEGIN {
      x = seed * 7919 + 1
      for (k = 0; k < 16; k++) { x = (x * 69069 + 1) % 4294967296; print int(x / 256) % (33554432 - 262144) }
    }' | while read off; do
      dd if=${pool} bs=65536 skip="$off" count=262144 iflag=skip_bytes,count_bytes 2>/dev/null
    done > $out/data
  '';
in
t.script "closure-${toString count}x4mb" ''
  set -e
  mkdir $out
  cat > $out/paths <<'PATHS'
  ${builtins.concatStringsSep "\n" (map (i: "${blob i}") (builtins.genList (i: i) count))}
  PATHS
''
