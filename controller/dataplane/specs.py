"""What a switch holds, as plain data: flow, meter and group specs, OpenFlow constants, cookies, ids.

Pure (no os-ken): the translation (``controller.dataplane.translation``) produces these specs, the
programs (``controller.dataplane.programs``) order them, the os-ken shim turns them into messages
and the fake switch of the tests (``tests/fakeswitch.py``) applies them. This module is the one
``FlowSpec`` of the project.

Cookies (64 bits, most significant first)::

    | kind (8) | tenant (16) | reservation number (32) | digest (8) |

``kind`` says which layer wrote the entry (``KIND_BASE``, ``KIND_BEST_EFFORT``,
``KIND_RESERVATION``); ``tenant`` is 0 for entries shared by all tenants; the reservation number
is a stable 32-bit hash of the reservation id (0 outside reservations); ``digest`` is an 8-bit
hash of the entry's content so a resync notices a changed action under an unchanged match.
``COOKIE_MASK_*`` select all entries of one reservation, one tenant or one kind.

Meter ids: best-effort meters use ``BE_METER_BASE + port`` (one per inter-switch port); the
ARP-to-controller policer of a host port ``ARP_METER_BASE + port``; a reservation's meter (on its ingress switch only) ``RES_METER_BASE + number % RES_METER_SPAN``;
a protected reservation's replication group ``RES_GROUP_BASE + number % RES_GROUP_SPAN``.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field
from typing import Any

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
#: selects one reservation's entries: kind, tenant and number must match; the digest is free.
COOKIE_MASK_RESERVATION = 0xFFFF_FFFF_FFFF_FF00
#: selects every entry of one tenant, whatever its kind.
COOKIE_MASK_TENANT = 0x00FF_FF00_0000_0000
#: selects every entry of one kind.
COOKIE_MASK_KIND = 0xFF00_0000_0000_0000

# meter and group ids
BE_METER_BASE = 0
ARP_METER_BASE = 0x0000_8000     # + host port (ports stay below 0x8000)
RES_METER_BASE = 0x0001_0000
RES_METER_SPAN = 0xFFFF_0000 - RES_METER_BASE - 1   # stay below OFPM_MAX
#: group ids of protected reservations (OFPG_MAX is 0xffffff00)
RES_GROUP_BASE = 1
RES_GROUP_SPAN = 0xFFFF_FF00 - RES_GROUP_BASE - 1


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
    ``{"type": "set_vlan_pcp", "pcp": n}``, ``{"type": "set_queue", "queue_id": n}``,
    ``{"type": "group", "group_id": n}``. No instructions means drop.
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
# cookies and ids
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


def reservation_cookie(tenant: int, res_id: str) -> int:
    """The cookie (digest 0) of a reservation; use with ``COOKIE_MASK_RESERVATION``."""
    return make_cookie(KIND_RESERVATION, tenant, reservation_number(res_id))


def tenant_cookie(tenant: int) -> int:
    """A cookie value to use with ``COOKIE_MASK_TENANT`` to select all entries of a tenant."""
    return make_cookie(0, tenant, 0)


def cookie_partition(reservation_bits: int = 3) -> list[tuple[int, int]]:
    """(cookie, mask) pairs that select every possible cookie exactly once, for a switch dump in
    small pieces: one per kind this controller writes (reservation entries further split into
    ``2 ** reservation_bits`` by the top bits of their number) and a few that cover every other
    kind byte (0, and 4-255 in power-of-two ranges: entries nobody here wrote, which a resync must
    see to delete)."""
    if not 0 <= reservation_bits <= 32:
        raise ValueError(f"reservation_bits {reservation_bits} must be in 0..32")
    kind = 0xFF << _KIND_SHIFT
    out = [(KIND_BASE << _KIND_SHIFT, kind), (KIND_BEST_EFFORT << _KIND_SHIFT, kind)]
    top = _NUMBER_SHIFT + 32 - reservation_bits
    chunk_mask = ((1 << reservation_bits) - 1) << top
    out += [((KIND_RESERVATION << _KIND_SHIFT) | (c << top), kind | chunk_mask) for c in range(1 << reservation_bits)]
    out.append((0, kind))                                   # kind 0
    low = 4
    while low < 256:                                        # kinds [4, 8), [8, 16), ... [128, 256)
        out.append((low << _KIND_SHIFT, ((0xFF & ~(low - 1)) << _KIND_SHIFT)))
        low *= 2
    return out


def cookie_selects(cookie: int, value: int, mask: int) -> bool:
    """True when an entry with ``cookie`` is selected by ``value``/``mask`` (OpenFlow semantics)."""
    return (cookie & mask) == (value & mask)


def reservation_meter_id(res_id: str) -> int:
    return RES_METER_BASE + reservation_number(res_id) % RES_METER_SPAN


def reservation_group_id(res_id: str) -> int:
    return RES_GROUP_BASE + reservation_number(res_id) % RES_GROUP_SPAN


def be_meter_id(port: int) -> int:
    return BE_METER_BASE + port


def arp_meter_id(port: int) -> int:
    return ARP_METER_BASE + port


def content_digest(match: dict[str, Any], instructions: list[dict[str, Any]]) -> int:
    """The 8-bit digest of an entry's match and instructions (the cookie's low byte)."""
    text = repr((normalize_match(match), _canon(instructions)))
    return hashlib.sha256(text.encode()).digest()[0]


def _canon(x: Any) -> Any:
    if isinstance(x, dict):
        return tuple(sorted((k, _canon(v)) for k, v in x.items()))
    if isinstance(x, (list, tuple)):
        return tuple(_canon(v) for v in x)
    return x


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
