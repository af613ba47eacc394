#!/usr/bin/env bash
# Load and leaks: N runs at once, then M one after another, each checked
# for its output and exit status; then counts of what is left behind.
#
#   failures        runs whose output or status was wrong
#   processes       nucleus or runsc processes of this state root still alive
#   mounts          mounts under the state root, on the host
#   cgroups         cgroup directories of this state root (every fifth run
#                   sets --memory, so runsc makes them)
#   state entries   containers left in the state root
#
# Every count should be 0. Usage:
#   benches/load.sh [--parallel N] [--sequential M]   (defaults 50 and 1000; as root)
# NUCLEUS names the binary to use (default: a release build of this tree).
set -euo pipefail
cd "$(dirname "$0")/.."
parallel=50
sequential=1000
while [ $# -gt 0 ]; do
  case $1 in
    --parallel) parallel=$2; shift 2 ;;
    --sequential) sequential=$2; shift 2 ;;
    *) echo "usage: benches/load.sh [--parallel N] [--sequential M]" >&2; exit 2 ;;
  esac
done
export NIX_CONFIG="${NIX_CONFIG:-substituters =}"
if [ -z "${NUCLEUS:-}" ]; then
  cargo build --release --locked --quiet
  NUCLEUS=$PWD/target/release/nucleus
fi
busybox=$(readlink -f "$(command -v busybox)")
work=$(mktemp -d /tmp/nucleus-load.XXXXXX)
export NUCLEUS_STATE_ROOT=$work/state
trap 'rm -rf "$work"' EXIT
hello=$(nix-build --no-out-link --option sandbox true tests/closures/hello.nix --arg busyboxFile "$busybox" 2>/dev/null)

# The cgroup names of this state root share one prefix: /nucleus-<hash>-.
probe=$("$NUCLEUS" run --dry-run --name probe --memory 64m "$hello" -- /bin/true)
prefix=$(printf '%s' "$probe" | sed -n 's|.*"cgroupsPath": *"/\(nucleus-[0-9a-f]*-\)probe".*|\1|p')
[ -n "$prefix" ] || { echo "load.sh: no cgroupsPath in the dry run" >&2; exit 1; }

# One run: prints "ok" or what went wrong.
one() {
  local i=$1 limits=() out status
  if [ $((i % 5)) -eq 0 ]; then limits=(--memory 64m); fi
  status=0
  out=$("$NUCLEUS" run "${limits[@]}" "$hello" -- /bin/sh -c "echo run-$i; exit $((i % 7))" 2>"$work/err-$i") || status=$?
  if [ "$out" = "run-$i" ] && [ "$status" -eq $((i % 7)) ]; then
    rm -f "$work/err-$i"
    echo ok
  else
    echo "run $i: status $status, output '$out': $(tail -1 "$work/err-$i")"
  fi
}

now() { date +%s%N; }
t0=$(now)
for i in $(seq 1 "$parallel"); do one "$i" > "$work/par-$i" & done
wait
t1=$(now)
for i in $(seq 1 "$sequential"); do one "$((parallel + i))"; done > "$work/seq"
t2=$(now)

failures=$( (cat "$work"/par-* "$work/seq") | grep -vc '^ok$' || true)
(cat "$work"/par-* "$work/seq") | grep -v '^ok$' | head -5 >&2 || true
ours() {
  local pid cmd
  for pid in /proc/[0-9]*; do
    cmd=$(tr '\0' ' ' < "$pid/cmdline" 2>/dev/null) || continue
    case $cmd in *"$NUCLEUS_STATE_ROOT"*) echo "$cmd" ;; esac
  done
}
processes=$(ours | grep -c -e runsc -e nucleus || true)
mounts=$(grep -c -F "$NUCLEUS_STATE_ROOT" /proc/self/mountinfo || true)
cgroups=$(find /sys/fs/cgroup -maxdepth 2 -type d -name "${prefix}*" 2>/dev/null | wc -l)
state=$(find "$NUCLEUS_STATE_ROOT" -mindepth 1 -maxdepth 1 ! -name .cache 2>/dev/null | wc -l)

ms() { echo $(( ($2 - $1) / 1000000 )); }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "parallel runs:   $parallel in $(ms "$t0" "$t1") ms"
echo "sequential runs: $sequential in $(ms "$t1" "$t2") ms ($(( $(ms "$t1" "$t2") / (sequential > 0 ? sequential : 1) )) ms each)"
printf '%-15s %s\n' failures "$failures" processes "$processes" mounts "$mounts" cgroups "$cgroups" "state entries" "$state"
[ "$failures" -eq 0 ] && [ "$processes" -eq 0 ] && [ "$mounts" -eq 0 ] && [ "$cgroups" -eq 0 ] && [ "$state" -eq 0 ]
