"""Line-rate simulation of a Schedule JSON: every reserved frame, at the links' real rates, through 802.1Qbv gates.

Pure (numpy; no os_ken, Mininet or tools): ``simulate(schedule_dict)`` returns a ``SimulationResult``;
``dnctl simulate`` (tools/cli/cmd_simulate.py) prints it. docs/simulator.md states the model; in short:

- **Frames.** A reservation sends ``frame_bytes`` at each of its ``tx_offsets_ns`` (every period of
  the cycle) as a train of MTU frames (the last one shorter), queued at the first egress port at the
  offset, as the scheduler models it (no preamble or inter-frame gap: the scheduler counts none).
- **Ports.** Every directed link is an egress port of ``capacity_bps``, non-preemptive, store and
  forward: a frame sent at ``t`` on a link is ready at the next egress port at
  ``t + transmission + propagation_ns + processing_ns`` and delivered at the destination the same way.
- **Gates** come from ``schedules.gcl`` (one source of what a link carries): a reserved frame may start
  only in an open window of its gate and only if it ends before the window closes (length-aware, as
  a bridge with a guard band). ``gates="stream"`` (default): each reservation's GCL entries open its
  own gate, as the slotted model assumes (per-stream gates or one queue per window, as the TSNKit
  export does). ``gates="class"``: all reserved frames share one FIFO of traffic class 7, open in
  every reserved window (a plain ``taprio`` with one reserved class); frames sent outside their own
  window are then reported.
- **Best effort** (``cross_traffic=F``): MTU frames that may start only while the best-effort gates
  are open and only if they end before the next reserved window (guard band of one best-effort
  frame; ``guard_band=False`` lets them start until the window opens). A best-effort frame can only
  reach a reserved frame by being on the wire when a reserved window opens, so that is where it is
  simulated: at the end of every best-effort gap the port is busy with best effort with probability
  F (its utilisation; over ``cycles`` cycles, at least once with probability 1 - (1 - F)^cycles), and
  that frame goes on the port timeline as late as the gate lets it start. Throughput is a fluid
  count (``_best_effort``): at 1.2 Tb/s a port sends 800,000 MTU frames per 8 ms.

The reserved traffic repeats exactly every cycle, so it is computed in its **steady state** on a
circular timeline of one cycle per port: frames released in earlier cycles that are still in flight
fold onto the same port timeline, as after an infinitely long warm-up. Per port, frames are served in
order of eligibility (vectorised: a cumulative maximum gives every start of a busy period at once);
a frame that cannot end inside its window is held to its next window and the port is re-served,
and the hops are iterated until no start moves.

Violations, each with what a person needs to act (kind, link, slot, time, reservations):
``overlap`` (two reservations hold one slot of a link), ``missed_window`` (a frame could not be sent
in the window it was ready for: held to a later one; names who held the port), ``outside_gate``
(class gates: a frame sent in another reservation's window), ``no_window`` (no window of the
reservation on that link can ever carry the frame), ``late`` (worst latency above
``latency_bound_ns``), ``jitter`` (above ``jitter_bound_ns``), ``best_effort_collision`` (a best-effort
frame on the wire in a reserved frame's time), ``unstable`` (more reserved traffic than the windows carry).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from schedules.gcl import GCLError, gate_control_list

#: Best-effort and reserved frames are cut to this many bytes (the scheduler's trains, Ethernet's MTU).
MTU_BYTES = 1500
#: Processing delay per hop when neither the link nor the caller says (the scheduler's default).
DEFAULT_PROCESSING_NS = 1000
#: Time unit inside the simulator: picoseconds, so a 64-byte frame at 1.2 Tb/s is still exact enough.
PS_PER_NS = 1000
GATE_MODES = ("stream", "class")
_NEVER = np.int64(2**62)


class SimulationInputError(ValueError):
    """The document is not a simulable Schedule JSON; the message is one line."""


@dataclass(frozen=True)
class Violation:
    """One problem, grouped per (kind, link, reservations): ``count`` frames or slots, the first at ``time_ns``."""

    kind: str
    link: str | None
    slot: int | None
    time_ns: int | None
    reservations: tuple[str, ...]
    detail: str
    count: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "link": self.link, "slot": self.slot, "time_ns": self.time_ns,
                "reservations": list(self.reservations), "count": self.count, "detail": self.detail}


@dataclass
class FlowResult:
    """What one reservation's frames saw (a protected reservation has one result per path)."""

    id: str
    path: str                   # "primary" or "protection"
    frames: int                 # MTU frames per cycle
    delivered: bool
    worst_latency_ns: float
    best_latency_ns: float
    jitter_ns: float
    latency_bound_ns: int
    jitter_bound_ns: int

    @property
    def latency_ratio(self) -> float:
        return self.worst_latency_ns / self.latency_bound_ns if self.latency_bound_ns > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "path": self.path, "frames": self.frames, "delivered": self.delivered,
                "worst_latency_ns": _num(self.worst_latency_ns), "best_latency_ns": _num(self.best_latency_ns),
                "jitter_ns": _num(self.jitter_ns), "latency_bound_ns": self.latency_bound_ns,
                "jitter_bound_ns": self.jitter_bound_ns, "latency_ratio": _num(self.latency_ratio, 6)}


