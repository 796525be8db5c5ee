"""``dnctl reserve``: ask the controller for a deterministic path (POST /v1/reservations).

Values take units (``--bandwidth 2G``, ``--max-latency 30ms``, ``--frame-bytes 64KiB``); they are
turned into the API's integers here, so a typo is a one-line usage error before any request.

``dnctl reserve --file REQUESTS.json`` sends a whole requests file (``schedules.requests_file``) as
one batch (POST /v1/reservations/batch): ``--atomic`` (the default) all or none, ``--no-atomic``
each on its own, the refused ones listed with their index and reason.

A single reservation goes through ``ApiClient.reserve``: it carries an ``Idempotency-Key`` (a new
uuid4, or ``--idempotency-key KEY``) and is tried again for a few seconds while the controller is
unreachable or has no leader, without ever booking twice.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, Sequence

from tools.cli import CliError
from tools.cli.cmd_reservations import render_reservation
from tools.cli.clientargs import add_client_args, client_from_args, parse_option, print_json, wants_json
from tools.cli.matchargs import add_match_arguments, match_from_args
from tools.cli.units import format_ns, parse_bandwidth, parse_duration_with_unit, parse_size

if TYPE_CHECKING:
    from tools.client import ApiClient

def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reserve", help="reserve a deterministic path on a running controller",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Reserve a deterministic path. Give a bulk rate (--bandwidth) or a frame sent\n"
                    "every period (--frame-bytes with --period). Prints the path, its latency and\n"
                    "jitter bounds, the slots it holds per hop and the talker's tx offsets.\n"
                    "A request the network cannot guarantee is refused (exit 1) with the reason.",
        epilog="examples:\n"
               "  dnctl reserve --src Beijing --dst Shanghai --bandwidth 2G --max-latency 30ms\n"
               "  dnctl reserve --src Beijing --dst Wuhan --frame-bytes 1500 --period 100us \\\n"
               "      --max-latency 20ms --max-jitter 10us --match-udp-dst 5000\n"
               "  dnctl reserve --file requests.json            # one atomic batch: all or none\n"
               "  dnctl reserve --file requests.json --no-atomic")
    p.add_argument("--tenant", type=int, metavar="N",
                   help="tenant id (needed with the admin token; a tenant token implies its own)")
    p.add_argument("--src", metavar="CITY", help="source node (required without --file)")
    p.add_argument("--dst", metavar="CITY", help="destination node (required without --file)")
    p.add_argument("--file", metavar="REQUESTS.json",
                   help="send every request of a requests file (a JSON list of POST /v1/reservations bodies) "
                        "as one batch instead")
    p.add_argument("--atomic", action=argparse.BooleanOptionalAction, default=True,
                   help="with --file: all or none (default); --no-atomic admits what fits and lists the rest")
    p.add_argument("--idempotency-key", metavar="KEY",
                   help="send this Idempotency-Key (1-200 printable ASCII characters) instead of a new uuid4: "
                        "running the same command again answers the first admission and books nothing twice")
    add_request_args(p, required=False)
    add_client_args(p)
    p.set_defaults(func=_reserve)


def add_request_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    """The options of a reservation request after its ends: rate, period, bounds, id, paths,
    protection and match. ``dnctl reserve`` and ``dnctl paths`` (the what-if) share them, so the
    what-if can be asked everything a reservation can; ``build_request`` reads them.
    ``required=False``: the caller checks that the rate and --max-latency are given."""
    size = p.add_mutually_exclusive_group(required=required)
    size.add_argument("--bandwidth", metavar="RATE", help="bulk rate, e.g. 2G, 500Mbps, 1.5 Gb/s")
    size.add_argument("--frame-bytes", metavar="SIZE", help="bytes sent once per period, e.g. 1500, 64KiB")
    p.add_argument("--period", metavar="TIME",
                   help="period with a unit, e.g. 1ms, 250us (needed with --frame-bytes; bulk rates default "
                        "to 1 ms)")
    p.add_argument("--max-latency", required=required, metavar="TIME",
                   help="end-to-end latency bound with a unit, e.g. 30ms")
    p.add_argument("--max-jitter", metavar="TIME", help="jitter bound with a unit, e.g. 10us")
    p.add_argument("--id", metavar="NAME", help="reservation id (default: the controller picks one)")
    p.add_argument("--via", action="append", metavar="CITY,CITY,...",
                   help="explicit path: the nodes between src and dst, in order; repeat to offer "
                        "alternative candidate paths")
    p.add_argument("--protect", action="store_true",
                   help="protection: a second, link-disjoint path with its own slots; frames are replicated "
                        "at the ingress switch, so one link cut loses nothing (the listener drops duplicates)")
    add_match_arguments(p.add_argument_group("data-plane match (which packets use the reservation)"))


def _paths(src: str, dst: str, vias: list[str] | None) -> list[list[str]] | None:
    """Candidate paths ``[src, *via, dst]`` from the --via options (src/dst may be repeated in them)."""
    if not vias:
        return None
    paths = []
    for via in vias:
        nodes = [n.strip() for n in via.split(",") if n.strip()]
        if nodes and nodes[0] == src:
            nodes = nodes[1:]
        if nodes and nodes[-1] == dst:
            nodes = nodes[:-1]
        path = [src, *nodes, dst]
        if len(set(path)) != len(path):
            raise CliError(f"--via {via!r}: a path may visit each node once")
        paths.append(path)
    return paths


def build_request(args) -> dict[str, Any]:
    """The POST /v1/reservations body for parsed ``dnctl reserve`` (or ``dnctl paths``) options
    (usage errors: exit 2)."""
    if args.src == args.dst:
        raise CliError("--src and --dst must differ")
    body: dict[str, Any] = {"src": args.src, "dst": args.dst}
    if args.tenant is not None:
        if args.tenant < 0:
            raise CliError("--tenant must not be negative")
        body["tenant"] = args.tenant
    body["bandwidth_bps"] = parse_option(parse_bandwidth, args.bandwidth, "--bandwidth")
    body["frame_bytes"] = parse_option(parse_size, args.frame_bytes, "--frame-bytes")
    body["period_ns"] = parse_option(parse_duration_with_unit, args.period, "--period")
    if body["frame_bytes"] is not None and body["period_ns"] is None:
        raise CliError("--frame-bytes needs --period (how often the frame is sent), e.g. --period 1ms")
    body["max_latency_ns"] = parse_option(parse_duration_with_unit, args.max_latency, "--max-latency")
    body["max_jitter_ns"] = parse_option(parse_duration_with_unit, args.max_jitter, "--max-jitter")
    body["id"] = args.id
    body["paths"] = _paths(args.src, args.dst, args.via)
    match = match_from_args(args)
    if match:
        body["match"] = match
    if getattr(args, "protect", False):
        body["protection"] = "disjoint"
    return {k: v for k, v in body.items() if v is not None}


def print_warnings(answer: Any) -> None:
    """The API's ``warnings`` of an answer (e.g. a reservation that installs nothing), one line each
    on stderr: the reservation stands, but the user must know."""
    warnings = answer.get("warnings") if isinstance(answer, dict) else None
    for w in warnings or []:
        if isinstance(w, dict):
            print(f"dnctl: warning: {w.get('detail') or w.get('code')}", file=sys.stderr)


#: options of a single request, which --file excludes
_SINGLE_OPTIONS = ("src", "dst", "bandwidth", "frame_bytes", "period", "max_latency", "max_jitter", "id", "via",
                   "match_ip_src", "match_ip_dst", "match_ip_proto", "match_udp_dst", "match_tcp_dst", "match_dscp")


def read_requests_file(path: str) -> list[dict[str, Any]]:
    """The request bodies of a REQUESTS.json, checked as ``dnctl schedule`` checks them (a bad
    entry: one line naming the file, the entry and the field; exit 2)."""
    # imported here: schedules.requests_file pulls in the scheduler (networkx), which the other
    # forms of the verb and --help do not need
    from schedules.requests_file import RequestsFileError, parse_requests

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CliError(f"{path}: cannot read: {e}") from None
    except json.JSONDecodeError as e:
        raise CliError(f"{path}: not JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    try:
        parse_requests(data, path)
    except RequestsFileError as e:
        raise CliError(str(e)) from None
    if not data:
        raise CliError(f"{path}: no requests in it")
    return data


def send_batch(api: ApiClient, requests: Sequence[dict[str, Any]], *, atomic: bool, as_json: bool) -> int:
    """POST the batch and print the answer (a table, or the JSON); an atomic refusal is the client's
    one-line error (exit 1). Exit status 1 when a non-atomic batch refused some members."""
    answer = api.reserve_batch(requests, atomic=atomic)
    for r in answer["reservations"]:
        print_warnings(r)
    rejections = answer.get("rejections") or []
    if as_json:
        print_json(answer)
        return 1 if rejections else 0
    admitted = answer["reservations"]
    print(f"admitted {len(admitted)} of {len(requests)} ({'atomic' if atomic else 'each on its own'})")
    for r in admitted:
        print(f"  {r['id']:22} {r['src']:12} -> {r['dst']:12} bound {format_ns(r['latency_bound_ns'])}")
    for x in rejections:
        why = x.get("reason") or x.get("field") or x.get("error")
        print(f"  #{x['index']:<5} refused ({why}): {x.get('detail', '')}")
    return 1 if rejections else 0


def _reserve_file(args) -> int:
    given = [f"--{o.replace('_', '-')}" for o in _SINGLE_OPTIONS if getattr(args, o, None) is not None]
    if getattr(args, "protect", False):
        given.append("--protect")
    if args.idempotency_key is not None:
        given.append("--idempotency-key")
    if given:
        raise CliError(f"--file excludes {', '.join(given)} (the requests file holds every request)")
    requests = read_requests_file(args.file)
    if args.tenant is not None:
        requests = [dict(r, tenant=r.get("tenant", args.tenant)) for r in requests]
    with client_from_args(args) as api:
        return send_batch(api, requests, atomic=args.atomic, as_json=wants_json(args))


def _reserve(args) -> int:
    if args.file is not None:
        return _reserve_file(args)
    missing = [o for o, v in (("--src", args.src), ("--dst", args.dst), ("--max-latency", args.max_latency),
                              ("--bandwidth or --frame-bytes", args.bandwidth or args.frame_bytes)) if v is None]
    if missing:
        raise CliError(f"{', '.join(missing)} required (or --file REQUESTS.json)")
    key = args.idempotency_key
    if key is not None and not (1 <= len(key) <= 200 and all(" " <= c <= "~" for c in key)):
        raise CliError("--idempotency-key: must be 1-200 printable ASCII characters")
    body = build_request(args)
    with client_from_args(args) as api:
        r = api.reserve(body, idempotency_key=args.idempotency_key)
    print_warnings(r)
    if wants_json(args):
        print_json(r)
        return 0
    print(render_reservation(r, verb="admitted"))
    return 0
