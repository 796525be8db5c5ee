"""Install, removal and make-before-break reroute programs, run on fake switches (no Open vSwitch).

The reroute check follows a frame of the reservation through every network state the program can
pass through (each switch at any phase boundary between two waits, ``fakeswitch.intermediate_states``)
and requires that it reaches its destination host on the reservation's own entries (old or new
path) in every one; programs with a phase dropped, merged or moved are built here and must be
caught dropping frames.
"""

from __future__ import annotations

import pytest

from controller.dataplane import programs, specs
from controller.dataplane.programs import FlowAdd, FlowDeleteStrict, GroupModify, Phase, Program
from fakeswitch import (FakeNetwork, FakeSwitchError, frame_between, intermediate_states, link_bps, programmed,
                        reservation, ring_plan)

PLAN = ring_plan()
SRC, DST = PLAN.hosts_of(1)[0].name, [h for h in PLAN.hosts_of(1) if h.switch == "C"][0].name


def carried(net: FakeNetwork, res, src: str = SRC, dst: str = DST) -> bool:
    """A frame of ``res`` from ``src`` reaches ``dst`` and every table-1 entry it hit is one of
    the reservation's (never best effort: that would not be the reserved service)."""
    frame = frame_between(PLAN, src, dst)
    cookie = specs.reservation_cookie(res.tenant, res.id)
    for d in net.send(src, frame).delivered:
        table1 = [h for h in d.hits if h.table_id == specs.TABLE_DETERMINISTIC]
        if (d.host == dst and len(table1) == len(d.switches)
                and all(specs.cookie_selects(h.cookie, cookie, specs.COOKIE_MASK_RESERVATION) for h in table1)):
            return True
    return False


def drops(before: Program, program: Program, res) -> list[str]:
    """The intermediate states of ``program`` (run after ``before``) where a frame of ``res`` is
    not carried (empty: no frame dropped between phases)."""
    bad = []
    for label, net in intermediate_states(lambda: FakeNetwork(PLAN), before, program):
        if not carried(net, res):
            bad.append(label)
    return bad


OLD = reservation("r1", ["A", "B", "C"])
NEW = reservation("r1", ["A", "D", "C"])


def reroute_program(old=OLD, new=NEW) -> Program:
    out = programs.reroute(PLAN, [(old, new)], link_bps([new]))
    assert not out.unplaceable and out.reservations == 1
    return out.program


def test_install_then_remove_on_fake_switches():
    net = FakeNetwork(PLAN)
    net.run(programmed(PLAN, []))
    assert not carried(net, OLD)
    assert net.send(SRC, frame_between(PLAN, SRC, DST)).delivered     # best effort carries it meanwhile
    net.run(programs.install(PLAN, OLD, link_bps([OLD])))
    assert carried(net, OLD)
    via = net.send(SRC, frame_between(PLAN, SRC, DST)).delivered[0]
    assert via.switches == tuple(PLAN.dpid(n) for n in "ABC") and via.frame.vlans == ()
    # the installed network is exactly what a resync would make of it
    assert net.state() == _resynced([OLD])
    net.run(programs.remove(PLAN, OLD, link_bps([])))
    assert not carried(net, OLD)
    assert net.state() == _resynced([])


def test_install_needs_the_meter_before_the_entries():
    """The fake switch rejects an entry whose meter does not exist yet: the install program's
    order (meter phase first) is what makes it pass."""
    prog = programs.install(PLAN, OLD, link_bps([OLD]))
    net = FakeNetwork(PLAN)
    net.run(programmed(PLAN, []))
    with pytest.raises(FakeSwitchError, match="unknown meter"):
        net.run(Program(list(reversed(prog.phases))))


