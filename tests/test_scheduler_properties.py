"""Property tests of the scheduler: random small meshes, random request mixes, admits and releases.

Invariants (checked by ``check_schedule`` from test_scheduler): no slot is held twice on a link,
the tables equal the union of the reservations' hops, hop spacing holds, every bound lies between
the physical minimum and the requested maximum. Here also: a rejection changes nothing, a release
frees its slots, evaluate agrees with admit, restore reproduces, any admission order stays valid.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.model import Request, Reservation
from controller.core.scheduler import Scheduler
from test_scheduler import check_schedule
from topologies.model import Topology

MS = 1_000_000
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def topologies(draw) -> Topology:
    """A ring of 3-6 nodes plus random chords, mixed capacities and lengths (0-100 km)."""
    n = draw(st.integers(3, 6))
    t = Topology("prop")
    names = [f"n{i}" for i in range(n)]
    for x in names:
        t.add_node(x)
    edges = {(i, (i + 1) % n) for i in range(n)}
    for _ in range(draw(st.integers(0, 3))):
        a, b = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
        if a != b and (b, a) not in edges:
            edges.add((a, b))
    for a, b in sorted(edges):
        if t.graph.has_edge(names[a], names[b]):
            continue
        t.add_link(names[a], names[b], km=draw(st.integers(0, 100)),
                   capacity_bps=draw(st.sampled_from([10**8, 10**8, 10**9, 10**10])))
    return t


def requests(n_nodes: int):
    return st.builds(
        lambda s, d, frame, period, lat, tenant: Request(
            tenant=tenant, src=f"n{s}", dst=f"n{(s + d) % n_nodes}", max_latency_ns=lat,
            period_ns=period, frame_bytes=frame),
        st.integers(0, n_nodes - 1), st.integers(1, n_nodes - 1), st.one_of(st.integers(64, 1500), st.integers(1500, 60_000)),
        st.sampled_from([MS, 2 * MS, 3 * MS, 4 * MS]),
        st.one_of(st.integers(10_000, 300_000), st.integers(2 * MS, 5 * MS), st.integers(4 * MS, 5 * MS)), st.integers(1, 4))


@st.composite
def scenarios(draw):
    topo = draw(topologies())
    n = topo.graph.number_of_nodes()
    ops = draw(st.lists(st.one_of(st.tuples(st.just("admit"), requests(n)),
                                  st.tuples(st.just("release"), st.integers(0, 50))), min_size=1, max_size=40))
    opts = dict(max_wait_slots=draw(st.integers(0, 4)), max_share=draw(st.sampled_from([0.5, 0.75, 1.0])),
                max_cycle_ns=draw(st.sampled_from([4 * MS, 12 * MS])))
    return topo, ops, opts


@SETTINGS
@given(scenarios())
def test_random_admits_and_releases_keep_a_valid_schedule(scenario):
    topo, ops, opts = scenario
    s = Scheduler(topo, **opts)
    for op, arg in ops:
        if op == "admit":
            before = s.state_fingerprint()
            what_if = s.evaluate(arg)
            assert s.state_fingerprint() == before
            out = s.admit(arg)
            if isinstance(out, Reservation):
                assert isinstance(what_if, Reservation) and what_if.to_dict() == out.to_dict()
                assert out.latency_bound_ns <= arg.max_latency_ns
            else:
                assert what_if == out
                assert s.state_fingerprint() == before, f"rejection {out.reason} changed the state"
        elif s.reservations:
            rid = sorted(s.reservations)[arg % len(s.reservations)]
            gone = s.release(rid)
            for h in gone.hops:
                assert not s.slot_table(h.src, h.dst)[h.slots].any()
        check_schedule(s)


@SETTINGS
@given(scenarios(), st.randoms(use_true_random=False))
def test_restore_reproduces_and_any_order_stays_valid(scenario, rnd):
    topo, ops, opts = scenario
    s = Scheduler(topo, **opts)
    reqs = [arg for op, arg in ops if op == "admit"]
    outcomes = [(q, s.admit(q)) for q in reqs]
    admitted = [r for _, r in outcomes if isinstance(r, Reservation)]
    # restore into a fresh scheduler: same tables, same reservations
    s2 = Scheduler(topo, **opts)
    for r in admitted:
        s2.restore(Reservation.from_dict(r.to_dict()))
    check_schedule(s2)
    assert s2.cycle_ns == s.cycle_ns
    assert s2.state_fingerprint() == s.state_fingerprint()
    # the admitted set in another order: whatever is admitted forms a valid schedule
    again = [q for q, r in outcomes if isinstance(r, Reservation)]
    rnd.shuffle(again)
    s3 = Scheduler(topo, **opts)
    for q in again:
        s3.admit(q)
    check_schedule(s3)


@st.composite
def congested_line(draw):
    """A-B-C at 1 Gb/s, full share allowed, short periods (20-100 slots) and 1-10 slot frames,
    one- and two-hop flows admitted and released at random: the few slots per period fragment, so
    two-hop flows often have to wait (or fail) at B-C."""
    t = Topology("congested")
    for x in "ABC":
        t.add_node(x)
    t.add_link("A", "B", km=draw(st.integers(0, 3)), capacity_bps=10**9)
    t.add_link("B", "C", km=draw(st.integers(0, 3)), capacity_bps=10**9)
    flow = st.builds(
        lambda ends, frame, period: Request(tenant=1, src=ends[0], dst=ends[1], max_latency_ns=2 * MS,
                                            period_ns=period, frame_bytes=frame),
        st.sampled_from([("A", "B"), ("B", "C"), ("B", "C"), ("A", "C"), ("A", "C")]), st.integers(100, 1250),
        st.sampled_from([10_000, 20_000, 20_000, 50_000]))
    ops = draw(st.lists(st.one_of(st.tuples(st.just("admit"), flow), st.tuples(st.just("admit"), flow),
                                  st.tuples(st.just("release"), st.integers(0, 100))), min_size=10, max_size=80))
    return t, ops, dict(max_wait_slots=draw(st.integers(0, 3)), max_share=1.0)


@SETTINGS
@given(congested_line())
def test_congested_line_waits_stay_bounded(scenario):
    test_random_admits_and_releases_keep_a_valid_schedule.hypothesis.inner_test(scenario)


@SETTINGS
@given(congested_line(), st.randoms(use_true_random=False))
def test_congested_line_restore_and_any_order(scenario, rnd):
    test_restore_reproduces_and_any_order_stays_valid.hypothesis.inner_test(scenario, rnd)
