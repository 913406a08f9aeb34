#!/usr/bin/env bash
# Runs every test of Connect Ops, Rust and Python, installing what the tests need when it is missing.
#
#   scripts/test.sh                      # on a developer machine: real tests skip (loudly) what is missing
#   CONNECT_REAL_TESTS=1 scripts/test.sh # as CI runs it: a missing program fails its test
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the real-backend tests start on 127.0.0.1. Each backend's issue adds its own.
# connect-docker: docker.io (dockerd; its daemon must be running: the tests talk to it and start a second
# dockerd with unshare from util-linux), libc6-dev (libc.a for the statically linked test app).
# connect-db: pgbackrest (continuous backups and point-in-time recovery; `runuser` from util-linux runs it as
# postgres when the tests run as root).
# connect-ops: tmux (its progress display checked in a real terminal), zsh and fish (completions parsed by the
# shells themselves), man-db (the man page rendered); prometheus (the exporter scraped by a real Prometheus,
# and promtool checking and testing monitoring/rules.yml); nftables and iproute2 (the audit's firewall and
# listening-socket checks, run against real nft and ss in a network namespace of the test's own).
# curl: the Swarm test asks the services from inside the swarm nodes' network namespace (nsenter).
DEBIAN_PACKAGES=(docker.io libc6-dev util-linux haproxy openssl openssh-server openssh-client
  etcd-server patroni postgresql postgresql-contrib pgbackrest redis-server redis-tools tmux zsh fish man-db
  prometheus nftables iproute2 rsync curl)

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
# The fault sweep's summaries are kept in target/tmp/sweep/ (a passing test's output is captured): cleared
# first, so only this run's scenarios are counted.
rm -rf target/tmp/sweep
# Every target but the benchmarks: they measure (minutes of load, a 1 GB database) and are run with
# `cargo bench`; clippy --all-targets in CI still compiles them.
cargo test --workspace --lib --bins --tests --examples
cargo test --workspace --doc
cat target/tmp/sweep/* \
  | awk '{ print; for (i = 1; i <= NF; i++) if ($i == "cases") n += $(i - 1) } END { print "sweep: " n " cases in all" }'

echo "==> Python: connect_ops built with maturin into a virtualenv, pytest, mypy --strict"
PY_VENV="$PWD/target/py-venv"
if [ ! -x "$PY_VENV/bin/python" ]; then
  # Debian's own python3 needs python3-venv for this; a pyenv or python.org Python has it built in.
  python3 -m venv "$PY_VENV" 2>/dev/null || { need_debian python3-venv; python3 -m venv "$PY_VENV"; }
fi
"$PY_VENV/bin/python" -m pip install -q --disable-pip-version-check maturin==1.16.0 pytest==9.2.0 mypy==2.4.1
(cd connect-py && VIRTUAL_ENV="$PY_VENV" PATH="$PY_VENV/bin:$PATH" maturin develop -q)
"$PY_VENV/bin/python" -c "import connect_ops"
# pytest exits 5 when it collected no test: that is a failure here, not a pass.
py_status=0
(cd connect-py && "$PY_VENV/bin/python" -m pytest -q -p no:cacheprovider --doctest-modules python/connect_ops tests) || py_status=$?
if [ "$py_status" -eq 5 ]; then
  echo "pytest collected no tests in connect-py/tests" >&2
  exit 1
elif [ "$py_status" -ne 0 ]; then
  exit "$py_status"
fi
(cd connect-py && "$PY_VENV/bin/python" -m mypy --strict --cache-dir ../target/mypy-cache examples python/connect_ops tests)
# The stubs of the Rust module must match what it really exports, argument by argument.
(cd connect-py && "$PY_VENV/bin/python" -m mypy.stubtest --mypy-config-file pyproject.toml connect_ops._connect_ops)

echo "==> Python: the abi3 wheel (maturin build), installed into a fresh virtualenv, runs an example"
# What a user installs is the wheel, not the development build: it must carry the stubs and the typed
# marker, complete metadata, and work without the source tree. A fresh virtualenv each run, so nothing a
# previous run installed can stand in for what the wheel lacks. Built in the dev profile: the packaging
# is what is checked here, and the dev build reuses what `maturin develop` compiled above, where
# `--release` (the wheel to publish) compiles every dependency again, about 7 minutes on this machine.
WHEEL_DIR="$PWD/target/wheels"
WHEEL_VENV="$PWD/target/wheel-venv"
rm -rf "$WHEEL_DIR" "$WHEEL_VENV"
wheel_started=$(date +%s)
(cd connect-py && VIRTUAL_ENV="$PY_VENV" PATH="$PY_VENV/bin:$PATH" maturin build --quiet --out "$WHEEL_DIR")
echo "wheel: built in $(( $(date +%s) - wheel_started )) s: $(cd "$WHEEL_DIR" && ls)"
python3 -m venv "$WHEEL_VENV"
"$WHEEL_VENV/bin/python" -m pip install -q --no-index --disable-pip-version-check "$WHEEL_DIR"/connect_ops-*-abi3-*.whl
(cd "$WHEEL_DIR" && "$WHEEL_VENV/bin/python" - <<'PY'
import importlib.metadata as md
import pathlib

import connect_ops

meta = md.metadata("connect-ops")
missing = [k for k in ("Summary", "License", "Requires-Python", "Description") if not meta.get(k)]
missing += [] if meta.get_all("Classifier") else ["Classifier"]
missing += [] if meta.get_all("Project-URL") else ["Project-URL"]
assert not missing, f"the wheel's metadata lacks {missing}"
assert "Typing :: Typed" in meta.get_all("Classifier"), "the wheel does not say it is typed"
package = pathlib.Path(connect_ops.__file__).parent
assert "site-packages" in str(package), f"connect_ops came from {package}, not the installed wheel"
for name in ("py.typed", "_connect_ops.pyi"):
    assert (package / name).is_file(), f"the wheel lacks {name}"
print(f"wheel: connect-ops {connect_ops.__version__} installed from the wheel, metadata and types complete")
PY
)
EXAMPLE="$PWD/connect-py/examples/blue_green_deploy.py"
(cd "$WHEEL_DIR" && "$WHEEL_VENV/bin/python" "$EXAMPLE")
