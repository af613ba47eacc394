#!/usr/bin/env bash
# Start-up and memory of `nucleus run`, measured side by side with runsc
# alone. Prints medians and the median of pairwise ratios:
#
#   run ÷ runsc        nucleus run CLOSURE -- /bin/true  vs  runsc run of a
#                      bundle with the same mounts, written once beforehand
#   600 ÷ 3 paths      nucleus run with a 600-path closure vs a 3-path one
#   bundle (600)       nucleus bundle wall time, Nix queries included
#   peak RSS           of the nucleus process itself (VmHWM), during run and bundle
#
# Usage: benches/startup.sh [ROUNDS]   (default 15; run as root)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-15}
export NIX_CONFIG="substituters ="

cargo build --release --locked --quiet
nucleus=$PWD/target/release/nucleus
runsc=$(command -v runsc)
busybox=$(readlink -f "$(command -v busybox)")
work=$(mktemp -d /tmp/nucleus-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
# Container state on tmpfs, as /run/nucleus is on most systems.
export NUCLEUS_STATE_ROOT=$(mktemp -d /dev/shm/nucleus-bench.XXXXXX)
trap 'rm -rf "$work" "$NUCLEUS_STATE_ROOT"' EXIT

build() { nix-build --no-out-link --option sandbox true tests/closures/wide.nix --arg busyboxFile "$busybox" --arg width "$1" 2>/dev/null; }
small=$(build 1)
large=$(build 598)
echo "closures: $(nix-store -qR "$small" | wc -l) and $(nix-store -qR "$large" | wc -l) store paths"

# The hand-written alternative: the same mounts, one bind per store path
# (3 paths is far below runsc's bind limit).
"$nucleus" bundle --out "$work/bundle" "$small" -- /bin/true >/dev/null

now() { date +%s%N; }
elapsed_ms() { echo "scale=3; ($2 - $1) / 1000000" | bc; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

time_nucleus() { local t0; t0=$(now); "$nucleus" run "$1" -- /bin/true; elapsed_ms "$t0" "$(now)"; }
time_runsc() {
  local t0; t0=$(now)
  "$runsc" --root "$work/runsc-root" --network=none --ignore-cgroups run --bundle "$work/bundle" "bench-$1"
  elapsed_ms "$t0" "$(now)"
}

# Warm up: page cache, the closure cache, runsc's own first start.
time_nucleus "$small" >/dev/null; time_nucleus "$large" >/dev/null; time_runsc warm >/dev/null

: > "$work/t-run"; : > "$work/t-runsc"; : > "$work/r1"; : > "$work/t-large"; : > "$work/r2"
for i in $(seq 1 "$rounds"); do
  a=$(time_nucleus "$small"); b=$(time_runsc "$i"); c=$(time_nucleus "$large")
  echo "$a" >> "$work/t-run"; echo "$b" >> "$work/t-runsc"; echo "$c" >> "$work/t-large"
  echo "scale=4; $a / $b" | bc >> "$work/r1"
  echo "scale=4; $c / $a" | bc >> "$work/r2"
done

bundle_ms=()
for i in 1 2 3 4 5; do
  t0=$(now); "$nucleus" bundle --out "$work/b600-$i" "$large" -- /bin/true >/dev/null 2>&1; bundle_ms+=("$(elapsed_ms "$t0" "$(now)")")
done
tmpfs_ms=()
for i in 1 2 3 4 5; do
  t0=$(now); "$nucleus" bundle --out "$NUCLEUS_STATE_ROOT/b600-$i" "$large" -- /bin/true >/dev/null 2>&1; tmpfs_ms+=("$(elapsed_ms "$t0" "$(now)")")
done
nix_ms=()
for i in 1 2 3 4 5; do
  t0=$(now); nix --extra-experimental-features nix-command path-info --offline --json --recursive "$large" >/dev/null
  nix_ms+=("$(elapsed_ms "$t0" "$(now)")")
done

# Peak RSS of the nucleus process alone (its children, runsc and nix, are
# not counted): VmHWM read while the workload sleeps, and at the end of bundle.
peak_kb() {
  local pid=$1 peak=0 v
  while kill -0 "$pid" 2>/dev/null; do
    v=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$v" ] && [ "$v" -gt "$peak" ] && peak=$v
    sleep 0.005
  done
  echo "$peak"
}
"$nucleus" run "$large" -- /bin/sleep 1 & run_rss=$(peak_kb $!)
"$nucleus" bundle --out "$work/rss" "$large" -- /bin/true >/dev/null 2>&1 & bundle_rss=$(peak_kb $!)

printf '\n%-44s %10s\n' "figure (median of $rounds)" "value"
printf '%-44s %8.1f ms\n' "runsc run, hand-written bundle (3 paths)" "$(median < "$work/t-runsc")"
printf '%-44s %8.1f ms\n' "nucleus run, 3-path closure" "$(median < "$work/t-run")"
printf '%-44s %8.1f ms\n' "nucleus run, 600-path closure" "$(median < "$work/t-large")"
printf '%-44s %10.3f   (target <= 1.10)\n' "ratio nucleus run / runsc run" "$(median < "$work/r1")"
printf '%-44s %10.3f   (target <= 1.25)\n' "ratio 600-path / 3-path" "$(median < "$work/r2")"
printf '%-44s %8.1f ms\n' "nucleus bundle, 600 paths, into /tmp" "$(printf '%s\n' "${bundle_ms[@]}" | median)"
printf '%-44s %8.1f ms\n' "nucleus bundle, 600 paths, into tmpfs" "$(printf '%s\n' "${tmpfs_ms[@]}" | median)"
printf '%-44s %8.1f ms\n' "  of which nix path-info -r (alone)" "$(printf '%s\n' "${nix_ms[@]}" | median)"
printf '%-44s %8d KB   (target <= 16384)\n' "peak RSS of nucleus during run" "$run_rss"
printf '%-44s %8d KB   (target <= 16384)\n' "peak RSS of nucleus during bundle" "$bundle_rss"
