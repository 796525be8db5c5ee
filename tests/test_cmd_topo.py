"""``dnctl topo show | list | export``: output, JSON keys, warnings on stderr, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

from tools.cli.main import main
from topologies.summary import summarize
from topologies.loaders import list_builtin, load_topology
from topologies.model import Topology

_SCRIPT = Path(sys.executable).with_name("dnctl")
DNCTL = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "tools.cli.main"]


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_show_json_has_the_contract_keys_and_consistent_figures(capsys):
    rc, out, err = run(capsys, "topo", "show", "fntf40", "--json")
    assert rc == 0 and err == ""
    s = json.loads(out)
    for key in ("nodes", "links", "total_km", "hop_diameter", "max_path_ms", "min_degree", "node_names"):
        assert key in s
    topo = load_topology("fntf40")
    g = topo.undirected()
    assert s["nodes"] == 40 == len(s["node_names"])
    assert s["node_names"] == topo.nodes
    assert s["links"] == g.number_of_edges()
    assert abs(s["total_km"] - 55_000) < 550
    assert s["hop_diameter"] == nx.diameter(g)
    assert s["min_degree"] == min(d for _, d in g.degree()) >= 2
    a, b = s["max_path_endpoints"]
    worst_ns = nx.dijkstra_path_length(g, a, b, weight="propagation_ns")
    assert s["max_path_ms"] == pytest.approx(worst_ns / 1e6, abs=1e-3)
    # no pair is farther apart than the reported worst pair
    assert all(max(d.values()) <= worst_ns for _, d in nx.all_pairs_dijkstra_path_length(g, weight="propagation_ns"))
    assert s["max_path_ms"] == pytest.approx(s["max_path_km"] * 5e-3, rel=1e-3)


def test_show_human_output(capsys):
    rc, out, _ = run(capsys, "topo", "show", "FNTF40")
    assert rc == 0
    assert "nodes      40" in out
    assert "55,000 km total" in out
    assert "worst path" in out and " ms one way" in out
    assert "min 2" in out


def test_show_zoo_warnings_go_to_stderr(capsys):
    rc, out, err = run(capsys, "topo", "show", "cernet", "--json")
    assert rc == 0
    s = json.loads(out)  # stdout stays pure JSON
    assert s["nodes"] == 40
    assert "dnctl: warning: " in err and "Japan" in err and "Shijiazhuang" in err
    assert err.count("Shijiazhuang") == 1  # each warning once


def test_route_factor_option_scales_zoo_lengths(capsys):
    _, out1, _ = run(capsys, "topo", "show", "abilene", "--json", "--route-factor", "1.0")
    _, out2, _ = run(capsys, "topo", "show", "abilene", "--json", "--route-factor", "2.0")
    assert json.loads(out2)["total_km"] == pytest.approx(2 * json.loads(out1)["total_km"], abs=0.2)


def test_list(capsys):
    rc, out, _ = run(capsys, "topo", "list")
    assert rc == 0 and out.split() == list_builtin()
    rc, out, _ = run(capsys, "topo", "list", "--json")
    assert json.loads(out) == list_builtin()


@pytest.mark.filterwarnings("ignore::topologies.loaders.TopologyWarning")
def test_export_round_trip(tmp_path, capsys):
    out_file = tmp_path / "geant.json"
    rc, out, _ = run(capsys, "topo", "export", "geant2012", "--out", str(out_file))
    assert rc == 0 and str(out_file) in out
    again = Topology.from_dict(json.loads(out_file.read_text()))
    assert again.to_dict() == json.loads(load_topology("geant2012").to_json())
    rc, out, _ = run(capsys, "topo", "show", str(out_file), "--json")
    assert rc == 0 and json.loads(out)["nodes"] == 40


def test_export_to_unwritable_place(tmp_path, capsys):
    rc, _, err = run(capsys, "topo", "export", "abilene", "--out", str(tmp_path / "no" / "such" / "x.json"))
    assert rc == 2 and err.startswith("dnctl: ") and "cannot write" in err


@pytest.mark.parametrize("content,name", [("{oops", "bad.json"), ("<graphml", "bad.graphml"),
                                          ("x,y\n", "bad.csv"), (None, "missing.json")])
def test_broken_file_is_one_line_exit_2(tmp_path, capsys, content, name):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    rc, out, err = run(capsys, "topo", "show", str(path))
    assert rc == 2 and out == ""
    assert err.startswith(f"dnctl: {path}: ") and err.count("\n") == 1


def test_unknown_name_and_bad_route_factor_exit_2(capsys):
    rc, _, err = run(capsys, "topo", "show", "atlantis")
    assert rc == 2 and "fntf40" in err
    with pytest.raises(SystemExit) as e:
        main(["topo", "show", "abilene", "--route-factor", "-1"])
    assert e.value.code == 2


def test_summary_of_a_disconnected_topology():
    t = Topology("split")
    for n in "abcd":
        t.add_node(n)
    t.add_link("a", "b", 10)
    t.add_link("c", "d", 20)
    s = summarize(t)
    assert not s["connected"] and s["hop_diameter"] is None and s["max_path_ms"] is None
    assert s["links"] == 2 and s["total_km"] == 30 and s["bridges"] == 2


def test_installed_dnctl_never_prints_a_traceback(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"nodes": [{"name": "a"}], "links": [{"src": "a", "dst": "b"}]}')
    p = subprocess.run([*DNCTL, "topo", "show", str(bad)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert p.stderr.strip() == f"dnctl: {bad}: link a-b names unknown node 'b'"
    p = subprocess.run([*DNCTL, "topo", "show", "fntf40", "--json"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and json.loads(p.stdout)["nodes"] == 40
