"""802.1Qbv gates on the emulation's links, driven by the live controller, in a VM with Debian's stock
kernel (tools/emulation/gates.py; docs/gates.md, "Gates on the emulation's links").

In one guest, the project's ``NetworkStack`` (controller + Mininet on the kernel datapath, netem
propagation, the controller scheduling the miniature) brings up a line of three switches with
``gates=True``, and the test script in the guest:

1. pings A -> C before any reservation (no port gated: the emulation's own HTB + netem);
The links run at 1/100,000 of the model (100 Gb/s -> 1 Mb/s) with 100 ms periods, so the controller's
miniature has 1 ms slots and the reservations' windows last 8 ms. At 1/1,000 with 10 ms periods
(100 us slots and windows) no reserved ping came back within 3 s (0 of 20, on a host at load 6-8), in a
run made before the fix of the pending lists (docs/gates.md) and not traced further; the coarser scale
keeps the test inside what the TCG guest's timers are known to serve.

2. reserves A -> C (ICMP from A's host to C's: the ping is the reserved flow) and C -> B; the
   ``GateKeeper``'s thread, following ``/v1/events``, gates exactly the three ports those paths
   cross; the script reads them back itself (``tc qdisc show`` against the gates computed afresh
   from ``GET /v1/schedule``): equal;
3. pings A -> C again with the gates on: every reply back, and the reserved queue (taprio class
   100:2) of A's port counted the pings (PCP 7 -> skb priority 7 -> traffic class 1);
4. changes one gate by hand: the keeper's read-back reports it; its next apply puts it right;
5. releases C -> B: its port is left with one open entry, the others unchanged, all read back equal;
6. takes the gates off (``ungate``): the ports have the emulation's HTB back; pings once more.

Figures printed: ports gated, read-back, RTTs with gates on and off, the guest's wall time.
Marked ``emulation`` and ``vm``; skips naming what the machine lacks (qemu, root to build the image).
"""

from __future__ import annotations

import json
import re
import time

import pytest

from tools.vm.image import REPO
from vmhelpers import booted_guest, say

pytestmark = [pytest.mark.emulation, pytest.mark.vm]

PRELUDE = f"""
set -e
mkdir -p {REPO} && mount --bind /repo {REPO}
modprobe -a openvswitch sch_netem sch_taprio veth
/usr/share/openvswitch/scripts/ovs-ctl start --system-id=random >/dev/null
cd {REPO}
exec {REPO}/.venv/bin/python - <<'PY'
"""

