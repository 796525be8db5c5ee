"""The ``--match-*`` options of ``dnctl reserve``, ``dnctl paths`` and ``dnctl reservations modify``:
which packets use a reservation, added to a parser once and read back into the API's ``match``.

The check is the API's own (``controller.core.model.validate_match``: one rule in one place); a
refusal names the option, not the API field.
"""

from __future__ import annotations

import argparse
from typing import Any

from controller.core.model import InvalidRequest, validate_match
from tools.cli import CliError

__all__ = ["MATCH_OPTIONS", "add_match_arguments", "match_from_args"]

#: The option of each match field (what ``validate_match``'s field names on the command line).
MATCH_OPTIONS = {"ip_src": "--match-ip-src", "ip_dst": "--match-ip-dst", "ip_proto": "--match-ip-proto",
                 "udp_dst": "--match-udp-dst", "tcp_dst": "--match-tcp-dst", "ip_dscp": "--match-dscp"}
#: the protocol names --match-ip-proto takes besides a number
PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17}


def add_match_arguments(group: argparse._ActionsContainer) -> None:
    """Add the ``--match-*`` options to ``group`` (a parser or an argument group)."""
    group.add_argument("--match-ip-src", metavar="ADDR", help="IPv4 source address or network a.b.c.d[/n]")
    group.add_argument("--match-ip-dst", metavar="ADDR", help="IPv4 destination address or network a.b.c.d[/n]")
    group.add_argument("--match-ip-proto", metavar="PROTO", help="IP protocol: udp, tcp, icmp or a number")
    group.add_argument("--match-udp-dst", type=int, metavar="PORT", help="UDP destination port")
    group.add_argument("--match-tcp-dst", type=int, metavar="PORT", help="TCP destination port")
    group.add_argument("--match-dscp", type=int, metavar="DSCP", help="IP DSCP (0-63)")


def match_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The match of the ``--match-*`` options (empty when none was given), checked by
    ``validate_match``; a refusal is a ``CliError`` naming the option (exit 2)."""
    match: dict[str, Any] = {}
    for name, option in MATCH_OPTIONS.items():
        v = getattr(args, option[2:].replace("-", "_"), None)
        if v is not None:
            match[name] = v
    proto = match.get("ip_proto")
    if isinstance(proto, str):
        text = proto.strip().lower()
        try:
            match["ip_proto"] = PROTOCOLS[text] if text in PROTOCOLS else int(text)
        except ValueError:
            raise CliError(f"--match-ip-proto {proto!r}: expected udp, tcp, icmp or 0-255") from None
    try:
        return validate_match(match)
    except InvalidRequest as e:
        option = MATCH_OPTIONS.get(e.field.split(".", 1)[-1], "--match")
        given = getattr(args, option[2:].replace("-", "_"), None)
        raise CliError(f"{option}{f' {given!r}' if given is not None else ''}: {e.detail}") from None
