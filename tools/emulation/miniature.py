"""The miniature: the emulated network as the controller that drives it must schedule it (pure).

Why: the emulation runs every link at ``link_scale`` x its capacity (1/10,000 by default: 100 Gb/s
becomes 10 Mb/s). A schedule computed for the full rates describes another network: a 1,500-byte
frame holds 0.12 us at 100 Gb/s but 1.2 ms on the emulated 10 Mb/s link. So the controller of an
emulation is given the network its packets really cross, and every bound, offset and meter it
computes is that network's:

- ``miniature_topology``: every link's ``capacity_bps`` x ``link_scale``; ``propagation_ns`` x
  ``delay_scale`` where netem emulates it. Where it does not (no netem: the host path here) the
  links carry no propagation, and the controller must not count propagation the packets never
  see: each link keeps ``ceil(propagation_ns / 1000)`` ns (the real microseconds written as
  nanoseconds: a few ns per path, below 1/50 of a slot, so a bound is not lengthened by it, while
  paths are still chosen in the real network's order of propagation, as best effort is routed).
- ``miniature_slot_ns``: a slot that fits the miniature's frames: the time one MTU frame
  (1,522 bytes on the wire) takes at the slowest emulated link, capped at a tenth of the shortest
  period (so a reservation's share is quantised in 10% steps at worst) and rounded down to a
  divisor of the base cycle (the scheduler's rule), e.g. 100 us for 1 ms periods on 10 Mb/s links.
- ``miniature_base_cycle_ns``: the scheduler's base cycle, 1 ms, unless an MTU frame takes longer
  than that on the slowest link and a longer base cycle gives a longer slot (a miniature slowed
  down so that its slots are longer than a platform's timing noise: 12 ms per frame at 1 Mb/s);
  then the greatest common divisor of the periods, so that the slot grows with the frame instead
  of staying at 1 ms.
- ``miniature_config``: the scheduler options of that controller (``slot_ns``, ``base_cycle_ns``,
  ``max_cycle_ns``) as a controller config document.

Reservations are then requested at the emulated rates (``scaled_bps``) and the controller's meters
run unscaled (``--link-scale 1``): the talkers send exactly what the reservation says, at the
offsets the controller computed for the miniature. docs/emulation.md says how a full-rate
schedule maps to it.
"""

from __future__ import annotations

import math
from typing import Iterable

from topologies.model import Topology

__all__ = ["BASE_CYCLE_NS", "MAX_CYCLE_NS", "MTU_WIRE_BYTES", "effective_delay_scale", "miniature_base_cycle_ns",
           "miniature_config", "miniature_slot_ns", "miniature_topology", "scaled_bps"]

#: one MTU frame on the wire: 1500 B IP + Ethernet 14 + 802.1Q 4 + FCS 4
MTU_WIRE_BYTES = 1500 + 14 + 4 + 4
#: the scheduler's base cycle and longest cycle in the miniature (the controller's defaults)
BASE_CYCLE_NS = 1_000_000
MAX_CYCLE_NS = 100_000_000


def effective_delay_scale(delay_scale: float, propagation_emulated: bool) -> float:
    """The propagation factor the packets really see: ``delay_scale`` with netem, 0 without."""
    return float(delay_scale) if propagation_emulated else 0.0


def miniature_topology(topology: Topology, link_scale: float, delay_scale: float = 1.0, *,
                       propagation_emulated: bool) -> Topology:
    """``topology`` as the emulation carries it (see the module doc); same name, nodes and links.

    >>> t = Topology("x"); t.add_node("a"); t.add_node("b")
    >>> t.add_link("a", "b", 200.0, 100_000_000_000)           # 200 km: 1 ms
    >>> m = miniature_topology(t, 1e-4, propagation_emulated=False)
    >>> m.capacity_bps("a", "b"), m.propagation_ns("a", "b")
    (10000000, 1000)
    >>> miniature_topology(t, 1e-4, 0.5, propagation_emulated=True).propagation_ns("a", "b")
    500000
    """
    m = Topology(topology.name)
    for n, d in topology.graph.nodes(data=True):
        m.add_node(n, d.get("lat"), d.get("lon"), d.get("role", ""))
    for u, v, d in topology.graph.edges(data=True):
        cap = max(1, int(d["capacity_bps"] * link_scale))
        prop = int(d["propagation_ns"])
        prop = round(prop * delay_scale) if propagation_emulated else math.ceil(prop / 1000)
        m.graph.add_edge(u, v, **{**d, "capacity_bps": cap, "propagation_ns": int(prop)})
    return m


