"""``dnctl events``: the controller's audit and event log (GET /v1/events).

Every write attempt and its answer, start-ups, restore failures, switch connections, link
failures and the reservations they moved or took down. The admin sees everything; a tenant's
token sees the entries about that tenant. ``--follow`` keeps polling for new entries.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from typing import Any

from tools.cli import CliError
from tools.cli.clientargs import add_client_args, client_from_args, wants_json
from tools.cli.tables import render_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("events", help="the controller's audit and event log",
                       description="Print audit/event entries after --since (admin: all; tenant: its own).")
    p.add_argument("--since", type=int, default=0, metavar="SEQ", help="only entries after this sequence number")
    p.add_argument("--limit", type=int, default=100, metavar="N", help="at most N entries per request (default 100)")
    p.add_argument("--follow", action="store_true", help="keep polling for new entries until Ctrl-C")
    p.add_argument("--interval", type=float, default=1.0, metavar="S", help="seconds between polls with --follow")
    add_client_args(p)
    p.set_defaults(func=_events)


def _outcome(e: dict[str, Any]) -> str:
    out = e.get("outcome")
    if isinstance(out, dict):
        for key in ("reason", "id", "detail"):
            if out.get(key) is not None:
                return f"{key}={out[key]}"
    return "" if out is None else json.dumps(out, separators=(",", ":"))[:60]


def _rows(events: list[dict[str, Any]]) -> list[list[Any]]:
    return [[e["seq"], datetime.fromtimestamp(e["ts"], timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
             e.get("actor", ""), e.get("action", ""), e.get("status", ""), _outcome(e)] for e in events]


def _events(args) -> int:
    if not 1 <= args.limit <= 10_000:
        raise CliError("--limit must be between 1 and 10000")
    if args.since < 0:
        raise CliError("--since must not be negative")
    if args.interval <= 0:
        raise CliError("--interval must be positive")
    since, first = args.since, True
    with client_from_args(args) as api:
        while True:
            page = api.get("/v1/events", params={"since": since, "limit": args.limit})
            events = page.get("events", [])
            if wants_json(args):
                for e in events:
                    print(json.dumps(e, ensure_ascii=False), flush=True)
            elif events or first:
                print(render_table(["seq", "time (UTC)", "actor", "action", "status", "outcome"], _rows(events),
                                   empty="(no events)"), flush=True)
            first = False
            if events:
                since = max(e["seq"] for e in events)
            if not args.follow:
                return 0
            if not events:
                time.sleep(args.interval)
