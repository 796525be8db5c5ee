"""The OpenFlow 1.3 translation: topology, host plan and reservations in; flow, meter and group specs out.

Pure (no os-ken): every function returns ``controller.dataplane.specs`` that the programs
(``controller.dataplane.programs``) order and the os-ken shim (``controller.ofshim``) sends, so the
whole pipeline is unit-testable (``tests/fakeswitch.py`` runs frames through it).

Pipeline on every switch (see docs/dataplane.md):

- table 0, **classification** (``TABLE_CLASSIFY``): LLDP from inter-switch ports -> controller;
  at a host port: tagged frames -> drop, ARP -> controller, untagged -> push the port's tenant
  VLAN and go to table 1; at an inter-switch port: tagged frames -> table 1; anything else -> drop.
- table 1, **deterministic** (``TABLE_DETERMINISTIC``): one entry per reservation and host pair:
  tenant VLAN + IPv4 (+ optional proto/port/DSCP) + in_port -> (ingress: the reservation's meter)
  -> next-hop port (egress: pop the VLAN, host port). Miss -> table 2.
- table 2, **best effort** (``TABLE_BEST_EFFORT``): per tenant VLAN and destination host MAC ->
  the port's aggregate best-effort meter -> next hop on the shortest path by propagation
  (``controller.dataplane.routing``; local host: pop VLAN, host port). Miss (foreign MACs,
  broadcast, multicast) -> drop.

Protection (``res.protection_path`` set): the ingress entry sends the frame to a group of type
ALL (``reservation_group_id``) whose two buckets output to the first hop of each path; every other
switch of either path holds the same kind of entry as for a plain reservation (matched on the
port the copy arrives on, so a node on both paths holds two entries); both copies reach the
destination host, which eliminates duplicates by sequence number.

Best effort follows failures: ``baseline(..., failed=links)`` routes around failed links.
"""

from __future__ import annotations

import ipaddress
import math
from typing import Any, Callable, Iterable

from controller.core.model import Reservation
from controller.dataplane import routing
from controller.dataplane.specs import (
    ETH_TYPE_ARP, ETH_TYPE_IPV4, ETH_TYPE_LLDP, ETH_TYPE_VLAN, IP_PROTO_TCP, IP_PROTO_UDP, KIND_BASE,
    KIND_BEST_EFFORT, KIND_RESERVATION, OFPCML_NO_BUFFER, OFPP_CONTROLLER, OFPVID_NONE, OFPVID_PRESENT,
    PRIO_ARP, PRIO_BEST_EFFORT, PRIO_CLASSIFY, PRIO_LLDP, PRIO_MISS, PRIO_RESERVATION, PRIO_TAGGED_DROP,
    TABLE_BEST_EFFORT, TABLE_CLASSIFY, TABLE_DETERMINISTIC, FlowSpec, GroupSpec, MeterSpec, arp_meter_id, be_meter_id,
    content_digest, make_cookie, reservation_cookie, reservation_group_id, reservation_meter_id,
    reservation_number)
from topologies.hosts import HostPlan