@dataclass
class SimulationResult:
    """The outcome of ``simulate``; ``to_dict`` is the ``dnctl simulate --json`` document."""

    cycle_ns: int
    slot_ns: int
    cycles: int
    cross_traffic: float
    gates: str
    mtu_bytes: int
    flows: list[FlowResult]
    frames: int                 # reserved MTU frames per cycle, end to end
    frame_hops: int             # reserved frame transmissions per cycle
    violations: list[Violation]
    best_effort: dict[str, Any]
    rounds: int
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def worst_latency_ratio(self) -> float:
        return max((f.latency_ratio for f in self.flows), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "reservations": len({f.id for f in self.flows}), "flows": len(self.flows),
                "frames": self.frames, "frame_hops": self.frame_hops, "cycles": self.cycles,
                "cycle_ns": self.cycle_ns, "slot_ns": self.slot_ns, "cross_traffic": self.cross_traffic,
                "gates": self.gates, "mtu_bytes": self.mtu_bytes,
                "worst_latency_ratio": _num(self.worst_latency_ratio, 6),
                "violations": [v.to_dict() for v in self.violations],
                "violations_by_kind": _count_kinds(self.violations),
                "best_effort": self.best_effort, "rounds": self.rounds, "seconds": round(self.seconds, 3),
                "timings": {k: round(v, 3) for k, v in self.timings.items()},
                "per_reservation": [f.to_dict() for f in self.flows]}


def _num(x: float, digits: int = 1) -> float | None:
    return None if not math.isfinite(x) else round(float(x), digits)


