"""Helpers shared by the emulation tests (imported as ``emuhelpers``: pytest puts tests/ on the path).

- ``missing_features(*commands)``: what this machine lacks for an emulation ('not root', 'Open
  vSwitch not installed', 'mininet not importable') plus any of ``commands`` not on the PATH; the
  tests skip naming exactly these.
- ``ring4(name, near_km, far_km)``: the small meshed topology most emulation tests use, a ring
  A-B-C-D-A with two short and two long links (so shortest paths are not ambiguous).
- ``ofctl(*args)``: ``ovs-ofctl -O OpenFlow13 ...`` output.
- ``wait_for(cond, timeout, what)``: poll ``cond`` until truthy (returned) or fail naming ``what``.
"""

from __future__ import annotations

import shutil
import subprocess
import time

from tools.emulation import ovs
from topologies.model import Topology


def missing_features(*commands: str) -> list[str]:
    missing = ovs.probe().missing_for_emulation()
    return missing + [f"{c} not installed" for c in commands if not shutil.which(c)]


def ring4(name: str, near_km: float = 100, far_km: float = 600) -> Topology:
    t = Topology(name)
    for n in "ABCD":
        t.add_node(n)
    t.add_link("A", "B", km=near_km)
    t.add_link("B", "C", km=near_km)
    t.add_link("C", "D", km=far_km)
    t.add_link("D", "A", km=far_km)
    return t


def ofctl(*args: str) -> str:
    return subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", *args], capture_output=True, text=True,
                          timeout=10, check=True).stdout


def wait_for(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)
