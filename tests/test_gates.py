"""The emulation's gates without a kernel (tools/emulation/gates.py): which ports get taprio from a
scheduler's real schedule, on which device, shifted by the link's delay, refused when the schedule's
rate is not the emulated link's; the tc lines (classifier, taprio, netem under both queues); the
read-back of ``tc qdisc show`` text; and the keeper's rounds against a fake controller and a fake
``tc`` that holds what it was told (or not). The kernel side is tests/test_vm_gates.py.
"""

from __future__ import annotations

import shlex
from types import SimpleNamespace

import pytest

from controller.core.model import Request, Reservation
from controller.core.scheduler import Scheduler
from schedules.schedule_json import schedule_to_dict
from schedules.taprio import MASK_BEST_EFFORT, MASK_RESERVED, TaprioConfig
from tools.emulation.gates import (TAPRIO_HANDLE, GateKeeper, GatesNotInPlace, changes_schedule, gate_plan,
                                   install_lines, netem_args, qdisc_texts, readback, reserved_links)
from tools.emulation.miniature import miniature_topology
from topologies.emulated import default_plan, switch_intf_name
from topologies.model import Topology

SCALE = 1e-3


def line4() -> Topology:
    t = Topology("line4")
    for n in "abcd":
        t.add_node(n)
    for u, v in (("a", "b"), ("b", "c"), ("c", "d")):
        t.add_link(u, v, 300, capacity_bps=100_000_000_000)      # 1.5 ms; 100 Mb/s emulated
    return t


def schedule(topo: Topology, pairs=(("a", "c"), ("b", "d"))) -> tuple[dict, Scheduler]:
    mini = miniature_topology(topo, SCALE, propagation_emulated=True)
    s = Scheduler(mini, slot_ns=100_000, base_cycle_ns=1_000_000, max_cycle_ns=10_000_000)
    for src, dst in pairs:
        assert isinstance(s.admit(Request(tenant=1, src=src, dst=dst, period_ns=10_000_000, frame_bytes=1500,
                                          max_latency_ns=50_000_000)), Reservation)
    return schedule_to_dict(s), s


def show_text(configs: list[TaprioConfig]) -> str:
    """What iproute2 6.1 prints for these taprio qdiscs (format as captured in the VM, docs/gates.md)."""
    out = []
    for c in configs:
        out.append(f"qdisc taprio {TAPRIO_HANDLE}: dev {c.dev} root refcnt 3 tc 2 map "
                   + " ".join(map(str, c.prio_map)))
        out.append("queues offset 0 count 1 offset 1 count 1 ")
        out.append(f"clockid TAI\tbase-time {c.base_time_ns} cycle-time {c.cycle_ns} cycle-time-extension 0 ")
        out += [f"\tindex {i} cmd S gatemask {e.mask:#x} interval {e.interval_ns} " for i, e in enumerate(c.entries)]
        out.append("")
        out.append(f"qdisc netem 101: dev {c.dev} parent {TAPRIO_HANDLE}:1 limit 1000 delay 1.5ms rate 100Mbit")
    out.append("qdisc noqueue 0: dev lo root refcnt 2")
    return "\n".join(out) + "\n"


def test_the_ports_carrying_reservations_get_the_schedules_gates_on_their_devices():
    topo = line4()
    plan = default_plan(topo)
    sched, _ = schedule(topo)
    gp = gate_plan(sched, topo, plan, link_scale=SCALE, delay_scale=1.0, delayed=True)
    assert set(gp.configs) == reserved_links(sched) == {("a", "b"), ("b", "c"), ("c", "d")}
    assert gp.errors == {}
    ports = plan.link_ports()
    for (u, v), cfg in gp.configs.items():
        assert cfg.dev == switch_intf_name(plan.switch_name(u), ports[(u, v)])
        assert cfg.cycle_ns == sched["cycle_ns"] == 10_000_000
        assert cfg.base_time_ns == 1_500_000           # the gate opens when the fibre delivers the slot
        assert cfg.link_bps == 100_000_000 and cfg.guard_band_ns == 121_760
        assert {e.mask for e in cfg.entries} >= {MASK_BEST_EFFORT, MASK_RESERVED}
    # b->c carries both reservations: more reserved time than a->b
    reserved = {k: sum(e.interval_ns for e in c.entries if e.mask == MASK_RESERVED) for k, c in gp.configs.items()}
    assert reserved[("b", "c")] > reserved[("a", "b")] > 0
    # without netem there is no delay under the gate: no shift
    assert all(c.base_time_ns == 0 for c in gate_plan(sched, topo, plan, link_scale=SCALE).configs.values())


def test_a_port_kept_after_its_last_reservation_is_one_open_entry_and_a_wrong_rate_is_refused():
    topo = line4()
    plan = default_plan(topo)
    sched, _ = schedule(topo, pairs=(("a", "b"),))
    gp = gate_plan(sched, topo, plan, link_scale=SCALE, keep=[("c", "d")])
    assert set(gp.configs) == {("a", "b"), ("c", "d")} and gp.reserved == {("a", "b")}
    assert [(e.mask, e.interval_ns) for e in gp.configs[("c", "d")].entries] == [(MASK_BEST_EFFORT, 10_000_000)]
    # the same schedule on an emulation at another rate: its times do not describe the links
    wrong = gate_plan(sched, topo, plan, link_scale=SCALE / 10)
    assert wrong.configs == {} and "the schedule is for 100000000 b/s, the emulated link runs 10000000 b/s" \
        in wrong.errors[("a", "b")]