def _count_kinds(vs: list[Violation]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in vs:
        out[v.kind] = out.get(v.kind, 0) + 1
    return dict(sorted(out.items()))


# ----- reading the schedule ------------------------------------------------------------------
@dataclass
class _Flow:
    name: str                   # key of its gate entries (the reservation id, or id + PROTECTION_SUFFIX)
    rid: str
    path: str
    links: list[int]
    hops: list[dict[str, Any]]
    frame_bytes: int
    offsets_ns: list[int]
    bound_ns: int
    jitter_bound_ns: int


PROTECTION_SUFFIX = "\x00protection"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _read(schedule: Any, processing_ns: int):
    """Validate the parts the simulation needs; return (cycle, slot, link names, link table, flows)."""
    if not isinstance(schedule, dict):
        raise SimulationInputError("schedule: expected a Schedule JSON object")
    cycle_ns, slot_ns = schedule.get("cycle_ns"), schedule.get("slot_ns")
    if not _is_int(slot_ns) or slot_ns <= 0 or not _is_int(cycle_ns) or cycle_ns <= 0 or cycle_ns % slot_ns:
        raise SimulationInputError("schedule: cycle_ns must be a positive multiple of a positive slot_ns")
    links = schedule.get("links")
    if not isinstance(links, list) or not links:
        raise SimulationInputError("schedule: 'links' must be a non-empty list")
    index: dict[tuple[str, str], int] = {}
    table: list[tuple[int, int, int]] = []       # capacity_bps, propagation_ns, processing_ns
    for i, l in enumerate(links):
        if not isinstance(l, dict) or not isinstance(l.get("src"), str) or not isinstance(l.get("dst"), str):
            raise SimulationInputError(f"schedule: link #{i} needs 'src' and 'dst' node names")
        cap, prop = l.get("capacity_bps"), l.get("propagation_ns")
        proc = l.get("processing_ns", processing_ns)
        if not _is_int(cap) or cap <= 0 or not _is_int(prop) or prop < 0 or not _is_int(proc) or proc < 0:
            raise SimulationInputError(f"schedule: link {l['src']}->{l['dst']} needs a positive capacity_bps and "
                                       "non-negative propagation_ns (and processing_ns if given)")
        key = (l["src"], l["dst"])
        if key in index:
            raise SimulationInputError(f"schedule: link {key[0]}->{key[1]} appears twice")
        index[key] = len(table)
        table.append((cap, prop, proc))
    raw = schedule.get("reservations")
    if not isinstance(raw, list):
        raise SimulationInputError("schedule: 'reservations' must be a list")
    n_slots = cycle_ns // slot_ns
    flows: list[_Flow] = []
    seen: set[str] = set()
    for i, r in enumerate(raw):
        if not isinstance(r, dict) or not isinstance(r.get("id"), str):
            raise SimulationInputError(f"schedule: reservation #{i} needs an 'id'")
        rid = r["id"]
        where = f"schedule: reservation {rid!r}"
        if rid in seen:
            raise SimulationInputError(f"{where} appears twice")
        seen.add(rid)
        fb, offs, bound = r.get("frame_bytes"), r.get("tx_offsets_ns"), r.get("latency_bound_ns")
        jb = r.get("jitter_bound_ns", slot_ns)
        if not _is_int(fb) or fb <= 0:
            raise SimulationInputError(f"{where}: frame_bytes must be a positive integer")
        if not _is_int(bound) or not _is_int(jb):
            raise SimulationInputError(f"{where}: latency_bound_ns and jitter_bound_ns must be integers")
        if not isinstance(offs, list) or not offs or not all(_is_int(t) and 0 <= t < cycle_ns for t in offs):
            raise SimulationInputError(f"{where}: tx_offsets_ns must be a non-empty list of times in [0, cycle_ns)")
        paths = [("primary", rid, r.get("path"), r.get("hops"), bound)]
        if r.get("protection_path"):
            pb = r.get("protection_latency_bound_ns", bound)
            paths.append(("protection", rid + PROTECTION_SUFFIX, r.get("protection_path"), r.get("protection_hops"),
                          pb if _is_int(pb) else bound))
        for kind, name, path, hops, b in paths:
            if not isinstance(hops, list) or not hops:
                raise SimulationInputError(f"{where}: {kind} hops must be a non-empty list")
            if isinstance(path, list) and [(h.get("src"), h.get("dst")) for h in hops if isinstance(h, dict)] \
                    != list(zip(path, path[1:])):
                raise SimulationInputError(f"{where}: {kind} hops do not follow its path")
            ids: list[int] = []
            for h in hops:
                if not isinstance(h, dict) or (h.get("src"), h.get("dst")) not in index:
                    raise SimulationInputError(f"{where}: hop {h.get('src') if isinstance(h, dict) else h}->"
                                               f"{h.get('dst') if isinstance(h, dict) else ''} is not a link of the "
                                               "schedule")
                s = h.get("slots")
                if not isinstance(s, list) or not all(_is_int(x) and 0 <= x < n_slots for x in s):
                    raise SimulationInputError(f"{where}: slots on {h['src']}->{h['dst']} must be slot indices in "
                                               f"0..{n_slots - 1}")
                ids.append(index[(h["src"], h["dst"])])
            flows.append(_Flow(name, rid, kind, ids, hops, fb, sorted(offs), int(b), int(jb)))
    names = [f"{u}->{v}" for u, v in index]
    return cycle_ns, slot_ns, names, list(index), table, flows


# ----- gates ---------------------------------------------------------------------------------
def _windows(cycle_ns: int, slot_ns: int, link: tuple[str, str], flows_here: list[tuple[_Flow, dict]],
             link_dicts: list[dict]) -> tuple[dict[str, list[tuple[int, int]]], bool]:
    """Each flow's open windows (ns, in the cycle; a window through the cycle's end continues past it)
    on one link, from its gate control list. Returns (windows by flow name, False if slots overlap)."""
    view = {"cycle_ns": cycle_ns, "slot_ns": slot_ns, "links": link_dicts,
            "reservations": [{"id": f.name, "hops": [h]} for f, h in flows_here]}
    out: dict[str, list[tuple[int, int]]] = {}
    clean = True
    try:
        gcls = [gate_control_list(view, *link)]
    except GCLError:
        clean = False   # two reservations hold one slot: one list per reservation shows what each expects
        gcls = [gate_control_list({**view, "reservations": [r]}, *link) for r in view["reservations"]]
    for g in gcls:
        for start, end, name in g.reserved_windows():
            w = out.setdefault(name, [])
            if w and w[-1][1] == start:
                w[-1] = (w[-1][0], end)
            else:
                w.append((start, end))
    for name, w in out.items():
        if len(w) > 1 and w[0][0] == 0 and w[-1][1] == cycle_ns:
            first = w.pop(0)
            w[-1] = (w[-1][0], cycle_ns + first[1])
        elif len(w) == 1 and w[0] == (0, cycle_ns):
            w[0] = (0, 2 * cycle_ns)        # always open
    return out, clean


class _Gates:
    """Open windows of many gates as one sorted array; ``fit`` finds the earliest start for many frames at once."""

    def __init__(self, windows: list[list[tuple[int, int]]], cycle_ps: int):
        self.cycle = cycle_ps
        self.span = 4 * cycle_ps
        counts = np.array([3 * len(w) for w in windows], dtype=np.int64)
        self.end_of = np.cumsum(counts)
        starts, ends, gids = [], [], []
        for g, w in enumerate(windows):
            for copy in (-cycle_ps, 0, cycle_ps):   # a window through the cycle's end also opens at 0
                for a, b in w:
                    starts.append(a * PS_PER_NS + copy)
                    ends.append(b * PS_PER_NS + copy)
                    gids.append(g)
        self.ws = np.array(starts, dtype=np.int64)
        self.we = np.array(ends, dtype=np.int64)
        self.key = np.array(gids, dtype=np.int64) * self.span + self.we + cycle_ps
        self.longest = np.zeros(len(windows), dtype=np.int64)
        if len(self.ws):
            np.maximum.at(self.longest, np.array(gids, dtype=np.int64), self.we - self.ws)

    def fit(self, gate: np.ndarray, t: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Earliest time >= t at which a frame of duration d is inside one open window of ``gate`` (_NEVER if none)."""
        out = np.full(len(t), _NEVER, dtype=np.int64)
        ok = self.longest[gate] >= d
        idx = np.flatnonzero(ok)
        if not len(idx):
            return out
        g, tt, dd = gate[idx], t[idx], d[idx]
        tm = tt % self.cycle
        j = np.searchsorted(self.key, g * self.span + tm + dd + self.cycle, side="left")
        while len(idx):
            jj = np.minimum(j, len(self.ws) - 1)
            valid = j < self.end_of[g]
            s = np.maximum(tm, self.ws[jj])
            good = valid & (self.we[jj] - s >= dd)
            out[idx[good]] = tt[good] - tm[good] + s[good]
            more = valid & ~good
            idx, g, tt, tm, dd, j = idx[more], g[more], tt[more], tm[more], dd[more], j[more] + 1
        return out


# ----- the per-port steady state -------------------------------------------------------------
def _seg_cummax(values: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Running maximum restarted at every segment (``seg`` sorted, non-decreasing)."""
    if not len(values):
        return values
    lo = values.min()
    big = int(values.max() - lo) + 1
    return np.maximum.accumulate((values - lo) + seg * big) - seg * big + lo


def _serve(link: np.ndarray, elig: np.ndarray, d: np.ndarray, cycle: int):
    """Non-preemptive FIFO service of every port on a circular timeline of one cycle.

    Returns (start, previous entry on the port for each entry or -1, unstable links). Frames are
    served in order of eligibility time modulo the cycle (ties: entry order); a busy period that runs
    past the cycle's end delays the start of the next cycle (the carry), iterated to a fixed point.
    """
    em = elig % cycle
    order = np.argsort(link.astype(np.int64) * cycle + em, kind="stable")
    L, e, dd = link[order], em[order], d[order]
    n = len(order)
    first = np.ones(n, dtype=bool)
    first[1:] = L[1:] != L[:-1]
    seg = np.cumsum(first) - 1
    firsts = np.flatnonzero(first)
    lasts = np.append(firsts[1:] - 1, n - 1)
    c = np.cumsum(dd)
    dx = c - dd
    drel = dx - dx[firsts][seg]
    cm = _seg_cummax(e - drel, seg)
    carry = np.zeros(len(firsts), dtype=np.int64)
    unstable = np.zeros(len(firsts), dtype=bool)
    for _ in range(64):
        s = np.maximum(cm, carry[seg]) + drel
        tail = s[lasts] + dd[lasts] - cycle
        new = np.maximum(tail, 0)
        if np.array_equal(new, carry):
            break
        unstable |= new >= cycle
        carry = np.minimum(new, cycle)
    else:
        unstable |= carry > 0
    prev_sorted = np.arange(n) - 1
    prev_sorted[firsts] = lasts            # the port's last frame of the previous cycle
    start = np.empty(n, dtype=np.int64)
    start[order] = elig[order] + (s - e)
    prev = np.empty(n, dtype=np.int64)
    prev[order] = order[prev_sorted]
    return start, prev, np.unique(L[firsts][unstable])


def simulate(schedule: dict[str, Any], *, cross_traffic: float = 0.0, cycles: int = 1, gates: str = "stream",
             processing_ns: int = DEFAULT_PROCESSING_NS, mtu_bytes: int = MTU_BYTES, guard_band: bool = True,
             seed: int = 1, max_rounds: int = 16, progress: Callable[[str], None] | None = None) -> SimulationResult:
    """Simulate a Schedule JSON document (see the module docstring); raises SimulationInputError on bad input.

    ``processing_ns`` applies to links that carry no ``processing_ns`` of their own (the Schedule
    JSON does not export it; the scheduler's default is 1000 ns, TSNKit instances use 2000 ns).
    """
    if not 0.0 <= cross_traffic <= 1.0:
        raise SimulationInputError("cross traffic must be a fraction in [0, 1]")
    if cycles < 1:
        raise SimulationInputError("cycles must be at least 1")
    if gates not in GATE_MODES:
        raise SimulationInputError(f"gates must be one of {', '.join(GATE_MODES)}")
    if mtu_bytes < 64:
        raise SimulationInputError("the MTU must be at least 64 bytes")
    say = progress or (lambda _m: None)
    t_all = time.perf_counter()
    timings: dict[str, float] = {}
    cycle_ns, slot_ns, link_names, link_keys, table, flows = _read(schedule, processing_ns)
    C = cycle_ns * PS_PER_NS
    n_links = len(link_keys)
    cap = np.array([t[0] for t in table], dtype=np.int64)
    pp_link = np.array([(t[1] + t[2]) * PS_PER_NS for t in table], dtype=np.int64)
    violations: list[Violation] = []

    # gates of every (flow, hop) from each link's gate control list
    t0 = time.perf_counter()
    per_link: list[list[tuple[_Flow, dict]]] = [[] for _ in range(n_links)]
    for f in flows:
        for li, h in zip(f.links, f.hops):
            per_link[li].append((f, h))
    link_dicts = [{"src": u, "dst": v} for u, v in link_keys]
    win_by_link: list[dict[str, list[tuple[int, int]]]] = []
    for li, here in enumerate(per_link):
        if not here:
            win_by_link.append({})
            continue
        w, clean = _windows(cycle_ns, slot_ns, link_keys[li], here, link_dicts)
        win_by_link.append(w)
        if not clean:
            violations += _overlaps(link_names[li], here, slot_ns)
    timings["gates"] = time.perf_counter() - t0
    say(f"simulate: gate control lists of {sum(1 for h in per_link if h)} links read in {timings['gates']:.1f} s")

    # entries: one per (flow, occurrence, MTU frame, hop), flow-major, hop fastest
    t0 = time.perf_counter()
    group_windows: list[list[tuple[int, int]]] = []
    names = ("flow", "hop", "occ", "k", "link", "group", "d", "rel", "last")
    cols: dict[str, list[np.ndarray]] = {k: [] for k in names}
    flow_frames: list[int] = []
    for fi, f in enumerate(flows):
        m = -(-f.frame_bytes // mtu_bytes)
        sizes = np.full(m, mtu_bytes, dtype=np.int64)
        sizes[-1] = f.frame_bytes - (m - 1) * mtu_bytes
        H, O = len(f.links), len(f.offsets_ns)
        flow_frames.append(m)
        base = len(group_windows)
        for li in f.links:
            group_windows.append(win_by_link[li].get(f.name, []))
        links = np.array(f.links, dtype=np.int64)
        hop = np.tile(np.arange(H, dtype=np.int64), O * m)
        kk = np.tile(np.repeat(np.arange(m, dtype=np.int64), H), O)
        occ = np.repeat(np.arange(O, dtype=np.int64), m * H)
        cols["flow"].append(np.full(O * m * H, fi, dtype=np.int64))
        cols["hop"].append(hop)
        cols["occ"].append(occ)
        cols["k"].append(kk)
        cols["link"].append(links[hop])
        cols["group"].append(base + hop)
        cols["d"].append(-(-(sizes[kk] * 8 * 10**12) // cap[links[hop]]))
        cols["rel"].append(np.array(f.offsets_ns, dtype=np.int64)[occ] * PS_PER_NS)
        cols["last"].append(hop == H - 1)
    E = {k: (np.concatenate(v) if v else np.empty(0, dtype=np.int64)) for k, v in cols.items()}
    n = len(E["d"])
    if gates == "class":
        # one reserved gate per port: the union of every reservation's windows there
        union: list[list[tuple[int, int]]] = []
        for li in range(n_links):
            ws = sorted(w for ws_ in win_by_link[li].values() for w in ws_)
            merged: list[tuple[int, int]] = []
            for a, b in ws:
                if merged and a <= merged[-1][1]:
                    merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
                else:
                    merged.append((a, b))
            union.append(merged)
        gate_of = E["link"]
        G = _Gates(union, C)
    else:
        gate_of = E["group"]
        G = _Gates(group_windows, C)
    own = _Gates(group_windows, C) if gates == "class" else G
    timings["build"] = time.perf_counter() - t0
    say(f"simulate: {len(flows)} flows, {n} frame transmissions per cycle, {gates} gates")

    # steady state: sweep the hops, serve every port, repeat until no start moves
    t0 = time.perf_counter()
    d, pp = E["d"], pp_link[E["link"]]
    levels = [np.flatnonzero(E["hop"] == h) for h in range(int(E["hop"].max()) + 1 if n else 0)]
    start = np.full(n, -1, dtype=np.int64)
    elig = np.zeros(n, dtype=np.int64)
    missed = np.zeros(n, dtype=bool)
    blocker = np.full(n, -1, dtype=np.int64)
    by_be = np.zeros(n, dtype=bool)
    missed_at = np.zeros(n, dtype=np.int64)      # where a held frame would have started
    unstable_links: set[int] = set()
    converged = True
    last_held, same_held = -1, 0
    be_link, be_at, be_d, be = _best_effort(win_by_link, cap, C, cycles, cross_traffic, mtu_bytes, guard_band, seed)
    rounds = 0
    for rounds in range(1, max_rounds + 1):
        prov = start.copy()
        for h, ix in enumerate(levels):
            if h == 0:
                ready = E["rel"][ix]
            else:
                p = ix - 1
                ready = np.where(prov[p] >= _NEVER, _NEVER, prov[p] + d[p] + pp[p])
            ready = np.maximum(ready, start[ix])
            e = np.where(ready >= _NEVER, _NEVER, G.fit(gate_of[ix], np.minimum(ready, _NEVER - 1), d[ix]))
            elig[ix] = e
            prov[ix] = e
        new = elig.copy()
        live = np.flatnonzero(elig < _NEVER)
        be_keep = np.ones(len(be_link), dtype=bool)
        todo = np.ones(n_links, dtype=bool)      # ports to serve (again): all, then those where a frame was held
        for _ in range(max_rounds):
            live = live[todo[E["link"][live]]]
            nl_ = len(live)
            bk = np.flatnonzero(be_keep & todo[be_link])
            s_all, prev_all, bad = _serve(np.concatenate([E["link"][live], be_link[bk]]),
                                          np.concatenate([elig[live], be_at[bk]]),
                                          np.concatenate([d[live], be_d[bk]]), C)
            unstable_links.update(int(x) for x in bad)
            late_be = s_all[nl_:] > be_at[bk]
            if late_be.any():               # the gate would not let a best-effort frame start that late
                be_keep[bk[late_be]] = False
                todo[:] = False
                todo[be_link[bk[late_be]]] = True
                live = np.flatnonzero(elig < _NEVER)
                continue
            s = s_all[:nl_]
            # who was on the wire before each reserved frame: an entry index, or -2 for best effort
            pa = prev_all[:nl_]
            prev = np.where(pa < nl_, live[np.minimum(pa, max(nl_ - 1, 0))], -2)
            fit = G.fit(gate_of[live], s, d[live])
            push = fit != s
            new[live] = s
            by_be[live] |= (pa >= nl_) & (s > elig[live])
            if not push.any():
                break
            pi = live[push]
            missed_at[pi] = np.where(missed[pi], missed_at[pi], s[push])
            missed[pi] = True
            blocker[pi] = np.where(blocker[pi] != -1, blocker[pi], prev[push])
            elig[pi] = fit[push]
            new[pi] = fit[push]
            todo[:] = False
            todo[E["link"][pi]] = True
            live = np.flatnonzero(elig < _NEVER)
        done = np.array_equal(new, start)
        start = new
        held = int(missed.sum())
        say(f"simulate: round {rounds}: {held} frames held so far")
        if done:
            break
        # the same frames held over and over while nothing new is held, for longer than a change needs
        # to run down the longest path: a queue that grows every cycle, not a fixed point to wait for
        same_held = same_held + 1 if held == last_held and held else 0
        last_held = held
        if same_held > len(levels) + 1:
            converged = False
            break
    else:
        converged = False
    timings["reserved"] = time.perf_counter() - t0

    # outcomes per flow
    t0 = time.perf_counter()
    never = start >= _NEVER
    last = np.flatnonzero(E["last"])
    deliver = np.where(never[last], _NEVER, start[last] + d[last] + pp[last])
    lat = (deliver - E["rel"][last]).astype(np.float64) / PS_PER_NS
    lat[deliver >= _NEVER] = math.inf
    fl = E["flow"][last]
    results: list[FlowResult] = []
    worst = np.full(len(flows), -math.inf)
    best = np.full(len(flows), math.inf)
    np.maximum.at(worst, fl, lat)
    np.minimum.at(best, fl, lat)
    # jitter: for each frame position of the train, spread of its latency over the occurrences
    key = fl * (max(flow_frames, default=1) + 1) + E["k"][last]
    uk, inv = np.unique(key, return_inverse=True)
    kmax = np.full(len(uk), -math.inf)
    kmin = np.full(len(uk), math.inf)
    np.maximum.at(kmax, inv, lat)
    np.minimum.at(kmin, inv, lat)
    spread = np.full(len(uk), math.inf)
    fin = np.isfinite(kmax)
    spread[fin] = kmax[fin] - kmin[fin]
    jit = np.zeros(len(flows))
    np.maximum.at(jit, uk // (max(flow_frames, default=1) + 1), spread)
    for fi, f in enumerate(flows):
        ok = bool(np.isfinite(worst[fi]))
        results.append(FlowResult(f.rid, f.path, flow_frames[fi], ok, float(worst[fi]), float(best[fi]),
                                  float(jit[fi]), f.bound_ns, f.jitter_bound_ns))
    violations += _frame_violations(E, flows, link_names, missed, missed_at, blocker, by_be, never, slot_ns, cycle_ns)
    if gates == "class":
        inside = own.fit(E["group"], np.where(never, 0, start), d) == start
        violations += _outside(E, flows, link_names, ~inside & ~never, start, slot_ns, cycle_ns)
    for li in sorted(unstable_links):
        violations.append(Violation("unstable", link_names[li], None, None, (),
                                    "reserved frames arrive faster than the link's windows send them: its queue grows "
                                    "every cycle"))
    if not converged:
        violations.append(Violation("unstable", None, None, None, (),
                                    f"frames were still being held to later windows after {max_rounds} rounds: "
                                    "some queue grows every cycle (see the missed_window violations)"))
    for fi, r in enumerate(results):
        label = _label(flows[fi])
        if r.delivered and r.worst_latency_ns > r.latency_bound_ns:
            violations.append(Violation("late", None, None, None, (r.id,),
                                        f"{label}: worst latency {r.worst_latency_ns:.0f} ns above its bound "
                                        f"{r.latency_bound_ns} ns"))
        if r.delivered and r.jitter_ns > r.jitter_bound_ns:
            violations.append(Violation("jitter", None, None, None, (r.id,),
                                        f"{label}: jitter {r.jitter_ns:.0f} ns above its bound {r.jitter_bound_ns} ns"))
    timings["verdicts"] = time.perf_counter() - t0

    # best effort that delayed a reserved frame (never, with the guard band)
    hit = np.flatnonzero(by_be & ~never)
    be["reserved_frames_delayed"] = int(len(hit))
    if len(hit):
        lk, cnt, first = _group_first(E["link"][hit], start[hit] % C)
        for li, c_, f_ in zip(lk, cnt, first):
            e = hit[f_]
            who = sorted({flows[int(x)].rid for x in E["flow"][hit[E["link"][hit] == li]]})
            t_ns = int(start[e] // PS_PER_NS)
            violations.append(Violation("best_effort_collision", link_names[int(li)], t_ns % cycle_ns // slot_ns,
                                        t_ns, tuple(who), f"{int(c_)} reserved frame(s) per cycle start late because "
                                        "a best-effort frame was still on the wire when their window opened", int(c_)))
    res = SimulationResult(cycle_ns, slot_ns, cycles, cross_traffic, gates, mtu_bytes, results,
                           int(E["last"].sum()), n, violations, be, rounds)
    res.timings = timings
    res.seconds = time.perf_counter() - t_all
    return res


def _label(f: _Flow) -> str:
    return f"{f.rid} (protection path)" if f.path == "protection" else f.rid


def _overlaps(link: str, here: list[tuple[_Flow, dict]], slot_ns: int) -> list[Violation]:
    """Every pair of reservations holding common slots on a link: one violation per pair, first slot and count."""
    slots = np.concatenate([np.asarray(h["slots"], dtype=np.int64) for _, h in here])
    owner = np.concatenate([np.full(len(h["slots"]), i, dtype=np.int64) for i, (_, h) in enumerate(here)])
    o = np.lexsort((owner, slots))
    slots, owner = slots[o], owner[o]
    dup = np.flatnonzero(slots[1:] == slots[:-1])
    pairs: dict[tuple[int, int], list[int]] = {}
    for i in dup:
        a, b = int(owner[i]), int(owner[i + 1])
        if a != b:
            pairs.setdefault((a, b), []).append(int(slots[i]))
    out = []
    for (a, b), ss in sorted(pairs.items(), key=lambda kv: kv[1][0]):
        fa, fb = here[a][0], here[b][0]
        out.append(Violation("overlap", link, ss[0], ss[0] * slot_ns, (fa.rid, fb.rid),
                             f"{len(ss)} slot(s) held by both {_label(fa)} and {_label(fb)}, the first at slot {ss[0]}",
                             len(ss)))
    return out


def _group_first(keys: np.ndarray, times: np.ndarray):
    """For each distinct key: (key, count, index of the earliest time)."""
    o = np.lexsort((times, keys))
    k = keys[o]
    firsts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    counts = np.diff(np.r_[firsts, len(k)])
    return k[firsts], counts, o[firsts]


def _frame_violations(E, flows, link_names, missed, missed_at, blocker, by_be, never, slot_ns,
                      cycle_ns) -> list[Violation]:
    """``no_window`` where a frame first could not go on, ``missed_window`` where it was held; per flow and link."""
    out: list[Violation] = []
    nl = len(link_names)
    first_lost = never & ((E["hop"] == 0) | ~np.r_[False, never[:-1]])
    be_keys = set((E["flow"][by_be] * nl + E["link"][by_be]).tolist())
    for kind, mask in (("no_window", first_lost), ("missed_window", missed & ~never)):
        ix = np.flatnonzero(mask)
        if not len(ix):
            continue
        keys = E["flow"][ix] * nl + E["link"][ix]
        order = np.argsort(keys, kind="stable")
        ix, keys = ix[order], keys[order]
        cuts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        for sel in np.split(ix, cuts[1:]):
            key = int(E["flow"][sel[0]] * nl + E["link"][sel[0]])
            f = flows[int(key // nl)]
            li = int(key % nl)
            cnt = len(sel)
            if kind == "no_window":
                out.append(Violation("no_window", link_names[li], None, None, (f.rid,),
                                     f"{_label(f)}: no window on {link_names[li]} is long enough for its frames "
                                     f"({cnt} frame(s) per cycle never sent)", cnt))
                continue
            bl_ = blocker[sel]
            others = sorted({flows[int(E["flow"][b])].rid for b in np.unique(bl_[bl_ >= 0])} - {f.rid})
            why = (f"the port was busy with {', '.join(others)}" if others else
                   "a best-effort frame held the port" if (bl_ == -2).any() or key in be_keys else
                   "its own earlier frames filled the window")
            t_ns = int(missed_at[sel].min() // PS_PER_NS)
            out.append(Violation("missed_window", link_names[li], t_ns % cycle_ns // slot_ns, t_ns,
                                 (f.rid, *others),
                                 f"{_label(f)}: {cnt} frame(s) per cycle held to a later window on {link_names[li]}: "
                                 f"{why}", cnt))
    return out


def _outside(E, flows, link_names, mask, start, slot_ns, cycle_ns) -> list[Violation]:
    ix = np.flatnonzero(mask)
    if not len(ix):
        return []
    nl = len(link_names)
    keys = E["flow"][ix] * nl + E["link"][ix]
    uk, counts, first = _group_first(keys, start[ix])
    out = []
    for key, cnt, fpos in zip(uk, counts, first):
        f = flows[int(key // nl)]
        li = int(key % nl)
        t_ns = int(start[ix[fpos]] // PS_PER_NS)
        out.append(Violation("outside_gate", link_names[li], t_ns % cycle_ns // slot_ns, t_ns, (f.rid,),
                             f"{_label(f)}: {cnt} frame(s) per cycle sent on {link_names[li]} outside its own window "
                             "(the reserved class's gate was open for another reservation)", int(cnt)))
    return out


def _best_effort(win_by_link, cap, C, cycles, F, mtu, guard_band, seed):
    """Best effort where it can reach a reserved frame, plus its throughput on every port.

    A best-effort frame can only touch a reserved frame if it is still on the wire when a reserved
    window opens, so only the last best-effort frame of every best-effort gap is put on the port
    timelines: it starts as late as the gate lets it (with the guard band, one frame time before the
    window; without, just before it), in a gap where the port is busy with best effort at that
    instant. A port at best-effort utilisation F is busy at a given instant with probability F; over
    ``cycles`` cycles a gap sees such a frame in at least one of them with probability
    1 - (1 - F)^cycles (drawn with ``seed``). Delays do not carry from one cycle to the next (a frame
    that misses its window is reported), so the steady state with these frames is the worst case
    over the cycles. Throughput is counted as a fluid: best effort offered at F times the time the
    reserved windows leave, carried up to what the gates let through (the guard band's cost).
    Returns (link, start ps, duration ps) of those frames and the figures.
    """
    n_links = len(win_by_link)
    dm = -(-(mtu * 8 * 10**12) // cap)                       # ps per best-effort frame, per link
    links, ats = [], []
    left = usable = 0
    offered = carried = 0.0
    rng = np.random.default_rng(seed)
    p_busy = 1.0 - (1.0 - F) ** cycles if F > 0 else 0.0
    for li in range(n_links):
        ws = sorted((a * PS_PER_NS, b * PS_PER_NS) for w in win_by_link[li].values() for a, b in w)
        busy: list[tuple[int, int]] = []
        for a, b in ws:
            if busy and a <= busy[-1][1]:
                busy[-1] = (busy[-1][0], max(b, busy[-1][1]))
            else:
                busy.append((a, b))
        if not busy:
            gaps = [(0, C)]
        else:
            gaps = [(b0, a1) for (_a0, b0), (a1, _b1) in zip(busy, busy[1:] + [(busy[0][0] + C, 0)]) if a1 > b0]
        ga = np.array([a for a, _ in gaps], dtype=np.int64)
        gb = np.array([b for _, b in gaps], dtype=np.int64)
        room = gb - ga
        fits = room // dm[li] if guard_band else -(-room // dm[li])
        left_l = int(room.sum())
        usable_l = int(np.minimum(fits * dm[li], room).sum()) if guard_band else left_l
        left += left_l
        usable += usable_l
        offered += F * left_l
        carried += min(F * left_l, usable_l)
        if not busy or p_busy <= 0:
            continue
        ok = (fits > 0) & (rng.random(len(gaps)) < p_busy)
        at = np.where(guard_band, gb - dm[li], gb - 1)[ok]
        if not guard_band:
            at = np.maximum(at, ga[ok])
        links.append(np.full(len(at), li, dtype=np.int64))
        ats.append(at % C)
    be_link = np.concatenate(links) if links else np.empty(0, dtype=np.int64)
    be_at = np.concatenate(ats) if ats else np.empty(0, dtype=np.int64)
    figures = {"load": F, "guard_band": guard_band, "mtu_bytes": mtu,
               "offered_share": round(offered / (n_links * C), 6) if n_links else 0.0,
               "carried_share": round(carried / (n_links * C), 6) if n_links else 0.0,
               "guard_band_loss": round(1 - usable / left, 6) if left else 0.0,
               "frames_at_gates": int(len(be_link)), "reserved_frames_delayed": 0}
    return be_link, be_at, dm[be_link] if len(be_link) else np.empty(0, dtype=np.int64), figures
