"""The line-rate simulator (schedules/simulate.py, ``dnctl simulate``): exact latencies by hand, a corrupted
schedule caught, the guard band, bad input, and the admission workload's schedule run clean."""

import copy
import json

import pytest

from controller.core.bench import workload
from controller.core.model import Tenant
from controller.core.scheduler import Scheduler
from controller.core.tenants import TenantBook
from schedules.schedule_json import schedule_to_dict
from schedules.simulate import SimulationInputError, simulate
from tools.cli.main import main
from topologies.loaders import load_topology

GBPS = 1_000_000_000


def tiny() -> dict:
    """A -> B -> C at 1 Gb/s (a 1500-byte frame takes 12 us), 5 us of fibre and 1 us of processing per hop,
    1 us slots, a 100 us cycle.

    r1: 3000 bytes (two MTU frames) every 100 us from 10 us: 24 slots per hop; on B->C the earliest
    start is 10 + 24 + ceil((5000 + 1000) / 1000) = 40. Bound (64 - 10) us + 5 us + 1 us = 60 us.
    r2: 100 bytes (0.8 us, one slot) every 50 us from 0; on B->C it waits for slot 20 (and 70):
    bound (20 + 1 - 0) us + 6 us = 27 us.
    """
    def link(u, v):
        return {"src": u, "dst": v, "capacity_bps": GBPS, "propagation_ns": 5000}

    def res(rid, period, frame, bound, a_b, b_c, offsets):
        return {"id": rid, "tenant": 1, "src": "A", "dst": "C", "period_ns": period, "frame_bytes": frame,
                "bandwidth_bps": frame * 8 * 1_000_000_000 // period, "max_latency_ns": 100_000,
                "latency_bound_ns": bound, "jitter_bound_ns": 1000, "path": ["A", "B", "C"],
                "hops": [{"src": "A", "dst": "B", "slots": a_b}, {"src": "B", "dst": "C", "slots": b_c}],
                "tx_offsets_ns": offsets}

    return {"version": 1, "cycle_ns": 100_000, "slot_ns": 1000,
            "links": [link("A", "B"), link("B", "C"), link("B", "A"), link("C", "B")],
            "reservations": [res("r1", 100_000, 3000, 60_000, list(range(10, 34)), list(range(40, 64)), [10_000]),
                             res("r2", 50_000, 100, 27_000, [0, 50], [20, 70], [0, 50_000])]}


def by_id(result):
    return {f.id: f for f in result.flows}


def test_tiny_schedule_latencies_by_hand():
    r = simulate(tiny())
    assert r.ok and r.violations == []
    f = by_id(r)
    # r1: frame 0 on A->B 10..22 us, frame 1 22..34 us, ready at B at 40 us; on B->C 40..52 and 52..64 us;
    # delivered 6 us later: 58 and 70 us, i.e. 48 and 60 us after the 10 us offset
    assert (f["r1"].best_latency_ns, f["r1"].worst_latency_ns, f["r1"].jitter_ns) == (48_000, 60_000, 0)
    # r2: 0..0.8 us on A->B, ready at B at 6.8 us, waits for its window at 20 us: 20.8 + 6 = 26.8 us
    assert (f["r2"].best_latency_ns, f["r2"].worst_latency_ns, f["r2"].jitter_ns) == (26_800, 26_800, 0)
    assert r.frames == 2 + 2 and r.frame_hops == 8
    assert r.worst_latency_ratio == 1.0  # r1 meets its bound exactly
    d = r.to_dict()
    for key in ("reservations", "frames", "violations", "worst_latency_ratio", "seconds"):
        assert key in d
    assert d["reservations"] == 2 and d["violations"] == []


def test_cross_traffic_with_the_guard_band_changes_nothing():
    r = simulate(tiny(), cross_traffic=1.0, cycles=3)
    assert r.ok and r.best_effort["frames_at_gates"] > 0 and r.best_effort["reserved_frames_delayed"] == 0
    assert by_id(r)["r1"].worst_latency_ns == 60_000 and by_id(r)["r2"].worst_latency_ns == 26_800


