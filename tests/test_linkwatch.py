"""LLDP liveness (controller.linkwatch): which links LLDP silence takes down and brings back up.

Pure-logic tests on a simulated clock: a silent link goes down once (not on every later tick), a
link seen again comes up, a link whose switch is disconnected (or whose port is reported down) is
left to switch/port events, a link never seen gets a start-up grace of one timeout after its
switches connect, a one-way silence counts; and the service side: an LLDP-driven down of a link a
port-status event already took down is a no-op (nothing re-placed twice, one audit entry).
"""

from __future__ import annotations

import pytest

from controller import linkwatch as lw
from test_reliability import ADMIN_P, make_service, reserve
from topologies.hosts import HostPlan

A, B = (1, 1), (2, 1)          # (dpid, port) ends of one physical link
C, D = (2, 2), (3, 1)          # a second link
L1, L2 = lw.physical((A, B)), lw.physical((D, C))
T = 7.0                        # timeout (3.5 x 2 s)


class Sim:
    """A tiny model of the shim: directed-link sightings, watchability, the down set."""

    def __init__(self, links=(L1, L2), connected_at=0.0):
        self.links = set(links)
        self.seen: dict = {}
        self.watch = {l: connected_at for l in self.links}
        self.down: set = set()
        self.log: list = []

    def hear(self, now, *directed):
        for d in directed:
            self.seen[d] = now

    def hear_all(self, now):
        for a, b in self.links:
            self.hear(now, (a, b), (b, a))

    def tick(self, now):
        v = lw.evaluate(self.links, self.seen, self.watch, now, T, self.down)
        for l in v.down:
            self.down.add(l)
            self.log.append((now, "down", l))
        for l in v.up:
            self.down.discard(l)
            self.log.append((now, "up", l))
        return v


def test_timeout_and_physical_helpers():
    assert lw.lldp_timeout(2.0) == 7.0 and lw.lldp_timeout(0.5, 4) == 2.0
    assert lw.lldp_timeout(0.5, floor=3.0) == 3.0 and lw.lldp_timeout(2.0, floor=3.0) == 7.0
    with pytest.raises(ValueError):
        lw.lldp_timeout(0)
    with pytest.raises(ValueError):
        lw.lldp_timeout(1.0, 0.5)
    assert lw.physical((A, B)) == lw.physical((B, A))
    assert lw.physical_links({(A, B), (B, A), (C, D), (D, C)}) == {L1, L2}


def test_physical_links_of_a_real_plan_pair_both_directions():
    from test_reliability import mesh
    plan = HostPlan.build(mesh(), [(1, n) for n in mesh().nodes])
    expected = lw.expected_links(plan)
    phys = lw.physical_links(expected)
    assert len(phys) * 2 == len(expected) == plan.topology.graph.number_of_edges()
    assert all((a, b) in expected and (b, a) in expected for a, b in phys)


def test_silent_link_goes_down_once_not_repeatedly():
    s = Sim()
    for t in range(0, 20, 2):              # both links heard every 2 s
        s.hear_all(t)
        assert not s.tick(t + 0.1).down
    s.hear(20, (C, D), (D, C))             # L1 goes silent after t=18
    assert not s.tick(25.0).down          # 7 s since last sighting: not yet
    s.hear(24, (C, D), (D, C))
    v = s.tick(25.5)                      # 7.5 s silent
    assert v.down == [L1] and not v.up
    for t in (26, 28, 40, 100):           # stays down, never reported again
        s.hear(t, (C, D), (D, C))
        v = s.tick(t + 0.1)
        assert not v.down and not v.up
    assert [e[1:] for e in s.log] == [("down", L1)]


def test_one_way_silence_takes_the_link_down():
    s = Sim(links=[L1])
    for t in range(0, 30, 2):
        s.hear(t, (B, A))                  # only B -> A still arrives
        s.hear(min(t, 10), (A, B))
        s.tick(t + 0.1)
    assert [e[1:] for e in s.log] == [("down", L1)] and 17 < s.log[0][0] < 19


