"""TSNKit topology CSV to Topology.

TSNKit (the TSN scheduling benchmark toolkit, MIT) describes a network as one row per *directed*
link::

    link,q_num,rate,t_proc,t_prop
    "(0, 1)",8,1,2000,0

- ``link``: "(u, v)" with integer node ids (TSNKit requires ids 0..n-1),
- ``q_num``: queues on that output port, ``rate``: bit/ns (1 = 1 Gb/s),
- ``t_proc``: processing delay in ns, ``t_prop``: propagation delay in ns (TSNKit's generators write 0).

Node names are the ids as strings (in numeric order). The two directions of a link become one
physical link (Topology stores it as two directed edges); each directed edge keeps its own values:
``capacity_bps = rate * 1e9``, ``propagation_ns = t_prop``, ``km = t_prop / 5000`` (5 us per km),
``processing_ns = t_proc`` and ``queues = q_num``. A link given in one direction only gets the
same values in reverse (a warning says so). Nodes are ``end_station`` when they have one neighbour
(TSNKit's own rule: an end station has exactly two directed links), else ``switch``.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from topologies.fileio import read_text, warn
from topologies.model import NS_PER_KM, Topology, TopologyError

COLUMNS = ("link", "q_num", "rate", "t_proc", "t_prop")
_LINK = re.compile(r"^\s*[(\[]\s*(\d+)\s*,\s*(\d+)\s*[)\]]\s*$")


def _number(value: str, what: str, where: str, *, integer: bool = False, positive: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TopologyError(f"{where}: {what} {value!r} is not a number") from None
    if x != x or x in (float("inf"), float("-inf")):
        raise TopologyError(f"{where}: {what} {value!r} is not a finite number")
    if integer and x != int(x):
        raise TopologyError(f"{where}: {what} {value!r} is not an integer")
    if positive and x <= 0:
        raise TopologyError(f"{where}: {what} must be positive, not {value!r}")
    if x < 0:
        raise TopologyError(f"{where}: {what} cannot be negative ({value!r})")
    return x


def parse_rows(text: str, source: str) -> dict[tuple[int, int], dict]:
    """Directed link (u, v) -> its attributes, validated; TopologyError naming the file and row."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise TopologyError(f"{source}: not a TSNKit topology CSV: missing column(s) {', '.join(missing)} "
                            f"(expected {','.join(COLUMNS)})")
    reader.fieldnames = header
    links: dict[tuple[int, int], dict] = {}
    for row in reader:
        where = f"{source}: line {reader.line_num}"
        if None in row or any(row.get(c) is None for c in COLUMNS):
            raise TopologyError(f"{where}: expected {len(header)} fields")
        m = _LINK.match(row["link"])
        if not m:
            raise TopologyError(f"{where}: link {row['link']!r} is not a tuple \"(u, v)\" of node ids")
        u, v = int(m.group(1)), int(m.group(2))
        if u == v:
            raise TopologyError(f"{where}: link ({u}, {v}) is a self-loop")
        if (u, v) in links:
            raise TopologyError(f"{where}: link ({u}, {v}) appears twice")
        links[(u, v)] = {
            "queues": int(_number(row["q_num"], "q_num", where, integer=True)),
            "rate": _number(row["rate"], "rate", where, positive=True),
            "processing_ns": int(_number(row["t_proc"], "t_proc", where, integer=True)),
            "propagation_ns": int(_number(row["t_prop"], "t_prop", where, integer=True)),
        }
    if not links:
        raise TopologyError(f"{source}: no links (empty TSNKit topology)")
    return links


def load_tsnkit_csv(path: Path | str, *, source: str | None = None) -> Topology:
    """Read a TSNKit topology CSV (see the module docstring for the mapping)."""
    source = source or str(path)
    text = read_text(path, source)
    if not text.strip():
        raise TopologyError(f"{source}: empty file")
    try:
        links = parse_rows(text, source)
    except csv.Error as e:
        raise TopologyError(f"{source}: not valid CSV ({e})") from None
    topo = Topology(Path(str(path)).stem)
    ids = sorted({n for uv in links for n in uv})
    neighbours = {n: set() for n in ids}
    for u, v in links:
        neighbours[u].add(v)
        neighbours[v].add(u)
    for n in ids:
        topo.add_node(str(n), role="end_station" if len(neighbours[n]) == 1 else "switch")

    one_way: list[str] = []
    for (u, v), a in links.items():
        if topo.graph.has_edge(str(u), str(v)):
            continue  # added with its reverse
        back = links.get((v, u))
        if back is None:
            one_way.append(f"({u}, {v})")
        for x, y, d in ((u, v, a), (v, u, back or a)):
            topo.graph.add_edge(str(x), str(y), capacity_bps=int(round(d["rate"] * 1e9)),
                                propagation_ns=d["propagation_ns"], km=d["propagation_ns"] / NS_PER_KM,
                                processing_ns=d["processing_ns"], queues=d["queues"])
    if one_way:
        warn(topo, f"{topo.name}: {len(one_way)} link(s) given in one direction only, reverse added with "
                   f"the same values: {', '.join(one_way[:10])}{' ...' if len(one_way) > 10 else ''}")
    return topo