#: Bytes of one full frame on the wire counted by a meter (MTU payload + Ethernet + VLAN header).
FULL_FRAME_BYTES = 1522
#: IP bytes per datagram (the MTU): ``frame_bytes`` (IP bytes per period) is carried in
#: ``ceil(frame_bytes / MTU_IP_BYTES)`` datagrams.
MTU_IP_BYTES = 1500
#: What a meter counts per datagram beyond its IP bytes: Ethernet header (14) + VLAN tag (4).
#: (Open vSwitch meters count the frame without preamble and FCS.)
L2_OVERHEAD_BYTES = 18
#: Smallest frame a meter counts (an Ethernet minimum frame without FCS).
MIN_FRAME_BYTES = 60
#: A reservation meter polices at its wire rate x (1 + this): room for the meter's own clock
#: granularity and for the timing noise of a real talker; documented in docs/dataplane.md.
RES_METER_TOLERANCE = 0.02
#: A reservation meter lets this many full frames pass back to back (its burst).
BURST_FRAMES = 3
#: When the switches are an emulation at ``rate_scale`` < 1 (software switches and talkers on shared
#: cores), a reservation meter's burst also covers this long at its rate: a talker or switch that was
#: not scheduled for a while then sends or meters a backlog that was due at the right rate. Sized to
#: the longest stalls measured by the runs' reference flows (the noise floor): up to 94 ms on the
#: 2-core host, 255 ms in the TCG guest under load, where a 50 ms burst policed 14 of 400 probes of
#: a flow nobody interfered with. Not applied at scale 1.
EMULATION_BURST_NS = 300_000_000
#: Best-effort meters police at this share of (capacity - reserved): headroom so a saturated port
#: is never driven to exactly 100% by best effort (a link's queue would then build behind it).
BE_HEADROOM = 0.9
#: A best-effort meter's burst, in full frames.
BE_BURST_FRAMES = 10
#: ARP requests per second each host port may send to the controller (its policer's rate), and how
#: many back to back (its burst). A host asks for a few addresses a second; a broadcast storm of
#: ARP would otherwise make the switch hand every frame to the controller, and a software switch
#: busy with that drops frames of every other port (the storm test measured 18 of 200 reserved
#: frames lost that way at 15,000 storm frames/s, and none with the policer).
ARP_PACKETS_PER_S = 100
ARP_BURST_FRAMES = 50
#: Bytes a meter counts per ARP request: an Ethernet minimum frame (60; 42 unpadded counts less,
#: so the policer passes up to 1.4x ``ARP_PACKETS_PER_S`` of those).
ARP_FRAME_BYTES = MIN_FRAME_BYTES
#: 802.1Q priority (PCP) the ingress entry gives reserved frames in the network's VLAN tag, so a
#: link with priority queues (the emulation's HTB, a real switch's egress scheduler) can serve
#: them ahead of best effort (PCP 0); the egress entry pops the tag with it.
RESERVED_PCP = 7


# ---------------------------------------------------------------------------------------------
# entry helpers
def _flow(dpid: int, table: int, prio: int, match: dict[str, Any], instructions: list[dict[str, Any]],
          kind: int, tenant: int = 0, number: int = 0) -> FlowSpec:
    cookie = make_cookie(kind, tenant, number, content_digest(match, instructions))
    return FlowSpec(dpid, table, prio, dict(match), instructions, cookie)


def _ipv4_match(value: str) -> Any:
    """'10.0.1.2' -> '10.0.1.2'; '10.0.1.0/24' -> ('10.0.1.0', '255.255.255.0')."""
    net = ipaddress.IPv4Network(value, strict=False)
    if net.prefixlen == 32:
        return str(net.network_address)
    return (str(net.network_address), str(net.netmask))


def _tagged(tenant: int) -> int:
    return OFPVID_PRESENT | tenant


def _out(port: int) -> dict[str, Any]:
    if port == OFPP_CONTROLLER:
        return {"type": "output", "port": port, "max_len": OFPCML_NO_BUFFER}
    return {"type": "output", "port": port}


def _apply(*actions: dict[str, Any]) -> dict[str, Any]:
    return {"type": "apply", "actions": list(actions)}


# ---------------------------------------------------------------------------------------------
# best-effort routing and meters
def _next_hops_towards(plan: HostPlan, dst: str, failed: Iterable[tuple[str, str]] | None = None
                       ) -> dict[str, str]:
    """For every switch, the next switch towards ``dst`` (``controller.dataplane.routing``)."""
    return routing.next_hops_towards(plan.topology.graph, dst, failed)


def inter_switch_ports(plan: HostPlan, node: str) -> dict[int, str]:
    """Port number -> neighbour switch, for the inter-switch ports of ``node``."""
    return {p: v for (u, v), p in plan.link_ports().items() if u == node}


def reserved_share_by_port(plan: HostPlan, node: str, reservations: Iterable[Reservation]) -> dict[int, float]:
    """Share of each inter-switch port's capacity held by reservations leaving ``node`` through it."""
    topo = plan.topology
    used: dict[int, int] = {}
    for res in reservations:
        for p in res.all_paths():
            for a, b in zip(p, p[1:]):
                if a == node:
                    port = plan.port(a, b)
                    used[port] = used.get(port, 0) + int(res.bandwidth_bps)
    nbrs = inter_switch_ports(plan, node)
    return {port: min(1.0, bw / topo.capacity_bps(node, nbrs[port])) for port, bw in used.items()}