def test_reroute_is_make_before_break():
    before = programmed(PLAN, [OLD])
    program = reroute_program()
    assert drops(before, program, OLD) == []
    assert [p.wait for p in program.phases][:2] == [True, True]
    net = FakeNetwork(PLAN)
    net.run(before)
    net.run(program)
    via = net.send(SRC, frame_between(PLAN, SRC, DST)).delivered[0]
    assert via.switches == tuple(PLAN.dpid(n) for n in "ADC")
    # stale entries are gone: B holds nothing of r1, and every switch equals a fresh resync
    cookie = specs.reservation_cookie(1, "r1")
    assert not [f for f in net.switches[PLAN.dpid("B")].flows.values()
                if specs.cookie_selects(f.cookie, cookie, specs.COOKIE_MASK_RESERVATION)]
    assert net.state() == _resynced([NEW])


def test_reroute_back_and_of_a_protected_reservation():
    """Back to the short path, and a protected reservation whose replication group changes."""
    assert drops(programmed(PLAN, [NEW]), reroute_program(NEW, OLD), NEW) == []
    old = reservation("p1", ["A", "B", "C"], protection=["A", "D", "C"])
    new = reservation("p1", ["A", "D", "C"], protection=["A", "B", "C"])
    out = programs.reroute(PLAN, [(old, new)], link_bps([new]))
    assert any(isinstance(c, GroupModify) for c in out.program.changes())
    assert drops(programmed(PLAN, [old]), out.program, old) == []
    net = FakeNetwork(PLAN)
    net.run(programmed(PLAN, [old]))
    net.run(out.program)
    assert net.state() == _resynced([new])


def test_the_check_catches_a_broken_make_before_break():
    """Programs with a phase dropped, merged or moved drop frames, and the check says where."""
    before = programmed(PLAN, [OLD])
    good = reroute_program()
    down, ingress, stale, *rest = good.phases
    assert all(isinstance(c, FlowAdd) and c.dpid != PLAN.dpid("A") for c in down.changes)
    assert all(isinstance(c, FlowAdd) and c.dpid == PLAN.dpid("A") for c in ingress.changes)
    assert stale.changes and all(isinstance(c, FlowDeleteStrict) for c in stale.changes)
    broken = {
        "downstream phase dropped": Program([ingress, stale, *rest]),
        "downstream and ingress merged": Program([Phase(down.changes + ingress.changes, True), stale, *rest]),
        "ingress and stale deletes merged": Program([down, Phase(ingress.changes + stale.changes, True), *rest]),
        "stale deletes before the ingress": Program([down, Phase(stale.changes, True), ingress, *rest]),
        "no wait after the downstream phase": Program([Phase(down.changes, False), ingress, stale, *rest]),
        "everything at once": Program([Phase(good.changes(), True)]),
    }
    for what, prog in broken.items():
        assert drops(before, prog, OLD), f"{what}: no drop detected"


def test_unplaceable_new_placement_is_reported_not_programmed():
    new = reservation("r1", ["A", "B", "C"], match={"ip_dst": "192.0.2.1"})   # no host matches
    out = programs.reroute(PLAN, [(OLD, new)], link_bps([new]))
    assert out.reservations == 0 and [r.id for r, _ in out.unplaceable] == ["r1"] and not out.program


def test_best_effort_update_routes_around_failed_links():
    failed = {("A", "B"), ("B", "A")}
    net = FakeNetwork(PLAN)
    net.run(programmed(PLAN, []))
    sent = {d: programs.best_effort_entries(PLAN, PLAN.node_of_dpid(d)) for d in net.switches}
    program, now_sent = programs.best_effort_update(PLAN, sent, failed)
    assert program and set(now_sent) < set(sent)            # only the switches whose routes change
    net.run(program)
    via = net.send(SRC, frame_between(PLAN, SRC, DST)).delivered[0]
    assert PLAN.dpid("B") not in via.switches
    assert net.state() == _resynced([], failed=failed)
    sent.update(now_sent)
    assert not programs.best_effort_update(PLAN, sent, failed)[0]   # nothing left to change


def _resynced(reservations, failed=()) -> dict:
    net = FakeNetwork(PLAN)
    net.run(programmed(PLAN, reservations, failed=failed))
    return net.state()
