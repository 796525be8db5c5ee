"""Best-effort routing: the one hop-by-hop routing function of the project (pure).

Best effort follows a shortest-path tree by propagation towards each destination: every switch
forwards a frame for ``dst`` to its parent in that tree. One tree per destination makes the
per-switch choices loop-free, and the tie-break (the lexicographically smallest parent) makes them
deterministic. The controller's best-effort entries, the emulation's controller-less forwarding and
the runs that predict which path best effort takes all call these functions, so they agree.
"""

from __future__ import annotations

from typing import Iterable

import networkx as nx

__all__ = ["next_hops_towards", "next_hops", "best_effort_path"]

Link = tuple[str, str]


def next_hops_towards(graph: nx.DiGraph, dst: str, failed: Iterable[Link] | None = None) -> dict[str, str]:
    """For every node that can reach ``dst``, the next node towards it (``dst`` itself excluded).

    Parameters
    ----------
    graph : the topology's directed graph (edges carry ``propagation_ns``).
    dst : the destination node.
    failed : directed links to avoid.

    Examples
    --------
    >>> g = nx.DiGraph()
    >>> g.add_edge("a", "b", propagation_ns=1); g.add_edge("b", "c", propagation_ns=1)
    >>> g.add_edge("a", "c", propagation_ns=5)
    >>> next_hops_towards(g, "c")
    {'b': 'c', 'a': 'b'}
    >>> next_hops_towards(g, "c", failed=[("a", "b")])
    {'b': 'c', 'a': 'c'}
    """
    if failed:
        bad = frozenset(failed)
        graph = nx.subgraph_view(graph, filter_edge=lambda a, b: (a, b) not in bad)
    pred = nx.dijkstra_predecessor_and_distance(graph.reverse(copy=False), dst, weight="propagation_ns")[0]
    # in the reversed graph, pred[n] lists n's parents towards dst: pick a deterministic one
    return {n: sorted(ps)[0] for n, ps in pred.items() if ps}


def next_hops(graph: nx.DiGraph, failed: Iterable[Link] | None = None) -> dict[Link, str]:
    """``(node, destination) -> next node`` for every destination of ``graph``."""
    failed = list(failed or ())
    return {(node, dst): nxt for dst in graph.nodes for node, nxt in next_hops_towards(graph, dst, failed).items()}


def best_effort_path(graph: nx.DiGraph, src: str, dst: str, failed: Iterable[Link] | None = None) -> list[str]:
    """The path a best-effort frame from ``src`` to ``dst`` takes, following ``next_hops_towards``.

    Raises ``nx.NetworkXNoPath`` when ``dst`` cannot be reached.

    >>> g = nx.DiGraph()
    >>> g.add_edge("a", "b", propagation_ns=1); g.add_edge("b", "c", propagation_ns=1)
    >>> best_effort_path(g, "a", "c")
    ['a', 'b', 'c']
    """
    hops = next_hops_towards(graph, dst, failed)
    path = [src]
    while path[-1] != dst:
        nxt = hops.get(path[-1])
        if nxt is None:
            raise nx.NetworkXNoPath(f"no path from {src} to {dst}")
        path.append(nxt)
    return path
