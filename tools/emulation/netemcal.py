"""How late this machine's netem delays fire: the noise a propagation check must measure, not assume.

Why: each emulated link's propagation is a netem delay, released by a high-resolution timer. On a
machine whose timers fire late (a TCG guest on a busy host: about 0.5 ms per delay was measured
in CI), a path of n links adds 2n late timers to a round trip, so its fastest ping exceeds twice
the fibre's propagation by more than the switching alone. How much is a property of the machine
at that moment, so it is measured in the same run, the way every latency verdict measures its
noise floor: ``measure()`` pings across one veth pair between two scratch namespaces with
``DELAY_MS`` of netem on each end and reports how much later than asked each delay fired in the
fastest of the pings (``late_ms``: the same statistic as a path check that looks at its fastest
ping; ``late_avg_ms`` is the mean's, for the record). A path's fastest round trip may then exceed
its propagation by about ``2 x links x late_ms`` for the timers, measured, rather than by an
allowance written into a test.

Needs root and netem; leaves nothing behind (the namespaces go on every exit path).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import asdict, dataclass

from tools.emulation.network import parse_ping

#: the netem delay on each end of the calibration link (ms): long enough to be a timer, short enough
#: that 20 pings take a second
DELAY_MS = 5.0
COUNT = 20


@dataclass
class Lateness:
    """One calibration: the delay asked on each end, the pings' round trips (ms), and how much later
    than asked one netem delay fired in the fastest ping (``late_ms``) and on average
    (``late_avg_ms``), never below 0."""
    delay_ms: float
    pings: int
    rtt_min_ms: float
    rtt_avg_ms: float
    rtt_max_ms: float
    late_ms: float
    late_avg_ms: float

    def to_dict(self) -> dict:
        return asdict(self)


def lateness_from(rtt_ms: float, delay_ms: float) -> float:
    """Lateness of one delay in a round trip of ``rtt_ms``: it crosses the two ends' delays once each."""
    return max(0.0, (rtt_ms - 2 * delay_ms) / 2)


def _sh(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=120)


def measure(delay_ms: float = DELAY_MS, count: int = COUNT) -> Lateness:
    """Ping across a netem-delayed veth pair in two scratch namespaces; RuntimeError (one line)
    when the link cannot be made (no root, no netem) or no reply came back."""
    tag = f"{os.getpid() % 100000}"
    a, b = f"dncal{tag}a", f"dncal{tag}b"
    us = int(round(delay_ms * 1000))
    setup = (f"ip netns add {a} && ip netns add {b} && "
             f"ip -n {a} link add ca address 02:00:0a:d7:00:01 type veth peer name cb address 02:00:0a:d7:00:02 "
             f"netns {b} && "
             f"ip -n {a} addr add 10.215.0.1/24 dev ca && ip -n {b} addr add 10.215.0.2/24 dev cb && "
             # static neighbours: no ARP exchange (two more delays) inflates the first ping
             f"ip -n {a} neigh add 10.215.0.2 lladdr 02:00:0a:d7:00:02 dev ca nud permanent && "
             f"ip -n {b} neigh add 10.215.0.1 lladdr 02:00:0a:d7:00:01 dev cb nud permanent && "
             f"ip -n {a} link set ca up && ip -n {b} link set cb up && "
             f"tc -n {a} qdisc add dev ca root netem delay {us}us && "
             f"tc -n {b} qdisc add dev cb root netem delay {us}us")
    try:
        res = _sh(setup)
        if res.returncode != 0:
            raise RuntimeError("cannot make the netem calibration link: "
                               + (res.stderr.strip().splitlines() or ["failed"])[-1])
        out = _sh(f"ip netns exec {a} ping -n -c {count} -i 0.05 -W 2 10.215.0.2").stdout
    finally:
        _sh(f"ip netns del {a} 2>/dev/null; ip netns del {b} 2>/dev/null")
    r = parse_ping("calibration-a", "calibration-b", out)
    if not r.received or r.rtt_avg_ms is None:
        raise RuntimeError("the netem calibration link answered no ping")
    return Lateness(delay_ms=delay_ms, pings=r.received, rtt_min_ms=r.rtt_min_ms, rtt_avg_ms=r.rtt_avg_ms,
                    rtt_max_ms=r.rtt_max_ms, late_ms=lateness_from(r.rtt_min_ms, delay_ms),
                    late_avg_ms=lateness_from(r.rtt_avg_ms, delay_ms))
