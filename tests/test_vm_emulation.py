"""Proof, in a VM with Debian's stock kernel, that the kernel features issue 11 builds on work there:
the openvswitch module, netem and taprio load; Mininet on the kernel datapath with ``netem delay``
on its links pings within 10% (+5 ms) of twice the path's delay; taprio gates on a two-queue veth
really gate (and a mostly-open gate does not); the project's own Python runs in the guest from the
read-only share and its host probe finds all three features there.

One guest boots for the module (its boot time is printed with the figures). The image is built on
first use when ``make setup`` did not build it (this host had the features). Needs root (to build
the image) and qemu-system-x86_64; skips naming what is missing. Marked ``emulation`` and ``vm``.
"""

from __future__ import annotations

import json
import re

import pytest

from tools.emulation.network import parse_echo
from vmhelpers import booted_guest, say

pytestmark = [pytest.mark.emulation, pytest.mark.vm]

#: the linear topology: switches, one-way netem delay per inter-switch link
SWITCHES, DELAY_MS = 4, 10.0
#: the ICMP echo that awaits every reply (tools/emulation/echo.py), from the guest's share of the repository
GUEST_ECHO = "/repo/tools/emulation/echo.py"

MININET_LINEAR = r"""
set -e
/usr/share/openvswitch/scripts/ovs-ctl start --system-id=random >/dev/null
python3 - <<'PY'
import json
from mininet.link import TCLink
from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import OVSSwitch
from mininet.topo import Topo

N, D = {switches}, {delay_ms}

class Linear(Topo):
    def build(self):
        sw = [self.addSwitch(f"s{{i + 1}}", failMode="standalone") for i in range(N)]
        for i, s in enumerate(sw):
            self.addLink(self.addHost(f"h{{i + 1}}"), s)
        for a, b in zip(sw, sw[1:]):
            self.addLink(a, b, cls=TCLink, delay=f"{{D:g}}ms")

setLogLevel("error")
net = Mininet(topo=Linear(), switch=OVSSwitch, controller=None, autoSetMacs=True)
net.start()
try:
    h1, hn = net.get("h1"), net.get(f"h{{N}}")
    h1.cmd(f"ping -c 3 -i 0.2 {{hn.IP()}}")                       # ARP and MAC learning first
    out = h1.cmd(f"python3 -S {echo} {{hn.IP()}} 20 0.2 10")       # every reply awaited
    print(json.dumps({{
        "datapath": net.get("s1").cmd("ovs-dpctl show"),
        "qdisc_s2": net.get("s2").cmd("tc qdisc show dev s2-eth2"),
        "ping": out,
    }}))
finally:
    net.stop()
PY
"""

TAPRIO_GATES = r"""
set -e
modprobe -a veth sch_taprio
ip netns add a
ip netns add b
ip link add va netns a numtxqueues 2 numrxqueues 2 type veth peer name vb netns b numtxqueues 2 numrxqueues 2
ip -n a addr add 10.9.0.1/24 dev va
ip -n b addr add 10.9.0.2/24 dev vb
ip -n a link set va up
ip -n b link set vb up
png() { ip netns exec a python3 -S /repo/tools/emulation/echo.py 10.9.0.2 "$1" 0.037 5; }     # every reply awaited
gate() {  # class 0 (every priority but 1) open $1 ns, then class 1 open $2 ns; cycle $1 + $2
    tc -n a qdisc replace dev va root taprio num_tc 2 map 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 \
        queues 1@0 1@1 base-time 0 sched-entry S 01 "$1" sched-entry S 02 "$2" clockid CLOCK_TAI
}
echo "== baseline"; png 40
gate 10000000 90000000
echo "== gcl"; tc -n a qdisc show dev va
echo "== closed90"; png 100
gate 90000000 10000000
echo "== closed10"; png 60
"""


def _ping_stats(text: str) -> tuple[list[float], float]:
    """(round-trip time of every reply in ms, loss %) of an ``echo.py`` output."""
    r = parse_echo("a", "b", text)
    assert r.rtts_ms, f"no ping replies in: {text!r}"
    return r.rtts_ms, r.loss_pct


