"""Scheduler.reserved_bps (kept incrementally) always equals the sum over the admitted reservations'
paths, and the shim's best-effort meters computed from it equal the resync's (translation.baseline)."""

from __future__ import annotations

import random

from controller.dataplane import translation as tr
from controller.core.bench import workload
from controller.core.scheduler import Scheduler
from topologies.hosts import HostPlan
from topologies.loaders import load_topology


def _recount(sched: Scheduler) -> dict:
    used: dict = {}
    for r in sched.reservations.values():
        for p in r.all_paths():
            for a, b in zip(p, p[1:]):
                used[(a, b)] = used.get((a, b), 0) + int(r.bandwidth_bps)
    return {k: v for k, v in used.items() if v}


def test_reserved_bps_tracks_admit_release_and_restore():
    topo = load_topology("fntf40")
    sched = Scheduler(topo)
    rng = random.Random(3)
    admitted = []
    for req in workload(topo, 300, 8, seed=5):
        out = sched.admit(req)
        if hasattr(out, "path"):
            admitted.append(out.id)
        if admitted and rng.random() < 0.3:
            sched.release(admitted.pop(rng.randrange(len(admitted))))
    assert sched.reserved_bps() and sched.reserved_bps() == _recount(sched)
    # a restored copy (as at controller start-up) holds the same figures
    again = Scheduler(topo)
    for r in sched.reservations.values():
        again.restore(r)
    assert again.reserved_bps() == sched.reserved_bps()
    for rid in list(admitted):
        sched.release(rid)
    assert sched.reserved_bps() == {} == _recount(sched)


def test_best_effort_meters_from_link_bps_equal_the_resync_ones():
    """The shim sizes best-effort meters from reserved_bps; a resync sizes them from the reservations
    (translation.reserved_share_by_port): both must give the same meters, or a resync would 'fix' them."""
    topo = load_topology("fntf40")
    plan = HostPlan(topo)
    sched = Scheduler(topo)
    for req in workload(topo, 200, 4, seed=9):
        sched.admit(req)
    used = sched.reserved_bps()
    res = list(sched.reservations.values())
    for node in topo.nodes:
        from_res = tr.best_effort_meters(plan, node, tr.reserved_share_by_port(plan, node, res), rate_scale=0.001)
        shares = {plan.port(u, v): min(1.0, bw / topo.capacity_bps(u, v)) for (u, v), bw in used.items() if u == node}
        from_bps = tr.best_effort_meters(plan, node, shares, rate_scale=0.001)
        assert from_res == from_bps, node
