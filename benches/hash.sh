#!/usr/bin/env bash
# NAR hashing speed: `nucleus hash` against `nix hash path` on a ~200 MB
# store path built by benches/random-200mb.nix.
#
#   benches/hash.sh [RUNS]            (RUNS defaults to 7)
#   NUCLEUS_HASH_CMD='other-binary hash' benches/hash.sh
#
# The two commands run alternately, each pair in swapped order every other
# round, after one untimed warm-up each, so both read from a warm page
# cache. Prints the medians and the median of the per-round ratios.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=${1:-${N:-7}}
default_cmd="target/release/nucleus hash"
read -r -a ours <<<"${NUCLEUS_HASH_CMD:-$default_cmd}"
nix=(nix --extra-experimental-features nix-command hash path)

if [[ -z ${NUCLEUS_HASH_CMD:-} ]]; then
    cargo build --release --locked --quiet
fi

path=$(nix-build --option sandbox true --option substituters '' --no-out-link \
    benches/random-200mb.nix 2>/dev/null)
bytes=$(du -sb "$path" | cut -f1)
files=$(find "$path" -type f | wc -l)

# Both must print the same hash, or the timing means nothing.
want=$("${nix[@]}" "$path")
got=$("${ours[@]}" "$path")
if [[ $got != "$want" ]]; then
    echo "hash mismatch on $path: ${ours[*]} printed '$got', nix printed '$want'" >&2
    exit 1
fi

# Wall time of one run in milliseconds, output discarded.
time_ms() {
    local start end
    start=$EPOCHREALTIME
    "$@" >/dev/null
    end=$EPOCHREALTIME
    awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f\n", (e - s) * 1000 }'
}

median() {
    sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ours_ms=()
nix_ms=()
ratios=()
for ((i = 0; i < runs; i++)); do
    if ((i % 2 == 0)); then
        a=$(time_ms "${ours[@]}" "$path")
        b=$(time_ms "${nix[@]}" "$path")
    else
        b=$(time_ms "${nix[@]}" "$path")
        a=$(time_ms "${ours[@]}" "$path")
    fi
    ours_ms+=("$a")
    nix_ms+=("$b")
    ratios+=("$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f\n", a / b }')")
    printf 'run %d: %s %8.1f ms   nix %8.1f ms   ratio %s\n' "$((i + 1))" "${ours[0]##*/}" "$a" "$b" "${ratios[-1]}" >&2
done

ours_med=$(printf '%s\n' "${ours_ms[@]}" | median)
nix_med=$(printf '%s\n' "${nix_ms[@]}" | median)
ratio_med=$(printf '%s\n' "${ratios[@]}" | median)

echo "path:    $path ($((bytes / 1000000)) MB in $files files)"
echo "hash:    $want"
printf 'nucleus: median %.1f ms (%s)\n' "$ours_med" "${ours[*]}"
printf 'nix:     median %.1f ms (%s)\n' "$nix_med" "${nix[*]}"
printf 'ratio nucleus/nix: median %.3f over %d runs\n' "$ratio_med" "$runs"
if [[ -x /usr/bin/time ]]; then
    rss=$(/usr/bin/time -f %M "${ours[@]}" "$path" 2>&1 >/dev/null | tail -n1)
    echo "nucleus peak RSS: ${rss} KiB"
fi