def best_effort_meters(plan: HostPlan, node: str, reserved_share_by_port: dict[int, float] | None = None, *,
                       rate_scale: float = 1.0, headroom: float = BE_HEADROOM) -> list[MeterSpec]:
    """One aggregate meter per inter-switch port: capacity x (1 - reserved share) x headroom x
    rate_scale, with a burst of ``BE_BURST_FRAMES`` full frames.

    ``headroom`` (default ``BE_HEADROOM``) keeps best effort a little below what the reservations
    leave, so a port flooded with best effort is not held at exactly 100% of its capacity."""
    if not 0 < headroom <= 1:
        raise ValueError(f"best-effort headroom {headroom} must be in (0, 1]")
    shares = reserved_share_by_port or {}
    dpid = plan.dpid(node)
    meters = []
    for port, nbr in sorted(inter_switch_ports(plan, node).items()):
        cap = plan.topology.capacity_bps(node, nbr)
        rate_bps = cap * max(0.0, 1.0 - shares.get(port, 0.0)) * headroom * rate_scale
        rate_kbps = max(1, int(rate_bps // 1000))
        burst_kb = max(1, math.ceil(8 * FULL_FRAME_BYTES * BE_BURST_FRAMES / 1000))
        meters.append(MeterSpec(dpid, be_meter_id(port), rate_kbps, burst_kb, make_cookie(KIND_BEST_EFFORT)))
    return meters


def arp_meters(plan: HostPlan, node: str) -> list[MeterSpec]:
    """One policer per host port on the ARP entry that sends its requests to the controller:
    ``ARP_PACKETS_PER_S`` with a burst of ``ARP_BURST_FRAMES`` (in kbit/s of ``ARP_FRAME_BYTES``
    frames, like every other meter). Not scaled with the links: the controller's work per request
    is the same in an emulation."""
    dpid = plan.dpid(node)
    rate_kbps = math.ceil(ARP_PACKETS_PER_S * ARP_FRAME_BYTES * 8 / 1000)
    burst_kb = math.ceil(ARP_BURST_FRAMES * ARP_FRAME_BYTES * 8 / 1000)
    return [MeterSpec(dpid, arp_meter_id(h.port), rate_kbps, burst_kb, make_cookie(KIND_BASE))
            for h in plan.host_ports(node)]


def port_meters(plan: HostPlan, node: str, reserved_share_by_port: dict[int, float] | None = None, *,
                rate_scale: float = 1.0, headroom: float = BE_HEADROOM) -> list[MeterSpec]:
    """Every meter of a switch that is not a reservation's: the best-effort meters of its
    inter-switch ports and the ARP policers of its host ports."""
    return (best_effort_meters(plan, node, reserved_share_by_port, rate_scale=rate_scale, headroom=headroom)
            + arp_meters(plan, node))


def shares_from_link_bps(plan: HostPlan, node: str, link_bps: dict[tuple[str, str], int]) -> dict[int, float]:
    """``reserved_share_by_port`` from reserved bit/s per directed link (the service's running
    totals, O(links)) instead of from every reservation: the same numbers, without copying
    every reservation on each change (installing N reservations was O(N^2) that way)."""
    topo = plan.topology
    return {plan.port(u, v): min(1.0, bw / topo.capacity_bps(u, v))
            for (u, v), bw in link_bps.items() if u == node and bw}


def best_effort_meters_of_links(plan: HostPlan, links: Iterable[tuple[str, str]],
                                link_bps: dict[tuple[str, str], int], *, rate_scale: float = 1.0
                                ) -> list[MeterSpec]:
    """The best-effort meters of the ports that carry the directed ``links`` (one per link, on
    the link's upstream switch), sized by ``link_bps``: what changes when reservations on those
    links come or go."""
    out: list[MeterSpec] = []
    for a, b in sorted(set(links)):
        mid = be_meter_id(plan.port(a, b))
        out += [m for m in best_effort_meters(plan, a, shares_from_link_bps(plan, a, link_bps),
                                              rate_scale=rate_scale) if m.meter_id == mid]
    return out


# ---------------------------------------------------------------------------------------------
# baseline
def baseline(plan: HostPlan, node: str, reserved_share_by_port: dict[int, float] | None = None, *,
             rate_scale: float = 1.0, failed: Iterable[tuple[str, str]] | None = None, headroom: float = BE_HEADROOM
             ) -> tuple[list[FlowSpec], list[MeterSpec]]:
    """Everything a switch needs without any reservation: classification, tenant best effort
    (next hops avoiding the directed links in ``failed``), per-port best-effort meters, per-host-port
    ARP policers and drop
    by default."""
    dpid = plan.dpid(node)
    isl = inter_switch_ports(plan, node)
    hosts_here = plan.host_ports(node)
    flows: list[FlowSpec] = []

    # table 0: classification
    for port in sorted(isl):
        flows.append(_flow(dpid, TABLE_CLASSIFY, PRIO_LLDP, {"in_port": port, "eth_type": ETH_TYPE_LLDP},
                           [_apply(_out(OFPP_CONTROLLER))], KIND_BASE))
        flows.append(_flow(dpid, TABLE_CLASSIFY, PRIO_CLASSIFY,
                           {"in_port": port, "vlan_vid": (OFPVID_PRESENT, OFPVID_PRESENT)},
                           [{"type": "goto", "table": TABLE_DETERMINISTIC}], KIND_BASE))
    for h in hosts_here:
        flows.append(_flow(dpid, TABLE_CLASSIFY, PRIO_TAGGED_DROP,
                           {"in_port": h.port, "vlan_vid": (OFPVID_PRESENT, OFPVID_PRESENT)},
                           [], KIND_BASE, h.tenant))
        flows.append(_flow(dpid, TABLE_CLASSIFY, PRIO_ARP,
                           {"in_port": h.port, "vlan_vid": OFPVID_NONE, "eth_type": ETH_TYPE_ARP},
                           [{"type": "meter", "meter_id": arp_meter_id(h.port)}, _apply(_out(OFPP_CONTROLLER))],
                           KIND_BASE, h.tenant))
        flows.append(_flow(dpid, TABLE_CLASSIFY, PRIO_CLASSIFY, {"in_port": h.port, "vlan_vid": OFPVID_NONE},
                           [_apply({"type": "push_vlan", "ethertype": ETH_TYPE_VLAN},
                                   {"type": "set_vlan", "vid": h.tenant}),
                            {"type": "goto", "table": TABLE_DETERMINISTIC}], KIND_BASE, h.tenant))
    flows.append(_flow(dpid, TABLE_CLASSIFY, PRIO_MISS, {}, [], KIND_BASE))

    # table 1: deterministic entries come from reservation_flows; a miss goes on to best effort
    flows.append(_flow(dpid, TABLE_DETERMINISTIC, PRIO_MISS, {},
                       [{"type": "goto", "table": TABLE_BEST_EFFORT}], KIND_BASE))

    # table 2: tenant-scoped best effort, per destination host MAC
    towards: dict[str, dict[str, str]] = {}
    for h in plan.hosts:
        match = {"vlan_vid": _tagged(h.tenant), "eth_dst": h.mac.lower()}
        if h.switch == node:
            ins = [_apply({"type": "pop_vlan"}, _out(h.port))]
        else:
            if h.switch not in towards:
                towards[h.switch] = _next_hops_towards(plan, h.switch, failed)
            nxt = towards[h.switch].get(node)
            if nxt is None:
                continue   # unreachable from here
            port = plan.port(node, nxt)
            ins = [{"type": "meter", "meter_id": be_meter_id(port)}, _apply(_out(port))]
        flows.append(_flow(dpid, TABLE_BEST_EFFORT, PRIO_BEST_EFFORT, match, ins, KIND_BEST_EFFORT, h.tenant))
    flows.append(_flow(dpid, TABLE_BEST_EFFORT, PRIO_MISS, {}, [], KIND_BASE))

    meters = port_meters(plan, node, reserved_share_by_port, rate_scale=rate_scale, headroom=headroom)
    return flows, meters


# ---------------------------------------------------------------------------------------------
# reservations
class TranslationError(ValueError):
    """A reservation cannot be expressed as flows (e.g. no host of its tenant at one end)."""


def _select_hosts(plan: HostPlan, tenant: int, node: str, prefix: str | None, what: str, res_id: str) -> list[Any]:
    hosts = [h for h in plan.host_ports(node) if h.tenant == tenant]
    if prefix is not None:
        try:
            net = ipaddress.IPv4Network(str(prefix), strict=False)
        except ValueError:
            raise TranslationError(f"reservation {res_id}: {what} {prefix!r} is not an IPv4 address/prefix") from None
        hosts = [h for h in hosts if ipaddress.IPv4Address(h.ip) in net]
    if not hosts:
        raise TranslationError(f"reservation {res_id}: no host of tenant {tenant} at {node}"
                               + (f" matches {what} {prefix}" if prefix is not None else ""))
    return hosts


def _extra_match(res: Reservation) -> dict[str, Any]:
    m = dict(res.match or {})
    out: dict[str, Any] = {}
    proto = m.get("ip_proto")
    if m.get("udp_dst") is not None:
        if proto not in (None, IP_PROTO_UDP):
            raise TranslationError(f"reservation {res.id}: udp_dst needs ip_proto 17")
        proto = IP_PROTO_UDP
        out["udp_dst"] = int(m["udp_dst"])
    if m.get("tcp_dst") is not None:
        if proto not in (None, IP_PROTO_TCP) or "udp_dst" in out:
            raise TranslationError(f"reservation {res.id}: tcp_dst needs ip_proto 6")
        proto = IP_PROTO_TCP
        out["tcp_dst"] = int(m["tcp_dst"])
    if proto is not None:
        out["ip_proto"] = int(proto)
    if m.get("ip_dscp") is not None:
        dscp = int(m["ip_dscp"])
        if not 0 <= dscp < 64:
            raise TranslationError(f"reservation {res.id}: ip_dscp must be 0..63")
        out["ip_dscp"] = dscp
    return out


def wire_bytes_per_period(ip_bytes: float) -> int:
    """What a switch's meter counts for ``ip_bytes`` IP bytes per period: the IP bytes plus the
    Ethernet + VLAN header of each of their ``ceil(ip_bytes / MTU_IP_BYTES)`` datagrams (each at
    least a minimum frame)."""
    ip = max(1, math.ceil(ip_bytes))
    n = math.ceil(ip / MTU_IP_BYTES)
    last = ip - (n - 1) * MTU_IP_BYTES
    return (n - 1) * (MTU_IP_BYTES + L2_OVERHEAD_BYTES) + max(MIN_FRAME_BYTES, last + L2_OVERHEAD_BYTES)


def reservation_meter_rate_bps(res: Reservation, rate_scale: float = 1.0) -> float:
    """The rate a reservation's meter polices at, in bit/s as the datapath sees them.

    ``frame_bytes`` are IP bytes per period (what a talker sends: IP header onward). A meter counts
    Ethernet frames, so the rate is that of the period's bytes *as the datapath carries them*
    (``frame_bytes x rate_scale``, split in MTU-sized datagrams, each with its L2 header:
    ``wire_bytes_per_period``) times (1 + ``RES_METER_TOLERANCE``). Never below the reserved
    ``bandwidth_bps x rate_scale`` (x the tolerance)."""
    period_ns = int(res.period_ns or 0)
    reserved = float(res.bandwidth_bps) * rate_scale
    if period_ns <= 0 or not res.frame_bytes:
        return reserved * (1 + RES_METER_TOLERANCE)
    wire = wire_bytes_per_period(int(res.frame_bytes) * rate_scale) * 8e9 / period_ns
    return max(wire, reserved) * (1 + RES_METER_TOLERANCE)


def reservation_meter(plan: HostPlan, res: Reservation, *, rate_scale: float = 1.0) -> MeterSpec:
    """The reservation's meter on its ingress switch: its wire rate (``reservation_meter_rate_bps``)
    and a burst of ``BURST_FRAMES`` full frames, or one period's wire bytes at the scaled rate
    when that is larger (a slotted talker sends a period's datagrams back to back); in an
    emulation (``rate_scale`` < 1) at least ``EMULATION_BURST_NS`` at the rate."""
    rate_kbps = max(1, math.ceil(reservation_meter_rate_bps(res, rate_scale) / 1000))
    frame = min(int(res.frame_bytes) + L2_OVERHEAD_BYTES, FULL_FRAME_BYTES)
    burst_bytes = max(BURST_FRAMES * frame, wire_bytes_per_period(int(res.frame_bytes) * rate_scale))
    if rate_scale < 1:
        burst_bytes = max(burst_bytes, math.ceil(rate_kbps * 1000 / 8 * EMULATION_BURST_NS / 1e9))
    burst_kb = max(1, math.ceil(burst_bytes * 8 / 1000))
    cookie = reservation_cookie(res.tenant, res.id)
    return MeterSpec(plan.dpid(res.path[0]), reservation_meter_id(res.id), rate_kbps, burst_kb, cookie)


def reservation_flows(plan: HostPlan, res: Reservation, *, rate_scale: float = 1.0, queue_id: int | None = None
                      ) -> tuple[list[FlowSpec], list[MeterSpec]]:
    """The deterministic entries of one reservation on every switch of its path.

    One entry per (source host, destination host) pair of the tenant at the path's ends (filtered
    by ``res.match`` ip_src/ip_dst when given), on each switch: tenant VLAN + IPv4 addresses +
    optional proto/port/DSCP + the port the frame must arrive on. The ingress entry goes through
    the reservation's meter; the egress entry pops the VLAN and outputs to the host's port.
    ``queue_id`` adds a set_queue action (only where the datapath has queues).
    Raises TranslationError when the reservation has no host pair to carry.
    """
    paths = res.all_paths()
    path = paths[0]
    if any(len(p) < 2 for p in paths):
        raise TranslationError(f"reservation {res.id}: path needs two switches")
    if len(paths) > 1 and (paths[1][0] != path[0] or paths[1][-1] != path[-1]):
        raise TranslationError(f"reservation {res.id}: the protection path must join the same switches")
    m = dict(res.match or {})
    srcs = _select_hosts(plan, res.tenant, path[0], m.get("ip_src"), "ip_src", res.id)
    dsts = _select_hosts(plan, res.tenant, path[-1], m.get("ip_dst"), "ip_dst", res.id)
    extra = _extra_match(res)
    number = reservation_number(res.id)
    meter = reservation_meter(plan, res, rate_scale=rate_scale)
    group = reservation_group_id(res.id) if len(paths) > 1 else None
    flows = []
    for k, p in enumerate(paths):
        for i, node in enumerate(p):
            if i == 0 and k > 0:
                continue   # one ingress entry (with the group) serves both paths
            dpid = plan.dpid(node)
            for s in srcs:
                for d in dsts:
                    match: dict[str, Any] = {
                        "in_port": s.port if i == 0 else plan.port(node, p[i - 1]),
                        "vlan_vid": _tagged(res.tenant), "eth_type": ETH_TYPE_IPV4,
                        "ipv4_src": s.ip, "ipv4_dst": d.ip, **extra}
                    actions: list[dict[str, Any]] = []
                    if queue_id is not None:
                        actions.append({"type": "set_queue", "queue_id": int(queue_id)})
                    if i == 0:
                        actions.append({"type": "set_vlan_pcp", "pcp": RESERVED_PCP})
                    if i == len(p) - 1:
                        actions += [{"type": "pop_vlan"}, _out(d.port)]
                    elif i == 0 and group is not None:
                        actions.append({"type": "group", "group_id": group})
                    else:
                        actions.append(_out(plan.port(node, p[i + 1])))
                    ins: list[dict[str, Any]] = []
                    if i == 0:
                        ins.append({"type": "meter", "meter_id": meter.meter_id})
                    ins.append(_apply(*actions))
                    flows.append(_flow(dpid, TABLE_DETERMINISTIC, PRIO_RESERVATION, match, ins,
                                       KIND_RESERVATION, res.tenant, number))
    return flows, [meter]


def reservation_groups(plan: HostPlan, res: Reservation) -> list[GroupSpec]:
    """The replication group of a protected reservation on its ingress switch (type ALL, one
    bucket per path's first hop); [] for a reservation with one path."""
    paths = res.all_paths()
    if len(paths) < 2:
        return []
    node = paths[0][0]
    buckets = [[_out(plan.port(node, p[1]))] for p in paths]
    return [GroupSpec(plan.dpid(node), reservation_group_id(res.id), "all", buckets,
                      reservation_cookie(res.tenant, res.id))]


def desired_groups(plan: HostPlan, node: str, reservations: Iterable[Reservation]) -> list[GroupSpec]:
    """Every group switch ``node`` should hold (replication groups of protected reservations)."""
    dpid = plan.dpid(node)
    out = []
    for res in reservations:
        out += [g for g in reservation_groups(plan, res) if g.dpid == dpid]
    return out


def desired_states(plan: HostPlan, nodes: Iterable[str], reservations: Iterable[Reservation], *,
                   rate_scale: float = 1.0, queue_id: int | None = None,
                   on_error: Callable[[Reservation, TranslationError], None] | None = None,
                   failed: Iterable[tuple[str, str]] | None = None,
                   headroom: float = BE_HEADROOM) -> dict[str, tuple[list[FlowSpec], list[MeterSpec], list[GroupSpec]]]:
    """``desired_state`` and ``desired_groups`` of several switches at once: each reservation is
    translated once and its entries go to the switches asked for (a new leader resynchronising every
    switch translated each reservation once per switch of its path: 3-5 times the work).
    ``on_error`` is called once per reservation that cannot be translated."""
    reservations = list(reservations)
    nodes = list(dict.fromkeys(nodes))
    failed = set(failed or ())
    out: dict[str, tuple[list[FlowSpec], list[MeterSpec], list[GroupSpec]]] = {}
    by_dpid: dict[int, str] = {}
    for node in nodes:
        flows, meters = baseline(plan, node, reserved_share_by_port(plan, node, reservations), rate_scale=rate_scale,
                                 failed=failed, headroom=headroom)
        out[node] = (flows, meters, [])
        by_dpid[plan.dpid(node)] = node
    wanted = set(nodes)
    for res in reservations:
        if not any(n in wanted for p in res.all_paths() for n in p):
            continue
        try:
            rf, rm = reservation_flows(plan, res, rate_scale=rate_scale, queue_id=queue_id)
        except TranslationError as e:
            if on_error:
                on_error(res, e)
            continue
        for f in rf:
            if f.dpid in by_dpid:
                out[by_dpid[f.dpid]][0].append(f)
        for m in rm:
            if m.dpid in by_dpid:
                out[by_dpid[m.dpid]][1].append(m)
        for g in reservation_groups(plan, res):
            if g.dpid in by_dpid:
                out[by_dpid[g.dpid]][2].append(g)
    return out


def desired_state(plan: HostPlan, node: str, reservations: Iterable[Reservation], *, rate_scale: float = 1.0,
                  queue_id: int | None = None,
                  on_error: Callable[[Reservation, TranslationError], None] | None = None, failed: Iterable[tuple[str, str]] | None = None,
                  headroom: float = BE_HEADROOM) -> tuple[list[FlowSpec], list[MeterSpec]]:
    """Everything switch ``node`` should hold: baseline (meters sized by the reservations leaving
    through each port) plus the entries of every reservation whose path crosses it.
    ``on_error(res, exc)`` is called for reservations that cannot be translated (skipped)."""
    flows, meters, _ = desired_states(plan, [node], reservations, rate_scale=rate_scale, queue_id=queue_id,
                                      on_error=on_error, failed=failed, headroom=headroom)[node]
    return flows, meters


