"""OpenFlow 1.3 wire bytes of a program's flow mods and meter mods, straight from the specs.

Why not os-ken's message classes for these: building an ``OFPMatch`` normalises every field
through text and back (an IPv4 address is parsed, printed and parsed again), and that alone was
60% of the controller's CPU in sending a program (``dnctl bench rest``'s batch: about 7 flow or
meter mods per reservation, 28,000 for 4,096 reservations). The messages a program sends are few
and fixed in shape, so they are packed here with ``struct`` in one pass; groups and everything
else (barriers, role requests, multipart, packet-out) stay os-ken's. Every byte is checked against
os-ken's own serialisation in ``tests/test_wire.py`` (every change of the programs the tests
build, and generated specs).

Pure: no os-ken import. Messages carry the xid the caller assigns.
"""

from __future__ import annotations

import struct
from typing import Any

from controller.dataplane.specs import FlowSpec, MeterSpec

__all__ = ["MATCH_FIELDS", "flow_add", "flow_delete", "flow_delete_strict", "meter_mod", "meter_delete",
           "OFPMC_ADD", "OFPMC_MODIFY", "OFPMC_DELETE"]

OFP_VERSION = 0x04
OFPT_FLOW_MOD = 14
OFPT_METER_MOD = 29

OFPFC_ADD, OFPFC_DELETE, OFPFC_DELETE_STRICT = 0, 3, 4
OFPMC_ADD, OFPMC_MODIFY, OFPMC_DELETE = 0, 1, 2
OFPMF_KBPS, OFPMF_BURST, OFPMF_STATS = 0x1, 0x4, 0x8
OFPMBT_DROP = 1
OFPTT_ALL = 0xFF
OFPP_ANY = 0xFFFFFFFF
OFPG_ANY = 0xFFFFFFFF
OFP_NO_BUFFER = 0xFFFFFFFF
OFP_DEFAULT_PRIORITY = 0x8000
OFPMT_OXM = 1
OFPXMC_OPENFLOW_BASIC = 0x8000

OFPIT_GOTO_TABLE, OFPIT_APPLY_ACTIONS, OFPIT_METER = 1, 4, 6
OFPAT_OUTPUT, OFPAT_PUSH_VLAN, OFPAT_POP_VLAN = 0, 17, 18
OFPAT_SET_QUEUE, OFPAT_GROUP, OFPAT_SET_FIELD = 21, 22, 25

_HEADER = struct.Struct("!BBHI")
_FLOW_MOD = struct.Struct("!QQBBHHHIIIH2x")         # after the header; the match follows
_METER_MOD = struct.Struct("!HHI")
_DROP_BAND = struct.Struct("!HHII4x")


def _mac(v: Any) -> bytes:
    if isinstance(v, bytes) and len(v) == 6:
        return v
    parts = str(v).split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {v!r}")
    return bytes(int(p, 16) for p in parts)


def _ipv4(v: Any) -> bytes:
    if isinstance(v, int):
        return struct.pack("!I", v)
    parts = str(v).split(".")
    if len(parts) != 4:
        raise ValueError(f"not an IPv4 address: {v!r}")
    return bytes(int(p) for p in parts)


def _uint(size: int) -> Any:
    fmt = {1: "!B", 2: "!H", 4: "!I", 8: "!Q"}[size]
    return lambda v: struct.pack(fmt, v)


#: match field (the specs' os-ken/OXM names) -> (OXM field number, value packer)
MATCH_FIELDS: dict[str, tuple[int, Any]] = {
    "in_port": (0, _uint(4)), "metadata": (2, _uint(8)), "eth_dst": (3, _mac), "eth_src": (4, _mac),
    "eth_type": (5, _uint(2)), "vlan_vid": (6, _uint(2)), "vlan_pcp": (7, _uint(1)), "ip_dscp": (8, _uint(1)),
    "ip_proto": (10, _uint(1)), "ipv4_src": (11, _ipv4), "ipv4_dst": (12, _ipv4), "tcp_src": (13, _uint(2)),
    "tcp_dst": (14, _uint(2)), "udp_src": (15, _uint(2)), "udp_dst": (16, _uint(2)),
}


def _oxm(name: str, value: Any) -> tuple[int, bytes]:
    """(field number, TLV) of one match field; a ``(value, mask)`` tuple is a masked field."""
    try:
        number, pack = MATCH_FIELDS[name]
    except KeyError:
        raise ValueError(f"match field {name!r} has no OpenFlow 1.3 encoding here") from None
    if isinstance(value, tuple):         # the value's bits outside the mask are zero (OpenFlow 1.3, 7.2.3.5)
        mask = pack(value[1])
        payload = bytes(a & b for a, b in zip(pack(value[0]), mask)) + mask
        masked = 1
    else:
        payload = pack(value)
        masked = 0
    header = (OFPXMC_OPENFLOW_BASIC << 16) | (number << 9) | (masked << 8) | len(payload)
    return number, struct.pack("!I", header) + payload


