"""The emulated network's names and link shaping, derived from a Topology and a HostPlan, without Mininet.

Why a module of its own: the emulation, the runs and the tests need interface names, link
parameters and the default host plan, and importing them from ``topologies.mininet_topo`` would
import Mininet too (that module is the Mininet topology and the ``mn --custom`` plug-in; it builds
on this one).

- ``host_intf_name`` / ``switch_intf_name``: interface names (``t1h3-eth0``, ``s3-eth2``).
- ``link_params``: Mininet ``TCLink`` parameters of one inter-switch link: ``bw`` is the link
  capacity times ``link_scale`` (default 1/1000: 100 Gb/s becomes 100 Mb/s, 1.2 Tb/s becomes
  1.2 Gb/s), in Mb/s; ``delay`` is the propagation delay times ``delay_scale`` (default 1), only when
  asked (where tc ``netem`` works). Host access links carry no shaping.
- ``tc_batch``: the same shaping for every inter-switch interface as one ``tc -batch`` input
  (tools/emulation/network.py applies it to plain links: several times faster than Mininet's
  per-interface tc calls).
- ``default_plan``: hosts of each tenant at every city.

Pure: computes names, numbers and text; runs nothing.
"""

from __future__ import annotations

import math

from topologies.hosts import Host, HostPlan
from topologies.model import Topology

__all__ = ["DEFAULT_DELAY_SCALE", "DEFAULT_LINK_SCALE", "IFNAMSIZ", "MAX_BW_MBPS", "default_plan",
           "host_intf_name", "link_params", "switch_intf_name", "tc_batch"]

#: default link bandwidth scale: 100 Gb/s in the model is 100 Mb/s in the emulation
DEFAULT_LINK_SCALE = 1 / 1000
#: default propagation delay scale: real propagation (only where netem works)
DEFAULT_DELAY_SCALE = 1.0
#: no cap on ``bw`` by default (Mininet's own TCLink refuses more than 1000 Mb/s: see
#: ``topologies.mininet_topo``, which caps it under ``mn``)
MAX_BW_MBPS = float("inf")
#: Linux interface names are at most 15 characters
IFNAMSIZ = 15


def host_intf_name(host: Host) -> str:
    """The host's interface name: ``<host>-eth0`` (Mininet's habit), ``eth0`` if that is too long.

    Host interfaces live in the host's own network namespace, so ``eth0`` never collides.
    """
    name = f"{host.name}-eth0"
    return name if len(name) <= IFNAMSIZ else "eth0"


def switch_intf_name(switch: str, port: int) -> str:
    """Name of a switch port's interface in the root namespace (``s3-eth2``)."""
    return f"{switch}-eth{port}"


def link_params(capacity_bps: int, propagation_ns: int, *, link_scale: float | None = DEFAULT_LINK_SCALE,
                delay_scale: float = DEFAULT_DELAY_SCALE, delay: bool = False,
                max_bw_mbps: float = MAX_BW_MBPS) -> dict:
    """Mininet link parameters for one inter-switch link (``bw`` in Mb/s, ``delay`` as a string).

    ``link_scale=None`` (or 0) means no shaping; ``delay=False`` means no netem delay.
    """
    params: dict = {}
    if link_scale:
        params["bw"] = min(round(capacity_bps * link_scale / 1e6, 3), max_bw_mbps)
    if delay and propagation_ns > 0:
        params["delay"] = f"{max(1, round(propagation_ns * delay_scale / 1000))}us"
    return params


def tc_batch(topology: Topology, plan: HostPlan, *, link_scale: float | None = DEFAULT_LINK_SCALE,
             delay_scale: float = DEFAULT_DELAY_SCALE, delay: bool = False) -> str:
    """``tc -batch`` input shaping every inter-switch interface (root namespace) like ``link_params``.

    Per directed link u->v, on u's port towards v: HTB at capacity x ``link_scale`` (when given),
    then netem with the propagation delay x ``delay_scale`` (when ``delay``), its queue limit
    large enough for twice the bandwidth-delay product. Empty when there is nothing to do.
    """
    lines: list[str] = []
    for (u, v), port in plan.link_ports().items():
        dev = switch_intf_name(plan.switch_name(u), port)
        cap, prop = topology.capacity_bps(u, v), topology.propagation_ns(u, v)
        parent = "root"
        rate_bps = None
        if link_scale:
            rate_bps = max(8_000, int(cap * link_scale))
            lines.append(f"qdisc replace dev {dev} root handle 5: htb default 1")
            lines.append(f"class replace dev {dev} parent 5: classid 5:1 htb rate {rate_bps // 1000}kbit "
                         "burst 15k quantum 60000")
            parent = "parent 5:1"
        if delay and prop > 0:
            us = max(1, round(prop * delay_scale / 1000))
            bdp_pkts = 2 * (rate_bps or cap) * us / 1e6 / (1500 * 8)
            lines.append(f"qdisc replace dev {dev} {parent} handle 10: netem delay {us}us "
                         f"limit {max(1000, math.ceil(bdp_pkts))}")
    return "".join(l + "\n" for l in lines)


def default_plan(topology: Topology, tenants: int = 1, per_city: int = 1,
                 cities: list[str] | None = None) -> HostPlan:
    """``per_city`` hosts of each tenant 1..``tenants`` at every city (or the ``cities`` given)."""
    nodes = cities if cities is not None else topology.nodes
    return HostPlan.build(topology, [(t, n, per_city) for t in range(1, tenants + 1) for n in nodes])
