"""``dnctl schedule``: build a Schedule JSON offline from a batch of requests, inspect and export schedules.

Forms::

    dnctl schedule --topology NAME_OR_FILE --requests REQUESTS.json --out SCHEDULE.json [--json] [...]
    dnctl schedule gcl SCHEDULE.json (--link U V | --all) [--format text|json|taprio|yang] [--json] [--dev DEV]
    dnctl schedule export [--out SCHEDULE.json] [--url URL] [--token TOKEN]

The first form (no action) admits the requests in file order on a fresh scheduler, writes the
Schedule JSON contract and prints a summary (admitted, rejected by reason); it exits 0 even when
some requests are rejected (that is an answer, not an error), and 2 with one line, writing
nothing, when the topology or the requests file is bad.

``export`` fetches the running controller's Schedule JSON over REST (``GET /v1/schedule``) and
writes it to a file or stdout. A new action is one more sub-parser here.

Start-up: the scheduler, the schedule modules, the topology loaders (networkx, numpy) and the REST
client (httpx) are imported by the functions that use them, not at module level, so building the
parser and ``--help`` import none of them (tests/test_cli_startup.py).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from pathlib import Path

from tools.cli import CliError
from tools.cli.clientargs import add_connection_args, client_from_args


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

    g = actions.add_parser(
        "gcl", help="print the gate control list of a directed link (or all) of a Schedule JSON, or its tc taprio",
        description="Print the IEEE 802.1Qbv-style gate control list of link U->V (or of every link: --all): "
                    "reserved windows (traffic class 7 open) and best-effort windows, summing to the cycle. "
                    "--format taprio prints, per port, a comment line '# U -> V (...)' and the Linux "
                    "'tc qdisc replace ... taprio' command that installs the list (software mode; tc 1 = "
                    "priority 7, a guard band closes best effort one max-size frame before each reserved "
                    "window; see docs/gates.md). The device is --dev for one link, else U-V with white space, "
                    "'/' and ':' made '_', cut to 15 characters (a name that would repeat an earlier one ends "
                    "in _2, _3, ...). A port whose list needs more entries than one tc command carries (31; 30 "
                    "with a --base-time) exits 2 naming it, and nothing is printed. --format yang prints IEEE "
                    "802.1Qcw instance data (RFC 7951 JSON, module ieee802-dot1q-sched-bridge 2023-10-26): the "
                    "one port's document with --link, {'bridges': {NAME: document}} with --all, or one file per "
                    "bridge with --yang-dir (docs/standards.md).")
    g.add_argument("schedule", metavar="SCHEDULE.json", help="a Schedule JSON file")
    which = g.add_mutually_exclusive_group(required=True)
    which.add_argument("--link", nargs=2, metavar=("U", "V"), help="the directed link U->V")
    which.add_argument("--all", action="store_true", help="every directed link of the schedule, in its order")
    g.add_argument("--reserved-tc", type=int, default=7, help="traffic class of reserved traffic (default 7)")
    g.add_argument("--format", choices=("text", "json", "taprio", "yang"), default=None,
                   help="text (default): a table; json: one JSON object ({'gcls': [...]} with --all); "
                        "taprio: tc commands; yang: 802.1Qcw instance data (RFC 7951 JSON)")
    g.add_argument("--json", action="store_true", help="the same as --format json")
    g.add_argument("--dev", help="taprio, yang: the device (interface name) of the one --link (default: U-V cut to "
                                 "15 characters)")
    g.add_argument("--guard-band-bytes", type=int, default=1522,
                   help="taprio: best effort closes this many bytes' time at the link's rate before each reserved "
                        "window (default 1522, a max-size tagged frame; 0: no guard band)")
    g.add_argument("--base-time", type=int, default=0, metavar="NS",
                   help="taprio, yang: base time in ns of CLOCK_TAI / PTP time (default 0: cycles aligned to the "
                        "epoch)")
    g.add_argument("--etf-delta", type=int, metavar="NS",
                   help="taprio: the talkers send with launch times (SO_TXTIME at their tx offsets): add an etf child "
                        "with this delta on the reserved queue of every port a talker sends on (the first link of a "
                        "path)")
    g.add_argument("--yang-dir", metavar="DIR",
                   help="yang with --all: write DIR/BRIDGE.json per bridge, print a summary")
    g.add_argument("--supported-list-max", type=int, metavar="N",
                   help="yang: the bridges' gate control list capacity; a port needing more exits 2 naming it "
                        "(default: write each port's own need)")
    g.add_argument("--no-supported", action="store_true",
                   help="yang: leave out supported-list-max, -cycle-max and -interval-max (bridges that hold them "
                        "read-only)")
    g.set_defaults(func=_gcl)

    q = actions.add_parser("export", help="write the controller's Schedule JSON (GET /v1/schedule)",
                           description="Fetch the Schedule JSON contract from a running controller and write it "
                                       "to --out (default stdout). A tenant token sees its own reservations only.")
    q.add_argument("--out", metavar="SCHEDULE.json", help="file to write (default: stdout)")
    add_connection_args(q)
    q.set_defaults(func=schedule_export)
    p.set_defaults(func=_build)


def _build(args) -> int:
    from controller.core.model import Reservation
    from controller.core.scheduler import Scheduler
    from schedules.requests_file import RequestsFileError, read_requests
    from schedules.schedule_json import schedule_to_dict, write_json_atomic
    from topologies.loaders import load_topology
    from topologies.model import TopologyError

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
    from schedules.gcl import GCLError
    from schedules.schedule_json import SchedulePayloadError, read_schedule_file
    from schedules.taprio import device_names
    from schedules.yang import port_gcls

    fmt = args.format or ("json" if args.json else "text")
    if args.json and fmt != "json":
        raise CliError(f"schedule gcl: --json is --format json, not --format {fmt}")
    if args.dev is not None and (fmt not in ("taprio", "yang") or args.all):
        raise CliError("schedule gcl: --dev goes with --format taprio and one --link (or --format yang)")
    if args.etf_delta is not None and fmt != "taprio":
        raise CliError("schedule gcl: --etf-delta goes with --format taprio")
    if args.yang_dir is not None and (fmt != "yang" or not args.all):
        raise CliError("schedule gcl: --yang-dir goes with --format yang and --all")
    if (args.supported_list_max is not None or args.no_supported) and fmt != "yang":
        raise CliError("schedule gcl: --supported-list-max and --no-supported go with --format yang")
    if args.supported_list_max is not None and args.no_supported:
        raise CliError("schedule gcl: --supported-list-max and --no-supported exclude each other")
    try:
        data = read_schedule_file(args.schedule)
        if args.all:
            try:
                links = [(str(l["src"]), str(l["dst"])) for l in data.get("links", [])]
            except (AttributeError, KeyError, TypeError):
                raise GCLError("not a Schedule JSON object (needs cycle_ns, slot_ns, links, reservations)") from None
            if not links:
                raise GCLError("the schedule has no links")
        else:
            links = [tuple(args.link)]
        gcls = port_gcls(data, links, reserved_tc=args.reserved_tc)
    except (SchedulePayloadError, GCLError) as e:
        raise CliError(str(e) if str(e).startswith(args.schedule) else f"{args.schedule}: {e}") from None

    names = device_names([(g.src, g.dst) for g in gcls])
    if args.dev is not None:
        names = {(gcls[0].src, gcls[0].dst): args.dev}
    if fmt == "json":
        print(json.dumps({"gcls": [g.to_dict() for g in gcls]} if args.all else gcls[0].to_dict()))
    elif fmt == "text":
        print("\n\n".join(g.render() for g in gcls))
    elif fmt == "yang":
        _yang(args, gcls, names)
    else:
        _taprio(args, data, gcls, names)
    return 0


def _taprio(args, data: dict, gcls: list, names: dict) -> None:
    from schedules.taprio import TaprioError, taprio_config, talker_ports

    capacity = {(str(l.get("src")), str(l.get("dst"))): l.get("capacity_bps") for l in data.get("links", [])
                if isinstance(l, dict)}
    talkers = talker_ports(data) if args.etf_delta is not None else set()
    if args.etf_delta is not None and not args.all and (gcls[0].src, gcls[0].dst) not in talkers:
        raise CliError(f"{args.schedule}: --etf-delta: no talker sends on {gcls[0].src}->{gcls[0].dst} "
                       f"(it is the first link of no reservation's path)")
    lines = []
    for g in gcls:
        etf = args.etf_delta if (g.src, g.dst) in talkers else None
        try:
            cfg = taprio_config(g, dev=names[(g.src, g.dst)], link_bps=capacity.get((g.src, g.dst)),
                                guard_band_bytes=args.guard_band_bytes, base_time_ns=args.base_time,
                                etf_delta_ns=etf)
        except TaprioError as e:
            raise CliError(f"{args.schedule}: {e}") from None
        n = len(cfg.entries)
        lines.append(f"# {g.src} -> {g.dst} ({n} entr{'y' if n == 1 else 'ies'}, cycle {cfg.cycle_ns} ns, "
                     f"guard band {cfg.guard_band_ns} ns at {cfg.link_bps} b/s"
                     + (f", etf delta {etf} ns" if etf is not None else "") + ")")
        lines += [shlex.join(argv) for argv in cfg.commands()]
    print("\n".join(lines))


_FILE_UNSAFE = re.compile(r"[^\w.-]")


def _yang(args, gcls: list, names: dict) -> None:
    """802.1Qcw instance data: one port (--link), every bridge in one object, or one file per bridge."""
    from schedules.schedule_json import write_json_atomic
    from schedules.yang import YangError, bridge_instance

    options = {"base_time_ns": args.base_time, "capabilities": not args.no_supported,
               "supported_list_max": args.supported_list_max}
    by_bridge: dict[str, list] = {}
    for g in gcls:
        by_bridge.setdefault(g.src, []).append(g)
    try:
        docs = {b: bridge_instance(gs, names, **options) for b, gs in by_bridge.items()}
    except YangError as e:
        raise CliError(f"{args.schedule}: {e}") from None
    if not args.all:
        print(json.dumps(next(iter(docs.values())), indent=1))
        return
    if args.yang_dir is None:
        print(json.dumps({"bridges": docs}, indent=1))
        return
    out = Path(args.yang_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for b, doc in docs.items():
            write_json_atomic(str(out / f"{_FILE_UNSAFE.sub('_', b)}.json"), doc)
    except OSError as e:
        raise CliError(f"--yang-dir {args.yang_dir}: cannot write ({e.strerror or e})") from None
    print(f"wrote {len(docs)} bridge documents ({len(gcls)} ports) to {args.yang_dir}")


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
