"""Unit tests of the pure OpenFlow translation (controller.dataplane: specs, translation, resync
differences, frames, ARP policy; the LLDP link check of controller.linkwatch): no switch, no os-ken."""

from __future__ import annotations

import pytest

from controller import linkwatch as lw
from controller.core.model import Hop, Reservation
from controller.dataplane import arp, frames, resync, specs
from controller.dataplane import translation as tr
from topologies.hosts import HostPlan
from topologies.model import Topology


def line_plan() -> HostPlan:
    """A - B - C in a line plus a long A - C detour; tenants 1 and 2 with a host at A and C each,
    and a second tenant-1 host at C."""
    t = Topology("line")
    for n in "ABC":
        t.add_node(n)
    t.add_link("A", "B", km=100, capacity_bps=1_000_000_000)
    t.add_link("B", "C", km=100, capacity_bps=1_000_000_000)
    t.add_link("A", "C", km=900, capacity_bps=1_000_000_000)
    return HostPlan.build(t, [(1, "A"), (1, "C"), (2, "A"), (2, "C"), (1, "C")])


def res(plan: HostPlan, rid: str = "r1", tenant: int = 1, path=("A", "B", "C"), bw=10_000_000,
        match=None) -> Reservation:
    path = list(path)
    return Reservation(id=rid, tenant=tenant, src=path[0], dst=path[-1], period_ns=1_000_000,
                       frame_bytes=bw // 8000, bandwidth_bps=bw, max_latency_ns=10**7,
                       latency_bound_ns=10**6, jitter_bound_ns=1000, path=path,
                       hops=[Hop(a, b, [0]) for a, b in zip(path, path[1:])], tx_offsets_ns=[0],
                       match=match or {})


def test_cookie_round_trip_and_ranges():
    c = specs.make_cookie(specs.KIND_RESERVATION, 4094, 0xDEADBEEF, 0x5A)
    assert specs.parse_cookie(c) == {"kind": specs.KIND_RESERVATION, "tenant": 4094, "number": 0xDEADBEEF, "digest": 0x5A}
    assert c < 2**64
    with pytest.raises(ValueError):
        specs.make_cookie(specs.KIND_RESERVATION, 70000, 1)
    assert specs.reservation_number("abc") == specs.reservation_number("abc") != specs.reservation_number("abd")
    assert specs.RES_METER_BASE <= specs.reservation_meter_id("abc") < 0xFFFF0000


def test_reservation_on_three_switch_path():
    plan = line_plan()
    r = res(plan)
    flows, meters = tr.reservation_flows(plan, r, rate_scale=0.5)
    src = [h for h in plan.hosts_of(1) if h.switch == "A"]
    dst = [h for h in plan.hosts_of(1) if h.switch == "C"]
    assert len(src) == 1 and len(dst) == 2
    assert len(flows) == 3 * len(src) * len(dst)          # every switch, every host pair
    by_dpid = {}
    for f in flows:
        by_dpid.setdefault(f.dpid, []).append(f)
        assert f.table_id == specs.TABLE_DETERMINISTIC and f.priority > specs.PRIO_BEST_EFFORT
        assert f.match["vlan_vid"] == specs.OFPVID_PRESENT | 1 and f.match["eth_type"] == specs.ETH_TYPE_IPV4
        assert specs.cookie_selects(f.cookie, specs.reservation_cookie(1, "r1"), specs.COOKIE_MASK_RESERVATION)
    assert set(by_dpid) == {plan.dpid(n) for n in "ABC"}
    # ingress: host port in, meter, out towards B
    for f in by_dpid[plan.dpid("A")]:
        assert f.match["in_port"] == src[0].port and f.match["ipv4_src"] == src[0].ip
        assert f.meter_id == meters[0].meter_id
        assert f.outputs() == [plan.port("A", "B")]
        assert {"type": "pop_vlan"} not in f.actions()
        # reserved frames carry PCP 7 in the network's tag (priority queue on shaped links)
        assert {"type": "set_vlan_pcp", "pcp": tr.RESERVED_PCP} in f.actions()
    for f in flows:
        if f.dpid != plan.dpid("A"):
            assert not any(a["type"] == "set_vlan_pcp" for a in f.actions())
    # transit: arrives from A, leaves to C, no meter
    for f in by_dpid[plan.dpid("B")]:
        assert f.match["in_port"] == plan.port("B", "A") and f.outputs() == [plan.port("B", "C")]
        assert f.meter_id is None
    # egress pops the tag and delivers to the matching host only
    eg = by_dpid[plan.dpid("C")]
    assert {f.match["ipv4_dst"]: f.outputs() for f in eg} == {d.ip: [d.port] for d in dst}
    for f in eg:
        acts = f.actions()
        assert acts[0] == {"type": "pop_vlan"} and acts[-1]["type"] == "output"
    # the meter: ingress switch, scaled rate, a burst of a few frames
    (m,) = meters
    # 625 IP bytes per 1 ms period at scale 0.5 = one datagram: + 18 B Ethernet/VLAN, + tolerance
    assert m.dpid == plan.dpid("A")
    wire_bps = (625 + tr.L2_OVERHEAD_BYTES) * 8e9 / 1e6
    assert wire_bps * (1 + tr.RES_METER_TOLERANCE) <= m.rate_kbps * 1000 < wire_bps * (1 + tr.RES_METER_TOLERANCE) + 1000
    assert m.burst_kb >= 8 * tr.BURST_FRAMES * min(r.frame_bytes, tr.FULL_FRAME_BYTES) // 1000


