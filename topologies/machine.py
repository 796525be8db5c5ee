"""What this machine's kernel offers emulated links: tc qdiscs and the openvswitch module.

Why here, below ``tools/``: the Mininet topology (``topologies.mininet_topo``: netem delay on links,
the kernel or userspace datapath of ``--switch detnet``), the controller launcher (OVS queues need
the kernel datapath and tc htb) and the emulation's machine probe (``tools.emulation.ovs.probe``)
all ask the same questions, and topologies/ and controller/ must not import tools/.

- ``qdisc_works(args)``: whether ``tc qdisc add dev lo root <args>`` works (netem, htb, taprio,
  ...), tried in a throw-away network namespace (``unshare --net``) on its loopback device, so it
  touches no real interface and leaves nothing behind. Needs root (else False).
- ``taprio_works()``: whether ``taprio`` (802.1Qbv gates, software mode) can be installed; it
  needs a multi-queue device, so it is tried on a two-queue veth in a throw-away namespace.
- ``kernel_datapath_available()``: the ``openvswitch`` kernel module is loaded or loadable.
- ``load_kernel_datapath()``: load it (``modprobe openvswitch``) if it is not loaded yet.

Side effects on the local kernel only (the module load); imports neither Mininet nor os-ken, nor
anything of the project.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["OVS_MODULE", "TAPRIO_PROBE", "kernel_datapath_available", "load_kernel_datapath",
           "qdisc_works", "taprio_works"]

#: present when the openvswitch kernel module is loaded
OVS_MODULE = Path("/sys/module/openvswitch")
#: a two-class gate schedule (class 0 open 1 ms, class 1 open 1 ms) on a two-queue veth
TAPRIO_PROBE = ("ip link add t0 numtxqueues 2 numrxqueues 2 type veth peer name t1 numtxqueues 2 "
                "numrxqueues 2 && tc qdisc add dev t0 root taprio num_tc 2 map 0 1 0 0 0 0 0 0 0 0 0 0 "
                "0 0 0 0 queues 1@0 1@1 base-time 0 sched-entry S 01 1000000 sched-entry S 02 1000000 "
                "clockid CLOCK_TAI")


def _returncode(cmd: list[str], timeout: float) -> int | None:
    """Exit status of ``cmd`` (output discarded), or None when it cannot run or times out."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout).returncode
    except (OSError, subprocess.TimeoutExpired):
        return None


def kernel_datapath_available() -> bool:
    """The ``openvswitch`` kernel module is loaded, or ``modprobe -n`` says it can be loaded."""
    if OVS_MODULE.exists():
        return True
    if not Path("/proc/modules").exists() or not shutil.which("modprobe"):
        return False  # no loadable-module support at all
    return _returncode(["modprobe", "-n", "openvswitch"], timeout=5) == 0


def load_kernel_datapath() -> bool:
    """Load the ``openvswitch`` module if it is not loaded yet; True when it is loaded afterwards."""
    if OVS_MODULE.exists():
        return True
    if shutil.which("modprobe"):
        _returncode(["modprobe", "openvswitch"], timeout=20)
    return OVS_MODULE.exists()


def qdisc_works(kind_args: str) -> bool:
    """Whether ``tc qdisc add dev lo root <kind_args>`` works, tried in a throw-away netns.

    ``unshare --net`` makes a fresh, unnamed network namespace that disappears with the command,
    so nothing needs cleaning up and no real interface is touched. Needs root (else False).
    """
    if os.geteuid() != 0 or not shutil.which("tc") or not shutil.which("unshare"):
        return False
    code = _returncode(["unshare", "--net", "tc", "qdisc", "add", "dev", "lo", "root", *kind_args.split()],
                       timeout=10)
    return code == 0


def taprio_works() -> bool:
    """Whether ``taprio`` (software mode) installs on a two-queue veth, tried in a throw-away netns.

    taprio refuses single-queue devices (lo, a default veth), so ``qdisc_works`` cannot probe it.
    Needs root (else False).
    """
    if os.geteuid() != 0 or not all(shutil.which(c) for c in ("ip", "tc", "unshare")):
        return False
    return _returncode(["unshare", "--net", "sh", "-c", TAPRIO_PROBE], timeout=10) == 0
