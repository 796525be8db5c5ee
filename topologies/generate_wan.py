"""Generate a large synthetic wide-area topology, deterministically (for the admission scale bench).

The largest published TSN scheduling results handle about 10,000 flows on about 2,000 nodes; no
public backbone that size exists with link lengths, so the scale bench builds one (``wan``):

1. **Sites.** ``nodes`` points drawn uniformly (``numpy.random.default_rng(seed)``) over the
   rectangle of latitudes 22-45 N and longitudes 85-122 E (mainland China's extent, about
   3,500 x 2,500 km), named ``n0000``, ``n0001``, ...
2. **Links.** Every site is joined to its ``degree`` nearest sites by great-circle distance (the
   union of those pairs, so the mean degree is a little above ``degree``): a planar-looking
   regional mesh, as fibre follows neighbours.
3. **Connected.** While the graph has several components, the shortest link between the
   component of ``n0000`` and any other site is added.
4. **Lengths and rates.** Fibre km = great-circle km x ``route_factor`` (1.3), propagation
   5 us/km; every link 100 Gb/s.

``python -m topologies.generate_wan --nodes 2000 --out FILE`` writes it in the native JSON format
(``dnctl bench admission --topology FILE`` loads it); the bench calls ``wan`` directly.
"""

from __future__ import annotations

import argparse
import json
import sys

import networkx as nx
import numpy as np

from topologies.model import DEFAULT_CAPACITY_BPS, Topology

EARTH_RADIUS_KM = 6371.0088
LAT_RANGE = (22.0, 45.0)
LON_RANGE = (85.0, 122.0)


def _great_circle_km(lat: np.ndarray, lon: np.ndarray, i: int) -> np.ndarray:
    """Great-circle km from site i to every site (haversine, vectorised)."""
    p1, p2 = np.radians(lat[i]), np.radians(lat)
    dp, dl = p2 - p1, np.radians(lon - lon[i])
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(a, 1.0)))


def wan(nodes: int = 2000, *, degree: int = 3, seed: int = 1, route_factor: float = 1.3,
        capacity_bps: int = DEFAULT_CAPACITY_BPS) -> Topology:
    """The synthetic topology of the module docstring, named ``wan<nodes>``."""
    if nodes < 2 or degree < 1:
        raise ValueError("need at least 2 nodes and degree 1")
    rng = np.random.default_rng(seed)
    lat = rng.uniform(*LAT_RANGE, nodes)
    lon = rng.uniform(*LON_RANGE, nodes)
    names = [f"n{i:04d}" for i in range(nodes)]
    topo = Topology(f"wan{nodes}")
    for n, a, o in zip(names, lat, lon):
        topo.add_node(n, round(float(a), 5), round(float(o), 5), "site")
    k = min(degree, nodes - 1)
    dist = [_great_circle_km(lat, lon, i) for i in range(nodes)]
    pairs: dict[tuple[int, int], float] = {}
    for i in range(nodes):
        d = dist[i].copy()
        d[i] = np.inf
        for j in np.argsort(d, kind="stable")[:k]:
            pairs[(min(i, int(j)), max(i, int(j)))] = float(dist[i][j])
    ug = nx.Graph()
    ug.add_nodes_from(range(nodes))
    ug.add_edges_from(pairs)
    while not nx.is_connected(ug):
        comp = np.array(sorted(nx.node_connected_component(ug, 0)))
        outside = np.setdiff1d(np.arange(nodes), comp)
        best = min(((float(dist[i][outside].min()), i, int(outside[dist[i][outside].argmin()])) for i in comp))
        _, i, j = best
        pairs[(min(i, j), max(i, j))] = float(dist[i][j])
        ug.add_edge(i, j)
    for (i, j), km in sorted(pairs.items()):
        topo.add_link(names[i], names[j], round(km * route_factor, 3), capacity_bps)
    return topo


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m topologies.generate_wan", description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=2000, help="sites (default 2000)")
    ap.add_argument("--degree", type=int, default=3, help="nearest neighbours joined to each site (default 3)")
    ap.add_argument("--seed", type=int, default=1, help="seed (default 1)")
    ap.add_argument("--out", required=True, help="native JSON file to write")
    args = ap.parse_args(argv)
    try:
        topo = wan(args.nodes, degree=args.degree, seed=args.seed)
    except ValueError as e:
        print(f"generate_wan: {e}", file=sys.stderr)
        return 2
    with open(args.out, "w") as f:
        json.dump(topo.to_dict(), f)
    print(f"wrote {args.out}: {topo.graph.number_of_nodes()} nodes, {len(topo.links())} links")
    return 0


if __name__ == "__main__":
    sys.exit(main())