def test_reservation_match_fields_and_errors():
    plan = line_plan()
    dst_ip = [h for h in plan.hosts_of(1) if h.switch == "C"][1].ip
    flows, _ = tr.reservation_flows(plan, res(plan, match={"ip_dst": dst_ip, "udp_dst": 5000, "ip_dscp": 46}))
    assert len(flows) == 3
    for f in flows:
        assert f.match["ipv4_dst"] == dst_ip and f.match["ip_proto"] == 17
        assert f.match["udp_dst"] == 5000 and f.match["ip_dscp"] == 46
    with pytest.raises(tr.TranslationError):
        tr.reservation_flows(plan, res(plan, match={"ip_proto": 6, "udp_dst": 1}))
    with pytest.raises(tr.TranslationError):   # tenant 1 has no host at B
        tr.reservation_flows(plan, res(plan, path=("A", "B")))
    with pytest.raises(tr.TranslationError):   # an address of another tenant selects nothing
        tr.reservation_flows(plan, res(plan, match={"ip_dst": plan.hosts_of(2)[1].ip}))


def test_baseline_classification_and_drop_default():
    plan = line_plan()
    flows, meters = tr.baseline(plan, "A", {plan.port("A", "B"): 0.25}, rate_scale=0.01)
    t0 = [f for f in flows if f.table_id == specs.TABLE_CLASSIFY]
    for h in plan.host_ports("A"):
        mine = [f for f in t0 if f.match.get("in_port") == h.port]
        tagged = [f for f in mine if f.match.get("vlan_vid") == (specs.OFPVID_PRESENT, specs.OFPVID_PRESENT)]
        assert len(tagged) == 1 and tagged[0].instructions == []          # tagged from a host: drop
        untagged = [f for f in mine if f.match.get("vlan_vid") == specs.OFPVID_NONE and "eth_type" not in f.match]
        assert untagged[0].priority < tagged[0].priority
        assert {"type": "set_vlan", "vid": h.tenant} in untagged[0].actions()
    # every table ends in a priority-0 entry; tables 0 and 2 drop, table 1 goes on to best effort
    misses = {f.table_id: f for f in flows if f.priority == 0 and f.match == {}}
    assert misses[specs.TABLE_CLASSIFY].instructions == [] and misses[specs.TABLE_BEST_EFFORT].instructions == []
    assert misses[specs.TABLE_DETERMINISTIC].instructions == [{"type": "goto", "table": specs.TABLE_BEST_EFFORT}]
    # LLDP to the controller only from inter-switch ports
    lldp = [f for f in t0 if f.match.get("eth_type") == specs.ETH_TYPE_LLDP]
    assert {f.match["in_port"] for f in lldp} == set(tr.inter_switch_ports(plan, "A"))
    # best effort: one entry per host of every tenant, keyed by its own tenant's VLAN; remote hosts
    # go by the shortest path (via B, not the long A-C link) through that port's meter
    be = [f for f in flows if f.table_id == specs.TABLE_BEST_EFFORT and f.priority > 0]
    assert len(be) == len(plan.hosts)
    for f in be:
        h = next(h for h in plan.hosts if h.mac == f.match["eth_dst"])
        assert f.match["vlan_vid"] == specs.OFPVID_PRESENT | h.tenant
        if h.switch == "A":
            assert f.actions() == [{"type": "pop_vlan"}, {"type": "output", "port": h.port}]
        else:
            assert f.outputs() == [plan.port("A", "B")] and f.meter_id == specs.be_meter_id(plan.port("A", "B"))
    rates = {m.meter_id: m.rate_kbps for m in meters}
    assert rates[specs.be_meter_id(plan.port("A", "B"))] == int(1e9 * 0.75 * tr.BE_HEADROOM * 0.01 / 1000)
    assert rates[specs.be_meter_id(plan.port("A", "C"))] == int(1e9 * tr.BE_HEADROOM * 0.01 / 1000)


