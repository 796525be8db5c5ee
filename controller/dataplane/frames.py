"""Frame layouts the controller and the probes build and read, as bytes (pure: no os-ken, no scapy).

The controller sends LLDP probes and ARP replies and reads LLDP and ARP requests; every such frame is
built and parsed here.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

ETH_TYPE_IPV4 = 0x0800
ETH_TYPE_ARP = 0x0806
ETH_TYPE_LLDP = 0x88CC
LLDP_MULTICAST = "01:80:c2:00:00:0e"


def mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def mac_str(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def _tlv(t: int, value: bytes) -> bytes:
    return struct.pack("!H", (t << 9) | len(value)) + value


def lldp_frame(dpid: int, port: int) -> bytes:
    """An LLDP probe naming (dpid, port): chassis id 'dpid:%016x', port id the port number."""
    src = "02:dd:%02x:%02x:%02x:%02x" % ((dpid >> 8) & 0xFF, dpid & 0xFF, (port >> 8) & 0xFF, port & 0xFF)
    body = (_tlv(1, b"\x07" + f"dpid:{dpid:016x}".encode())
            + _tlv(2, b"\x07" + str(port).encode())
            + _tlv(3, struct.pack("!H", 120))
            + _tlv(0, b""))
    return mac_bytes(LLDP_MULTICAST) + mac_bytes(src) + struct.pack("!H", ETH_TYPE_LLDP) + body


def parse_lldp(frame: bytes) -> tuple[int, int] | None:
    """(dpid, port) from one of our LLDP probes, or None for anything else."""
    if len(frame) < 14 or struct.unpack("!H", frame[12:14])[0] != ETH_TYPE_LLDP:
        return None
    i, dpid, port = 14, None, None
    while i + 2 <= len(frame):
        (hdr,) = struct.unpack("!H", frame[i:i + 2])
        t, n = hdr >> 9, hdr & 0x1FF
        v = frame[i + 2:i + 2 + n]
        if t == 0:
            break
        try:
            if t == 1 and v[:1] == b"\x07" and v[1:].startswith(b"dpid:"):
                dpid = int(v[6:].decode(), 16)
            elif t == 2 and v[:1] == b"\x07":
                port = int(v[1:].decode())
        except ValueError:
            return None
        i += 2 + n
    if dpid is None or port is None:
        return None
    return dpid, port


@dataclass(frozen=True)
class Arp:
    op: int
    sha: str
    spa: str
    tha: str
    tpa: str
    eth_src: str


def parse_arp(frame: bytes) -> Arp | None:
    """An untagged Ethernet/IPv4 ARP frame, or None."""
    if len(frame) < 42 or struct.unpack("!H", frame[12:14])[0] != ETH_TYPE_ARP:
        return None
    htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", frame[14:22])
    if (htype, ptype, hlen, plen) != (1, ETH_TYPE_IPV4, 6, 4):
        return None
    a = frame[22:42]
    return Arp(op, mac_str(a[0:6]), str(ipaddress.IPv4Address(a[6:10])), mac_str(a[10:16]),
               str(ipaddress.IPv4Address(a[16:20])), mac_str(frame[6:12]))


def arp_reply(req: Arp, mac: str) -> bytes:
    """The reply to ARP request ``req`` saying ``req.tpa`` is at ``mac``."""
    body = struct.pack("!HHBBH", 1, ETH_TYPE_IPV4, 6, 4, 2) + mac_bytes(mac) \
        + ipaddress.IPv4Address(req.tpa).packed + mac_bytes(req.sha) + ipaddress.IPv4Address(req.spa).packed
    frame = mac_bytes(req.sha) + mac_bytes(mac) + struct.pack("!H", ETH_TYPE_ARP) + body
    return frame + b"\x00" * max(0, 60 - len(frame))
