"""Frame layouts, declared once: Ethernet, 802.1Q tag, ARP, IPv4, UDP, ICMP echo, LLDP (pure).

Every header of a fixed size is one ``Layout``: an ordered table of (field name, struct format)
that builds (``pack``), parses (``unpack``), says where a field sits (``offset``) and gives the
numpy dtype a vectorised reader or writer views bytes with (``numpy_dtype``). The builders below
(``ether``, ``ipv4``, ``udp``, ``arp``, ``icmp_echo``, ``lldp_frame``, ``arp_reply``) and the
parsers (``parse_ether``, ``parse_arp``, ``parse_lldp``) only put layouts together, so a frame's
layout is written down in exactly one place, in the manner of scapy's ``fields_desc``.

Who uses it: the controller sends LLDP probes and ARP replies and reads LLDP and ARP requests
(``controller.ofshim``, ``controller.dataplane.arp``); the isolation audit forges probe frames
(``tools.probes.isolation_probe``); the pcap analyzer reads headers at the offsets given here and its
synthetic writer builds one frame template here and patches per-frame fields
(``tools.probes.analyzer``). Struct only, no scapy (building thousands of frames with scapy costs
minutes of CPU; the tests use scapy as the independent oracle), no os-ken.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = ["Layout", "ETHERNET", "VLAN_TAG", "ARP", "IPV4", "UDP", "ICMP_ECHO", "LLDP_TLV",
           "ETH_TYPE_IPV4", "ETH_TYPE_ARP", "ETH_TYPE_VLAN", "ETH_TYPE_QINQ", "ETH_TYPE_VLAN_OLD",
           "ETH_TYPE_LLDP", "ETH_TYPE_IPV6", "VLAN_TPIDS", "IP_PROTO_ICMP", "IP_PROTO_UDP",
           "LLDP_MULTICAST", "BROADCAST", "ETH_MIN_FRAME", "mac_bytes", "mac_str", "ip_bytes",
           "inet_checksum", "ether", "ipv4", "udp", "icmp_echo", "arp", "EthernetHeader", "parse_ether",
           "lldp_frame", "parse_lldp", "Arp", "parse_arp", "arp_reply"]

ETH_TYPE_IPV4 = 0x0800
ETH_TYPE_ARP = 0x0806
ETH_TYPE_VLAN = 0x8100        # 802.1Q customer tag
ETH_TYPE_QINQ = 0x88A8        # 802.1ad service tag
ETH_TYPE_VLAN_OLD = 0x9100    # pre-802.1ad QinQ tag some switches still use
ETH_TYPE_LLDP = 0x88CC
ETH_TYPE_IPV6 = 0x86DD
#: the tag protocol ids a parser steps over to reach the ethertype
VLAN_TPIDS = (ETH_TYPE_VLAN, ETH_TYPE_QINQ, ETH_TYPE_VLAN_OLD)
IP_PROTO_ICMP = 1
IP_PROTO_UDP = 17
LLDP_MULTICAST = "01:80:c2:00:00:0e"
BROADCAST = "ff:ff:ff:ff:ff:ff"
#: shortest Ethernet frame without its FCS; shorter frames are padded with zeros
ETH_MIN_FRAME = 60

_NUMPY_KIND = {"B": "u1", "H": ">u2", "I": ">u4", "Q": ">u8"}


class Layout:
    """A fixed-size header in network byte order, declared as (field name, struct format) pairs.

    Fields are integers (formats ``B H I Q``) or raw bytes (``Ns``); ``defaults`` gives the
    value of a field ``pack`` is not told (0, or empty bytes, otherwise).

    Examples
    --------
    >>> UDP.pack(sport=1, dport=2, length=8).hex()
    '0001000200080000'
    >>> UDP.unpack(bytes.fromhex("0001000200080000"))["dport"]
    2
    >>> IPV4.offset("src"), IPV4.size
    (12, 20)
    """

    __slots__ = ("name", "fields", "defaults", "struct", "size", "_offsets")

    def __init__(self, name: str, fields: Sequence[tuple[str, str]], **defaults: Any) -> None:
        self.name = name
        self.fields = tuple(fields)
        unknown = set(defaults) - {f for f, _ in self.fields}
        if unknown:
            raise ValueError(f"{name}: defaults for unknown fields {sorted(unknown)}")
        self.defaults = {f: defaults.get(f, b"" if fmt.endswith("s") else 0) for f, fmt in self.fields}
        self.struct = struct.Struct("!" + "".join(fmt for _, fmt in self.fields))
        self.size = self.struct.size
        self._offsets: dict[str, tuple[int, int]] = {}
        at = 0
        for f, fmt in self.fields:
            n = struct.calcsize("!" + fmt)
            self._offsets[f] = (at, n)
            at += n

    def __repr__(self) -> str:
        return f"Layout({self.name!r}, {list(self.fields)!r})"

    def pack(self, **values: Any) -> bytes:
        """The header's bytes: ``values`` by field name, the defaults for the others."""
        unknown = set(values) - set(self.defaults)
        if unknown:
            raise TypeError(f"{self.name}: no field {sorted(unknown)}")
        merged = {**self.defaults, **values}
        return self.struct.pack(*(merged[f] for f, _ in self.fields))

    def unpack(self, data: bytes | bytearray | memoryview, offset: int = 0) -> dict[str, Any]:
        """The header at ``data[offset:]`` as {field: value}; struct.error when too short."""
        return dict(zip((f for f, _ in self.fields), self.struct.unpack_from(data, offset)))

    def offset(self, field: str) -> int:
        """Byte offset of ``field`` from the start of the header."""
        return self._offsets[field][0]

    def width(self, field: str) -> int:
        """Bytes of ``field``."""
        return self._offsets[field][1]

    def numpy_dtype(self, fields: Iterable[str] | None = None, base: int = 0, itemsize: int | None = None) -> np.dtype:
        """A structured dtype of (some of) the fields, big-endian, at ``base`` + their offsets.

        ``itemsize`` (default: the header's size + ``base``) lets a view of whole records (a pcap
        record header, the frame) read or write these fields in place.
        """
        names = list(fields) if fields is not None else [f for f, _ in self.fields]
        fmt = dict(self.fields)
        kinds = [_NUMPY_KIND.get(fmt[f], f"S{self.width(f)}") for f in names]
        return np.dtype({"names": names, "formats": kinds, "offsets": [base + self.offset(f) for f in names],
                         "itemsize": itemsize if itemsize is not None else base + self.size})


