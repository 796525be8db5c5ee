"""``dnctl schedule``: build a Schedule JSON offline from a batch of requests, inspect and export schedules.

Forms::

    dnctl schedule --topology NAME_OR_FILE --requests REQUESTS.json --out SCHEDULE.json [--json] [...]
    dnctl schedule gcl SCHEDULE.json --link U V [--json]
    dnctl schedule export [--out SCHEDULE.json] [--url URL] [--token TOKEN]

The first form (no action) admits the requests in file order on a fresh scheduler, writes the
Schedule JSON contract and prints a summary (admitted, rejected by reason); it exits 0 even when
some requests are rejected (that is an answer, not an error), and 2 with one line, writing
nothing, when the topology or the requests file is bad.

``export`` fetches the running controller's Schedule JSON over REST (``GET /v1/schedule``) and
writes it to a file or stdout. A new action is one more sub-parser here.
"""

from __future__ import annotations

import argparse
import json
import sys

from controller.core.model import Reservation
from controller.core.scheduler import Scheduler
from schedules.gcl import GCLError, gate_control_list
from schedules.requests_file import RequestsFileError, read_requests
from schedules.schedule_json import SchedulePayloadError, read_schedule_file, schedule_to_dict, write_json_atomic
from tools.cli import CliError
from tools.cli.clientargs import add_connection_args, client_from_args
from topologies.loaders import load_topology
from topologies.model import TopologyError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "schedule", help="build a Schedule JSON from REQUESTS.json; show a link's gate control list",
        description="Without an ACTION: admit the requests of REQUESTS.json (a JSON list of request objects) in "
                    "order on TOPOLOGY and write the Schedule JSON to --out. Actions: gcl (a link's 802.1Qbv gate "
                    "control list). See docs/schedules.md.")
    p.add_argument("--topology", help="topology name or file (.json, .graphml, .csv)")
    p.add_argument("--requests", metavar="REQUESTS.json", help="JSON list of requests")
    p.add_argument("--out", metavar="SCHEDULE.json", help="where to write the Schedule JSON")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--slot-ns", type=int, default=1000, help="slot length in ns (default 1000)")
    p.add_argument("--max-share", type=float, default=0.75, help="reservable share of each link (default 0.75)")
    p.add_argument("--base-cycle-ns", type=int, default=1_000_000, help="shortest cycle in ns (default 1 ms)")
    p.add_argument("--max-cycle-ns", type=int, default=100_000_000, help="longest cycle in ns (default 100 ms)")
    p.add_argument("--k-paths", type=int, default=4, help="candidate paths per request (default 4)")
    p.add_argument("--max-wait-slots", type=int, default=4, help="bounded wait per hop in slots (default 4)")
    p.add_argument("--processing-ns", type=int, default=1000, help="per-hop processing delay in ns (default 1000)")
    actions = p.add_subparsers(dest="schedule_action", metavar="ACTION", required=False)

    g = actions.add_parser("gcl", help="print the gate control list of one directed link of a Schedule JSON",
                           description="Print the IEEE 802.1Qbv-style gate control list of link U->V: reserved "
                                       "windows (traffic class 7 open) and best-effort windows, summing to the cycle.")
    g.add_argument("schedule", metavar="SCHEDULE.json", help="a Schedule JSON file")
    g.add_argument("--link", nargs=2, metavar=("U", "V"), required=True, help="the directed link U->V")
    g.add_argument("--reserved-tc", type=int, default=7, help="traffic class of reserved traffic (default 7)")
    g.add_argument("--json", action="store_true", help="print the list as one JSON object")
    g.set_defaults(func=_gcl)

    q = actions.add_parser("export", help="write the controller's Schedule JSON (GET /v1/schedule)",
                           description="Fetch the Schedule JSON contract from a running controller and write it "
                                       "to --out (default stdout). A tenant token sees its own reservations only.")
    q.add_argument("--out", metavar="SCHEDULE.json", help="file to write (default: stdout)")
    add_connection_args(q)
    q.set_defaults(func=schedule_export)
    p.set_defaults(func=_build)


