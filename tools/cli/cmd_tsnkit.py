"""``dnctl tsnkit TASK.csv TOPO.csv OUTDIR``: schedule a TSNKit instance, write TSNKit's output CSVs.

Same argument order as TSNKit's own algorithms (``python -m tsnkit.algorithms.ls TASK TOPO OUT``).
Exit 0 when every stream is scheduled, 1 when some are not, 2 on unreadable or malformed files.
Check the result with ``python -m tsnkit.simulation.tas TASK.csv OUTDIR/ --no-draw``.

Start-up: the scheduler and the TSNKit reader (networkx, numpy) are imported by ``run``, not at
module level, so building the parser and ``--help`` import neither (tests/test_cli_startup.py).
"""

from __future__ import annotations

import argparse
import json
import time

from tools.cli import CliError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tsnkit", help="schedule a TSNKit instance and write its GCL/OFFSET/ROUTE/QUEUE/DELAY CSVs",
                       description="Schedule a TSNKit stream set on a TSNKit topology with detnet's scheduler and "
                                   "write TSNKit's output files into OUTDIR (see docs/schedules.md). Exit 0 when every "
                                   "stream is scheduled, 1 otherwise.")
    p.add_argument("task", metavar="TASK.csv", help="TSNKit stream CSV (stream,src,dst,size,period,deadline,jitter)")
    p.add_argument("topo", metavar="TOPO.csv", help="TSNKit topology CSV (link,q_num,rate,t_proc,t_prop)")
    p.add_argument("outdir", metavar="OUTDIR", help="folder for GCL.csv, OFFSET.csv, ROUTE.csv, QUEUE.csv, DELAY.csv")
    p.add_argument("--slot-ns", type=int, default=100,
                   help="slot length in ns, a multiple of TSNKit's 100 ns time unit (default 100)")
    p.add_argument("--max-share", type=float, default=1.0, help="reservable share of each link (default 1.0)")
    p.add_argument("--k-paths", type=int, default=4, help="candidate paths per stream, fewest hops first (default 4)")
    p.add_argument("--max-wait-slots", type=int, default=20, help="bounded wait per hop in slots (default 20)")
    p.add_argument("--order", choices=("deadline", "hops", "file"), default="deadline",
                   help="admission order: tightest slack first (default), longest path first, or file order")
    p.add_argument("--sim-proc-ns", type=int, default=2000,
                   help="minimum processing delay per hop; TSNKit's simulator uses 2000 ns (default 2000)")
    p.add_argument("--schedule-json", metavar="FILE", help="also write our Schedule JSON to FILE")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from schedules.schedule_json import schedule_to_dict, write_json_atomic
    from schedules.tsnkit_io import TsnkitFormatError, read_instance, schedule_instance, write_outputs

    if args.slot_ns <= 0 or args.slot_ns % 100:
        raise CliError("--slot-ns must be a positive multiple of 100 (TSNKit's simulator steps in 100 ns)")
    if not 0 < args.max_share <= 1:
        raise CliError("--max-share must be in (0, 1]")
    if args.k_paths < 1 or args.max_wait_slots < 0 or args.sim_proc_ns < 0:
        raise CliError("--k-paths must be at least 1, --max-wait-slots and --sim-proc-ns non-negative")
    t0 = time.perf_counter()
    try:
        inst = read_instance(args.task, args.topo, k_paths=args.k_paths, sim_proc_ns=args.sim_proc_ns)
        t_read = time.perf_counter() - t0
        result = schedule_instance(inst, slot_ns=args.slot_ns, max_share=args.max_share, k_paths=args.k_paths,
                                   max_wait_slots=args.max_wait_slots, order=args.order)
    except TsnkitFormatError as e:
        raise CliError(str(e)) from None
    try:
        report = write_outputs(result.scheduler, inst, args.outdir)
        if args.schedule_json:
            write_json_atomic(args.schedule_json, schedule_to_dict(result.scheduler))
    except OSError as e:
        raise CliError(f"{args.outdir}: cannot write ({e.strerror or e})") from None
    total = time.perf_counter() - t0
    n = len(inst.streams)
    ok = len(result.admitted) - len(report.problems)
    reasons: dict[str, int] = {}
    for why in result.rejected.values():
        code = why.split(":", 1)[0]
        reasons[code] = reasons.get(code, 0) + 1
    if args.json:
        print(json.dumps({
            "streams": n, "scheduled": ok, "rejected": len(result.rejected), "rejections_by_reason": reasons,
            "rejections": result.rejected, "problems": {str(k): v for k, v in report.problems.items()},
            "cycle_ns": result.scheduler.cycle_ns, "slot_ns": result.scheduler.slot_ns,
            "read_s": round(t_read, 4), "schedule_s": round(result.seconds, 4), "total_s": round(total, 4),
            "outdir": args.outdir, "files": report.files}))
    else:
        print(f"scheduled {ok}/{n} streams of {inst.name} in {result.seconds:.3f} s "
              f"(total {total:.3f} s, cycle {result.scheduler.cycle_ns} ns, slot {result.scheduler.slot_ns} ns)")
        if reasons:
            print("rejected: " + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())))
        for sid, why in sorted(report.problems.items()):
            print(f"stream {sid}: {why}")
        print(f"wrote {', '.join(f.rsplit('/', 1)[-1] for f in report.files)} to {args.outdir}")
    return 0 if ok == n else 1
