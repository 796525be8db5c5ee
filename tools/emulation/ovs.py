"""Open vSwitch bring-up and a probe of what this machine offers the emulation.

Why: the emulation must run both on CI boxes (no ``openvswitch`` kernel module, no ``netem``:
Open vSwitch's userspace datapath, links without delay) and on users' machines (kernel datapath,
``netem`` for propagation delay). Nothing is assumed either way: ``probe()`` looks, and the
emulation picks the datapath and the link features from what it found.

- ``ensure_ovs_running()`` starts ``ovsdb-server``/``ovs-vswitchd`` with ``ovs-ctl`` when
  ``ovs-vsctl show`` does not answer; it never stops or restarts a running Open vSwitch. It starts
  them on jemalloc where ``make setup`` installed it (``start_env``; why: below).
- ``probe()`` returns ``Capabilities``. The kernel checks (``qdisc_works``, ``kernel_datapath_available``,
  ``load_kernel_datapath``) live in ``topologies.machine``, below tools/, because the Mininet topology
  and the controller launcher ask them too; the qdisc checks run in a throw-away network namespace
  (``unshare --net``) on its loopback device, so they touch no real interface and leave nothing.

Imports neither Mininet nor os-ken (only checks whether Mininet is importable).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from typing import Any

from topologies.machine import kernel_datapath_available, load_kernel_datapath, qdisc_works

#: jemalloc's shared library where Debian/Ubuntu (package libjemalloc2) and source installs put it
JEMALLOC_CANDIDATES = ("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
                       "/usr/lib64/libjemalloc.so.2", "/usr/local/lib/libjemalloc.so.2")

#: where distributions put ovs-ctl (Debian/Ubuntu first, then source installs)
OVS_CTL_CANDIDATES = (
    "/usr/share/openvswitch/scripts/ovs-ctl",
    "/usr/local/share/openvswitch/scripts/ovs-ctl",
)


class OvsError(RuntimeError):
    """Open vSwitch is missing or cannot be started; the message is one line saying what to do."""


def _run(cmd: list[str], timeout: float = 10.0, input: str | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a command, capture its output, never raise on a non-zero exit (raise only if absent)."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input, env=env)


def ovs_installed() -> bool:
    """True when the Open vSwitch user tools are on PATH."""
    return shutil.which("ovs-vsctl") is not None and shutil.which("ovs-ofctl") is not None


def ovs_running() -> bool:
    """True when ovsdb-server answers and ovs-vswitchd is connected (``ovs-vsctl show`` works)."""
    if not shutil.which("ovs-vsctl"):
        return False
    try:
        if _run(["ovs-vsctl", "--timeout=2", "show"], timeout=5).returncode != 0:
            return False
        # ovsdb alone answers `show`; ovs-vswitchd must be up too or bridges never get ports.
        vswitchd = _run(["ovs-appctl", "-t", "ovs-vswitchd", "version"], timeout=5) \
            if shutil.which("ovs-appctl") else None
        return vswitchd is None or vswitchd.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def jemalloc_path() -> str | None:
    """jemalloc's shared library on this machine, or None."""
    return next((p for p in JEMALLOC_CANDIDATES if os.path.exists(p)), None)


