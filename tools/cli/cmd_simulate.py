"""``dnctl simulate SCHEDULE.json [--cross-traffic F] [--cycles N] [--json]``: the line-rate simulator.

Runs ``schedules.simulate`` (every reserved frame at the links' real rates through the schedule's
802.1Qbv gates, best-effort cross traffic around them; docs/simulator.md) and prints the verdict:
per reservation the worst latency and jitter against its bounds, and every violation with its kind,
link, slot, time and the reservations involved. Exit 0 when there is no violation, 1 when there are
(a failed check), 2 for bad usage or input (one line on stderr).

``--workload TOPOLOGY --reservations N --tenants T`` builds the admission benchmark's schedule
(controller/core/bench.py, the same as ``dnctl bench admission``) instead of reading a file, so the
simulator's speed on it is one command (``--save-schedule FILE`` keeps the schedule).

Start-up: the simulator (numpy), the scheduler and the topology loaders (networkx) are imported by
the functions that use them, not at module level, so building the parser and ``--help`` import
none of them (tests/test_cli_startup.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING

from tools.cli import CliError
from tools.cli.tables import render_table
from tools.cli.units import format_ns

if TYPE_CHECKING:
    from schedules.simulate import SimulationResult

#: ``schedules.simulate``'s GATE_MODES, DEFAULT_PROCESSING_NS and MTU_BYTES, copied so that --help
#: need not import the simulator (and numpy); tests/test_cli_startup.py checks that they are equal
GATE_MODES = ("stream", "class")
DEFAULT_PROCESSING_NS = 1000
MTU_BYTES = 1500

#: violations printed in the human form (all of them are in --json)
SHOWN = 20


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="simulate a schedule frame by frame at line rate and check its bounds",
                       description="Packet-level simulation of a Schedule JSON at the links' real rates: reserved "
                                   "frames at their offsets through the 802.1Qbv gates of the schedule, best-effort "
                                   "cross traffic around them, non-preemptive ports. Reports each reservation's "
                                   "worst latency and jitter against its bounds and every violation. Exit 0: no "
                                   "violation; 1: violations; 2: bad input. See docs/simulator.md.")
    p.add_argument("schedule", nargs="?", metavar="SCHEDULE.json", help="a Schedule JSON file")
    p.add_argument("--cross-traffic", type=float, default=0.0, metavar="F",
                   help="best-effort load as a fraction of what the reservations leave on every link (default 0)")
    p.add_argument("--cycles", type=int, default=1, metavar="N",
                   help="cycles (hyperperiods) of best effort after one warm-up cycle (default 1); reserved "
                        "traffic is simulated in its steady state, which every cycle repeats")
    p.add_argument("--gates", choices=GATE_MODES, default="stream",
                   help="stream: each reservation's windows open its own gate, as the schedule assumes (default); "
                        "class: one reserved queue (traffic class 7) open in every reserved window")
    p.add_argument("--processing-ns", type=int, default=DEFAULT_PROCESSING_NS,
                   help=f"per-hop processing delay for links that do not state one (default {DEFAULT_PROCESSING_NS})")
    p.add_argument("--mtu", type=int, default=MTU_BYTES,
                   help=f"frame size in bytes of the trains (default {MTU_BYTES})")
    p.add_argument("--no-guard-band", action="store_true",
                   help="let best effort start until a reserved window opens (shows what the guard band prevents)")
    p.add_argument("--seed", type=int, default=1, help="seed of the best-effort draw (default 1)")
    p.add_argument("--workload", metavar="TOPOLOGY",
                   help="instead of a file: schedule the admission benchmark's workload on TOPOLOGY")
    p.add_argument("--reservations", type=int, default=4096, help="with --workload: requests (default 4096)")
    p.add_argument("--tenants", type=int, default=128, help="with --workload: tenants (default 128)")
    p.add_argument("--save-schedule", metavar="FILE", help="with --workload: write the schedule built to FILE")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _workload_schedule(args) -> tuple[dict, float]:
    from controller.core.bench import workload
    from controller.core.model import Tenant
    from controller.core.scheduler import Scheduler
    from controller.core.tenants import TenantBook
    from schedules.schedule_json import schedule_to_dict, write_json_atomic
    from topologies.loaders import load_topology
    from topologies.model import TopologyError

    if args.reservations < 0 or args.tenants < 1:
        raise CliError("--reservations must be >= 0 and --tenants >= 1")
    try:
        topo = load_topology(args.workload)
    except TopologyError as e:
        raise CliError(str(e)) from None
    book = TenantBook(max_tenants=max(128, args.tenants))
    for t in range(1, args.tenants + 1):
        book.add(Tenant(t, f"tenant{t}"))
    sched = Scheduler(topo, tenants=book)
    t0 = time.perf_counter()
    for req in workload(topo, args.reservations, args.tenants):
        sched.admit(req)
    data = schedule_to_dict(sched)
    if args.save_schedule:
        try:
            write_json_atomic(args.save_schedule, data)
        except OSError as e:
            raise CliError(f"{args.save_schedule}: cannot write ({e.strerror or e})") from None
    return data, time.perf_counter() - t0


def run(args) -> int:
    from schedules.schedule_json import SchedulePayloadError, read_schedule_file
    from schedules.simulate import SimulationInputError, simulate

    if (args.schedule is None) == (args.workload is None):
        raise CliError("give either SCHEDULE.json or --workload TOPOLOGY")
    say = None if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    admission_s = None
    if args.workload:
        data, admission_s = _workload_schedule(args)
        if say:
            say(f"simulate: scheduled {len(data['reservations'])} of {args.reservations} requests on {args.workload} "
                f"in {admission_s:.1f} s")
    else:
        try:
            data = read_schedule_file(args.schedule)
        except SchedulePayloadError as e:
            raise CliError(str(e)) from None
    try:
        result = simulate(data, cross_traffic=args.cross_traffic, cycles=args.cycles, gates=args.gates,
                          processing_ns=args.processing_ns, mtu_bytes=args.mtu, guard_band=not args.no_guard_band,
                          seed=args.seed, progress=say)
    except SimulationInputError as e:
        where = args.schedule or args.workload
        raise CliError(f"{where}: {e}") from None
    if args.json:
        doc = result.to_dict()
        if admission_s is not None:
            doc["admission_seconds"] = round(admission_s, 3)
        print(json.dumps(doc))
    else:
        print(render(result))
    return 0 if result.ok else 1


def render(r: SimulationResult) -> str:
    """The human report: summary, the worst reservations, the violations (first SHOWN)."""
    lines = [f"simulated {len({f.id for f in r.flows})} reservations, {r.frames} frames per cycle "
             f"({r.frame_hops} transmissions), cycle {format_ns(r.cycle_ns)}, slot {format_ns(r.slot_ns)}, "
             f"{r.gates} gates, in {r.seconds:.1f} s",
             f"worst latency / bound: {r.worst_latency_ratio:.4f}"]
    be = r.best_effort
    if r.cross_traffic > 0:
        guard = "with" if be["guard_band"] else "without"
        lines.append(f"best effort at {r.cross_traffic:g} of the room left ({guard} guard band): carries "
                     f"{100 * be['carried_share']:.1f}% of the links' time, "
                     f"{be['frames_at_gates']} frames at reserved gates over {r.cycles} cycle(s); reserved frames "
                     f"delayed by best effort: {be['reserved_frames_delayed']}")
    worst = sorted(r.flows, key=lambda f: -f.latency_ratio)[:5]
    lines.append(render_table(["reservation", "path", "worst latency", "bound", "ratio", "jitter", "jitter bound"],
                              [[f.id, f.path, format_ns(f.worst_latency_ns) if f.delivered else "never",
                                format_ns(f.latency_bound_ns), f"{f.latency_ratio:.4f}",
                                format_ns(f.jitter_ns) if f.delivered else "-", format_ns(f.jitter_bound_ns)]
                               for f in worst]))
    if r.ok:
        lines.append("no violation")
    else:
        lines.append(f"{len(r.violations)} violation(s):")
        lines.append(render_table(["kind", "link", "slot", "time", "reservations", "detail"],
                                  [[v.kind, v.link or "-", "-" if v.slot is None else v.slot,
                                    "-" if v.time_ns is None else format_ns(v.time_ns), ", ".join(v.reservations),
                                    v.detail] for v in r.violations[:SHOWN]]))
        if len(r.violations) > SHOWN:
            lines.append(f"... and {len(r.violations) - SHOWN} more (--json lists them all)")
    return "\n".join(lines)
