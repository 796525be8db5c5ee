"""Make every veth of an emulation one FIFO: its frames go through its own receive ring, in order.

Why: a plain veth hands each frame to ``netif_rx``, which queues it on the input backlog of the CPU
the *sender* is running on. Frames of one flow leave from different CPUs (``ovs-vswitchd`` moves
between them; an HTB releases a held frame from a timer on whichever CPU it fires), so they wait
in different backlogs. When one CPU's softirq work is deferred to ``ksoftirqd``, which queues for a
CPU behind ``ovs-vswitchd`` and the talkers, the frames in its backlog come out after later ones of
the same flow: the demo saw a probe arrive 12-13 ms behind the 11-12 sent after it, with no flow
table change, on this 2-CPU host. A switch port is one FIFO; the emulation's ports must be too.

How: since Linux 5.13 a veth whose receiving end has GRO enabled gives each receive queue a ring
drained by its own NAPI instance, and frames sent from every CPU enter that one ring in the order
they were sent (``ethtool -S`` counts them as ``rx_queue_N_xdp_packets``). Two things come with
it and are switched off:

- GRO would merge a TCP flow's segments into frames of up to 64 KB, which no switch port of the
  emulated network carries (userspace Open vSwitch would forward them as they are);
  ``gro_max_size 0`` (Linux 5.19; it caps the IPv4 size with it) forbids every merge.
- The ring is used only for frames from a sender without TSO (``veth_skb_is_eligible_for_gro``):
  TSO goes off on every end, so a host's TCP leaves it in MTU-sized frames, as it must anyway.

``configure`` does both ends of every veth of the emulation (switch ports in the root namespace,
hosts' interfaces in theirs) and returns what it did; ``ring_frames`` reads the rings' counters.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field

#: what ``ethtool -S`` of a veth in ring (NAPI) mode counts per receive queue
_RING_COUNTER = re.compile(r"^\s*rx_queue_\d+_xdp_packets:\s*(\d+)\s*$", re.M)


def end_script(dev: str) -> str:
    """Shell commands that put one veth end in ring mode: no merging first (so GRO can never merge a
    frame, not even between the two commands), then TSO off and GRO on. Prints ``RING-OK dev`` when
    all three worked."""
    return (f"ip link set dev {dev} gro_max_size 0 && ethtool -K {dev} tso off gro on >/dev/null 2>&1 "
            f"&& echo RING-OK {dev}\n")


@dataclass
class Ordered:
    """What ``configure`` did: the ends now in ring mode, and those left on the per-CPU backlog."""
    ends: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """'veths in order: 186 ends receive through their own ring', or which ends could not."""
        text = f"veths in order: {len(self.ends)} ends receive through their own ring"
        if self.failed:
            text += (f"; {len(self.failed)} could not (kernel older than 5.19?) and may reorder: "
                     + " ".join(self.failed[:5]) + (" ..." if len(self.failed) > 5 else ""))
        return text


def _run(script: str, netns_pid: int | None) -> str:
    argv = ["sh", "-c", script]
    if netns_pid is not None:
        argv = ["nsenter", "-t", str(netns_pid), "-n", *argv]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    return res.stdout


def configure(root_devs: list[str], host_devs: list[tuple[int, str]]) -> Ordered:
    """Put every end in ring mode: ``root_devs`` in this namespace, ``host_devs`` as (pid of a
    process in the host's network namespace, interface). One shell per namespace."""
    done = Ordered()
    groups: list[tuple[int | None, list[str]]] = [(None, list(root_devs))]
    groups += [(pid, [dev]) for pid, dev in host_devs]
    for pid, devs in groups:
        if not devs:
            continue
        out = _run("".join(end_script(d) for d in devs), pid)
        ok = {line.split()[1] for line in out.splitlines() if line.startswith("RING-OK ")}
        for d in devs:
            (done.ends if d in ok else done.failed).append(d if pid is None else f"{d}@{pid}")
    return done


def ring_frames(dev: str, netns_pid: int | None = None) -> int | None:
    """Frames ``dev`` has received through its ring(s) so far; None when it has no ring counters
    (not a veth, or ``ethtool`` failed)."""
    out = _run(f"ethtool -S {dev}", netns_pid)
    counts = [int(n) for n in _RING_COUNTER.findall(out)]
    return sum(counts) if counts else None
