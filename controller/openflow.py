"""OpenFlow 1.3 translation: topology, host plan and reservations in; flow and meter specs out.

Pure (no os-ken import): every function returns plain data that the os-ken shim
(``controller.ofshim``) turns into messages, so the whole pipeline is unit-testable.

Pipeline on every switch (see docs/dataplane.md):

- table 0, **classification** (``TABLE_CLASSIFY``): LLDP from inter-switch ports -> controller;
  at a host port: tagged frames -> drop, ARP -> controller, untagged -> push the port's tenant
  VLAN and go to table 1; at an inter-switch port: tagged frames -> table 1; anything else -> drop.
- table 1, **deterministic** (``TABLE_DETERMINISTIC``): one entry per reservation and host pair:
  tenant VLAN + IPv4 (+ optional proto/port/DSCP) + in_port -> (ingress: the reservation's meter)
  -> next-hop port (egress: pop the VLAN, host port). Miss -> table 2.
- table 2, **best effort** (``TABLE_BEST_EFFORT``): per tenant VLAN and destination host MAC ->
  the port's aggregate best-effort meter -> next hop on the shortest path by propagation
  (local host: pop VLAN, host port). Miss (foreign MACs, broadcast, multicast) -> drop.

Cookies (64 bits, most significant first)::

    | kind (8) | tenant (16) | reservation number (32) | digest (8) |

``kind`` says which layer wrote the entry (``KIND_BASE``, ``KIND_BEST_EFFORT``,
``KIND_RESERVATION``); ``tenant`` is 0 for entries shared by all tenants; the reservation number
is a stable 32-bit hash of the reservation id (0 outside reservations); ``digest`` is an 8-bit
hash of the entry's content so a resync notices a changed action under an unchanged match.
``cookie_mask_*`` give the masks that select all entries of one reservation or one tenant.

Protection (``res.protection_path`` set): the ingress entry sends the frame to a group of type
ALL (``reservation_group_id``) whose two buckets output to the first hop of each path; every other
switch of either path holds the same kind of entry as for a plain reservation (matched on the
port the copy arrives on, so a node on both paths holds two entries); both copies reach the
destination host, which eliminates duplicates by sequence number.

Best effort follows failures: ``baseline(..., failed=links)`` routes around failed links.

Meter ids: best-effort meters use the id ``BE_METER_BASE + port`` (one per inter-switch port);
a reservation's meter (on its ingress switch only) uses
``RES_METER_BASE + number % RES_METER_SPAN``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from dataclasses import dataclass, field
from typing import Any, Iterable

from controller.dataplane import routing
from controller.dataplane.frames import Arp, arp_reply, lldp_frame, parse_arp, parse_lldp  # noqa: F401 (re-exported)

# ---------------------------------------------------------------------------------------------
# OpenFlow constants (values from the OpenFlow 1.3 specification; kept here to stay pure)
OFPP_CONTROLLER = 0xFFFFFFFD
OFPP_IN_PORT = 0xFFFFFFF8
OFPCML_NO_BUFFER = 0xFFFF
OFPVID_PRESENT = 0x1000
OFPVID_NONE = 0x0000
ETH_TYPE_IPV4 = 0x0800
ETH_TYPE_ARP = 0x0806
ETH_TYPE_VLAN = 0x8100
ETH_TYPE_LLDP = 0x88CC
IP_PROTO_TCP = 6
IP_PROTO_UDP = 17
LLDP_MULTICAST = "01:80:c2:00:00:0e"

TABLE_CLASSIFY = 0
TABLE_DETERMINISTIC = 1
TABLE_BEST_EFFORT = 2

# priorities
PRIO_LLDP = 1000
PRIO_TAGGED_DROP = 900
PRIO_ARP = 800
PRIO_CLASSIFY = 100
PRIO_RESERVATION = 1000
PRIO_BEST_EFFORT = 100
PRIO_MISS = 0

# cookie layout
KIND_BASE = 0x01
KIND_BEST_EFFORT = 0x02
KIND_RESERVATION = 0x03
_KIND_SHIFT, _TENANT_SHIFT, _NUMBER_SHIFT = 56, 40, 8
COOKIE_ALL = 0xFFFF_FFFF_FFFF_FFFF

# meter ids
BE_METER_BASE = 0
RES_METER_BASE = 0x0001_0000
RES_METER_SPAN = 0xFFFF_0000 - RES_METER_BASE - 1   # stay below OFPM_MAX

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
#: When the switches are an emulation at ``rate_scale`` < 1 (software switches on shared cores),
#: a reservation meter's burst also covers this long at its rate: a switch that was not scheduled
#: for a few ms then meters a backlog that arrived at the right rate. Not applied at scale 1.
EMULATION_BURST_NS = 50_000_000
#: Best-effort meters police at this share of (capacity - reserved): headroom so a saturated port
#: is never driven to exactly 100% by best effort (a link's queue would then build behind it).
BE_HEADROOM = 0.9
#: A best-effort meter's burst, in full frames.
BE_BURST_FRAMES = 10
#: 802.1Q priority (PCP) the ingress entry gives reserved frames in the network's VLAN tag, so a
#: link with priority queues (the emulation's HTB, a real switch's egress scheduler) can serve
#: them ahead of best effort (PCP 0); the egress entry pops the tag with it.
RESERVED_PCP = 7


# ---------------------------------------------------------------------------------------------
# specs
@dataclass
class FlowSpec:
    """One flow entry to install on switch ``dpid``.

    ``match`` uses os-ken/OXM field names (``in_port``, ``vlan_vid``, ``eth_type``, ``eth_dst``,
    ``ipv4_src``, ...); a masked field is a ``(value, mask)`` tuple. ``instructions`` is a list of
    plain dicts: ``{"type": "apply", "actions": [...]}``, ``{"type": "goto", "table": n}``,
    ``{"type": "meter", "meter_id": n}``; actions are ``{"type": "output", "port": n}``,
    ``{"type": "push_vlan"}``, ``{"type": "pop_vlan"}``, ``{"type": "set_vlan", "vid": n}``,
    ``{"type": "set_vlan_pcp", "pcp": n}``,
    ``{"type": "set_queue", "queue_id": n}``. No instructions means drop.
    """

    dpid: int
    table_id: int
    priority: int
    match: dict[str, Any]
    instructions: list[dict[str, Any]] = field(default_factory=list)
    cookie: int = 0

    @property
    def meter_id(self) -> int | None:
        for ins in self.instructions:
            if ins["type"] == "meter":
                return ins["meter_id"]
        return None

    def key(self) -> tuple:
        """Identity of the entry in its switch: (table, priority, normalised match)."""
        return (self.table_id, self.priority, normalize_match(self.match))

    def outputs(self) -> list[int]:
        return [a["port"] for ins in self.instructions if ins["type"] == "apply"
                for a in ins["actions"] if a["type"] == "output"]

    def actions(self) -> list[dict[str, Any]]:
        return [a for ins in self.instructions if ins["type"] == "apply" for a in ins["actions"]]


@dataclass
class MeterSpec:
    """A drop-band meter in kbit/s with a burst in kbit."""

    dpid: int
    meter_id: int
    rate_kbps: int
    burst_kb: int
    cookie: int = 0   # not sent to the switch; says who owns the meter (kind/tenant/reservation)


@dataclass
class GroupSpec:
    """An OpenFlow group on switch ``dpid``: ``type`` "all" (replicate to every bucket); each
    bucket is a list of actions (same dicts as in FlowSpec)."""

    dpid: int
    group_id: int
    type: str
    buckets: list[list[dict[str, Any]]]
    cookie: int = 0   # not sent to the switch; says who owns the group

    def bucket_ports(self) -> tuple[tuple[int, ...], ...]:
        """Output ports of each bucket (what a resync compares with the switch's group)."""
        return tuple(tuple(a["port"] for a in b if a["type"] == "output") for b in self.buckets)


# ---------------------------------------------------------------------------------------------
# cookies
def reservation_number(res_id: str) -> int:
    """Stable 32-bit number of a reservation id (same across restarts), never 0."""
    n = int.from_bytes(hashlib.sha256(str(res_id).encode()).digest()[:4], "big")
    return n or 1


def make_cookie(kind: int, tenant: int = 0, number: int = 0, digest: int = 0) -> int:
    """Pack a cookie; each field is range-checked."""
    if not (0 <= kind < 256 and 0 <= tenant < 65536 and 0 <= number < 2**32 and 0 <= digest < 256):
        raise ValueError(f"cookie field out of range: kind={kind} tenant={tenant} number={number}")
    return (kind << _KIND_SHIFT) | (tenant << _TENANT_SHIFT) | (number << _NUMBER_SHIFT) | digest


def parse_cookie(cookie: int) -> dict[str, int]:
    """Inverse of ``make_cookie``."""
    return {"kind": (cookie >> _KIND_SHIFT) & 0xFF, "tenant": (cookie >> _TENANT_SHIFT) & 0xFFFF,
            "number": (cookie >> _NUMBER_SHIFT) & 0xFFFF_FFFF, "digest": cookie & 0xFF}


#: selects one reservation's entries: kind, tenant and number must match; the digest is free.
COOKIE_MASK_RESERVATION = 0xFFFF_FFFF_FFFF_FF00
#: selects every entry of one tenant, whatever its kind.
COOKIE_MASK_TENANT = 0x00FF_FF00_0000_0000
#: selects every entry of one kind.
COOKIE_MASK_KIND = 0xFF00_0000_0000_0000


def reservation_cookie(tenant: int, res_id: str) -> int:
    """The cookie (digest 0) of a reservation; use with ``COOKIE_MASK_RESERVATION``."""
    return make_cookie(KIND_RESERVATION, tenant, reservation_number(res_id))


def tenant_cookie(tenant: int) -> int:
    """A cookie value to use with ``COOKIE_MASK_TENANT`` to select all entries of a tenant."""
    return make_cookie(0, tenant, 0)


def cookie_selects(cookie: int, value: int, mask: int) -> bool:
    """True when an entry with ``cookie`` is selected by ``value``/``mask`` (OpenFlow semantics)."""
    return (cookie & mask) == (value & mask)


def reservation_meter_id(res_id: str) -> int:
    return RES_METER_BASE + reservation_number(res_id) % RES_METER_SPAN


#: group ids of protected reservations (OFPG_MAX is 0xffffff00)
RES_GROUP_BASE = 1
RES_GROUP_SPAN = 0xFFFF_FF00 - RES_GROUP_BASE - 1


def reservation_group_id(res_id: str) -> int:
    return RES_GROUP_BASE + reservation_number(res_id) % RES_GROUP_SPAN


def be_meter_id(port: int) -> int:
    return BE_METER_BASE + port


def _digest(match: dict[str, Any], instructions: list[dict[str, Any]]) -> int:
    text = repr((normalize_match(match), _canon(instructions)))
    return hashlib.sha256(text.encode()).digest()[0]


def _canon(x: Any) -> Any:
    if isinstance(x, dict):
        return tuple(sorted((k, _canon(v)) for k, v in x.items()))
    if isinstance(x, (list, tuple)):
        return tuple(_canon(v) for v in x)
    return x


def _flow(dpid: int, table: int, prio: int, match: dict[str, Any], instructions: list[dict[str, Any]],
          kind: int, tenant: int = 0, number: int = 0) -> FlowSpec:
    cookie = make_cookie(kind, tenant, number, _digest(match, instructions))
    return FlowSpec(dpid, table, prio, dict(match), instructions, cookie)


# ---------------------------------------------------------------------------------------------
# matches
def normalize_match(match: dict[str, Any]) -> tuple:
    """A hashable, order-free form of a match, equal for a spec and the switch's echo of it.

    Masked fields with an all-ones mask become plain values; MACs are lower-cased; IPv4 values
    are canonical dotted quads.
    """
    out = []
    for k, v in match.items():
        if isinstance(v, list):
            v = tuple(v)
        if isinstance(v, tuple) and len(v) == 2:
            val, mask = v
            if isinstance(val, str) and isinstance(mask, str) and val.count(".") == 3:
                if mask == "255.255.255.255":
                    v = str(ipaddress.IPv4Address(val))
                else:
                    v = (str(ipaddress.IPv4Address(val)), str(ipaddress.IPv4Address(mask)))
            elif isinstance(val, str):
                v = (val.lower(), mask.lower()) if mask.lower() != "ff:ff:ff:ff:ff:ff" else val.lower()
        elif isinstance(v, str):
            v = v.lower()
        out.append((k, v))
    return tuple(sorted(out))


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
def _next_hops_towards(plan: Any, dst: str, failed: Any = None) -> dict[str, str]:
    """For every switch, the next switch towards ``dst`` (``controller.dataplane.routing``)."""
    return routing.next_hops_towards(plan.topology.graph, dst, failed)


def inter_switch_ports(plan: Any, node: str) -> dict[int, str]:
    """Port number -> neighbour switch, for the inter-switch ports of ``node``."""
    return {p: v for (u, v), p in plan.link_ports().items() if u == node}


def reserved_share_by_port(plan: Any, node: str, reservations: Iterable[Any]) -> dict[int, float]:
    """Share of each inter-switch port's capacity held by reservations leaving ``node`` through it."""
    topo = plan.topology
    used: dict[int, int] = {}
    for res in reservations:
        for p in _paths_of(res):
            for a, b in zip(p, p[1:]):
                if a == node:
                    port = plan.port(a, b)
                    used[port] = used.get(port, 0) + int(res.bandwidth_bps)
    nbrs = inter_switch_ports(plan, node)
    return {port: min(1.0, bw / topo.capacity_bps(node, nbrs[port])) for port, bw in used.items()}


def best_effort_meters(plan: Any, node: str, reserved_share_by_port: dict[int, float] | None = None, *,
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


# ---------------------------------------------------------------------------------------------
# baseline
def _paths_of(res: Any) -> list[list[str]]:
    """A reservation's paths: primary, then the protection path when it has one."""
    second = getattr(res, "protection_path", None)
    return [list(res.path)] + ([list(second)] if second else [])


def baseline(plan: Any, node: str, reserved_share_by_port: dict[int, float] | None = None, *,
             rate_scale: float = 1.0, failed: Any = None, headroom: float = BE_HEADROOM
             ) -> tuple[list[FlowSpec], list[MeterSpec]]:
    """Everything a switch needs without any reservation: classification, tenant best effort
    (next hops avoiding the directed links in ``failed``), per-port best-effort meters and drop
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
                           [_apply(_out(OFPP_CONTROLLER))], KIND_BASE, h.tenant))
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

    meters = best_effort_meters(plan, node, reserved_share_by_port, rate_scale=rate_scale, headroom=headroom)
    return flows, meters


# ---------------------------------------------------------------------------------------------
# reservations
class TranslationError(ValueError):
    """A reservation cannot be expressed as flows (e.g. no host of its tenant at one end)."""


def _select_hosts(plan: Any, tenant: int, node: str, prefix: str | None, what: str, res_id: str) -> list[Any]:
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


def _extra_match(res: Any) -> dict[str, Any]:
    m = dict(getattr(res, "match", None) or {})
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


def reservation_meter_rate_bps(res: Any, rate_scale: float = 1.0) -> float:
    """The rate a reservation's meter polices at, in bit/s as the datapath sees them.

    ``frame_bytes`` are IP bytes per period (what a talker sends: IP header onward). A meter counts
    Ethernet frames, so the rate is that of the period's bytes *as the datapath carries them*
    (``frame_bytes x rate_scale``, split in MTU-sized datagrams, each with its L2 header:
    ``wire_bytes_per_period``) times (1 + ``RES_METER_TOLERANCE``). Never below the reserved
    ``bandwidth_bps x rate_scale`` (x the tolerance)."""
    period_ns = int(getattr(res, "period_ns", 0) or 0)
    reserved = float(res.bandwidth_bps) * rate_scale
    if period_ns <= 0 or not getattr(res, "frame_bytes", None):
        return reserved * (1 + RES_METER_TOLERANCE)
    wire = wire_bytes_per_period(int(res.frame_bytes) * rate_scale) * 8e9 / period_ns
    return max(wire, reserved) * (1 + RES_METER_TOLERANCE)


def reservation_meter(plan: Any, res: Any, *, rate_scale: float = 1.0) -> MeterSpec:
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


def reservation_flows(plan: Any, res: Any, *, rate_scale: float = 1.0, queue_id: int | None = None
                      ) -> tuple[list[FlowSpec], list[MeterSpec]]:
    """The deterministic entries of one reservation on every switch of its path.

    One entry per (source host, destination host) pair of the tenant at the path's ends (filtered
    by ``res.match`` ip_src/ip_dst when given), on each switch: tenant VLAN + IPv4 addresses +
    optional proto/port/DSCP + the port the frame must arrive on. The ingress entry goes through
    the reservation's meter; the egress entry pops the VLAN and outputs to the host's port.
    ``queue_id`` adds a set_queue action (only where the datapath has queues).
    Raises TranslationError when the reservation has no host pair to carry.
    """
    paths = _paths_of(res)
    path = paths[0]
    if any(len(p) < 2 for p in paths):
        raise TranslationError(f"reservation {res.id}: path needs two switches")
    if len(paths) > 1 and (paths[1][0] != path[0] or paths[1][-1] != path[-1]):
        raise TranslationError(f"reservation {res.id}: the protection path must join the same switches")
    m = dict(getattr(res, "match", None) or {})
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


def reservation_groups(plan: Any, res: Any) -> list[GroupSpec]:
    """The replication group of a protected reservation on its ingress switch (type ALL, one
    bucket per path's first hop); [] for a reservation with one path."""
    paths = _paths_of(res)
    if len(paths) < 2:
        return []
    node = paths[0][0]
    buckets = [[_out(plan.port(node, p[1]))] for p in paths]
    return [GroupSpec(plan.dpid(node), reservation_group_id(res.id), "all", buckets,
                      reservation_cookie(res.tenant, res.id))]


def desired_groups(plan: Any, node: str, reservations: Iterable[Any]) -> list[GroupSpec]:
    """Every group switch ``node`` should hold (replication groups of protected reservations)."""
    dpid = plan.dpid(node)
    out = []
    for res in reservations:
        out += [g for g in reservation_groups(plan, res) if g.dpid == dpid]
    return out


def group_resync_plan(desired: list[GroupSpec], actual: list[dict[str, Any]]
                      ) -> tuple[list[GroupSpec], list[GroupSpec], list[int]]:
    """(groups to add, groups to modify, group ids to delete); ``actual`` items have ``group_id``
    and ``buckets`` (output ports per bucket, as ``GroupSpec.bucket_ports``)."""
    have = {int(a["group_id"]): a for a in actual}
    want = {g.group_id: g for g in desired}
    add = [g for i, g in want.items() if i not in have]
    modify = [g for i, g in want.items() if i in have
              and tuple(tuple(b) for b in have[i]["buckets"]) != g.bucket_ports()]
    delete = sorted(i for i in have if i not in want)
    return add, modify, delete


def desired_state(plan: Any, node: str, reservations: Iterable[Any], *, rate_scale: float = 1.0,
                  queue_id: int | None = None, on_error: Any = None, failed: Any = None,
                  headroom: float = BE_HEADROOM) -> tuple[list[FlowSpec], list[MeterSpec]]:
    """Everything switch ``node`` should hold: baseline (meters sized by the reservations leaving
    through each port) plus the entries of every reservation whose path crosses it.
    ``on_error(res, exc)`` is called for reservations that cannot be translated (skipped)."""
    reservations = list(reservations)
    flows, meters = baseline(plan, node, reserved_share_by_port(plan, node, reservations), rate_scale=rate_scale,
                             failed=failed, headroom=headroom)
    dpid = plan.dpid(node)
    for res in reservations:
        if not any(node in p for p in _paths_of(res)):
            continue
        try:
            rf, rm = reservation_flows(plan, res, rate_scale=rate_scale, queue_id=queue_id)
        except TranslationError as e:
            if on_error:
                on_error(res, e)
            continue
        flows += [f for f in rf if f.dpid == dpid]
        meters += [mt for mt in rm if mt.dpid == dpid]
    return flows, meters


# ---------------------------------------------------------------------------------------------
# resync
def resync_plan(desired: list[FlowSpec], actual: list[dict[str, Any]]) -> tuple[list[FlowSpec], list[dict[str, Any]]]:
    """What to send to make a switch's flow table equal ``desired``.

    ``actual`` lists the switch's entries as dicts with ``table_id``, ``priority``, ``match``
    (field -> value or (value, mask)) and ``cookie``. An entry is the same when table, priority
    and match agree; it is up to date when its cookie (whose low byte digests the actions) agrees
    too. Returns (entries to add, which replace outdated ones in place; actual entries to delete).
    """
    have = {(a["table_id"], a["priority"], normalize_match(a.get("match") or {})): a for a in actual}
    want = {f.key(): f for f in desired}
    to_add = [f for k, f in want.items() if k not in have or int(have[k].get("cookie", 0)) != f.cookie]
    to_delete = [a for k, a in have.items() if k not in want]
    return to_add, to_delete


def meter_resync_plan(desired: list[MeterSpec], actual: list[dict[str, Any]]
                      ) -> tuple[list[MeterSpec], list[MeterSpec], list[int]]:
    """(meters to add, meters to modify, meter ids to delete); ``actual`` items have ``meter_id``,
    ``rate_kbps`` and ``burst_kb``."""
    have = {int(a["meter_id"]): a for a in actual}
    want = {m.meter_id: m for m in desired}
    add = [m for i, m in want.items() if i not in have]
    modify = [m for i, m in want.items() if i in have
              and (int(have[i]["rate_kbps"]), int(have[i]["burst_kb"])) != (m.rate_kbps, m.burst_kb)]
    delete = sorted(i for i in have if i not in want)
    return add, modify, delete


# ---------------------------------------------------------------------------------------------
# LLDP link check
Endpoint = tuple[int, int]   # (dpid, port)


def expected_links(plan: Any) -> set[tuple[Endpoint, Endpoint]]:
    """Every directed inter-switch link the topology promises: ((dpid_u, port_uv), (dpid_v, port_vu))."""
    out = set()
    for (u, v), port in plan.link_ports().items():
        out.add(((plan.dpid(u), port), (plan.dpid(v), plan.port(v, u))))
    return out


def compare_links(expected: set[tuple[Endpoint, Endpoint]], seen: Iterable[tuple[Endpoint, Endpoint]],
                  plan: Any = None) -> dict[str, Any]:
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


def arp_answer(plan: Any, dpid: int, in_port: int, frame: bytes) -> bytes | None:
    """The controller's ARP policy: answer a request arriving on a host port for a known host of
    the SAME tenant; everything else (other tenants, unknown IPs, replies, inter-switch ports)
    gets no answer."""
    req = parse_arp(frame)
    if req is None or req.op != 1:
        return None
    try:
        node = plan.node_of_dpid(dpid)
    except KeyError:
        return None
    asker = next((h for h in plan.host_ports(node) if h.port == in_port), None)
    target = plan.host_by_ip(req.tpa)
    if asker is None or target is None or target.tenant != asker.tenant or target.ip == req.spa:
        return None
    return arp_reply(req, target.mac)
