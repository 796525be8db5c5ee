"""Unit tests of tools.emulation.droplog's parsers, on text the tools print (ss, ovs-vsctl,
ovs-ofctl, ovs-appctl, tc, /proc/net/softnet_stat)."""

from __future__ import annotations

import json

from tools.emulation import droplog
from tools.runs.demo import drop_sites

SS = """Netid State  Recv-Q Send-Q Local Address:Port Peer Address:PortProcess
p_raw UNCONN 0      0                [0]:*                *     users:(("ovs-vswitchd",pid=15615,fd=69)) skmem:(r0,rb212992,t0,tb212992,f0,w0,o0,bl0,d0)
p_raw UNCONN 0      0                [0]:s1-eth2          *     users:(("ovs-vswitchd",pid=15615,fd=44))
\t skmem:(r0,rb212992,t0,tb212992,f0,w0,o0,bl0,d940)
p_raw UNCONN 0      0                [0]:*                *
\t skmem:(r0,rb212992,t0,tb212992,f0,w0,o0,bl0,d7)
"""

DPCTL = """netdev@ovs-netdev:
  lookups: hit:100 missed:7 lost:2
  flows: 5
  port 0: ovs-netdev (tap)
    RX packets:0 errors:0 dropped:0 overruns:0 frame:0
    TX packets:0 errors:0 dropped:0 aborted:0 carrier:0
    collisions:0
    RX bytes:0  TX bytes:0
  port 1: s1-eth1
    RX packets:2900 errors:0 dropped:3 overruns:0 frame:0
    TX packets:2800 errors:1 dropped:94 aborted:0 carrier:0
    collisions:0
    RX bytes:4350000 (4.1 MiB)  TX bytes:4200000 (4.0 MiB)
"""

METERS = """OFPST_METER reply (OF1.3) (xid=0x2):
meter:1 flow_count:4 packet_in_count:1200 byte_in_count:1800000 duration:12.3s bands:
0: packet_count:2321 byte_count:3481500

meter:32772 flow_count:1 packet_in_count:34000 byte_in_count:1428000 duration:12.3s bands:
0: packet_count:33437 byte_count:1404354
"""

COVERAGE = """Event coverage, avg rate over last: 5 seconds, last minute, last hour,  hash=330bb74b:
bridge_reconfigure         0.0/sec     1.233/sec        0.0206/sec   total: 80
datapath_drop_meter      12936.2/sec  4660.683/sec      222.9853/sec   total: 831084
datapath_drop_userspace_action_error 300.4/sec   116.633/sec      146.9233/sec   total: 529589
netdev_sent               10.0/sec     1.0/sec        0.1/sec   total: 999
"""

TC = json.dumps([{"kind": "htb", "handle": "1:", "dev": "s1-eth1", "drops": 5},
                 {"kind": "netem", "handle": "10:", "dev": "s1-eth1", "drops": 0},
                 {"kind": "noqueue", "handle": "0:", "dev": "lo", "drops": 0}])

# ``ip -s -j link show type veth`` (trimmed to the fields read)
LINKS = json.dumps([{"ifname": "s1-eth1", "stats64": {"rx": {"packets": 10, "dropped": 0},
                                                      "tx": {"packets": 12, "dropped": 7}}},
                    {"ifname": "s1-eth2", "stats64": {"rx": {"packets": 3, "dropped": 2}, "tx": {"packets": 3}}}])

SOFTNET = "00e8b05f 00000000 00000283 00000000\n010f0a35 0000001a 000002a4 00000000\n"


def test_packet_sockets_read_one_line_and_two_line_forms_by_owner():
    got = droplog.parse_packet_sockets(SS, "socket")
    assert got == {"socket:ovs-vswitchd:pid15615:fd69": 0, "socket:ovs-vswitchd:pid15615:fd44": 940}


def test_dpctl_ports_drop_and_error_counters_and_lost_upcalls():
    got = droplog.parse_dpctl(DPCTL)
    assert got["ovs:netdev@ovs-netdev:lost"] == 2
    assert got["ovs:s1-eth1:rx_dropped"] == 3 and got["ovs:s1-eth1:tx_dropped"] == 94
    assert got["ovs:s1-eth1:tx_errors"] == 1 and got["ovs:ovs-netdev:rx_dropped"] == 0
    assert droplog.parse_dpctl("") == {}


def test_meters_coverage_qdiscs_links_and_softnet():
    assert droplog.parse_meter_stats(METERS, "s1") == {"meter:s1:1": 2321, "meter:s1:32772": 33437}
    assert droplog.parse_coverage(COVERAGE) == {"coverage:datapath_drop_meter": 831084,
                                                "coverage:datapath_drop_userspace_action_error": 529589}
    assert droplog.parse_qdiscs(TC, "qdisc", ["s1-eth1"]) == {"qdisc:s1-eth1:htb:1:": 5, "qdisc:s1-eth1:netem:10:": 0}
    assert len(droplog.parse_qdiscs(TC, "qdisc")) == 3
    assert droplog.parse_links(LINKS, "link") == {"link:s1-eth1:rx": 0, "link:s1-eth1:tx": 7,
                                                  "link:s1-eth2:rx": 2, "link:s1-eth2:tx": 0}
    assert droplog.parse_links("", "link") == {}
    assert droplog.parse_softnet(SOFTNET) == {"softnet:cpu0:dropped": 0, "softnet:cpu1:dropped": 26}


def test_grown_keeps_what_rose_and_counts_new_counters_from_zero():
    before = {"a": 5, "b": 7, "gone": 1}
    after = {"a": 5, "b": 9, "new": 3}
    assert droplog.grown(before, after) == {"b": 2, "new": 3}


def test_drop_sites_line():
    assert drop_sites(None) == "drop counters not read"
    assert "no drop counter" in drop_sites({})
    assert drop_sites({"socket:ovs-vswitchd:pid1:fd44": 940}) == \
        "drop counters that rose meanwhile: socket:ovs-vswitchd:pid1:fd44 +940"
