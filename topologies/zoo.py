"""Internet Topology Zoo GraphML to Topology.

Zoo files (Knight et al., IEEE JSAC 2011, CC BY 4.0) are hand-drawn maps and messy; this loader
copes and says what it did (each fix-up is a TopologyWarning, see ``topologies.loaders``):

- **Node names** come from ``label``. Nodes without a label (or labelled ``None``, as Cogentco's
  hyperedge points are) are named ``node<id>``. Two nodes with the same label at the same place
  (coordinates within 1 km, as Cernet's two Shijiazhuang entries) are **merged** into one node with
  the union of their links; same label at different or unknown places are **disambiguated** as
  ``Label-2``, ``Label-3``...
- **Duplicate edges** (the file is read as a multigraph) are bundled into one link whose capacity is
  the sum of the parallel links; self-loops (possible after a merge) are dropped.
- **Length** = great-circle km between the endpoints x ``route_factor`` (default 1.34). A link with an
  endpoint lacking ``Latitude``/``Longitude`` gets the **median length** of the links whose length is
  known (100 km if none is); such nodes are kept, without coordinates, and named in a warning.
- **Capacity** = ``LinkSpeedRaw`` (bit/s) where present, else ``LinkSpeed`` x ``LinkSpeedUnits``, else an
  ``OC-n`` label in ``LinkType``/``LinkLabel`` (n x 51.84 Mb/s), else ``default_capacity_bps``.
- **Role**: ``external`` for nodes the Zoo marks ``Internal=0`` (peerings, other networks), else empty.
"""

from __future__ import annotations

import re
import statistics
import xml.etree.ElementTree as ET
from pathlib import Path

import networkx as nx

from topologies.fileio import DEFAULT_ROUTE_FACTOR, read_text, warn
from topologies.model import DEFAULT_CAPACITY_BPS, Topology, TopologyError, great_circle_km

#: Two same-label nodes closer than this are one place (merged).
SAME_PLACE_KM = 1.0
#: Length used for links with an uncoordinated endpoint when no link has a known length.
FALLBACK_KM = 100.0

_UNITS = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_OC = re.compile(r"\bOC-?(\d+)", re.IGNORECASE)


def _coord(d: dict) -> tuple[float, float] | None:
    lat, lon = d.get("Latitude"), d.get("Longitude")
    try:
        if lat is None or lon is None:
            return None
        lat, lon = float(lat), float(lon)
    except (TypeError, ValueError):
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return lat, lon


def link_speed_bps(d: dict) -> float | None:
    """The speed of one GraphML edge in bit/s, or None if the file gives none."""
    raw = d.get("LinkSpeedRaw")
    try:
        if raw is not None and float(raw) > 0:
            return float(raw)
    except (TypeError, ValueError):
        pass
    speed, units = d.get("LinkSpeed"), str(d.get("LinkSpeedUnits") or "").strip().upper()[:1]
    try:
        if speed is not None and units in _UNITS and float(speed) > 0:
            return float(speed) * _UNITS[units]
    except (TypeError, ValueError):
        pass
    for key in ("LinkType", "LinkLabel"):
        m = _OC.search(str(d.get(key) or ""))
        if m and int(m.group(1)) > 0:
            return int(m.group(1)) * 51.84e6
    return None


def _read_multigraph(path: Path | str, source: str) -> nx.MultiGraph:
    read_text(path, source)  # missing / unreadable / not text: the common one-line errors
    try:
        g = nx.read_graphml(str(path), force_multigraph=True)
    except ET.ParseError as e:
        raise TopologyError(f"{source}: not valid XML ({e})") from None
    except (nx.NetworkXError, KeyError, ValueError, TypeError, AttributeError) as e:
        detail = " ".join(str(e).split()) or type(e).__name__
        raise TopologyError(f"{source}: not valid GraphML ({detail})") from None
    if g.number_of_nodes() == 0:
        raise TopologyError(f"{source}: no nodes in the GraphML graph")
    return nx.MultiGraph(g) if g.is_directed() else g


