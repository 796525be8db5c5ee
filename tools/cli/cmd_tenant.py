"""``dnctl tenant``: create, list, show and change tenants through the REST API (admin token).

A tenant's token is printed once, by ``tenant create``: the controller keeps only its hash.
"""

from __future__ import annotations

import argparse
from typing import Any

from tools.cli import CliError
from tools.cli.clientargs import add_client_args, client_from_args, parse_option, print_json, wants_json
from tools.cli.tables import render_pairs, render_table
from tools.cli.units import format_bps, parse_bandwidth

_UNLIMITED = ("unlimited", "none", "inf")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tenant", help="manage tenants (admin token)",
                       description="Create, list, show, change and delete tenants on a running controller. "
                                   "All actions need the admin token ($DNCTL_ADMIN_TOKEN or --token) but "
                                   "'me' and a tenant's own 'rotate-token'.")
    add_client_args(p)
    tsub = p.add_subparsers(dest="tenant_cmd", metavar="ACTION")

    q = tsub.add_parser("create", help="create a tenant and print its token (shown once)",
                        description="Create a tenant. Its API token is printed once: keep it.")
    q.add_argument("name", metavar="NAME", help="tenant name (unique)")
    q.add_argument("--quota", metavar="RATE",
                   help="bandwidth quota over all its reservations, e.g. 10G (default unlimited)")
    q.add_argument("--max-reservations", type=int, metavar="N",
                   help="most reservations it may hold at once (default unlimited)")
    add_client_args(q)
    q.set_defaults(func=_create)

    q = tsub.add_parser("list", help="list tenants with their quotas and usage")
    add_client_args(q)
    q.set_defaults(func=_list)

    q = tsub.add_parser("show", help="show one tenant")
    q.add_argument("id", type=int, metavar="ID", help="tenant id")
    add_client_args(q)
    q.set_defaults(func=_show)

    q = tsub.add_parser("set", help="change a tenant's quotas",
                        description="Change a tenant's quotas; 'unlimited' removes a limit.")
    q.add_argument("id", type=int, metavar="ID", help="tenant id")
    q.add_argument("--quota", metavar="RATE", help="bandwidth quota, e.g. 20G, or 'unlimited'")
    q.add_argument("--max-reservations", metavar="N", help="reservation count limit, or 'unlimited'")
    add_client_args(q)
    q.set_defaults(func=_set)

    q = tsub.add_parser("delete", help="delete a tenant: its reservations released, its token revoked",
                        description="Delete a tenant (admin token): every reservation of it is released "
                                    "(its entries leave the switches) and its token stops working.")
    q.add_argument("id", type=int, metavar="ID", help="tenant id")
    q.add_argument("--yes", action="store_true", help="do it even when the tenant holds reservations")
    add_client_args(q)
    q.set_defaults(func=_delete)

    q = tsub.add_parser("rotate-token", help="give a tenant a new token (the old one stops working at once)",
                        description="A new token for the tenant, printed once; the old one is refused from "
                                    "now on. The admin token, or the tenant's own.")
    q.add_argument("id", type=int, metavar="ID", help="tenant id")
    add_client_args(q)
    q.set_defaults(func=_rotate)

    q = tsub.add_parser("me", help="the calling tenant's quotas and usage (a tenant token)")
    add_client_args(q)
    q.set_defaults(func=_me)

    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _quota(text: str | None, allow_unlimited: bool) -> tuple[bool, int | None]:
    """(given, bit/s or None for unlimited) of a --quota option."""
    if text is None:
        return False, None
    if allow_unlimited and text.strip().lower() in _UNLIMITED:
        return True, None
    return True, parse_option(parse_bandwidth, text, "--quota")


def _count(text: Any, allow_unlimited: bool) -> tuple[bool, int | None]:
    """(given, count or None for unlimited) of a --max-reservations option."""
    if text is None:
        return False, None
    if isinstance(text, int):
        value = text
    elif allow_unlimited and text.strip().lower() in _UNLIMITED:
        return True, None
    else:
        try:
            value = int(text)
        except ValueError:
            raise CliError(f"--max-reservations {text!r}: expected a whole number or 'unlimited'") from None
    if value < 0:
        raise CliError(f"--max-reservations {value}: must not be negative")
    return True, value


def _reservation_count(t: dict[str, Any]) -> Any:
    n = t.get("reservations")
    return len(n) if isinstance(n, list) else n


