#!/usr/bin/env bash
# Idempotent machine and venv setup, run by `make setup` (and so by demo, test, bench).
# 1. As root on Debian/Ubuntu: apt-install the system packages that are missing.
# 2. Make .venv with the system Python and --system-site-packages (Mininet's module lives there).
# 3. Install the project in editable mode with its test extras, only when setup.cfg changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS="mininet openvswitch-switch iputils-ping iperf3 tcpdump iproute2 ethtool python3-venv"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing system packages:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends $missing >/dev/null
    else
        echo "setup: missing system packages:$missing (install them as root; emulation tests will skip)" >&2
    fi
fi

PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $PY --system-site-packages"
    "$PY" -m venv --system-site-packages .venv
fi
stamp=.venv/.setup-stamp
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing detnet and its test extras into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >.venv/pip.log 2>&1 || true
    if ! .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' >.venv/pip.log 2>&1; then
        cat .venv/pip.log >&2
        echo "setup: pip install failed (log above, also in .venv/pip.log)" >&2
        exit 1
    fi
    touch "$stamp"
fi
echo "setup: ready (.venv/bin/dnctl)"
