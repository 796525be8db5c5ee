"""802.1Qbv gate control lists: entries tile the cycle exactly and reserved windows are the hop slots."""

import pytest

from schedules.gcl import GCLError, gate_control_list, gate_string
from schedules.schedule_json import schedule_to_dict
from controller.core.model import Request, Reservation
from controller.core.scheduler import Scheduler
from topologies.model import Topology


def admitted_scheduler() -> Scheduler:
    t = Topology("square")
    for n in "abcd":
        t.add_node(n)
    for u, v, km in (("a", "b", 10), ("b", "c", 20), ("c", "d", 10), ("d", "a", 30), ("a", "c", 25)):
        t.add_link(u, v, km, capacity_bps=1_000_000_000)
    s = Scheduler(t, slot_ns=1000, base_cycle_ns=1_000_000)
    for r in (Request(tenant=1, src="a", dst="c", period_ns=500_000, frame_bytes=3000, max_latency_ns=5_000_000),
              Request(tenant=2, src="b", dst="d", period_ns=2_000_000, frame_bytes=1500, max_latency_ns=5_000_000),
              Request(tenant=1, src="d", dst="b", bandwidth_bps=100_000_000, max_latency_ns=9_000_000),
              Request(tenant=3, src="c", dst="a", period_ns=1_000_000, frame_bytes=9000, max_latency_ns=5_000_000)):
        assert isinstance(s.admit(r), Reservation)
    return s


def _check_tiles(gcl):
    assert gcl.entries[0].start_ns == 0
    t = 0
    for e in gcl.entries:
        assert e.start_ns == t and e.duration_ns > 0
        t += e.duration_ns
    assert t == gcl.cycle_ns
    # best-effort runs are merged: never two best-effort entries in a row
    states = [e.state for e in gcl.entries]
    assert not any(a == b == "best_effort" for a, b in zip(states, states[1:]))


def test_every_link_tiles_the_cycle_and_windows_match_hop_slots():
    s = admitted_scheduler()
    d = schedule_to_dict(s)
    used = 0
    for link in d["links"]:
        u, v = link["src"], link["dst"]
        gcl = gate_control_list(s, u, v)
        assert gcl.cycle_ns == d["cycle_ns"]
        _check_tiles(gcl)
        want: dict[str, set[int]] = {}
        for r in d["reservations"]:
            for h in r["hops"]:
                if (h["src"], h["dst"]) == (u, v):
                    want[r["id"]] = set(h["slots"])
        got: dict[str, set[int]] = {}
        for start, end, rid in gcl.reserved_windows():
            got.setdefault(rid, set()).update(range(start // d["slot_ns"], end // d["slot_ns"]))
        assert got == want
        used += bool(want)
        for e in gcl.entries:
            assert e.gate_states == (0x80 if e.state == "reserved" else 0x7F)
    assert used >= 3


def test_adjacent_windows_of_two_reservations_stay_apart_and_same_one_merges():
    d = {"version": 1, "cycle_ns": 10_000, "slot_ns": 1000,
         "links": [{"src": "a", "dst": "b", "capacity_bps": 10**9, "propagation_ns": 0}],
         "reservations": [
             {"id": "r1", "hops": [{"src": "a", "dst": "b", "slots": [0, 1, 2]}]},
             {"id": "r2", "hops": [{"src": "a", "dst": "b", "slots": [3, 9]}]}]}
    gcl = gate_control_list(d, "a", "b", reserved_tc=6)
    _check_tiles(gcl)
    assert [(e.start_ns, e.duration_ns, e.state, e.reservation) for e in gcl.entries] == [
        (0, 3000, "reserved", "r1"), (3000, 1000, "reserved", "r2"), (4000, 5000, "best_effort", None),
        (9000, 1000, "reserved", "r2")]
    assert gcl.entries[0].gate_states == 1 << 6
    assert gcl.reserved_ns == 5000
    out = gcl.to_dict()
    assert sum(e["duration_ns"] for e in out["entries"]) == out["cycle_ns"]
    text = gcl.render()
    assert "a -> b" in text and "r2" in text and len(text.splitlines()) == 2 + len(gcl.entries)


def test_link_without_reservations_is_one_best_effort_entry():
    d = schedule_to_dict(admitted_scheduler())
    idle = [l for l in d["links"]
            if not any((h["src"], h["dst"]) == (l["src"], l["dst"]) for r in d["reservations"] for h in r["hops"])]
    assert idle
    gcl = gate_control_list(d, idle[0]["src"], idle[0]["dst"])
    assert len(gcl.entries) == 1 and gcl.entries[0].duration_ns == d["cycle_ns"]
    assert gcl.entries[0].state == "best_effort"


def test_unknown_link_and_bad_input():
    d = schedule_to_dict(admitted_scheduler())
    with pytest.raises(GCLError, match="not in the schedule"):
        gate_control_list(d, "a", "zz")
    with pytest.raises(GCLError):
        gate_control_list({"cycle_ns": 10, "slot_ns": 3, "links": []}, "a", "b")
    with pytest.raises(GCLError):
        gate_control_list(42, "a", "b")


def test_gate_string():
    assert gate_string(0x80) == "oCCCCCCC"
    assert gate_string(0x7F) == "Cooooooo"