def _mtu_time_ns(topology: Topology) -> int:
    """The time one MTU frame takes on the slowest link of ``topology``."""
    slowest = min(int(d["capacity_bps"]) for _, _, d in topology.graph.edges(data=True))
    return math.ceil(MTU_WIRE_BYTES * 8e9 / slowest)


def miniature_base_cycle_ns(topology: Topology, periods_ns: Iterable[int] = ()) -> int:
    """The base cycle of the miniature ``topology``'s scheduler (see the module doc).

    >>> t = Topology("x"); t.add_node("a"); t.add_node("b"); t.add_link("a", "b", 1.0, 10_000_000)
    >>> miniature_base_cycle_ns(t, [20_000_000])         # 1.2 ms per MTU, slot 1 ms either way
    1000000
    >>> t.graph["a"]["b"]["capacity_bps"] = 1_000_000
    >>> miniature_base_cycle_ns(t, [200_000_000, 100_000_000])   # 12 ms per MTU: the periods' gcd
    100000000
    """
    periods = [int(p) for p in periods_ns if int(p) > 0]
    if not periods or _mtu_time_ns(topology) <= BASE_CYCLE_NS:
        return BASE_CYCLE_NS
    longer = max(BASE_CYCLE_NS, math.gcd(*periods))
    # only where the longer base cycle gives a longer slot (10 Mb/s, 20 ms periods: 1 ms either way)
    if miniature_slot_ns(topology, periods, longer) > miniature_slot_ns(topology, periods, BASE_CYCLE_NS):
        return longer
    return BASE_CYCLE_NS


def miniature_slot_ns(topology: Topology, periods_ns: Iterable[int] = (), base_cycle_ns: int | None = None) -> int:
    """The slot of the miniature ``topology`` (already scaled): see the module doc.

    >>> t = Topology("x"); t.add_node("a"); t.add_node("b"); t.add_link("a", "b", 1.0, 10_000_000)
    >>> miniature_slot_ns(t, [1_000_000])     # 1.2 ms per MTU at 10 Mb/s, capped at 100 us
    100000
    >>> miniature_slot_ns(t, [20_000_000])    # 1.2 ms, rounded down to a divisor of 1 ms
    1000000
    >>> t.graph["a"]["b"]["capacity_bps"] = 500_000
    >>> miniature_slot_ns(t, [200_000_000])   # 24 ms, capped at a tenth of the period
    20000000
    """
    periods = [int(p) for p in periods_ns if int(p) > 0]
    if base_cycle_ns is None:
        base_cycle_ns = miniature_base_cycle_ns(topology, periods)
    want = _mtu_time_ns(topology)
    if periods:
        want = min(want, min(periods) // 10)
    want = max(1, min(want, base_cycle_ns))
    g = math.gcd(base_cycle_ns, *periods)          # the slot divides the base cycle and every period
    return max(d for i in range(1, math.isqrt(g) + 1) if g % i == 0 for d in (i, g // i) if d <= want)


def miniature_config(slot_ns: int, base_cycle_ns: int = BASE_CYCLE_NS, max_cycle_ns: int = MAX_CYCLE_NS) -> dict:
    """The controller config document (``dnctl controller --config``) of the miniature's scheduler
    (the longest cycle is at least the base cycle)."""
    return {"slot_ns": int(slot_ns), "base_cycle_ns": int(base_cycle_ns),
            "max_cycle_ns": max(int(max_cycle_ns), int(base_cycle_ns))}


def scaled_bps(bps: float, link_scale: float, period_ns: int) -> int:
    """A model rate as the miniature carries it: ``bps`` x ``link_scale``, at least one byte per period.

    >>> scaled_bps(50e9, 1e-4, 1_000_000), scaled_bps(1e6, 1e-4, 1_000_000)
    (5000000, 8000)
    """
    return max(math.ceil(8e9 / period_ns), int(bps * link_scale))
