"""``dnctl reservations``: list, show and delete reservations through the REST API.

A tenant token sees its own reservations only; the admin token sees all (``--tenant N`` filters).
``render_reservation`` is also what ``dnctl reserve`` prints after an admission.
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from tools.cli import CliError
from tools.cli.clientargs import add_client_args, client_from_args, print_json, wants_json
from tools.cli.tables import compress_ints, render_pairs, render_table
from tools.cli.units import format_bps, format_bytes, format_ns

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
    add_client_args(q)
    q.set_defaults(func=_list)

    q = rsub.add_parser("show", help="show one reservation: path, bounds, slots, tx offsets")
    q.add_argument("id", metavar="ID", help="reservation id")
    add_client_args(q)
    q.set_defaults(func=_show)

    q = rsub.add_parser("delete", help="delete a reservation (frees its slots)")
    q.add_argument("id", metavar="ID", help="reservation id")
    add_client_args(q)
    q.set_defaults(func=_delete)

    p.set_defaults(func=_list)


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
    params = {"tenant": _tenant_filter(args)}
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
    with client_from_args(args) as api:
        api.delete(f"/v1/reservations/{_quote(args.id)}")
    if wants_json(args):
        print_json({"id": args.id, "deleted": True})
        return 0
    print(f"reservation {args.id} deleted")
    return 0


def _quote(rid: str) -> str:
    """A reservation id as one URL path segment (ids are [A-Za-z0-9._-], but never trust input)."""
    if not rid or rid in (".", ".."):
        raise CliError(f"reservation id {rid!r} is not valid")
    return quote(rid, safe="")
