#!/usr/bin/env bash
# Runs every test: unit tests, and end-to-end tests against real Nix and the
# real runsc. Installs missing packages first (see scripts/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
nucleus_install_deps
nucleus_prepare_rootless
# No binary cache is reachable from a test machine; don't wait for one.
export NIX_CONFIG="substituters ="
cargo test --locked "$@"
# The digest must not depend on serde_json's map order, which a crate that
# depends on nucleus could switch by enabling this feature. Built in a
# target directory of its own: tests/nix_sandbox.rs runs the newest unit
# test program in target/debug, which must be the default build.
if [ $# -eq 0 ]; then
  CARGO_TARGET_DIR=target/preserve-order cargo test --locked --lib --features serde_json/preserve_order bundle::
  # The fuzz targets (their own workspace, see fuzz/README.md) must keep
  # compiling against the library's API; checking them is cheap, running
  # them is not.
  cargo check --locked --manifest-path fuzz/Cargo.toml --bins
fi