# ---------------------------------------------------------------------------------------------
# the layouts
ETHERNET = Layout("ethernet", [("dst", "6s"), ("src", "6s"), ("type", "H")])
#: an 802.1Q / 802.1ad tag as it sits between the source MAC and the ethertype
VLAN_TAG = Layout("vlan_tag", [("tpid", "H"), ("tci", "H")], tpid=ETH_TYPE_VLAN)
ARP = Layout("arp", [("htype", "H"), ("ptype", "H"), ("hlen", "B"), ("plen", "B"), ("op", "H"),
                     ("sha", "6s"), ("spa", "4s"), ("tha", "6s"), ("tpa", "4s")],
             htype=1, ptype=ETH_TYPE_IPV4, hlen=6, plen=4)
IPV4 = Layout("ipv4", [("version_ihl", "B"), ("tos", "B"), ("total_length", "H"), ("ident", "H"),
                       ("flags_fragment", "H"), ("ttl", "B"), ("proto", "B"), ("checksum", "H"),
                       ("src", "4s"), ("dst", "4s")],
              version_ihl=0x45, flags_fragment=0x4000, ttl=64)   # no options, don't fragment
UDP = Layout("udp", [("sport", "H"), ("dport", "H"), ("length", "H"), ("checksum", "H")])
ICMP_ECHO = Layout("icmp_echo", [("type", "B"), ("code", "B"), ("checksum", "H"), ("ident", "H"), ("seq", "H")],
                   type=8)
#: an LLDP TLV header: type (7 bits) and value length (9 bits)
LLDP_TLV = Layout("lldp_tlv", [("type_length", "H")])


