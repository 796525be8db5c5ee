"""OpenFlow 1.3 messages as they travel: split a buffer of joined messages (what
``ofchannel.Channel`` hands to ``datapath.send``) back into (type name, xid, bytes), for the fake
datapaths that stand in for os-ken's ``Datapath``. Header only: os-ken parses no controller-to-
switch message but a few, and the fakes need the kind and the xid."""

from __future__ import annotations

import struct

from os_ken.base import app_manager  # noqa: F401 - import order os-ken needs
from os_ken.ofproto import ofproto_v1_3 as o

HEADER = struct.Struct("!BBHI")     # version, type, length, xid

#: the message types the channel sends, by their os-ken class names
KINDS = {o.OFPT_FLOW_MOD: "OFPFlowMod", o.OFPT_METER_MOD: "OFPMeterMod", o.OFPT_GROUP_MOD: "OFPGroupMod",
         o.OFPT_PACKET_OUT: "OFPPacketOut", o.OFPT_BARRIER_REQUEST: "OFPBarrierRequest",
         o.OFPT_ROLE_REQUEST: "OFPRoleRequest", o.OFPT_MULTIPART_REQUEST: "OFPMultipartRequest"}


def split(buf: bytes) -> list[tuple[str, int, bytes]]:
    """Every message of ``buf`` in order: (kind, xid, its bytes); ValueError on a torn buffer."""
    out, off = [], 0
    while off < len(buf):
        if len(buf) - off < HEADER.size:
            raise ValueError(f"{len(buf) - off} bytes left: not a header")
        version, kind, length, xid = HEADER.unpack_from(buf, off)
        if version != o.OFP_VERSION or length < HEADER.size or off + length > len(buf):
            raise ValueError(f"bad header at {off}: version {version}, length {length} of {len(buf) - off}")
        out.append((KINDS.get(kind, f"type {kind}"), xid, bytes(buf[off:off + length])))
        off += length
    return out