def test_without_the_guard_band_best_effort_pushes_a_train_out_of_its_window():
    r = simulate(tiny(), cross_traffic=1.0, guard_band=False)
    assert not r.ok and r.best_effort["reserved_frames_delayed"] > 0
    kinds = {v.kind for v in r.violations}
    assert "best_effort_collision" in kinds
    # r1's train fills its 24-slot window exactly: a 12 us best-effort frame still on the wire at 10 us pushes
    # its second frame out of the window, to the next cycle's, where it meets the next train: the queue grows
    held = {(v.reservations[0], v.link) for v in r.violations if v.kind == "missed_window"}
    assert ("r1", "A->B") in held and ("r2", "A->B") in held
    assert "unstable" in kinds and "late" in kinds


def test_a_window_shorter_than_the_train_is_reported():
    s = tiny()
    s["reservations"][0]["hops"][1]["slots"] = list(range(40, 58))   # 18 slots for 24 us of frames
    r = simulate(s)
    held = [v for v in r.violations if v.kind == "missed_window"]
    # the second frame would start at 52 us and end at 64 us, after the window closes at 58 us
    assert held and held[0].link == "B->C" and held[0].reservations == ("r1",) and held[0].slot == 52
    assert held[0].time_ns == 52_000 and "own earlier frames" in held[0].detail
    # every cycle brings 24 us of frames to an 18 us window: the queue grows without end
    assert any(v.kind == "late" and v.reservations == ("r1",) for v in r.violations)
    assert any(v.kind == "unstable" for v in r.violations)


def test_slots_moved_onto_a_full_window_delay_its_owner():
    s = tiny()
    s["reservations"][1]["hops"][0]["slots"] = list(range(10, 34))   # r2 on A->B now holds r1's window
    r = simulate(s)
    (o,) = [v for v in r.violations if v.kind == "overlap"]
    assert (o.link, o.slot, o.time_ns, o.count, set(o.reservations)) == ("A->B", 10, 10_000, 24, {"r1", "r2"})
    held = [v for v in r.violations if v.kind == "missed_window" and v.reservations[0] == "r1"]
    assert held and held[0].link == "A->B" and "r2" in held[0].reservations and "busy with r2" in held[0].detail


def test_a_frame_that_no_window_can_carry():
    s = tiny()
    s["reservations"][1]["hops"][0]["slots"] = []
    r = simulate(s)
    v = [v for v in r.violations if v.kind == "no_window"]
    assert v and v[0].reservations == ("r2",) and v[0].link == "A->B"
    assert not by_id(r)["r2"].delivered


def workload_schedule(n: int) -> dict:
    topo = load_topology("fntf40")
    book = TenantBook()
    for t in range(1, 9):
        book.add(Tenant(t, f"t{t}"))
    sched = Scheduler(topo, tenants=book)
    for req in workload(topo, n, 8, seed=3):
        sched.admit(req)
    return schedule_to_dict(sched)


@pytest.fixture(scope="module")
def fntf40_schedule():
    return workload_schedule(120)


def corrupt(schedule: dict) -> tuple[dict, str, str, str]:
    """Move one reservation's slots on one link onto another's: returns (schedule, moved, victim, link)."""
    s = copy.deepcopy(schedule)
    holders: dict[tuple[str, str], list[tuple[dict, dict]]] = {}
    for r in s["reservations"]:
        for h in r["hops"]:
            holders.setdefault((h["src"], h["dst"]), []).append((r, h))
    # a busy link, and two small reservations on it that hold the same number of slots
    for link, rs in sorted(holders.items(), key=lambda kv: -len(kv[1])):
        for (ra, ha) in rs:
            for (rb, hb) in rs:
                if ra is not rb and ra["period_ns"] == rb["period_ns"] and len(ha["slots"]) == len(hb["slots"]):
                    ha["slots"] = list(hb["slots"])
                    return s, ra["id"], rb["id"], f"{link[0]}->{link[1]}"
    raise AssertionError("no pair of reservations to corrupt")


