"""Emulation test: a short training run on the fntf40 backbone with interference.

With reservations the ring's iterations must be faster and steadier than without them, under the
same UDP interference. Measurements come from a software emulation on a loaded 2-core machine,
so the comparisons are robust ones (means with a margin, medians, spread against an absolute
ceiling) rather than tight figures; the demo reports the tight targets.
"""

from __future__ import annotations

import fcntl
import os

import pytest
from emuhelpers import missing_features

pytestmark = pytest.mark.emulation

LOCK = "/tmp/detnet-emu.lock"


def test_reserved_iterations_are_faster_and_steadier_than_best_effort(tmp_path):
    missing = missing_features("iperf3")
    if missing:
        pytest.skip("machine lacks: " + ", ".join(missing))
    from tools.runs.training_run import RunOptions, execute

    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        res = execute(RunOptions("demo-emulated", iterations=6, out=str(tmp_path / "run"), tenants=5),
                      progress=lambda m: print("training:", m, flush=True))
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    det, be, base = res["deterministic"], res["best_effort"], res["baseline_s"]
    print(f"\nbaseline {base:.3f} s; deterministic mean {det['mean_s']:.3f} s p99 {det['p99_s']:.3f} s; "
          f"best effort mean {be['mean_s']:.3f} s p99 {be['p99_s']:.3f} s")
    assert det["iterations"] == be["iterations"] == 5   # 6 minus the warm-up
    # gates ("auto"): on where this kernel has taprio, read back equal after the deterministic run;
    # otherwise the report says why not
    from topologies.machine import taprio_works
    gates = res["gates"]
    if taprio_works():
        assert gates["enabled"] and gates["readback_equal"] and gates["all_gated"] and gates["ports_gated"] > 0
    else:
        assert gates == {"enabled": False, "reason": "no tc taprio on this kernel"}
    # the interference really ran along the ring hops
    assert len(res["interference"]) == 4 and all(i["shared_links"] for i in res["interference"])
    # faster: reservations change the communication part of an iteration (the mean minus the
    # single-site compute time). Under the floods best effort gets at most its proportional share
    # of each overloaded link (about 0.4 of it here: 1.3x the communication time at the least);
    # when TCP also loses packets and backs off it is 20-80x (7-10 s iterations on a quiet
    # machine), but a run where it does not (CI, 2026-12-01: 0.17 s against 0.10 s of
    # communication) must not fail for it. The median too (robust to one outlier).
    assert be["mean_s"] - base > 1.2 * (det["mean_s"] - base)
    assert det["p50_s"] < be["p50_s"]
    # steadier: the reserved run's worst iteration is within 15% of its mean and no worse than
    # the best-effort run's worst
    assert det["max_s"] < 1.15 * det["mean_s"]
    assert det["max_s"] < be["max_s"]
    # and close to the single-site compute time (generous: the demo reports the 5% target)
    assert det["mean_s"] < 1.15 * base
