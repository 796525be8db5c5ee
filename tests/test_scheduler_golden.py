"""The scheduler's answers on a fixed scenario equal a committed golden, so speed work cannot
change which requests are admitted, on which path, with which slots and bounds.

The scenario (``scenario``) runs the admission bench's seeded mix on fntf40 with a low share cap
(so capacity rejections happen early), every 7th request protected (two disjoint paths), one
request in 20 with a 3 ms period (the cycle grows to 24 ms), one in 11 released again, and a
second half admitted after a link failure. Each answer is summarised as a line: the rejection
reason, or the path(s), the first slot of each hop, the slots per hop, tx offsets and bounds.

The golden (tests/data/scheduler_golden.txt.gz) was written by the scheduler as it was before the
speed pass of issue 13 (``python -m tests.test_scheduler_golden --write``).
"""

from __future__ import annotations

import dataclasses
import gzip
import sys
from pathlib import Path

from controller.core.bench import workload
from controller.core.model import Rejection
from controller.core.scheduler import Scheduler
from topologies.loaders import load_topology

GOLDEN = Path(__file__).parent / "data" / "scheduler_golden.txt.gz"


def _line(out) -> str:
    if isinstance(out, Rejection):
        return f"reject {out.reason}"
    hops = ";".join(f"{h.src}>{h.dst}:{h.slots[0]}+{len(h.slots)}" for h in out.hops)
    prot = ""
    if out.protection_path:
        prot = " | " + ";".join(f"{h.src}>{h.dst}:{h.slots[0]}+{len(h.slots)}" for h in out.protection_hops) \
            + f" {out.protection_latency_bound_ns}"
    return f"admit {out.id} {hops} tx {out.tx_offsets_ns[0]}x{len(out.tx_offsets_ns)} bound {out.latency_bound_ns}{prot}"


def scenario(n: int = 2400) -> list[str]:
    topo = load_topology("fntf40")
    sched = Scheduler(topo, max_share=0.12, max_cycle_ns=48_000_000)
    reqs = workload(topo, n, 16, seed=11)
    lines: list[str] = []
    admitted: list[str] = []
    for i, req in enumerate(reqs):
        if i % 20 == 19 and req.frame_bytes is not None:
            req = dataclasses.replace(req, period_ns=3_000_000)
        if i % 7 == 3:
            req = dataclasses.replace(req, protection="disjoint")
        if i == n // 2:
            sched.fail_link("Beijing", "Tianjin")
            sched.fail_link("Wuhan", "Changsha")
            lines.append(f"failed; affected {len(sched.affected_by([('Beijing', 'Tianjin'), ('Wuhan', 'Changsha')]))}")
        out = sched.admit(req)
        lines.append(_line(out))
        if not isinstance(out, Rejection):
            admitted.append(out.id)
        if i % 11 == 10 and admitted:
            rid = admitted.pop(len(admitted) // 2)
            sched.release(rid)
            lines.append(f"release {rid} settle {sched.settle_cycle()} cycle {sched.cycle_ns}")
    lines.append(f"cycle {sched.cycle_ns} reservations {len(sched.reservations)}")
    return lines


def test_answers_equal_the_golden():
    with gzip.open(GOLDEN, "rt") as f:
        want = f.read().splitlines()
    got = scenario()
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"line {i}: got {g!r}, golden {w!r}"
    # the scenario exercises what it claims to
    assert sum(l.startswith("reject capacity") for l in got) > 100
    assert sum(" | " in l for l in got) > 50
    assert any("x24" in l for l in got) or any("cycle 24000000" in l for l in got)


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        GOLDEN.parent.mkdir(exist_ok=True)
        with gzip.GzipFile(GOLDEN, "wb", mtime=0) as f:
            f.write(("\n".join(scenario()) + "\n").encode())
        print(f"wrote {GOLDEN}")
