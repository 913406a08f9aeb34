#!/usr/bin/env bash
# Runs every test of Connect Ops, Rust and Python, installing what the tests need when it is missing.
#
#   scripts/test.sh                      # on a developer machine: real tests skip (loudly) what is missing
#   CONNECT_REAL_TESTS=1 scripts/test.sh # as CI runs it: a missing program fails its test
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the real-backend tests start on 127.0.0.1. Each backend's issue adds its own.
DEBIAN_PACKAGES=(etcd-server patroni postgresql postgresql-contrib redis-server redis-tools util-linux)

need_debian() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

if [ ${#DEBIAN_PACKAGES[@]} -gt 0 ]; then
  need_debian "${DEBIAN_PACKAGES[@]}"
fi

echo "==> Rust: every crate, every test (CONNECT_REAL_TESTS=${CONNECT_REAL_TESTS:-0})"
cargo test --workspace --all-targets
cargo test --workspace --doc
