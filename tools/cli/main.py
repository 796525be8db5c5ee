"""``dnctl``: the command line of detnet.

Each verb lives in its own module ``tools/cli/cmd_<verb>.py`` and exposes ``register(subparsers)``,
which adds its parser (and its actions' sub-parsers) and sets ``func`` (called with the parsed
args, returns an exit code). A new verb is one module and one line in ``VERB_MODULES``: the order
of that list is the order of ``dnctl --help``.

Errors: a verb raises ``CliError`` (one line, exit 2 by default) for bad usage or bad input; the
REST client's errors (``tools.client.ClientError``: the controller refused, exit 1; could not be
reached, exit 1; a malformed URL, exit 2) are shown the same way. ``main`` prints
``dnctl: <message>`` to stderr and exits with the error's code, never a traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from tools.cli import (CliError, cmd_bench, cmd_chaos, cmd_controller, cmd_demo, cmd_emulate, cmd_events,
                       cmd_paths, cmd_pki, cmd_probe, cmd_reservations, cmd_reserve, cmd_schedule, cmd_simulate, cmd_tenant,
                       cmd_topo, cmd_training, cmd_tsnkit, cmd_verify)
from tools.client import ClientError

#: verb modules, in the order their verbs appear in --help
VERB_MODULES = [
    cmd_topo,
    cmd_schedule,
    cmd_tsnkit,
    cmd_controller,
    cmd_pki,
    cmd_tenant,
    cmd_reserve,
    cmd_reservations,
    cmd_paths,
    cmd_events,
    cmd_emulate,
    cmd_probe,
    cmd_verify,
    cmd_simulate,
    cmd_training,
    cmd_demo,
    cmd_bench,
    cmd_chaos,
]


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dnctl", description="detnet: deterministic wide-area networking controller and tools")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    for module in VERB_MODULES:
        module.register(sub)
    return parser


class Terminated(BaseException):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt (and, like it, not an
    ``Exception``), so every ``finally`` and context manager tears down what the verb started:
    emulations, controllers, VMs, host processes."""


def _terminate(_signum: int, _frame: Any) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)   # what --vm hands to the guest
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (CliError, ClientError) as e:
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
