"""Tenant isolation on fake switches: no frame a host sends reaches another tenant's host port,
whatever VLAN tag it carries (none, its own tenant's, a foreign tenant's, QinQ either way round),
whatever its addresses claim, over the baseline, reservations of both tenants and best effort
(also around failed links). And the positive side, so the check is not vacuous: untagged frames
reach the sender's own tenant, reserved ones on the reservation's entries, untagged on the way out.
"""

from __future__ import annotations

import itertools

import pytest

from controller.dataplane import programs, specs
from fakeswitch import FakeNetwork, Frame, link_bps, programmed, reservation, ring_plan

PLAN = ring_plan((1, 2, 3))
RESERVATIONS = [reservation("t1", ["A", "B", "C"], tenant=1), reservation("t2", ["A", "D", "C"], tenant=2),
                reservation("t3", ["E", "C", "B", "A"], tenant=3, protection=["E", "C", "D", "A"])]
TENANTS = sorted({h.tenant for h in PLAN.hosts})
BROADCAST = "ff:ff:ff:ff:ff:ff"


def tag_variants(own: int) -> list[tuple[tuple[int, int], ...]]:
    """None, own, every foreign tenant's, an unused VLAN, QinQ with own/foreign either way round."""
    others = [t for t in TENANTS if t != own] + [4000]
    out: list[tuple[tuple[int, int], ...]] = [(), ((own, 0),), ((own, 7),)]
    out += [((t, 0),) for t in others] + [((t, 7),) for t in others]
    out += [((t, 0), (own, 0)) for t in others] + [((own, 0), (t, 0)) for t in others]
    return out


def frames_from(src, targets):
    """Every frame ``src`` could try: to each target's MAC and IP (and broadcast), spoofing its own
    source or the target's, with each tag variant, UDP, TCP and ARP."""
    for dst, tags, spoof, kind in itertools.product(targets, tag_variants(src.tenant), (False, True),
                                                   ("udp", "tcp", "arp")):
        for mac in (dst.mac, BROADCAST):
            base = dict(eth_src=dst.mac if spoof else src.mac, eth_dst=mac, vlans=tags)
            if kind == "arp":
                yield Frame(eth_type=specs.ETH_TYPE_ARP, **base)
            else:
                yield Frame(ipv4_src=dst.ip if spoof else src.ip, ipv4_dst=dst.ip, ip_proto=17 if kind == "udp" else 6,
                            udp_dst=5000 if kind == "udp" else None, tcp_dst=5000 if kind == "tcp" else None, **base)


@pytest.mark.parametrize("failed", [(), (("A", "B"), ("B", "A"))], ids=["all-links", "A-B-failed"])
def test_no_frame_reaches_another_tenants_host(failed):
    net = FakeNetwork(PLAN)
    net.run(programmed(PLAN, RESERVATIONS, failed=failed))
    leaks, own_reached = [], set()
    for src in PLAN.hosts:
        for frame in frames_from(src, [h for h in PLAN.hosts if h.name != src.name]):
            for d in net.send(src.name, frame).delivered:
                if PLAN.host(d.host).tenant != src.tenant:
                    leaks.append((src.name, d.host, frame))
                else:
                    own_reached.add((src.name, d.host))
    assert leaks == []
    # untagged frames reach every host of the sender's tenant (and only those)
    want = {(a.name, b.name) for a in PLAN.hosts for b in PLAN.hosts if a.name != b.name and a.tenant == b.tenant}
    assert own_reached == want


def test_own_tenant_frames_arrive_untagged_reserved_on_the_reservation():
    net = FakeNetwork(PLAN)
    net.run(programmed(PLAN, RESERVATIONS))
    for res in RESERVATIONS:
        src = next(h for h in PLAN.hosts_of(res.tenant) if h.switch == res.path[0])
        for dst in (h for h in PLAN.hosts_of(res.tenant) if h.switch == res.path[-1]):
            frame = Frame(eth_src=src.mac, eth_dst=dst.mac, ipv4_src=src.ip, ipv4_dst=dst.ip, ip_proto=17, udp_dst=9)
            got = [d for d in net.send(src.name, frame).delivered if d.host == dst.name]
            assert len(got) == len(res.all_paths())                 # one copy per path (protection: two)
            cookie = specs.reservation_cookie(res.tenant, res.id)
            for d in got:
                assert d.frame.vlans == ()
                assert all(specs.cookie_selects(h.cookie, cookie, specs.COOKIE_MASK_RESERVATION)
                           for h in d.hits if h.table_id == specs.TABLE_DETERMINISTIC)


def test_arp_goes_to_the_controller_only_and_reservations_change_nothing_for_others():
    """ARP from a host port is a packet-in (the controller answers it); installing and removing a
    tenant's reservation leaves the other tenants' reachability as it was."""
    net = FakeNetwork(PLAN)
    net.run(programmed(PLAN, []))
    a = PLAN.hosts_of(2)[0]
    arp = Frame(eth_src=a.mac, eth_dst=BROADCAST, eth_type=specs.ETH_TYPE_ARP)
    t = net.send(a.name, arp)
    assert t.delivered == [] and t.to_controller == [PLAN.dpid(a.switch)]
    before = _reach(net, 2)
    for res in RESERVATIONS[:1]:
        net.run(programs.install(PLAN, res, link_bps([res])))
        assert _reach(net, 2) == before
        net.run(programs.remove(PLAN, res, link_bps([])))
        assert _reach(net, 2) == before


def _reach(net: FakeNetwork, tenant: int) -> set:
    out = set()
    for s in PLAN.hosts_of(tenant):
        for d in PLAN.hosts:
            if d.name != s.name:
                f = Frame(eth_src=s.mac, eth_dst=d.mac, ipv4_src=s.ip, ipv4_dst=d.ip, ip_proto=17, udp_dst=1)
                out |= {(s.name, x.host) for x in net.send(s.name, f).delivered}
    return out