# ---------------------------------------------------------------------------------------------
# field values
def mac_bytes(mac: str) -> bytes:
    """``"02:00:00:00:00:01"`` -> 6 bytes."""
    return bytes(int(x, 16) for x in mac.split(":"))


def mac_str(b: bytes) -> str:
    """6 bytes -> ``"02:00:00:00:00:01"``."""
    return ":".join(f"{x:02x}" for x in b)


def ip_bytes(ip: str) -> bytes:
    """A dotted IPv4 address -> 4 bytes."""
    return ipaddress.IPv4Address(ip).packed


def inet_checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data`` (odd lengths padded with a zero byte)."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


# ---------------------------------------------------------------------------------------------
# building
def ether(dst: str, src: str, ethertype: int, payload: bytes, vlans: Iterable[tuple[int, int]] = ()) -> bytes:
    """An Ethernet frame; ``vlans`` = outer-first (TPID, VID) tags. Padded to ``ETH_MIN_FRAME`` bytes."""
    head = ETHERNET.pack(dst=mac_bytes(dst), src=mac_bytes(src), type=ethertype)
    tags = b"".join(VLAN_TAG.pack(tpid=tpid, tci=vid & 0x0FFF) for tpid, vid in vlans)
    frame = head[:ETHERNET.offset("type")] + tags + head[ETHERNET.offset("type"):] + payload
    return frame + b"\0" * max(0, ETH_MIN_FRAME - len(frame))


def ipv4(src: str, dst: str, proto: int, payload: bytes, ttl: int = 64, checksum: bool = True) -> bytes:
    """An IPv4 packet (no options, don't-fragment set); ``checksum=False`` leaves the header checksum 0."""
    fields = dict(total_length=IPV4.size + len(payload), ttl=ttl, proto=proto, src=ip_bytes(src), dst=ip_bytes(dst))
    hdr = IPV4.pack(**fields)
    if checksum:
        hdr = IPV4.pack(**fields, checksum=inet_checksum(hdr))
    return hdr + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    """A UDP datagram with checksum 0 (none, allowed over IPv4)."""
    return UDP.pack(sport=sport, dport=dport, length=UDP.size + len(payload)) + payload


def icmp_echo(ident: int, seq: int, payload: bytes) -> bytes:
    """An ICMP echo request."""
    fields = dict(ident=ident, seq=seq)
    body = ICMP_ECHO.pack(**fields) + payload
    return ICMP_ECHO.pack(**fields, checksum=inet_checksum(body)) + payload


def arp(op: int, sha: str, spa: str, tha: str, tpa: str) -> bytes:
    """An Ethernet/IPv4 ARP body (``op`` 1 request, 2 reply)."""
    return ARP.pack(op=op, sha=mac_bytes(sha), spa=ip_bytes(spa), tha=mac_bytes(tha), tpa=ip_bytes(tpa))


# ---------------------------------------------------------------------------------------------
# parsing
@dataclass(frozen=True)
class EthernetHeader:
    """An Ethernet header as read: MACs, outer-first (TPID, VID) tags, ethertype, where the payload starts."""

    dst: str
    src: str
    vlans: tuple[tuple[int, int], ...]
    type: int
    payload_offset: int


def parse_ether(frame: bytes, max_tags: int = 2) -> EthernetHeader | None:
    """The Ethernet header of ``frame`` stepping over up to ``max_tags`` VLAN tags, or None if too short."""
    if len(frame) < ETHERNET.size:
        return None
    eth = ETHERNET.unpack(frame)
    at, etype, vlans = ETHERNET.offset("type"), eth["type"], []
    while etype in VLAN_TPIDS and len(vlans) < max_tags and len(frame) >= at + VLAN_TAG.size + 2:
        tag = VLAN_TAG.unpack(frame, at)
        vlans.append((tag["tpid"], tag["tci"] & 0x0FFF))
        at += VLAN_TAG.size
        (etype,) = struct.unpack_from("!H", frame, at)
    return EthernetHeader(mac_str(eth["dst"]), mac_str(eth["src"]), tuple(vlans), etype, at + 2)


