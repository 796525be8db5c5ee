"""A scheduler's gate control list installed as Linux taprio in a VM with Debian's stock kernel, and read
back: ``schedules.taprio`` computes the qdisc of one busy port of a small real schedule, the guest
runs exactly ``TaprioConfig.command()`` on a two-queue veth, ``tc qdisc show`` is parsed and
``compare()`` finds nothing; an entry changed by hand on the guest is reported; and tc's own limit is
pinned: 31 entries (30 with a base time) read back equal; one more is cut by tc: replacing a running
taprio the kernel then refuses it (exit 2, the old schedule stays), on a first install tc exits 0 and
only ``compare()`` shows the broken schedule.

Scale: the schedule is made by the scheduler on a four-node topology at the emulation's rates
(``topologies.emulated``: a 100 Gb/s link becomes 100 Mb/s), with 100 us slots and a 10 ms cycle, so
a 1500-byte frame takes 2 slots and the guard band (1522 bytes at 100 Mb/s) is 121.76 us; the
shortest interval is 78.24 us (a 200 us best-effort run minus the guard band), which the software
taprio of a TCG guest keeps up with (about 2000 gate events a second).

One guest boots for the module (~20 s under TCG). Needs qemu-system-x86_64 and the image (or root to
build it); skips naming what is missing. Marked ``emulation`` and ``vm``.
"""

from __future__ import annotations

import shlex

import pytest

from controller.core.model import Request, Reservation
from controller.core.scheduler import Scheduler
from schedules.gcl import gate_control_list
from schedules.schedule_json import schedule_to_dict
from schedules.taprio import (MASK_BEST_EFFORT, MASK_CLOSED, MASK_RESERVED, SchedEntry, TaprioConfig, compare,
                              parse_taprio_show, taprio_config, tc_entry_limit)
from topologies.model import Topology
from vmhelpers import booted_guest, say

pytestmark = [pytest.mark.emulation, pytest.mark.vm]

NETNS, DEV = "tap", "va"

SETUP = f"""
set -e
modprobe -a veth sch_taprio
ip netns add {NETNS}
ip link add {DEV} netns {NETNS} numtxqueues 2 numrxqueues 2 type veth peer name vb netns {NETNS} \\
    numtxqueues 2 numrxqueues 2
ip -n {NETNS} link set {DEV} up
ip -n {NETNS} link set vb up
uname -r
tc -V
"""


@pytest.fixture(scope="module")
def guest(request):
    with booted_guest(request) as g:
        r = g.run(SETUP, timeout=120)
        assert r.returncode == 0, r.stderr
        say(request, "vm: two-queue veth in netns {}: kernel {}, {}".format(NETNS, *r.stdout.split("\n")[:2]))
        yield g


def install(guest, argv: list[str], *, fresh: bool = False) -> tuple[int, str, str]:
    """Run ``argv`` (a tc command) in the guest, after deleting the root qdisc when ``fresh``;
    (its exit code, its stderr, ``tc qdisc show dev``)."""
    script = ((f"tc -n {NETNS} qdisc del dev {DEV} root 2>/dev/null; " if fresh else "") +
              f"{shlex.join(argv)} 2>/tmp/tc.err; echo \"rc=$?\"; cat /tmp/tc.err >&2; "
              f"tc -n {NETNS} qdisc show dev {DEV}")
    r = guest.run(script, timeout=120)
    assert r.returncode == 0, r.stderr
    first, _, shown = r.stdout.partition("\n")
    assert first.startswith("rc="), r.stdout
    return int(first[3:]), r.stderr, shown


def small_schedule() -> dict:
    """Four reservations admitted by the scheduler on a diamond at the emulation's rates (module doc)."""
    t = Topology("diamond")
    for n in "abcd":
        t.add_node(n)
    for u, v, km in (("a", "b", 100), ("b", "d", 100), ("a", "c", 150), ("c", "d", 100), ("b", "c", 50)):
        t.add_link(u, v, km, capacity_bps=100_000_000)
    s = Scheduler(t, slot_ns=100_000, base_cycle_ns=10_000_000, max_cycle_ns=10_000_000, processing_ns=0)
    for r in (Request(tenant=1, src="a", dst="d", period_ns=5_000_000, frame_bytes=3000, max_latency_ns=20_000_000),
              Request(tenant=2, src="a", dst="d", period_ns=10_000_000, frame_bytes=6000, max_latency_ns=20_000_000),
              Request(tenant=1, src="b", dst="d", period_ns=2_500_000, frame_bytes=1500, max_latency_ns=20_000_000),
              Request(tenant=3, src="a", dst="c", period_ns=10_000_000, frame_bytes=1500,
                      max_latency_ns=20_000_000)):
        assert isinstance(s.admit(r), Reservation)
    return schedule_to_dict(s)


