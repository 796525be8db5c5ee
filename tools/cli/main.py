"""``dnctl``: the command line of detnet.

Each verb lives in its own module ``tools/cli/cmd_<verb>.py`` and exposes ``register(subparsers)``,
which adds its parser (and its actions' sub-parsers) and sets ``func`` (called with the parsed
args, returns an exit code). A new verb is one module, its name in ``VERBS`` (whose order is the
order of ``dnctl --help``) and one branch in ``load_verb``.

Errors: a verb raises ``CliError`` (one line, exit 2 by default) for bad usage or bad input; the
REST client's errors (``tools.client.ClientError``: the controller refused, exit 1; could not be
reached, exit 1; a malformed URL, exit 2) are shown the same way. ``main`` prints
``dnctl: <message>`` to stderr and exits with the error's code, never a traceback.

Start-up: ``main`` imports only the verb it runs (``load_verb``, plain imports inside one
function), so an offline verb such as ``dnctl tsnkit`` or ``dnctl topo`` does not pay for the
REST client (httpx), FastAPI, the emulation or scapy that other verbs need. ``dnctl``, ``dnctl
--help`` and an unknown verb build the full parser (every verb imported) to list them all.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from types import ModuleType

from tools.cli import CliError

#: the verbs, in the order they appear in --help; ``load_verb`` imports each one's module
VERBS = ("topo", "schedule", "tsnkit", "controller", "pki", "tenant", "reserve", "reservations", "paths",
         "events", "emulate", "probe", "verify", "simulate", "training", "demo", "bench", "chaos")


def load_verb(verb: str) -> ModuleType:
    """The module ``tools/cli/cmd_<verb>.py``, imported now (KeyError for an unknown verb).

    One plain import per verb, in a function, so that running a verb imports that verb only."""
    if verb == "topo":
        from tools.cli import cmd_topo as m
    elif verb == "schedule":
        from tools.cli import cmd_schedule as m
    elif verb == "tsnkit":
        from tools.cli import cmd_tsnkit as m
    elif verb == "controller":
        from tools.cli import cmd_controller as m
    elif verb == "pki":
        from tools.cli import cmd_pki as m
    elif verb == "tenant":
        from tools.cli import cmd_tenant as m
    elif verb == "reserve":
        from tools.cli import cmd_reserve as m
    elif verb == "reservations":
        from tools.cli import cmd_reservations as m
    elif verb == "paths":
        from tools.cli import cmd_paths as m
    elif verb == "events":
        from tools.cli import cmd_events as m
    elif verb == "emulate":
        from tools.cli import cmd_emulate as m
    elif verb == "probe":
        from tools.cli import cmd_probe as m
    elif verb == "verify":
        from tools.cli import cmd_verify as m
    elif verb == "simulate":
        from tools.cli import cmd_simulate as m
    elif verb == "training":
        from tools.cli import cmd_training as m
    elif verb == "demo":
        from tools.cli import cmd_demo as m
    elif verb == "bench":
        from tools.cli import cmd_bench as m
    elif verb == "chaos":
        from tools.cli import cmd_chaos as m
    else:
        raise KeyError(verb)
    return m


def verb_modules() -> list[ModuleType]:
    """Every verb module, in --help order (imports them all)."""
    return [load_verb(v) for v in VERBS]


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The dnctl parser with every verb, or with verb ``only`` (one of ``VERBS``) alone."""
    parser = _Parser(prog="dnctl", description="detnet: deterministic wide-area networking controller and tools")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    for verb in VERBS if only is None else (only,):
        load_verb(verb).register(sub)
    return parser


def _verb_of(argv: list[str]) -> str | None:
    """The verb named on the command line (its first word), when it is one of ``VERBS``."""
    return argv[0] if argv and argv[0] in VERBS else None


class Terminated(BaseException):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt (and, like it, not an
    ``Exception``), so every ``finally`` and context manager tears down what the verb started:
    emulations, controllers, VMs, host processes."""


def _terminate(_signum: int, _frame: Any) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_verb_of(words))
    args = parser.parse_args(words)
    args.argv = words   # what --vm hands to the guest
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CliError as e:
        print(f"dnctl: {e}", file=sys.stderr)
        return e.code
    except Exception as e:
        # the REST client's errors (tools.client.ClientError): only a verb that imported the client
        # can raise one, so the client (and httpx) is looked up, not imported, here
        client = sys.modules.get("tools.client")
        if client is None or not isinstance(e, client.ClientError):
            raise
        print(f"dnctl: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print("dnctl: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("dnctl: terminated", file=sys.stderr)
        return 143
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
