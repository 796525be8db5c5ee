"""What the VM offers the emulation, measured: boot time, the kernel features, a netem RTT, taprio.

Why: ``dnctl emulate probe --vm`` shows a user (and CI logs) the figures the VM's emulation will
rest on, in about a minute: how long the guest takes to boot, that the openvswitch module, netem and
taprio load there, that a ``netem delay D`` on both ends of a veth gives an RTT of about 2 D (within
10% + 5 ms, the criterion of issue 11), and that a taprio gate list installs and reads back.

Side effects: boots a guest (``tools.vm.guest``, under the emulation lock); builds the image first
if it is not cached.
"""

from __future__ import annotations

import re
from typing import Any

from tools.emulation.progress import Progress, progress
from tools.vm.guest import Guest
from tools.vm.image import ensure_image

__all__ = ["GUEST_SCRIPT", "parse_guest_output", "probe_vm"]

MODULES = ("openvswitch", "sch_netem", "sch_taprio", "sch_etf", "veth")

#: runs in the guest; ``{delay_ms}`` is the one-way netem delay on each end of the veth
GUEST_SCRIPT = r"""
modprobe -a {modules}
echo "== lsmod"; lsmod | awk 'NR > 1 {{print $1}}'
ip netns add a && ip netns add b
ip link add va netns a numtxqueues 2 numrxqueues 2 type veth peer name vb netns b numtxqueues 2 numrxqueues 2
ip -n a addr add 10.9.0.1/24 dev va && ip -n b addr add 10.9.0.2/24 dev vb
ip -n a link set va up && ip -n b link set vb up
tc -n a qdisc add dev va root netem delay {delay_ms}ms && tc -n b qdisc add dev vb root netem delay {delay_ms}ms
ip netns exec a ping -c 2 -i 0.2 -q 10.9.0.2 >/dev/null
echo "== ping"; ip netns exec a ping -c 10 -i 0.2 -q 10.9.0.2 | tail -2
tc -n a qdisc replace dev va root taprio num_tc 2 map 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 queues 1@0 1@1 \
    base-time 0 sched-entry S 01 500000 sched-entry S 02 500000 clockid CLOCK_TAI
echo "== taprio"; tc -n a qdisc show dev va
"""


def parse_guest_output(text: str, delay_ms: float) -> dict[str, Any]:
    """The figures of ``GUEST_SCRIPT``'s output: modules loaded, RTT against 2 x delay, taprio."""
    parts = dict(re.findall(r"== (\w+)\n(.*?)(?=\n== |\Z)", text, re.S))
    loaded = set(parts.get("lsmod", "").split())
    m = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/[\d.]+ ms", parts.get("ping", ""))
    expected = 2 * delay_ms
    limit = 0.1 * expected + 5
    rtt = [float(x) for x in m.groups()] if m else None
    taprio = parts.get("taprio", "")
    return {
        "modules": {mod: mod in loaded for mod in MODULES},
        "netem": {"delay_ms": delay_ms, "expected_rtt_ms": expected, "limit_ms": limit, "rtt_ms": rtt,
                  "within": rtt is not None and abs(rtt[1] - expected) <= limit},
        "taprio": "taprio" in taprio and "gatemask 0x1 interval 500000" in taprio,
    }


def probe_vm(delay_ms: float = 10.0, say: Progress = progress("vm")) -> dict[str, Any]:
    """Boot a guest, run ``GUEST_SCRIPT``, return the figures (see ``parse_guest_output``) plus
    ``kernel_release``, ``boot_seconds`` and ``seconds`` (the script's run time)."""
    img = ensure_image(say)
    with Guest(img, say=say) as g:
        r = g.run(GUEST_SCRIPT.format(modules=" ".join(MODULES), delay_ms=f"{delay_ms:g}"), timeout=180)
        res = parse_guest_output(r.stdout, delay_ms)
        return {"kernel_release": img.kernel_release, "image": img.key,
                "boot_seconds": round(g.boot_seconds or 0, 1), "seconds": round(r.seconds, 1), **res,
                "ok": r.returncode == 0 and all(res["modules"].values()) and res["netem"]["within"]
                and res["taprio"],
                "stderr": r.stderr.strip()[-500:]}