def test_install_lines_classify_pcp7_gate_and_keep_the_link_under_the_gate():
    topo = line4()
    plan = default_plan(topo)
    sched, _ = schedule(topo)
    cfg = gate_plan(sched, topo, plan, link_scale=SCALE, delayed=True).configs[("a", "b")]
    netem = netem_args(topo, "a", "b", link_scale=SCALE, delay_scale=1.0, delayed=True)
    assert netem == "delay 1500us rate 100000kbit limit 1000"
    fresh = install_lines(cfg, fresh=True, netem=netem)
    dev = cfg.dev
    assert fresh[0] == f"qdisc replace dev {dev} clsact"
    # reserved frames: priority 7 on taprio's queue of traffic class 1; every other frame: priority 0 on
    # class 0's queue (set, not left to the kernel, which would reuse the sender socket's queue)
    assert "egress prio 1" in fresh[1] and "flower vlan_prio 7 action skbedit priority 7 queue_mapping 1" in fresh[1]
    assert "egress prio 2" in fresh[2] and "matchall action skbedit priority 0 queue_mapping 0" in fresh[2]
    assert [cfg.queues[t][1] for t in (0, 1)] == [0, 1] and cfg.prio_map[7] == 1 and cfg.prio_map[0] == 0
    assert fresh[3] == f"qdisc del dev {dev} root"
    taprio = shlex.split(fresh[4])
    assert taprio[:7] == ["qdisc", "replace", "dev", dev, "root", "handle", f"{TAPRIO_HANDLE}:"]
    assert taprio[7:] == cfg.command()[6:]             # the rest is schedules.taprio's argv, unchanged
    assert fresh[5:7] == [f"qdisc replace dev {dev} parent {TAPRIO_HANDLE}:{q} handle {TAPRIO_HANDLE + q}: netem "
                          f"{netem}" for q in (1, 2)]
    assert fresh[7] == fresh[4]          # given again: the grafts cancelled the timer that puts it in force
    assert install_lines(cfg, fresh=False) == [fresh[4]]
    assert netem_args(topo, "a", "b", link_scale=None, delay_scale=1.0, delayed=False) is None


def test_readback_finds_equal_changed_and_missing_gates():
    topo = line4()
    plan = default_plan(topo)
    sched, _ = schedule(topo)
    configs = gate_plan(sched, topo, plan, link_scale=SCALE, delayed=True).configs
    text = show_text(list(configs.values()))
    assert set(qdisc_texts(text)) == {c.dev for c in configs.values()}
    assert readback(configs, text) == {k: [] for k in configs}
    ab = configs[("a", "b")]
    k = next(i for i, e in enumerate(ab.entries) if e.mask == MASK_RESERVED)
    changed = text.replace(f"index {k} cmd S gatemask 0x2 interval {ab.entries[k].interval_ns} ",
                           f"index {k} cmd S gatemask 0x3 interval {ab.entries[k].interval_ns} ", 1)
    assert readback(configs, changed)[("a", "b")] == [f"entry {k}: gatemask 0x3 installed, 0x2 scheduled"]
    # the list only pending (no schedule in force yet: taprio then opens every gate)
    pending = text.replace("base-time 1500000 cycle-time", "base-time 0 cycle-time 0 cycle-time-extension 0\t"
                           "base-time 1500000 cycle-time")
    assert all(d == [f"{configs[k].dev}: no schedule in force (the list is pending: every gate open)"]
               for k, d in readback(configs, pending).items())
    missing = show_text([c for key, c in configs.items() if key != ("c", "d")])
    assert readback(configs, missing)[("c", "d")] == [f"{configs[('c', 'd')].dev}: no taprio qdisc installed"]


def test_which_events_change_the_schedule():
    assert changes_schedule({"action": "reserve"}) and changes_schedule({"action": "release"})
    assert changes_schedule({"action": "reroute"}) and changes_schedule({"action": "link_down"})
    assert not changes_schedule({"action": "switch_connected"}) and not changes_schedule({"action": "create_tenant"})


class FakeController:
    """``/v1/schedule`` and ``/v1/events`` of a scheduler, an event appended per change."""

    def __init__(self, sched: Scheduler):
        self.sched, self.events = sched, [{"seq": 1, "action": "start"}]

    def event(self, action: str) -> None:
        self.events.append({"seq": len(self.events) + 1, "action": action})

    def schedule(self) -> dict:
        return schedule_to_dict(self.sched)

    def get(self, path: str, params: dict) -> dict:
        assert path == "/v1/events"
        items = [e for e in self.events if e["seq"] > params["since"]][:params["limit"]]
        return {"events": items, "next": items[-1]["seq"] if items else params["since"]}


