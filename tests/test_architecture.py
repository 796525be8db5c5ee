"""The house rules on imports (tests/architecture.py reads the source; nothing is run), the checker's
own tests on tiny synthetic trees (so a green run means the rules hold, not that the checker is
blind), and the doctests of the pure modules (docstring examples stay true)."""

from __future__ import annotations

import doctest
import importlib
import json
import textwrap
from pathlib import Path

import pytest

import architecture

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def report():
    return architecture.analyse(REPO)


def _lines(items) -> str:
    return "\n".join(json.dumps(i) for i in items)


# ----- the rules, on this checkout ---------------------------------------------------------

def test_the_checker_sees_the_project(report):
    assert report["modules"] > 50
    assert "controller.ofshim" in report["os_ken_importers"]
    assert "topologies.mininet_topo" in report["mininet_importers"]


def test_no_import_cycles(report):
    assert report["cycles"] == [], "modules importing each other:\n" + _lines(report["cycles"])


def test_os_ken_only_in_the_shim_and_the_launcher(report):
    assert report["os_ken_outside_shim"] == [], _lines(report["os_ken_outside_shim"])
    assert set(report["os_ken_importers"]) <= architecture.OS_KEN_ALLOWED


def test_controller_topologies_and_schedules_never_import_tools(report):
    assert report["lower_layers_importing_tools"] == [], _lines(report["lower_layers_importing_tools"])


def test_pure_modules_reach_neither_os_ken_nor_mininet(report):
    assert report["impure_pure_modules"] == [], _lines(report["impure_pure_modules"])


@pytest.mark.parametrize("name", ["controller.core.scheduler", "controller.dataplane.routing", "topologies.model",
                                  "topologies.hosts", "topologies.emulated", "schedules.gcl"])
def test_the_pure_set_covers_the_pure_rooms(name):
    assert architecture.is_pure(name)
    assert (REPO / (name.replace(".", "/") + ".py")).exists()
    assert not architecture.is_pure("controller.ofshim") and not architecture.is_pure("topologies.mininet_topo")


def test_no_dynamic_imports_of_project_modules(report):
    assert report["dynamic_imports"] == [], "use plain imports:\n" + _lines(report["dynamic_imports"])


def test_no_import_if_present_fallbacks(report):
    assert report["import_fallbacks"] == [], _lines(report["import_fallbacks"])


def test_topologies_and_schedules_import_project_modules_at_top(report):
    local = [i for i in report["function_local_project_imports"]
             if i["module"].split(".")[0] in ("topologies", "schedules")]
    assert local == [], _lines(local)


def test_ok_is_the_conjunction_of_the_rules(report):
    assert report["ok"] == (not any(report[k] for k in architecture.RULES))


# ----- the checker finds real violations ---------------------------------------------------

