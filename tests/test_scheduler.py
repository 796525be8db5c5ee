"""Unit tests of the scheduling core on small hand-checked topologies (and fntf40).

``check_schedule`` recomputes everything a valid schedule must satisfy from the reservations
alone; the property tests import it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from controller.core.model import Hop, Request, Reservation, Tenant
from controller.core.scheduler import Scheduler
from controller.core.tenants import TenantBook
from topologies.model import Topology

MS = 1_000_000


# ----- helpers ------------------------------------------------------------------
def line(km_ab: float = 1, km_bc: float = 2, cap: int = 10**9, cap_bc: int | None = None) -> Topology:
    """A-B-C; 1 km is 5000 ns of propagation."""
    t = Topology("line")
    for n in "ABC":
        t.add_node(n)
    t.add_link("A", "B", km=km_ab, capacity_bps=cap)
    t.add_link("B", "C", km=km_bc, capacity_bps=cap if cap_bc is None else cap_bc)
    return t


def square() -> Topology:
    """A-B-D (short) and A-C-D (longer), 1 Gb/s."""
    t = Topology("square")
    for n in "ABCD":
        t.add_node(n)
    t.add_link("A", "B", km=1)
    t.add_link("B", "D", km=1)
    t.add_link("A", "C", km=3)
    t.add_link("C", "D", km=3)
    for u, v, d in t.graph.edges(data=True):
        d["capacity_bps"] = 10**9
    return t


def req(src="A", dst="C", frame=1500, period=MS, max_lat=MS, tenant=1, **kw) -> Request:
    return Request(tenant=tenant, src=src, dst=dst, max_latency_ns=max_lat, period_ns=period,
                   frame_bytes=frame, **kw)


def _proc(s: Scheduler, u: str, v: str) -> int:
    return int(s.topology.graph.edges[u, v].get("processing_ns", s.processing_ns))


def check_schedule(s: Scheduler) -> None:
    """Assert that the scheduler's reservations form a valid schedule and match its tables."""
    slot = s.slot_ns
    c = s.cycle_ns // slot
    held: dict[tuple[str, str], set[int]] = {}
    g = s.topology.graph
    for r in s.reservations.values():
        p = r.period_ns // slot
        assert r.period_ns % slot == 0 and c % p == 0
        assert r.path[0] == r.src and r.path[-1] == r.dst and len(set(r.path)) == len(r.path)
        links = list(zip(r.path, r.path[1:]))
        assert [(h.src, h.dst) for h in r.hops] == links
        starts, ns = [], []
        for h in r.hops:
            n = s.slots_needed(r.frame_bytes, h.src, h.dst)
            ns.append(n)
            assert len(h.slots) == len(set(h.slots)) == n * (c // p)
            assert all(0 <= x < c for x in h.slots)
            res = {x % p for x in h.slots}
            assert len(res) == n
            first = [x for x in res if (x - 1) % p not in res]
            if n == p:       # the block fills the period: any start fits, the search takes the earliest
                first = [None]
            assert len(first) == 1, "a hop's slots must be one block per period"
            starts.append(first[0])
            mine = held.setdefault((h.src, h.dst), set())
            assert mine.isdisjoint(h.slots), f"slot held twice on {h.src}-{h.dst}"
            mine.update(h.slots)
        # store-and-forward spacing with bounded wait
        if starts[0] is None:
            starts[0] = r.tx_offsets_ns[0] // slot % p
        assert r.tx_offsets_ns[0] // slot % p == starts[0]
        unwrapped = [starts[0]]
        for i in range(1, len(links)):
            earliest = unwrapped[-1] + ns[i - 1] + s.gap_slots(*links[i - 1])
            wait = 0 if starts[i] is None else (starts[i] - earliest) % p
            assert wait <= s.max_wait_slots
            unwrapped.append(earliest + wait)
        last = links[-1]
        bound = (unwrapped[-1] + ns[-1] - unwrapped[0]) * slot + g.edges[last]["propagation_ns"] + _proc(s, *last)
        assert r.latency_bound_ns == bound
        prop = s.topology.path_propagation_ns(r.path)
        assert bound >= prop + r.frame_bytes * 8e9 / g.edges[links[0]]["capacity_bps"]
        assert bound <= r.max_latency_ns
        assert r.jitter_bound_ns == slot
        assert r.tx_offsets_ns == [(starts[0] + k * p) * slot for k in range(c // p)], "talker offsets"
    for u, v in s.topology.directed_links():
        table = s.slot_table(u, v)
        assert len(table) == c
        assert set(np.flatnonzero(table).tolist()) == held.get((u, v), set())
        assert s.free_slots(u, v) == c - len(held.get((u, v), ()))
        assert len(held.get((u, v), ())) <= s.max_share * c


# ----- hand-checked placements ------------------------------------------------------
def test_three_node_line_exact_slots_and_bound():
    s = Scheduler(line())
    r = s.admit(req())
    # 1500 B at 1 Gb/s = 12 us = 12 slots; A-B gap = ceil((5000 + 1000) / 1000) = 6 slots
    assert isinstance(r, Reservation)
    assert r.id == "r1" and r.path == ["A", "B", "C"]
    assert r.hops[0].slots == list(range(0, 12))
    assert r.hops[1].slots == list(range(18, 30))
    assert r.latency_bound_ns == 30 * 1000 + 10_000 + 1000
    assert r.tx_offsets_ns == [0] and r.jitter_bound_ns == 1000
    assert r.bandwidth_bps == 12_000_000
    # the next one takes the next block and keeps the same bound
    r2 = s.admit(req())
    assert r2.id == "r2"
    assert r2.hops[0].slots == list(range(12, 24)) and r2.hops[1].slots == list(range(30, 42))
    assert r2.latency_bound_ns == r.latency_bound_ns and r2.tx_offsets_ns == [12_000]
    check_schedule(s)


def test_spacing_follows_propagation_and_processing():
    s = Scheduler(line(km_ab=10), processing_ns=2500)
    r = s.admit(req())
    # gap = ceil((50_000 + 2500) / 1000) = 53
    assert r.hops[1].slots[0] == 12 + 53
    assert r.latency_bound_ns == (12 + 53 + 12) * 1000 + 10_000 + 2500
    t = line(km_ab=10)
    t.graph.edges["A", "B"]["processing_ns"] = 0      # an edge attribute overrides the default
    s2 = Scheduler(t)
    assert s2.admit(req()).hops[1].slots[0] == 12 + 50
    check_schedule(s)
    check_schedule(s2)


def test_bulk_request_by_bandwidth():
    s = Scheduler(line(cap=10**10))
    r = s.admit(Request(tenant=1, src="A", dst="C", max_latency_ns=MS, bandwidth_bps=10**9))
    # 1 Gb/s over the default 1 ms period: 125000 B, 100 us at 10 Gb/s = 100 slots per hop
    assert r.period_ns == MS and r.frame_bytes == 125_000 and r.bandwidth_bps == 10**9
    assert len(r.hops[0].slots) == 100
    check_schedule(s)


def test_capacity_rejection_names_the_link_over_max_share():
    s = Scheduler(line(cap_bc=10**8))        # B-C 100 Mb/s: 1500 B needs 120 slots
    for _ in range(6):                      # 6 x 120 = 720 <= 750 = 0.75 x 1000
        assert isinstance(s.admit(req()), Reservation)
    before = s.state_fingerprint()
    rej = s.admit(req())
    assert rej.reason == "capacity:B-C" and rej.code == "capacity"
    assert s.state_fingerprint() == before
    assert s.link_share()[("B", "C")] == pytest.approx(0.72)
    assert s.link_share()[("C", "B")] == 0
    check_schedule(s)


def _blocked_line(max_wait: int) -> Scheduler:
    """B-C free only at slots 998-999; A-B held at 990-991 by an exactly restored reservation."""
    s = Scheduler(line(), max_wait_slots=max_wait, max_share=1.0)
    big = s.admit(Request(tenant=1, src="B", dst="C", max_latency_ns=2 * MS, period_ns=MS, frame_bytes=125 * 998))
    assert big.hops[0].slots == list(range(998))
    s.restore(Reservation(id="blk", tenant=1, src="A", dst="B", period_ns=MS, frame_bytes=250,
                          bandwidth_bps=2_000_000, max_latency_ns=MS, latency_bound_ns=8000, jitter_bound_ns=1000,
                          path=["A", "B"], hops=[Hop("A", "B", [990, 991])], tx_offsets_ns=[990_000]))
    return s


def test_capacity_rejection_when_slot_search_fails():
    # a 2-slot frame must reach B-C at 998: A-B start 998 - 2 - 6 = 990, which is held
    s = _blocked_line(max_wait=0)
    before = s.state_fingerprint()
    rej = s.admit(req(frame=250))
    assert rej.reason == "capacity:B-C"
    assert s.state_fingerprint() == before
    check_schedule(s)


def test_bounded_wait_lets_a_frame_wait_for_its_slots():
    s = _blocked_line(max_wait=2)
    r = s.admit(req(frame=250))
    # start 988 on A-B (989-991 would overlap the blocker), earliest on B-C 996, waits 2 slots
    assert r.hops[0].slots == [988, 989] and r.hops[1].slots == [998, 999]
    assert r.latency_bound_ns == (998 + 2 - 988) * 1000 + 10_000 + 1000
    check_schedule(s)


def test_latency_rejection_reports_best_bound():
    s = Scheduler(line())
    rej = s.admit(req(max_lat=40_999))
    assert rej.reason == "latency:41000"
    assert s.admit(req(max_lat=41_000)).latency_bound_ns == 41_000


def test_jitter_bound_is_one_slot():
    s = Scheduler(line())
    assert s.admit(req(max_jitter_ns=999)).reason == "jitter:1000"
    r = s.admit(req(max_jitter_ns=1000))
    assert r.max_jitter_ns == 1000 and r.jitter_bound_ns == 1000


def test_second_candidate_path_when_the_first_is_full():
    s = Scheduler(square(), max_share=0.5)
    ok = [s.admit(req(src="A", dst="D", frame=62_500, max_lat=3 * MS)) for _ in range(2)]   # 500 slots per hop
    assert ok[0].path == ["A", "B", "D"]
    assert ok[1].path == ["A", "C", "D"]
    assert s.admit(req(src="A", dst="D", frame=62_500, max_lat=3 * MS)).reason == "capacity:A-B"
    check_schedule(s)


def test_path_hints_and_failed_links():
    s = Scheduler(square())
    r = s.admit(req(src="A", dst="D", paths=[["A", "C", "D"]]))
    assert r.path == ["A", "C", "D"]
    assert s.admit(req(src="A", dst="D", paths=[["A", "D"]])).reason == "invalid:paths"
    assert s.admit(req(src="A", dst="D", paths=[["A", "B", "C"]])).reason == "invalid:paths"
    s.fail_link("A", "B")
    assert s.admit(req(src="A", dst="D")).path == ["A", "C", "D"]
    assert s.admit(req(src="A", dst="D", paths=[["A", "B", "D"]])).reason == "no_path"
    s.fail_link("A", "C")
    assert s.admit(req(src="A", dst="D")).reason == "no_path"
    s.restore_link("A", "B")
    assert s.admit(req(src="A", dst="D")).path == ["A", "B", "D"]
    check_schedule(s)


def test_no_path_when_disconnected():
    t = line()
    t.add_node("Z")
    s = Scheduler(t)
    assert s.admit(req(dst="Z")).reason == "no_path"


@pytest.mark.parametrize("kw, reason", [
    (dict(period=1500), "invalid:period_ns"),
    (dict(dst="Nowhere"), "invalid:dst"),
    (dict(src="Nowhere"), "invalid:src"),
    (dict(tenant=0), "invalid:tenant"),
    (dict(frame=0), "invalid:frame_bytes"),
    (dict(max_lat=-1), "invalid:max_latency_ns"),
    (dict(dst="A"), "invalid:dst"),
    (dict(id="bad id!"), "invalid:id"),
])
def test_invalid_fields(kw, reason):
    s = Scheduler(line())
    before = s.state_fingerprint()
    rej = s.admit(req(**kw))
    assert rej.reason == reason and rej.detail
    assert s.state_fingerprint() == before


def test_ids_given_generated_and_exists():
    s = Scheduler(line())
    assert s.admit(req(id="r2")).id == "r2"
    assert s.admit(req()).id == "r1"
    assert s.admit(req()).id == "r3"          # r2 is taken by the given id
    assert s.admit(req(id="r1")).reason == "exists"
    assert s.admit(Request.from_dict({"tenant": 2, "src": "C", "dst": "A", "max_latency_ns": MS,
                                      "period_ns": MS, "frame_bytes": 100, "id": "x"})).path == ["C", "B", "A"]


def test_evaluate_answers_like_admit_and_changes_nothing():
    s = Scheduler(line())
    s.admit(req())
    before = s.state_fingerprint()
    what_if = s.evaluate(req(period=3 * MS))
    assert s.state_fingerprint() == before and s.cycle_ns == MS
    real = s.admit(req(period=3 * MS))
    assert what_if.to_dict() == real.to_dict()
    assert s.evaluate(req(max_lat=1000)).reason == s.admit(req(max_lat=1000)).reason


# ----- release and restore ------------------------------------------------------------
def test_release_frees_exactly_its_slots():
    s = Scheduler(line())
    r1, r2, r3 = (s.admit(req()) for _ in range(3))
    before = {l: s.slot_table(*l).copy() for l in s.topology.directed_links()}
    out = s.release(r2.id)
    assert out.id == r2.id and r2.id not in s.reservations
    for h in r2.hops:
        t = s.slot_table(h.src, h.dst)
        assert not t[h.slots].any()
        expect = before[(h.src, h.dst)].copy()
        expect[h.slots] = False
        assert (t == expect).all()
    with pytest.raises(KeyError):
        s.release(r2.id)
    check_schedule(s)
    # the freed block is reused first
    assert s.admit(req()).hops[0].slots == r2.hops[0].slots


def test_restore_reproduces_the_schedule():
    s = Scheduler(line(cap=10**10))
    admitted = [s.admit(req(frame=f, period=p)) for f, p in [(1500, MS), (9000, 2 * MS), (64, 4 * MS), (20000, MS)]]
    assert all(isinstance(r, Reservation) for r in admitted)
    doc = json.loads(json.dumps([r.to_dict() for r in s.reservations.values()]))
    s2 = Scheduler(line(cap=10**10))
    for d in doc:
        s2.restore(Reservation.from_dict(d))
    assert s2.cycle_ns == s.cycle_ns
    assert s2.state_fingerprint() == s.state_fingerprint()
    assert [r.to_dict() for r in s2.reservations.values()] == doc
    check_schedule(s2)
    # a conflict or a mismatch is refused and changes nothing
    before = s2.state_fingerprint()
    with pytest.raises(ValueError, match="exists"):
        s2.restore(Reservation.from_dict(doc[0]))
    clash = dict(doc[0], id="clash")
    with pytest.raises(ValueError, match="conflict"):
        s2.restore(Reservation.from_dict(clash))
    wrong_hop = json.loads(json.dumps(doc[0]))
    wrong_hop.update(id="w", hops=[dict(h, src="C") for h in wrong_hop["hops"]])
    with pytest.raises(ValueError, match="not on the path"):
        s2.restore(Reservation.from_dict(wrong_hop))
    too_few = json.loads(json.dumps(doc[0]))
    too_few.update(id="f", hops=[dict(h, slots=h["slots"][:1]) for h in too_few["hops"]])
    with pytest.raises(ValueError, match="needs"):
        s2.restore(Reservation.from_dict(too_few))
    assert s2.state_fingerprint() == before


def test_restore_grows_the_cycle_and_accepts_a_smaller_cycle_expression():
    s = Scheduler(line())
    r = s.admit(req(period=2 * MS))
    s.admit(req(period=4 * MS))                 # cycle now 4 ms; r's slots repeat twice
    assert s.cycle_ns == 4 * MS and len(r.hops[0].slots) == 24
    s2 = Scheduler(line())
    small = r.to_dict()
    small["hops"] = [dict(h, slots=[x for x in h["slots"] if x < 2000]) for h in small["hops"]]
    small["tx_offsets_ns"] = small["tx_offsets_ns"][:1]
    s2.restore(Reservation.from_dict(small))
    assert s2.cycle_ns == 2 * MS
    assert s2.reservations[r.id].hops[0].slots == [x for x in r.hops[0].slots if x < 2000]
    check_schedule(s2)


# ----- the cycle ------------------------------------------------------------------
def test_cycle_grows_to_the_lcm_and_tiles_existing_reservations():
    s = Scheduler(line())
    r1 = s.admit(req())
    assert s.cycle_ns == MS
    r2 = s.admit(req(period=3 * MS))
    assert s.cycle_ns == 3 * MS
    assert r1.hops[0].slots == [k * 1000 + i for k in range(3) for i in range(12)]
    assert r1.tx_offsets_ns == [0, MS, 2 * MS]
    assert r2.hops[0].slots == list(range(12, 24))
    s.admit(req(period=2 * MS))
    assert s.cycle_ns == 6 * MS
    check_schedule(s)


def test_cycle_over_the_limit_is_rejected_and_changes_nothing():
    s = Scheduler(line(), max_cycle_ns=4 * MS)
    s.admit(req(period=3 * MS))
    before = s.state_fingerprint()
    rej = s.admit(req(period=2 * MS))            # lcm(3, 2) = 6 ms > 4 ms
    assert rej.reason == "invalid:period_ns" and "hyperperiod" in rej.detail
    assert s.state_fingerprint() == before and s.cycle_ns == 3 * MS
    assert s.admit(req(period=5 * MS)).reason == "invalid:period_ns"
    rej = s.admit(req(period=3 * MS, frame=10**6))   # fails for capacity: no growth either
    assert rej.code in ("capacity", "latency") and s.cycle_ns == 3 * MS


# ----- tenants and quotas ----------------------------------------------------------------
def test_quotas_and_unknown_tenant():
    book = TenantBook()
    book.add(Tenant(1, "a", quota_bps=20_000_000))
    book.add(Tenant(2, "b", max_reservations=1))
    s = Scheduler(line(), tenants=book)
    assert isinstance(s.admit(req(tenant=1)), Reservation)      # 12 Mb/s
    assert s.admit(req(tenant=1)).reason == "quota"              # 24 Mb/s > 20
    assert isinstance(s.admit(req(tenant=1, frame=1000)), Reservation)   # 8 Mb/s: exactly 20
    r = s.admit(req(tenant=2))
    assert s.admit(req(tenant=2)).reason == "quota"
    assert s.admit(req(tenant=3)).reason == "invalid:tenant"
    assert book.usage(1).bps == 20_000_000 and book.usage(1).reservations == 2
    s.release(r.id)
    assert book.usage(2).reservations == 0
    assert isinstance(s.admit(req(tenant=2)), Reservation)


# ----- the 40-city backbone -------------------------------------------------------------
def test_fntf40_admissions_are_valid():
    from controller.core.bench import workload
    from topologies.loaders import load_topology

    topo = load_topology("fntf40")
    s = Scheduler(topo)
    results = [s.admit(r) for r in workload(topo, 300, 16, seed=7)]
    admitted = [r for r in results if isinstance(r, Reservation)]
    assert len(admitted) >= 290
    assert s.cycle_ns == 8 * MS
    check_schedule(s)
    for r in admitted[:20]:
        assert s.release(r.id) is r
    check_schedule(s)


# ----- the admission benchmark --------------------------------------------------------------
def test_bench_workload_is_seeded_and_documented_mix():
    from controller.core.bench import HARMONIC_PERIODS_NS, workload
    from topologies.loaders import load_topology

    topo = load_topology("fntf40")
    a, b = workload(topo, 2000, 128, seed=3), workload(topo, 2000, 128, seed=3)
    assert [(r.src, r.dst, r.frame_bytes, r.bandwidth_bps, r.period_ns) for r in a] == \
           [(r.src, r.dst, r.frame_bytes, r.bandwidth_bps, r.period_ns) for r in b]
    assert a != workload(topo, 2000, 128, seed=4)
    bulk = [r for r in a if r.bandwidth_bps is not None]
    assert 0.07 < len(bulk) / len(a) < 0.13
    assert all(10**9 <= r.bandwidth_bps <= 5 * 10**9 and r.period_ns == MS for r in bulk)
    small = [r for r in a if r.bandwidth_bps is None]
    assert all(64 <= r.frame_bytes <= 1500 and r.period_ns in HARMONIC_PERIODS_NS for r in small)
    assert {r.tenant for r in a} == set(range(1, 129))
    for r in a[:50]:
        assert r.max_latency_ns == 2 * topo.path_propagation_ns(
            __import__("networkx").dijkstra_path(topo.graph, r.src, r.dst, weight="propagation_ns")) + 5 * MS


def test_dnctl_bench_admission_json(capsys):
    from tools.cli.main import main

    assert main(["bench", "admission", "--topology", "fntf40", "--reservations", "200", "--tenants", "8",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("admitted", "rejected", "total_s", "p50_ms", "p99_ms", "peak_rss_mb"):
        assert key in out
    assert out["admitted"] + out["rejected"] == 200
    assert out["rejected"] == sum(out["rejected_by_reason"].values())
    assert 0 < out["p50_ms"] <= out["p99_ms"] and out["peak_rss_mb"] > 0
    assert main(["bench", "admission", "--topology", "no-such-topology"]) == 2
    assert "no-such-topology" in capsys.readouterr().err
