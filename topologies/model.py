"""The Topology: one source of truth for the controller, the scheduler and the emulation.

A Topology wraps a networkx DiGraph. Every physical link appears as two directed edges
(one per direction, as slot tables and OpenFlow outputs are per direction), each with:

- ``capacity_bps`` (int): line rate of that direction,
- ``propagation_ns`` (int): one-way propagation delay,
- ``km`` (float): fibre length.

Nodes carry ``lat``, ``lon`` (floats or None) and ``role`` (str, may be empty).

The native JSON format (``to_dict``/``from_dict``)::

    {"name": str, "version": 1,
     "nodes": [{"name": str, "lat": float|null, "lon": float|null, "role": str}],
     "links": [{"src": str, "dst": str, "km": float, "capacity_bps": int,
                "propagation_ns": int (optional: derived at 5 us per km)}]}

Links in the file are undirected (one entry per physical link).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import networkx as nx

#: Light in fibre, refractive index about 1.47: 5 microseconds per km.
NS_PER_KM = 5_000
#: Default line rate of a backbone link when a file gives none: 100 Gb/s.
DEFAULT_CAPACITY_BPS = 100_000_000_000


class TopologyError(ValueError):
    """A topology file or object is invalid. The message is one line naming the source and the problem."""


def propagation_ns_for_km(km: float) -> int:
    """Propagation delay of ``km`` of fibre in nanoseconds (5 us per km), rounded to the nearest ns."""
    return int(round(km * NS_PER_KM))


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points given in degrees (haversine, mean Earth radius)."""
    r = 6371.0088
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class Link:
    """One undirected physical link, as stored in the native JSON file."""

    src: str
    dst: str
    km: float
    capacity_bps: int
    propagation_ns: int


class Topology:
    """A named network: nodes with coordinates and directed links with capacity and propagation."""

    def __init__(self, name: str, graph: nx.DiGraph | None = None):
        self.name = name
        self.graph: nx.DiGraph = graph if graph is not None else nx.DiGraph()

    # ----- construction -------------------------------------------------
    def add_node(self, name: str, lat: float | None = None, lon: float | None = None, role: str = "") -> None:
        """Add a node (a switch, one per city in the backbone)."""
        self.graph.add_node(name, lat=lat, lon=lon, role=role)

    def add_link(self, src: str, dst: str, km: float, capacity_bps: int = DEFAULT_CAPACITY_BPS,
                 propagation_ns: int | None = None) -> None:
        """Add a physical link as two directed edges with the same capacity and propagation."""
        if src == dst:
            raise TopologyError(f"{self.name}: link {src}-{dst} is a self-loop")
        for n in (src, dst):
            if n not in self.graph:
                raise TopologyError(f"{self.name}: link {src}-{dst} names unknown node {n!r}")
        prop = propagation_ns_for_km(km) if propagation_ns is None else int(propagation_ns)
        attrs = dict(km=float(km), capacity_bps=int(capacity_bps), propagation_ns=prop)
        self.graph.add_edge(src, dst, **attrs)
        self.graph.add_edge(dst, src, **attrs)

    # ----- queries ----------------------------------------------------------
    @property
    def nodes(self) -> list[str]:
        """Node names in insertion order."""
        return list(self.graph.nodes)

    def links(self) -> list[Link]:
        """Undirected physical links, each once (src is the endpoint added first)."""
        seen: set[frozenset[str]] = set()
        out: list[Link] = []
        for u, v, d in self.graph.edges(data=True):
            key = frozenset((u, v))
            if key in seen:
                continue
            seen.add(key)
            out.append(Link(u, v, d["km"], d["capacity_bps"], d["propagation_ns"]))
        return out

    def directed_links(self) -> list[tuple[str, str]]:
        """Every directed link (u, v)."""
        return list(self.graph.edges)

    def capacity_bps(self, u: str, v: str) -> int:
        return self.graph.edges[u, v]["capacity_bps"]

    def propagation_ns(self, u: str, v: str) -> int:
        return self.graph.edges[u, v]["propagation_ns"]

    def path_propagation_ns(self, path: Iterable[str]) -> int:
        """Sum of propagation delays along a node path."""
        p = list(path)
        return sum(self.graph.edges[a, b]["propagation_ns"] for a, b in zip(p, p[1:]))

    def has_node(self, name: str) -> bool:
        return name in self.graph

    def undirected(self) -> nx.Graph:
        """An undirected view with the same attributes (for degree, connectivity, diameter)."""
        return self.graph.to_undirected(as_view=False)

    # ----- native JSON ------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": 1,
            "nodes": [
                {"name": n, "lat": d.get("lat"), "lon": d.get("lon"), "role": d.get("role", "")}
                for n, d in self.graph.nodes(data=True)
            ],
            "links": [
                {"src": l.src, "dst": l.dst, "km": round(l.km, 3), "capacity_bps": l.capacity_bps,
                 "propagation_ns": l.propagation_ns}
                for l in self.links()
            ],
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "<topology>") -> "Topology":
        """Build a Topology from the native JSON structure; raise TopologyError naming ``source``."""
        if not isinstance(data, dict):
            raise TopologyError(f"{source}: expected a JSON object with 'nodes' and 'links'")
        nodes, links = data.get("nodes"), data.get("links")
        if not isinstance(nodes, list) or not isinstance(links, list):
            raise TopologyError(f"{source}: 'nodes' and 'links' must be lists")
        topo = cls(str(data.get("name") or Path(source).stem))
        for i, n in enumerate(nodes):
            if not isinstance(n, dict) or not isinstance(n.get("name"), str) or not n["name"]:
                raise TopologyError(f"{source}: node #{i} has no 'name'")
            if n["name"] in topo.graph:
                raise TopologyError(f"{source}: node {n['name']!r} appears twice")
            try:
                lat = None if n.get("lat") is None else float(n["lat"])
                lon = None if n.get("lon") is None else float(n["lon"])
            except (TypeError, ValueError):
                raise TopologyError(f"{source}: node {n['name']!r} has a non-numeric lat/lon") from None
            topo.add_node(n["name"], lat, lon, str(n.get("role") or ""))
        for i, l in enumerate(links):
            if not isinstance(l, dict) or not isinstance(l.get("src"), str) or not isinstance(l.get("dst"), str):
                raise TopologyError(f"{source}: link #{i} needs 'src' and 'dst' node names")
            try:
                km = float(l.get("km", 0.0))
                cap = int(l.get("capacity_bps", DEFAULT_CAPACITY_BPS))
                prop = None if l.get("propagation_ns") is None else int(l["propagation_ns"])
            except (TypeError, ValueError):
                raise TopologyError(f"{source}: link #{i} ({l['src']}-{l['dst']}) has a non-numeric field") from None
            if km < 0 or cap <= 0 or (prop is not None and prop < 0):
                raise TopologyError(f"{source}: link #{i} ({l['src']}-{l['dst']}) has a negative length, "
                                    "delay or a non-positive capacity")
            if topo.graph.has_edge(l["src"], l["dst"]):
                raise TopologyError(f"{source}: link {l['src']}-{l['dst']} appears twice")
            try:
                topo.add_link(l["src"], l["dst"], km, cap, prop)
            except TopologyError as e:
                raise TopologyError(f"{source}: {str(e).split(': ', 1)[-1]}") from None
        if topo.graph.number_of_nodes() == 0:
            raise TopologyError(f"{source}: no nodes")
        return topo

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent) + "\n"

    def __repr__(self) -> str:
        return f"Topology({self.name!r}, nodes={self.graph.number_of_nodes()}, links={len(self.links())})"
