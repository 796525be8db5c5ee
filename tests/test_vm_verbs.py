"""The emulation verbs whole in the VM (``--vm on``), as a user runs them, on Debian's stock kernel:

- ``dnctl emulate up --vm on``: the 40-city backbone on the kernel datapath with netem on every
  link; long-haul pings show RTT never below twice the propagation of the path the static
  forwarding takes (the 55,000 km inside the emulation) and above it by at most 10% + 5 ms + the
  lateness of the path's netem timers, measured in the same run (``netem_lateness``; see the test);
- ``dnctl verify scenario --vm on --gates on`` on a small ring: the controller schedules the
  miniature with the links' real propagation, slowed (100 kb/s links, 1 s periods, 100 ms slots)
  until its bounds outlast the TCG guest's timing noise (tens of ms: at 10 Mb/s, with 1 ms slots,
  every time check was ``not_checkable``; with 50 ms slots the jitter check often was); 802.1Qbv
  gates (taprio) on every reserved port, read back equal to the schedule before and after the
  phases; the report comes back through the share and says where it ran (``platform``: VM, kernel
  datapath, propagation emulated), every reserved frame arrived once, never faster than its fibre,
  in the reserved queue of every gated port, and within its latency bound plus the noise floor
  measured in the same run, with and without interference; jitter within its bound plus the
  floor, or ``not_checkable`` when the guest's noise exceeds the bound, never a pass it cannot show
  (figures printed).

Marked ``emulation`` and ``vm``; skips naming what the machine lacks (qemu, root to build the image).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools.vm.image import REPO
from vmhelpers import say, skip_unless_a_guest_can_run

pytestmark = [pytest.mark.emulation, pytest.mark.vm]

DNCTL = str(Path(sys.executable).with_name("dnctl"))
PAIRS = [("Urumqi", "Shanghai"), ("Harbin", "Haikou")]


@pytest.fixture(scope="module", autouse=True)
def machine():
    skip_unless_a_guest_can_run()


def _dnctl(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([DNCTL, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_long_haul_pings_in_the_vm_carry_the_fibre(request):
    from controller.dataplane.routing import best_effort_path
    from topologies.loaders import load_topology
    topo = load_topology("fntf40")
    cities = sorted({c for p in PAIRS for c in p})
    args = ["emulate", "up", "--topology", "fntf40", "--cities", ",".join(cities), "--count", "20", "--json",
            "--vm", "on"]
    for a, b in PAIRS:
        args += ["--ping", a, b]
    r = _dnctl(args, timeout=1500)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout)
    assert summary["vm"] is True and summary["datapath"] == "kernel" and summary["propagation_emulated"] is True
    cal = summary["netem_lateness"]
    assert "late_ms" in cal, cal
    say(request, f"vm: netem timers: a {cal['delay_ms']:g} ms delay fired {cal['late_ms']:.3f} ms late in the fastest "
                 f"ping, {cal['late_avg_ms']:.3f} on average (calibration RTT min/avg/max {cal['rtt_min_ms']:.2f}/"
                 f"{cal['rtt_avg_ms']:.2f}/{cal['rtt_max_ms']:.2f} ms for {2 * cal['delay_ms']:g})")
    unchecked = []
    for p in summary["pings"]:
        path = best_effort_path(topo.graph, p["src"], p["dst"])
        prop_ms = sum(topo.propagation_ns(u, v) for u, v in zip(path, path[1:])) / 1e6
        expected = 2 * prop_ms
        hops = len(path) - 1
        # the fastest ping's timer lateness, one netem delay per link and direction: the noise floor of
        # a check of the fastest round trip, measured in the same run (netemcal)
        timers = 2 * hops * cal["late_ms"]
        tolerance = 0.1 * expected + 5
        limit = tolerance + timers
        say(request, f"vm: {p['src']} -> {p['dst']} ({hops} hops, {prop_ms:.1f} ms of fibre): RTT "
                     f"min/avg/max {p['rtt_min_ms']:.1f}/{p['rtt_avg_ms']:.1f}/{p['rtt_max_ms']:.1f} ms, "
                     f"expected {expected:.1f}, at most +{limit:.1f} ms (10% + 5 ms + {timers:.1f} ms of "
                     f"measured timer lateness)")
        assert p["received"] == p["sent"] > 0, p
        # the network's round trip is the fastest one: netem's delay is a floor and the TCG guest's
        # scheduling only adds to it (the first ping also sets up the kernel datapath's flows); the
        # average and the worst are printed above. 20 pings: with 5, the fastest of a 10-hop path was
        # once 59.4 ms for 47.6 expected: too few samples to reach the floor under TCG. Each hop's
        # netem delay is an hrtimer in the guest, and under TCG on a busy host every timer fires
        # late: a CI run measured the fastest of 20 at +5.9 ms over 6 hops and +10.0 ms over 10
        # (about 0.5 ms per delay). How late is the machine's, at that moment: measured in the same
        # run on one delayed link (tools/emulation/netemcal.py), never written in here; where that
        # noise exceeds the 10% + 5 ms the check allows, it cannot tell and says so. A doubled delay
        # (+47.6 ms on Harbin-Haikou) or a much longer path still fails.
        assert p["rtt_min_ms"] >= 0.99 * expected, p          # never faster than the fibre
        if timers > tolerance:        # the noise exceeds what the check allows: not checkable
            unchecked.append(f"{p['src']}->{p['dst']}: timers +{timers:.1f} ms > 10% + 5 ms = {tolerance:.1f}")
            continue
        assert p["rtt_min_ms"] - expected <= limit, p
    if unchecked:
        pytest.skip("machine's netem timers too late (measured %.3f ms per delay) to check: %s"
                    % (cal["late_ms"], "; ".join(unchecked)))


def test_scenario_in_the_vm_reports_honest_verdicts_with_real_propagation(tmp_path, request):
    from emuhelpers import ring4
    ring = REPO / ".cache" / "vm-tests" / "vmring.json"      # the guest sees the repository only
    ring.parent.mkdir(parents=True, exist_ok=True)
    ring.write_text(ring4("vmring", 300, 900).to_json())
    out = tmp_path / "scn"
    r = _dnctl(["verify", "scenario", "--topology", str(ring.relative_to(REPO)), "--tenants", "2",
                "--reservations", "2", "--interference", "both", "--duration", "30", "--link-scale", "1e-6",
                "--period", "1000000000", "--max-latency", "1000000000", "--gates", "on", "--vm", "on",
                "--out", str(out)], timeout=2400)
    assert r.returncode in (0, 1), r.stderr[-3000:]
    rep = json.loads((out / "report.json").read_text())       # came back through the share
    pf = rep["platform"]
    say(request, f"vm: scenario on {rep['topology']}: {pf['datapath']} datapath, links x{pf['link_scale']:g}, delay x"
                 f"{pf['effective_delay_scale']:g}, slot {pf['slot_ns']} ns, noise floor {pf['noise_floor_ns']} ns")
    assert pf["vm"] is True and pf["datapath"] == "kernel" and pf["propagation_emulated"] is True
    assert pf["effective_delay_scale"] == 1 and pf["controller_schedules"] == "miniature"
    assert pf["slot_ns"] == 100_000_000           # an MTU at 100 kb/s (122 ms), capped at a tenth of the period
    gates = rep["gates"]
    reserved = {f"{u}->{v}" for res in rep["reservations"] for u, v in zip(res["path"], res["path"][1:])}
    say(request, f"vm: gates on {gates['ports_gated']} ports {gates['gated']}, read back equal: "
                 f"{gates['readback_equal']} ({gates['readbacks']} read-backs)")
    assert gates["enabled"] and gates["readback_equal"] and gates["all_gated"] and reserved <= set(gates["gated"])
    # the reserved class (taprio's queue 1, netem 100:2 under it) carries exactly the reservations'
    # frames: each port here carries one reservation, so after both phases each gated port's count is
    # its reservation's warm-up and measured datagrams (a best-effort flood there, or a reservation's
    # frames in best effort's queue, as happened before the classifier set the TX queue, fails this)
    from tools.runs.scenario import WARMUP_PERIODS
    sent = {r["id"]: 0 for r in rep["reservations"]}
    for phase in ("off", "on"):
        for t in rep["phases"][phase]["talkers"]:
            if t["reservation_id"] in sent:
                sent[t["reservation_id"]] += t["sent"] + WARMUP_PERIODS
    stats = (out / "interference-on" / "gates-tc-stats.txt").read_text()
    per_port = {m.group(1): int(m.group(2)) for m in re.finditer(
        r"# (\S+)\n(?:(?!# ).*\n)*?qdisc netem \S+ parent 100:2 .*\n Sent \d+ bytes (\d+) pkt", stats)}
    say(request, f"vm: reserved queue per gated port {per_port}, reservations' frames {sent}")
    assert len(per_port) == gates["ports_gated"]
    expected = sorted(sent[r["id"]] for r in rep["reservations"] for _ in r["path"][1:])
    assert sorted(per_port.values()) == expected
    for phase in ("off", "on"):
        for f in rep["phases"][phase]["flows"]:
            lat = f["latency_ns"]
            checks = {c["name"]: c for c in f["checks"]}
            say(request, f"vm: [{phase}] {f['id']}: {f['received']}/{f['sent']}, latency min/p50/max "
                         f"{lat['min'] / 1e6:.2f}/{lat['p50'] / 1e6:.2f}/{lat['max'] / 1e6:.2f} ms, modelled "
                         f"propagation {lat['modeled_propagation_ns'] / 1e6:.2f} ms, bound "
                         f"{lat['bound_ns'] / 1e6:.2f} ms + noise floor "
                         f"{(f['noise_floor']['noise_floor_ns'] or 0) / 1e6:.2f} ms: "
                         f"latency {checks['latency_measured']['status']}, jitter {checks['jitter']['status']}")
            assert f["sent"] > 0 and f["lost"] == 0 and f["duplicated"] == 0, (phase, f["id"])
            # the fibre is in the packets' path: no frame arrives faster than its propagation
            assert lat["min"] >= 0.99 * lat["modeled_propagation_ns"], (phase, f["id"], lat)
            for name in ("latency_measured", "jitter"):
                c = checks[name]
                assert c["limit"] == c["bound_ns"] + c["noise_floor_ns"]
                if c["noise_floor_ns"] > c["bound_ns"]:
                    assert c["status"] == "not_checkable" and c["pass"] is False
                else:
                    assert c["status"] == ("pass" if c["value"] <= c["limit"] else "fail")
            # the guarantee itself: every frame within its bound + the floor (a ~300 ms bound against
            # floors of 12-58 ms measured here: a frame that missed its gate window arrives a period,
            # 1 s, late and fails this), and no jitter beyond what the floor lets us check
            assert checks["latency_measured"]["status"] == "pass", (phase, f["id"], checks["latency_measured"])
            assert checks["jitter"]["status"] in ("pass", "not_checkable"), (phase, f["id"], checks["jitter"])
    assert set(rep["interference_invariance"]) == {f["id"] for f in rep["flows"]}
    assert rep["isolation"]["leaked_frames"] == 0
