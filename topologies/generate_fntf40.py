"""Generate ``fntf40``: a plausible 40-city Chinese fibre backbone, deterministically.

The real facility's node list and link map are not public, so this builds a plausible one from the
40 city centres in ``data/cities40.csv``, following the recipe of the project's reference facts
(docs/topologies.md):

1. **Planar mesh.** Project the cities onto a local equirectangular plane (x = R*lon*cos(mean lat),
   y = R*lat) and take the Delaunay triangulation by the empty-circumcircle test over every triple
   (O(n^4) on 40 points: well under a second, no scipy needed).
2. **Excluded corridors.** Drop the Delaunay edges listed in ``EXCLUDED`` with their reason: open sea
   (Bohai, Yellow Sea, East and South China Seas), high plateau (Tibet), desert/Gobi, or a line
   through a neighbouring country.
3. **Gabriel-like pruning.** Drop every link longer than ``PRUNE_MIN_KM`` great-circle for which some
   other city sees the link under an angle of at least ``PRUNE_ANGLE_DEG`` (that city is close to
   the line, so fibre would go through it: the link is replaced by the two shorter ones).
4. **Two links per city.** A city left with fewer than two links gets its shortest non-excluded
   missing link back (any city pair, shortest first) until it has two.
5. **Degree cap.** While a city has more than ``MAX_DEGREE`` links, remove its longest link whose
   removal leaves both ends with two links and creates no bridge.
6. **Survivability check.** The graph must be connected and bridgeless (2-edge-connected).
7. **One route factor.** Fibre km = great-circle km x F, with F chosen so that the total is
   ``TOTAL_FIBRE_KM`` (55,000 km, the published figure).
8. **Capacities.** 100 Gb/s everywhere, except 1.2 Tb/s trunks on the shortest fibre paths between
   the three largest hubs (Beijing, Shanghai, Guangzhou) and on Guangzhou-Shenzhen.

Run ``python -m topologies.generate_fntf40 [--out PATH]``; the default output is the committed
``topologies/data/fntf40.json`` (a test regenerates it and compares).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import sys
from pathlib import Path

import networkx as nx

from topologies.model import DEFAULT_CAPACITY_BPS, Topology, great_circle_km

DATA_DIR = Path(__file__).resolve().parent / "data"
CITIES_CSV = DATA_DIR / "cities40.csv"
DEFAULT_OUT = DATA_DIR / "fntf40.json"

TOTAL_FIBRE_KM = 55_000.0
PRUNE_MIN_KM = 500.0
PRUNE_ANGLE_DEG = 150.0
MAX_DEGREE = 7
TRUNK_CAPACITY_BPS = 1_200_000_000_000
EARTH_RADIUS_KM = 6371.0088

#: Delaunay corridors that a real fibre route would not take, with the reason.
EXCLUDED: dict[frozenset[str], str] = {
    frozenset(p): why for p, why in [
        (("Harbin", "Urumqi"), "line runs through Mongolia"),
        (("Hohhot", "Urumqi"), "Gobi desert"),
        (("Lhasa", "Urumqi"), "Changtang plateau and Kunlun range"),
        (("Kunming", "Lhasa"), "Hengduan mountains, high plateau"),
        (("Haikou", "Lhasa"), "line runs through Myanmar and Laos"),
        (("Haikou", "Kunming"), "Gulf of Tonkin and Vietnam"),
        (("Haikou", "Xiamen"), "South China Sea"),
        (("Haikou", "Shenzhen"), "South China Sea"),
        (("Harbin", "Shanghai"), "Yellow Sea"),
        (("Changchun", "Shanghai"), "Yellow Sea"),
        (("Shenyang", "Shanghai"), "Yellow Sea"),
        (("Dalian", "Shanghai"), "Yellow Sea"),
        (("Qingdao", "Shanghai"), "Yellow Sea"),
        (("Dalian", "Qingdao"), "Bohai Strait"),
        (("Dalian", "Tianjin"), "Bohai Sea"),
    ]
}

#: Hub pairs whose shortest fibre path is built as 1.2 Tb/s trunks.
TRUNK_PATHS = [("Beijing", "Shanghai"), ("Shanghai", "Guangzhou"), ("Guangzhou", "Beijing"),
               ("Guangzhou", "Shenzhen")]


def read_cities(path: Path = CITIES_CSV) -> list[dict]:
    """The cities in file order: dicts with name, lat, lon, role."""
    with open(path, newline="", encoding="utf-8") as f:
        return [{"name": r["name"], "lat": float(r["lat"]), "lon": float(r["lon"]), "role": r["role"]}
                for r in csv.DictReader(f)]


def project(cities: list[dict]) -> dict[str, tuple[float, float]]:
    """Local equirectangular projection in km (good enough for a triangulation of one country)."""
    lat0 = math.radians(sum(c["lat"] for c in cities) / len(cities))
    return {c["name"]: (math.radians(c["lon"]) * EARTH_RADIUS_KM * math.cos(lat0),
                        math.radians(c["lat"]) * EARTH_RADIUS_KM) for c in cities}


def delaunay_edges(xy: dict[str, tuple[float, float]]) -> set[frozenset[str]]:
    """Edges of the Delaunay triangulation: sides of triangles whose circumcircle holds no other point."""
    names = list(xy)
    edges: set[frozenset[str]] = set()
    for a, b, c in itertools.combinations(names, 3):
        (ax, ay), (bx, by), (cx, cy) = xy[a], xy[b], xy[c]
        d = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
        if abs(d) < 1e-9:  # collinear
            continue
        ux = ((ax * ax + ay * ay) * (by - cy) + (bx * bx + by * by) * (cy - ay) + (cx * cx + cy * cy) * (ay - by)) / d
        uy = ((ax * ax + ay * ay) * (cx - bx) + (bx * bx + by * by) * (ax - cx) + (cx * cx + cy * cy) * (bx - ax)) / d
        r2 = (ax - ux) ** 2 + (ay - uy) ** 2
        if all((xy[m][0] - ux) ** 2 + (xy[m][1] - uy) ** 2 >= r2 * (1 - 1e-12)
               for m in names if m not in (a, b, c)):
            edges |= {frozenset((a, b)), frozenset((b, c)), frozenset((a, c))}
    return edges


def _angle_deg(xy: dict[str, tuple[float, float]], at: str, a: str, b: str) -> float:
    """Angle a-at-b in degrees."""
    ax, ay = xy[a][0] - xy[at][0], xy[a][1] - xy[at][1]
    bx, by = xy[b][0] - xy[at][0], xy[b][1] - xy[at][1]
    cos = (ax * bx + ay * by) / (math.hypot(ax, ay) * math.hypot(bx, by))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def build_graph(cities: list[dict]) -> tuple[nx.Graph, list[str]]:
    """Steps 1-6: the undirected backbone with great-circle ``gc_km`` per edge, and a log of decisions."""
    names = [c["name"] for c in cities]
    order = {n: i for i, n in enumerate(names)}
    pos = {c["name"]: (c["lat"], c["lon"]) for c in cities}
    xy = project(cities)

    def gc(a: str, b: str) -> float:
        return great_circle_km(*pos[a], *pos[b])

    def key(e: frozenset[str]) -> tuple:  # deterministic order: by length, then by city order
        a, b = sorted(e, key=order.__getitem__)
        return (gc(a, b), order[a], order[b])

    log: list[str] = []
    tri = sorted(delaunay_edges(xy), key=key)
    log.append(f"delaunay: {len(tri)} edges")
    g = nx.Graph()
    g.add_nodes_from(names)
    for e in tri:
        a, b = sorted(e, key=order.__getitem__)
        if e in EXCLUDED:
            log.append(f"excluded {a}-{b} ({gc(a, b):.0f} km): {EXCLUDED[e]}")
            continue
        if gc(a, b) > PRUNE_MIN_KM:
            near = [c for c in names if c not in e and _angle_deg(xy, c, a, b) >= PRUNE_ANGLE_DEG]
            if near:
                log.append(f"pruned {a}-{b} ({gc(a, b):.0f} km): {near[0]} is close to the line")
                continue
        g.add_edge(a, b, gc_km=gc(a, b))

    for n in names:  # step 4
        while g.degree(n) < 2:
            cands = sorted((frozenset((n, m)) for m in names
                            if m != n and not g.has_edge(n, m) and frozenset((n, m)) not in EXCLUDED), key=key)
            a, b = sorted(cands[0], key=order.__getitem__)
            g.add_edge(a, b, gc_km=gc(a, b))
            log.append(f"added {a}-{b} ({gc(a, b):.0f} km): {n} needs two links")

    while True:  # step 5
        over = sorted((n for n in names if g.degree(n) > MAX_DEGREE), key=lambda n: (-g.degree(n), order[n]))
        if not over:
            break
        n = over[0]
        for e in sorted((frozenset(e) for e in g.edges(n)), key=key, reverse=True):
            a, b = sorted(e, key=order.__getitem__)
            if g.degree(a) <= 2 or g.degree(b) <= 2:
                continue
            g.remove_edge(a, b)
            if nx.has_bridges(g):
                g.add_edge(a, b, gc_km=gc(a, b))
                continue
            log.append(f"capped {a}-{b} ({gc(a, b):.0f} km): {n} had {g.degree(n) + 1} links")
            break
        else:
            raise RuntimeError(f"cannot cap the degree of {n}")

    if not nx.is_connected(g) or nx.has_bridges(g):  # step 6
        raise RuntimeError("generated backbone is not 2-edge-connected")
    return g, log


def generate(cities_csv: Path = CITIES_CSV) -> tuple[Topology, dict]:
    """Build the fntf40 Topology; also return figures (route factor, link count, decisions log)."""
    cities = read_cities(cities_csv)
    order = {c["name"]: i for i, c in enumerate(cities)}
    g, log = build_graph(cities)
    total_gc = sum(d["gc_km"] for _, _, d in g.edges(data=True))
    factor = TOTAL_FIBRE_KM / total_gc

    trunks: set[frozenset[str]] = set()
    for a, b in TRUNK_PATHS:
        path = nx.shortest_path(g, a, b, weight="gc_km")
        trunks |= {frozenset(p) for p in zip(path, path[1:])}

    topo = Topology("fntf40")
    for c in cities:
        topo.add_node(c["name"], c["lat"], c["lon"], c["role"])
    edges = sorted((tuple(sorted((u, v), key=order.__getitem__)) for u, v in g.edges()),
                   key=lambda e: (order[e[0]], order[e[1]]))
    for a, b in edges:
        cap = TRUNK_CAPACITY_BPS if frozenset((a, b)) in trunks else DEFAULT_CAPACITY_BPS
        topo.add_link(a, b, round(g.edges[a, b]["gc_km"] * factor, 3), cap)
    info = {"route_factor": round(factor, 4), "great_circle_km": round(total_gc, 1),
            "links": len(edges), "trunks": sorted("-".join(sorted(t, key=order.__getitem__)) for t in trunks),
            "log": log}
    return topo, info


def to_json(topo: Topology, info: dict) -> str:
    """Native JSON plus a ``generator`` block (ignored by the loader) that records how it was made."""
    data = topo.to_dict()
    data["generator"] = {
        "module": "topologies.generate_fntf40",
        "method": "Delaunay, excluded sea/plateau/desert corridors, Gabriel-like pruning "
                  f"(> {PRUNE_MIN_KM:.0f} km, angle >= {PRUNE_ANGLE_DEG:.0f} deg), >= 2 links per city, "
                  f"degree <= {MAX_DEGREE}, one route factor to {TOTAL_FIBRE_KM:.0f} km",
        "route_factor": info["route_factor"],
        "great_circle_km": info["great_circle_km"],
        "trunks_1200g": info["trunks"],
    }
    return json.dumps(data, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m topologies.generate_fntf40", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output JSON (default: {DEFAULT_OUT})")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every decision")
    args = ap.parse_args(argv)
    topo, info = generate()
    args.out.write_text(to_json(topo, info), encoding="utf-8")
    total = sum(l.km for l in topo.links())
    print(f"wrote {args.out}: {len(topo.nodes)} nodes, {info['links']} links, {total:.0f} km fibre, "
          f"route factor {info['route_factor']}, {len(info['trunks'])} trunks at 1.2 Tb/s", file=sys.stderr)
    if args.verbose:
        for line in info["log"]:
            print("  " + line, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
