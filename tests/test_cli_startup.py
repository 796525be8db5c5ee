"""Start-up of the offline ``dnctl`` verbs (issue 13): building a verb's parser and printing its
``--help`` imports none of the heavy libraries (networkx, numpy, the REST client's httpx, scapy,
FastAPI, os_ken, Mininet) nor the scheduler; the verb's functions import them when they run.

These tests check what is imported, never how long it takes (timing belongs to ``make bench``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: top-level packages that an offline verb's --help must not import
HEAVY = ("networkx", "numpy", "httpx", "scapy", "fastapi", "os_ken", "mininet")
#: project modules that pull them in (or are slow themselves)
HEAVY_MODULES = ("controller.core.scheduler", "tools.client")

_PROBE = """
import json, sys
from tools.cli.main import main
try:
    main({argv!r})
except SystemExit:
    pass
heavy = set({heavy!r})
loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in {modules!r})
print(json.dumps(loaded))
"""


def _modules_after(argv: list[str]) -> list[str]:
    code = _PROBE.format(argv=argv, heavy=HEAVY, modules=HEAVY_MODULES)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [
    ["tsnkit", "--help"],
    ["topo", "--help"],
    ["topo", "show", "--help"],
    ["topo", "export", "--help"],
    ["schedule", "--help"],
    ["schedule", "gcl", "--help"],
    ["schedule", "export", "--help"],
    ["simulate", "--help"],
])
def test_offline_verb_help_imports_nothing_heavy(argv: list[str]) -> None:
    assert _modules_after(argv) == []


@pytest.mark.parametrize("verb", ["controller", "pki", "tenant", "reserve", "reservations", "paths", "events"])
def test_client_verb_help_imports_nothing_heavy(verb: str) -> None:
    """The REST client (httpx) is imported when a verb connects (``clientargs.client_from_args``),
    not to add the connection options."""
    assert _modules_after([verb, "--help"]) == []


def test_running_a_verb_still_imports_what_it_needs() -> None:
    """The lazy imports happen when the verb runs (the probe above would pass for a verb that did
    nothing at all)."""
    loaded = _modules_after(["topo", "show", "fntf40", "--json"])
    assert "networkx" in loaded


def test_help_defaults_match_the_libraries() -> None:
    """The defaults shown in --help are copied into the CLI modules (importing the libraries that
    define them would import networkx, numpy or httpx); they must stay equal to the originals."""
    from schedules import simulate as sim
    from tools import client
    from tools.cli import clientargs, cmd_simulate, cmd_topo
    from topologies import loaders

    assert cmd_topo.DEFAULT_ROUTE_FACTOR == loaders.DEFAULT_ROUTE_FACTOR
    assert cmd_simulate.GATE_MODES == sim.GATE_MODES
    assert cmd_simulate.DEFAULT_PROCESSING_NS == sim.DEFAULT_PROCESSING_NS
    assert cmd_simulate.MTU_BYTES == sim.MTU_BYTES
    assert clientargs.DEFAULT_URL == client.DEFAULT_URL
