"""``dnctl bench``: benchmarks. Kinds are subcommands (``admission`` now; e.g. ``rest`` later).

To add a kind, write a function ``_register_<kind>(bsub)`` that adds its parser with
``set_defaults(func=...)`` and append it to ``KINDS``.
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run benchmarks (admission speed, ...)",
                       description="Benchmarks. Figures are measurements, not pass/fail checks.")
    bsub = p.add_subparsers(dest="bench_kind", metavar="KIND")
    for reg in KINDS:
        reg(bsub)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {v}")
    return v


def _register_admission(bsub: argparse._SubParsersAction) -> None:
    q = bsub.add_parser(
        "admission", help="admit a seeded workload one request at a time and time it",
        description="Admission benchmark: ~10%% bulk flows (1-5 Gb/s, 1 ms period), ~90%% small periodic "
                    "streams (64-1500 B, periods 1/2/4/8 ms), random node pairs, tenants round-robin "
                    "(see docs/scheduling.md).")
    q.add_argument("--topology", default="fntf40", help="topology name or file (default fntf40)")
    q.add_argument("--reservations", type=_positive, default=4096, help="number of requests (default 4096)")
    q.add_argument("--tenants", type=_positive, default=128, help="number of tenants (default 128)")
    q.add_argument("--seed", type=int, default=1, help="workload seed (default 1)")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=_admission)


def _admission(args) -> int:
    from tools.cli import CliError
    from topologies.loaders import load_topology
    from topologies.model import TopologyError

    from controller.core.bench import run_admission

    try:
        topo = load_topology(args.topology)
    except TopologyError as e:
        raise CliError(str(e)) from None
    if topo.graph.number_of_nodes() < 2:
        raise CliError(f"topology {topo.name} needs at least two nodes")
    r = run_admission(topo, args.reservations, args.tenants, args.seed)
    if args.json:
        print(json.dumps(r))
        return 0
    reasons = ", ".join(f"{k} {v}" for k, v in r["rejected_by_reason"].items()) or "none"
    print(f"admission bench on {r['topology']}: {r['reservations']} requests, {r['tenants']} tenants, seed {r['seed']}")
    print(f"  admitted     {r['admitted']}")
    print(f"  rejected     {r['rejected']} ({reasons})")
    print(f"  total        {r['total_s']:.3f} s")
    print(f"  per request  p50 {r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms, max {r['max_ms']:.3f} ms")
    print(f"  peak RSS     {r['peak_rss_mb']:.1f} MiB")
    print(f"  cycle        {r['cycle_ns']} ns of {r['slot_ns']} ns slots; link share mean "
          f"{r['mean_link_share']:.3f}, max {r['max_link_share']:.3f}")
    return 0


def _register_rest(bsub: argparse._SubParsersAction) -> None:
    from tools.runs.bench_rest import register_kind   # dnctl bench rest (REST load on the emulation)
    register_kind(bsub)


KINDS = [_register_admission, _register_rest]
