"""Frame layouts (controller.dataplane.frames) and the frames built from them on the wire.

Two kinds of check: the bytes the controller and the probes send are pinned (LLDP probes, ARP
replies, isolation-audit probes, broadcast-storm frames), and scapy is the independent oracle
(frames built here parse in scapy with the fields set; scapy-built frames parse here).
"""

import pytest

from controller.dataplane import frames
from tools.probes import isolation_probe as ip

# ---------------------------------------------------------------------------------------------
# pinned bytes (captured before the layouts were declared once; must never change)

LLDP = {
    (1, 1): "0180c200000e02dd0001000188cc021607647069643a3030303030303030303030303030303104020731060200780000",
    (0x1234, 7): "0180c200000e02dd1234000788cc021607647069643a30303030303030303030303031323334040207370602"
                 "00780000",
    (2**64 - 1, 65535): "0180c200000e02ddffffffff88cc021607647069643a6666666666666666666666666666666604060736"
                        "35353335060200780000",
    (0xABCDEF, 300): "0180c200000e02ddcdef012c88cc021607647069643a303030303030303030306162636465660404073330"
                     "30060200780000",
}

ARP_REPLY = ("020000010100020000010200080600010800060400020200000102000a0001020200000101000a000101"
             "000000000000000000000000000000000000")

ME = ip.Endpoint("h1", 1, "02:00:00:01:01:00", "10.0.1.1")
FOREIGN = ip.Endpoint("h2", 2, "02:00:00:02:01:00", "10.0.2.1", 16)

TARGETED = [
    ("arp_request", "ffffffffffff020000010100080600010800060400010200000101000a0001010000000000000a000201"
                    "000000000000000000000000000000000000"),
    ("udp_unicast", "02000002010002000001010008004500003e00004000401123ae0a0001010a000201bb7fbb7f002a0000"
                    "444e49534f31000100027564705f756e696361737400000000000000000000000000"),
    ("icmp_unicast", "02000002010002000001010008004500003e00004000400123be0a0001010a00020108009e5001500001"
                     "444e49534f310001000269636d705f756e6963617374000000000000000000000000"),
    ("vlan_spoof_udp", "0200000201000200000101008100000208004500003e00004000401123ae0a0001010a000201bb7fbb7f"
                       "002a0000444e49534f3100010002766c616e5f73706f6f665f75647000000000000000000000"),
    ("vlan_spoof_arp", "ffffffffffff02000001010081000002080600010800060400010200000101000a0001010000000000"
                       "000a0002010000000000000000000000000000"),
    ("qinq_spoof", "02000002010002000001010088a800028100000208004500003e00004000401123ae0a0001010a000201"
                   "bb7fbb7f002a0000444e49534f310001000271696e715f73706f6f660000000000000000000000000000"),
    ("arp_spoof_reply", "020000020100020000010100080600010800060400020200000101000a0002010200000201000a000201"
                        "000000000000000000000000000000000000"),
    ("gratuitous_arp", "ffffffffffff020000010100080600010800060400020200000101000a000201ffffffffffff0a000201"
                       "000000000000000000000000000000000000"),
]
BROADCAST_ME = [
    ("broadcast_udp", "ffffffffffff02000001010008004500003e0000400040112faf0a000101ffffffffbb7fbb7f002a0000"
                      "444e49534f310001000062726f6164636173745f7564700000000000000000000000"),
    ("subnet_broadcast_udp", "ffffffffffff02000001010008004500003e00004000401123b00a0001010a0001ffbb7fbb7f002a0000"
                             "444e49534f31000100007375626e65745f62726f6164636173745f75647000000000"),
    ("multicast_udp", "01005e00000102000001010008004500003e0000400001118ead0a000101e0000001bb7fbb7f002a0000"
                      "444e49534f31000100006d756c7469636173745f7564700000000000000000000000"),
]
BROADCAST_FOREIGN = [
    ("broadcast_udp", "ffffffffffff02000002010008004500003e0000400040112eaf0a000201ffffffffbb7fbb7f002a0000"
                      "444e49534f310002000062726f6164636173745f7564700000000000000000000000"),
    ("subnet_broadcast_udp", "ffffffffffff02000002010008004500003e00004000401124af0a0002010a00ffffbb7fbb7f002a0000"
                             "444e49534f31000200007375626e65745f62726f6164636173745f75647000000000"),
    ("multicast_udp", "01005e00000102000002010008004500003e0000400001118dad0a000201e0000001bb7fbb7f002a0000"
                      "444e49534f31000200006d756c7469636173745f7564700000000000000000000000"),
]


@pytest.mark.parametrize("dpid, port", sorted(LLDP))
def test_lldp_probe_bytes_are_pinned(dpid, port):
    frame = frames.lldp_frame(dpid, port)
    assert frame.hex() == LLDP[(dpid, port)]
    assert frames.parse_lldp(frame) == (dpid, port)


def test_arp_reply_bytes_are_pinned():
    req = frames.Arp(1, "02:00:00:01:01:00", "10.0.1.1", "00:00:00:00:00:00", "10.0.1.2", "02:00:00:01:01:00")
    reply = frames.arp_reply(req, "02:00:00:01:02:00")
    assert reply.hex() == ARP_REPLY
    assert frames.parse_arp(reply) == frames.Arp(2, "02:00:00:01:02:00", "10.0.1.2", "02:00:00:01:01:00",
                                                 "10.0.1.1", "02:00:00:01:02:00")


def test_isolation_probe_bytes_are_pinned():
    assert [(k, f.hex()) for k, f in ip.targeted_frames(ME, FOREIGN)] == TARGETED
    assert [(k, f.hex()) for k, f in ip.broadcast_frames(ME)] == BROADCAST_ME
    assert [(k, f.hex()) for k, f in ip.broadcast_frames(FOREIGN)] == BROADCAST_FOREIGN
    assert [k for k, _ in TARGETED + BROADCAST_ME] == list(ip.KINDS)


def test_storm_frames_of_the_tenant_security_test_are_pinned():
    # the frames tests/test_tenant_security_emulation.py's storm sender builds
    udp = frames.ether(frames.BROADCAST, ME.mac, frames.ETH_TYPE_IPV4,
                       frames.ipv4(ME.ip, "255.255.255.255", 17, frames.udp(40000, 40000, b"S" * 1000)))
    assert udp[:42].hex() == "ffffffffffff0200000101000800450004040000400040112be90a000101ffffffff9c409c4003f00000"
    assert udp[42:] == b"S" * 1000
    arp = frames.ether(frames.BROADCAST, ME.mac, frames.ETH_TYPE_ARP,
                       frames.arp(1, ME.mac, ME.ip, "00:00:00:00:00:00", "10.0.1.9"))
    assert arp.hex() == ("ffffffffffff020000010100080600010800060400010200000101000a0001010000000000000a000109"
                         "000000000000000000000000000000000000")
