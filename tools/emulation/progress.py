"""One progress logger for the emulation and the runs: ``name: message`` lines on stderr.

Why: the emulation, the scenario, the isolation audit, chaos and the REST bench each report what
they are doing while they do it; stdout stays for their results (a table or ``--json``). One
function makes those lines look alike and makes "quiet" one argument instead of a lambda each.

>>> say = progress("scenario", verbose=False)
>>> say("not printed")
"""

from __future__ import annotations

import sys
from typing import Callable

__all__ = ["Progress", "progress", "quiet"]

Progress = Callable[[str], None]


def quiet(_msg: str) -> None:
    """A progress logger that prints nothing."""


def progress(name: str, verbose: bool = True) -> Progress:
    """A logger printing ``name: message`` on stderr (flushed), or ``quiet`` when not ``verbose``."""
    if not verbose:
        return quiet

    def say(msg: str) -> None:
        print(f"{name}: {msg}", file=sys.stderr, flush=True)

    return say
