"""Resync on fake switches: from any switch state (stale entries, missing entries, changed
actions, wrong meter rates, stale meters and groups, wrong group buckets) the resync program
brings the switch to exactly the desired state, and a second resync is empty."""

from __future__ import annotations

import copy
import random

import pytest

from controller.dataplane import programs, specs
from controller.dataplane import translation as tr
from controller.dataplane.programs import FlowAdd, FlowDelete, GroupAdd, GroupModify, MeterAdd, MeterModify
from fakeswitch import FakeNetwork, FakeSwitch, link_bps, programmed, reservation, ring_plan

PLAN = ring_plan()
NOW = [reservation("r1", ["A", "B", "C"]), reservation("r2", ["A", "D", "C"], tenant=2),
       reservation("p1", ["E", "C", "B", "A"], protection=["E", "C", "D", "A"], tenant=1, bw=5_000_000)]
GONE = [reservation("old", ["A", "D", "C"], bw=20_000_000),
        reservation("oldp", ["A", "B", "C"], protection=["A", "D", "C"], tenant=2)]


def desired(reservations, failed=()) -> dict:
    net = FakeNetwork(PLAN)
    net.run(programmed(PLAN, reservations, failed=failed))
    return net.state()


def resync_all(net: FakeNetwork, reservations, failed=()) -> list:
    """Resync every switch; the programs run."""
    progs = []
    for node in PLAN.topology.nodes:
        sw = net.switches[PLAN.dpid(node)]
        prog = programs.resync(PLAN, node, reservations, sw.dump(), failed=set(failed))
        net.run(prog)
        progs.append(prog)
    return progs


