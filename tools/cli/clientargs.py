"""What the controller verbs share: the connection options, ``--json`` output, option parsing.

``add_client_args`` gives a verb ``--url``, ``--token``, ``--ca`` and ``--json``; ``client_from_args`` opens
the ``tools.client.ApiClient`` they name (else ``$DNCTL_URL``/``$DNCTL_TOKEN``/
``$DNCTL_ADMIN_TOKEN``/``$DNCTL_CA``); ``parse_option`` reads a unit-bearing option (``50M``, ``30ms``) into a
number or a one-line ``CliError`` naming the option. The client library itself knows nothing of
argparse; this module is its command-line face.

Start-up: the client (and httpx) is imported by ``client_from_args``, when a verb connects, not at
module level, so adding the options and ``--help`` do not import it (tests/test_cli_startup.py).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any, Callable

from tools.cli import CliError

if TYPE_CHECKING:
    from tools.client import ApiClient

__all__ = ["add_client_args", "add_connection_args", "client_from_args", "parse_option", "print_json",
           "wants_json"]

#: ``tools.client.DEFAULT_URL``, copied so that --help need not import the client (and httpx);
#: tests/test_cli_startup.py checks that the two are equal
DEFAULT_URL = "http://127.0.0.1:8080"


def add_connection_args(parser: Any) -> None:
    """Add ``--url``, ``--token`` and ``--ca`` to a parser or an argument group (defaults suppressed: see
    ``add_client_args``)."""
    parser.add_argument("--url", default=argparse.SUPPRESS,
                        help=f"controller REST URL (default $DNCTL_URL or {DEFAULT_URL})")
    parser.add_argument("--token", default=argparse.SUPPRESS,
                        help="API token (default $DNCTL_TOKEN, else $DNCTL_ADMIN_TOKEN)")
    parser.add_argument("--ca", default=argparse.SUPPRESS, metavar="CA.pem",
                        help="over https://, verify the controller's certificate with this CA (default "
                             "$DNCTL_CA, else the system's CAs; verification is never skipped)")


def add_client_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--url``, ``--token``, ``--ca`` and ``--json`` to a verb's parser.

    Defaults are suppressed, so the options may be given at any level of nested subcommands
    (``dnctl reservations --json list`` and ``dnctl reservations list --json`` both work); read
    them with ``wants_json(args)`` and ``client_from_args(args)``.
    """
    g = parser.add_argument_group("controller connection")
    add_connection_args(g)
    g.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="print the API's JSON answer instead of a table")


def client_from_args(args: argparse.Namespace) -> ApiClient:
    """The client of ``--url``/``--token``/``--ca`` (when given), else of the environment
    (``ApiClient.from_env``).

    A malformed URL is a usage error: ``CliError`` (exit 2) naming ``--url``; an unreadable CA
    file one naming ``--ca``.
    """
    from tools.client import ApiClient, BadCa, BadUrl

    try:
        return ApiClient.from_env(getattr(args, "url", None), getattr(args, "token", None), getattr(args, "ca", None))
    except BadUrl as e:
        raise CliError(f"--url {e}") from None
    except BadCa as e:
        raise CliError(str(e)) from None


def wants_json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def print_json(obj: Any) -> None:
    """The API's answer as JSON on stdout (what ``--json`` prints)."""
    print(json.dumps(obj, indent=1, ensure_ascii=False))


def parse_option(parse: Callable[[str], int], text: str | None, option: str, *, positive: bool = True
                 ) -> int | None:
    """``parse(text)`` for a command-line option, None when not given; CliError (exit 2) naming it.

    ``parse`` is one of ``tools.cli.units.parse_bandwidth``/``parse_duration``/``parse_size``.
    """
    if text is None:
        return None
    try:
        value = parse(text)
    except ValueError as e:
        raise CliError(f"{option}: {e}") from None
    if positive and value <= 0:
        raise CliError(f"{option} {text!r}: must be greater than zero")
    return value
