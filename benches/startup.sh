#!/usr/bin/env bash
# Start-up and memory of `nucleus run`, measured side by side with runsc
# alone. Each round runs every command once, in the same order, so that the
# ratios compare runs made moments apart; the figures are medians, and each
# ratio is the median of the per-round ratios.
#
#   run ÷ runsc          nucleus run (3-path closure, warm cache) vs runsc run
#                        of a bundle with the same mounts, written beforehand
#   cold ÷ runsc         the same run with an empty cache (.cache removed):
#                        Nix is asked for the closure
#   600 ÷ 3, 3000 ÷ 3    nucleus run of a 600- and a 3000-path closure vs the
#                        3-path one, warm cache (the 3000-path view is kept
#                        between runs, see src/sandbox/views.rs)
#   peak RSS             of the nucleus process itself (VmHWM; Nix and runsc
#                        are not counted): run (3000 paths), bundle (3000
#                        paths, Nix asked; and 3 paths, for what the binary
#                        and its shared libraries take whatever the closure),
#                        hash (benches/random-200mb.nix); with the largest
#                        anonymous part (RssAnon) seen
#
# Usage: benches/startup.sh [ROUNDS]   (default 15; run as root, on a quiet
# machine: the load average is printed before and after)
#        NUCLEUS=/path/to/nucleus benches/startup.sh   (another build)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-15}
export NIX_CONFIG="substituters ="

# Nix is asked for closures through its daemon, as on NixOS.
source scripts/deps.sh
nucleus_start_daemon

if [ -z "${NUCLEUS:-}" ]; then
  cargo build --release --locked --quiet
