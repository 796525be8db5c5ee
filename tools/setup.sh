#!/usr/bin/env bash
# Idempotent machine and venv setup, run by `make setup` (and so by demo, test, bench).
# 1. As root on Debian/Ubuntu: apt-install the system packages that are missing.
# 2. Make .venv with the system Python and --system-site-packages (Mininet's module lives there).
# 3. Install the project in editable mode with its test extras, only when setup.cfg changed.
# 4. When this kernel lacks the openvswitch module, netem or taprio (the emulation then runs in a VM
#    with Debian's stock kernel, docs/vm.md): install qemu and the image tools, build the VM image.
#    It is cached in .cache/vm and rebuilt only when tools/vm/recipe changes (a second run: ~1 s).
set -euo pipefail
cd "$(dirname "$0")/.."

# apt-install those of the packages "$@" that are missing (as root), else say which are missing
install_missing() {
    local missing="" p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing system packages:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends $missing >/dev/null
    else
        echo "setup: missing system packages:$missing (install them as root; emulation tests will skip)" >&2
    fi
}

install_missing mininet openvswitch-switch iputils-ping iperf3 tcpdump iproute2 ethtool python3-venv prometheus
install_missing libjemalloc2   # Open vSwitch is started on it (tools/emulation/ovs.py start_env: its per-port buffers)
install_missing jq curl     # the docs' examples pipe through them (tests/test_doc_examples.py)
install_missing libyang2-tools   # yanglint: validates the 802.1Qcw YANG output (tests/test_yang.py)
install_missing chromium    # the live view's browser tests (tests/test_ui_browser.py; Playwright drives it, no browser download)
install_missing etcd-server etcd-client   # the etcd store and leader election tests start a 1- or 3-member cluster (docs/high-availability.md)

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
if .venv/bin/python -m tools.vm need >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        install_missing qemu-system-x86 mmdebstrap busybox-static cpio e2fsprogs kmod
        .venv/bin/python -m tools.vm build
    else
        echo "setup: this kernel lacks netem, taprio or the openvswitch module and building the VM image needs root; VM tests will skip" >&2
    fi
fi
echo "setup: ready (.venv/bin/dnctl)"