@pytest.fixture(scope="module")
def busy_port() -> TaprioConfig:
    """The taprio config of the port with the most entries."""
    d = small_schedule()
    configs = [taprio_config(gate_control_list(d, l["src"], l["dst"]), dev=DEV, link_bps=l["capacity_bps"])
               for l in d["links"]]
    cfg = max(configs, key=lambda c: len(c.entries))
    masks = {e.mask for e in cfg.entries}
    assert masks == {MASK_CLOSED, MASK_BEST_EFFORT, MASK_RESERVED} and 10 < len(cfg.entries) <= tc_entry_limit()
    assert min(e.interval_ns for e in cfg.entries) >= 50_000
    return cfg


def test_vm_schedule_port_installs_and_reads_back_equal(guest, busy_port, request):
    cfg = busy_port
    rc, err, shown_text = install(guest, cfg.command(netns=NETNS))
    assert rc == 0 and err == "", err
    shown = parse_taprio_show(shown_text)
    assert compare(cfg, shown) == [], shown_text
    assert len(shown["entries"]) == len(cfg.entries) and shown["cycle_time"] == cfg.cycle_ns == 10_000_000
    say(request, f"vm: port {cfg.src}->{cfg.dst}: {len(cfg.entries)} taprio entries (guard band "
                 f"{cfg.guard_band_ns} ns, shortest interval {min(e.interval_ns for e in cfg.entries)} ns) "
                 f"installed with the computed argv and read back equal")


def test_vm_an_entry_changed_by_hand_is_reported(guest, busy_port):
    cfg = busy_port
    k = next(i for i, e in enumerate(cfg.entries) if e.mask == MASK_RESERVED and 0 < i < len(cfg.entries) - 1)
    argv = cfg.command(netns=NETNS)
    at = [i for i, a in enumerate(argv) if a == "sched-entry"][k]
    assert argv[at + 2] == "0x2"
    argv[at + 2] = "0x3"                                  # best effort let into the reserved window
    rc, err, shown_text = install(guest, argv)
    assert rc == 0, err
    assert compare(cfg, parse_taprio_show(shown_text)) == [f"entry {k}: gatemask 0x3 installed, 0x2 scheduled"]
    # and an interval moved from one entry to the next (the cycle stays): two lines
    argv = cfg.command(netns=NETNS)
    argv[at + 3] = str(cfg.entries[k].interval_ns - 1000)
    argv[at + 4 + 3] = str(cfg.entries[k + 1].interval_ns + 1000)
    rc, err, shown_text = install(guest, argv)
    assert rc == 0, err
    assert compare(cfg, parse_taprio_show(shown_text)) == [
        f"entry {k}: interval {cfg.entries[k].interval_ns - 1000} installed, {cfg.entries[k].interval_ns} scheduled",
        f"entry {k + 1}: interval {cfg.entries[k + 1].interval_ns + 1000} installed, "
        f"{cfg.entries[k + 1].interval_ns} scheduled"]
    rc, err, shown_text = install(guest, cfg.command(netns=NETNS))     # back as computed
    assert rc == 0 and compare(cfg, parse_taprio_show(shown_text)) == []


@pytest.mark.parametrize("base_time_ns", [0, 1_000_000_000])
def test_vm_tc_carries_the_entry_limit_and_not_one_more(guest, base_time_ns, request):
    limit = tc_entry_limit(base_time_ns)

    def config(n: int) -> TaprioConfig:         # built by hand: taprio_config() refuses n > limit
        return TaprioConfig("x", "y", DEV, tuple(SchedEntry("S", 1 + i % 2, 100_000) for i in range(n)),
                            base_time_ns=base_time_ns)

    full, over = config(limit), config(limit + 1)
    rc, err, shown_text = install(guest, full.command(netns=NETNS))
    assert rc == 0 and err == "" and compare(full, parse_taprio_show(shown_text)) == []
    # one more, replacing a running taprio: tc cuts the request (its last entry loses its interval),
    # the kernel refuses the interval 0 and the running schedule stays
    rc, err, shown_text = install(guest, over.command(netns=NETNS))
    shown = parse_taprio_show(shown_text)
    assert rc != 0 and "addattr_l ERROR" in err, (rc, err)
    assert compare(full, shown) == [] and compare(over, shown)
    replaced = f"replace: exit {rc}, {err.strip().splitlines()[-1]!r}"
    # one more on a device without taprio: tc exits 0 and the kernel (6.1 checks no interval on a
    # first install) holds the cut schedule: compare() is the only one to tell
    rc, err, shown_text = install(guest, over.command(netns=NETNS), fresh=True)
    assert rc == 0 and "addattr_l ERROR" in err, (rc, err)
    diffs = compare(over, parse_taprio_show(shown_text))
    assert any(d.startswith(f"entry {limit}: ") for d in diffs), diffs
    say(request, f"vm: tc, base-time {base_time_ns}: {limit} entries read back equal; {limit + 1}: {replaced}; "
                 f"first install: exit 0 and {'; '.join(diffs)}")
