"""Slot tables: which slots of the repeating cycle each directed link has reserved.

A ``SlotTables`` object keeps one numpy ``bool`` array of ``cycle_slots`` entries per directed link
(True = held by a reservation), the count of held slots per link (for the ``max_share`` cap), and
a cache of tables *folded* to a period: ``folded(link, P)[r]`` is True when any slot ``r + k*P`` of
the cycle is held. A periodic reservation with period ``P`` fits at residue ``r`` exactly when the
folded table is free there, which turns the search over the whole cycle into a search over one period.

The module also holds the pure array helpers of the search (``feasible_starts``, ``chain``,
``expand``); they take and return numpy arrays and know nothing about requests or topologies.
"""

from __future__ import annotations

from typing import Hashable, Iterable, Sequence

import numpy as np

Link = tuple[Hashable, Hashable]


class SlotTables:
    """Per-link slot occupancy over a cycle of ``cycle_slots`` slots.

    Growing the cycle (``grow``) tiles every table, so whatever was held keeps being held at the
    same offsets in every repetition; shrinking it (``shrink``) keeps one repetition, allowed only
    when the tables repeat at the new length. Mutations go through ``occupy``/``free``, which bump a
    per-link version so folded views are recomputed only for links that changed.
    """

    def __init__(self, links: Iterable[Link], cycle_slots: int):
        if cycle_slots <= 0:
            raise ValueError("cycle_slots must be positive")
        self.cycle_slots = int(cycle_slots)
        self._tables: dict[Link, np.ndarray] = {l: np.zeros(self.cycle_slots, dtype=bool) for l in links}
        self._used: dict[Link, int] = {l: 0 for l in self._tables}
        self._version: dict[Link, int] = {l: 0 for l in self._tables}
        # (link, period) -> (version, cycle_slots, folded array)
        self._fold_cache: dict[tuple[Link, int], tuple[int, int, np.ndarray]] = {}
        # (link, period, n) -> (version, cycle_slots, feasible-start mask, its sorted residues or None)
        self._start_cache: dict[tuple[Link, int, int], tuple[int, int, np.ndarray, np.ndarray | None]] = {}

    # ----- queries --------------------------------------------------------
    def links(self) -> list[Link]:
        return list(self._tables)

    def __contains__(self, link: Link) -> bool:
        return link in self._tables

    def table(self, link: Link) -> np.ndarray:
        """The link's table (read-only view; mutate through occupy/free)."""
        t = self._tables[link].view()
        t.flags.writeable = False
        return t

    def used(self, link: Link) -> int:
        """Number of held slots of the link over the whole cycle."""
        return self._used[link]

    def free_count(self, link: Link) -> int:
        return self.cycle_slots - self._used[link]

    def folded(self, link: Link, period: int, cycle_slots: int | None = None) -> np.ndarray:
        """The table folded to ``period`` slots, as it would be in a cycle of ``cycle_slots``.

        ``cycle_slots`` defaults to the current cycle; a larger multiple of it (a cycle the
        scheduler is *considering* growing to) folds the tiled table without changing anything.
        """
        c = self.cycle_slots if cycle_slots is None else cycle_slots
        key = (link, period)
        ver = self._version[link]
        hit = self._fold_cache.get(key)
        if hit is not None and hit[0] == ver and hit[1] == c:
            return hit[2]
        t = self._tables[link]
        if c != self.cycle_slots:
            if c % self.cycle_slots:
                raise ValueError("a considered cycle must be a multiple of the current cycle")
            t = np.tile(t, c // self.cycle_slots)
        if c % period:
            raise ValueError(f"period {period} does not divide the cycle {c}")
        f = t.reshape(c // period, period).any(axis=0) if c != period else t.copy()
        self._fold_cache[key] = (ver, c, f)
        return f

    #: feasible-start masks kept (one per link, period and block length; recomputed when dropped)
    START_CACHE_MAX = 4096

    def start_mask(self, link: Link, period: int, n: int, cycle_slots: int | None = None) -> np.ndarray:
        """``feasible_mask`` of the link's table folded to ``period`` (see ``folded``), cached per
        (link, period, n) until the link changes: bool array, True at every residue where ``n``
        consecutive slots are free in every period. Read-only (shared with later calls)."""
        return self._starts(link, period, n, cycle_slots)[2]

    def start_residues(self, link: Link, period: int, n: int, cycle_slots: int | None = None) -> np.ndarray:
        """The sorted residues where ``start_mask`` is True (``feasible_starts``), cached the same way."""
        c = self.cycle_slots if cycle_slots is None else cycle_slots
        key = (link, period, n)
        hit = self._starts(link, period, n, c)
        if hit[3] is None:
            hit = (hit[0], hit[1], hit[2], np.flatnonzero(hit[2]))
            self._start_cache[key] = hit
        return hit[3]

    def _starts(self, link: Link, period: int, n: int, cycle_slots: int | None):
        c = self.cycle_slots if cycle_slots is None else cycle_slots
        key = (link, period, n)
        ver = self._version[link]
        hit = self._start_cache.get(key)
        if hit is None or hit[0] != ver or hit[1] != c:
            if len(self._start_cache) >= self.START_CACHE_MAX:
                self._start_cache.clear()      # stale masks of every (period, n) seen pile up otherwise
            hit = (ver, c, feasible_mask(self.folded(link, period, c), n), None)
            self._start_cache[key] = hit
        return hit

    def is_free(self, link: Link, slots: np.ndarray) -> bool:
        return not bool(self._tables[link][slots].any())

    # ----- mutations ------------------------------------------------------
    def occupy(self, link: Link, slots: np.ndarray) -> None:
        """Mark ``slots`` (indices into the cycle) held; ValueError if any already is."""
        t = self._tables[link]
        if t[slots].any():
            raise ValueError(f"slot conflict on link {link[0]}-{link[1]}")
        t[slots] = True
        self._used[link] += int(len(slots))
        self._version[link] += 1

    def free(self, link: Link, slots: np.ndarray) -> None:
        """Release ``slots``; ValueError if any of them is not held (state is then unchanged)."""
        t = self._tables[link]
        if not t[slots].all():
            raise ValueError(f"freeing unheld slots on link {link[0]}-{link[1]}")
        t[slots] = False
        self._used[link] -= int(len(slots))
        self._version[link] += 1

    def grow(self, new_cycle_slots: int) -> None:
        """Tile every table to ``new_cycle_slots`` (a multiple of the current cycle)."""
        if new_cycle_slots % self.cycle_slots:
            raise ValueError("the cycle can only grow to a multiple of itself")
        m = new_cycle_slots // self.cycle_slots
        if m == 1:
            return
        for l in self._tables:
            self._tables[l] = np.tile(self._tables[l], m)
            self._used[l] *= m
            self._version[l] += 1
        self.cycle_slots = new_cycle_slots

    def shrink(self, new_cycle_slots: int) -> None:
        """Cut every table to ``new_cycle_slots`` (a divisor of the current cycle).

        Allowed only when every table repeats every ``new_cycle_slots`` slots (each reservation's
        period divides the new cycle), so whatever was held stays held at the same offsets in every
        repetition; ValueError otherwise, and nothing changes.
        """
        if new_cycle_slots <= 0 or self.cycle_slots % new_cycle_slots:
            raise ValueError("the cycle can only shrink to a divisor of itself")
        m = self.cycle_slots // new_cycle_slots
        if m == 1:
            return
        for l, t in self._tables.items():
            tiles = t.reshape(m, new_cycle_slots)
            if not (tiles == tiles[0]).all():
                raise ValueError(f"link {l[0]}-{l[1]}: its slots do not repeat every {new_cycle_slots} slots")
        for l, t in self._tables.items():
            self._tables[l] = t[:new_cycle_slots].copy()
            self._used[l] //= m
            self._version[l] += 1
        self.cycle_slots = new_cycle_slots

    def snapshot(self) -> dict[Link, bytes]:
        """A compact copy of every table (used by tests to check that nothing changed)."""
        return {l: np.packbits(t).tobytes() for l, t in self._tables.items()}


# ----- pure helpers of the search ---------------------------------------------
def feasible_mask(folded: np.ndarray, n: int) -> np.ndarray:
    """Bool array over [0, P): True at residue ``r`` when ``n`` consecutive slots r..r+n-1 (cyclic)
    are all free in the folded table."""
    p = len(folded)
    if n > p:
        return np.zeros(p, dtype=bool)
    free = ~folded
    if n == 1:
        return free
    ext = np.concatenate([free, free[: n - 1]]).astype(np.int32)
    cs = np.empty(len(ext) + 1, dtype=np.int32)
    cs[0] = 0
    np.cumsum(ext, out=cs[1:])
    return (cs[n:n + p] - cs[:p]) == n


def feasible_starts(folded: np.ndarray, n: int) -> np.ndarray:
    """Sorted residues ``r`` in [0, P) where ``n`` consecutive slots r..r+n-1 (cyclic) are all free."""
    if n > len(folded):
        return np.empty(0, dtype=np.int64)
    return np.flatnonzero(feasible_mask(folded, n))


def first_no_wait(masks: Sequence[np.ndarray], shifts: Sequence[int]) -> int:
    """The smallest first-hop residue ``r`` whose chain waits nowhere, or -1 if none.

    ``masks[i]`` is hop i's ``feasible_mask`` (all of one period P); ``shifts[i]`` is the unwrapped
    distance from the first hop's start to hop i's earliest start (``shifts[0] == 0``; ``shifts[i+1]
    = shifts[i] + n_i + gap_i``). Row r waits nowhere when every hop i is free at ``(r + shifts[i])
    mod P``; such a row has the lowest possible latency bound, and ``chain`` (which waits at the
    first free start) gives it zero waits, so when one exists the smallest such r is exactly the row
    ``chain`` + lowest bound + earliest offset would pick: O(hops * P) bool work, no search.
    """
    acc = masks[0]
    p = len(acc)
    for m, s in zip(masks[1:], shifts[1:]):
        k = s % p
        rolled = m if k == 0 else np.concatenate([m[k:], m[:k]])   # rolled[r] = m[(r + s) mod P]
        acc = acc & rolled
    hit = int(acc.argmax())
    return hit if acc[hit] else -1


def chain(first: np.ndarray, hops: Sequence[tuple[np.ndarray, int, int]], period: int,
          max_wait: int) -> tuple[np.ndarray, int]:
    """Chain hop starts for every first-hop start at once.

    ``first``: candidate (unwrapped) starts on hop 0. ``hops``: for each hop i, a tuple
    ``(starts_i, n_i, gap_i)`` where ``starts_i`` are the feasible residues of hop i, ``n_i`` its
    slot count and ``gap_i`` the slots from the end of hop i to the earliest start on hop i+1
    (propagation + processing, rounded up). The last tuple's starts are unused except for its n.

    Returns ``(S, failed_hop)``: ``S`` has one row per surviving first offset and one column per hop
    (unwrapped slot starts, strictly increasing along the path); ``failed_hop`` is the index of the
    hop where the last candidates died (-1 if some survived).
    """
    cols = [first.astype(np.int64)]
    cur = cols[0]
    for i in range(1, len(hops)):
        _, n_prev, gap_prev = hops[i - 1]
        starts = hops[i][0]
        if len(starts) == 0 or len(cur) == 0:
            return np.empty((0, len(hops)), dtype=np.int64), i
        earliest = cur + n_prev + gap_prev
        q = earliest % period
        j = np.searchsorted(starts, q)
        wrapped = j >= len(starts)
        nxt = np.where(wrapped, starts[0] + period, starts[np.minimum(j, len(starts) - 1)])
        wait = nxt - q
        keep = wait <= max_wait
        if not keep.any():
            return np.empty((0, len(hops)), dtype=np.int64), i
        if not keep.all():
            cols = [c[keep] for c in cols]
            earliest, wait = earliest[keep], wait[keep]
        cur = earliest + wait
        cols.append(cur)
    if len(cur) == 0:
        return np.empty((0, len(hops)), dtype=np.int64), 0
    return np.stack(cols, axis=1), -1


def expand(start: int, n: int, period: int, cycle_slots: int) -> np.ndarray:
    """All slot indices (sorted, mod cycle) held by a block of ``n`` slots at ``start`` every period."""
    residues = (start + np.arange(n, dtype=np.int64)) % period
    return expand_residues(residues, period, cycle_slots)


def expand_residues(residues: np.ndarray, period: int, cycle_slots: int) -> np.ndarray:
    """Sorted indices ``r + k*period`` for every residue r and every period in the cycle."""
    base = np.arange(0, cycle_slots, period, dtype=np.int64)
    r = np.sort(np.asarray(residues, dtype=np.int64))
    out = (base[:, None] + r[None, :]).ravel()
    if len(r) and (r[0] < 0 or r[-1] >= period or (len(r) > 1 and (r[1:] == r[:-1]).any())):
        out.sort()          # residues outside [0, period) or repeated: only a full sort orders them
    return out
