"""``dnctl schedule export``: fetch the running controller's Schedule JSON over REST."""

from __future__ import annotations

import argparse


def register(actions: argparse._SubParsersAction) -> None:
    from tools.client import DEFAULT_URL, schedule_export

    q = actions.add_parser("export", help="write the controller's Schedule JSON (GET /v1/schedule)",
                           description="Fetch the Schedule JSON contract from a running controller and write it "
                                       "to --out (default stdout). A tenant token sees its own reservations only.")
    q.add_argument("--out", metavar="SCHEDULE.json", help="file to write (default: stdout)")
    q.add_argument("--url", default=argparse.SUPPRESS,
                   help=f"controller REST URL (default $DNCTL_URL or {DEFAULT_URL})")
    q.add_argument("--token", default=argparse.SUPPRESS,
                   help="API token (default $DNCTL_TOKEN, else $DNCTL_ADMIN_TOKEN)")
    q.set_defaults(func=schedule_export)
