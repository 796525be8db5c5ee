"""``dnctl demo``: train across cities on the emulated backbone and show what determinism buys.

Runs ``tools.runs.demo.run_demo`` (see there and docs/demo.md): controller + fntf40 emulation, tenants,
interference, the training job with reservations then without, verification of the reserved
flows, an isolation audit, the model's estimates and a report in ``--out`` (default out/demo).
Exit 0 only when the guarantees held: reserved flows passed verification, no frame leaked
between tenants, and the deterministic run stayed within 5% of the single-site baseline.

``--smoke`` is the quick check that the emulation forwards: fntf40 without a controller (static
forwarding), a few long-haul pings.
"""

from __future__ import annotations

import argparse
import json

from schedules.training import JobError, load_job
from tools.cli import CliError
from tools.cli.vmarg import add_gates_argument, add_vm_argument, run_in_vm_if_asked
from tools.emulation.network import Emulation, EmulationError
from tools.runs.demo import run_demo
from tools.runs.scales import DEFAULT_SCALE
from tools.runs.training_run import RunError
from topologies.loaders import load_topology

SMOKE_PAIRS = [("Harbin", "Haikou"), ("Urumqi", "Shanghai"), ("Lhasa", "Beijing")]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the end-to-end demo: cross-city training, deterministic vs best effort",
                       description="Start OVS, the controller and the fntf40 emulation; create tenants; run the "
                                   "demo training job with reservations and interference, then without "
                                   "reservations; verify the reserved flows and tenant isolation; print the "
                                   "facility-style table and write report.json, PNGs and report.html. Needs root "
                                   "and Open vSwitch; takes a few minutes. Exit 0 only if the guarantees held.")
    p.add_argument("--out", default="out/demo", metavar="DIR", help="report folder (default out/demo)")
    p.add_argument("--tenants", type=int, default=8, help="tenants to create (default 8; 128 works)")
    p.add_argument("--quick", action="store_true", help="fewer iterations and shorter probes")
    p.add_argument("--iterations", type=int, help="iterations per run (default: the job's, 8 for demo-emulated; 4 with --quick)")
    p.add_argument("--job", default="demo-emulated", help="training job (default demo-emulated)")
    p.add_argument("--scale", type=float, default=None, help="rate scale of the emulation (default 1e-4)")
    p.add_argument("--delay-scale", type=float, default=1.0, metavar="F",
                   help="propagation factor where tc netem emulates it (default 1: real propagation); without "
                        "netem the links carry none, the controller schedules none and the report says so")
    p.add_argument("--smoke", action="store_true",
                   help="only check the emulation forwards: fntf40 with static forwarding, a few pings")
    add_gates_argument(p, "before and after the deterministic run and its verification")
    p.add_argument("--json", action="store_true", help="print report.json instead of the table")
    add_vm_argument(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.smoke:
        return _smoke()
    if not 2 <= args.tenants <= 4094:
        raise CliError("--tenants must be between 2 and 4094 (the training tenant plus interference)")
    if args.iterations is not None and args.iterations < 2:
        raise CliError("--iterations must be at least 2")
    scale = DEFAULT_SCALE if args.scale is None else args.scale
    if not 0 < scale <= 1:
        raise CliError("--scale must be in (0, 1]")
    if args.delay_scale < 0:
        raise CliError("--delay-scale must be non-negative")
    try:
        load_job(args.job)
    except JobError as e:
        raise CliError(str(e)) from None
    code = run_in_vm_if_asked(args, args.out)
    if code is not None:
        return code
    try:
        result = run_demo(args.out, tenants=args.tenants, quick=args.quick, job=args.job, scale=scale,
                          iterations=args.iterations, delay_scale=args.delay_scale, gates=args.gates)
    except RunError as e:
        raise CliError(str(e), code=1) from None
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "files"}, indent=1, default=str))
    else:
        print(result["table"])
        print()
        print(result["verdict_table"])
        print()
        for name, ok in result["checks"].items():
            print(f"  {'ok  ' if ok else 'FAIL'} {name}")
        flows = result["flows"]
        print(f"reserved flows: {sum(f['pass'] for f in flows)}/{len(flows)} passed verification; isolation: "
              f"{result['isolation'].get('leaked_frames')} leaked frames, "
              f"{result['isolation'].get('pings_answered')} cross-tenant pings answered")
        print(f"{'PASS' if result['pass'] else 'FAIL'} in {result['wall_s']:.0f} s; report: "
              f"{result['files']['html']}")
    return 0 if result["pass"] else 1


def _smoke() -> int:
    """fntf40, static forwarding, a few long-haul pings: exit 0 when all are answered."""
    from topologies.mininet_topo import default_plan   # imports Mininet

    topo = load_topology("fntf40")
    plan = default_plan(topo, tenants=1, cities=sorted({c for p in SMOKE_PAIRS for c in p}))
    ok = True
    try:
        with Emulation(topo, plan) as emu:
            for a, b in SMOKE_PAIRS:
                r = emu.ping(a, b, count=3)
                print(r)
                ok = ok and r.ok
    except EmulationError as e:
        raise CliError(str(e), code=1) from None
    print("smoke: PASS" if ok else "smoke: FAIL")
    return 0 if ok else 1
