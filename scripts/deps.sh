#!/usr/bin/env bash
# Installs what nucleus needs to run and to be tested, on Debian or Ubuntu,
# as root. Packages already present are left alone. Sourced by demo.sh,
# test.sh and .ci/run.
set -euo pipefail

NUCLEUS_APT_PACKAGES=(
  runsc                                    # gVisor
  nix-bin                                  # Nix (single-user as root)
  nix-setup-systemd                        # the nix-users group and daemon layout (rootless test)
  busybox-static                           # a static binary for test closures without nixpkgs
  runc crun                                # cross-check bundles with other runtimes
  golang-github-opencontainers-specs-dev   # the OCI runtime-spec JSON schema
  python3-jsonschema                       # to validate config.json against it
  bc                                       # arithmetic in benches/startup.sh
  g++                                      # build: the fuzz crate's libfuzzer-sys compiles libFuzzer (test.sh checks fuzz/)
  time                                     # /usr/bin/time: peak memory in benches/hash.sh and verify.sh
  skopeo umoci                             # tests/image.rs: inspect and unpack the images `nucleus image` writes
  podman                                   # tests/image.rs: load an image and run it with runsc
  python3-pip                              # to install kubernetes-validate (below)
  jq                                       # benches/image.sh reads the images' manifests
)

# tests/kube.rs validates manifests with kubernetes-validate (it ships the
# Kubernetes schemas, so it works offline), installed for Debian's python3
# into a directory of its own, which the tests put on PYTHONPATH.
NUCLEUS_PYTHON=/usr/bin/python3
NUCLEUS_PIP_PACKAGES=(kubernetes-validate==1.37.0)
export NUCLEUS_TEST_PYTHONPATH=${NUCLEUS_TEST_PYTHONPATH:-/opt/nucleus-test/python}

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
  if ! PYTHONPATH=$NUCLEUS_TEST_PYTHONPATH "$NUCLEUS_PYTHON" -c 'import kubernetes_validate' 2>/dev/null; then
    echo "installing into $NUCLEUS_TEST_PYTHONPATH: ${NUCLEUS_PIP_PACKAGES[*]}" >&2
    "$NUCLEUS_PYTHON" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
      --target "$NUCLEUS_TEST_PYTHONPATH" "${NUCLEUS_PIP_PACKAGES[@]}"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust (https://rustup.rs) first" >&2
    return 1
  fi
}

# The rootless end-to-end test runs nucleus as this unprivileged user. It
# reaches the Nix store through the daemon, so it joins nix-users and the
# daemon must be running (on machines without systemd nobody starts it).
NUCLEUS_ROOTLESS_USER=nucleus-ci

nucleus_prepare_rootless() {
  [ "$(id -u)" -eq 0 ] || return 0
  if ! id "$NUCLEUS_ROOTLESS_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin -G nix-users "$NUCLEUS_ROOTLESS_USER"
  elif ! id -nG "$NUCLEUS_ROOTLESS_USER" | grep -qw nix-users; then
    usermod -aG nix-users "$NUCLEUS_ROOTLESS_USER"
  fi
  nucleus_start_daemon
}

# Starts nix-daemon if none answers. NixOS always runs one, and nucleus asks
# it for closures (falling back to `nix path-info`, which costs more), so
# the benchmarks want one too.
nucleus_start_daemon() {
  [ "$(id -u)" -eq 0 ] || return 0
  nucleus_daemon_answers && return 0
  echo "starting nix-daemon" >&2
  setsid nix-daemon >/dev/null 2>&1 </dev/null &
  for _ in $(seq 1 50); do
    nucleus_daemon_answers && return 0
    sleep 0.1
  done
  echo "nix-daemon did not start" >&2
  return 1
}

nucleus_daemon_answers() {
  timeout 5 nix --extra-experimental-features nix-command store ping --store daemon >/dev/null 2>&1
}