def test_arp_to_the_controller_goes_through_each_host_ports_policer():
    plan = line_plan()
    flows, meters = tr.baseline(plan, "C", rate_scale=0.001)
    by_id = {m.meter_id: m for m in meters}
    arp_entries = [f for f in flows if f.match.get("eth_type") == specs.ETH_TYPE_ARP]
    assert {f.match["in_port"] for f in arp_entries} == {h.port for h in plan.host_ports("C")}
    for f in arp_entries:
        # the meter first, then the controller: a storm is dropped in the switch, not handed up
        assert f.meter_id == specs.arp_meter_id(f.match["in_port"])
        assert f.outputs() == [specs.OFPP_CONTROLLER]
        m = by_id[f.meter_id]
        # not scaled with the links: 100 requests/s of minimum frames, 50 back to back
        assert m.rate_kbps * 1000 / 8 / tr.ARP_FRAME_BYTES == pytest.approx(tr.ARP_PACKETS_PER_S, rel=0.05)
        assert m.burst_kb * 1000 / 8 / tr.ARP_FRAME_BYTES == pytest.approx(tr.ARP_BURST_FRAMES, rel=0.05)
    # their ids are neither a best-effort meter's (inter-switch ports) nor a reservation's
    be_ids = {specs.be_meter_id(p) for p in tr.inter_switch_ports(plan, "C")}
    arp_ids = {specs.arp_meter_id(h.port) for h in plan.host_ports("C")}
    assert arp_ids <= set(by_id) and not arp_ids & be_ids
    assert all(specs.BE_METER_BASE <= i < specs.RES_METER_BASE for i in arp_ids | be_ids)
    assert set(by_id) == arp_ids | be_ids
    assert tr.port_meters(plan, "C", rate_scale=0.001) == meters


def test_arp_answered_for_same_tenant_only():
    plan = line_plan()
    a1 = next(h for h in plan.hosts if h.tenant == 1 and h.switch == "A")
    c1 = next(h for h in plan.hosts if h.tenant == 1 and h.switch == "C")
    c2 = next(h for h in plan.hosts if h.tenant == 2 and h.switch == "C")

    def request(asker, tpa):
        req = frames.Arp(1, asker.mac, asker.ip, "00:00:00:00:00:00", tpa, asker.mac)
        # a request is a reply with op 1 and broadcast destination; reuse the builder and patch op/dst
        frame = bytearray(frames.arp_reply(req, "00:00:00:00:00:00"))
        frame[0:6] = b"\xff" * 6
        frame[20:22] = b"\x00\x01"
        frame[22:28], frame[28:32] = bytes.fromhex(asker.mac.replace(":", "")), bytes(map(int, asker.ip.split(".")))
        frame[32:38], frame[38:42] = b"\x00" * 6, bytes(map(int, tpa.split(".")))
        return bytes(frame)

    reply = arp.arp_answer(plan, a1.dpid, a1.port, request(a1, c1.ip))
    parsed = frames.parse_arp(reply)
    assert parsed.op == 2 and parsed.sha == c1.mac and parsed.spa == c1.ip and parsed.tpa == a1.ip
    assert reply[0:6] == bytes.fromhex(a1.mac.replace(":", ""))
    assert arp.arp_answer(plan, a1.dpid, a1.port, request(a1, c2.ip)) is None      # other tenant
    assert arp.arp_answer(plan, a1.dpid, a1.port, request(a1, "10.0.1.99")) is None  # unknown
    isl = plan.port("A", "B")
    assert arp.arp_answer(plan, a1.dpid, isl, request(a1, c1.ip)) is None           # not a host port