# ---------------------------------------------------------------------------------------------
# LLDP probes (the controller's link check)
_LLDP_END, _LLDP_CHASSIS, _LLDP_PORT, _LLDP_TTL = 0, 1, 2, 3
_LLDP_SUBTYPE_LOCAL = b"\x07"   # chassis / port id subtype "locally assigned"
_LLDP_TTL_S = 120


def _tlv(t: int, value: bytes) -> bytes:
    return LLDP_TLV.pack(type_length=(t << 9) | len(value)) + value


def lldp_frame(dpid: int, port: int) -> bytes:
    """An LLDP probe naming (dpid, port): chassis id 'dpid:%016x', port id the port number."""
    src = "02:dd:%02x:%02x:%02x:%02x" % ((dpid >> 8) & 0xFF, dpid & 0xFF, (port >> 8) & 0xFF, port & 0xFF)
    body = (_tlv(_LLDP_CHASSIS, _LLDP_SUBTYPE_LOCAL + f"dpid:{dpid:016x}".encode())
            + _tlv(_LLDP_PORT, _LLDP_SUBTYPE_LOCAL + str(port).encode())
            + _tlv(_LLDP_TTL, struct.pack("!H", _LLDP_TTL_S))
            + _tlv(_LLDP_END, b""))
    return ETHERNET.pack(dst=mac_bytes(LLDP_MULTICAST), src=mac_bytes(src), type=ETH_TYPE_LLDP) + body


def parse_lldp(frame: bytes) -> tuple[int, int] | None:
    """(dpid, port) from one of our (untagged) LLDP probes, or None for anything else."""
    if len(frame) < ETHERNET.size or ETHERNET.unpack(frame)["type"] != ETH_TYPE_LLDP:
        return None
    i, dpid, port = ETHERNET.size, None, None
    while i + LLDP_TLV.size <= len(frame):
        hdr = LLDP_TLV.unpack(frame, i)["type_length"]
        t, n = hdr >> 9, hdr & 0x1FF
        v = frame[i + LLDP_TLV.size:i + LLDP_TLV.size + n]
        if t == _LLDP_END:
            break
        try:
            if t == _LLDP_CHASSIS and v[:1] == _LLDP_SUBTYPE_LOCAL and v[1:].startswith(b"dpid:"):
                dpid = int(v[6:].decode(), 16)
            elif t == _LLDP_PORT and v[:1] == _LLDP_SUBTYPE_LOCAL:
                port = int(v[1:].decode())
        except ValueError:
            return None
        i += LLDP_TLV.size + n
    if dpid is None or port is None:
        return None
    return dpid, port


# ---------------------------------------------------------------------------------------------
# ARP (the controller answers requests for hosts of the asker's tenant)
@dataclass(frozen=True)
class Arp:
    """An ARP message as read: op (1 request, 2 reply), sender/target MAC and IPv4, Ethernet source."""

    op: int
    sha: str
    spa: str
    tha: str
    tpa: str
    eth_src: str


def parse_arp(frame: bytes) -> Arp | None:
    """An untagged Ethernet/IPv4 ARP frame, or None."""
    if len(frame) < ETHERNET.size + ARP.size:
        return None
    eth = ETHERNET.unpack(frame)
    if eth["type"] != ETH_TYPE_ARP:
        return None
    a = ARP.unpack(frame, ETHERNET.size)
    if (a["htype"], a["ptype"], a["hlen"], a["plen"]) != (1, ETH_TYPE_IPV4, 6, 4):
        return None
    return Arp(a["op"], mac_str(a["sha"]), str(ipaddress.IPv4Address(a["spa"])), mac_str(a["tha"]),
               str(ipaddress.IPv4Address(a["tpa"])), mac_str(eth["src"]))


def arp_reply(req: Arp, mac: str) -> bytes:
    """The reply to ARP request ``req`` saying ``req.tpa`` is at ``mac``."""
    return ether(req.sha, mac, ETH_TYPE_ARP, arp(2, mac, req.tpa, req.sha, req.spa))
