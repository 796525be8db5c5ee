"""tools/emulation/network.py, topologies/mininet_topo.py and the static forwarding they install
(controller/dataplane/static.py, written as ovs-ofctl text by controller/dataplane/ofctl_text.py).

Pure parts (static forwarding, tc batch, the lock) run everywhere. Tests marked ``emulation`` start
real Mininet + Open vSwitch (root) under the machine-wide lock and check forwarding, the installed
flows and that tear-down leaves nothing of ours, also when the ``with`` body raises.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import time

import pytest

from controller.dataplane.ofctl_text import flow_line
from controller.dataplane.routing import next_hops
from controller.dataplane.static import STATIC_COOKIE, static_arp, static_flows
from tools.emulation.network import emulation_lock, parse_ping
from topologies.hosts import HostPlan
from topologies.model import Topology

PAIRS = [("Harbin", "Haikou"), ("Haikou", "Harbin"), ("Urumqi", "Shanghai"), ("Shanghai", "Urumqi")]


def ring4() -> Topology:
    t = Topology("ring4")
    for n in "ABCD":
        t.add_node(n)
    for a, b, km in [("A", "B", 100), ("B", "C", 200), ("C", "D", 300), ("D", "A", 400)]:
        t.add_link(a, b, km)
    return t


def fntf40() -> Topology:
    from topologies.loaders import load_topology
    return load_topology("fntf40")


# ----- pure ---------------------------------------------------------------------------------

def _text(spec) -> tuple[int, str, str]:
    """(table, match, actions) of a static entry as ovs-ofctl reads it (the add-flows line)."""
    head, actions = flow_line(spec).split(",actions=")
    cookie, table, prio, *match = head.split(",")
    assert cookie == f"cookie={spec.cookie:#x}" and prio == f"priority={spec.priority}"
    assert table == f"table={spec.table_id}"
    return spec.table_id, ",".join(match), actions


def test_next_hops_follow_a_loop_free_shortest_path_tree():
    topo = fntf40()
    hops = next_hops(topo.graph)
    import networkx as nx
    for dst in topo.nodes:
        for src in topo.nodes:
            if src == dst:
                continue
            path, node = [src], src
            while node != dst:           # hop by hop must arrive, never revisit a node
                node = hops[(node, dst)]
                assert node not in path, (src, dst, path)
                path.append(node)
            best = nx.shortest_path_length(topo.graph, src, dst, weight="propagation_ns")
            assert topo.path_propagation_ns(path) == best


def test_static_flows_isolate_tenants_and_end_in_drops():
    topo = ring4()
    plan = HostPlan.build(topo, [(1, "A"), (1, "C"), (2, "A"), (2, "C")])
    flows = static_flows(plan)
    assert set(flows) == {"s1", "s2", "s3", "s4"}
    for sw, specs in flows.items():
        assert {s.dpid for s in specs} == {plan.dpid(plan.topology.nodes[int(sw[1:]) - 1])}
        drops = [s for s in specs if _text(s)[2] == "drop"]
        assert sorted(s.table_id for s in drops) == [0, 1, 2] and all(s.priority == 0 and not s.match
                                                                   and not s.instructions for s in drops)
        ingress = [s for s in specs if s.table_id == 1 and _text(s)[2] != "drop"]
        for s in ingress:   # ingress entries only reach hosts of the tagged tenant
            tenant = int(re.search(r"metadata=(0x[0-9a-f]+)", _text(s)[1]).group(1), 16)
            mac = re.search(r"dl_dst=([0-9a-f:]+)", _text(s)[1]).group(1)
            assert (tenant, mac) == (s.match["metadata"], s.match["eth_dst"])
            assert next(h for h in plan.hosts if h.mac == mac).tenant == tenant
            assert s.cookie == STATIC_COOKIE | tenant
    a1 = plan.host("t1h1")
    s1 = [_text(s) for s in flows["s1"]]
    # classification: only the host's own source MAC on its port is accepted and tagged
    assert any(t == 0 and m == f"in_port={a1.port},dl_src={a1.mac}" and act.startswith("write_metadata:0x1,")
               for t, m, act in s1)
    # transit towards C from A: A-B-C is 300 km, A-D-C is 700 km, so out the port towards B
    c1 = plan.host("t1h3")
    assert any(t == 2 and m == f"dl_dst={c1.mac}" and act == f"output:{plan.port('A', 'B')}" for t, m, act in s1)
    arp = static_arp(plan)
    assert arp["t1h1"] == [(c1.ip, c1.mac)] and arp["t2h1"] == [(plan.host("t2h3").ip, plan.host("t2h3").mac)]


def test_tc_batch_scales_bandwidth_and_delay():
    from topologies.mininet_topo import link_params, tc_batch
    topo = ring4()
    plan = HostPlan.build(topo, [(1, "A")])
    text = tc_batch(topo, plan, link_scale=1 / 1000, delay=False)
    lines = text.splitlines()
    assert len(lines) == 2 * 2 * len(topo.links())        # qdisc + class per direction
    assert all("netem" not in l for l in lines)
    assert "class replace dev s1-eth1 parent 5: classid 5:1 htb rate 100000kbit" in text   # 100 Gb/s / 1000
    text = tc_batch(topo, plan, link_scale=None, delay=True, delay_scale=0.5)
    # A-B is 100 km = 500 us of propagation, halved
    assert f"qdisc replace dev s1-eth{plan.port('A', 'B')} root handle 10: netem delay 250us" in text
    assert tc_batch(topo, plan, link_scale=None, delay=False) == ""
    assert link_params(100_000_000_000, 500_000, link_scale=1e-3, delay=True) == {"bw": 100.0, "delay": "500us"}
    assert link_params(1_200_000_000_000, 500_000, link_scale=1e-3, delay=False, max_bw_mbps=1000) == {"bw": 1000}


def test_parse_ping():
    out = ("3 packets transmitted, 2 received, 33.3333% packet loss, time 402ms\n"
           "rtt min/avg/max/mdev = 0.101/0.250/0.400/0.1 ms\n")
    r = parse_ping("A", "B", out)
    assert (r.sent, r.received, r.rtt_avg_ms, r.ok) == (3, 2, 0.25, False)
    assert (r.rtt_min_ms, r.rtt_max_ms) == (0.101, 0.4)
    assert parse_ping("A", "B", "connect: Network is unreachable").ok is False


def test_lock_is_reentrant_and_shares_a_callers_flock(tmp_path):
    path = str(tmp_path / "emu.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)             # the caller (a test) holds it with its own fd
    try:
        with emulation_lock(path, quiet=True):
            with emulation_lock(path, quiet=True):
                pass                           # neither level deadlocks
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    with emulation_lock(path, quiet=True):     # and afterwards it can be taken normally
        other = os.open(path, os.O_RDWR)
        try:                                   # ... and really is held while inside
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(other)
    other = os.open(path, os.O_RDWR)
    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)   # released on exit
    os.close(other)


# ----- emulation ------------------------------------------------------------------------------

def _bridges() -> set[str]:
    out = subprocess.run(["ovs-vsctl", "list-br"], capture_output=True, text=True, timeout=20).stdout
    return set(out.split())


def _assert_nothing_left(emu, host_pids: list[int]) -> None:
    assert not (_bridges() & set(emu.switch_names)), "bridges of ours left"
    assert [n for n in emu.root_interfaces() if os.path.exists(f"/sys/class/net/{n}")] == []
    for pid in host_pids:                       # host shells gone: their namespaces went with them
        assert not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().split(") ", 1)[1][:1]
    assert emu.leftovers() == {"bridges": [], "interfaces": [], "pids": []}


def _parse_flow(line: str) -> tuple[int, str, str]:
    table = int(m.group(1)) if (m := re.search(r"table=(\d+)", line)) else 0
    dst = m.group(1) if (m := re.search(r"dl_dst=([0-9a-f:]+)", line)) else ""
    actions = line.split("actions=", 1)[1].strip()
    return table, dst, actions


@pytest.mark.emulation
def test_fntf40_static_forwarding_pings_flows_and_clean_teardown(emu_lock):
    from tools.emulation.network import Emulation
    from topologies.mininet_topo import default_plan
    topo = fntf40()
    plan = default_plan(topo)
    expected = static_flows(plan)
    t0 = time.monotonic()
    with Emulation(topo, plan) as emu:
        up = time.monotonic() - t0
        pids = [h.pid for h in emu.net.hosts]
        assert len(pids) == 40 and emu.static_routes and emu.datapath in ("kernel", "user")
        for a, b in PAIRS:
            r = emu.ping(a, b, count=3, interval_s=0.1)
            assert r.ok and r.loss_pct == 0, str(r)
        for node in topo.nodes:
            sw = plan.switch_name(node)
            got = emu.flows(node)
            assert len(got) == len(expected[sw]), sw
            want = {(t, re.search(r"dl_dst=([0-9a-f:]+)", m).group(1), act)
                    for t, m, act in map(_text, expected[sw]) if "dl_dst=" in m}
            assert want <= {_parse_flow(l) for l in got}, sw
    down = emu.timings.stop_s
    print(f"\nfntf40: up {up:.1f} s ({emu.timings.to_dict()}), down {down:.1f} s")
    _assert_nothing_left(emu, pids)


@pytest.mark.emulation
def test_exception_inside_with_still_tears_down(emu_lock):
    from tools.emulation.network import Emulation
    topo = ring4()
    plan = HostPlan.build(topo, [(1, n) for n in topo.nodes])
    emu = Emulation(topo, plan, verbose=False)
    pids: list[int] = []
    with pytest.raises(RuntimeError, match="boom"):
        with emu:
            pids = [h.pid for h in emu.net.hosts]
            assert _bridges() >= set(emu.switch_names)
            raise RuntimeError("boom")
    assert len(pids) == 4
    _assert_nothing_left(emu, pids)


@pytest.mark.emulation
def test_ring_has_no_loop_storm(emu_lock):
    """A 4-switch ring is a loop: a broadcast must die at its ingress switch, pings still work."""
    from tools.emulation.network import Emulation
    topo = ring4()
    plan = HostPlan.build(topo, [(1, n) for n in topo.nodes] + [(2, "A"), (2, "C")])
    with Emulation(topo, plan, verbose=False) as emu:
        for a, b in [("A", "C"), ("B", "D"), ("D", "A")]:
            assert emu.ping(a, b, count=2, interval_s=0.1).ok
        assert emu.ping("t2h1", "t2h3", count=2, interval_s=0.1).ok

        def trunk_rx() -> int:
            total = 0
            for node in topo.nodes:
                out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-ports", plan.switch_name(node)],
                                     capture_output=True, text=True, timeout=20).stdout
                for port, rx in re.findall(r"port\s+(\d+): rx pkts=(\d+)", out):
                    if int(port) in {plan.port(node, v) for v in topo.graph.successors(node)}:
                        total += int(rx)
            return total

        def ingress_drops() -> int:   # table 1's drop entry on A's switch
            line = next(l for l in subprocess.run(
                ["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", plan.switch_name("A"), "table=1"],
                capture_output=True, text=True, timeout=20).stdout.splitlines()
                if "priority=0 " in l and "actions=drop" in l)
            return int(re.search(r"n_packets=(\d+)", line).group(1))

        before, drops_before = trunk_rx(), ingress_drops()
        emu.node("A").cmd("ping -b -c 5 -i 0.1 -W 1 10.0.1.255 >/dev/null 2>&1")
        time.sleep(0.3)
        grew = trunk_rx() - before
        assert ingress_drops() - drops_before >= 5          # the broadcasts died at their ingress switch
        assert grew < 5, f"{grew} frames crossed inter-switch links after 5 broadcasts: a loop?"


@pytest.mark.emulation
def test_del_link_group_deletes_exactly_the_interfaces_named(emu_lock):
    """Tear-down's batch delete (``ip link del group``) takes the veths named, with their peers, and
    nothing else: an interface that is not named stays, also one of the same kind."""
    from tools.emulation.network import TEARDOWN_GROUP, del_link_group
    names = [f"dnlg{i}" for i in range(3)]
    try:
        for n in names:
            subprocess.run(["ip", "link", "add", n, "type", "veth", "peer", "name", n + "p"], check=True, timeout=20)
        del_link_group(names[:2])
        present = {n for n in names + [n + "p" for n in names] if os.path.exists(f"/sys/class/net/{n}")}
        assert present == {"dnlg2", "dnlg2p"}
        group = subprocess.run(["ip", "-o", "link", "show", "group", str(TEARDOWN_GROUP)], capture_output=True,
                               text=True, timeout=20).stdout
        assert group.strip() == ""               # nothing of ours waits in the group
    finally:
        for n in names:
            subprocess.run(["ip", "link", "del", n], capture_output=True, timeout=20)
