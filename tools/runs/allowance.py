"""The emulation allowance: what a scaled software emulation adds to a reserved frame's latency
that the real network would not, and the reservation as the emulation carries it (pure).

No verdict uses it (issue 11): the controller of an emulation now schedules the emulated network
itself (``tools.emulation.miniature``) and every check allows only the controller's bound plus the
noise floor measured in the same run (docs/verification.md). It remains the one statement of what
a *full-rate* schedule would have to allow on this platform (kept for scripts and tests that
drive a full-rate controller, e.g. ``tests/test_tenant_security_emulation.py``).

Per hop of the reservation's path, at the emulated link rate (capacity x ``scale``):

- **serialisation of the period's datagrams.** The talker sends the period's IP bytes x ``scale``
  (``scaled_frame_bytes``) in MTU-sized UDP datagrams (``split_bytes``); on the wire each is its
  IP packet plus 22 bytes: Ethernet header 14, the network's 802.1Q tag 4, FCS 4 (meters and
  HTB count 18 of them: no FCS; the 4 bytes more make this an upper bound). A real link
  serialises them 1/``scale`` times faster, so the emulated time is counted in full.
- **one best-effort frame ahead.** Reserved frames are served first (strict priority), but a
  link is not pre-emptive: a reserved frame that arrives while a best-effort frame is being
  serialised waits for it, and for at most one: a full frame, 1500 + 22 = 1,522 bytes.
- **software switching**: ``hop_budget_ns`` (userspace Open vSwitch on shared cores);

plus ``host_budget_ns`` once, for the talker's send path, the capture's timestamps and the
scheduling stalls of the machine. Every time is rounded up to a whole nanosecond, so the
allowance never understates what it models.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

from tools.probes.probe_format import IP_UDP_OVERHEAD, split_bytes

__all__ = ["L2_WIRE_BYTES", "BE_FRAME_BYTES", "scaled_frame_bytes", "link_capacities", "emulation_allowance",
           "emulated_reservation"]

#: bytes a datagram carries on the wire beyond its IP packet: Ethernet 14 + 802.1Q 4 + FCS 4
L2_WIRE_BYTES = 14 + 4 + 4
#: the largest frame a reserved one can find on the wire ahead of it: 1500 B MTU + L2_WIRE_BYTES
BE_FRAME_BYTES = 1500 + L2_WIRE_BYTES

Link = tuple[str, str]


def scaled_frame_bytes(res: Mapping[str, Any], scale: float) -> int:
    """The IP bytes per period the talker sends in the emulation (``frame_bytes`` x ``scale``, >= 1)."""
    return max(1, int(int(res["frame_bytes"]) * scale))


def link_capacities(links: Iterable[Mapping[str, Any]]) -> dict[Link, float]:
    """``(src, dst) -> capacity_bps`` from the Schedule JSON's ``links`` (a direction listed only
    one way is taken to have the same capacity back)."""
    caps = {(str(l["src"]), str(l["dst"])): float(l["capacity_bps"]) for l in links}
    for (u, v), c in list(caps.items()):
        caps.setdefault((v, u), c)
    return caps


def _ns(n_bytes: int, rate_bps: float) -> int:
    return math.ceil(n_bytes * 8e9 / rate_bps)


def emulation_allowance(res: Mapping[str, Any], capacities: Mapping[Link, float], scale: float, *,
                        hop_budget_ns: int, host_budget_ns: int) -> dict[str, int]:
    """The allowance of reservation ``res`` (its ``id``, ``frame_bytes`` and ``path``) in ns, by part
    (see the module doc): ``serialisation_ns``, ``best_effort_frame_ns``, ``switching_ns``,
    ``host_ns`` and their ``total_ns``.

    >>> caps = {("a", "b"): 1e9, ("b", "c"): 1e9}
    >>> al = emulation_allowance({"id": "r", "frame_bytes": 1_000_000, "path": ["a", "b", "c"]}, caps, 1e-3,
    ...                          hop_budget_ns=1_000_000, host_budget_ns=20_000_000)
    >>> al["serialisation_ns"], al["best_effort_frame_ns"]   # 2 hops at 1 Mb/s of 1000 + 22 and 1522 bytes
    (16352000, 24352000)
    >>> al["total_ns"]
    62704000
    """
    wire = sum(d + IP_UDP_OVERHEAD + L2_WIRE_BYTES for d in split_bytes(scaled_frame_bytes(res, scale), str(res["id"])))
    path = list(res.get("path") or [])
    ser = be = 0
    for u, v in zip(path, path[1:]):
        rate = capacities[(u, v)] * scale
        ser += _ns(wire, rate)
        be += _ns(BE_FRAME_BYTES, rate)
    switching = max(0, len(path) - 1) * hop_budget_ns
    return {"serialisation_ns": ser, "best_effort_frame_ns": be, "switching_ns": switching,
            "host_ns": host_budget_ns, "total_ns": ser + be + switching + host_budget_ns}


def emulated_reservation(res: Mapping[str, Any], scale: float, allowance: Mapping[str, int] | None = None
                         ) -> dict[str, Any]:
    """The reservation as the emulation carries it: IP bytes per period x ``scale`` and the rate they
    make; with an ``allowance``, the latency and jitter bounds + its ``total_ns``, the allowance
    itself (``allowance_ns``) and the real figures (``real``)."""
    r = dict(res)
    fb = scaled_frame_bytes(res, scale)
    r["frame_bytes"] = fb
    r["bandwidth_bps"] = int(fb * 8e9 // int(res["period_ns"]))
    if allowance is not None:
        r["allowance_ns"] = dict(allowance)
        r["real"] = {k: res.get(k) for k in ("frame_bytes", "bandwidth_bps", "latency_bound_ns", "jitter_bound_ns")}
        r["latency_bound_ns"] = int(res["latency_bound_ns"]) + allowance["total_ns"]
        r["jitter_bound_ns"] = int(res.get("jitter_bound_ns") or 0) + allowance["total_ns"]
    return r
