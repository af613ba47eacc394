#!/usr/bin/env bash
# NAR hashing speed: `nucleus hash` against `nix hash path` on a ~200 MB
# store path built by benches/random-200mb.nix.
#
#   benches/hash.sh [RUNS]            (RUNS defaults to 7)
#   NUCLEUS_HASH_CMD='other-binary hash' benches/hash.sh
#
# The two commands run alternately, each pair in swapped order every other
# round, after one untimed warm-up each, so both read from a warm page
# cache. Prints the CPU, the medians, the median of the per-round ratios
# and nucleus's peak memory (target: ratio <= 0.95, peak RSS <= 8 MB).
#
# On a CPU with SHA-NI it runs the comparison a second time with SHA-NI
# hidden from OpenSSL (OPENSSL_ia32cap), which both Nix and nucleus hash
# with, to show the ratio on CPUs without it. That pass is skipped when
# either side does not load libcrypto, since the mask would then not apply
# to both.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=${1:-${N:-7}}
default_cmd="target/release/nucleus hash"
read -r -a ours <<<"${NUCLEUS_HASH_CMD:-$default_cmd}"
nix=(nix --extra-experimental-features nix-command hash path)
# Clears CPUID(EAX=7).EBX bit 29, the SHA extensions, in OpenSSL's copy of
# the CPU's capabilities; the ':' keeps the first word as detected.
no_sha_mask=":~0x20000000"
# The native pass must see the CPU as it is.
unset OPENSSL_ia32cap

if [[ -z ${NUCLEUS_HASH_CMD:-} ]]; then
    cargo build --release --locked --quiet
fi

path=$(nix-build --option sandbox true --option substituters '' --no-out-link \
    benches/random-200mb.nix 2>/dev/null)
bytes=$(du -sb "$path" | cut -f1)
files=$(find "$path" -type f | wc -l)

cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
sha_ni=no
if grep -qw sha_ni /proc/cpuinfo; then
    sha_ni=yes
fi

# Whether the command "$@" loads libcrypto when it hashes a path, linked
# or loaded at run time (nucleus loads it only when hashing starts): the
# dynamic loader's own trace says.
loads_libcrypto() {
    local probe found=1
    probe=$(mktemp)
    # Read whole (no `grep -q`): under pipefail, a writer cut off early
    # would fail the pipeline.
    if [[ $(LD_DEBUG=files "$@" "$probe" 2>&1 >/dev/null) == *file=libcrypto.so* ]]; then
        found=0
    fi
    rm -f "$probe"
    return $found
}

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

# Peak resident memory in KiB of one run: the kernel's high-water mark of
# the process (VmHWM), as getrusage reports it once the process has exited.
peak_kib() {
    /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -n1
}

# One comparison in the current environment; prints its summary lines.
compare() {
    local label=$1 want got a b i
    local -a ours_ms=() nix_ms=() ratios=()
    # Both must print the same hash, or the timing means nothing.
    want=$("${nix[@]}" "$path")
    got=$("${ours[@]}" "$path")
    if [[ $got != "$want" ]]; then
        echo "hash mismatch on $path ($label): ${ours[*]} printed '$got', nix printed '$want'" >&2
        exit 1
    fi
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
        printf '%s run %d: %s %8.1f ms   nix %8.1f ms   ratio %s\n' \
            "$label" "$((i + 1))" "${ours[0]##*/}" "$a" "$b" "${ratios[-1]}" >&2
    done
    echo "$label:"
    printf '  nucleus: median %7.1f ms (%s)\n' "$(printf '%s\n' "${ours_ms[@]}" | median)" "${ours[*]}"
    printf '  nix:     median %7.1f ms (%s)\n' "$(printf '%s\n' "${nix_ms[@]}" | median)" "${nix[*]}"
    printf '  ratio nucleus/nix: median %.3f over %d runs (target <= 0.95)\n' \
        "$(printf '%s\n' "${ratios[@]}" | median)" "$runs"
}

# OpenSSL's own SHA-256 speed in MB/s on 1 MiB blocks, in the current
# environment: shows whether the mask took effect.
openssl_mbps() {
    openssl speed -seconds 1 -bytes 1048576 -evp sha256 2>/dev/null |
        awk '$1 == "sha256" { sub(/k$/, "", $2); printf "%.0f", $2 / 1000 }'
}

# Untimed warm-up: page cache, dynamic loader.
"${ours[@]}" "$path" >/dev/null
"${nix[@]}" "$path" >/dev/null

summary=$(compare "SHA-NI as detected")
masked=""
if [[ $sha_ni == yes ]] && loads_libcrypto "${ours[@]}" && loads_libcrypto "${nix[@]}"; then
    masked=$(OPENSSL_ia32cap=$no_sha_mask compare "without SHA-NI (OPENSSL_ia32cap=$no_sha_mask)")
fi
rss=$(peak_kib "${ours[@]}" "$path")
nix_rss=$(peak_kib "${nix[@]}" "$path")

echo "cpu:     ${cpu:-unknown} ($(nproc) cores), SHA-NI: $sha_ni"
# The flags that decide which SHA-256 code libcrypto picks.
echo "flags:   $(grep -m1 -ow -E 'sha_ni|avx512f|avx2|bmi2|avx|ssse3' /proc/cpuinfo | sort -u | tr '\n' ' ')"
if [[ -n $masked ]] && command -v openssl >/dev/null; then
    echo "openssl: sha256 $(openssl_mbps) MB/s as detected," \
        "$(OPENSSL_ia32cap=$no_sha_mask openssl_mbps) MB/s with OPENSSL_ia32cap=$no_sha_mask"
fi
echo "path:    $path ($((bytes / 1000000)) MB in $files files)"
echo "hash:    $("${nix[@]}" "$path")"
echo "$summary"
if [[ -n $masked ]]; then
    echo "$masked"
elif [[ $sha_ni == yes ]]; then
    echo "without SHA-NI: not measured (${ours[0]} or nix does not load libcrypto, so OPENSSL_ia32cap would not apply to both)"
fi
printf 'peak RSS (VmHWM): nucleus %d KiB (%.1f MB, target <= 8 MB), nix %d KiB\n' \
    "$rss" "$(awk -v k="$rss" 'BEGIN { print k * 1024 / 1e6 }')" "$nix_rss"