def test_delete_by_cookie_mask_selects_exactly_one_reservation():
    plan = line_plan()
    r1 = res(plan, "r1")
    r2 = res(plan, "r2", match={"udp_dst": 5000})
    r3 = res(plan, "r3", tenant=2)
    all_flows = []
    for node in plan.topology.nodes:
        all_flows += tr.desired_state(plan, node, [r1, r2, r3])[0]
    own = tr.reservation_flows(plan, r1)[0]
    sel = [f for f in all_flows if specs.cookie_selects(f.cookie, specs.reservation_cookie(1, "r1"),
                                                     specs.COOKIE_MASK_RESERVATION)]
    assert sel and sorted(f.key() for f in sel) == sorted(f.key() for f in own)
    assert len(all_flows) > len(sel) + len(tr.reservation_flows(plan, r2)[0])
    # the tenant mask selects every entry of tenant 2 (its reservation, ports, best effort) and nothing else
    t2 = [f for f in all_flows if specs.cookie_selects(f.cookie, specs.tenant_cookie(2), specs.COOKIE_MASK_TENANT)]
    assert len(t2) == sum(1 for f in all_flows if specs.parse_cookie(f.cookie)["tenant"] == 2)
    assert any(specs.parse_cookie(f.cookie)["kind"] == specs.KIND_RESERVATION for f in t2)
    assert any(specs.parse_cookie(f.cookie)["kind"] == specs.KIND_BEST_EFFORT for f in t2)


def test_resync_diff():
    plan = line_plan()
    r1 = res(plan)
    before, _ = tr.desired_state(plan, "A", [])
    after, _ = tr.desired_state(plan, "A", [r1])
    actual = [{"table_id": f.table_id, "priority": f.priority, "cookie": f.cookie,
               "match": {k: (list(v) if isinstance(v, tuple) else v) for k, v in f.match.items()}}
              for f in before]
    actual.append({"table_id": 1, "priority": 1000, "cookie": 0x123,
                   "match": {"in_port": 9, "vlan_vid": 4099}})                      # stale
    to_add, to_delete = resync.resync_plan(after, actual)
    assert sorted(f.cookie for f in to_add) == sorted(f.cookie for f in tr.reservation_flows(plan, r1)[0]
                                                      if f.dpid == plan.dpid("A"))
    assert [d["cookie"] for d in to_delete] == [0x123]
    assert resync.resync_plan(after, [{"table_id": f.table_id, "priority": f.priority, "cookie": f.cookie,
                                   "match": f.match} for f in after]) == ([], [])
    # a changed action under the same match changes the digest: the entry is re-added
    changed = tr.desired_state(plan, "A", [res(plan, path=("A", "C"))])[0]
    add2, del2 = resync.resync_plan(changed, [{"table_id": f.table_id, "priority": f.priority,
                                           "cookie": f.cookie, "match": f.match} for f in after])
    assert any(f.table_id == specs.TABLE_DETERMINISTIC for f in add2)
    # meters: add missing, modify changed, delete stale
    want = [specs.MeterSpec(1, 1, 100, 10), specs.MeterSpec(1, 2, 200, 10)]
    have = [{"meter_id": 2, "rate_kbps": 150, "burst_kb": 10}, {"meter_id": 7, "rate_kbps": 1, "burst_kb": 1}]
    add, mod, dele = resync.meter_resync_plan(want, have)
    assert [m.meter_id for m in add] == [1] and [m.meter_id for m in mod] == [2] and dele == [7]


def test_best_effort_meter_shrinks_with_reservations():
    plan = line_plan()
    shares = tr.reserved_share_by_port(plan, "A", [res(plan, bw=400_000_000), res(plan, "r2", bw=100_000_000)])
    assert shares == {plan.port("A", "B"): pytest.approx(0.5)}
    _, meters = tr.baseline(plan, "A", shares)
    rate = {m.meter_id: m.rate_kbps for m in meters}[specs.be_meter_id(plan.port("A", "B"))]
    assert rate == 500_000 * tr.BE_HEADROOM
    _, meters = tr.baseline(plan, "A", shares, headroom=1.0)
    assert {m.meter_id: m.rate_kbps for m in meters}[specs.be_meter_id(plan.port("A", "B"))] == 500_000
    with pytest.raises(ValueError):
        tr.best_effort_meters(plan, "A", shares, headroom=0)


