"""Reservations committed together go to the switches as one program (``programs.install_many``,
``programs.remove_many``): one message run and one barrier per phase on each switch, and the same
tables as installing or removing them one by one."""

from __future__ import annotations

from controller.dataplane import programs
from controller.dataplane.programs import FlowAdd, MeterModify
from fakeswitch import FakeNetwork, frame_between, link_bps, programmed, reservation, ring_plan

PLAN = ring_plan()
BATCH = [reservation("r1", ["A", "B", "C"]), reservation("r2", ["A", "D", "C"], bw=20_000_000),
         reservation("r3", ["C", "B", "A"], tenant=2), reservation("r4", ["A", "B", "C", "E"],
                                                                   protection=["A", "D", "C", "E"])]


def _one_by_one(reservations) -> FakeNetwork:
    net = FakeNetwork(PLAN)
    net.run(programmed(PLAN, []))
    for i, r in enumerate(reservations):
        net.run(programs.install(PLAN, r, link_bps(reservations[: i + 1])))
    return net


def test_a_batch_installs_the_same_tables_as_one_by_one():
    net = FakeNetwork(PLAN)
    net.run(programmed(PLAN, []))
    program, skipped = programs.install_many(PLAN, BATCH, link_bps(BATCH))
    assert not skipped
    net.run(program)
    assert net.state() == _one_by_one(BATCH).state()
    # and what a switch that connects now would be given
    assert net.state() == _resync_state(BATCH)


def test_a_batch_is_two_phases_whatever_its_size_and_shared_meters_are_written_once():
    program, _ = programs.install_many(PLAN, BATCH, link_bps(BATCH))
    assert len(program.phases) == 2
    be = [(c.dpid, c.meter.meter_id) for c in program.changes() if isinstance(c, MeterModify)]
    assert be and len(be) == len(set(be))
    separate = sum(len(programs.install(PLAN, r, link_bps(BATCH)).phases) for r in BATCH)
    assert separate == 2 * len(BATCH)     # what the batch saves: one barrier round per member and phase
    flows = [c for c in program.changes() if isinstance(c, FlowAdd)]
    assert flows == [c for r in BATCH for c in programs.install(PLAN, r, link_bps(BATCH)).changes()
                     if isinstance(c, FlowAdd)]


def test_a_member_that_cannot_be_expressed_is_skipped_and_named():
    bad = reservation("r9", ["A", "B", "C"], match={"ip_src": "10.9.9.9"})   # not a tenant-1 host
    program, skipped = programs.install_many(PLAN, [BATCH[0], bad], link_bps([BATCH[0], bad]))
    assert [r.id for r, _ in skipped] == ["r9"]
    assert {c.note for c in program.changes() if isinstance(c, FlowAdd)} == {"r1"}


def test_a_batch_removal_leaves_what_removing_each_would():
    net = _one_by_one(BATCH)
    gone, kept = BATCH[:3], BATCH[3:]
    net.run(programs.remove_many(PLAN, gone, link_bps(kept)))
    assert net.state() == _resync_state(kept)
    src, dst = PLAN.hosts_of(1)[0].name, [h for h in PLAN.hosts_of(1) if h.switch == "C"][0].name
    assert net.send(src, frame_between(PLAN, src, dst)).delivered        # best effort carries it again


def _resync_state(reservations) -> dict:
    net = FakeNetwork(PLAN)
    net.run(programmed(PLAN, reservations))
    return net.state()