GUEST = r'''
import json, subprocess, time
from schedules.taprio import MASK_RESERVED
from tools.emulation.gates import gate_plan, readback
from tools.emulation.stack import NetworkStack
from topologies.emulated import default_plan
from topologies.model import Topology

t0 = time.monotonic()
topo = Topology("gline")
for n in "ABC":
    topo.add_node(n)
topo.add_link("A", "B", 300, capacity_bps=100_000_000_000)      # 1.5 ms; 1 Mb/s emulated (module doc)
topo.add_link("B", "C", 300, capacity_bps=100_000_000_000)
plan = default_plan(topo)
host = {h.switch: h for h in plan.hosts}
out = {}

def ping(net, src, dst, n=20):
    # every probe's reply awaited up to 10 s after the last (tools/emulation/echo.py): a reply the
    # gates or the guest held up is late, not lost
    r = net.emu.ping(host[src].name, host[dst].name, count=n, interval_s=0.2, timeout_s=10)
    return {"sent": r.sent, "received": r.received, "missing": r.missing, "rtt_ms": r.rtts_ms}

def own_readback(net, api):
    e = net.emu
    gp = gate_plan(api.schedule(), topo, plan, link_scale=e.link_scale, delay_scale=e.delay_scale,
                   delayed=e.delayed, keep=net.gates.installed)
    show = subprocess.run(["tc", "qdisc", "show"], capture_output=True, text=True).stdout
    return {f"{u}->{v}": d for (u, v), d in readback(gp.configs, show).items()}, \
           {f"{u}->{v}": [(x.mask, x.interval_ns) for x in c.entries] for (u, v), c in gp.configs.items()}

def wait_applies(net, n, timeout=120):
    end = time.monotonic() + timeout
    while net.gates.summary()["applies"] < n and time.monotonic() < end:
        time.sleep(0.2)
    return net.gates.summary()

# TCG on a loaded 2-core host: the controller's imports alone can take minutes (x8 in the guest: patience),
# and LLDP every second lost under such load took a link (and the reservations on it) down: every 30 s
try:
  with NetworkStack(topo, plan, link_scale=1e-5, miniature=True, periods_ns=(100_000_000,), gates=True,
                  verbose=False, start_timeout=60, connect_timeout=90, lldp_interval=30) as net:
    out["up_s"] = round(time.monotonic() - t0, 1)
    out["platform"] = net.platform
    out["start"] = net.gates_report
    api = net.ctl.client()
    api.create_tenant("gates")
    out["ping_before"] = ping(net, "A", "C")
    applies = net.gates.summary()["applies"]
    req = lambda s, d: {"tenant": 1, "src": s, "dst": d, "period_ns": 100_000_000, "frame_bytes": 1000,
                        "max_latency_ns": 500_000_000,
                        "match": {"ip_src": host[s].ip, "ip_dst": host[d].ip, "ip_proto": 1}}
    r1 = api.reserve(req("A", "C"))
    r2 = api.reserve(req("C", "B"))
    out["reserved"] = wait_applies(net, applies + 1)
    end = time.monotonic() + 60          # the two admissions may come in one round or two
    while net.gates.summary()["ports_gated"] < 3 and time.monotonic() < end:
        time.sleep(0.2)
    out["reserved"] = net.gates.summary()
    out["schedule"] = api.schedule()
    out["actions"] = [e["action"] for e in api.get("/v1/events", {"since": 0, "limit": 1000})["events"]]
    out["installed"] = {f"{u}->{v}": [(x.mask, x.interval_ns) for x in c.entries]
                        for (u, v), c in net.gates.installed.items()}
    out["own_readback"], out["entries"] = own_readback(net, api)
    dev_ab = net.gates.installed[("A", "B")].dev
    before = subprocess.run(["tc", "-s", "qdisc", "show", "dev", dev_ab], capture_output=True, text=True).stdout
    out["ping_gated"] = ping(net, "A", "C")
    out["ping_be_gated"] = ping(net, "A", "B", n=5)       # best effort across the gated port A->B
    out["classes_before"] = before
    out["classes_after"] = subprocess.run(["tc", "-s", "qdisc", "show", "dev", dev_ab], capture_output=True,
                                          text=True).stdout
    # a gate changed by hand: reported by the read-back, put right by the next apply
    cfg = net.gates.installed[("A", "B")]
    argv = cfg.command()
    at = [i for i, a in enumerate(argv) if a == "sched-entry"]
    k = next((j for j, e in enumerate(cfg.entries) if e.mask == MASK_RESERVED), None)
    assert k is not None, f"A->B has no reserved entry: {cfg.entries}"
    argv[at[k] + 2] = "0x3"
    argv[argv.index("root") + 1:argv.index("root") + 1] = ["handle", "100:"]
    out["by_hand_rc"] = subprocess.run(argv, capture_output=True, text=True).returncode
    out["by_hand_diffs"] = {f"{u}->{v}": d for (u, v), d in net.gates.check().items()}
    net.gates.apply()
    out["after_fix"] = net.gates.summary()
    applies = out["after_fix"]["applies"]
    api.release(r2["id"])
    out["released"] = wait_applies(net, applies + 1)
    out["own_readback_released"], out["entries_released"] = own_readback(net, api)
    out["ping_gated_2"] = ping(net, "A", "C")
    net.gates.stop()
    net.gates.ungate()
    out["root_after_ungate"] = subprocess.run(["tc", "qdisc", "show", "dev", dev_ab], capture_output=True,
                                              text=True).stdout
    out["ping_ungated"] = ping(net, "A", "C")
    out["timings"] = net.timings
except BaseException as e:
    import traceback
    out["error"] = traceback.format_exc()
out["wall_s"] = round(time.monotonic() - t0, 1)
print(json.dumps(out))
PY
'''


def _stats(p: dict) -> str:
    r = p["rtt_ms"]
    return (f"{min(r):.1f}/{sum(r) / len(r):.1f}/{max(r):.1f} ms ({p['received']}/{p['sent']})" if r
            else f"no replies (0/{p['sent']})")


