"""LLDP liveness: which physical links to declare down (or up again) because of LLDP silence.

Port status (``OFPPortStatus``) is the fast way a link failure reaches the controller, but some
failures never produce one: a fibre cut behind a transponder, a switch that stops forwarding on a
port whose carrier stays up, a one-way fault. The os-ken shim probes every inter-switch port with
LLDP every ``lldp_interval`` seconds and records when each *directed* link was last seen; this
module turns those times into link events, and compares the links seen with the topology
(``expected_links``, ``compare_links``: the LLDP link check). Pure: no os-ken, no clock (the
caller passes ``now``).

Policy (documented in docs/reliability.md):

- a physical link is made of two directed links ``(a, b)`` and ``(b, a)`` (``a``/``b`` are
  ``(dpid, port)`` endpoints); it is declared **down** when **either** direction has been silent
  for longer than ``timeout``: a one-way failure loses every frame of the reservations in that
  direction, and the service takes a physical link down as a whole anyway;
- silence is counted from the later of the last sighting and the moment the link became
  *watchable* (``watch_since``: both end switches connected and programmed, both ports up). A link
  never seen since start therefore gets a full ``timeout`` of grace after its switches connect;
- a link that is not watchable (an end switch disconnected, a port reported down) is left alone:
  switch and port-status events own it, and LLDP silence there is expected, not news;
- a link declared down comes back **up** when both directions have been seen within ``timeout``
  (for the silent direction that means a sighting after it was declared down);
- a link already in ``down`` is never declared down again, and a link not in ``down`` is never
  declared up: the caller acts only on transitions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field
from typing import Any

from topologies.hosts import HostPlan

Endpoint = tuple[int, int]                  # (dpid, port)
Directed = tuple[Endpoint, Endpoint]        # LLDP sent from the first, received on the second
Physical = tuple[Endpoint, Endpoint]        # canonical: first endpoint < second

DEFAULT_TIMEOUT_FACTOR = 3.5                # timeout = factor x lldp_interval: three probes lost


def lldp_timeout(lldp_interval: float, factor: float = DEFAULT_TIMEOUT_FACTOR, floor: float = 0.0) -> float:
    """The silence after which a link is declared down: ``factor`` probe intervals (>= 1 interval),
    but at least ``floor`` seconds (sub-second probing on a loaded host can lose a few in a row)."""
    if lldp_interval <= 0 or factor < 1:
        raise ValueError(f"need lldp_interval > 0 and factor >= 1 (got {lldp_interval}, {factor})")
    return max(float(lldp_interval) * float(factor), float(floor))


def expected_links(plan: HostPlan) -> set[Directed]:
    """Every directed inter-switch link the topology promises: ((dpid_u, port_uv), (dpid_v, port_vu))."""
    out = set()
    for (u, v), port in plan.link_ports().items():
        out.add(((plan.dpid(u), port), (plan.dpid(v), plan.port(v, u))))
    return out


def compare_links(expected: set[Directed], seen: Iterable[Directed], plan: HostPlan | None = None) -> dict[str, Any]:
    """The LLDP verification report: counts, missing and unexpected links as [u, v] pairs
    (node names when ``plan`` knows the dpid, ``dpid:N`` otherwise) plus their exact ports."""
    seen = set(seen)

    def name(ep: Endpoint) -> str:
        if plan is not None:
            try:
                return plan.node_of_dpid(ep[0])
            except KeyError:
                pass
        return f"dpid:{ep[0]}"

    missing = sorted(expected - seen)
    unexpected = sorted(seen - expected)
    return {
        "expected": len(expected), "seen": len(seen & expected),
        "missing": [[name(a), name(b)] for a, b in missing],
        "unexpected": [[name(a), name(b)] for a, b in unexpected],
        "missing_ports": [[list(a), list(b)] for a, b in missing],
        "unexpected_ports": [[list(a), list(b)] for a, b in unexpected],
        "ok": not missing and not unexpected,
    }


def physical(link: Directed) -> Physical:
    """The canonical (sorted) physical link a directed link belongs to."""
    a, b = link
    return (a, b) if a <= b else (b, a)


def physical_links(expected: Iterable[Directed]) -> set[Physical]:
    """The physical links of a set of expected directed links (e.g. ``expected_links``)."""
    return {physical(l) for l in expected}


@dataclass
class Verdict:
    """Transitions to act on: physical links to declare down, and links to declare up again."""
    down: list[Physical] = field(default_factory=list)
    up: list[Physical] = field(default_factory=list)


def watch_since(links: Iterable[Physical], ready_since: Mapping[int, float], port_down: Mapping[Endpoint, bool],
                port_since: Mapping[Endpoint, float], probes_since: float) -> dict[Physical, float]:
    """When each link became watchable: both switches programmed (``ready_since``: dpid -> when)
    and neither port reported down; the latest of the switches' ``ready_since``, the ports'
    ``port_since`` (when reported up again) and ``probes_since`` (when probing last resumed on
    time). Links not watchable are left out: switch and port events own them."""
    out: dict[Physical, float] = {}
    for link in links:
        a, b = link
        if a[0] not in ready_since or b[0] not in ready_since or port_down.get(a, False) or port_down.get(b, False):
            continue
        out[link] = max(ready_since[a[0]], ready_since[b[0]], probes_since, port_since.get(a, 0.0),
                        port_since.get(b, 0.0))
    return out


def evaluate(links: Iterable[Physical], last_seen: Mapping[Directed, float],
             watch_since: Mapping[Physical, float], now: float, timeout: float,
             down: Set[Physical]) -> Verdict:
    """Decide LLDP-driven transitions.

    ``links``: physical links to judge (canonical, see ``physical``); ``last_seen``: last LLDP
    sighting per directed link (missing: not seen, or forgotten); ``watch_since``: for each
    watchable link, when it became watchable (links absent are not judged at all); ``now``: same
    clock as the two mappings; ``timeout``: seconds of silence; ``down``: the links currently
    declared down by this logic. Returns the sorted transitions.
    """
    out = Verdict()
    for link in sorted(set(links)):
        since = watch_since.get(link)
        if since is None:
            continue                                   # switch/port events own this link now
        a, b = link
        seen = [last_seen.get((a, b)), last_seen.get((b, a))]
        if link in down:
            if all(t is not None and now - t <= timeout for t in seen):
                out.up.append(link)
        elif any(now - max(since, t if t is not None else since) > timeout for t in seen):
            out.down.append(link)
    return out