def test_workload_schedule_is_clean_and_a_corrupted_one_names_both_reservations(fntf40_schedule):
    clean = simulate(fntf40_schedule, cross_traffic=0.5)
    assert clean.ok, [v.to_dict() for v in clean.violations[:3]]
    assert 0.9 < clean.worst_latency_ratio <= 1.0
    assert all(f.jitter_ns == 0 for f in clean.flows)

    bad, moved, victim, link = corrupt(fntf40_schedule)
    r = simulate(bad, cross_traffic=0.5)
    assert not r.ok
    overlaps = [v for v in r.violations if v.kind == "overlap"]
    assert len(overlaps) == 1
    v = overlaps[0]
    assert v.link == link and set(v.reservations) == {moved, victim}
    slots = [h["slots"] for x in bad["reservations"] if x["id"] == victim for h in x["hops"]
             if f"{h['src']}->{h['dst']}" == link][0]
    assert v.slot == min(slots) and v.time_ns == min(slots) * bad["slot_ns"] and v.count == len(slots)


def test_class_gates_are_reported_when_frames_leave_in_a_neighbours_window(fntf40_schedule):
    r = simulate(fntf40_schedule, gates="class")
    # one shared reserved queue lets the first frames of a train leave in whatever reserved window is open
    assert any(v.kind == "outside_gate" for v in r.violations)


def test_cli_json_and_exit_codes(tmp_path, capsys, fntf40_schedule):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(fntf40_schedule))
    assert main(["simulate", str(good), "--json", "--quiet", "--cross-traffic", "0.3", "--cycles", "2"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["violations"] == [] and d["reservations"] == len(fntf40_schedule["reservations"])
    assert d["frames"] > 0 and d["worst_latency_ratio"] <= 1.0 and d["seconds"] >= 0

    bad_s, moved, victim, link = corrupt(fntf40_schedule)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(bad_s))
    assert main(["simulate", str(bad), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "overlap" in out and link in out and moved in out and victim in out

    assert main(["simulate", str(bad), "--json", "--quiet"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert any(v["kind"] == "overlap" and v["link"] == link and set(v["reservations"]) == {moved, victim}
               for v in d["violations"])


@pytest.mark.parametrize("argv, needle", [
    (["simulate"], "either SCHEDULE.json or --workload"),
    (["simulate", "{missing}"], "no such file"),
    (["simulate", "{notjson}"], "not JSON"),
    (["simulate", "{badslot}"], "slot indices"),
    (["simulate", "{good}", "--cross-traffic", "1.5"], "fraction"),
    (["simulate", "{good}", "--cycles", "0"], "cycles"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, needle):
    files = {"missing": tmp_path / "nope.json", "notjson": tmp_path / "x.json", "badslot": tmp_path / "b.json",
             "good": tmp_path / "g.json"}
    files["notjson"].write_text("{")
    s = tiny()
    s["reservations"][0]["hops"][0]["slots"] = [100_000]
    files["badslot"].write_text(json.dumps(s))
    files["good"].write_text(json.dumps(tiny()))
    args = [a.format(**{k: str(v) for k, v in files.items()}) for a in argv]
    assert main(args + ["--quiet"]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("mutate, needle", [
    (lambda s: s.pop("links"), "links"),
    (lambda s: s["reservations"][0].update(tx_offsets_ns=[]), "tx_offsets_ns"),
    (lambda s: s["reservations"][0]["hops"].reverse(), "do not follow its path"),
    (lambda s: s["links"].pop(1), "not a link"),
    (lambda s: s.update(cycle_ns=1500), "cycle_ns"),
])
def test_malformed_schedules_raise_one_line(mutate, needle):
    s = tiny()
    mutate(s)
    with pytest.raises(SimulationInputError, match=needle):
        simulate(s)