def _pad8(n: int) -> int:
    return (8 - n % 8) % 8


def match(fields: dict[str, Any]) -> bytes:
    """An ``ofp_match`` of OXM fields (sorted by field number, as os-ken orders them), padded."""
    tlvs = b"".join(t for _, t in sorted((_oxm(k, v) for k, v in fields.items()), key=lambda x: x[0]))
    length = 4 + len(tlvs)
    return struct.pack("!HH", OFPMT_OXM, length) + tlvs + bytes(_pad8(length))


def _action(a: dict[str, Any]) -> bytes:
    t = a["type"]
    if t == "output":
        return struct.pack("!HHIH6x", OFPAT_OUTPUT, 16, a["port"], a.get("max_len", 0))
    if t == "push_vlan":
        return struct.pack("!HHH2x", OFPAT_PUSH_VLAN, 8, a.get("ethertype", 0x8100))
    if t == "pop_vlan":
        return struct.pack("!HH4x", OFPAT_POP_VLAN, 8)
    if t == "set_vlan":
        return _set_field("vlan_vid", 0x1000 | a["vid"])
    if t == "set_vlan_pcp":
        return _set_field("vlan_pcp", a["pcp"])
    if t == "set_queue":
        return struct.pack("!HHI", OFPAT_SET_QUEUE, 8, a["queue_id"])
    if t == "group":
        return struct.pack("!HHI", OFPAT_GROUP, 8, a["group_id"])
    raise ValueError(f"unknown action {t}")


def _set_field(name: str, value: Any) -> bytes:
    _, tlv = _oxm(name, value)
    length = 4 + len(tlv)
    length += _pad8(length)
    return struct.pack("!HH", OFPAT_SET_FIELD, length) + tlv + bytes(length - 4 - len(tlv))


def _instruction(i: dict[str, Any]) -> bytes:
    t = i["type"]
    if t == "meter":
        return struct.pack("!HHI", OFPIT_METER, 8, i["meter_id"])
    if t == "goto":
        return struct.pack("!HHB3x", OFPIT_GOTO_TABLE, 8, i["table"])
    if t == "apply":
        actions = b"".join(_action(a) for a in i["actions"])
        return struct.pack("!HH4x", OFPIT_APPLY_ACTIONS, 8 + len(actions)) + actions
    raise ValueError(f"unknown instruction {t}")


def _message(kind: int, xid: int, body: bytes) -> bytes:
    return _HEADER.pack(OFP_VERSION, kind, _HEADER.size + len(body), xid) + body


def _flow_mod(xid: int, *, cookie: int = 0, cookie_mask: int = 0, table_id: int = 0, command: int,
              priority: int = OFP_DEFAULT_PRIORITY, out_port: int = 0, out_group: int = 0,
              fields: dict[str, Any], instructions: bytes = b"") -> bytes:
    fixed = _FLOW_MOD.pack(cookie, cookie_mask, table_id, command, 0, 0, priority, OFP_NO_BUFFER, out_port,
                           out_group, 0)
    return _message(OFPT_FLOW_MOD, xid, fixed + match(fields) + instructions)


def flow_add(xid: int, f: FlowSpec) -> bytes:
    """OFPFC_ADD of ``f`` (replaces an entry with the same table, priority and match)."""
    return _flow_mod(xid, cookie=f.cookie, table_id=f.table_id, command=OFPFC_ADD, priority=f.priority,
                     fields=f.match, instructions=b"".join(_instruction(i) for i in f.instructions))


def flow_delete(xid: int, cookie: int, cookie_mask: int) -> bytes:
    """OFPFC_DELETE in every table of the entries whose cookie ``cookie_mask`` selects."""
    return _flow_mod(xid, cookie=cookie, cookie_mask=cookie_mask, table_id=OFPTT_ALL, command=OFPFC_DELETE,
                     out_port=OFPP_ANY, out_group=OFPG_ANY, fields={})


def flow_delete_strict(xid: int, table_id: int, priority: int, fields: dict[str, Any]) -> bytes:
    """OFPFC_DELETE_STRICT of the one entry with this table, priority and match."""
    return _flow_mod(xid, table_id=table_id, command=OFPFC_DELETE_STRICT, priority=priority, out_port=OFPP_ANY,
                     out_group=OFPG_ANY, fields=fields)


def meter_mod(xid: int, m: MeterSpec, command: int) -> bytes:
    """Add or modify a drop-band meter (kbit/s, burst, with statistics)."""
    band = _DROP_BAND.pack(OFPMBT_DROP, _DROP_BAND.size, m.rate_kbps, m.burst_kb)
    flags = OFPMF_KBPS | OFPMF_BURST | OFPMF_STATS
    return _message(OFPT_METER_MOD, xid, _METER_MOD.pack(command, flags, m.meter_id) + band)


def meter_delete(xid: int, meter_id: int) -> bytes:
    return _message(OFPT_METER_MOD, xid, _METER_MOD.pack(OFPMC_DELETE, 0, meter_id))
