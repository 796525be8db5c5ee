"""802.1Qbv gates as a Linux taprio qdisc: guard bands, merging, limits, the tc argv, reading back what
the kernel printed (captured in the Debian 6.1 guest), compare(), and ``dnctl schedule gcl --format taprio``."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from controller.core.model import Request, Reservation
from controller.core.scheduler import Scheduler
from schedules.gcl import gate_control_list
from schedules.schedule_json import schedule_to_dict
from schedules.taprio import (CYCLE_MAX_NS, SchedEntry, TaprioConfig, TaprioError, compare, device_name,
                              parse_taprio_show, taprio_config, tc_entry_limit)
from tools.cli.main import main
from topologies.model import Topology

# `tc -n a qdisc show dev va` in the VM (Debian 6.1.0-57-amd64, iproute2-6.1.0), after
# `tc qdisc replace dev va root taprio num_tc 2 map 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0 queues 1@0 1@1
#  base-time 0 sched-entry S 01 300000 sched-entry S 00 12176 sched-entry S 02 687824 clockid CLOCK_TAI`
REAL_SHOW = (
    "qdisc taprio 8001: root refcnt 3 tc 2 map 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0\n"
    "queues offset 0 count 1 offset 1 count 1\n"
    "clockid TAI\tbase-time 0 cycle-time 1000000 cycle-time-extension 0\n"
    "\tindex 0 cmd S gatemask 0x1 interval 300000\n"
    "\tindex 1 cmd S gatemask 0 interval 12176\n"
    "\tindex 2 cmd S gatemask 0x2 interval 687824\n"
    "\n"
    "qdisc pfifo 0: parent 8001:2 limit 1000p\n"
    "qdisc pfifo 0: parent 8001:1 limit 1000p\n")

# the same guest: a second replace whose base-time is 2 minutes ahead; the new schedule waits as "admin"
REAL_ADMIN_PENDING = (
    "qdisc taprio 8010: root refcnt 3 tc 2 map 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0\n"
    "queues offset 0 count 1 offset 1 count 1\n"
    "clockid TAI\tbase-time 0 cycle-time 1000000 cycle-time-extension 0\n"
    "\tindex 0 cmd S gatemask 0x1 interval 300000\n"
    "\tindex 1 cmd S gatemask 0x2 interval 700000\n"
    "\tbase-time 1796046241000000000 cycle-time 1000000 cycle-time-extension 0\n"
    "\tindex 0 cmd S gatemask 0x1 interval 400000\n"
    "\tindex 1 cmd S gatemask 0 interval 12176\n"
    "\tindex 2 cmd S gatemask 0x2 interval 587824\n"
    "\n"
    "qdisc pfifo 0: parent 8010:2 limit 1000p\n"
    "qdisc pfifo 0: parent 8010:1 limit 1000p\n")

# a fresh qdisc whose base-time is ahead: no schedule in force yet
REAL_ADMIN_ONLY = (
    "qdisc taprio 8011: root refcnt 3 tc 2 map 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0\n"
    "queues offset 0 count 1 offset 1 count 1\n"
    "clockid TAI\tbase-time 0 cycle-time 0 cycle-time-extension 0\t"
    "base-time 1796046241000000000 cycle-time 1000000 cycle-time-extension 0\n"
    "\tindex 0 cmd S gatemask 0x1 interval 400000\n"
    "\tindex 1 cmd S gatemask 0x2 interval 600000\n"
    "\n"
    "qdisc pfifo 0: parent 8011:2 limit 1000p\n"
    "qdisc pfifo 0: parent 8011:1 limit 1000p\n")

MBPS100 = 100_000_000
GUARD_100M = 121_760           # 1522 bytes at 100 Mb/s
MIN_100M = 4_800               # 60 bytes at 100 Mb/s


def sched(slots: dict[str, list[int]], *, cycle_ns=10_000_000, slot_ns=100_000, capacity_bps=MBPS100) -> dict:
    """A Schedule JSON with one link a->b whose slots are held by the given reservations."""
    return {"version": 1, "cycle_ns": cycle_ns, "slot_ns": slot_ns,
            "links": [{"src": "a", "dst": "b", "capacity_bps": capacity_bps, "propagation_ns": 0},
                      {"src": "b", "dst": "a", "capacity_bps": capacity_bps, "propagation_ns": 0}],
            "reservations": [{"id": rid, "hops": [{"src": "a", "dst": "b", "slots": s}]} for rid, s in slots.items()]}


def cfg_of(slots, *, link_bps=MBPS100, **kw):
    d = sched(slots, **{k: v for k, v in kw.items() if k in ("cycle_ns", "slot_ns")})
    extra = {k: v for k, v in kw.items() if k not in ("cycle_ns", "slot_ns")}
    return taprio_config(gate_control_list(d, "a", "b"), dev="a-b", link_bps=link_bps, **extra)


def masks(cfg):
    return [(e.mask, e.interval_ns) for e in cfg.entries]


# --- the mapping ---------------------------------------------------------------------------------

def test_guard_band_is_carved_from_the_best_effort_entry_before_each_window_and_windows_merge():
    cfg = cfg_of({"r1": [0, 1, 2], "r2": [3, 9, 50]})
    # r1 and r2 back to back at slots 0-3 are one 0x2 entry; slot 50's window is preceded by BE
    # that loses its last 121760 ns; the BE run at the end of the cycle is carved for slot 0 (wrap)
    assert masks(cfg) == [
        (0x2, 400_000), (0x1, 500_000 - GUARD_100M), (0x0, GUARD_100M), (0x2, 100_000),
        (0x1, 4_000_000 - GUARD_100M), (0x0, GUARD_100M), (0x2, 100_000),
        (0x1, 4_900_000 - GUARD_100M), (0x0, GUARD_100M)]
    assert cfg.cycle_ns == 10_000_000 and cfg.guard_band_ns == GUARD_100M
    assert all(e.cmd == "S" for e in cfg.entries)


def test_best_effort_shorter_than_the_guard_band_closes_entirely():
    # one 100 us slot of best effort between two windows: shorter than 121.76 us, so all closed
    cfg = cfg_of({"r1": [0], "r2": [2]}, cycle_ns=1_000_000)
    assert masks(cfg) == [(0x2, 100_000), (0x0, 100_000), (0x2, 100_000),
                          (0x1, 700_000 - GUARD_100M), (0x0, GUARD_100M)]


def test_open_remainder_shorter_than_a_minimum_frame_closes_too():
    # BE run of 125 us (slot 125 us) before a window: 3240 ns would stay open, < 60 bytes (4800 ns)
    cfg = cfg_of({"r1": [0], "r2": [2]}, cycle_ns=500_000, slot_ns=125_000)
    assert masks(cfg)[:3] == [(0x2, 125_000), (0x0, 125_000), (0x2, 125_000)]
    # the same with 10 us more best effort: 13240 ns stay open
    cfg = cfg_of({"r1": [0], "r2": [2]}, cycle_ns=540_000, slot_ns=135_000)
    assert masks(cfg)[:4] == [(0x2, 135_000), (0x1, 135_000 - GUARD_100M), (0x0, GUARD_100M), (0x2, 135_000)]


def test_no_guard_band_idle_port_and_fully_reserved_port():
    assert masks(cfg_of({"r1": [0, 5]}, guard_band_bytes=0)) == [
        (0x2, 100_000), (0x1, 400_000), (0x2, 100_000), (0x1, 9_400_000)]
    assert masks(cfg_of({})) == [(0x1, 10_000_000)]
    assert masks(cfg_of({"r1": list(range(10))}, cycle_ns=1_000_000)) == [(0x2, 1_000_000)]
    # a window at the end of the cycle and one at 0: no guard between them, they touch across the wrap
    assert masks(cfg_of({"r1": [0], "r2": [9]}, cycle_ns=1_000_000)) == [
        (0x2, 100_000), (0x1, 800_000 - GUARD_100M), (0x0, GUARD_100M), (0x2, 100_000)]


def test_guard_band_continues_across_the_cycle_start():
    # best effort at slot 0 is shorter than the guard band before the window at slot 1: the rest of
    # the guard band is closed at the end of the previous cycle (the best-effort run wraps)
    assert masks(cfg_of({"r": [1]}, cycle_ns=300_000)) == [
        (0x0, 100_000), (0x2, 100_000), (0x1, 100_000 - (GUARD_100M - 100_000)), (0x0, GUARD_100M - 100_000)]
    # longer best effort at the start: only the first entry is carved
    assert masks(cfg_of({"r": [3]}, cycle_ns=500_000)) == [
        (0x1, 300_000 - GUARD_100M), (0x0, GUARD_100M), (0x2, 100_000), (0x1, 100_000)]


def test_guard_band_left_over_for_the_cycle_end_is_at_least_a_minimum_frame():
    # at 120 Mb/s the guard band (101467 ns) outlasts slot 0's best effort by 1467 ns, which would
    # close at the end of the cycle: shorter than 60 bytes (4000 ns), which the kernel refuses (seen
    # on the fntf40 demo's Nanchang->Shaoguan in the VM); that piece closes a minimum frame instead
    cfg = cfg_of({"r": [1]}, cycle_ns=1_000_000, link_bps=120_000_000)
    assert masks(cfg) == [(0x0, 100_000), (0x2, 100_000), (0x1, 796_000), (0x0, 4_000)]


def test_guard_band_rounds_up_to_the_nanosecond():
    cfg = cfg_of({"r1": [5]}, link_bps=3_000_000_000)         # 1522 * 8 / 3 = 4058.67 ns
    assert cfg.guard_band_ns == 4059 and masks(cfg)[1] == (0x0, 4059)


def test_every_port_of_a_scheduler_schedule_tiles_its_cycle():
    t = Topology("square")
    for n in "abcd":
        t.add_node(n)
    for u, v, km in (("a", "b", 10), ("b", "c", 20), ("c", "d", 10), ("d", "a", 30), ("a", "c", 25)):
        t.add_link(u, v, km, capacity_bps=1_000_000_000)
    s = Scheduler(t, slot_ns=1000, base_cycle_ns=1_000_000)
    for r in (Request(tenant=1, src="a", dst="c", period_ns=500_000, frame_bytes=3000, max_latency_ns=5_000_000),
              Request(tenant=2, src="b", dst="d", period_ns=250_000, frame_bytes=1500, max_latency_ns=5_000_000),
              Request(tenant=1, src="d", dst="b", bandwidth_bps=100_000_000, max_latency_ns=9_000_000),
              Request(tenant=3, src="c", dst="a", period_ns=1_000_000, frame_bytes=9000, max_latency_ns=5_000_000)):
        assert isinstance(s.admit(r), Reservation)
    d = schedule_to_dict(s)
    busy = 0
    for link in d["links"]:
        gcl = gate_control_list(d, link["src"], link["dst"])
        cfg = taprio_config(gcl, dev="x", link_bps=link["capacity_bps"])
        assert cfg.cycle_ns == d["cycle_ns"] == sum(e.interval_ns for e in cfg.entries)
        assert {e.mask for e in cfg.entries} <= {0x0, 0x1, 0x2}
        busy += any(e.mask == 0x2 for e in cfg.entries)
    assert busy >= 3


# --- the command ---------------------------------------------------------------------------------

def test_command_argv_and_dict():
    cfg = cfg_of({"r1": [0, 1, 2, 3]}, cycle_ns=1_000_000)
    assert cfg.command() == [
        "tc", "qdisc", "replace", "dev", "a-b", "root", "taprio", "num_tc", "2",
        "map", "0", "0", "0", "0", "0", "0", "0", "1", "0", "0", "0", "0", "0", "0", "0", "0",
        "queues", "1@0", "1@1", "base-time", "0",
        "sched-entry", "S", "0x2", "400000", "sched-entry", "S", "0x1", str(600_000 - GUARD_100M),
        "sched-entry", "S", "0x0", str(GUARD_100M), "clockid", "CLOCK_TAI"]
    assert cfg.command(netns="n1")[:3] == ["tc", "-n", "n1"]
    assert "flags" not in cfg.command()                      # software mode
    d = cfg.to_dict()
    assert d["num_tc"] == 2 and d["map"][7] == 1 and sum(d["map"]) == 1 and d["queues"] == ["1@0", "1@1"]
    assert d["cycle_ns"] == 1_000_000 and d["guard_band_ns"] == GUARD_100M and d["link_bps"] == MBPS100
    assert [e["gatemask"] for e in d["entries"]] == [2, 1, 0]
    json.dumps(d)
    # another reserved class maps that priority to tc 1
    gcl = gate_control_list(sched({"r1": [1]}), "a", "b", reserved_tc=5)
    c5 = taprio_config(gcl, dev="a-b", link_bps=MBPS100, base_time_ns=1_700_000_000_000_000_000, clockid="TAI")
    assert c5.prio_map == (0, 0, 0, 0, 0, 1) + (0,) * 10
    argv = c5.command()
    assert argv[argv.index("base-time") + 1] == "1700000000000000000" and argv[-2:] == ["clockid", "TAI"]


def test_device_names():
    assert device_name("Beijing", "Tianjin") == "Beijing-Tianjin"
    assert device_name("Shijiazhuang", "Zhengzhou") == "Shijiazhuang-Zh"
    assert device_name("Hong Kong", "a/b:c") == "Hong_Kong-a_b_c"
    assert device_name("Xi'an", "Lanzhou") == "Xi'an-Lanzhou"
    for bad in ("", "a b", "x" * 16, "a/b", "a:b", ".."):
        with pytest.raises(TaprioError, match="not a Linux interface name"):
            taprio_config(gate_control_list(sched({}), "a", "b"), dev=bad, link_bps=MBPS100)


# --- limits ----------------------------------------------------------------------------------------

def test_entry_limit_is_what_one_tc_command_carries():
    assert tc_entry_limit(0) == 31 and tc_entry_limit(1) == 30
    # windows at slots 3, 7, 11, ...: each after 3 slots of best effort, so 0x1, 0x0, 0x2 each
    ten = [4 * k + 3 for k in range(10)]
    assert len(cfg_of({"r": ten}, cycle_ns=4_000_000).entries) == 30
    with pytest.raises(TaprioError) as e:
        cfg_of({"r": ten + [43]}, cycle_ns=4_400_000)
    assert str(e.value) == "port a->b: needs 33 taprio entries, tc installs at most 31 (more are cut silently)"
    # 31 entries (a closing best-effort run) fit with base-time 0, not with a base time (12 more bytes)
    assert len(cfg_of({"r": ten}, cycle_ns=4_400_000).entries) == 31
    with pytest.raises(TaprioError, match="needs 31 taprio entries, tc installs at most 30"):
        cfg_of({"r": ten}, cycle_ns=4_400_000, base_time_ns=5)


def test_interval_cycle_and_argument_limits():
    # one 3 s best-effort entry: a u32 interval, but a cycle past the kernel's INT_MAX ns
    with pytest.raises(TaprioError, match=f"cycle 3000000000 ns is longer than taprio takes \\({CYCLE_MAX_NS} ns\\)"):
        cfg_of({}, cycle_ns=3_000_000_000, slot_ns=1_000_000_000)
    with pytest.raises(TaprioError, match="entry 0: interval 5000000000 ns is outside 1..4294967295"):
        cfg_of({}, cycle_ns=5_000_000_000, slot_ns=1_000_000_000)
    # a reserved window shorter than a 60-byte frame at the link's rate (480 ns at 1 Gb/s)
    with pytest.raises(TaprioError, match="entry 0: interval 100 ns is shorter than a minimum frame"):
        cfg_of({"r": [0]}, cycle_ns=10_000, slot_ns=100, link_bps=10**9, guard_band_bytes=0)
    gcl = gate_control_list(sched({}), "a", "b")
    for bad in (0, -5, None, 1.5, True):
        with pytest.raises(TaprioError, match="link_bps must be a positive integer"):
            taprio_config(gcl, dev="a-b", link_bps=bad)
    with pytest.raises(TaprioError, match="guard_band_bytes"):
        taprio_config(gcl, dev="a-b", link_bps=MBPS100, guard_band_bytes=-1)
    with pytest.raises(TaprioError, match="base time"):
        taprio_config(gcl, dev="a-b", link_bps=MBPS100, base_time_ns=-1)
    with pytest.raises(TaprioError, match="base time"):
        taprio_config(gcl, dev="a-b", link_bps=MBPS100, base_time_ns=2**63)


# --- reading back ----------------------------------------------------------------------------------

REAL_CONFIG = TaprioConfig("a", "b", "va", (SchedEntry("S", 1, 300_000), SchedEntry("S", 0, 12_176),
                                            SchedEntry("S", 2, 687_824)))


def test_parse_real_kernel_output():
    shown = parse_taprio_show(REAL_SHOW)
    assert shown["handle"] == "8001:" and shown["num_tc"] == 2
    assert shown["map"] == [0] * 7 + [1] + [0] * 8
    assert shown["queues"] == [(1, 0), (1, 1)]
    assert shown["clockid"] == "CLOCK_TAI" and shown["flags"] is None and shown["admin"] is None
    assert (shown["base_time"], shown["cycle_time"], shown["cycle_time_extension"]) == (0, 1_000_000, 0)
    assert shown["entries"] == [("S", 0x1, 300_000), ("S", 0x0, 12_176), ("S", 0x2, 687_824)]
    assert compare(REAL_CONFIG, shown) == []


def test_parse_pending_admin_schedule():
    shown = parse_taprio_show(REAL_ADMIN_PENDING)
    assert shown["entries"] == [("S", 1, 300_000), ("S", 2, 700_000)]
    assert shown["admin"]["base_time"] == 1796046241000000000
    assert shown["admin"]["entries"] == [("S", 1, 400_000), ("S", 0, 12_176), ("S", 2, 587_824)]
    # compare() judges the newest schedule: the pending one
    want = TaprioConfig("a", "b", "va", tuple(SchedEntry(*e) for e in shown["admin"]["entries"]),
                        base_time_ns=1796046241000000000)
    assert compare(want, shown) == []
    assert compare(REAL_CONFIG, shown) == [
        "base-time: 1796046241000000000 installed, 0 scheduled",
        "entry 0: interval 400000 installed, 300000 scheduled",
        "entry 2: interval 587824 installed, 687824 scheduled"]
    only = parse_taprio_show(REAL_ADMIN_ONLY)
    assert only["cycle_time"] == 0 and only["entries"] == []
    assert only["admin"]["entries"] == [("S", 1, 400_000), ("S", 2, 600_000)]


def test_compare_finds_a_changed_mask_interval_and_missing_entries():
    text = REAL_SHOW.replace("gatemask 0x2 interval 687824", "gatemask 0x1 interval 687824")
    assert compare(REAL_CONFIG, parse_taprio_show(text)) == ["entry 2: gatemask 0x1 installed, 0x2 scheduled"]
    text = REAL_SHOW.replace("interval 300000", "interval 310000").replace("cycle-time 1000000", "cycle-time 1010000")
    assert compare(REAL_CONFIG, parse_taprio_show(text)) == [
        "cycle-time: 1010000 installed, 1000000 scheduled", "entry 0: interval 310000 installed, 300000 scheduled"]
    # what tc did to 32 entries and more: the last one installed with mask 0 and interval 0
    cut = REAL_SHOW.replace("\tindex 2 cmd S gatemask 0x2 interval 687824\n", "\tindex 2 cmd S gatemask 0 interval 0\n")
    four = TaprioConfig("a", "b", "va", REAL_CONFIG.entries + (SchedEntry("S", 1, 5),))
    assert compare(four, parse_taprio_show(cut)) == [
        "cycle-time: 1000000 installed, 1000005 scheduled", "entries: 3 installed, 4 scheduled",
        "entry 2: gatemask 0x0 installed, 0x2 scheduled", "entry 2: interval 0 installed, 687824 scheduled",
        "entry 3: missing, S 0x1 5 scheduled"]
    two = TaprioConfig("a", "b", "va", REAL_CONFIG.entries[:2])
    assert compare(two, parse_taprio_show(REAL_SHOW))[-1] == "entry 2: S 0x2 687824 installed, not scheduled"
    other = REAL_SHOW.replace("map 0 0 0 0 0 0 0 1", "map 0 0 0 0 0 0 1 0").replace(
        "clockid TAI", "clockid REALTIME flags 0x2")
    assert compare(REAL_CONFIG, parse_taprio_show(other)) == [
        "map: 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 installed, 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0 scheduled",
        "clockid: CLOCK_REALTIME installed, CLOCK_TAI scheduled",
        "flags: 0x2 installed, none scheduled (software mode)"]


def test_parse_refuses_what_is_not_taprio():
    with pytest.raises(TaprioError, match="no taprio qdisc"):
        parse_taprio_show("qdisc noqueue 0: root refcnt 2 \n")
    with pytest.raises(TaprioError, match="no traffic classes or no schedule"):
        parse_taprio_show("qdisc taprio 8001: root refcnt 3\n")
    with pytest.raises(TaprioError, match="malformed entry"):
        parse_taprio_show(REAL_SHOW.replace("cmd S gatemask 0x1", "cmd S mask 0x1"))
    with pytest.raises(TaprioError, match="cannot read"):
        parse_taprio_show(REAL_SHOW.replace("tc 2 map", "tc two map"))


# --- invariants over random lists ------------------------------------------------------------------

def _merged(windows):
    out: list[list[int]] = []
    for s, e, _ in windows:
        if out and out[-1][1] == s:
            out[-1][1] = e
        else:
            out.append([s, e])
    return [tuple(w) for w in out]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(owners=st.lists(st.one_of(st.none(), st.sampled_from(["r0", "r1", "r2"])), min_size=1, max_size=24),
       slot_ns=st.sampled_from([100_000, 137_000, 1_000_000]),
       link_bps=st.sampled_from([10**7, 10**8, 12 * 10**7, 10**9, 10**10]),
       guard_bytes=st.sampled_from([0, 64, 1522, 9000]))
def test_invariants_over_random_gcls(owners, slot_ns, link_bps, guard_bytes):
    slots: dict[str, list[int]] = {}
    for i, r in enumerate(owners):
        if r:
            slots.setdefault(r, []).append(i)
    cycle = len(owners) * slot_ns
    gcl = gate_control_list(sched(slots, cycle_ns=cycle, slot_ns=slot_ns), "a", "b")
    try:
        cfg = taprio_config(gcl, dev="a-b", link_bps=link_bps, guard_band_bytes=guard_bytes)
    except TaprioError as e:
        assert "needs" in str(e) and int(str(e).split("needs ")[1].split()[0]) > 31, str(e)
        assume(False)
    guard = -(-guard_bytes * 8 * 10**9 // link_bps)
    min_ns = -(-60 * 8 * 10**9 // link_bps)
    ents = cfg.entries
    # tiles the cycle exactly, valid masks, nothing to merge
    assert sum(e.interval_ns for e in ents) == cycle == cfg.cycle_ns
    assert all(e.cmd == "S" and e.mask in (0, 1, 2) and e.interval_ns >= 1 for e in ents)
    assert all(a.mask != b.mask for a, b in zip(ents, ents[1:]))
    spans, t = [], 0
    for e in ents:
        spans.append((t, t + e.interval_ns, e.mask))
        t += e.interval_ns
    # the reserved gate is open exactly in the GCL's reserved windows
    assert [(s, e) for s, e, m in spans if m == 2] == _merged(gcl.reserved_windows())
    # best effort loses only what the guard bands take
    be_gcl = cycle - gcl.reserved_ns
    assert sum(e - s for s, e, m in spans if m in (0, 1)) == be_gcl
    if not guard:
        assert all(m != 0 for _, _, m in spans)
        return
    assert all(e - s >= min_ns for s, e, m in spans if m in (0, 1))      # the kernel takes nothing shorter
    starts = [s for s, _, m in spans if m == 2]
    for s in starts:
        # safety: no best-effort gate open within `guard` ns before a reserved window (cyclically)
        for k in range(-(guard // cycle) - 1, 2):
            lo, hi = s - guard + k * cycle, s + k * cycle
            assert not any(a < hi and lo < b for a, b, mm in spans if mm == 1), (s, k, spans)
    for s, e, m in spans:
        # economy: a closed entry lies within guard + one minimum frame before the next window
        if m == 0:
            nxt = min((r for r in starts if r >= e), default=min(starts) + cycle)
            assert nxt - s < guard + min_ns, (s, e, spans)


# --- dnctl schedule gcl ----------------------------------------------------------------------------

@pytest.fixture
def sched_file(tmp_path):
    p = tmp_path / "s.json"
    p.write_text(json.dumps(sched({"r1": [0, 1], "r2": [50]})))
    return p


def _run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_taprio_one_link(sched_file, capsys):
    code, out, err = _run(["schedule", "gcl", str(sched_file), "--link", "a", "b", "--format", "taprio",
                           "--dev", "eth1"], capsys)
    assert code == 0 and err == ""
    comment, command = out.splitlines()
    assert comment == f"# a -> b (6 entries, cycle 10000000 ns, guard band {GUARD_100M} ns at 100000000 b/s)"
    want = cfg_of({"r1": [0, 1], "r2": [50]})
    assert command.split() == want.command()[:4] + ["eth1"] + want.command()[5:]
    code, out, _ = _run(["schedule", "gcl", str(sched_file), "--link", "a", "b", "--format", "taprio",
                         "--guard-band-bytes", "0", "--base-time", "1000"], capsys)
    assert code == 0 and " dev a-b " in out and "0x0" not in out and "base-time 1000 " in out


def test_cli_all_ports_text_json_taprio(tmp_path, capsys):
    d = sched({"r1": [0]})
    d["links"] += [{"src": "Shijiazhuang", "dst": "Zhengzhou", "capacity_bps": MBPS100, "propagation_ns": 0},
                   {"src": "Shijiazhuang", "dst": "Zhangjiakou", "capacity_bps": MBPS100, "propagation_ns": 0}]
    p = tmp_path / "s.json"
    p.write_text(json.dumps(d))
    code, out, _ = _run(["schedule", "gcl", str(p), "--all", "--format", "taprio"], capsys)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 8
    assert [l.split(" (")[0] for l in lines[::2]] == [
        "# a -> b", "# b -> a", "# Shijiazhuang -> Zhengzhou", "# Shijiazhuang -> Zhangjiakou"]
    devs = [l.split()[4] for l in lines[1::2]]
    assert devs == ["a-b", "b-a", "Shijiazhuang-Zh", "Shijiazhuang-_2"]
    code, out, _ = _run(["schedule", "gcl", str(p), "--all", "--json"], capsys)
    assert code == 0 and [g["dst"] for g in json.loads(out)["gcls"]] == ["b", "a", "Zhengzhou", "Zhangjiakou"]
    code, out2, _ = _run(["schedule", "gcl", str(p), "--all", "--format", "json"], capsys)
    assert out2 == out
    code, out, _ = _run(["schedule", "gcl", str(p), "--all"], capsys)
    assert code == 0 and out.count("GCL ") == 4
    code, one, _ = _run(["schedule", "gcl", str(p), "--link", "a", "b", "--json"], capsys)
    code, same, _ = _run(["schedule", "gcl", str(p), "--link", "a", "b", "--format", "json"], capsys)
    assert one == same and json.loads(one)["src"] == "a"


@pytest.mark.parametrize("args, needle", [
    (["--link", "a", "b", "--json", "--format", "taprio"], "--json is --format json"),
    (["--all", "--format", "taprio", "--dev", "eth0"], "--dev goes with --format taprio and one --link"),
    (["--link", "a", "b", "--dev", "eth0"], "--dev goes with"),
    (["--link", "a", "b", "--format", "taprio", "--dev", "bad name"], "not a Linux interface name"),
    (["--link", "a", "zz", "--format", "taprio"], "link a->zz is not in the schedule"),
    (["--link", "a", "b", "--format", "taprio", "--guard-band-bytes", "-3"], "guard_band_bytes"),
])
def test_cli_bad_input_is_one_line_exit_2(sched_file, capsys, args, needle):
    code, out, err = _run(["schedule", "gcl", str(sched_file)] + args, capsys)
    assert code == 2 and out == ""
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_too_many_entries_and_bad_files(tmp_path, capsys):
    busy = tmp_path / "busy.json"
    busy.write_text(json.dumps(sched({"r": list(range(0, 100, 2))})))
    code, out, err = _run(["schedule", "gcl", str(busy), "--all", "--format", "taprio"], capsys)
    assert (code, out) == (2, "")
    assert err.strip() == f"dnctl: {busy}: port a->b: needs 100 taprio entries, tc installs at most 31 " \
                          f"(more are cut silently)"
    code, out, err = _run(["schedule", "gcl", str(busy), "--link", "b", "a", "--format", "taprio"], capsys)
    assert code == 0                                    # the idle direction fits
    nolinks = tmp_path / "nolinks.json"
    nolinks.write_text(json.dumps({**sched({}), "links": []}))
    code, _, err = _run(["schedule", "gcl", str(nolinks), "--all"], capsys)
    assert code == 2 and "no links" in err
    junk = tmp_path / "junk.json"
    junk.write_text(json.dumps({**sched({}), "links": [3]}))
    code, _, err = _run(["schedule", "gcl", str(junk), "--all"], capsys)
    assert code == 2 and "not a Schedule JSON" in err
    code, _, err = _run(["schedule", "gcl", str(tmp_path / "none.json"), "--all"], capsys)
    assert code == 2 and "no such file" in err
    with pytest.raises(SystemExit) as e:                # neither --link nor --all: argparse, exit 2
        main(["schedule", "gcl", str(busy)])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["schedule", "gcl", str(busy), "--all", "--link", "a", "b"])
    assert e.value.code == 2
    capsys.readouterr()