def _name_nodes(g: nx.MultiGraph, topo: Topology) -> dict[str, str]:
    """Map GraphML node ids to unique topology node names, adding the nodes to ``topo``."""
    id_to_name: dict[str, str] = {}
    places: dict[str, tuple[float, float] | None] = {}  # name -> coordinates, for merging
    merged: dict[str, int] = {}
    renamed: list[str] = []
    for nid, d in g.nodes(data=True):
        label = str(d.get("label") or "").strip()
        if not label or label == "None":
            label = f"node{nid}"
        c = _coord(d)
        if label in places:
            other = places[label]
            if c is not None and other is not None and great_circle_km(*c, *other) < SAME_PLACE_KM:
                id_to_name[nid] = label
                merged[label] = merged.get(label, 1) + 1
                continue
            k = 2
            while f"{label}-{k}" in places:
                k += 1
            renamed.append(f"{label}->{label}-{k}")
            label = f"{label}-{k}"
        places[label] = c
        id_to_name[nid] = label
        role = "external" if str(d.get("Internal", "1")) == "0" else ""
        topo.add_node(label, c[0] if c else None, c[1] if c else None, role)
    for label, n in merged.items():
        warn(topo, f"{topo.name}: merged {n} nodes labelled {label!r} at the same coordinates into one")
    if renamed:
        warn(topo, f"{topo.name}: duplicate labels at different or unknown places renamed: {', '.join(renamed)}")
    return id_to_name


def load_graphml(path: Path | str, *, route_factor: float = DEFAULT_ROUTE_FACTOR,
                 default_capacity_bps: float = DEFAULT_CAPACITY_BPS, source: str | None = None) -> Topology:
    """Read a Topology Zoo GraphML file (see the module docstring for every fix-up it makes)."""
    source = source or str(path)
    g = _read_multigraph(path, source)
    topo = Topology(Path(str(path)).stem)
    ids = _name_nodes(g, topo)

    bundles: dict[frozenset[str], list[dict]] = {}
    order: list[tuple[str, str]] = []
    self_loops = 0
    for u, v, d in g.edges(data=True):
        a, b = ids[u], ids[v]
        if a == b:
            self_loops += 1
            continue
        key = frozenset((a, b))
        if key not in bundles:
            bundles[key] = []
            order.append((a, b))
        bundles[key].append(d)
    if not order:
        raise TopologyError(f"{source}: no links between distinct nodes")

    pos = {n: (d["lat"], d["lon"]) for n, d in topo.graph.nodes(data=True) if d["lat"] is not None}
    known = [great_circle_km(*pos[a], *pos[b]) * route_factor for a, b in order if a in pos and b in pos]
    guess_km = statistics.median(known) if known else FALLBACK_KM
    no_speed = 0
    for a, b in order:
        speeds = [link_speed_bps(d) for d in bundles[frozenset((a, b))]]
        no_speed += sum(s is None for s in speeds)
        cap = sum(default_capacity_bps if s is None else s for s in speeds)
        km = great_circle_km(*pos[a], *pos[b]) * route_factor if a in pos and b in pos else guess_km
        topo.add_link(a, b, km, int(round(cap)))

    dups = {k: len(v) for k, v in bundles.items() if len(v) > 1}
    if dups:
        desc = ", ".join(f"{'-'.join(sorted(k))} x{n}" for k, n in sorted(dups.items(), key=lambda kv: sorted(kv[0])))
        warn(topo, f"{topo.name}: bundled parallel links into one (capacities added): {desc}")
    if self_loops:
        warn(topo, f"{topo.name}: dropped {self_loops} self-loop(s)")
    missing = [n for n in topo.nodes if n not in pos]
    if missing:
        how = f"the median link length, {guess_km:.0f} km" if known else f"{FALLBACK_KM:.0f} km (no link has coordinates)"
        warn(topo, f"{topo.name}: {len(missing)} node(s) without coordinates kept: {', '.join(missing)}; "
                   f"their links get {how}")
    if no_speed:
        warn(topo, f"{topo.name}: {no_speed} of {g.number_of_edges()} edges give no speed; "
                   f"used the default {default_capacity_bps / 1e9:g} Gb/s")
    isolated = [n for n in topo.nodes if topo.graph.degree(n) == 0]
    if isolated:
        warn(topo, f"{topo.name}: {len(isolated)} node(s) have no links: {', '.join(isolated)}")
    return topo
