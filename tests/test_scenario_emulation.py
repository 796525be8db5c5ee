"""A short end-to-end scenario on real Open vSwitch (root, OVS, Mininet; marked emulation).

4-switch ring, 2 tenants, 2 reservations over REST, slotted talkers and captures, with and
without best-effort floods that saturate the reserved links (iperf3 at 1.3x the emulated link
rate between a third tenant's hosts at the same cities): every reservation must pass (no loss, no
duplicates, the promised rate; latency, jitter and slots within the controller's bound for the
emulated network + the noise floor measured in the same capture, or not_checkable, never a pass),
interference must not reduce the reserved flows' received rate, the report must carry platform,
per-check bound/noise floor/limit/status and interference invariance, and the isolation audit
must pass.
"""

from __future__ import annotations

import json
import shutil

import pytest

from emuhelpers import ring4

pytestmark = pytest.mark.emulation


def test_scenario_with_interference_passes(tmp_path):
    from tools.emulation import ovs
    missing = ovs.probe().missing_for_emulation()
    if not shutil.which("iperf3"):
        missing.append("iperf3")
    if missing:
        pytest.skip("machine lacks: " + ", ".join(missing))
    from tools.emulation.network import emulation_lock
    from tools.runs.scenario import ScenarioConfig, run_scenario

    topo_file = tmp_path / "scnring.json"
    topo_file.write_text(ring4("scnring", 300, 900).to_json())
    out = tmp_path / "out"
    cfg = ScenarioConfig(topology=str(topo_file), tenants=2, reservations=2, interference="both", duration=4.0,
                         out=str(out), verbose=False)
    with emulation_lock():  # fcntl.flock on /tmp/detnet-emu.lock
        rep = run_scenario(cfg)
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["pass"] == rep["pass"]
    for name in ("report.html", "summary.txt", "comparison.png", "isolation.png"):
        assert (out / name).is_file(), name
    floods = rep["phases"]["on"]["interference"]
    assert len(floods) == 2
    for fl in floods:        # the interference was real: saturating, shared links, actually sent
        assert fl["saturating"] and fl["shared_links"] >= 1
        assert fl.get("sent_bps") and fl["sent_bps"] >= 0.9 * fl["rate_bps"], fl
    for name in ("off", "on"):
        for f in rep["phases"][name]["flows"]:
            failed = [c for c in f["checks"] if not c["pass"]]
            assert f["pass"], (name, f["id"], failed)
            assert f["lost"] == 0 and f["duplicated"] == 0
            for c in f["checks"]:
                assert c["status"] in ("pass", "not_checkable"), (name, f["id"], c)
                assert c["pass"] == (c["status"] == "pass")
                if c["name"] in ("latency_measured", "jitter"):
                    assert {"bound_ns", "noise_floor_ns", "limit"} <= set(c)
                    assert c["limit"] == c["bound_ns"] + c["noise_floor_ns"]
            assert f["noise_floor"]["packets"] > 0       # the reference flow arrived in the same capture
    pf = rep["platform"]
    assert {"vm", "datapath", "delay_scale", "link_scale", "noise_floor_ns"} <= set(pf)
    assert pf["controller_schedules"] == "miniature" and pf["slot_ns"] > 0
    assert pf["openflow"] == "tls"                  # the switches spoke OpenFlow over TLS with certificates
    inv = rep["interference_invariance"]
    assert set(inv) == {f["id"] for f in rep["flows"]}
    for row in inv.values():
        assert set(row["with_interference"]) == set(row["without_interference"]) == {"p50", "p99", "max"}
    assert len(rep["flows"]) == 2
    for f in rep["flows"]:
        assert {"id", "sent", "received", "lost", "pass", "latency_ns"} <= set(f)
        assert {"p50", "p99", "max", "bound_ns", "jitter_ns"} <= set(f["latency_ns"])
    eff = rep["interference"]["effect"]
    assert not eff["reduced"], eff
    assert eff["min_ratio"] >= cfg.reduce_threshold
    assert rep["isolation"]["leaked_frames"] == 0 and rep["isolation"]["pass"]
    assert rep["pass"] is True