class FakeTc:
    """``tc -batch`` and ``tc qdisc show``: holds the taprio configs the batches installed (or, when
    ``drop`` names a device, loses that one's)."""

    def __init__(self, keeper_configs):
        self.batches: list[str] = []
        self.drop: set[str] = set()
        self.configs = keeper_configs

    def __call__(self, argv, **kw):
        if argv[:2] == ["tc", "-force"]:
            self.batches.append(kw["input"])
            return SimpleNamespace(returncode=0, stdout="", stderr="")
        if argv[:3] == ["tc", "-s", "qdisc"]:
            return SimpleNamespace(returncode=0, stdout=f"qdisc taprio 100: dev {argv[-1]} root\n Sent 1 bytes\n",
                                   stderr="")
        assert argv == ["tc", "qdisc", "show"]
        shown = [c for c in self.configs() if c.dev not in self.drop]
        return SimpleNamespace(returncode=0, stdout=show_text(shown), stderr="")


def test_the_keeper_applies_on_changes_reads_back_and_reports_differences():
    topo = line4()
    plan = default_plan(topo)
    _, sched = schedule(topo, pairs=(("a", "c"),))
    ctl = FakeController(sched)
    emu = SimpleNamespace(topology=topo, plan=plan, link_scale=SCALE, shaped=True, delay_scale=1.0, delayed=True)
    said: list[str] = []
    keeper = GateKeeper(emu, ctl, say=said.append, sleep=lambda s: None)
    tc = FakeTc(lambda: list(keeper.installed.values()))
    keeper._run = tc
    keeper.since = keeper._last_seq()
    keeper.apply()
    s = keeper.summary()
    assert s["gated"] == ["a->b", "b->c"] and s["open"] == [] and s["readback_equal"] and s["applies"] == 1
    stats = keeper.stats()     # tc -s of every gated port, each under its device's name
    assert [l for l in stats.splitlines() if l.startswith("# ")] == sorted(f"# {c.dev}" for c in keeper.installed.values())
    assert len(tc.batches) == 1 and tc.batches[0].count("clsact") == 2 and tc.batches[0].count(" taprio ") == 4
    # nothing that changes the schedule: no round
    ctl.event("switch_connected")
    assert keeper.sync() is False and len(tc.batches) == 1
    # a new reservation over c->d: one round, only the ports whose gates changed are installed
    rid = sched.admit(Request(tenant=1, src="b", dst="d", period_ns=10_000_000, frame_bytes=1500,
                              max_latency_ns=50_000_000)).id
    ctl.event("reserve")
    assert keeper.sync() is True
    s = keeper.summary()
    assert s["gated"] == ["a->b", "b->c", "c->d"] and s["readback_equal"] and s["events_seq"] == 3
    assert tc.batches[-1].count(" taprio ") == 3 and "clsact" in tc.batches[-1]      # b->c changed, c->d fresh
    # its release: c->d stays with one open entry
    sched.release(rid)
    ctl.event("release")
    keeper.sync()
    s = keeper.summary()
    assert s["gated"] == ["a->b", "b->c"] and s["open"] == ["c->d"] and s["readback_equal"]
    # a port that lost its gate: reported, counted, and installed afresh at the next round
    tc.drop = {keeper.installed[("a", "b")].dev}
    diffs = keeper.check()
    assert list(diffs) == [("a", "b")] and not keeper.summary()["readback_equal"]
    assert keeper.summary()["differences_seen"] == 1 and any("differs from the schedule" in m for m in said)
    tc.drop = set()
    keeper.apply()
    assert "clsact" in tc.batches[-1] and keeper.summary()["readback_equal"]


def test_wait_gated_returns_once_the_links_are_gated_and_equal_and_puts_a_lost_gate_back():
    topo = line4()
    _, sched = schedule(topo, pairs=(("a", "c"),))
    ctl = FakeController(sched)
    emu = SimpleNamespace(topology=topo, plan=default_plan(topo), link_scale=SCALE, shaped=True, delay_scale=1.0,
                          delayed=True)
    keeper = GateKeeper(emu, ctl, say=lambda m: None, sleep=lambda s: None)
    tc = FakeTc(lambda: list(keeper.installed.values()))
    keeper._run = tc
    keeper.since = keeper._last_seq()
    keeper.apply()
    assert keeper.wait_gated({"a->b", "b->c"}, timeout_s=5)["ports_gated"] == 2
    # a gate lost on a->b: the wait installs that port afresh and reads it back before returning
    tc.drop = {keeper.installed[("a", "b")].dev}
    keeper.check()
    tc.drop = set()
    batches = len(tc.batches)
    assert keeper.wait_gated({"a->b"}, timeout_s=5)["readback_equal"]
    assert len(tc.batches) == batches + 1 and "clsact" in tc.batches[-1]
    # a link no reservation crosses never gets a gate: the wait gives up with what is missing
    with pytest.raises(GatesNotInPlace, match=r"missing \['c->d'\]"):
        keeper.wait_gated({"a->b", "c->d"}, timeout_s=0)
