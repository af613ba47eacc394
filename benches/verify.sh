#!/usr/bin/env bash
# Checking a closure's contents against its recorded NAR hashes, as
# `nucleus verify --deep` does: nucleus's parallel hasher
# (nar_sha256_all_sized, driven by examples/verify_nar_hashes.rs) against
# `nix store verify --no-trust -r` and `nix-store --verify-path`, on a
# closure of 64 store paths of 4 MiB each built by
# benches/closure-64x4mb.nix.
#
#   benches/verify.sh [RUNS]          (RUNS defaults to 9)
#
# The commands run alternately in one session, in a rotating order, after
# one untimed warm-up each, so all read from a warm page cache. Prints the
# CPU, the medians and the median of the per-round ratios (target: <= 0.8).
#
# Nix 2.8's `nix store verify` already hashes paths on a thread per core;
# `nix-store --verify-path` hashes one path after another, as nucleus did.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=${1:-${N:-9}}
unset OPENSSL_ia32cap

cargo build --release --locked --quiet --example verify_nar_hashes
ours=(target/release/examples/verify_nar_hashes)

top=$(nix-build --option sandbox true --option substituters '' --no-out-link \
    benches/closure-64x4mb.nix 2>/dev/null)
mapfile -t paths < <(nix-store --query --requisites "$top")
work=$(mktemp -d /tmp/nucleus-verify-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
# PATH NARHASH NARSIZE, one path a line: what a bundle's record holds.
paste -d ' ' <(printf '%s\n' "${paths[@]}") \
    <(nix-store --query --hash "${paths[@]}") \
    <(nix-store --query --size "${paths[@]}") >"$work/list"
bytes=$(awk '{ s += $3 } END { print s }' "$work/list")

nix_verify=(nix --extra-experimental-features nix-command store verify --no-trust -r "$top")
nix_verify_path=(nix-store --verify-path "${paths[@]}")

cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
sha_ni=no
if grep -qw sha_ni /proc/cpuinfo; then
    sha_ni=yes
fi

# Every path must check out with each tool, or the timing means nothing.
if ! "${ours[@]}" <"$work/list" >"$work/out"; then
    echo "the parallel hasher disagrees with Nix's recorded hashes:" >&2
    cat "$work/out" >&2
    exit 1
fi
for cmd in nix_verify nix_verify_path; do
    declare -n argv=$cmd
    if ! "${argv[@]}" >"$work/out" 2>&1; then
        echo "${argv[*]:0:5} ... failed:" >&2
        cat "$work/out" >&2
        exit 1
    fi
done

# Wall time of one run in milliseconds, output discarded.
time_ms() {
    local start end
    start=$EPOCHREALTIME
    "$@" <"$work/list" >/dev/null 2>&1
    end=$EPOCHREALTIME
    awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f\n", (e - s) * 1000 }'
}

median() {
    sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", a / b }'
}

# Untimed warm-up (output already checked above).
time_ms "${ours[@]}" >/dev/null
time_ms "${nix_verify[@]}" >/dev/null

ours_ms=()
verify_ms=()
verify_path_ms=()
r_verify=()
r_verify_path=()
for ((i = 0; i < runs; i++)); do
    # Rotate which command goes first, second and third.
    for ((k = 0; k < 3; k++)); do
        case $(((i + k) % 3)) in
        0) a=$(time_ms "${ours[@]}") ;;
        1) b=$(time_ms "${nix_verify[@]}") ;;
        2) c=$(time_ms "${nix_verify_path[@]}") ;;
        esac
    done
    ours_ms+=("$a")
    verify_ms+=("$b")
    verify_path_ms+=("$c")
    r_verify+=("$(ratio "$a" "$b")")
    r_verify_path+=("$(ratio "$a" "$c")")
    printf 'run %d: nucleus %7.1f ms   nix store verify %7.1f ms (ratio %s)   nix-store --verify-path %7.1f ms (ratio %s)\n' \
        "$((i + 1))" "$a" "$b" "${r_verify[-1]}" "$c" "${r_verify_path[-1]}" >&2
done
rss=$(/usr/bin/time -f %M "${ours[@]}" <"$work/list" 2>&1 >/dev/null | tail -n1)

echo "cpu:     ${cpu:-unknown} ($(nproc) cores), SHA-NI: $sha_ni"
echo "closure: $top (${#paths[@]} paths, $((bytes / 1000000)) MB of NAR)"
printf 'nucleus parallel hasher:   median %7.1f ms (%s)\n' "$(printf '%s\n' "${ours_ms[@]}" | median)" "${ours[*]}"
printf 'nix store verify:          median %7.1f ms (nix store verify --no-trust -r)\n' \
    "$(printf '%s\n' "${verify_ms[@]}" | median)"
printf 'nix-store --verify-path:   median %7.1f ms (nix-store --verify-path, all %d paths)\n' \
    "$(printf '%s\n' "${verify_path_ms[@]}" | median)" "${#paths[@]}"
printf 'ratio nucleus / nix store verify:        median %.3f over %d runs (target <= 0.8)\n' \
    "$(printf '%s\n' "${r_verify[@]}" | median)" "$runs"
printf 'ratio nucleus / nix-store --verify-path: median %.3f over %d runs (target <= 0.8)\n' \
    "$(printf '%s\n' "${r_verify_path[@]}" | median)" "$runs"
echo "peak RSS (VmHWM) of the nucleus hasher: $rss KiB"
