"""``dnctl``: the command line of detnet.

Each verb lives in its own module under ``tools/`` and exposes ``register(subparsers)``, which adds
its parser and sets ``func`` (called with the parsed args, returns an exit code). Modules are
imported only when listed here, so a verb's heavy imports never slow the others.

Errors: a verb raises ``CliError`` (one line, exit 2 by default) for bad usage or bad input;
``main`` prints ``dnctl: <message>`` to stderr and exits with its code, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from tools.cli import CliError

#: verb modules, in the order their verbs appear in --help
VERB_MODULES = [
    "tools.cli.cmd_topo",
    "tools.cli.cmd_schedule",
    "tools.cli.cmd_tsnkit",
    "tools.cli.cmd_controller",
    "tools.cli.cmd_tenant",
    "tools.cli.cmd_reserve",
    "tools.cli.cmd_reservations",
    "tools.cli.cmd_paths",
    "tools.cli.cmd_events",
    "tools.cli.cmd_emulate",
    "tools.cli.cmd_probe",
    "tools.cli.cmd_verify",
    "tools.cli.cmd_training",
    "tools.cli.cmd_demo",
    "tools.cli.cmd_bench",
    "tools.cli.cmd_chaos",
]


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dnctl", description="detnet: deterministic wide-area networking controller and tools")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    for name in VERB_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # verb not built yet in this checkout
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CliError as e:
        print(f"dnctl: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print("dnctl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    # Run through the importable module, not __main__, so CliError raised by verbs is the same class.
    from tools.cli.main import main as _main

    sys.exit(_main())