def _queue_packets(text: str, queue: int) -> int:
    """Frames sent by the netem under taprio's queue ``queue`` (``tc -s qdisc show dev``: taprio's own
    class statistics in 6.1 are the whole qdisc's, the same for both classes)."""
    m = re.search(rf"qdisc netem {100 + queue}: .*?parent 100:{queue} .*?\n\s*Sent \d+ bytes (\d+) pkt", text)
    assert m, text
    return int(m.group(1))


@pytest.fixture(scope="module")
def run(request) -> dict:
    """The guest's script, run once for the module (one boot): its report."""
    with booted_guest(request) as g:
        t0 = time.monotonic()
        r = g.run(PRELUDE + GUEST, timeout=1200)
        wall = time.monotonic() - t0
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-4000:])
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert "error" not in out, (out["error"], {k: v for k, v in out.items() if k != "error"})
    pf = out["platform"]
    say(request, f"vm: the guest's script took {out['wall_s']} s ({wall:.0f} s with the guest's overhead; "
                 f"{pf['datapath']} datapath, delay x{pf['effective_delay_scale']:g}, slot {pf['slot_ns']} ns, "
                 f"stack up in {out['up_s']} s)")
    say(request, f"vm: ping A->C (reserved, 2 x 1.5 ms of fibre each way): before any gate "
                 f"{_stats(out['ping_before'])}; gates on {_stats(out['ping_gated'])}; after a release "
                 f"{_stats(out['ping_gated_2'])}; gates off {_stats(out['ping_ungated'])}; best effort A->B with "
                 f"gates on {_stats(out['ping_be_gated'])}")
    return out


def test_vm_gates_follow_the_controllers_schedule_and_read_back_equal(run, request):
    out = run
    pf, rs = out["platform"], out["reserved"]
    say(request, f"vm: {rs['ports_gated']} ports gated ({', '.join(rs['gated'])}), read back "
                 f"{'equal' if rs['readback_equal'] else rs['differences']} after {rs['applies']} applies")
    assert out["start"]["enabled"] is True and out["start"]["ports_gated"] == 0
    assert pf["datapath"] == "kernel" and pf["propagation_emulated"] is True
    # exactly the ports the two paths cross, read back equal by the keeper and by this test's own reading
    assert rs["gated"] == ["A->B", "B->C", "C->B"] and rs["open"] == [] and rs["errors"] == {}
    assert rs["readback_equal"] is True and rs["differences_seen"] == 0
    assert out["own_readback"] == {"A->B": [], "B->C": [], "C->B": []}
    for port, entries in out["entries"].items():
        assert any(m == 0x2 for m, _ in entries) and any(m == 0x0 for m, _ in entries), (port, entries)
    # a gate changed by hand is reported, and the next apply restores it
    assert out["by_hand_rc"] == 0
    assert list(out["by_hand_diffs"]) == ["A->B"] and "gatemask 0x3 installed, 0x2 scheduled" in \
        out["by_hand_diffs"]["A->B"][0]
    assert out["after_fix"]["readback_equal"] is True and out["after_fix"]["differences_seen"] == 1
    # after the release of C -> B: its port keeps one open entry, all read back equal
    rl = out["released"]
    assert rl["gated"] == ["A->B", "B->C"] and rl["open"] == ["C->B"] and rl["readback_equal"] is True
    assert out["entries_released"]["C->B"] == [[0x1, 100_000_000]]
    assert out["own_readback_released"] == {"A->B": [], "B->C": [], "C->B": []}
    # gates off: the emulation's own shaping is back, and the pings with it
    assert "qdisc htb 5: root" in out["root_after_ungate"] and "taprio" not in out["root_after_ungate"]
    for key in ("ping_before", "ping_ungated"):
        assert out[key]["received"] == out[key]["sent"], (key, out[key])


def test_vm_frames_pass_the_gates_reserved_ones_through_the_reserved_class(run, request):
    out = run
    sent_reserved = _queue_packets(out["classes_after"], 2) - _queue_packets(out["classes_before"], 2)
    say(request, f"vm: A->B reserved queue (taprio 100:2) sent {sent_reserved} frames during the 20 pings")
    for key in ("ping_be_gated", "ping_gated", "ping_gated_2"):
        assert out[key]["received"] == out[key]["sent"], (key, out[key])
    # through the reserved class: PCP 7 -> skb priority 7 -> traffic class 1 -> queue 100:2
    assert sent_reserved >= out["ping_gated"]["sent"], out["classes_after"]
