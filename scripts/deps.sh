#!/usr/bin/env bash
# Installs what nucleus needs to run and to be tested, on Debian or Ubuntu,
# as root. Packages already present are left alone. Sourced by demo.sh,
# test.sh and .ci/run.
set -euo pipefail

NUCLEUS_APT_PACKAGES=(
  runsc                                    # gVisor
  nix-bin                                  # Nix (single-user as root)
  busybox-static                           # a static binary for test closures without nixpkgs
  runc crun                                # cross-check bundles with other runtimes
  golang-github-opencontainers-specs-dev   # the OCI runtime-spec JSON schema
  python3-jsonschema                       # to validate config.json against it
  time                                     # /usr/bin/time -v for the memory benchmark
  jq
)

nucleus_install_deps() {
  local missing=()
  for pkg in "${NUCLEUS_APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    if [ "$(id -u)" -ne 0 ]; then
      echo "missing packages: ${missing[*]} (run as root, or install them first)" >&2
      return 1
    fi
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust (https://rustup.rs) first" >&2
    return 1
  fi
}