def test_reservation_meter_counts_ethernet_bytes_of_every_datagram():
    """frame_bytes are IP bytes per period; the meter must pass them with their L2 headers (one
    Ethernet + VLAN header per MTU-sized datagram) and stay within a few percent of that."""
    plan = line_plan()
    cases = [(100, 1_000_000, 1.0), (1500, 1_000_000, 1.0), (1501, 1_000_000, 1.0),
             (62_500_000, 1_000_000, 1e-4), (37_500, 20_000_000, 1e-3), (5000, 1_000_000, 0.5)]
    for ip_bytes, period, scale in cases:
        r = res(plan)
        r.frame_bytes, r.period_ns = ip_bytes, period
        r.bandwidth_bps = ip_bytes * 8 * 10**9 // period
        m = tr.reservation_meter(plan, r, rate_scale=scale)
        emu = ip_bytes * scale
        sizes, left = [], int(round(emu))
        while left > 0:
            sizes.append(min(left, tr.MTU_IP_BYTES))
            left -= sizes[-1]
        wire_bps = sum(max(tr.MIN_FRAME_BYTES, d + tr.L2_OVERHEAD_BYTES) for d in sizes) * 8e9 / period
        assert m.rate_kbps * 1000 >= wire_bps, (ip_bytes, scale)
        assert m.rate_kbps * 1000 <= wire_bps * (1 + tr.RES_METER_TOLERANCE) * 1.005 + 1000, (ip_bytes, scale)
        # a burst holds at least one period's datagrams and a few full frames
        assert m.burst_kb * 1000 >= tr.wire_bytes_per_period(emu) * 8
    assert tr.wire_bytes_per_period(1500) == 1518 and tr.wire_bytes_per_period(1501) == 1518 + 60
    assert tr.wire_bytes_per_period(3000) == 2 * 1518 and tr.wire_bytes_per_period(10) == tr.MIN_FRAME_BYTES


def test_lldp_and_link_report():
    plan = line_plan()
    frame = frames.lldp_frame(0x1234, 7)
    assert frames.parse_lldp(frame) == (0x1234, 7)
    assert frames.parse_lldp(frame[:12] + b"\x08\x00" + frame[14:]) is None
    exp = lw.expected_links(plan)
    assert len(exp) == len(plan.topology.directed_links())
    seen = set(exp)
    gone = ((plan.dpid("A"), plan.port("A", "B")), (plan.dpid("B"), plan.port("B", "A")))
    seen.discard(gone)
    seen.add(((plan.dpid("A"), plan.port("A", "B")), (plan.dpid("C"), plan.port("C", "B"))))
    rep = lw.compare_links(exp, seen, plan)
    assert rep["expected"] == len(exp) and rep["seen"] == len(exp) - 1
    assert rep["missing"] == [["A", "B"]] and rep["unexpected"] == [["A", "C"]] and not rep["ok"]
    assert lw.compare_links(exp, exp, plan)["ok"]


def test_default_emulation_scales_keep_meters_below_the_userspace_limit():
    """OVS 3.1 userspace meters at ~1 Gb/s stopped passing traffic after a flood (128-tenant
    isolation run at scale 1/1,000: every path over the 1.2 Tb/s Wuhan trunks dead). The tools'
    default scales must keep every meter on fntf40 well below that."""
    from tools.runs.scenario import SCENARIO_LINK_SCALE
    from tools.runs.training_run import DEFAULT_SCALE
    from topologies.loaders import load_topology
    topo = load_topology("fntf40")
    plan = HostPlan.build(topo, [(1, n) for n in topo.nodes])
    for scale in (SCENARIO_LINK_SCALE, DEFAULT_SCALE):
        top = max(m.rate_kbps for n in topo.nodes
                  for m in tr.best_effort_meters(plan, n, {}, rate_scale=scale, headroom=1.0))
        assert top * 1000 <= 200e6, (scale, top)
    # and the old default would not have been
    top = max(m.rate_kbps for n in topo.nodes for m in tr.best_effort_meters(plan, n, {}, rate_scale=1e-3))
    assert top * 1000 > 1e9
