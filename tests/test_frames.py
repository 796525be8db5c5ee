"""Frame layouts (controller.dataplane.frames) and the frames built from them on the wire.

Two kinds of check: the bytes the controller and the probes send are pinned (LLDP probes, ARP
replies, isolation-audit probes, broadcast-storm frames), and scapy is the independent oracle
(frames built here parse in scapy with the fields set; scapy-built frames parse here).
"""

import numpy as np
import pytest
from scapy.all import ARP, ICMP, IP, UDP, Dot1AD, Dot1Q, Ether, Raw
from scapy.contrib.lldp import LLDPDUChassisID, LLDPDUEndOfLLDPDU, LLDPDUPortID, LLDPDUTimeToLive

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


# ---------------------------------------------------------------------------------------------
# scapy as the oracle: what frames.py builds, scapy reads with the fields set


def test_udp_over_ipv4_in_two_tags_parses_in_scapy():
    payload = b"hello probe"
    f = frames.ether("02:00:00:00:00:02", "02:00:00:00:00:01", frames.ETH_TYPE_IPV4,
                     frames.ipv4("10.0.1.1", "10.0.2.2", frames.IP_PROTO_UDP, frames.udp(1234, 47000, payload), ttl=9),
                     vlans=[(frames.ETH_TYPE_QINQ, 7), (frames.ETH_TYPE_VLAN, 3)])
    pkt = Ether(f)
    assert (pkt.dst, pkt.src, pkt.type) == ("02:00:00:00:00:02", "02:00:00:00:00:01", 0x88A8)
    assert pkt[Dot1AD].vlan == 7 and pkt[Dot1AD].type == 0x8100
    assert pkt[Dot1Q].vlan == 3 and pkt[Dot1Q].type == 0x0800
    i = pkt[IP]
    assert (i.version, i.ihl, i.ttl, i.proto, i.flags, i.src, i.dst) == (4, 5, 9, 17, 2, "10.0.1.1", "10.0.2.2")
    assert i.len == 20 + 8 + len(payload)
    fresh = i.copy()
    del fresh.chksum
    assert i.chksum == IP(bytes(fresh)).chksum != 0
    assert (pkt[UDP].sport, pkt[UDP].dport, pkt[UDP].len, pkt[UDP].chksum) == (1234, 47000, 8 + len(payload), 0)
    assert bytes(pkt[UDP].payload) == payload


def test_ipv4_checksum_matches_scapys_and_can_be_left_zero():
    body = frames.udp(1, 2, b"x" * 5)
    with_sum = frames.ipv4("192.0.2.1", "198.51.100.7", frames.IP_PROTO_UDP, body, ttl=3)
    fresh = IP(with_sum)
    del fresh.chksum
    assert IP(with_sum).chksum == IP(bytes(fresh)).chksum != 0
    assert IP(frames.ipv4("192.0.2.1", "198.51.100.7", 17, body, checksum=False)).chksum == 0


def test_icmp_echo_parses_in_scapy_with_a_valid_checksum():
    pkt = IP(frames.ipv4("10.0.0.1", "10.0.0.2", frames.IP_PROTO_ICMP, frames.icmp_echo(0x150, 3, b"abc")))
    icmp = pkt[ICMP]
    assert (icmp.type, icmp.code, icmp.id, icmp.seq, bytes(icmp.payload)) == (8, 0, 0x150, 3, b"abc")
    fresh = ICMP(type=8, id=0x150, seq=3) / Raw(b"abc")
    assert icmp.chksum == ICMP(bytes(fresh)).chksum


def test_arp_parses_in_scapy():
    f = frames.ether(frames.BROADCAST, "02:00:00:00:00:01", frames.ETH_TYPE_ARP,
                     frames.arp(1, "02:00:00:00:00:01", "10.0.1.1", "00:00:00:00:00:00", "10.0.1.2"))
    assert len(f) == frames.ETH_MIN_FRAME
    a = Ether(f)[ARP]
    assert (a.hwtype, a.ptype, a.hwlen, a.plen, a.op) == (1, 0x0800, 6, 4, 1)
    assert (a.hwsrc, a.psrc, a.hwdst, a.pdst) == ("02:00:00:00:00:01", "10.0.1.1", "00:00:00:00:00:00", "10.0.1.2")


def test_lldp_probe_parses_in_scapy():
    pkt = Ether(frames.lldp_frame(0x1234, 7))
    assert (pkt.dst, pkt.type) == (frames.LLDP_MULTICAST, frames.ETH_TYPE_LLDP)
    assert (pkt[LLDPDUChassisID].subtype, pkt[LLDPDUChassisID].id) == (7, b"dpid:0000000000001234")
    assert (pkt[LLDPDUPortID].subtype, pkt[LLDPDUPortID].id) == (7, b"7")
    assert pkt[LLDPDUTimeToLive].ttl == 120
    assert pkt.haslayer(LLDPDUEndOfLLDPDU)


def test_arp_reply_parses_in_scapy():
    req = frames.Arp(1, "02:00:00:01:01:00", "10.0.1.1", "00:00:00:00:00:00", "10.0.1.2", "02:00:00:01:01:00")
    pkt = Ether(frames.arp_reply(req, "02:00:00:01:02:00"))
    assert (pkt.dst, pkt.src) == ("02:00:00:01:01:00", "02:00:00:01:02:00")
    assert (pkt[ARP].op, pkt[ARP].hwsrc, pkt[ARP].psrc, pkt[ARP].hwdst, pkt[ARP].pdst) == (
        2, "02:00:00:01:02:00", "10.0.1.2", "02:00:00:01:01:00", "10.0.1.1")


