#!/usr/bin/env bash
# `nucleus image`: build time, size and layer sharing, next to the figures
# nix2container publishes for itself and for nixpkgs' dockerTools (neither
# can be built here: both need nixpkgs).
#
# Published (nix2container's README, "Quick and dirty benchmarks", the uwsgi
# example, rebuild and re-push after a one-line change; "an order of
# magnitude" only):
#   nix2container.buildImage         ~1.8 s   nix run .#example.uwsgi.copyToRegistry
#   dockerTools.streamLayeredImage   ~7.5 s   nix build .#example.uwsgi | docker load
#   dockerTools.buildImage           ~10 s    nix build; skopeo copy docker-archive:… docker://…
# streamLayeredImage's closest equivalent here is `nucleus image --out X.tar`
# followed by `podman load`, which this script times too.
#
# Closures (no nixpkgs needed, built from this repository):
#   64x4mb   benches/closure-64x4mb.nix: 65 store paths, 256 MiB of incompressible data
#   65x4mb   the same with one more 4 MiB path: differs in that path and the top level
#   wide     tests/closures/wide.nix with 598 leaves: 600 small paths (> 100 layers)
#   wide+1   599 leaves
#
# Images are written to tmpfs (/dev/shm) by default, so that the figures are
# nucleus's own work rather than the disk's; BENCH_DIR=/some/disk measures
# with the disk (every file is fsynced).
#
# Usage: benches/image.sh [ROUNDS]   (default 5; run as root)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
export NIX_CONFIG="substituters ="

echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, $(uname -r)"
cargo build --release --locked --quiet
nucleus=$PWD/target/release/nucleus
busybox=$(readlink -f "$(command -v busybox)")
work=$(mktemp -d "${BENCH_DIR:-/dev/shm}/nucleus-image-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "images written to $(df --output=fstype "$work" | tail -1) ($work)"

nixbuild() { nix-build --no-out-link --option sandbox true "$@" --arg busyboxFile "$busybox" 2>/dev/null; }
declare -A closure=(
  [64x4mb]=$(nixbuild benches/closure-64x4mb.nix --arg count 64)
  [65x4mb]=$(nixbuild benches/closure-64x4mb.nix --arg count 65)
  [wide]=$(nixbuild tests/closures/wide.nix --arg width 598)
  [wide+1]=$(nixbuild tests/closures/wide.nix --arg width 599)
)

now() { date +%s%N; }
ms() { echo $((($2 - $1) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# Median wall time of `nucleus image`, each round into a new path, after
# one untimed run to warm the page cache; the first round's image is kept.
time_image() {
  local name=$1 suffix=$2 t0 i
  "$nucleus" image --out "$work/warm-$name$suffix" "${closure[$name]}" -- /bin/true >/dev/null
  rm -rf "$work/warm-$name$suffix"
  for i in $(seq 1 "$rounds"); do
    t0=$(now)
    "$nucleus" image --out "$work/$name-$i$suffix" "${closure[$name]}" -- /bin/true >/dev/null
    ms "$t0" "$(now)"
    [ "$i" -eq 1 ] || rm -rf "$work/$name-$i$suffix"
  done | median
}

printf '\n%-8s %6s %7s %10s %14s %14s\n' closure paths layers "size MiB" "archive ms" "layout ms"
for name in 64x4mb 65x4mb wide wide+1; do
  paths=$(nix-store -qR "${closure[$name]}" | wc -l)
  archive_ms=$(time_image "$name" .tar)
  layout_ms=$(time_image "$name" "")
  layers=$(jq '.layers | length' "$work/$name-1/blobs/sha256/$(jq -r '.manifests[0].digest' "$work/$name-1/index.json" | cut -d: -f2)")
  size=$(stat -c %s "$work/$name-1.tar")
  printf '%-8s %6d %7d %10.1f %14s %14s\n' "$name" "$paths" "$layers" "$(echo "$size / 1048576" | bc -l)" "$archive_ms" "$layout_ms"
done

# Layers two images share: blobs with the same digest, and their bytes.
shared() {
  local a=$work/$1-1 b=$work/$2-1
  manifest() { echo "$1/blobs/sha256/$(jq -r '.manifests[0].digest' "$1/index.json" | cut -d: -f2)"; }
  jq -r '.layers[] | "\(.digest) \(.size)"' "$(manifest "$a")" | sort > "$work/la"
  jq -r '.layers[] | "\(.digest) \(.size)"' "$(manifest "$b")" | sort > "$work/lb"
  local total_b shared_n shared_b
  total_b=$(awk '{s += $2} END {print s}' "$work/lb")
  shared_n=$(join "$work/la" "$work/lb" | wc -l)
  shared_b=$(join "$work/la" "$work/lb" | awk '{s += $2} END {print s + 0}')
  printf '%-16s %3d of %3d layers shared, %7.1f of %7.1f MiB (%5.1f%%) need not move again\n' "$1 → $2" \
    "$shared_n" "$(wc -l < "$work/lb")" "$(echo "$shared_b / 1048576" | bc -l)" "$(echo "$total_b / 1048576" | bc -l)" \
    "$(echo "100 * $shared_b / $total_b" | bc -l)"
}
echo
shared 64x4mb 65x4mb
shared wide wide+1

# The streamLayeredImage path: build the archive and load it into podman
# (storage in $work, host paths podman writes regardless on tmpfs in a
# private mount namespace, as in tests/image.rs).
if command -v podman >/dev/null; then
  load_ms=()
  for i in $(seq 1 "$rounds"); do
    load_ms+=("$(unshare --mount --propagation private sh -c '
      set -eu
      if [ -d /var/lib/containers ]; then mount -t tmpfs tmpfs /var/lib/containers; else mount -t tmpfs tmpfs /var/lib; fi
      mount -t tmpfs tmpfs /var/tmp
      export TMPDIR=$1/tmp-$3; mkdir -p "$TMPDIR"
      t0=$(date +%s%N)
      "$2" image --out "$1/load-$3.tar" "$4" -- /bin/true >/dev/null
      podman --root "$1/podman-$3" --runroot "$1/run-$3" --tmpdir "$TMPDIR" --storage-driver overlay \
        --cgroup-manager cgroupfs --events-backend file load -q -i "$1/load-$3.tar" >/dev/null
      echo $((($(date +%s%N) - t0) / 1000000))
      rm -rf "$1/podman-$3" "$1/load-$3.tar"
    ' sh "$work" "$nucleus" "$i" "${closure[65x4mb]}")")
  done
  echo
  echo "nucleus image + podman load (65x4mb, 256 MiB): $(printf '%s\n' "${load_ms[@]}" | median) ms" \
    "(streamLayeredImage | docker load of the uwsgi example: ~7500 ms, published)"
fi
