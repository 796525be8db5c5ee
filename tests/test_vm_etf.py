"""taprio with an etf child (a talker with launch times, docs/standards.md) installed in a VM with
Debian's stock kernel and read back: the guest runs exactly ``TaprioConfig.commands()`` (taprio with
``handle 100:``, then ``etf`` on ``parent 100:2``) on a two-queue veth; ``tc qdisc show`` is parsed and
``compare()`` finds nothing; a delta changed by hand on the guest is reported; and the text the guest
printed is shown (the format ``parse_taprio_show`` reads, from iproute2's tc/q_etf.c).

The port is the talker's first link of a small schedule (``schedules.taprio.talker_ports``) at the
emulation's rate (100 Mb/s), 100 us slots, a 10 ms cycle. One guest boots for the module (~20 s
under TCG). Needs qemu-system-x86_64 and the image (or root to build it); skips naming what is
missing. Marked ``emulation`` and ``vm``.
"""

from __future__ import annotations

import shlex

import pytest

from controller.core.model import Request, Reservation
from controller.core.scheduler import Scheduler
from schedules.gcl import gate_control_list
from schedules.schedule_json import schedule_to_dict
from schedules.taprio import compare, parse_taprio_show, taprio_config, talker_ports
from topologies.model import Topology
from vmhelpers import booted_guest, say

pytestmark = [pytest.mark.emulation, pytest.mark.vm]

NETNS, DEV = "etf", "va"

SETUP = f"""
set -e
modprobe -a veth sch_taprio sch_etf
ip netns add {NETNS}
ip link add {DEV} netns {NETNS} numtxqueues 2 numrxqueues 2 type veth peer name vb netns {NETNS} \\
    numtxqueues 2 numrxqueues 2
ip -n {NETNS} link set {DEV} up
ip -n {NETNS} link set vb up
"""


@pytest.fixture(scope="module")
def guest(request):
    with booted_guest(request) as g:
        r = g.run(SETUP, timeout=120)
        assert r.returncode == 0, r.stderr
        yield g


def talker_config():
    t = Topology("line")
    for n in "abc":
        t.add_node(n)
    t.add_link("a", "b", 100, capacity_bps=100_000_000)
    t.add_link("b", "c", 100, capacity_bps=100_000_000)
    s = Scheduler(t, slot_ns=100_000, base_cycle_ns=10_000_000, max_cycle_ns=10_000_000, processing_ns=0)
    for i, period in enumerate((2_000_000, 5_000_000)):
        r = s.admit(Request(tenant=1, src="a", dst="c", frame_bytes=1500, period_ns=period,
                            max_latency_ns=20_000_000, id=f"t{i}"))
        assert isinstance(r, Reservation), r
    sched = schedule_to_dict(s)
    assert talker_ports(sched) == {("a", "b")}
    return taprio_config(gate_control_list(sched, "a", "b"), dev=DEV, link_bps=100_000_000, etf_delta_ns=300_000)


def test_taprio_with_etf_child_installs_and_reads_back(guest, request):
    cfg = talker_config()
    script = "; ".join(f"{shlex.join(argv)} || exit 3" for argv in cfg.commands(netns=NETNS))
    r = guest.run(f"{script}; tc -n {NETNS} qdisc show dev {DEV}", timeout=120)
    assert r.returncode == 0, r.stderr
    shown = parse_taprio_show(r.stdout)
    say(request, "vm: taprio + etf read back:\n" + "\n".join(
        line for line in r.stdout.splitlines() if line.startswith(("qdisc taprio", "qdisc etf"))))
    assert shown["handle"] == "100:" and shown["etf"]["parent"] == "100:2"
    assert compare(cfg, shown) == [], r.stdout

    r = guest.run(f"tc -n {NETNS} qdisc replace dev {DEV} parent 100:2 etf clockid CLOCK_TAI delta 400000 && "
                  f"tc -n {NETNS} qdisc show dev {DEV}", timeout=120)
    assert r.returncode == 0, r.stderr
    assert compare(cfg, parse_taprio_show(r.stdout)) == ["etf delta: 400000 installed, 300000 scheduled"]
