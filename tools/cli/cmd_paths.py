"""``dnctl paths``: what-if admission (GET /v1/paths): would this request fit now? Reserves nothing.

Exit status: 0 when admissible, 1 when not (with the reason), so scripts can test it directly.
"""

from __future__ import annotations

import argparse

from tools.cli import CliError
from tools.cli.clientargs import add_client_args, client_from_args, parse_option, print_json, wants_json
from tools.cli.tables import compress_ints, render_table
from tools.cli.units import format_ns, parse_bandwidth, parse_duration, parse_size


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "paths", help="would a reservation fit? (what-if, reserves nothing)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Ask the controller whether a reservation from SRC to DST would be admitted now,\n"
                    "and on which path with which bounds. Nothing is reserved. Exit 0 when\n"
                    "admissible, 1 when not (the reason is printed).",
        epilog="example:\n  dnctl paths Beijing Shanghai --bandwidth 2G --max-latency 30ms")
    p.add_argument("src", metavar="SRC", help="source node")
    p.add_argument("dst", metavar="DST", help="destination node")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--bandwidth", metavar="RATE", help="bulk rate, e.g. 2G")
    size.add_argument("--frame-bytes", metavar="SIZE", help="bytes per period, e.g. 1500")
    p.add_argument("--period", metavar="TIME", help="period, e.g. 1ms (needed with --frame-bytes)")
    p.add_argument("--max-latency", required=True, metavar="TIME", help="latency bound to meet, e.g. 30ms")
    p.add_argument("--max-jitter", metavar="TIME", help="jitter bound to meet, e.g. 10us")
    p.add_argument("--tenant", type=int, metavar="N", help="check against this tenant's quota (admin token)")
    add_client_args(p)
    p.set_defaults(func=_paths)


def _paths(args) -> int:
    if args.src == args.dst:
        raise CliError("SRC and DST must differ")
    params = {
        "src": args.src, "dst": args.dst,
        "bandwidth_bps": parse_option(parse_bandwidth, args.bandwidth, "--bandwidth"),
        "frame_bytes": parse_option(parse_size, args.frame_bytes, "--frame-bytes"),
        "period_ns": parse_option(parse_duration, args.period, "--period"),
        "max_latency_ns": parse_option(parse_duration, args.max_latency, "--max-latency"),
        "max_jitter_ns": parse_option(parse_duration, args.max_jitter, "--max-jitter"),
        "tenant": args.tenant,
    }
    with client_from_args(args) as api:
        answer = api.get("/v1/paths", params=params)
    if not isinstance(answer, dict):
        raise CliError("the controller's /v1/paths answer is not a JSON object", code=1)
    ok = bool(answer.get("admissible"))
    if wants_json(args):
        print_json(answer)
        return 0 if ok else 1
    if not ok:
        reason = answer.get("reason")
        detail = answer.get("detail")
        print(f"not admissible{f' ({reason})' if reason else ''}{f': {detail}' if detail else ''}")
        return 1
    path = answer.get("path") or []
    print(f"admissible: {' -> '.join(path)} ({max(len(path) - 1, 0)} hops), "
          f"latency bound {format_ns(answer.get('latency_bound_ns'))}, "
          f"jitter bound {format_ns(answer.get('jitter_bound_ns'))}")
    hops = answer.get("hops") or []
    if hops:
        rows = [(f"{h.get('src')}->{h.get('dst')}", len(h.get("slots") or []),
                 compress_ints(h.get("slots") or [])) for h in hops]
        print("\n".join("  " + line for line in render_table(["hop", "slots", "first slots"], rows).splitlines()))
    return 0
