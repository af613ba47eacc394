#!/usr/bin/env bash
# Builds nucleus and a small demo closure, then runs it in gVisor.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
nucleus_install_deps
export NIX_CONFIG="substituters ="
cargo build --release --locked --quiet
demo=$(nix-build --no-out-link --option sandbox true tests/closures/hello.nix \
  --arg busyboxFile "$(readlink -f "$(command -v busybox)")")
echo "closure: $demo ($(nix-store -qR "$demo" | wc -l) store paths)" >&2
echo "+ nucleus run $demo   (its main program, bin/hello)" >&2
target/release/nucleus run "$demo"
echo "+ nucleus run $demo -- /bin/sh -c 'ls /nix/store; echo x > /probe'" >&2
target/release/nucleus run "$demo" -- /bin/sh -c 'ls /nix/store; echo x > /probe || echo "(the root is read-only)"'