def _limit(v: Any) -> str:
    return "unlimited" if v is None else str(v)


def _create(args) -> int:
    _, quota = _quota(args.quota, allow_unlimited=False)
    _, maxr = _count(args.max_reservations, allow_unlimited=False)
    body = {"name": args.name, "quota_bps": quota, "max_reservations": maxr}
    with client_from_args(args) as api:
        t = api.post("/v1/tenants", body)
    if wants_json(args):
        print_json(t)
        return 0
    print(f"tenant {t.get('id')} {t.get('name')!r} created: quota {format_bps(t.get('quota_bps'))}, "
          f"max reservations {_limit(t.get('max_reservations'))}")
    print(f"token: {t.get('token')}")
    print("keep this token now: it is shown only once (the controller stores only its hash).")
    print(f"use it with: export DNCTL_TOKEN={t.get('token')}")
    return 0


def _list(args) -> int:
    with client_from_args(args) as api:
        answer = api.get("/v1/tenants")
    if wants_json(args):
        print_json(answer)
        return 0
    tenants = answer.get("tenants", []) if isinstance(answer, dict) else []
    rows = [(t.get("id"), t.get("name"), format_bps(t.get("quota_bps")), format_bps(t.get("reserved_bps") or 0),
             _reservation_count(t), _limit(t.get("max_reservations"))) for t in tenants]
    print(render_table(["id", "name", "quota", "reserved", "reservations", "max"], rows, empty="(no tenants)"))
    return 0


def _show_tenant(t: dict[str, Any], more: list[tuple[str, Any]] | None = None) -> None:
    pairs = [("id", t.get("id")), ("name", t.get("name")), ("quota", format_bps(t.get("quota_bps")))]
    if "reserved_bps" in t:
        reserved = format_bps(t.get("reserved_bps") or 0)
        if t.get("quota_bps"):
            reserved += f" ({100 * (t.get('reserved_bps') or 0) / t['quota_bps']:.1f}% of quota)"
        pairs.append(("reserved", reserved))
    if "reservations" in t:
        pairs.append(("reservations", _reservation_count(t)))
    pairs.append(("max reservations", _limit(t.get("max_reservations"))))
    print(render_pairs(pairs + list(more or [])))


def _show(args) -> int:
    with client_from_args(args) as api:
        t = api.get(f"/v1/tenants/{args.id}")
    if wants_json(args):
        print_json(t)
        return 0
    _show_tenant(t)
    return 0


def _set(args) -> int:
    body: dict[str, Any] = {}
    given, quota = _quota(args.quota, allow_unlimited=True)
    if given:
        body["quota_bps"] = quota
    given, maxr = _count(args.max_reservations, allow_unlimited=True)
    if given:
        body["max_reservations"] = maxr
    if not body:
        raise CliError("tenant set: give --quota and/or --max-reservations")
    with client_from_args(args) as api:
        t = api.patch(f"/v1/tenants/{args.id}", body)
    if wants_json(args):
        print_json(t)
        return 0
    _show_tenant(t)
    return 0


def _delete(args) -> int:
    with client_from_args(args) as api:
        if not args.yes:
            t = api.get(f"/v1/tenants/{args.id}")
            if t.get("reservations"):
                raise CliError(f"tenant {args.id} ({t.get('name')}) holds {t.get('reservations')} reservations: "
                               "give --yes to release them with it")
        answer = api.delete_tenant(args.id)
    if wants_json(args):
        print_json(answer)
        return 0
    released = answer.get("released") or []
    print(f"tenant {answer.get('id')} {answer.get('name')!r} deleted; {len(released)} reservations released"
          + (f": {', '.join(released)}" if released else ""))
    return 0


def _rotate(args) -> int:
    with client_from_args(args) as api:
        token = api.rotate_tenant_token(args.id)
    if wants_json(args):
        print_json({"id": args.id, "token": token})
        return 0
    print(f"tenant {args.id}: new token: {token}")
    print("keep this token now: it is shown only once; the old token no longer works.")
    return 0


def _me(args) -> int:
    with client_from_args(args) as api:
        t = api.my_tenant()
    if wants_json(args):
        print_json(t)
        return 0
    left = t.get("available_bps")
    _show_tenant(t, [("available", "unlimited" if left is None else format_bps(left)),
                     ("reservations left", _limit(t.get("reservations_left")))])
    return 0