def make_tree(root: Path, files: dict[str, str]) -> Path:
    """A miniature project: every package gets an empty __init__.py, then ``files`` are written."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(root).parents:
            if str(parent) != ".":
                (root / parent / "__init__.py").touch()
        path.write_text(textwrap.dedent(text))
    for pkg in architecture.ROOTS:
        (root / pkg).mkdir(exist_ok=True)
        (root / pkg / "__init__.py").touch()
    return root


CLEAN = {
    "controller/core/model.py": "import math\n",
    "controller/core/scheduler.py": "from .model import math\n",
    "controller/ofshim.py": "from os_ken.base import app_manager\nfrom controller.core import scheduler\n",
    "controller/launcher.py": "def run():\n    import os_ken.controller.controller\n    from controller import ofshim\n",
    "topologies/model.py": "import networkx\n",
    "topologies/mininet_topo.py": "from mininet.node import OVSSwitch\nfrom topologies.model import networkx\n",
    "schedules/gcl.py": "from controller.core.scheduler import math\n",
    "tools/emulation/network.py": "from topologies import mininet_topo\n",
    "tools/cli/main.py": "import importlib\nJSON = importlib.import_module('json')\n"
                         "from tools.emulation import network\n",
}


def test_a_clean_tree_passes(tmp_path):
    r = architecture.analyse(make_tree(tmp_path, CLEAN))
    assert r["ok"], architecture.to_json(r)
    assert r["os_ken_importers"] == ["controller.launcher", "controller.ofshim"]
    assert r["mininet_importers"] == ["topologies.mininet_topo"]
    assert r["function_local_project_imports"] == [
        {"module": "controller.launcher", "where": "controller/launcher.py:3", "imports": "controller"},
        {"module": "controller.launcher", "where": "controller/launcher.py:3", "imports": "controller.ofshim"}]


def test_a_cycle_is_reported_whatever_the_import_form(tmp_path):
    tree = make_tree(tmp_path, {**CLEAN,
                                "topologies/a.py": "from . import b\n",
                                "topologies/b.py": "def f():\n    from topologies.c import x\n",
                                "topologies/c.py": "import topologies.a\n",
                                "schedules/p.py": "from .q import y\n",
                                "schedules/q.py": "from schedules import p\n"})
    r = architecture.analyse(tree)
    assert r["cycles"] == [["schedules.p", "schedules.q"], ["topologies.a", "topologies.b", "topologies.c"]]
    assert not r["ok"]


def test_os_ken_in_a_pure_module_is_reported_twice(tmp_path):
    tree = make_tree(tmp_path, {**CLEAN, "controller/core/slots.py": "\n\nfrom os_ken.lib import hub\n"})
    r = architecture.analyse(tree)
    assert r["os_ken_outside_shim"] == [{"module": "controller.core.slots", "where": "controller/core/slots.py:3"}]
    assert r["impure_pure_modules"] == [{"module": "controller.core.slots",
                                         "chain": ["controller.core.slots", "os_ken"]}]
    assert not r["ok"]


def test_a_pure_module_reaching_mininet_through_another_module_names_the_chain(tmp_path):
    tree = make_tree(tmp_path, {**CLEAN, "schedules/plan.py": "from topologies.mininet_topo import OVSSwitch\n"})
    r = architecture.analyse(tree)
    assert r["impure_pure_modules"] == [{"module": "schedules.plan",
                                         "chain": ["schedules.plan", "topologies.mininet_topo", "mininet"]}]


def test_a_lower_layer_importing_tools_is_reported_with_its_line(tmp_path):
    tree = make_tree(tmp_path, {**CLEAN, "topologies/model.py": "import networkx\n\n\ndef probe():\n"
                                                                "    from tools.emulation import network\n"})
    r = architecture.analyse(tree)
    assert {"module": "topologies.model", "where": "topologies/model.py:5", "imports": "tools.emulation.network"} \
        in r["lower_layers_importing_tools"]
    assert {"module": "topologies.model", "where": "topologies/model.py:5", "imports": "tools.emulation.network"} \
        in r["function_local_project_imports"]
    # and it closes a cycle: tools.emulation.network imports topologies.mininet_topo -> topologies.model
    assert ["tools.emulation.network", "topologies.mininet_topo", "topologies.model"] in r["cycles"]


def test_dynamic_imports_of_project_modules_are_reported(tmp_path):
    tree = make_tree(tmp_path, {**CLEAN, "tools/cli/main.py": textwrap.dedent("""\
        import importlib
        from importlib import import_module
        JSON = importlib.import_module("json")
        VERB = importlib.import_module("tools.emulation.network")
        OTHER = import_module(".".join(["tools", "cli"]))
        """)})
    r = architecture.analyse(tree)
    assert r["dynamic_imports"] == [
        {"module": "tools.cli.main", "where": "tools/cli/main.py:4", "imports": "tools.emulation.network"},
        {"module": "tools.cli.main", "where": "tools/cli/main.py:5", "imports": "<computed>"}]


def test_import_if_present_fallbacks_are_reported_but_a_clean_error_is_not(tmp_path):
    tree = make_tree(tmp_path, {**CLEAN, "controller/service.py": textwrap.dedent("""\
        def schedule():
            try:
                from schedules.gcl import math
            except ImportError:
                return None
        try:
            from topologies import mininet_topo
        except ImportError as e:
            raise SystemExit(f"mininet missing: {e}")
        try:
            import yaml
        except ImportError:
            yaml = None
        """)})
    r = architecture.analyse(tree)
    assert r["import_fallbacks"] == [{"module": "controller.service", "where": "controller/service.py:3",
                                      "imports": "schedules.gcl"}]


def test_main_prints_json_and_fails_on_a_violation(tmp_path, capsys):
    clean = make_tree(tmp_path / "clean", CLEAN)
    assert architecture.main([str(clean)]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    dirty = make_tree(tmp_path / "dirty", {**CLEAN, "schedules/x.py": "import os_ken\n"})
    assert architecture.main([str(dirty)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["os_ken_outside_shim"][0]["module"] == "schedules.x"


# ----- docstring examples of the pure modules ----------------------------------------------

def _pure_modules_with_examples() -> list[str]:
    mods = architecture.discover(REPO)
    return sorted(n for n, m in mods.items() if architecture.is_pure(n) and ">>>" in m.path.read_text())


def test_routing_has_docstring_examples():
    assert "controller.dataplane.routing" in _pure_modules_with_examples()


@pytest.mark.parametrize("name", _pure_modules_with_examples())
def test_docstring_examples_hold(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0, f"{name}: {result.failed} of {result.attempted} failed"