def test_link_seen_again_comes_up_only_when_both_directions_fresh():
    s = Sim(links=[L1])
    s.hear_all(0)
    s.tick(8)
    assert s.down == {L1}
    s.hear(9, (A, B))                      # one direction back: not enough
    assert not s.tick(9.5).up
    s.hear(10, (B, A))
    v = s.tick(10.5)
    assert v.up == [L1] and not v.down and s.down == set()
    s.hear_all(12)
    assert not s.tick(12.5).up             # up reported once


def test_stale_sighting_from_before_the_failure_does_not_bring_it_up():
    s = Sim(links=[L1])
    s.hear(0, (A, B))
    s.hear(5, (B, A))
    s.tick(7.5)                            # A->B silent 7.5 s
    assert s.down == {L1}
    assert not s.tick(11).up               # B->A at 5 is fresh-ish, A->B still stale
    assert s.down == {L1}


def test_disconnected_switch_is_not_flapped_by_lldp():
    s = Sim()
    s.hear_all(0)
    del s.watch[L1]                        # the switch at one end disconnected at t=1
    for t in (5, 10, 30, 60):
        s.hear(t, (C, D), (D, C))
        assert not s.tick(t).down          # L1 silent for 60 s: left to switch events
    s.watch[L1] = 60.0                     # reconnected (and programmed) at t=60
    assert not s.tick(66).down             # a fresh grace period, not "silent since t=0"
    s.hear(67, (C, D), (D, C))
    v = s.tick(67.5)
    assert v.down == [L1]                  # still never heard after the grace: down
    # a link LLDP declared down is not brought up while its switch is away, even if heard
    del s.watch[L1]
    s.hear(68, (A, B), (B, A))
    assert not s.tick(68.5).up and s.down == {L1}
    s.watch[L1] = 69.0
    assert s.tick(69.5).up == [L1]


def test_port_down_link_is_left_to_port_status():
    s = Sim(links=[L1])
    s.hear_all(0)
    s.watch.pop(L1)                        # port reported down at t=1: not watchable
    assert not s.tick(30).down
    s.watch[L1] = 30.0                     # port up again at t=30
    s.hear(30.5, (A, B), (B, A))
    for t in (31, 35, 37.4):
        assert not s.tick(t).down


def test_startup_grace_for_links_never_seen():
    s = Sim(links=[L1], connected_at=100.0)
    assert not s.tick(100.0).down
    assert not s.tick(106.9).down          # switches connected 6.9 s ago, never seen: grace
    assert s.tick(107.1).down == [L1]      # a full timeout after connecting, nothing heard
    s2 = Sim(links=[L1], connected_at=100.0)
    s2.hear(101, (A, B), (B, A))           # heard during the grace: silence counts from then
    assert not s2.tick(107.5).down
    assert s2.tick(108.1).down == [L1]


def test_watch_since_needs_both_switches_programmed_and_both_ports_up():
    links = [L1, L2]                        # L1: dpids 1-2, L2: dpids 2-3
    ready = {1: 10.0, 2: 20.0}              # dpid 3 not programmed: L2 is not watched
    assert lw.watch_since(links, ready, {}, {}, 5.0) == {L1: 20.0}
    assert lw.watch_since(links, ready, {}, {}, 25.0) == {L1: 25.0}          # probing resumed later
    assert lw.watch_since(links, ready, {A: True}, {}, 5.0) == {}            # a port down
    assert lw.watch_since(links, ready, {A: False}, {A: 30.0}, 5.0) == {L1: 30.0}   # port up again at 30


def test_lldp_down_after_port_down_is_a_no_op_in_the_service(tmp_path):
    """Port status and LLDP both reporting the same link: the second is a no-op."""
    svc, rec = make_service(tmp_path)
    for i in range(3):
        reserve(svc, src="A", dst="C", id=f"r{i}")
    first = svc.link_down("A", "B")                         # port status
    assert first["reservations_affected"] == 3
    moved = len(rec.changed)
    second = svc.link_down("B", "A", actor="lldp_timeout")  # LLDP, later
    assert second.get("already_down") and second["reservations_affected"] == 0
    assert len(rec.changed) == moved
    events = [e for e in svc.events(ADMIN_P) if e["action"] == "link_down"]
    assert len(events) == 1
    assert svc.link_up("A", "B", actor="lldp_timeout")["reservations_affected"] >= 0
    assert svc.link_up("A", "B")["already_up"]
    assert svc.links_down() == []