def _p(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@pytest.fixture(scope="module")
def guest(request):
    with booted_guest(request) as g:
        yield g


def test_vm_kernel_modules_load(guest, request):
    r = guest.run("uname -r; modprobe -a openvswitch sch_netem sch_taprio sch_etf veth && "
                  "lsmod | awk '{print $1}' | sort; "
                  "/usr/share/openvswitch/scripts/ovs-ctl start --system-id=random >/dev/null && "
                  "ovs-vsctl add-br vmbr0 && ovs-dpctl show && ovs-vsctl del-br vmbr0", timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert lines[0] == guest.image.kernel_release
    for mod in ("openvswitch", "sch_netem", "sch_taprio", "sch_etf", "veth"):
        assert mod in lines, f"{mod} not loaded: {r.stdout}"
    assert "system@ovs-system" in r.stdout          # the kernel datapath
    say(request, f"vm: modprobe openvswitch sch_netem sch_taprio sch_etf veth + ovs-ctl start: "
                 f"{r.seconds:.1f} s")


def test_vm_mininet_kernel_datapath_netem_rtt(guest, request):
    r = guest.run(MININET_LINEAR.format(switches=SWITCHES, delay_ms=DELAY_MS, echo=GUEST_ECHO), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert "system@ovs-system" in res["datapath"]
    assert "netem" in res["qdisc_s2"] and f"delay {DELAY_MS:g}ms" in res["qdisc_s2"], res["qdisc_s2"]
    ping = parse_echo("h1", f"h{SWITCHES}", res["ping"])
    assert ping.ok, res["ping"]
    rtt_min, rtt_avg, rtt_max = ping.rtt_min_ms, ping.rtt_avg_ms, ping.rtt_max_ms
    expected = 2 * (SWITCHES - 1) * DELAY_MS          # netem on both directions of every link
    limit = 0.1 * expected + 5
    say(request, f"vm: mininet linear,{SWITCHES} kernel datapath, netem {DELAY_MS:g} ms on "
                 f"{SWITCHES - 1} links: RTT min/avg/max {rtt_min:.1f}/{rtt_avg:.1f}/{rtt_max:.1f} ms, "
                 f"expected {expected:.0f} ± {limit:.0f} ms ({r.seconds:.1f} s)")
    assert abs(rtt_avg - expected) <= limit
    assert rtt_min >= expected * 0.99                 # netem's delay is a floor


def test_vm_taprio_gates_really_gate(guest, request):
    r = guest.run(TAPRIO_GATES, timeout=120)
    assert r.returncode == 0, r.stderr
    parts = dict(re.findall(r"== (\w+)\n(.*?)(?=\n== |\Z)", r.stdout, re.S))
    (base, base_loss), (c90, c90_loss), (c10, c10_loss) = (
        _ping_stats(parts[k]) for k in ("baseline", "closed90", "closed10"))
    gcl = parts["gcl"]
    assert "taprio" in gcl and "gatemask 0x1 interval 10000000" in gcl \
        and "gatemask 0x2 interval 90000000" in gcl, gcl      # read back as installed
    # a ping arriving at a uniform phase of a 100 ms cycle whose gate is closed 90 ms waits
    # 90^2 / (2 * 100) = 40.5 ms on average and at most 90 ms; closed 10 ms: 0.5 ms on average.
    # The noise of this guest is the open gate's worst round trip, measured in the same run.
    expect90, expect10 = 90.0 ** 2 / 200, 10.0 ** 2 / 200
    mean = lambda xs: sum(xs) / len(xs)                   # noqa: E731
    noise = max(base)
    late = [x for x in c90 if x > 90 + noise + 10]
    say(request, f"vm: taprio on veth, ping avg/p95/max: open {mean(base):.1f}/{_p(base, .95):.1f}/"
                 f"{noise:.1f} ms; gate closed 90 of 100 ms {mean(c90):.1f}/{_p(c90, .95):.1f}/"
                 f"{max(c90):.1f} ms (expected +{expect90:.1f}/<=90; {len(late)} of {len(c90)} "
                 f"a cycle late); closed 10 of 100 ms {mean(c10):.1f}/{_p(c10, .95):.1f}/"
                 f"{max(c10):.1f} ms (expected +{expect10:.1f}/<=10)")
    assert base_loss == c90_loss == c10_loss == 0            # gates delay, they do not drop
    assert abs(mean(c90) - mean(base) - expect90) <= 10
    assert max(c90) >= 60                                     # the gate really stays shut
    # Under TCG the guest's timer for a gate event can fire more than the 10 ms window late; the
    # packet then waits one more cycle (seen once: 186 ms). Such a packet is a timer of the VM
    # missing, not a gate letting through what it should hold, so the bound is on the 95th
    # percentile, and the late ones are printed above.
    assert _p(c90, .95) <= 90 + noise + 10
    assert mean(c10) - mean(base) <= expect10 + 5
    assert _p(c10, .95) <= 10 + noise + 10


def test_vm_project_runs_in_guest_and_finds_the_features(guest, request):
    r = guest.run("python3 -m tools.vm need", timeout=180)
    assert r.returncode == 1, (r.stdout, r.stderr)             # exit 1: no VM needed in there
    assert "no VM needed" in r.stdout
    say(request, f"vm: in the guest, `python3 -m tools.vm need` from the 9p share: {r.stdout.strip()} "
                 f"({r.seconds:.1f} s)")
