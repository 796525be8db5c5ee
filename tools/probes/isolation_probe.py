"""Cross-tenant probe frames for the isolation audit, and a sender that works inside host namespaces.

Frames are built by hand (``struct``, no scapy: building thousands of frames with scapy in 256
host processes would take minutes of CPU on this machine). Every frame carries the SENDER's true
source MAC (the tenant attribution of ``tools.probes.analyzer.count_leaks`` relies on it); what they
forge is everything else: foreign destination MACs and IPs, foreign VLAN tags, ARP claims for a
foreign IP, broadcast and multicast.

``send_frames(pid, iface, frames)`` opens an ``AF_PACKET`` raw socket inside the network namespace
of process ``pid`` (a Mininet host shell) with ``setns`` in a short-lived thread, so one Python
process can speak from every host without spawning one interpreter per host.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import threading
from dataclasses import dataclass
from typing import Iterable

BROADCAST = "ff:ff:ff:ff:ff:ff"
ALL_HOSTS_MCAST_MAC = "01:00:5e:00:00:01"
ETH_IPV4, ETH_ARP, ETH_VLAN, ETH_QINQ = 0x0800, 0x0806, 0x8100, 0x88A8
#: UDP destination port of audit probes; payload starts with MAGIC
AUDIT_PORT = 47999
MAGIC = b"DNISO1"
CLONE_NEWNET = 0x40000000

#: the kinds of probe, in the order the report lists them
KINDS = ("arp_request", "udp_unicast", "icmp_unicast", "vlan_spoof_udp", "vlan_spoof_arp", "qinq_spoof",
         "arp_spoof_reply", "gratuitous_arp", "broadcast_udp", "subnet_broadcast_udp", "multicast_udp")


def mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def ip_bytes(ip: str) -> bytes:
    return socket.inet_aton(ip)


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src: str, dst: str, proto: int, payload: bytes, ttl: int = 64) -> bytes:
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, ttl, proto, 0,
                      ip_bytes(src), ip_bytes(dst))
    return hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:] + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload   # checksum 0: none (IPv4)


def icmp_echo(ident: int, seq: int, payload: bytes) -> bytes:
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload
    return body[:2] + struct.pack("!H", _csum(body)) + body[4:]


def arp(op: int, sha: str, spa: str, tha: str, tpa: str) -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", 1, ETH_IPV4, 6, 4, op, mac_bytes(sha), ip_bytes(spa),
                       mac_bytes(tha), ip_bytes(tpa))


def ether(dst: str, src: str, ethertype: int, payload: bytes, vlans: Iterable[tuple[int, int]] = ()) -> bytes:
    """An Ethernet frame; ``vlans`` = outer-first (TPID, VID) tags. Padded to 60 bytes."""
    tags = b"".join(struct.pack("!HH", tpid, vid & 0x0FFF) for tpid, vid in vlans)
    frame = mac_bytes(dst) + mac_bytes(src) + tags + struct.pack("!H", ethertype) + payload
    return frame + b"\0" * max(0, 60 - len(frame))


def audit_payload(kind: str, src_tenant: int, dst_tenant: int) -> bytes:
    return MAGIC + struct.pack("!HH", src_tenant, dst_tenant) + kind.encode()[:24].ljust(24, b"\0")


@dataclass(frozen=True)
class Endpoint:
    """What a probe needs to know of a host."""

    name: str
    tenant: int
    mac: str
    ip: str
    prefix_len: int = 24

    @property
    def subnet_broadcast(self) -> str:
        n = int.from_bytes(ip_bytes(self.ip), "big") | ((1 << (32 - self.prefix_len)) - 1)
        return socket.inet_ntoa(n.to_bytes(4, "big"))


def targeted_frames(me: Endpoint, foreign: Endpoint) -> list[tuple[str, bytes]]:
    """(kind, frame) aimed at one foreign host: ARP, unicast IPv4, spoofed VLAN / QinQ, ARP spoof."""
    p = lambda kind: audit_payload(kind, me.tenant, foreign.tenant)  # noqa: E731
    u = lambda kind: ipv4(me.ip, foreign.ip, 17, udp(AUDIT_PORT, AUDIT_PORT, p(kind)))  # noqa: E731
    return [
        ("arp_request", ether(BROADCAST, me.mac, ETH_ARP, arp(1, me.mac, me.ip, "00:00:00:00:00:00", foreign.ip))),
        ("udp_unicast", ether(foreign.mac, me.mac, ETH_IPV4, u("udp_unicast"))),
        ("icmp_unicast", ether(foreign.mac, me.mac, ETH_IPV4,
                               ipv4(me.ip, foreign.ip, 1, icmp_echo(0x150, me.tenant, p("icmp_unicast"))))),
        ("vlan_spoof_udp", ether(foreign.mac, me.mac, ETH_IPV4, u("vlan_spoof_udp"),
                                 vlans=[(ETH_VLAN, foreign.tenant)])),
        ("vlan_spoof_arp", ether(BROADCAST, me.mac, ETH_ARP,
                                 arp(1, me.mac, me.ip, "00:00:00:00:00:00", foreign.ip),
                                 vlans=[(ETH_VLAN, foreign.tenant)])),
        ("qinq_spoof", ether(foreign.mac, me.mac, ETH_IPV4, u("qinq_spoof"),
                             vlans=[(ETH_QINQ, foreign.tenant), (ETH_VLAN, foreign.tenant)])),
        # "foreign.ip is at MY mac", to the foreign host and to everyone
        ("arp_spoof_reply", ether(foreign.mac, me.mac, ETH_ARP, arp(2, me.mac, foreign.ip, foreign.mac, foreign.ip))),
        ("gratuitous_arp", ether(BROADCAST, me.mac, ETH_ARP, arp(2, me.mac, foreign.ip, BROADCAST, foreign.ip))),
    ]


def broadcast_frames(me: Endpoint) -> list[tuple[str, bytes]]:
    """(kind, frame) that would reach every port of a flat L2: broadcast, subnet broadcast, multicast."""
    p = lambda kind: audit_payload(kind, me.tenant, 0)  # noqa: E731
    return [
        ("broadcast_udp", ether(BROADCAST, me.mac, ETH_IPV4,
                                ipv4(me.ip, "255.255.255.255", 17, udp(AUDIT_PORT, AUDIT_PORT, p("broadcast_udp"))))),
        ("subnet_broadcast_udp", ether(BROADCAST, me.mac, ETH_IPV4,
                                       ipv4(me.ip, me.subnet_broadcast, 17,
                                            udp(AUDIT_PORT, AUDIT_PORT, p("subnet_broadcast_udp"))))),
        ("multicast_udp", ether(ALL_HOSTS_MCAST_MAC, me.mac, ETH_IPV4,
                                ipv4(me.ip, "224.0.0.1", 17, udp(AUDIT_PORT, AUDIT_PORT, p("multicast_udp")), ttl=1))),
    ]


# ----- sending inside a network namespace ------------------------------------------------------

_libc = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def netns_socket(pid: int, iface: str) -> socket.socket:
    """An AF_PACKET raw socket bound to ``iface`` in the network namespace of ``pid``.

    ``setns`` changes only the calling thread's namespace, so it runs in a throw-away thread; the
    socket stays in the namespace it was created in.
    """
    out: dict[str, object] = {}

    def work() -> None:
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
            try:
                _setns(fd)
            finally:
                os.close(fd)
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
            s.bind((iface, 0))
            out["sock"] = s
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            out["error"] = e

    t = threading.Thread(target=work, name=f"netns-{pid}")
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out["sock"]  # type: ignore[return-value]


def send_frames(sock: socket.socket, frames: Iterable[bytes], repeat: int = 1) -> int:
    """Send every frame ``repeat`` times; returns the number of frames sent."""
    n = 0
    for _ in range(repeat):
        for f in frames:
            sock.send(f)
            n += 1
    return n
