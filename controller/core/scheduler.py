"""The scheduler: admit or reject reservation requests on the slotted model.

Model (see docs/scheduling.md for the full write-up):

- Time repeats in a cycle of ``cycle_ns`` (the hyperperiod of admitted periods, at least
  ``base_cycle_ns``) cut into slots of ``slot_ns``. Every directed link has a slot table.
- A reservation sends ``frame_bytes`` once per period. On hop i (capacity c_i) it holds
  ``n_i = ceil(frame_bytes * 8e9 / c_i / slot_ns)`` consecutive slots, starting at ``s_i`` in every
  period. Store-and-forward spacing: ``s_{i+1} = s_i + n_i + ceil((prop_i + proc_i) / slot_ns) + w_i``
  with ``0 <= w_i <= max_wait_slots``.
- No slot is held twice on a link, and reservations hold at most ``max_share`` of a link's slots.
- Latency bound: ``(s_last + n_last - s_first) * slot_ns + prop_last + proc_last``; jitter bound:
  one slot.

Search: for each candidate path (k shortest by propagation), fold each hop's table to the
request's period, find every feasible block start per hop (vectorised), chain the hops for all
first-hop offsets at once and keep the offset with the lowest bound (earliest on ties).

Admission is atomic: a rejected request changes nothing, not even the cycle.

The cycle is the hyperperiod of the current reservations' periods (and ``base_cycle_ns``): an
admission grows it to the lcm; after releases ``settle_cycle()`` shrinks it back to the lcm of what
is left (the service calls it after every release, ``release`` itself leaves the cycle alone so
its answer keeps indexing the tables it was released from). The rule depends only on the set of
reservations, so a restart (``restore`` of each) gives back the same cycle and, since every
reservation keeps its slot residues and talker offsets modulo its own period, the same slots and
offsets, written out over that cycle.

Ids: a request without an id gets ``r<N>``, the lowest N never used by any reservation this
scheduler has seen (``note_ids_used`` tells it the ids used before, e.g. the store's ledger at
start), so generated ids are never handed out twice, whatever is released.

Protection (``Request.protection == "disjoint"``): a second path, link-disjoint from the first
(neither direction of any of its links), gets its own slots; its first hop starts within
``max_wait_slots`` of the first path's start (the ingress switch replicates each frame onto both).
The pair is found by trying each of the k shortest first paths and, for each, the k shortest
paths that avoid its links; a max-flow disjoint pair is the fallback. Both paths are committed as
one entry (atomic). Tenants are charged the reservation's rate once.

Failures: ``fail_link`` stops new admissions from using a link; ``repair(id)`` then re-places a
reservation that crosses it (same id, tenant and request bounds), keeping a surviving protected
path with its exact slots, and changes nothing when no placement exists (the caller decides).
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

import numpy as np

from .model import InvalidRequest, Hop, Rejection, Request, Reservation
from .paths import PathFinder
from .slots import SlotTables, chain, expand, expand_residues, first_no_wait
from .tenants import TenantBook

Link = tuple[str, str]

#: the generated id form: ``r`` and a number without leading zeros
_GENERATED_ID = re.compile(r"r([1-9][0-9]*)")


@dataclass
class _Entry:
    """Internal state of an admitted reservation: what to re-expand when the cycle grows."""

    res: Reservation
    links: list[Link]
    period: int                     # slots
    residues: list[np.ndarray]      # per hop: held slot residues modulo the period
    tx_residues: list[int]          # talker offsets modulo the period, in ns
    bps: int
    n_primary: int | None = None    # hops of the primary path (the rest: protection path); None: all


@dataclass
class _Plan:
    """A feasible placement found by the search (nothing committed yet)."""

    id: str
    request: Request
    cycle: int                      # cycle in slots after admission
    period: int
    frame_bytes: int
    bps: int
    path: tuple[str, ...]
    links: list[Link]
    starts: list[int]               # unwrapped start slot per hop
    ns: list[int]
    bound_ns: int


class Scheduler:
    """Admission control and slot assignment over one Topology."""

    def __init__(self, topology, *, slot_ns: int = 1000, base_cycle_ns: int = 1_000_000,
                 max_cycle_ns: int = 100_000_000, max_share: float = 0.75, k_paths: int = 4,
                 max_wait_slots: int = 4, processing_ns: int = 1000, tenants: TenantBook | None = None):
        if slot_ns <= 0:
            raise ValueError("slot_ns must be positive")
        if base_cycle_ns <= 0 or base_cycle_ns % slot_ns:
            raise ValueError("base_cycle_ns must be a positive multiple of slot_ns")
        if max_cycle_ns < base_cycle_ns or max_cycle_ns % slot_ns:
            raise ValueError("max_cycle_ns must be a multiple of slot_ns and at least base_cycle_ns")
        if not 0 < max_share <= 1:
            raise ValueError("max_share must be in (0, 1]")
        if max_wait_slots < 0 or processing_ns < 0:
            raise ValueError("max_wait_slots and processing_ns must be non-negative")
        self.topology = topology
        self.slot_ns = int(slot_ns)
        self.base_cycle_ns = int(base_cycle_ns)
        self.max_cycle_ns = int(max_cycle_ns)
        self.max_share = float(max_share)
        self.k_paths = int(k_paths)
        self.max_wait_slots = int(max_wait_slots)
        self.processing_ns = int(processing_ns)
        self.tenants = tenants
        g = topology.graph
        self._graph = g
        self._tables = SlotTables(list(g.edges), base_cycle_ns // slot_ns)
        self._paths = PathFinder(g, k_paths)
        # per directed link: (capacity_bps, propagation_ns, gap in slots to the next hop's earliest start)
        self._info: dict[Link, tuple[int, int, int, int]] = {}
        for u, v, d in g.edges(data=True):
            cap, prop = int(d["capacity_bps"]), int(d["propagation_ns"])
            proc = int(d.get("processing_ns", self.processing_ns))
            self._info[(u, v)] = (cap, prop, proc, -(-(prop + proc) // self.slot_ns))
        self._entries: dict[str, _Entry] = {}
        self._res: dict[str, Reservation] = {}
        # reserved bit/s per directed link (every path of every entry), kept by _occupy/_drop
        self._link_bps: dict[Link, int] = {}
        # generated ids: the next candidate number, and the numbers at or above it already used
        self._next_id = 1
        self._ids_ahead: set[int] = set()
        self._lock = threading.RLock()

    # ----- read-only state --------------------------------------------------
    @property
    def cycle_ns(self) -> int:
        """Current cycle: the hyperperiod of the admitted periods and base_cycle_ns (after a release,
        once ``settle_cycle`` ran)."""
        return self._tables.cycle_slots * self.slot_ns

    def hyperperiod_ns(self) -> int:
        """The cycle the current reservations need: lcm of their periods and ``base_cycle_ns``.
        ``cycle_ns`` equals it after ``settle_cycle``."""
        with self._lock:
            periods = {e.period for e in self._entries.values()}
            return math.lcm(self.base_cycle_ns // self.slot_ns, *periods) * self.slot_ns

    @property
    def reservations(self) -> Mapping[str, Reservation]:
        """Admitted reservations by id (read-only view; slots are relative to the current cycle)."""
        return MappingProxyType(self._res)

    def reserved_bps(self) -> dict[Link, int]:
        """Reserved bit/s on every directed link that carries a reservation (primary and protection
        paths), kept up to date on every change: O(links), whatever the number of reservations."""
        return {l: b for l, b in self._link_bps.items() if b}

    def link_share(self) -> dict[Link, float]:
        """Reserved fraction of every directed link's slots."""
        c = self._tables.cycle_slots
        return {l: self._tables.used(l) / c for l in self._tables.links()}

    def free_slots(self, u: str, v: str) -> int:
        """Unreserved slots of the directed link u->v over the current cycle (KeyError if no such link)."""
        if (u, v) not in self._tables:
            raise KeyError(f"no link {u}-{v}")
        return self._tables.free_count((u, v))

    def slot_table(self, u: str, v: str) -> np.ndarray:
        """Read-only bool array of the link's held slots over the current cycle."""
        return self._tables.table((u, v))

    def slots_needed(self, frame_bytes: int, u: str, v: str) -> int:
        """Slots a frame of ``frame_bytes`` needs on the link u->v: ceil(transmission / slot)."""
        return self._need(frame_bytes, self._info[(u, v)][0])

    def gap_slots(self, u: str, v: str) -> int:
        """Minimum slots from the end of a block on u->v to the start on the next hop."""
        return self._info[(u, v)][3]

    def state_fingerprint(self) -> tuple:
        """A value that changes whenever tables, reservations or the cycle change (for tests)."""
        return (self._tables.cycle_slots, tuple(sorted(self._tables.snapshot().items())),
                tuple(sorted(self._res)), frozenset(self._paths.failed))

    # ----- links failing ----------------------------------------------------
    def fail_link(self, u: str, v: str) -> None:
        """Mark the directed link unusable for new admissions (existing reservations stay)."""
        with self._lock:
            self._paths.fail(u, v)

    def restore_link(self, u: str, v: str) -> None:
        with self._lock:
            self._paths.restore(u, v)

    @property
    def failed_links(self) -> frozenset[Link]:
        """Directed links marked failed."""
        return self._paths.failed

    def affected_by(self, links) -> list[str]:
        """Ids of the reservations holding slots on any of the directed ``links`` (either path)."""
        links = set(links)
        with self._lock:
            return sorted(rid for rid, e in self._entries.items() if links.intersection(e.links))

    def repair(self, reservation_id: str) -> Reservation | Rejection | None:
        """Re-place a reservation whose path(s) cross a failed link, or re-protect a degraded one.

        - a protected reservation with one path intact keeps that path with its exact slots (it
          becomes the primary) and gets a new link-disjoint second path if one fits, else it stays
          degraded on one path (``protection_path`` None);
        - otherwise the reservation is admitted again, same id, tenant, period, bytes and bounds,
          on paths avoiding failed links (a protected one falls back to one path when no disjoint
          pair fits);
        - None when nothing needed (or could) change; a Rejection when no placement exists, and
          then nothing changed at all (atomic). KeyError for an unknown id.
        """
        with self._lock:
            e = self._entries[reservation_id]
            old = Reservation.from_dict(e.res.to_dict())
            crosses = self._paths.crosses_failed
            prim_bad = crosses(old.path)
            sec_bad = bool(old.protection_path) and crosses(old.protection_path)
            protected = old.protection == "disjoint"
            if not prim_bad and not sec_bad and (not protected or old.protection_path):
                return None
            req = self.request_of(old)
            keep = None
            if protected and not prim_bad:
                keep = "primary"
            elif protected and old.protection_path and not sec_bad:
                keep = "secondary"
            self._drop(e)
            try:
                if keep is not None:
                    result: Reservation | Rejection = self._keep_and_reprotect(e, old, keep, req)
                else:
                    result = self._place(req, allow_degraded=True)
            except BaseException:
                if reservation_id in self._entries:
                    self._drop(self._entries[reservation_id])
                self._reinstate(e)
                raise
            if isinstance(result, Rejection):
                self._reinstate(e)
                return result
            if result.to_dict() == old.to_dict():
                return None
            return Reservation.from_dict(result.to_dict())

    # ----- admission --------------------------------------------------------
    def admit(self, request: Request) -> Reservation | Rejection:
        """Place the request and return its Reservation, or return why not (changing nothing)."""
        with self._lock:
            return self._place(request)

    def evaluate(self, request: Request, *, network_only: bool = False) -> Reservation | Rejection:
        """What ``admit`` would answer right now, without reserving anything.

        ``network_only``: leave the tenant book out (no tenant check, no quota): what the network
        alone would answer, whoever asked.
        """
        with self._lock:
            if request.protection == "disjoint":
                pair = self._plan_protected(request, network_only=network_only)
                if isinstance(pair, Rejection):
                    return pair
                return self._build(pair[0], pair[0].cycle, pair[1])
            plan = self._plan(request, network_only=network_only)
            if isinstance(plan, Rejection):
                return plan
            return self._build(plan, plan.cycle)

    @staticmethod
    def request_of(r: Reservation) -> Request:
        """The request that re-places reservation ``r`` (same id, tenant, size, period and bounds)."""
        return Request(tenant=r.tenant, src=r.src, dst=r.dst, max_latency_ns=r.max_latency_ns,
                       period_ns=r.period_ns, frame_bytes=r.frame_bytes, max_jitter_ns=r.max_jitter_ns,
                       id=r.id, match=dict(r.match), protection=r.protection)

    def release(self, reservation_id: str) -> Reservation:
        """Free exactly the reservation's slots; KeyError if unknown. The cycle stays as it is (the
        answer's slots index it) until ``settle_cycle``."""
        with self._lock:
            e = self._entries[reservation_id]
            self._drop(e)
            return e.res

    def settle_cycle(self) -> bool:
        """Shrink the cycle to the hyperperiod of the current reservations (``hyperperiod_ns``).

        Every remaining period divides the new cycle, so each reservation keeps exactly its slot
        residues and talker offsets modulo its period: what a talker sends and when does not
        change, only how many repetitions the lists spell out. Returns True when the cycle changed.
        """
        with self._lock:
            target = self.hyperperiod_ns() // self.slot_ns
            if target == self._tables.cycle_slots:
                return False
            self._tables.shrink(target)
            for e in self._entries.values():
                self._expand_entry(e)
            return True

    def note_ids_used(self, ids) -> None:
        """Ids used before (released or not): never generated again."""
        with self._lock:
            for rid in ids:
                self._note_id(rid)

    def path_bounds_ns(self, r: Reservation) -> list[int | None]:
        """The latency bound each path of ``r`` (primary, then protection) gives on this topology
        with its slots as they are, counted from the talker's offset; None where it cannot be
        judged (a link not in the topology, a hop whose slots are not one block per period).

        For a reservation this scheduler placed it equals the stored ``latency_bound_ns`` (and
        ``protection_latency_bound_ns``); a larger value means the frames would miss their slots
        on this topology (longer propagation, other processing time)."""
        slot = self.slot_ns
        if r.period_ns <= 0 or r.period_ns % slot or not r.tx_offsets_ns:
            return [None] * len(r.all_paths())
        period = r.period_ns // slot
        t0 = min(int(t) % r.period_ns for t in r.tx_offsets_ns) // slot
        out: list[int | None] = []
        for path, hops in [(list(r.path), r.hops)] + ([(list(r.protection_path), r.protection_hops or [])]
                                                      if r.protection_path else []):
            links = list(zip(path, path[1:]))
            blocks = []
            for link, hop in zip(links, hops):
                held = {int(x) % period for x in hop.slots}
                starts = [x for x in held if (x - 1) % period not in held]
                if link not in self._info or (hop.src, hop.dst) != link or len(starts) != 1:
                    break
                blocks.append((starts[0], len(held)))
            if len(blocks) != len(links) or not links:
                out.append(None)
                continue
            cur = t0 + (blocks[0][0] - t0) % period
            for i in range(1, len(blocks)):
                earliest = cur + blocks[i - 1][1] + self._info[links[i - 1]][3]
                cur = earliest + (blocks[i][0] - earliest) % period
            _, prop, proc, _ = self._info[links[-1]]
            out.append((cur + blocks[-1][1] - t0) * slot + prop + proc)
        return out

    def timing_violation(self, r: Reservation) -> str | None:
        """Why the slots of ``r`` no longer keep its stored latency bound on this topology, or None."""
        stored = [r.latency_bound_ns] + ([r.protection_latency_bound_ns or r.latency_bound_ns]
                                         if r.protection_path else [])
        for which, got, bound in zip(("path", "protection path"), self.path_bounds_ns(r), stored):
            if got is not None and got > bound:
                return (f"reservation {r.id}: on this topology its {which} would take {got} ns with its slots, "
                        f"above its bound of {bound} ns (propagation or processing changed)")
        return None

    def restore(self, reservation: Reservation) -> None:
        """Place a reservation exactly as given (store reload, schedule import).

        The slots of every hop must repeat with the reservation's period (they may be expressed
        in any cycle that is a multiple of the period), cover the frame's transmission on that
        link, follow the path's links and not conflict with what is held. ValueError otherwise;
        nothing changes on error. The cycle grows to take the period if needed.
        """
        with self._lock:
            r = reservation
            if r.id in self._entries:
                raise ValueError(f"reservation {r.id} already exists")
            if self.tenants is not None:
                if r.tenant not in self.tenants:
                    raise ValueError(f"reservation {r.id}: unknown tenant {r.tenant}")
            elif r.tenant < 1:
                raise ValueError(f"reservation {r.id}: tenant ids start at 1")
            if r.period_ns <= 0 or r.period_ns % self.slot_ns:
                raise ValueError(f"reservation {r.id}: period {r.period_ns} ns is not a multiple of the slot")
            period = r.period_ns // self.slot_ns
            cycle = self._tables.cycle_slots
            new_cycle = math.lcm(cycle, period)
            if new_cycle * self.slot_ns > self.max_cycle_ns:
                raise ValueError(f"reservation {r.id}: hyperperiod would be {new_cycle * self.slot_ns} ns, "
                                 f"above max_cycle_ns {self.max_cycle_ns}")
            links: list[Link] = []
            all_hops: list = []
            for path, hops in [(list(r.path), r.hops)] + ([(list(r.protection_path), r.protection_hops or [])]
                                                        if r.protection_path else []):
                plinks = list(zip(path, path[1:]))
                if len(path) < 2 or len(hops) != len(plinks):
                    raise ValueError(f"reservation {r.id}: hops do not match the path")
                links += plinks
                all_hops += list(hops)
            if len(set(links)) != len(links):
                raise ValueError(f"reservation {r.id}: its paths share a link")
            residues: list[np.ndarray] = []
            for link, hop in zip(links, all_hops):
                if (hop.src, hop.dst) != link:
                    raise ValueError(f"reservation {r.id}: hop {hop.src}-{hop.dst} is not on the path")
                if link not in self._info:
                    raise ValueError(f"reservation {r.id}: no link {link[0]}-{link[1]} in the topology")
                s = np.asarray(hop.slots, dtype=np.int64)
                if len(s) == 0 or (s < 0).any():
                    raise ValueError(f"reservation {r.id}: hop {hop.src}-{hop.dst} has no or negative slots")
                res = np.unique(s % period)
                c0 = (int(s.max()) // period + 1) * period
                if not np.array_equal(np.unique(s), expand_residues(res, period, c0)):
                    raise ValueError(f"reservation {r.id}: slots of hop {hop.src}-{hop.dst} do not repeat "
                                     "every period")
                need = self._need(r.frame_bytes, self._info[link][0])
                if len(res) < need:
                    raise ValueError(f"reservation {r.id}: hop {hop.src}-{hop.dst} holds {len(res)} slots per "
                                     f"period, the frame needs {need}")
                if self._tables.folded(link, period, new_cycle)[res].any():
                    raise ValueError(f"reservation {r.id}: slot conflict on link {link[0]}-{link[1]}")
                residues.append(res)
            if not r.tx_offsets_ns:
                raise ValueError(f"reservation {r.id}: no tx offsets")
            tx_res = sorted({int(t) % r.period_ns for t in r.tx_offsets_ns})
            if new_cycle != cycle:
                self._grow(new_cycle)
            res_copy = Reservation.from_dict(r.to_dict())
            e = _Entry(res_copy, links, period, residues, tx_res, r.bandwidth_bps, len(r.hops))
            self._occupy(e)
            self._expand_entry(e)
            self._entries[r.id] = e
            self._res[r.id] = res_copy
            self._note_id(r.id)
            if self.tenants is not None:
                self.tenants.charge(r.tenant, r.bandwidth_bps)

    # ----- internals --------------------------------------------------------
    def _need(self, frame_bytes: int, cap_bps: int) -> int:
        return -(-frame_bytes * 8_000_000_000 // (cap_bps * self.slot_ns))

    def _new_id(self) -> str:
        """The id the next generated reservation gets (nothing is taken until it is committed)."""
        while self._next_id in self._ids_ahead or f"r{self._next_id}" in self._entries:
            self._ids_ahead.discard(self._next_id)
            self._next_id += 1
        return f"r{self._next_id}"

    def _note_id(self, rid: str) -> None:
        """Record that ``rid`` is used: a generated-form id is never generated again."""
        m = _GENERATED_ID.fullmatch(rid)
        if m is not None and int(m.group(1)) >= self._next_id:
            self._ids_ahead.add(int(m.group(1)))

    def _place(self, req: Request, *, allow_degraded: bool = False) -> Reservation | Rejection:
        """Plan and commit (one path, or a protected pair; ``allow_degraded``: one path when no pair fits)."""
        if req.protection == "disjoint":
            pair = self._plan_protected(req)
            if not isinstance(pair, Rejection):
                return self._commit(pair[0], pair[1])
            if not allow_degraded:
                return pair
        plan = self._plan(req)
        if isinstance(plan, Rejection):
            return plan
        return self._commit(plan)

    def _plan_protected(self, req: Request, *, network_only: bool = False) -> tuple[_Plan, _Plan] | Rejection:
        """A first path and a link-disjoint second path, both with slots (nothing committed)."""
        first = self._plan(req, probe=True, network_only=network_only)
        if isinstance(first, Rejection) and first.reason != "ok":
            return first
        if req.paths:
            try:
                primaries = [p for p in self._paths.check_hints(req.src, req.dst, req.paths)
                             if not self._paths.crosses_failed(p)]
            except InvalidRequest as e:
                return Rejection(f"invalid:{e.field}", e.detail)
        else:
            primaries = list(self._paths.candidates(req.src, req.dst))
        fallback = self._paths.disjoint_pair(req.src, req.dst)
        attempts: list[tuple[tuple[str, ...], list[tuple[str, ...]] | None]] = [(p, None) for p in primaries]
        if fallback:
            attempts.append((fallback[0], [fallback[1]]))
        prim_rej: Rejection | None = None
        sec_rej: Rejection | None = None
        for path, second in attempts:
            prim = self._plan(req, only=[path], network_only=network_only)
            if isinstance(prim, Rejection):
                prim_rej = prim_rej or prim
                continue
            start = prim.starts[0] % prim.period
            if second is None:
                sec = self._plan(req, avoid=prim.links, start=start, secondary=True,
                                 network_only=network_only)
            else:
                sec = self._plan(req, only=second, start=start, secondary=True, network_only=network_only)
            if isinstance(sec, Rejection):
                if sec.code != "no_path" or sec_rej is None:
                    sec_rej = sec
                continue
            return prim, sec
        if sec_rej is not None:
            if sec_rej.code == "no_path":
                return Rejection("no_disjoint_path", f"no second path from {req.src} to {req.dst} is link-disjoint "
                                                     "from a first path with room")
            return Rejection(sec_rej.reason, "protection path: " + sec_rej.detail)
        if prim_rej is not None:
            return prim_rej
        return Rejection("no_path", f"{req.src} and {req.dst} are not connected")

    def _keep_and_reprotect(self, e: _Entry, old: Reservation, keep: str, req: Request) -> Reservation:
        """Re-occupy the surviving path of a (dropped) protected entry exactly, plus a new disjoint
        second path when one fits."""
        n1 = e.n_primary if e.n_primary is not None else len(e.links)
        if keep == "primary":
            sl = slice(0, n1)
            path, hops, bound = list(old.path), old.hops, old.latency_bound_ns
        else:
            sl = slice(n1, len(e.links))
            path, hops = list(old.protection_path), old.protection_hops or []
            bound = int(old.protection_latency_bound_ns or old.latency_bound_ns)
        links, residues = e.links[sl], e.residues[sl]
        start = e.tx_residues[0] // self.slot_ns % e.period
        sec = self._plan(req, avoid=links, start=start, secondary=True)
        res = Reservation.from_dict(old.to_dict())
        res.path, res.hops, res.latency_bound_ns = path, [Hop(h.src, h.dst, list(h.slots)) for h in hops], bound
        res.protection_path = res.protection_hops = res.protection_latency_bound_ns = None
        res.status = res.status_reason = None
        if not isinstance(sec, Rejection):
            c = self._tables.cycle_slots
            res.protection_path = list(sec.path)
            res.protection_hops = [Hop(l[0], l[1], expand(s % sec.period, n, sec.period, c).tolist())
                                   for l, s, n in zip(sec.links, sec.starts, sec.ns)]
            res.protection_latency_bound_ns = sec.bound_ns
            links = links + sec.links
            residues = residues + [(s % sec.period + np.arange(n, dtype=np.int64)) % sec.period
                                   for s, n in zip(sec.starts, sec.ns)]
        ne = _Entry(res, links, e.period, residues, list(e.tx_residues), e.bps, len(path) - 1)
        self._occupy(ne)
        self._expand_entry(ne)
        self._entries[res.id] = ne
        self._res[res.id] = res
        if self.tenants is not None:
            self.tenants.charge(res.tenant, ne.bps)
        return res

    def _drop(self, e: _Entry) -> None:
        """Free an entry's slots, credit its tenant and forget it."""
        c = self._tables.cycle_slots
        for link, res in zip(e.links, e.residues):
            self._tables.free(link, expand_residues(res, e.period, c))
            self._link_bps[link] = self._link_bps.get(link, 0) - e.bps
        del self._entries[e.res.id]
        del self._res[e.res.id]
        if self.tenants is not None:
            self.tenants.credit(e.res.tenant, e.bps)

    def _reinstate(self, e: _Entry) -> None:
        """Put a dropped entry back exactly (its slots were free since it was dropped)."""
        self._occupy(e)
        self._expand_entry(e)
        self._entries[e.res.id] = e
        self._res[e.res.id] = e.res
        if self.tenants is not None:
            self.tenants.charge(e.res.tenant, e.bps)

    def _plan(self, req: Request, *, only: list | None = None, avoid: list[Link] | None = None,
              start: int | None = None, secondary: bool = False, probe: bool = False,
              network_only: bool = False) -> _Plan | Rejection:
        """Search a placement. ``only``: these candidate paths; ``avoid``: paths link-disjoint from
        these links; ``start``: the first hop must start within max_wait_slots of this residue
        (latency counted from it); ``secondary``: the second path of a protected reservation (no
        id or quota check: the first path's plan did them); ``probe``: only validate the request;
        ``network_only``: no tenant check and no quota (the tenant book is left out)."""
        try:
            req.validate()
        except InvalidRequest as e:
            return Rejection(f"invalid:{e.field}", e.detail)
        book = None if network_only else self.tenants
        if book is not None:
            if req.tenant not in book:
                return Rejection("invalid:tenant", f"unknown tenant {req.tenant}")
        elif req.tenant < 1 and not network_only:
            return Rejection("invalid:tenant", "tenant ids start at 1")
        for name in ("src", "dst"):
            if getattr(req, name) not in self._graph:
                return Rejection(f"invalid:{name}", f"unknown node {getattr(req, name)!r}")
        if req.id is not None and req.id in self._entries and not secondary:
            return Rejection("exists", f"reservation {req.id} already exists")
        slot = self.slot_ns
        period_ns = req.effective_period_ns()
        if period_ns % slot:
            return Rejection("invalid:period_ns", f"period {period_ns} ns is not a multiple of the slot ({slot} ns)")
        period = period_ns // slot
        cycle = self._tables.cycle_slots
        new_cycle = math.lcm(cycle, period)
        if new_cycle * slot > self.max_cycle_ns:
            return Rejection("invalid:period_ns",
                             f"with period {period_ns} ns the hyperperiod would be {new_cycle * slot} ns, "
                             f"above the limit of {self.max_cycle_ns} ns")
        if req.max_jitter_ns is not None and req.max_jitter_ns < slot:
            return Rejection(f"jitter:{slot}", f"the jitter bound is one slot ({slot} ns), above {req.max_jitter_ns} ns")
        frame = req.effective_frame_bytes()
        bps = req.effective_bandwidth_bps()
        if book is not None and not secondary:
            why = book.check(req.tenant, bps)
            if why:
                return Rejection("quota", why)
        if probe:
            return Rejection("ok", "request is valid")
        if only is not None:
            cands = [tuple(p) for p in only if not self._paths.crosses_failed(p)]
        elif avoid is not None:
            cands = self._paths.candidates_avoiding(req.src, req.dst, avoid)
        elif req.paths:
            try:
                cands = self._paths.check_hints(req.src, req.dst, req.paths)
            except InvalidRequest as e:
                return Rejection(f"invalid:{e.field}", e.detail)
            cands = [p for p in cands if not self._paths.crosses_failed(p)]
            if not cands:
                return Rejection("no_path", "every hinted path crosses a failed link")
        else:
            cands = self._paths.candidates(req.src, req.dst)   # lazy: paths are searched as needed

        per_period = new_cycle // period
        scale = new_cycle // cycle
        limit = int(self.max_share * new_cycle)
        tables, info, max_lat = self._tables, self._info, req.max_latency_ns
        first_kind: str | None = None
        capacity_link: Link | None = None
        capacity_detail = ""
        best_latency: int | None = None
        tried = 0
        for path in cands:
            tried += 1
            links = list(zip(path, path[1:]))
            infos = [info[l] for l in links]
            ns = [self._need(frame, i[0]) for i in infos]
            gaps = [i[3] for i in infos]
            tail_ns = infos[-1][1] + infos[-1][2]
            blocked = None
            for l, n in zip(links, ns):
                if n > period:
                    blocked, why = l, f"a frame needs {n} slots on {l[0]}-{l[1]}, more than the period ({period})"
                    break
            if blocked is None:
                lower = (sum(ns[:-1]) + sum(gaps[:-1]) + ns[-1]) * slot + tail_ns
                if lower > max_lat:
                    first_kind = first_kind or "latency"
                    best_latency = lower if best_latency is None else min(best_latency, lower)
                    continue
            for l, n in zip(links, ns):
                if blocked is not None:
                    break
                if tables.used(l) * scale + n * per_period > limit:
                    blocked, why = l, f"link {l[0]}-{l[1]} would exceed its reservable share ({self.max_share:g})"
                    break
            if blocked is None:
                masks = []
                for l, n in zip(links, ns):
                    m = tables.start_mask(l, period, n, new_cycle)
                    if not m.any():
                        blocked, why = l, f"no free block of {n} slots per period on {l[0]}-{l[1]}"
                        break
                    masks.append(m)
            if blocked is None and start is None:
                # the common case: some first offset waits nowhere (the lowest bound there is)
                shifts = [0]
                for n, gap in zip(ns[:-1], gaps[:-1]):
                    shifts.append(shifts[-1] + n + gap)
                r0 = first_no_wait(masks, shifts)
                if r0 >= 0:
                    bound = (shifts[-1] + ns[-1]) * slot + tail_ns
                    if bound > max_lat:
                        first_kind = first_kind or "latency"
                        best_latency = bound if best_latency is None else min(best_latency, bound)
                        continue
                    rid = req.id if req.id is not None else self._new_id()
                    return _Plan(rid, req, new_cycle, period, frame, bps, tuple(path), links,
                                 [r0 + x for x in shifts], ns, bound)
            if blocked is None:
                hops = [(tables.start_residues(l, period, n, new_cycle), n, gap)
                        for l, n, gap in zip(links, ns, gaps)]
                first_starts = hops[0][0]
                if start is not None:
                    window = (start + np.arange(self.max_wait_slots + 1, dtype=np.int64))
                    first_starts = window[np.isin(window % period, first_starts)]
                    if len(first_starts) == 0:
                        l = links[0]
                        blocked, why = l, (f"no slots on {l[0]}-{l[1]} within {self.max_wait_slots} slots of the "
                                           "first path's start")
            if blocked is None:
                S, failed = chain(first_starts, hops, period, self.max_wait_slots)
                if failed >= 0:
                    l = links[failed]
                    blocked, why = l, (f"no slots on {l[0]}-{l[1]} within {self.max_wait_slots} slots of wait "
                                       "for any offset")
            if blocked is not None:
                if first_kind is None:
                    first_kind, capacity_link, capacity_detail = "capacity", blocked, why
                continue
            lat = S[:, -1] + ns[-1] - (S[:, 0] if start is None else start)
            best = int(np.argmin(lat))
            bound = int(lat[best]) * slot + tail_ns
            if bound > max_lat:
                first_kind = first_kind or "latency"
                best_latency = bound if best_latency is None else min(best_latency, bound)
                continue
            rid = req.id if req.id is not None else self._new_id()
            return _Plan(rid, req, new_cycle, period, frame, bps, tuple(path), links,
                         [int(x) for x in S[best]], ns, bound)
        if not tried:
            return Rejection("no_path", f"{req.src} and {req.dst} are not connected")
        if first_kind == "latency" or capacity_link is None:
            return Rejection(f"latency:{best_latency}",
                             f"best latency bound {best_latency} ns is above the requested {max_lat} ns")
        return Rejection(f"capacity:{capacity_link[0]}-{capacity_link[1]}", capacity_detail)

    def _build(self, plan: _Plan, cycle: int, second: _Plan | None = None,
               slots: list[np.ndarray] | None = None) -> Reservation:
        """The Reservation of a plan (and its protection plan); ``slots``: every hop's held slot
        indices over ``cycle`` when the caller has them already (primary hops, then protection)."""
        slot, period, req = self.slot_ns, plan.period, plan.request
        if slots is None:
            slots = [expand(s % period, n, period, cycle)
                     for pl in [plan] + ([second] if second is not None else [])
                     for s, n in zip(pl.starts, pl.ns)]
        hops = [Hop(l[0], l[1], idx.tolist()) for l, idx in zip(plan.links, slots)]
        s0 = plan.starts[0] % period
        tx = [(s0 + k * period) * slot for k in range(cycle // period)]
        res = Reservation(
            id=plan.id, tenant=req.tenant, src=req.src, dst=req.dst, period_ns=period * slot,
            frame_bytes=plan.frame_bytes, bandwidth_bps=plan.bps, max_latency_ns=req.max_latency_ns,
            latency_bound_ns=plan.bound_ns, jitter_bound_ns=slot, path=list(plan.path), hops=hops,
            tx_offsets_ns=tx, max_jitter_ns=req.max_jitter_ns, match=dict(req.match),
            protection=req.protection)
        if second is not None:
            res.protection_path = list(second.path)
            res.protection_hops = [Hop(l[0], l[1], idx.tolist())
                                   for l, idx in zip(second.links, slots[len(plan.links):])]
            res.protection_latency_bound_ns = second.bound_ns
        return res

    def _commit(self, plan: _Plan, second: _Plan | None = None) -> Reservation:
        if plan.cycle != self._tables.cycle_slots:
            self._grow(plan.cycle)
        p, c = plan.period, plan.cycle
        links = list(plan.links) + (list(second.links) if second is not None else [])
        residues = [(s % p + np.arange(n, dtype=np.int64)) % p for s, n in zip(plan.starts, plan.ns)]
        if second is not None:
            residues += [(s % p + np.arange(n, dtype=np.int64)) % p for s, n in zip(second.starts, second.ns)]
        slots = [expand_residues(r, p, c) for r in residues]     # computed once: the hops and the tables
        res = self._build(plan, c, second, slots)
        e = _Entry(res, links, p, residues, [plan.starts[0] % p * self.slot_ns], plan.bps, len(plan.links))
        self._occupy(e, slots)
        self._entries[res.id] = e
        self._res[res.id] = res
        self._note_id(res.id)
        if self.tenants is not None:
            self.tenants.charge(res.tenant, plan.bps)
        return res

    def _occupy(self, e: _Entry, slots: list[np.ndarray] | None = None) -> None:
        """Mark an entry's slots held on every hop, all or nothing (``slots``: the hops' indices
        over the current cycle, when the caller has them)."""
        c = self._tables.cycle_slots
        done: list[tuple[Link, np.ndarray]] = []
        try:
            for i, (link, res) in enumerate(zip(e.links, e.residues)):
                idx = expand_residues(res, e.period, c) if slots is None else slots[i]
                self._tables.occupy(link, idx)
                done.append((link, idx))
        except ValueError:
            for link, idx in done:
                self._tables.free(link, idx)
            raise
        for link in e.links:
            self._link_bps[link] = self._link_bps.get(link, 0) + e.bps

    def _expand_entry(self, e: _Entry) -> None:
        """Rewrite an entry's Reservation slots and tx offsets for the current cycle."""
        c = self._tables.cycle_slots
        for hop, res in zip(list(e.res.hops) + list(e.res.protection_hops or []), e.residues):
            hop.slots = expand_residues(res, e.period, c).tolist()
        pns = e.period * self.slot_ns
        e.res.tx_offsets_ns = sorted(t + k * pns for k in range(c // e.period) for t in e.tx_residues)

    def _grow(self, new_cycle: int) -> None:
        """Tile all tables to the new cycle and re-expand every reservation's slots and offsets."""
        self._tables.grow(new_cycle)
        for e in self._entries.values():
            self._expand_entry(e)
