"""Figures of a topology: size, fibre, degrees, bridges, hop diameter and the slowest best route.

Pure: reads a ``Topology`` and returns a dict of plain values (what ``dnctl topo show`` prints and
``--json`` emits).
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

import networkx as nx

from topologies.model import Topology

__all__ = ["summarize"]


def summarize(topo: Topology) -> dict[str, Any]:
    """Figures of a topology: counts, fibre, degrees, hop diameter and the longest shortest path.

    The longest shortest path is taken over all pairs with propagation delay as the weight (the
    pair whose best route is slowest). Diameters are None when the graph is disconnected.
    """
    g = topo.undirected()
    links = topo.links()
    degrees = [d for _, d in g.degree()]
    connected = g.number_of_nodes() > 0 and nx.is_connected(g)
    out: dict[str, Any] = {
        "name": topo.name,
        "nodes": g.number_of_nodes(),
        "links": len(links),
        "total_km": round(sum(l.km for l in links), 1),
        "mean_link_km": round(statistics.fmean(l.km for l in links), 1) if links else 0.0,
        "connected": connected,
        "bridges": len(list(nx.bridges(g))) if g.number_of_edges() else 0,
        "hop_diameter": nx.diameter(g) if connected and g.number_of_nodes() > 1 else (0 if connected else None),
        "min_degree": min(degrees) if degrees else 0,
        "max_degree": max(degrees) if degrees else 0,
        "mean_degree": round(statistics.fmean(degrees), 2) if degrees else 0.0,
        "capacities_bps": {str(c): n for c, n in sorted(Counter(l.capacity_bps for l in links).items())},
        "max_path_ms": None, "max_path_km": None, "max_path_endpoints": None, "max_path": None,
        "node_names": topo.nodes,
    }
    if connected and g.number_of_nodes() > 1:
        best = (-1, None, None)
        for src, dist in nx.all_pairs_dijkstra_path_length(g, weight="propagation_ns"):
            dst = max(dist, key=lambda n: (dist[n], n))
            if dist[dst] > best[0]:
                best = (dist[dst], src, dst)
        ns, a, b = best
        path = nx.dijkstra_path(g, a, b, weight="propagation_ns")
        out.update(max_path_ms=round(ns / 1e6, 3), max_path_endpoints=[a, b], max_path=path,
                   max_path_km=round(sum(g.edges[x, y]["km"] for x, y in zip(path, path[1:])), 1))
    return out
