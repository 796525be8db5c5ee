"""``dnctl reservations``: list, show and delete reservations through the REST API.

A tenant token sees its own reservations only; the admin token sees all (``--tenant N`` filters).
``render_reservation`` is also what ``dnctl reserve`` prints after an admission.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any
from urllib.parse import quote

from tools.cli import CliError
from tools.cli.clientargs import add_client_args, client_from_args, parse_option, print_json, wants_json
from tools.cli.matchargs import add_match_arguments, match_from_args
from tools.cli.tables import compress_ints, render_pairs, render_table
from tools.cli.units import (format_bps, format_bytes, format_ns, parse_bandwidth, parse_duration_with_unit,
                             parse_size)

#: tx offsets shown before "..." in human output (bulk flows have hundreds of frames per period).
_SHOW_OFFSETS = 6


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reservations", help="list, show or delete reservations",
                       description="List (default), show or delete reservations on a running controller.")
    p.add_argument("--tenant", type=int, default=argparse.SUPPRESS, metavar="N",
                   help="only this tenant's reservations (admin token)")
    add_client_args(p)
    rsub = p.add_subparsers(dest="reservations_cmd", metavar="ACTION")

    q = rsub.add_parser("list", help="list reservations (the default action)")
    q.add_argument("--tenant", type=int, default=argparse.SUPPRESS, metavar="N",
                   help="only this tenant's reservations (admin token)")
    q.add_argument("--src", metavar="NODE", help="only those from this node")
    q.add_argument("--dst", metavar="NODE", help="only those to this node")
    q.add_argument("--status", choices=("active", "down", "unrestored"), help="only those in this state")
    q.add_argument("--limit", type=int, metavar="N",
                   help="at most N (one page; the next page's cursor is printed on stderr)")
    q.add_argument("--cursor", metavar="CURSOR", help="continue after a page (the cursor it printed)")
    q.add_argument("--compact", action="store_true",
                   help="with --json: slots as runs within the period (?slots=compact), not expanded")
    add_client_args(q)
    q.set_defaults(func=_list)

    q = rsub.add_parser("show", help="show one reservation: path, bounds, slots, tx offsets")
    q.add_argument("id", metavar="ID", help="reservation id")
    add_client_args(q)
    q.set_defaults(func=_show)

    q = rsub.add_parser("delete", help="delete reservations (frees their slots); several ids: all or none",
                        description="Delete one reservation (DELETE /v1/reservations/ID) or several at once "
                                    "(POST /v1/reservations/delete: all of them or none; an unknown id is named "
                                    "and nothing is deleted).")
    q.add_argument("id", metavar="ID", nargs="+", help="reservation id(s)")
    add_client_args(q)
    q.set_defaults(func=_delete)

    q = rsub.add_parser(
        "modify", help="change a reservation's rate, bounds, match or protection (same id, make-before-break)",
        description="Change a reservation in place (PATCH /v1/reservations/ID): the new schedule is computed "
                    "first; a refusal changes nothing. Durations need a unit (30ms, 250us).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  dnctl reservations modify r7 --bandwidth 3G\n"
               "  dnctl reservations modify r7 --max-latency 20ms --match-udp-dst 6000")
    q.add_argument("id", metavar="ID", help="reservation id")
    size = q.add_mutually_exclusive_group()
    size.add_argument("--bandwidth", metavar="RATE", help="new bulk rate, e.g. 2G, 500Mbps")
    size.add_argument("--frame-bytes", metavar="SIZE", help="new bytes per period, e.g. 1500, 64KiB")
    q.add_argument("--period", metavar="TIME", help="new period with a unit (alone: keeps the bytes per period)")
    q.add_argument("--max-latency", metavar="TIME", help="new end-to-end latency bound with a unit, e.g. 30ms")
    q.add_argument("--max-jitter", metavar="TIME", help="new jitter bound with a unit, e.g. 10us")
    prot = q.add_mutually_exclusive_group()
    prot.add_argument("--protect", action="store_true", default=None,
                      help="add protection: a second, link-disjoint path")
    prot.add_argument("--no-protect", dest="protect", action="store_false", help="drop protection (one path)")
    m = q.add_argument_group("data-plane match (given: replaces the whole match)")
    add_match_arguments(m)
    m.add_argument("--no-match", action="store_true", help="remove the match (all the tenant's traffic "
                                                           "between the ends)")
    add_client_args(q)
    q.set_defaults(func=_modify)

    p.set_defaults(func=_list)


#: the option of each match field, and the protocol names --match-ip-proto takes (as dnctl reserve)
def build_patch(args) -> dict[str, Any]:
    """The PATCH body for parsed ``dnctl reservations modify`` options (nothing given: exit 2)."""
    body: dict[str, Any] = {
        "bandwidth_bps": parse_option(parse_bandwidth, args.bandwidth, "--bandwidth"),
        "frame_bytes": parse_option(parse_size, args.frame_bytes, "--frame-bytes"),
        "period_ns": parse_option(parse_duration_with_unit, args.period, "--period"),
        "max_latency_ns": parse_option(parse_duration_with_unit, args.max_latency, "--max-latency"),
        "max_jitter_ns": parse_option(parse_duration_with_unit, args.max_jitter, "--max-jitter"),
    }
    body = {k: v for k, v in body.items() if v is not None}
    match = match_from_args(args)
    if match and args.no_match:
        raise CliError("--no-match excludes the --match-* options")
    if match:
        body["match"] = match
    elif args.no_match:
        body["match"] = None
    if args.protect is not None:
        body["protection"] = "disjoint" if args.protect else None
    if not body:
        raise CliError("nothing to change: give --bandwidth, --frame-bytes, --period, --max-latency, --max-jitter, "
                       "--match-*, --no-match, --protect or --no-protect")
    return body


def _modify(args) -> int:
    body = build_patch(args)
    with client_from_args(args) as api:
        _quote(args.id)
        r = api.modify_reservation(args.id, body)
    for w in (r.get("warnings") if isinstance(r, dict) else None) or []:
        if isinstance(w, dict):
            print(f"dnctl: warning: {w.get('detail') or w.get('code')}", file=sys.stderr)
    if wants_json(args):
        print_json(r)
        return 0
    print(render_reservation(r, "modified"))
    return 0


def _path_text(path: list[str]) -> str:
    return " -> ".join(path)


def _rate_text(r: dict[str, Any]) -> str:
    rate = format_bps(r.get("bandwidth_bps"))
    if r.get("frame_bytes") is not None and r.get("period_ns") is not None:
        rate += f" ({format_bytes(r['frame_bytes'])} every {format_ns(r['period_ns'])})"
    return rate


def _bound_text(bound: Any, limit: Any) -> str:
    text = f"bound {format_ns(bound)}"
    if limit is not None:
        text += f" (max {format_ns(limit)})"
    return text


def _offsets_text(offsets: list[int]) -> str:
    if not offsets:
        return "-"
    shown = ", ".join(format_ns(o) for o in offsets[:_SHOW_OFFSETS])
    more = f", ... ({len(offsets)} frames per period)" if len(offsets) > _SHOW_OFFSETS else ""
    return shown + more


def render_reservation(r: dict[str, Any], verb: str | None = None) -> str:
    """A reservation (Reservation.to_dict() plus cycle_ns/slot_ns) as a few human lines."""
    head = f"reservation {r.get('id')} (tenant {r.get('tenant')})"
    if verb:
        head += f" {verb}"
    path = list(r.get("path") or [])
    pairs: list[tuple[str, Any]] = [
        ("path", f"{_path_text(path)}  ({max(len(path) - 1, 0)} hops)"),
        ("rate", _rate_text(r)),
        ("latency", _bound_text(r.get("latency_bound_ns"), r.get("max_latency_ns"))),
        ("jitter", _bound_text(r.get("jitter_bound_ns"), r.get("max_jitter_ns"))),
    ]
    if r.get("protection"):
        second = list(r.get("protection_path") or [])
        pairs.append(("protection", f"{_path_text(second)}  (link-disjoint, replicated at {path[0] if path else '?'})"
                      if second else f"{r['protection']}: degraded to one path (no disjoint path fits)"))
    if r.get("status"):
        pairs.append(("status", f"{r['status']}: {r.get('status_reason') or ''}".rstrip(": ")))
    if r.get("cycle_ns") and r.get("slot_ns"):
        pairs.append(("cycle", f"{format_ns(r['cycle_ns'])} of {r['cycle_ns'] // r['slot_ns']} slots "
                               f"of {format_ns(r['slot_ns'])}"))
    if r.get("match"):
        pairs.append(("match", " ".join(f"{k}={v}" for k, v in sorted(r["match"].items()))))
    pairs.append(("tx offsets", _offsets_text(list(r.get("tx_offsets_ns") or []))))
    hops = r.get("hops") or []
    rows = [(f"{h.get('src')}->{h.get('dst')}", len(h.get("slots") or []), compress_ints(h.get("slots") or []))
            for h in hops]
    table = render_table(["hop", "slots", "first slots"], rows, empty="(no hops)")
    indented = "\n".join("  " + line for line in table.splitlines())
    return "\n".join([head, render_pairs(pairs, indent=2), indented])


def _tenant_filter(args) -> int | None:
    tenant = getattr(args, "tenant", None)
    if tenant is not None and tenant < 0:
        raise CliError("--tenant must not be negative")
    return tenant


def _list(args) -> int:
    limit = getattr(args, "limit", None)
    if limit is not None and limit < 1:
        raise CliError("--limit must be at least 1")
    params = {"tenant": _tenant_filter(args), "src": getattr(args, "src", None), "dst": getattr(args, "dst", None),
              "status": getattr(args, "status", None), "limit": limit, "cursor": getattr(args, "cursor", None),
              "slots": "compact" if getattr(args, "compact", False) else None}
    with client_from_args(args) as api:
        answer = api.get("/v1/reservations", params=params)
    if wants_json(args):
        print_json(answer)
        return 0
    items = answer.get("reservations", []) if isinstance(answer, dict) else []
    rows = [(r.get("id"), r.get("tenant"), r.get("src"), r.get("dst"), format_bps(r.get("bandwidth_bps")),
             format_ns(r.get("latency_bound_ns")), format_ns(r.get("max_latency_ns")),
             max(len(r.get("path") or []) - 1, 0), _path_text(r.get("path") or []))
            for r in items]
    print(render_table(["id", "tenant", "src", "dst", "rate", "bound", "max", "hops", "path"], rows,
                       empty="(no reservations)"))
    if isinstance(answer, dict) and answer.get("next_cursor"):
        sys.stdout.flush()                      # the hint follows the table it continues
        print(f"dnctl: more: --cursor {answer['next_cursor']}", file=sys.stderr)
    return 0


def _show(args) -> int:
    with client_from_args(args) as api:
        r = api.get(f"/v1/reservations/{_quote(args.id)}")
    if wants_json(args):
        print_json(r)
        return 0
    print(render_reservation(r))
    return 0


def _delete(args) -> int:
    ids = list(args.id)
    if len(ids) == 1:       # one id: the single DELETE, as before
        with client_from_args(args) as api:
            api.delete(f"/v1/reservations/{_quote(ids[0])}")
        if wants_json(args):
            print_json({"id": ids[0], "deleted": True})
            return 0
        print(f"reservation {ids[0]} deleted")
        return 0
    if len(set(ids)) != len(ids):
        raise CliError("an id is given twice")
    with client_from_args(args) as api:
        deleted = api.release_many(ids)
    if wants_json(args):
        print_json({"deleted": deleted})
        return 0
    print(f"{len(deleted)} reservations deleted: {' '.join(deleted)}")
    return 0


def _quote(rid: str) -> str:
    """A reservation id as one URL path segment (ids are [A-Za-z0-9._-], but never trust input)."""
    if not rid or rid in (".", ".."):
        raise CliError(f"reservation id {rid!r} is not valid")
    return quote(rid, safe="")