fi
nucleus=${NUCLEUS:-$PWD/target/release/nucleus}
runsc=$(command -v runsc)
busybox=$(readlink -f "$(command -v busybox)")
work=$(mktemp -d /tmp/nucleus-bench.XXXXXX)
# Container state on tmpfs, as /run/nucleus is on most systems.
export NUCLEUS_STATE_ROOT=$(mktemp -d /dev/shm/nucleus-bench.XXXXXX)
cleanup() {
  # Kept store views are mounts: take them away before the directory.
  for view in "$NUCLEUS_STATE_ROOT"/.cache/views/*; do
    [ -f "$view" ] && [[ $view != *.used ]] && umount -l "$view" 2>/dev/null || true
  done
  umount -l "$NUCLEUS_STATE_ROOT/.cache/views" 2>/dev/null || true
  rm -rf "$work" "$NUCLEUS_STATE_ROOT"
}
trap cleanup EXIT

build() {
  nix-build --no-out-link --option sandbox true "tests/closures/$1.nix" --arg busyboxFile "$busybox" \
    --arg width "$2" 2>/dev/null
}
small=$(build wide 1)
wide=$(build wide 598)
large=$(build many 2998)
# What benches/hash.sh hashes: ~200 MB in ~350 files.
hash_input=$(nix-build --no-out-link --option sandbox true benches/random-200mb.nix 2>/dev/null)
echo "closures: $(nix-store -qR "$small" | wc -l), $(nix-store -qR "$wide" | wc -l) and" \
  "$(nix-store -qR "$large" | wc -l) store paths"

# The hand-written alternative: the same mounts, one bind per store path
# (3 paths is far below runsc's bind limit).
"$nucleus" bundle --out "$work/bundle" "$small" -- /bin/true >/dev/null

now() { date +%s%N; }
elapsed_ms() { echo "scale=3; ($2 - $1) / 1000000" | bc; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { echo "scale=4; $1 / $2" | bc; }

time_nucleus() { local t0; t0=$(now); "$nucleus" run "$1" -- /bin/true; elapsed_ms "$t0" "$(now)"; }
time_cold() {
  local t0
  rm -f "$NUCLEUS_STATE_ROOT/.cache/closures/$(basename "$1").json"
  t0=$(now); "$nucleus" run "$1" -- /bin/true; elapsed_ms "$t0" "$(now)"
}
time_runsc() {
  local t0; t0=$(now)
  "$runsc" --root "$work/runsc-root" --network=none --ignore-cgroups run --bundle "$work/bundle" "bench-$1"
  elapsed_ms "$t0" "$(now)"
}

cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
sha=$(grep -qw sha_ni /proc/cpuinfo && echo "SHA-NI" || echo "no SHA-NI")
echo "machine: $cpu ($sha), $(nproc) CPUs, Linux $(uname -r), runsc $("$runsc" --version | awk 'NR==1 {print $3}')"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# Warm up: page cache, the closure cache, the kept view, runsc's own first start.
for c in "$small" "$wide" "$large"; do time_nucleus "$c" >/dev/null; done
time_runsc warm >/dev/null

for f in run runsc cold wide large r_run r_cold r_cw r_wide r_large; do : > "$work/$f"; done
for i in $(seq 1 "$rounds"); do
  a=$(time_nucleus "$small"); b=$(time_runsc "$i"); c=$(time_cold "$small")
  d=$(time_nucleus "$wide"); e=$(time_nucleus "$large")
  echo "$a" >> "$work/run"; echo "$b" >> "$work/runsc"; echo "$c" >> "$work/cold"
  echo "$d" >> "$work/wide"; echo "$e" >> "$work/large"
  ratio "$a" "$b" >> "$work/r_run"; ratio "$c" "$b" >> "$work/r_cold"; ratio "$c" "$a" >> "$work/r_cw"
  ratio "$d" "$a" >> "$work/r_wide"; ratio "$e" "$a" >> "$work/r_large"
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
slow=$(cat "$work/run" "$work/cold" "$work/wide" "$work/large" | awk '$1 > 2000' | wc -l)

nix_ms=()
for _ in 1 2 3 4 5; do
  t0=$(now); nix --extra-experimental-features nix-command path-info --offline --json --recursive "$small" >/dev/null
  nix_ms+=("$(elapsed_ms "$t0" "$(now)")")
done

# Peak RSS of the nucleus process alone (its children, runsc and nix, are
# not counted): VmHWM, read until the process ends, and the largest
# RssAnon seen (heap and stacks, without the pages of the binary and the
# shared libraries it maps).
peak_kb() {
  local pid=$1 peak=0 anon=0 v a
  while kill -0 "$pid" 2>/dev/null; do
    read -r v a < <(awk '/^VmHWM/ {h=$2} /^RssAnon/ {a=$2} END {print h+0, a+0}' "/proc/$pid/status" 2>/dev/null || echo "0 0")
    [ "$v" -gt "$peak" ] && peak=$v
    [ "$a" -gt "$anon" ] && anon=$a
    sleep 0.001
  done
  echo "$peak KB (anonymous $anon KB)"
}
"$nucleus" run "$large" -- /bin/sleep 1 & run_rss=$(peak_kb $!)
"$nucleus" bundle --out "$work/rss" "$large" -- /bin/true >/dev/null 2>&1 & bundle_rss=$(peak_kb $!)
"$nucleus" bundle --out "$work/rss-small" "$small" -- /bin/true >/dev/null 2>&1 & floor_rss=$(peak_kb $!)
"$nucleus" hash "$hash_input" >/dev/null & hash_rss=$(peak_kb $!)

printf '\n%-48s %10s\n' "figure (median of $rounds rounds)" "value"
printf '%-48s %8.1f ms\n' "runsc run, hand-written bundle (3 paths)" "$(median < "$work/runsc")"
printf '%-48s %8.1f ms\n' "nucleus run, 3-path closure, warm cache" "$(median < "$work/run")"
printf '%-48s %8.1f ms\n' "nucleus run, 3-path closure, cold cache" "$(median < "$work/cold")"
printf '%-48s %8.1f ms\n' "nucleus run, 600-path closure" "$(median < "$work/wide")"
printf '%-48s %8.1f ms\n' "nucleus run, 3000-path closure" "$(median < "$work/large")"
printf '%-48s %8.1f ms\n' "  nix path-info -r of the 3-path closure (alone)" "$(printf '%s\n' "${nix_ms[@]}" | median)"
printf '%-48s %10.3f   (target <= 1.10)\n' "ratio nucleus run / runsc run" "$(median < "$work/r_run")"
printf '%-48s %10.3f   (target <= 1.25)\n' "ratio cold-cache run / runsc run" "$(median < "$work/r_cold")"
printf '%-48s %10.3f\n' "ratio cold-cache run / warm-cache run" "$(median < "$work/r_cw")"
printf '%-48s %10.3f\n' "ratio 600-path / 3-path" "$(median < "$work/r_wide")"
printf '%-48s %10.3f   (target <= 1.25)\n' "ratio 3000-path / 3-path" "$(median < "$work/r_large")"
printf '%-48s %s\n' "peak RSS of nucleus during run (3000 paths)" "$run_rss"
printf '%-48s %s   (target <= 8192 KB)\n' "peak RSS of nucleus during bundle (3000 paths)" "$bundle_rss"
printf '%-48s %s\n' "  the same for a 3-path closure" "$floor_rss"
printf '%-48s %s   (target <= 8192 KB)\n' "peak RSS of nucleus during hash" "$hash_rss"
if [ "$slow" -gt 0 ]; then
  echo "note: $slow nucleus runs took over 2 s (runsc delete waiting on an unreaped gofer)"
fi