# ---------------------------------------------------------------------------------------------
# ... and what scapy builds, frames.py reads


def test_scapy_lldp_parses_here():
    pkt = (Ether(dst=frames.LLDP_MULTICAST, src="02:00:00:00:00:01")
           / LLDPDUChassisID(subtype=7, id=b"dpid:%016x" % 0x99) / LLDPDUPortID(subtype=7, id=b"12")
           / LLDPDUTimeToLive(ttl=120) / LLDPDUEndOfLLDPDU())
    assert frames.parse_lldp(bytes(pkt)) == (0x99, 12)
    other = (Ether(dst=frames.LLDP_MULTICAST) / LLDPDUChassisID(subtype=4, id=b"\x02\x00\x00\x00\x00\x01")
             / LLDPDUPortID(subtype=7, id=b"12") / LLDPDUTimeToLive(ttl=120) / LLDPDUEndOfLLDPDU())
    assert frames.parse_lldp(bytes(other)) is None   # not one of our probes (chassis id is a MAC)


def test_scapy_arp_parses_here_and_tagged_or_short_frames_do_not():
    pkt = Ether(src="02:00:00:00:00:09", dst=frames.BROADCAST) / ARP(op=1, hwsrc="02:00:00:00:00:01",
                                                                      psrc="10.0.1.1", pdst="10.0.1.2")
    assert frames.parse_arp(bytes(pkt)) == frames.Arp(1, "02:00:00:00:00:01", "10.0.1.1", "00:00:00:00:00:00",
                                                      "10.0.1.2", "02:00:00:00:00:09")
    tagged = Ether(dst=frames.BROADCAST) / Dot1Q(vlan=5) / ARP(op=1, psrc="10.0.1.1", pdst="10.0.1.2")
    assert frames.parse_arp(bytes(tagged)) is None
    assert frames.parse_arp(bytes(pkt)[:41]) is None
    assert frames.parse_arp(bytes(Ether() / IP() / UDP())) is None


def test_scapy_headers_parse_here():
    pkt = (Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01") / Dot1AD(vlan=9) / Dot1Q(vlan=3, prio=5)
           / IP(src="10.0.1.1", dst="10.0.2.2", ttl=17, id=77) / UDP(sport=5, dport=6) / Raw(b"data"))
    raw = bytes(pkt)
    eth = frames.parse_ether(raw)
    assert eth == frames.EthernetHeader("02:00:00:00:00:02", "02:00:00:00:00:01",
                                        ((0x88A8, 9), (0x8100, 3)), 0x0800, 22)
    ip4 = frames.IPV4.unpack(raw, eth.payload_offset)
    assert (ip4["ttl"], ip4["ident"], ip4["proto"], ip4["total_length"]) == (17, 77, 17, 20 + 8 + 4)
    assert (frames.mac_str(raw[6:12]), ip4["src"], ip4["dst"]) == ("02:00:00:00:00:01", bytes([10, 0, 1, 1]),
                                                                    bytes([10, 0, 2, 2]))
    assert ip4["checksum"] == Ether(raw)[IP].chksum
    u = frames.UDP.unpack(raw, eth.payload_offset + frames.IPV4.size)
    assert (u["sport"], u["dport"], u["length"]) == (5, 6, 12)
    assert frames.parse_ether(bytes(Ether(type=0x0806) / ARP())).payload_offset == frames.ETHERNET.size
    assert frames.parse_ether(raw[:13]) is None


# ---------------------------------------------------------------------------------------------
# the Layout table itself


def test_layout_offsets_sizes_and_defaults():
    assert (frames.ETHERNET.size, frames.VLAN_TAG.size, frames.ARP.size, frames.IPV4.size, frames.UDP.size,
            frames.ICMP_ECHO.size) == (14, 4, 28, 20, 8, 8)
    assert frames.ETHERNET.offset("type") == 12 and frames.ETHERNET.width("src") == 6
    assert (frames.IPV4.offset("proto"), frames.IPV4.offset("src"), frames.ARP.offset("spa")) == (9, 12, 14)
    assert frames.IPV4.unpack(frames.IPV4.pack())["version_ihl"] == 0x45
    with pytest.raises(TypeError):
        frames.UDP.pack(nope=1)
    with pytest.raises(ValueError):
        frames.Layout("bad", [("a", "H")], b=1)


def test_layout_numpy_dtype_reads_what_pack_wrote():
    data = frames.IPV4.pack(total_length=1500, ttl=3, proto=17, src=bytes([1, 2, 3, 4])) * 2
    rec = np.frombuffer(data, dtype=frames.IPV4.numpy_dtype())
    assert rec["total_length"].tolist() == [1500, 1500] and rec["ttl"].tolist() == [3, 3]
    assert rec["src"][0] == bytes([1, 2, 3, 4])
    # a view at an offset inside longer records, as the synthetic pcap writer patches frames
    buf = np.zeros((3, 30), dtype=np.uint8)
    view = buf.view(frames.UDP.numpy_dtype(("dport", "length"), base=5, itemsize=30)).reshape(3)
    view["dport"], view["length"] = [7, 8, 9], 12
    assert [frames.UDP.unpack(bytes(row), 5)["dport"] for row in buf] == [7, 8, 9]
    assert buf[:, 5 + frames.UDP.offset("length") + 1].tolist() == [12, 12, 12]
