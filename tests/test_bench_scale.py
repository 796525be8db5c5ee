"""The speed work of issue 13: what it added must behave (figures themselves are never asserted).

- candidate paths from the per-source shortest-path tree equal Yen's algorithm's, ties included,
  with and without failed links;
- the no-wait fast path picks exactly what the full chain search picks;
- the generated WAN is deterministic, connected and loads through ``--topology wan<N>``;
- ``dnctl`` imports only the verb it runs (no httpx, FastAPI, scapy for ``dnctl tsnkit``);
- ``dnctl bench all`` runs its parts and prints each figure beside its target.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import networkx as nx
import numpy as np
import pytest

from controller.core.paths import PathFinder
from controller.core.slots import chain, feasible_mask, feasible_starts, first_no_wait
from tools.cli import main as cli
from tools.runs import bench_all
from topologies.generate_wan import wan
from topologies.loaders import load_topology
from topologies.model import Topology

DNCTL = [sys.executable, "-m", "tools.cli.main"]


def yen(g, s, d, k, failed=()):
    if failed:
        f = frozenset(failed)
        g = nx.subgraph_view(g, filter_edge=lambda a, b: (a, b) not in f)
    out = []
    try:
        for p in nx.shortest_simple_paths(g, s, d, weight="propagation_ns"):
            out.append(tuple(p))
            if len(out) >= k:
                break
    except (nx.NetworkXNoPath, nx.NodeNotFound):
        pass
    return out


def tied_square() -> Topology:
    """A-B-D and A-C-D exactly as long: the shortest path is not unique."""
    t = Topology("tied")
    for n in "ABCDE":
        t.add_node(n)
    for a, b in [("A", "B"), ("B", "D"), ("A", "C"), ("C", "D"), ("D", "E")]:
        t.add_link(a, b, 100.0)
    return t


@pytest.mark.parametrize("name", ["fntf40", "Cernet", "tied"])
def test_candidates_equal_yens_algorithm(name):
    topo = tied_square() if name == "tied" else load_topology(name)
    g = topo.graph
    nodes = list(g.nodes)[:20]
    for k in (1, 2, 4):
        pf = PathFinder(g, k)
        for s, d in itertools.permutations(nodes, 2):
            assert list(pf.candidates(s, d)) == yen(g, s, d, k), (s, d)
        failed = list(g.edges)[:3]
        for e in failed:
            pf.fail(*e)
        for s, d in itertools.permutations(nodes, 2):
            assert list(pf.candidates(s, d)) == yen(g, s, d, k, failed), (s, d, "failed")


def test_tied_shortest_paths_fall_back_to_yen():
    pf = PathFinder(tied_square().graph, 4)
    assert pf._unique_shortest("A", "D") is None          # two equally short paths
    assert pf._unique_shortest("D", "E") == ("D", "E")
    assert list(pf.candidates("A", "E")) == yen(tied_square().graph, "A", "E", 4)


def test_tree_cache_is_bounded_and_recomputes_the_same():
    g = wan(60, seed=3).graph
    pf = PathFinder(g, 1)
    pf.TREES_KEPT = 5
    nodes = sorted(g.nodes)
    first = {(s, d): list(pf.candidates(s, d)) for s, d in itertools.permutations(nodes[:12], 2)}
    assert len(pf._trees) <= 5
    pf._cache.clear()
    again = {(s, d): list(pf.candidates(s, d)) for s, d in itertools.permutations(nodes[:12], 2)}
    assert again == first == {k: yen(g, *k, 1) for k in first}


def test_no_wait_fast_path_is_what_the_chain_would_pick():
    rng = np.random.default_rng(5)
    hits = 0
    for trial in range(300):
        p = int(rng.choice([10, 40, 100]))
        hops = int(rng.integers(1, 6))
        ns = [int(rng.integers(1, 4)) for _ in range(hops)]
        gaps = [int(rng.integers(0, 2 * p)) for _ in range(hops)]
        load = rng.uniform(0.1, 0.9)
        masks = [feasible_mask(rng.random(p) < load, n) for n in ns]
        if not all(m.any() for m in masks):
            continue
        shifts = [0]
        for n, gap in zip(ns[:-1], gaps[:-1]):
            shifts.append(shifts[-1] + n + gap)
        r0 = first_no_wait(masks, shifts)
        hops_in = [(np.flatnonzero(m), n, gap) for m, n, gap in zip(masks, ns, gaps)]
        S, failed = chain(hops_in[0][0], hops_in, p, 4)
        if r0 >= 0:
            hits += 1
            lat = S[:, -1] - S[:, 0]
            best = S[int(np.argmin(lat))]
            assert list(best) == [r0 + s for s in shifts]
        elif failed < 0:
            assert (S[:, -1] - S[:, 0]).min() > shifts[-1]    # every surviving row waits somewhere
    assert hits > 50


def test_feasible_starts_is_the_mask_s_residues():
    folded = np.array([0, 0, 1, 0, 0, 0, 1, 1, 0, 0], dtype=bool)
    assert feasible_starts(folded, 2).tolist() == [0, 3, 4, 8, 9]       # 9: wraps to 0
    assert feasible_starts(folded, 11).tolist() == []


def test_generated_wan_is_deterministic_and_connected():
    a, b = wan(300, seed=2), wan(300, seed=2)
    assert a.to_dict() == b.to_dict()
    assert a.to_dict() != wan(300, seed=3).to_dict()
    ug = a.undirected()
    assert ug.number_of_nodes() == 300 and nx.is_connected(ug)
    assert min(d for _, d in ug.degree()) >= 3
    assert all(d["capacity_bps"] == 100_000_000_000 and d["propagation_ns"] > 0 for _, _, d in a.graph.edges(data=True))


def test_bench_admission_on_a_generated_wan():
    r = subprocess.run(DNCTL + ["bench", "admission", "--topology", "wan50", "--reservations", "40", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["topology"] == "wan50" and out["admitted"] + out["rejected"] == 40 and out["cpu_s"] >= 0
    bad = subprocess.run(DNCTL + ["bench", "admission", "--topology", "wan1"], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "2 to 100000" in bad.stderr


def test_an_offline_verb_imports_only_itself():
    code = ("import sys; from tools.cli import main; main.build_parser(main._verb_of(['tsnkit'])); "
            "print(sorted(m for m in ('httpx', 'fastapi', 'scapy', 'tools.client', 'tools.emulation.ovs', "
            "'tools.cli.cmd_bench') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_every_verb_loads_and_registers_its_own_name():
    for verb in cli.VERBS:
        parser = cli.build_parser(verb)
        sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        assert list(sub.choices) == [verb]
    with pytest.raises(KeyError):
        cli.load_verb("frobnicate")


def test_a_client_error_still_exits_1_in_one_line():
    r = subprocess.run(DNCTL + ["reservations", "--url", "http://127.0.0.1:1", "--token", "x"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_bench_all_prints_figures_beside_targets():
    r = bench_all.run_all(tsnkit=False, rest=False, points=(("fntf40", 50, 0.5), ("wan30", 20, None)))
    a = r["admission"]
    assert [(x["topology"], x["reservations"]) for x in a] == [("fntf40", 50), ("wan30", 20)]
    assert a[0]["target_total_s"] == 0.5 and a[0]["admitted"] + a[0]["rejected"] == 50
    assert {s["verb"] for s in r["startup"]} == set(bench_all.STARTUP_VERBS)
    assert all(s["wall_s"] > 0 and s["target_s"] == 0.2 for s in r["startup"])
    table = bench_all.text_table(r)
    assert "admission fntf40 50 total" in table and "<= 0.5 s" in table
    assert "start-up dnctl tsnkit --help" in table and "<= 0.2 s" in table


def test_bench_all_table_of_a_tsnkit_run():
    """The TSNKit rows of the table, from a real run on the smallest instance TSNKit generates."""
    r = bench_all.run_all(admission=False, startup=False, rest=False, streams=(8,), topos=("ring",), timeout=300)
    t = r["tsnkit"]
    row = t["instances"][0]
    assert row["instance"] == "ring8-8" and set(row) >= {"dnctl", "ls", "dt", "speedup"}
    assert row["dnctl"]["status"] == "complete" and row["dnctl"]["sim_errors"] == "0"
    assert t["sim_errors_dnctl"] == 0
    table = bench_all.text_table(r)
    assert "tsnkit ring8-8 dnctl wall" in table and "ls " in table and "dt " in table