def start_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment ``ensure_ovs_running`` starts Open vSwitch in: ``base`` (this process's) with
    jemalloc preloaded when it is installed.

    Why: the userspace datapath's main thread polls every port each loop, and Open vSwitch 3.1's
    AF_PACKET receive allocates 32 frame buffers (about 1.7 KB each) per call and frees them when
    the port had nothing: 6,400 allocations per loop with the 40-city emulation's 200 ports. Glibc
    serves buffers of that size from its locked bins, not its per-thread cache: a profile of a demo
    (``perf record -p $(pidof ovs-vswitchd)``) put 32% of the switch's CPU in ``malloc``/``free``;
    on jemalloc (per-thread caches for these sizes) it was 5%, and the loop ran 18% more often at the
    same packet rate. It changes nothing else: an Open vSwitch already running is used as it is."""
    env = dict(os.environ if base is None else base)
    lib = jemalloc_path()
    if lib and lib not in env.get("LD_PRELOAD", "").split():
        env["LD_PRELOAD"] = " ".join(x for x in (lib, env.get("LD_PRELOAD", "")) if x)
    return env


def allocator(pid: int) -> str:
    """Which allocator process ``pid`` runs on: 'jemalloc', 'glibc', or 'unknown' (no such process)."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            return "jemalloc" if "libjemalloc" in f.read() else "glibc"
    except OSError:
        return "unknown"


def _ovs_ctl() -> str | None:
    for path in OVS_CTL_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("ovs-ctl")


def ensure_ovs_running() -> None:
    """Make sure ovsdb-server and ovs-vswitchd run; start them with ``ovs-ctl start`` if not.

    Raises ``OvsError`` (one line) when Open vSwitch is not installed or will not start.
    """
    if not ovs_installed():
        raise OvsError("Open vSwitch is not installed (no ovs-vsctl/ovs-ofctl on PATH); "
                       "install it with: apt-get install openvswitch-switch")
    if ovs_running():
        return
    ctl = _ovs_ctl()
    if ctl is None:
        raise OvsError("Open vSwitch is not running and ovs-ctl was not found to start it; "
                       "start it with: service openvswitch-switch start")
    if os.geteuid() != 0:
        raise OvsError("Open vSwitch is not running and starting it needs root")
    try:
        res = _run([ctl, "start"], timeout=60, env=start_env())
    except subprocess.TimeoutExpired:
        raise OvsError(f"{ctl} start did not finish within 60 s") from None
    if not ovs_running():
        tail = " | ".join(l.strip() for l in (res.stdout + res.stderr).splitlines()[-3:] if l.strip())
        raise OvsError(f"could not start Open vSwitch with {ctl} start (exit {res.returncode}): {tail}")


# ----- probe -------------------------------------------------------------------------

def mininet_importable() -> bool:
    """True when ``import mininet`` would work in this interpreter (it is not imported here)."""
    try:
        return importlib.util.find_spec("mininet") is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class Capabilities:
    """What this machine offers an emulation (see ``probe``)."""

    ovs_installed: bool
    ovs_running: bool
    kernel_datapath: bool   # openvswitch kernel module loaded or loadable
    netem: bool             # tc netem works: links can carry propagation delay
    htb: bool               # tc htb works: links can be rate-limited (Mininet TCLink)
    is_root: bool
    mininet_importable: bool

    @property
    def datapath(self) -> str:
        """``'kernel'`` when the openvswitch module is usable, else ``'user'`` (userspace OVS)."""
        return "kernel" if self.kernel_datapath else "user"

    def missing_for_emulation(self) -> list[str]:
        """Machine features an emulation cannot do without; empty when one can start.

        Each entry is a short phrase usable as a skip reason ('not root', ...). OVS not running is
        not listed: ``ensure_ovs_running`` starts it.
        """
        missing = []
        if not self.is_root:
            missing.append("not root")
        if not self.ovs_installed:
            missing.append("Open vSwitch not installed")
        if not self.mininet_importable:
            missing.append("mininet not importable")
        return missing

    def limitations(self) -> list[str]:
        """What the emulation will lack on this machine (it still runs), one phrase each."""
        notes = []
        if not self.kernel_datapath:
            notes.append("no openvswitch kernel module: userspace datapath (slower, meters supported)")
        if not self.netem:
            notes.append("no tc netem: links carry no propagation delay")
        if not self.htb:
            notes.append("no tc htb: links are not rate-limited")
        return notes

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["datapath"] = self.datapath
        d["missing_for_emulation"] = self.missing_for_emulation()
        d["limitations"] = self.limitations()
        return d


def probe() -> Capabilities:
    """Look at this machine: Open vSwitch, kernel datapath, netem, htb, root, Mininet."""
    root = os.geteuid() == 0
    return Capabilities(
        ovs_installed=ovs_installed(),
        ovs_running=ovs_running(),
        kernel_datapath=kernel_datapath_available(),
        netem=root and qdisc_works("netem delay 1ms"),
        htb=root and qdisc_works("handle 1: htb default 1"),
        is_root=root,
        mininet_importable=mininet_importable(),
    )
