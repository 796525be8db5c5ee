"""Candidate paths: the k shortest simple paths by propagation delay, cached per node pair.

The backbone is meshed, so enumerating all simple paths (as TSNKit does) does not scale; Yen's
algorithm (``networkx.shortest_simple_paths``) yields paths in order of total propagation lazily,
and we keep only the first ``k``. Results are cached per (src, dst) and dropped when the set of
failed links changes. Hint paths given by a request are checked against the topology here.

Most requests are admitted on their first candidate, so the first one is found the cheap way:
one Dijkstra per *source* (``dijkstra_predecessor_and_distance``, every shortest-path predecessor
kept) serves every destination. When the shortest path to a destination is unique (one predecessor
at every node along it) it is the path Yen's algorithm would yield first, so the candidates are the
same; when it is not (ties), Yen's algorithm is asked from the start, as before. Yen's generator is
started only when a second candidate is read.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import networkx as nx

from .model import InvalidRequest

Path = tuple[str, ...]


class PathFinder:
    """k shortest simple paths by ``propagation_ns`` over a DiGraph, minus failed links."""

    #: shortest-path trees kept (one per source; about 50 bytes a node each)
    TREES_KEPT = 256

    def __init__(self, graph: nx.DiGraph, k: int = 4):
        if k < 1:
            raise ValueError("k must be at least 1")
        self.graph = graph
        self.k = k
        self._failed: set[tuple[str, str]] = set()
        # (src, dst) -> (paths found so far, Yen's generator or None when exhausted, how many of
        # its first paths to skip (they are already found))
        self._cache: dict[tuple[str, str], list] = {}
        # src -> {node: its one shortest-path predecessor, or None when several tie}, under the current
        # failures; at most TREES_KEPT sources (the oldest dropped: a dropped tree is recomputed the same)
        self._trees: dict[str, dict[str, str | None]] = {}

    # ----- failed links -----------------------------------------------------
    @property
    def failed(self) -> frozenset[tuple[str, str]]:
        return frozenset(self._failed)

    def fail(self, u: str, v: str) -> None:
        """Exclude the directed link u->v from new candidate paths."""
        if not self.graph.has_edge(u, v):
            raise KeyError(f"no link {u}-{v}")
        if (u, v) not in self._failed:
            self._failed.add((u, v))
            self._cache.clear()
            self._trees.clear()

    def restore(self, u: str, v: str) -> None:
        if (u, v) in self._failed:
            self._failed.discard((u, v))
            self._cache.clear()
            self._trees.clear()

    def crosses_failed(self, path: Iterable[str]) -> bool:
        p = list(path)
        return any((a, b) in self._failed for a, b in zip(p, p[1:]))

    # ----- candidates -------------------------------------------------------
    def _usable(self) -> nx.DiGraph:
        """The graph minus failed links (a view), or the graph itself when nothing failed."""
        if not self._failed:
            return self.graph
        failed = frozenset(self._failed)
        return nx.subgraph_view(self.graph, filter_edge=lambda a, b: (a, b) not in failed)

    def _unique_shortest(self, src: str, dst: str) -> Path | None:
        """The shortest path src->dst from src's shortest-path tree when it is the only shortest
        path, else None (ties, or not reachable: Yen's algorithm decides)."""
        if src == dst:
            return None
        tree = self._trees.get(src)
        if tree is None:
            preds, _ = nx.dijkstra_predecessor_and_distance(self._usable(), src, weight="propagation_ns")
            tree = {v: (p[0] if len(p) == 1 else None) for v, p in preds.items()}
            if len(self._trees) >= self.TREES_KEPT:
                del self._trees[next(iter(self._trees))]
            self._trees[src] = tree
        if dst not in tree:
            return None
        path = [dst]
        v: str | None = dst
        while v != src:
            v = tree[v]
            if v is None:
                return None
            path.append(v)
        return tuple(reversed(path))

    def candidates(self, src: str, dst: str) -> Iterator[Path]:
        """Up to k simple paths src->dst in order of propagation (none if not connected).

        Lazy: Yen's algorithm runs only as far as the caller reads, and what it found is cached,
        so a request admitted on its shortest path costs one shortest-path search per source, ever.
        """
        key = (src, dst)
        entry = self._cache.get(key)
        if entry is None:
            first = self._unique_shortest(src, dst) if src in self.graph and dst in self.graph else None
            entry = self._cache[key] = [[first] if first is not None else [], False, 1 if first is not None else 0]
        found = entry[0]
        i = 0
        while i < self.k:
            if i < len(found):
                yield found[i]
                i += 1
                continue
            if entry[1] is None or self._cache.get(key) is not entry:
                return
            try:
                if entry[1] is False:      # Yen's generator, started at the first read past what is found
                    entry[1] = nx.shortest_simple_paths(self._usable(), src, dst, weight="propagation_ns")
                while entry[2]:
                    next(entry[1])
                    entry[2] -= 1
                found.append(tuple(next(entry[1])))
            except (StopIteration, nx.NetworkXNoPath, nx.NodeNotFound):
                entry[1] = None
                return

    def candidates_avoiding(self, src: str, dst: str, avoid: Iterable[tuple[str, str]]) -> list[Path]:
        """Up to k simple paths src->dst (by propagation) that use neither direction of any link in
        ``avoid`` nor a failed link: the candidates for the second path of a protected reservation,
        link-disjoint from the first. Not cached (the avoided set changes with every first path)."""
        banned = set(self._failed)
        for a, b in avoid:
            banned.add((a, b))
            banned.add((b, a))
        g = nx.subgraph_view(self.graph, filter_edge=lambda a, b: (a, b) not in banned)
        out: list[Path] = []
        try:
            for p in nx.shortest_simple_paths(g, src, dst, weight="propagation_ns"):
                out.append(tuple(p))
                if len(out) >= self.k:
                    break
        except (nx.NetworkXNoPath, nx.NodeNotFound):
            pass
        return out

    def disjoint_pair(self, src: str, dst: str) -> list[Path]:
        """Two link-disjoint paths src->dst (ignoring link direction, minus failed links) from a
        max-flow decomposition, shortest first; [] when none exist. A fallback for protected
        requests whose k shortest first paths leave no disjoint second path (trap topologies)."""
        failed = set(self._failed)
        ug = nx.Graph()
        ug.add_nodes_from(self.graph.nodes)
        for a, b in self.graph.edges:
            if (a, b) not in failed and (b, a) not in failed and self.graph.has_edge(b, a):
                ug.add_edge(a, b)
        try:
            pair = [tuple(p) for p in nx.edge_disjoint_paths(ug, src, dst, cutoff=2)]
        except (nx.NetworkXNoPath, nx.NetworkXError, nx.NodeNotFound):
            return []
        return sorted(pair, key=self.propagation_ns) if len(pair) == 2 else []

    def candidate_list(self, src: str, dst: str) -> list[Path]:
        """All k candidates as a list (runs the search to the end)."""
        return list(self.candidates(src, dst))

    def propagation_ns(self, path: Iterable[str]) -> int:
        p = list(path)
        return sum(self.graph.edges[a, b]["propagation_ns"] for a, b in zip(p, p[1:]))

    def check_hints(self, src: str, dst: str, hints: list[list[str]]) -> list[Path]:
        """Validate hint paths; return them sorted by propagation. Raise InvalidRequest('paths', ...)."""
        out: list[Path] = []
        for i, p in enumerate(hints):
            if p[0] != src or p[-1] != dst:
                raise InvalidRequest("paths", f"path #{i} must start at {src} and end at {dst}")
            if len(set(p)) != len(p):
                raise InvalidRequest("paths", f"path #{i} visits a node twice")
            for a, b in zip(p, p[1:]):
                if not self.graph.has_edge(a, b):
                    raise InvalidRequest("paths", f"path #{i}: no link {a}-{b}")
            out.append(tuple(p))
        out.sort(key=self.propagation_ns)
        return out
