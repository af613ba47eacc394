# 32 MiB of incompressible, deterministic bytes that the benchmarks' store
# paths are cut from: a 4 MiB pool from a 32-bit LCG (top 24 bits of each
# step), then eight rotations of it, so that no file cut from it repeats
# with a short period. `t` is tests/closures/lib.nix.
{ t }:
t.script "random-pool-32mb" ''
  set -e
  awk 'BEGIN { x = 12345; for (i = 0; i < 1398102; i++) { x = (x * 69069 + 1) % 4294967296; printf "%06x", int(x / 256) } }' \
    | xxd -r -p | head -c 4194304 > pool
  for r in 0 1 2 3 4 5 6 7; do
    tail -c +$((r * 524287 + 1)) pool
    head -c $((r * 524287)) pool
  done > $out
''