def _build(args) -> int:
    missing = [o for o, v in (("--topology", args.topology), ("--requests", args.requests), ("--out", args.out))
               if not v]
    if missing:
        raise CliError(f"schedule: {', '.join(missing)} required (or give an action: gcl)")
    try:
        topo = load_topology(args.topology)
    except TopologyError as e:
        raise CliError(str(e)) from None
    try:
        requests = read_requests(args.requests, topology=topo)
    except RequestsFileError as e:
        raise CliError(str(e)) from None
    for i, r in enumerate(requests):
        if r.tenant < 1:
            raise CliError(f"{args.requests}: entry #{i}: field 'tenant': tenant ids start at 1")
    try:
        sched = Scheduler(topo, slot_ns=args.slot_ns, base_cycle_ns=args.base_cycle_ns,
                          max_cycle_ns=args.max_cycle_ns, max_share=args.max_share, k_paths=args.k_paths,
                          max_wait_slots=args.max_wait_slots, processing_ns=args.processing_ns)
    except ValueError as e:
        raise CliError(f"schedule: {e}") from None

    admitted: list[str] = []
    rejections: list[dict] = []
    by_reason: dict[str, int] = {}
    for i, req in enumerate(requests):
        out = sched.admit(req)
        if isinstance(out, Reservation):
            admitted.append(out.id)
        else:
            rejections.append({"index": i, "id": req.id, "reason": out.reason, "detail": out.detail})
            by_reason[out.code] = by_reason.get(out.code, 0) + 1
    try:
        write_json_atomic(args.out, schedule_to_dict(sched))
    except OSError as e:
        raise CliError(f"{args.out}: cannot write ({e.strerror or e})") from None

    if args.json:
        print(json.dumps({"topology": topo.name, "requests": len(requests), "admitted": len(admitted),
                          "rejected": len(rejections), "rejections_by_reason": by_reason,
                          "reservations": admitted, "rejections": rejections, "cycle_ns": sched.cycle_ns,
                          "slot_ns": sched.slot_ns, "out": args.out}))
    else:
        print(f"admitted {len(admitted)} of {len(requests)} requests on {topo.name} "
              f"(cycle {sched.cycle_ns} ns, slot {sched.slot_ns} ns); wrote {args.out}")
        if rejections:
            print(f"rejected {len(rejections)}: " + ", ".join(f"{k} {v}" for k, v in sorted(by_reason.items())))
            for r in rejections:
                print(f"  #{r['index']}{' ' + r['id'] if r['id'] else ''}: {r['reason']}: {r['detail']}")
    return 0


def _gcl(args) -> int:
    try:
        data = read_schedule_file(args.schedule)
        gcl = gate_control_list(data, args.link[0], args.link[1], reserved_tc=args.reserved_tc)
    except (SchedulePayloadError, GCLError) as e:
        raise CliError(str(e) if str(e).startswith(args.schedule) else f"{args.schedule}: {e}") from None
    print(json.dumps(gcl.to_dict()) if args.json else gcl.render())
    return 0


def schedule_export(args: argparse.Namespace) -> int:
    """GET /v1/schedule and write the Schedule JSON to ``args.out`` (a file) or stdout.

    ``args`` may carry ``url``, ``token`` (see ``add_connection_args``) and ``out`` (None or ``-``:
    stdout). On success with a file, one summary line goes to stderr so stdout stays clean.
    """
    with client_from_args(args) as api:
        schedule = api.get("/v1/schedule")
    if not isinstance(schedule, dict):
        raise CliError("the controller's /v1/schedule answer is not a JSON object", code=1)
    text = json.dumps(schedule, indent=1, ensure_ascii=False) + "\n"
    out = getattr(args, "out", None)
    if not out or out == "-":
        sys.stdout.write(text)
        return 0
    try:
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise CliError(f"--out {out}: {e.strerror or e}") from None
    n = len(schedule.get("reservations", []))
    print(f"schedule: {n} reservation{'s' if n != 1 else ''}, cycle {schedule.get('cycle_ns')} ns, "
          f"written to {out}", file=sys.stderr)
    return 0
