"""Cross-tenant probe frames for the isolation audit, and a sender that works inside host namespaces.

The frames are put together from the layouts of ``controller.dataplane.frames`` (struct, no scapy:
building thousands of frames with scapy in 256 host processes would take minutes of CPU on this
machine). Every frame carries the SENDER's true source MAC (the tenant attribution of
``tools.probes.analyzer.count_leaks`` relies on it); what they forge is everything else: foreign
destination MACs and IPs, foreign VLAN tags, ARP claims for a foreign IP, broadcast and multicast.

``send_frames(pid, iface, frames)`` opens an ``AF_PACKET`` raw socket inside the network namespace
of process ``pid`` (a Mininet host shell) with ``setns`` in a short-lived thread, so one Python
process can speak from every host without spawning one interpreter per host.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import socket
import struct
import threading
from dataclasses import dataclass
from typing import Iterable

from controller.dataplane.frames import (BROADCAST, ETH_TYPE_ARP, ETH_TYPE_IPV4, ETH_TYPE_QINQ, ETH_TYPE_VLAN,
                                         IP_PROTO_ICMP, IP_PROTO_UDP, arp, ether, icmp_echo, ipv4, udp)

ALL_HOSTS_MCAST_MAC = "01:00:5e:00:00:01"
NO_MAC = "00:00:00:00:00:00"
#: UDP destination port of audit probes; payload starts with MAGIC
AUDIT_PORT = 47999
MAGIC = b"DNISO1"
#: ICMP echo identifier of audit probes (the sequence number carries the sender's tenant)
ICMP_IDENT = 0x150
CLONE_NEWNET = 0x40000000

#: the kinds of probe, in the order the report lists them
KINDS = ("arp_request", "udp_unicast", "icmp_unicast", "vlan_spoof_udp", "vlan_spoof_arp", "qinq_spoof",
         "arp_spoof_reply", "gratuitous_arp", "broadcast_udp", "subnet_broadcast_udp", "multicast_udp")


def audit_payload(kind: str, src_tenant: int, dst_tenant: int) -> bytes:
    """MAGIC, sender and target tenant, the kind (24 bytes, zero padded): what a leaked frame tells."""
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
        return str(ipaddress.IPv4Network(f"{self.ip}/{self.prefix_len}", strict=False).broadcast_address)


def _audit_udp(src: str, dst: str, payload: bytes, ttl: int = 64) -> bytes:
    return ipv4(src, dst, IP_PROTO_UDP, udp(AUDIT_PORT, AUDIT_PORT, payload), ttl=ttl)


def targeted_frames(me: Endpoint, foreign: Endpoint) -> list[tuple[str, bytes]]:
    """(kind, frame) aimed at one foreign host: ARP, unicast IPv4, spoofed VLAN / QinQ, ARP spoof."""
    def p(kind: str) -> bytes:
        return audit_payload(kind, me.tenant, foreign.tenant)

    def u(kind: str) -> bytes:
        return _audit_udp(me.ip, foreign.ip, p(kind))

    who_has = arp(1, me.mac, me.ip, NO_MAC, foreign.ip)
    return [
        ("arp_request", ether(BROADCAST, me.mac, ETH_TYPE_ARP, who_has)),
        ("udp_unicast", ether(foreign.mac, me.mac, ETH_TYPE_IPV4, u("udp_unicast"))),
        ("icmp_unicast", ether(foreign.mac, me.mac, ETH_TYPE_IPV4,
                               ipv4(me.ip, foreign.ip, IP_PROTO_ICMP,
                                    icmp_echo(ICMP_IDENT, me.tenant, p("icmp_unicast"))))),
        ("vlan_spoof_udp", ether(foreign.mac, me.mac, ETH_TYPE_IPV4, u("vlan_spoof_udp"),
                                 vlans=[(ETH_TYPE_VLAN, foreign.tenant)])),
        ("vlan_spoof_arp", ether(BROADCAST, me.mac, ETH_TYPE_ARP, who_has, vlans=[(ETH_TYPE_VLAN, foreign.tenant)])),
        ("qinq_spoof", ether(foreign.mac, me.mac, ETH_TYPE_IPV4, u("qinq_spoof"),
                             vlans=[(ETH_TYPE_QINQ, foreign.tenant), (ETH_TYPE_VLAN, foreign.tenant)])),
        # "foreign.ip is at MY mac", to the foreign host and to everyone
        ("arp_spoof_reply", ether(foreign.mac, me.mac, ETH_TYPE_ARP,
                                  arp(2, me.mac, foreign.ip, foreign.mac, foreign.ip))),
        ("gratuitous_arp", ether(BROADCAST, me.mac, ETH_TYPE_ARP, arp(2, me.mac, foreign.ip, BROADCAST, foreign.ip))),
    ]


def broadcast_frames(me: Endpoint) -> list[tuple[str, bytes]]:
    """(kind, frame) that would reach every port of a flat L2: broadcast, subnet broadcast, multicast."""
    def p(kind: str) -> bytes:
        return audit_payload(kind, me.tenant, 0)

    return [
        ("broadcast_udp", ether(BROADCAST, me.mac, ETH_TYPE_IPV4,
                                _audit_udp(me.ip, "255.255.255.255", p("broadcast_udp")))),
        ("subnet_broadcast_udp", ether(BROADCAST, me.mac, ETH_TYPE_IPV4,
                                       _audit_udp(me.ip, me.subnet_broadcast, p("subnet_broadcast_udp")))),
        ("multicast_udp", ether(ALL_HOSTS_MCAST_MAC, me.mac, ETH_TYPE_IPV4,
                                _audit_udp(me.ip, "224.0.0.1", p("multicast_udp"), ttl=1))),
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
