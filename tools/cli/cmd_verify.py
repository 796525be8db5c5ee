"""``dnctl verify``: check captures against reservations (``verify pcap``).

``verify pcap`` prints PASS/FAIL per check with its numbers and exits 0 only when every check of
every analyzed reservation passes (1 when one fails, 2 for bad input). ``verify isolation`` and
``verify scenario`` are added to the same sub-parser later (they need a running controller).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from tools.cli import CliError

#: extra ``verify`` actions registered by other modules: list of callables ``(subparsers) -> None``
EXTRA_ACTIONS: list[Any] = []


def register(sub: argparse._SubParsersAction) -> None:
    from tools.cli.cmd_probe import add_source_args

    p = sub.add_parser("verify", help="check captures (and later isolation, scenarios) against reservations",
                       description="Verification of the data plane against the schedule (docs/verification.md).")
    vs = p.add_subparsers(dest="verify_cmd", metavar="ACTION")
    q = vs.add_parser("pcap", help="analyze pcaps of probes against reservations: PASS/FAIL per check",
                      description="Exit 0 if every check passes, 1 if one fails, 2 on bad input.")
    add_source_args(q, required_id=False)
    q.add_argument("pcaps", nargs="+", metavar="FILE.pcap", help="receiver-side captures (pcap or pcapng)")
    q.add_argument("--talker", action="append", default=[], metavar="RESULT.json",
                   help="talker result(s) from `probe send --out` (exact sent counts)")
    q.add_argument("--json", action="store_true", help="print the report as JSON")
    q.add_argument("--plot", metavar="DIR", help="write report.json, summary.txt, PNGs and report.html into DIR")
    q.add_argument("--tx-tolerance", type=int, default=0, metavar="NS",
                   help="allowed lateness past a slot window for the tx_slot check (default 0)")
    q.add_argument("--propagation", choices=("auto", "emulated", "not-emulated"), default="auto",
                   help="whether links add their modeled propagation (default auto: from the measured latency)")
    q.add_argument("--eliminate", action="store_true",
                   help="duplicate elimination for every flow (protected reservations get it anyway): duplicates "
                        "are expected and loss counts distinct sequence numbers")
    q.add_argument("--rate-fraction", type=float, default=0.9,
                   help="rate check: fraction of the reserved rate every window must carry (default 0.9)")
    q.add_argument("--all", action="store_true",
                   help="require every reservation of --schedule to be present (missing ones fail)")
    q.set_defaults(func=_pcap)
    import importlib
    for name in ("tools.runs.isolation", "tools.runs.scenario"):   # verify isolation, verify scenario
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:
                continue
            raise
        if mod.register_action not in EXTRA_ACTIONS:
            EXTRA_ACTIONS.append(mod.register_action)
    for add in EXTRA_ACTIONS:
        add(vs)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _pcap(args: argparse.Namespace) -> int:
    from tools.probes.analyzer import PcapError, Thresholds, analyze
    from tools.cli.cmd_probe import resolve
    from tools.probes.report import text_summary, to_json, write_all

    for path in args.pcaps:
        if not os.path.isfile(path):
            raise CliError(f"{path}: no such file")
    if not 0 < args.rate_fraction <= 1:
        raise CliError("--rate-fraction must be in (0, 1]")
    reservations, meta = resolve(args)
    if not reservations:
        raise CliError("no reservations to check against")
    sent: dict[str, int] = {}
    for t in args.talker:
        try:
            with open(t) as f:
                d = json.load(f)
            sent[str(d["reservation_id"])] = int(d["sent"])
        except (OSError, ValueError, KeyError, TypeError):
            raise CliError(f"{t}: not a talker result (from `dnctl probe send --out`)") from None
    require = [str(r["id"]) for r in reservations] if (args.reservation or args.all) else None
    th = Thresholds(rate_fraction=args.rate_fraction, tx_tolerance_ns=args.tx_tolerance,
                    propagation=args.propagation, eliminate=getattr(args, "eliminate", False))
    try:
        report = analyze(args.pcaps, reservations, meta, sent_counts=sent, thresholds=th, require=require)
    except PcapError as e:
        raise CliError(str(e)) from None
    except (KeyError, ValueError, TypeError) as e:
        raise CliError(f"cannot analyze: {e}") from None
    if args.plot:
        write_all(report, args.plot)
    if args.json:
        print(to_json(report))
    else:
        print(text_summary(report))
        if args.plot:
            print(f"report written to {os.path.join(args.plot, 'report.html')}")
    return 0 if report.passed else 1