def scramble(sw: FakeSwitch, rng: random.Random) -> None:
    """Disorder a switch the way a restart, a lost message or an operator would."""
    keys = list(sw.flows)
    for k in rng.sample(keys, len(keys) // 4):               # missing entries
        del sw.flows[k]
    for k in rng.sample(list(sw.flows), min(3, len(sw.flows))):   # same match, outdated content
        f = sw.flows[k]
        sw.flows[k] = specs.FlowSpec(f.dpid, f.table_id, f.priority, f.match, [], f.cookie ^ 0x5A)
    for m in list(sw.meters.values())[:2]:                   # wrong rates
        sw.meters[m.meter_id] = specs.MeterSpec(m.dpid, m.meter_id, m.rate_kbps + 7, m.burst_kb)
    sw.meters[0x7777] = specs.MeterSpec(sw.dpid, 0x7777, 1, 1)               # stale meter
    stale = specs.FlowSpec(sw.dpid, specs.TABLE_DETERMINISTIC, specs.PRIO_RESERVATION,
                           {"in_port": 99, "vlan_vid": specs.OFPVID_PRESENT | 9, "eth_type": specs.ETH_TYPE_IPV4},
                           [{"type": "meter", "meter_id": 0x7777}, {"type": "apply", "actions": []}],
                           specs.make_cookie(specs.KIND_RESERVATION, 9, 1234))
    sw.flows[stale.key()] = stale                            # stale entry (a reservation long gone)
    sw.groups[0x4242] = specs.GroupSpec(sw.dpid, 0x4242, "all", [[{"type": "output", "port": 1}]])
    for g in list(sw.groups.values()):
        if g.group_id != 0x4242:                             # wrong buckets
            sw.groups[g.group_id] = specs.GroupSpec(g.dpid, g.group_id, "all", g.buckets[:1])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_resync_from_a_scrambled_state_reaches_exactly_the_desired_state(seed):
    rng = random.Random(seed)
    net = FakeNetwork(PLAN)
    net.run(programmed(PLAN, NOW + GONE))                     # was programmed for other reservations
    for sw in net.switches.values():
        scramble(sw, rng)
    progs = resync_all(net, NOW)
    assert any(progs)
    assert net.state() == desired(NOW)
    assert not any(resync_all(net, NOW))                       # a second resync has nothing to do


def test_resync_from_empty_and_around_failed_links():
    failed = {("B", "C"), ("C", "B")}
    net = FakeNetwork(PLAN)
    progs = resync_all(net, NOW, failed)
    assert net.state() == desired(NOW, failed) != desired(NOW)
    # meters and groups come before the entries that use them (the fake switch would refuse otherwise)
    for prog in progs:
        first = prog.phases[0].changes
        assert first and all(isinstance(c, (MeterAdd, MeterModify, GroupAdd, GroupModify)) for c in first)
    assert not any(resync_all(net, NOW, failed))


def test_resync_after_missed_events_equals_the_event_programs():
    """A switch that missed an install and a removal is resynced to what the events would have made."""
    net = FakeNetwork(PLAN)
    net.run(programmed(PLAN, GONE))
    for r in GONE:
        net.run(programs.remove(PLAN, r, link_bps(GONE[GONE.index(r) + 1:])))
    for r in NOW:
        net.run(programs.install(PLAN, r, link_bps(NOW[:NOW.index(r) + 1])))
    by_events = net.state()
    other = FakeNetwork(PLAN)
    other.run(programmed(PLAN, GONE))
    resync_all(other, NOW)
    assert by_events == other.state() == desired(NOW)


def test_best_effort_meters_from_link_bps_match_the_resync():
    """The events size best-effort meters from reserved bit/s per link; a resync from the
    reservations: both must agree or each resync would 'fix' the meters."""
    for node in PLAN.topology.nodes:
        shares = tr.reserved_share_by_port(PLAN, node, NOW)
        assert tr.shares_from_link_bps(PLAN, node, link_bps(NOW)) == shares
    links = {l for r in NOW for l in r.links()}
    got = tr.best_effort_meters_of_links(PLAN, links, link_bps(NOW))
    want = [m for n in PLAN.topology.nodes for m in tr.best_effort_meters(
        PLAN, n, tr.reserved_share_by_port(PLAN, n, NOW))]
    assert len(got) == len(links) and all(m in want for m in got)


def test_removal_is_one_cookie_masked_delete_per_switch():
    res = NOW[2]
    prog = programs.remove(PLAN, res, link_bps(NOW[:2]))
    deletes = [c for c in prog.phases[0].changes if isinstance(c, FlowDelete)]
    assert sorted(c.dpid for c in deletes) == sorted(programs.path_switches(PLAN, res))
    assert all(c.cookie_mask == specs.COOKIE_MASK_RESERVATION for c in deletes)
    assert [type(c).__name__ for c in prog.phases[1].changes][:2] == ["MeterDelete", "GroupDelete"]
    install = programs.install(PLAN, res, link_bps(NOW))
    assert all(isinstance(c, FlowAdd) for c in install.phases[-1].changes)


@pytest.mark.parametrize("seed", [3, 4])
def test_resync_many_is_resync_of_each_switch_and_its_merged_program_reaches_the_desired_state(seed):
    """A new leader resynchronises every switch as one program (``resync_many`` + ``merged``), each
    reservation translated once: the same changes as one ``resync`` per switch, and the same end state."""
    failed = {("A", "B")}
    want = desired(NOW, failed=failed)
    net = FakeNetwork(PLAN)
    net.run(programmed(PLAN, GONE + NOW))
    rng = random.Random(seed)
    for sw in net.switches.values():
        scramble(sw, rng)
    actual = {node: net.switches[PLAN.dpid(node)].dump() for node in PLAN.topology.nodes}
    many = programs.resync_many(PLAN, actual, NOW, failed=failed)
    for node in PLAN.topology.nodes:
        one = programs.resync(PLAN, node, NOW, actual[node], failed=failed)
        assert [c.describe() for c in many[node].changes()] == [c.describe() for c in one.changes()]
    program = programs.merged(many.values())
    assert len(program.phases) <= 3
    net.run(program)
    assert net.state() == want


def test_desired_states_reports_an_untranslatable_reservation_once():
    broken = reservation("bad", ["A", "B", "C"], match={"udp_dst": 5000, "ip_proto": 6})   # UDP port, TCP
    errors = []
    programs.resync_many(PLAN, {n: FakeSwitch(PLAN.dpid(n)).dump() for n in "ABC"}, NOW + [broken],
                         on_error=lambda r, e: errors.append(r.id))
    assert errors == ["bad"]


def test_rebased_keeps_what_was_programmed_while_the_resync_planned():
    """A takeover resync plans on a snapshot while writes go on: a reservation installed after the
    dump and one removed before it must survive the plan, and the best-effort meters must fit now."""
    new = reservation("new", ["A", "B", "C"], bw=30_000_000)
    gone = NOW[0]                                   # r1: in the snapshot, removed meanwhile
    net = FakeNetwork(PLAN)
    net.run(programmed(PLAN, GONE + NOW))           # what the last leader left, with stale entries
    snapshot = NOW
    actual = {n: net.switches[PLAN.dpid(n)].dump() for n in PLAN.topology.nodes}
    plans = programs.resync_many(PLAN, actual, snapshot)
    # meanwhile: r1 removed and "new" installed, by their own programs
    net.run(programs.remove_many(PLAN, [gone], link_bps(snapshot)))
    now = [r for r in NOW if r.id != gone.id] + [new]
    net.run(programs.install_many(PLAN, [new], link_bps(now))[0])
    stale_run = programs.merged(plans.values())
    rebased = programs.merged(programs.rebased(plans[n], PLAN, n, actual[n], {gone.id, new.id}, now)
                              for n in PLAN.topology.nodes)
    wrong = copy.deepcopy(net)
    wrong.run(stale_run)
    assert wrong.state() != desired(now)            # the plan alone would undo the writes made meanwhile
    net.run(rebased)
    assert net.state() == desired(now)


def test_rebased_without_touched_reservations_is_the_plan_itself():
    net = FakeNetwork(PLAN)
    net.run(programmed(PLAN, GONE))
    actual = {n: net.switches[PLAN.dpid(n)].dump() for n in PLAN.topology.nodes}
    plans = programs.resync_many(PLAN, actual, NOW)
    for n in PLAN.topology.nodes:
        assert programs.rebased(plans[n], PLAN, n, actual[n], set(), NOW) is plans[n]
