"""``dnctl paths``: what-if admission (POST /v1/paths): would this request fit now? Reserves nothing.

It takes every option ``dnctl reserve`` takes (rate, period, bounds, ``--id``, ``--via``,
``--protect``, ``--match-*``; ``tools.cli.cmd_reserve.add_request_args``) and sends the same body,
so its verdict is the one the reservation would get.

Exit status: 0 when admissible, 1 when not (with the reason), so scripts can test it directly;
2 for a usage error found locally (no rate, a duration without a unit, ...), nothing sent.
"""

from __future__ import annotations

import argparse

from tools.cli import CliError
from tools.cli.cmd_reserve import add_request_args, build_request, print_warnings
from tools.cli.clientargs import add_client_args, client_from_args, print_json, wants_json
from tools.cli.tables import compress_ints, render_table
from tools.cli.units import format_ns


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "paths", help="would a reservation fit? (what-if, reserves nothing)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Ask the controller whether a reservation from SRC to DST would be admitted now,\n"
                    "and on which path with which bounds. Nothing is reserved. Takes the options of\n"
                    "`dnctl reserve` (--via, --protect, --match-*, --id) and gives its verdict. Exit 0\n"
                    "when admissible, 1 when not (the reason is printed).",
        epilog="example:\n  dnctl paths Beijing Shanghai --bandwidth 2G --max-latency 30ms")
    p.add_argument("src", metavar="SRC", help="source node")
    p.add_argument("dst", metavar="DST", help="destination node")
    p.add_argument("--tenant", type=int, metavar="N", help="check against this tenant's quota (admin token)")
    add_request_args(p)
    add_client_args(p)
    p.set_defaults(func=_paths)


def _hop_rows(hops: list) -> list[tuple]:
    return [(f"{h.get('src')}->{h.get('dst')}", len(h.get("slots") or []), compress_ints(h.get("slots") or []))
            for h in hops]


def _paths(args) -> int:
    if args.src == args.dst:
        raise CliError("SRC and DST must differ")
    body = build_request(args)
    with client_from_args(args) as api:
        answer = api.post("/v1/paths", body)
    if not isinstance(answer, dict):
        raise CliError("the controller's /v1/paths answer is not a JSON object", code=1)
    ok = bool(answer.get("admissible"))
    print_warnings(answer)
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
    rows = _hop_rows(answer.get("hops") or [])
    protection = answer.get("protection_path") or []
    if protection:
        print(f"protection: {' -> '.join(protection)}, latency bound "
              f"{format_ns(answer.get('protection_latency_bound_ns'))}")
        rows += _hop_rows(answer.get("protection_hops") or [])
    if rows:
        print("\n".join("  " + line for line in render_table(["hop", "slots", "first slots"], rows).splitlines()))
    return 0
