"""Schedule JSON contract: export shape, round trip through load_schedule, and import validation."""

import copy
import json

import pytest

from controller.core.model import Request, Reservation
from controller.core.scheduler import Scheduler
from schedules.schedule_json import SchedulePayloadError, load_schedule, schedule_to_dict, validate_schedule
from topologies.model import Topology

CONTRACT_RES_FIELDS = {"id", "tenant", "src", "dst", "period_ns", "frame_bytes", "bandwidth_bps", "max_latency_ns",
                       "latency_bound_ns", "path", "hops", "tx_offsets_ns"}


def small_topology() -> Topology:
    t = Topology("square")
    for n in "abcd":
        t.add_node(n)
    for u, v, km in (("a", "b", 10), ("b", "c", 20), ("c", "d", 10), ("d", "a", 30), ("a", "c", 25)):
        t.add_link(u, v, km, capacity_bps=1_000_000_000)
    return t


def admitted_scheduler() -> Scheduler:
    s = Scheduler(small_topology(), slot_ns=1000, base_cycle_ns=1_000_000)
    reqs = [Request(tenant=1, src="a", dst="c", period_ns=500_000, frame_bytes=3000, max_latency_ns=5_000_000, id="x1"),
            Request(tenant=2, src="b", dst="d", period_ns=2_000_000, frame_bytes=1500, max_latency_ns=5_000_000),
            Request(tenant=1, src="d", dst="b", bandwidth_bps=100_000_000, max_latency_ns=9_000_000),
            Request(tenant=3, src="a", dst="c", period_ns=1_000_000, frame_bytes=9000, max_latency_ns=5_000_000)]
    for r in reqs:
        assert isinstance(s.admit(r), Reservation)
    return s


def test_export_follows_the_contract():
    s = admitted_scheduler()
    d = schedule_to_dict(s)
    assert d["version"] == 1 and d["cycle_ns"] == s.cycle_ns == 2_000_000 and d["slot_ns"] == 1000
    assert {(l["src"], l["dst"]) for l in d["links"]} == set(s.topology.directed_links())
    assert all(set(l) >= {"src", "dst", "capacity_bps", "propagation_ns"} for l in d["links"])
    n_slots = d["cycle_ns"] // d["slot_ns"]
    assert len(d["reservations"]) == 4
    for r in d["reservations"]:
        assert CONTRACT_RES_FIELDS <= set(r)
        assert [(h["src"], h["dst"]) for h in r["hops"]] == list(zip(r["path"], r["path"][1:]))
        assert all(0 <= x < n_slots for h in r["hops"] for x in h["slots"])
    json.dumps(d)  # serialisable as is


def test_round_trip_restores_the_same_state():
    s = admitted_scheduler()
    d = json.loads(json.dumps(schedule_to_dict(s)))
    s2 = load_schedule(d, small_topology())
    assert schedule_to_dict(s2) == d
    assert s2.cycle_ns == s.cycle_ns
    assert s2.link_share() == s.link_share()
    # the restored scheduler answers new requests exactly as the original
    probe = Request(tenant=1, src="a", dst="d", period_ns=1_000_000, frame_bytes=4000, max_latency_ns=5_000_000)
    a, b = s.evaluate(probe), s2.evaluate(probe)
    assert isinstance(a, Reservation) and isinstance(b, Reservation)
    assert a.to_dict() == b.to_dict()


def test_load_grows_the_cycle_to_the_files():
    d = schedule_to_dict(admitted_scheduler())
    s2 = load_schedule(d, small_topology(), base_cycle_ns=1_000_000)
    assert s2.cycle_ns == d["cycle_ns"] == 2_000_000


def test_empty_schedule_round_trips():
    s = Scheduler(small_topology())
    d = schedule_to_dict(s)
    assert d["reservations"] == []
    assert schedule_to_dict(load_schedule(d, small_topology())) == d


def _err(d, topo=None) -> str:
    with pytest.raises(SchedulePayloadError) as e:
        load_schedule(d, topo or small_topology())
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_rejects_wrong_version():
    d = schedule_to_dict(admitted_scheduler())
    d["version"] = 2
    assert "version" in _err(d)
    assert "JSON object" in _err([1, 2])


def test_rejects_links_not_matching_the_topology():
    base = schedule_to_dict(admitted_scheduler())
    d = copy.deepcopy(base)
    d["links"] = d["links"][1:]
    assert "missing" in _err(d)
    d = copy.deepcopy(base)
    d["links"].append({"src": "b", "dst": "d", "capacity_bps": 1, "propagation_ns": 1})
    assert "b->d" in _err(d) and "not in topology" in _err(d)
    d = copy.deepcopy(base)
    d["links"][0]["capacity_bps"] += 1
    assert "capacity_bps" in _err(d)


def test_rejects_slot_out_of_range():
    d = schedule_to_dict(admitted_scheduler())
    n_slots = d["cycle_ns"] // d["slot_ns"]
    d["reservations"][0]["hops"][0]["slots"][-1] = n_slots
    msg = _err(d)
    assert "out of range" in msg and d["reservations"][0]["id"] in msg


def test_rejects_overlapping_slots():
    d = schedule_to_dict(admitted_scheduler())
    twin = copy.deepcopy(d["reservations"][0])
    twin["id"] = "twin"
    d["reservations"].append(twin)
    msg = _err(d)
    assert "overlaps" in msg and "twin" in msg


def test_rejects_hops_off_the_path_and_missing_fields():
    base = schedule_to_dict(admitted_scheduler())
    d = copy.deepcopy(base)
    d["reservations"][0]["hops"].reverse()
    assert "hops do not follow the path" in _err(d)
    d = copy.deepcopy(base)
    del d["reservations"][1]["frame_bytes"]
    assert "frame_bytes" in _err(d)
    d = copy.deepcopy(base)
    d["cycle_ns"] = 1_500_500
    assert "cycle_ns" in _err(d)


def test_validate_returns_reservations():
    d = schedule_to_dict(admitted_scheduler())
    cycle, slot, res = validate_schedule(d, small_topology())
    assert (cycle, slot) == (d["cycle_ns"], d["slot_ns"])
    assert [r.to_dict() for r in res] == d["reservations"]
