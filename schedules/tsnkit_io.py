"""TSNKit interop: read a TSNKit instance, schedule it with our Scheduler, write TSNKit's outputs.

TSNKit (``pip install tsnkit``, MIT, v0.3) is the benchmark toolkit of 802.1Qbv schedulers. Its files:

- stream CSV ``stream,src,dst,size,period,deadline,jitter``: ``dst`` is a list (TSNKit 0.3 itself
  accepts one destination only), ``size`` bytes per frame, times in ns. ``src``/``dst`` are end
  stations (nodes with one neighbour), each hanging off a switch.
- topology CSV ``link,q_num,rate,t_proc,t_prop`` (read by ``topologies.tsnkit_topo``).
- outputs ``GCL.csv`` (link,queue,start,end,cycle), ``OFFSET.csv`` (stream,frame,offset),
  ``ROUTE.csv`` (stream,link), ``QUEUE.csv`` (stream,frame,link,queue), ``DELAY.csv``
  (stream,frame,delay), checked by ``python -m tsnkit.simulation.tas TASK.csv OUTDIR/``.

Mapping to our model (docs/schedules.md explains the why):

- a stream is a Request (tenant 1, id ``s<stream>``, ``frame_bytes = size``, ``period_ns = period``,
  ``max_latency_ns = deadline``). TSNKit's delay of a stream is
  ``last hop start + transmission + t_proc - first hop start``, which is our latency bound
  ``(s_last + n_last - s_first) * slot + prop + proc`` exactly when ``slot_ns`` divides the
  transmission time; with the default 100 ns slot (TSNKit's own time unit) it does for every size
  TSNKit generates.
- the simulator forwards a frame ``size*8 ns + 2000 ns`` (its constant T_PROC) after it started,
  whatever the file's ``t_proc``; so each link's processing delay is raised to at least
  ``sim_proc_ns`` (2000) and the schedule agrees with the simulator.
- TSNKit's own heuristics enumerate paths by hop count; ours sorts by propagation, which TSNKit
  files set to 0, so each request carries its ``k`` fewest-hop paths as hints.
- multicast streams (several destinations) are refused with a clear error, as TSNKit 0.3 does.

Outputs follow the simulator's semantics: one OFFSET row per stream (our reservations repeat
exactly every period), one GCL row per reserved window (the gate of the frame's queue opens for
its block of slots; a block that runs through the end of the cycle stays one row whose end
exceeds the cycle, which is how the simulator keeps the gate open across the boundary), and
queues chosen per link so that a frame waiting for its window never shares a queue with another
frame whose window opens meanwhile.
"""

from __future__ import annotations

import ast
import csv
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import networkx as nx
import numpy as np

from controller.core.model import Request, Reservation
from controller.core.scheduler import Scheduler
from topologies.model import Topology, TopologyError
from topologies.tsnkit_topo import load_tsnkit_csv

#: TSNKit's time unit (tsnkit.core.T_SLOT): the simulator steps in 100 ns.
TSNKIT_SLOT_NS = 100
#: The simulator's fixed processing delay per hop (tsnkit.core.T_PROC).
TSNKIT_SIM_PROC_NS = 2000
STREAM_COLUMNS = ("stream", "src", "dst", "size", "period", "deadline", "jitter")
#: Tenant the TSNKit streams belong to (the scheduler's tenant ids start at 1).
TSNKIT_TENANT = 1


class TsnkitFormatError(ValueError):
    """A TSNKit file is missing, malformed or not supported; the message is one line."""


@dataclass(frozen=True)
class TsnStream:
    """One row of a TSNKit stream CSV."""

    id: int
    src: int
    dst: tuple[int, ...]
    size: int
    period: int
    deadline: int
    jitter: int

    @property
    def request_id(self) -> str:
        return f"s{self.id}"


@dataclass
class TsnkitInstance:
    """A TSNKit problem: the topology, the streams and the Requests they become.

    Unpacks as ``topology, requests = read_instance(...)``.
    """

    name: str
    topology: Topology
    streams: list[TsnStream]
    requests: list[Request]
    hyperperiod_ns: int
    queues: dict[tuple[str, str], int] = field(default_factory=dict)

    def __iter__(self) -> Iterator:
        yield self.topology
        yield self.requests

    def stream(self, request_id: str) -> TsnStream:
        return self._by_rid[request_id]

    def __post_init__(self) -> None:
        self._by_rid = {s.request_id: s for s in self.streams}


# ----- reading ------------------------------------------------------------------
def _int_field(value: str | None, what: str, where: str) -> int:
    try:
        x = float(str(value).strip())
    except (TypeError, ValueError):
        raise TsnkitFormatError(f"{where}: {what} {value!r} is not a number") from None
    if x != x or x in (float("inf"), float("-inf")) or x != int(x):
        raise TsnkitFormatError(f"{where}: {what} {value!r} is not an integer")
    if x < 0:
        raise TsnkitFormatError(f"{where}: {what} cannot be negative ({value!r})")
    return int(x)


def read_streams(path: str | Path) -> list[TsnStream]:
    """Parse and validate a TSNKit stream CSV (TSNKit's own rules, one-line errors)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise TsnkitFormatError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise TsnkitFormatError(f"{source}: is a directory, not a stream CSV") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TsnkitFormatError(f"{source}: cannot read ({e})") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if header and header[0] == "id":  # TSNKit accepts "id" for the first column
        header[0] = "stream"
    if tuple(header) != STREAM_COLUMNS:
        raise TsnkitFormatError(f"{source}: not a TSNKit stream CSV: header {','.join(header) or '(none)'} "
                                f"(expected {','.join(STREAM_COLUMNS)})")
    reader.fieldnames = header
    streams: list[TsnStream] = []
    seen: set[int] = set()
    for row in reader:
        where = f"{source}: line {reader.line_num}"
        if None in row or any(row.get(c) is None for c in STREAM_COLUMNS):
            raise TsnkitFormatError(f"{where}: expected {len(STREAM_COLUMNS)} fields")
        sid = _int_field(row["stream"], "stream", where)
        if sid in seen:
            raise TsnkitFormatError(f"{where}: stream {sid} appears twice")
        seen.add(sid)
        try:
            dst = ast.literal_eval(row["dst"].strip())
        except (ValueError, SyntaxError):
            dst = None
        if isinstance(dst, int) and not isinstance(dst, bool):
            dst = [dst]
        if not isinstance(dst, (list, tuple)) or not dst or not all(isinstance(d, int) and d >= 0 for d in dst):
            raise TsnkitFormatError(f"{where}: dst {row['dst']!r} is not a list of node ids like [3]")
        if len(dst) != 1:
            raise TsnkitFormatError(f"{where}: stream {sid} is multicast (dst {list(dst)}); only one destination "
                                    "per stream is supported (as in TSNKit 0.3)")
        s = TsnStream(sid, _int_field(row["src"], "src", where), tuple(dst),
                      _int_field(row["size"], "size", where), _int_field(row["period"], "period", where),
                      _int_field(row["deadline"], "deadline", where), _int_field(row["jitter"], "jitter", where))
        if s.size <= 0 or s.period <= 0:
            raise TsnkitFormatError(f"{where}: size and period must be positive")
        if s.deadline > s.period or s.jitter > s.period:
            raise TsnkitFormatError(f"{where}: deadline and jitter must not exceed the period (TSNKit's rule)")
        if s.src == s.dst[0]:
            raise TsnkitFormatError(f"{where}: stream {sid} has src equal to dst")
        streams.append(s)
    if not streams:
        raise TsnkitFormatError(f"{source}: no streams")
    return streams


def read_topology(path: str | Path, *, sim_proc_ns: int = TSNKIT_SIM_PROC_NS) -> Topology:
    """Read a TSNKit topology CSV; each link's processing delay is raised to ``sim_proc_ns``."""
    try:
        topo = load_tsnkit_csv(path)
    except TopologyError as e:
        raise TsnkitFormatError(str(e)) from None
    for _, _, d in topo.graph.edges(data=True):
        d["processing_ns"] = max(int(d.get("processing_ns", 0)), int(sim_proc_ns))
    return topo


def fewest_hop_paths(topo: Topology, src: str, dst: str, k: int) -> list[list[str]]:
    """Up to ``k`` simple paths by hop count (TSNKit's notion of a short path), end stations not crossed."""
    g = topo.graph
    es = {n for n, d in g.nodes(data=True) if d.get("role") == "end_station"} - {src, dst}
    view = nx.subgraph_view(g, filter_node=lambda n: n not in es)
    out: list[list[str]] = []
    try:
        for p in nx.shortest_simple_paths(view, src, dst):
            out.append(list(p))
            if len(out) >= k:
                break
    except (nx.NetworkXNoPath, nx.NodeNotFound):
        pass
    return out


def read_instance(task_csv: str | Path, topo_csv: str | Path, *, k_paths: int = 4,
                  sim_proc_ns: int = TSNKIT_SIM_PROC_NS) -> TsnkitInstance:
    """Read a TSNKit instance: ``topology, requests = read_instance(task, topo)``.

    Streams whose endpoints are not nodes of the topology raise TsnkitFormatError; streams with no
    path get a request without hints (the scheduler then rejects them as ``no_path``).
    """
    topo = read_topology(topo_csv, sim_proc_ns=sim_proc_ns)
    streams = read_streams(task_csv)
    requests: list[Request] = []
    for s in streams:
        src, dst = str(s.src), str(s.dst[0])
        for end in (src, dst):
            if not topo.has_node(end):
                raise TsnkitFormatError(f"{task_csv}: stream {s.id}: node {end} is not in {topo_csv}")
        hints = fewest_hop_paths(topo, src, dst, k_paths) or None
        requests.append(Request(tenant=TSNKIT_TENANT, src=src, dst=dst, max_latency_ns=max(1, s.deadline),
                                period_ns=s.period, frame_bytes=s.size, paths=hints, id=s.request_id))
    hyper = math.lcm(*[s.period for s in streams])
    queues = {(u, v): int(d.get("queues", 8) or 8) for u, v, d in topo.graph.edges(data=True)}
    return TsnkitInstance(Path(str(task_csv)).stem, topo, streams, requests, hyper, queues)


# ----- scheduling -----------------------------------------------------------------
@dataclass
class TsnkitRun:
    """The result of scheduling an instance."""

    scheduler: object
    admitted: list[str]
    rejected: dict[str, str]      # request id -> rejection reason
    seconds: float

    @property
    def complete(self) -> bool:
        return not self.rejected


ORDERS = ("file", "deadline", "hops")


def order_requests(instance: TsnkitInstance, order: str = "deadline") -> list[Request]:
    """Admission order: file order; tightest slack first (``deadline``); or longest path first (``hops``, as TSNKit's ls)."""
    reqs = list(instance.requests)
    if order == "file":
        return reqs
    if order == "hops":
        return sorted(reqs, key=lambda r: -len(r.paths[0]) if r.paths else 0)
    if order == "deadline":
        def slack(r: Request) -> tuple:
            s = instance.stream(r.id)
            hops = len(r.paths[0]) - 1 if r.paths else 0
            need = hops * (s.size * 8 + TSNKIT_SIM_PROC_NS)
            return (s.deadline - need, s.period, -s.size)
        return sorted(reqs, key=slack)
    raise ValueError(f"unknown order {order!r}; choose from {', '.join(ORDERS)}")


def schedule_instance(instance: TsnkitInstance, *, slot_ns: int = TSNKIT_SLOT_NS, max_share: float = 1.0,
                      k_paths: int = 4, max_wait_slots: int = 20, order: str = "deadline",
                      max_cycle_ns: int = 100_000_000) -> TsnkitRun:
    """Admit every stream of the instance in ``order``; the cycle is the instance's hyperperiod."""
    hyper = instance.hyperperiod_ns
    if hyper % slot_ns:
        raise TsnkitFormatError(f"{instance.name}: hyperperiod {hyper} ns is not a multiple of the slot ({slot_ns} ns)")
    sched = Scheduler(instance.topology, slot_ns=slot_ns, base_cycle_ns=hyper,
                      max_cycle_ns=max(max_cycle_ns, hyper), max_share=max_share, k_paths=k_paths,
                      max_wait_slots=max_wait_slots)
    t0 = time.perf_counter()
    admitted: list[str] = []
    rejected: dict[str, str] = {}
    for req in order_requests(instance, order):
        out = sched.admit(req)
        if isinstance(out, Reservation):
            admitted.append(out.id)
        else:
            rejected[req.id] = out.reason
    return TsnkitRun(sched, admitted, rejected, time.perf_counter() - t0)


# ----- writing ----------------------------------------------------------------------
@dataclass
class _Frame:
    """One stream's frame on one link: window start (ns, unwrapped) and queue occupancy."""

    stream: int
    link: tuple[str, str]
    start_ns: int       # window start, unwrapped time from the first hop's start of occurrence 0
    end_ns: int         # window end
    arrive_ns: int      # when the frame enters the egress queue (= start on the first hop)
    queue: int = 0


def _link_label(u: str, v: str) -> str:
    return f"({int(u)}, {int(v)})"


def _frames_of(res: Reservation, stream: TsnStream, slot_ns: int, hops=None) -> list[_Frame]:
    """The frame's window per hop (occurrence 0, unwrapped) and its arrival in each egress queue;
    ``hops``: another path's hops of the reservation (its protection path), default its path."""
    period = res.period_ns // slot_ns
    out: list[_Frame] = []
    t_arrive = None
    for hop in res.hops if hops is None else hops:
        res_mod = sorted({s % period for s in hop.slots})
        n = len(res_mod)
        # the block start: the residue whose predecessor (cyclically) is not held
        held = set(res_mod)
        starts = [r for r in res_mod if (r - 1) % period not in held] or [res_mod[0]]
        if len(starts) != 1:
            raise ValueError(f"reservation {res.id}: hop {hop.src}-{hop.dst} is not one block per period")
        r0 = starts[0]
        if t_arrive is None:
            start = r0 * slot_ns
            arrive = start
        else:
            earliest = t_arrive
            k = -(-(earliest - r0 * slot_ns) // res.period_ns)
            start = r0 * slot_ns + k * res.period_ns
            arrive = earliest
        end = start + n * slot_ns
        out.append(_Frame(stream.id, (hop.src, hop.dst), start, end, arrive))
        # the simulator: size*8 ns on a 1 bit/ns link, then T_PROC (= our processing, raised to it)
        t_arrive = start + stream.size * 8 + TSNKIT_SIM_PROC_NS
    return out


def _assign_queues(frames: list[_Frame], cycle_ns: int, period_of: dict[int, int], slot_ns: int,
                   num_queues: int) -> bool:
    """Give the frames of one link queues so no two share a queue while one waits or is sent.

    A frame occupies its queue from arrival to the end of its window, in every period of the
    cycle. Greedy first fit in order of arrival; False if ``num_queues`` do not suffice.
    """
    c = cycle_ns // slot_ns
    occ = [np.zeros(c, dtype=bool) for _ in range(max(1, num_queues))]
    for f in sorted(frames, key=lambda f: f.arrive_ns % period_of[f.stream]):
        p = period_of[f.stream]
        a = (f.arrive_ns // slot_ns)
        e = -(-f.end_ns // slot_ns)
        idx = np.concatenate([(np.arange(a, e) + k * (p // slot_ns)) for k in range(cycle_ns // p)]) % c
        for q, table in enumerate(occ):
            if not table[idx].any():
                table[idx] = True
                f.queue = q
                break
        else:
            return False
    return True


@dataclass
class WriteReport:
    """What ``write_outputs`` wrote and what it had to leave out."""

    streams: int
    problems: dict[int, str]   # stream id -> why its configuration is not exact
    files: list[str]


def write_outputs(scheduler, instance: TsnkitInstance, outdir: str | Path,
                  renumber: dict[int, int] | None = None) -> WriteReport:
    """Write GCL.csv, OFFSET.csv, ROUTE.csv, QUEUE.csv and DELAY.csv for the admitted streams.

    A protected reservation's second path (``protection_hops``) holds slots too: its windows are
    rows of GCL.csv (with queues chosen like any other), so every link's gates open for what it
    carries; ROUTE, QUEUE, OFFSET and DELAY describe the primary path (TSNKit has one route per
    stream).

    Checks each stream against TSNKit's semantics on the way (delay within the deadline, every
    window long enough for the frame); a stream failing a check is listed in ``problems``.
    ``renumber`` (original stream id -> id written) restricts the output to those streams, e.g.
    to simulate the scheduled part of an instance with ``write_subset_task``.
    """
    slot = scheduler.slot_ns
    cycle = scheduler.cycle_ns
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    problems: dict[int, str] = {}
    frames: list[_Frame] = []
    period_of: dict[int, int] = {}
    chosen: list[tuple[TsnStream, Reservation, list[_Frame], list[_Frame]]] = []
    for s in instance.streams:
        res = scheduler.reservations.get(s.request_id)
        if res is None or (renumber is not None and s.id not in renumber):
            continue
        fr = _frames_of(res, s, slot)
        # a protected reservation's replicated frames cross its second path too: their windows are
        # in GCL.csv (each such link carries them, as the Schedule JSON, the GCLs and /metrics say)
        protection = _frames_of(res, s, slot, res.protection_hops) if res.protection_hops else []
        period_of[s.id] = s.period
        for f in fr:
            if f.end_ns - f.start_ns < s.size * 8:
                problems[s.id] = f"window on {f.link[0]}-{f.link[1]} shorter than the frame"
        delay = fr[-1].start_ns + s.size * 8 + TSNKIT_SIM_PROC_NS - fr[0].start_ns
        if delay > s.deadline:
            problems.setdefault(s.id, f"delay {delay} ns above the deadline {s.deadline} ns")
        frames.extend(fr + protection)
        chosen.append((s, res, fr, protection))

    by_link: dict[tuple[str, str], list[_Frame]] = {}
    for f in frames:
        by_link.setdefault(f.link, []).append(f)
    for link, fl in by_link.items():
        if not _assign_queues(fl, cycle, period_of, slot, instance.queues.get(link, 8)):
            for f in fl:
                problems.setdefault(f.stream, f"not enough queues on link {link[0]}-{link[1]}")

    gcl_rows, offset_rows, route_rows, queue_rows, delay_rows = [], [], [], [], []
    for s, res, fr, protection in chosen:
        sid = s.id if renumber is None else renumber[s.id]
        offset_rows.append((sid, 0, fr[0].start_ns % s.period))
        for f, primary in [(f, True) for f in fr] + [(f, False) for f in protection]:
            lab = _link_label(*f.link)
            if primary:
                route_rows.append((sid, lab))
                queue_rows.append((sid, 0, lab, f.queue))
            for k in range(cycle // s.period):
                start = (f.start_ns + k * s.period) % cycle
                gcl_rows.append((lab, f.queue, start, start + (f.end_ns - f.start_ns), cycle))
        delay_rows.append((sid, 0, fr[-1].start_ns - fr[0].start_ns))
    gcl_rows.sort(key=lambda r: (r[0], r[2]))

    files = []

    def write(name: str, header: tuple, rows: list) -> None:
        p = outdir / name
        with open(p, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(rows)
        files.append(str(p))

    write("GCL.csv", ("link", "queue", "start", "end", "cycle"), gcl_rows)
    write("OFFSET.csv", ("stream", "frame", "offset"), offset_rows)
    write("ROUTE.csv", ("stream", "link"), route_rows)
    write("QUEUE.csv", ("stream", "frame", "link", "queue"), queue_rows)
    write("DELAY.csv", ("stream", "frame", "delay"), delay_rows)
    return WriteReport(len(chosen), problems, files)


def write_subset_task(instance: TsnkitInstance, stream_ids: list[int], path: str | Path) -> dict[int, int]:
    """Write a stream CSV of only ``stream_ids``, renumbered 0..n-1 in file order (TSNKit's simulator
    needs ids equal to row numbers); return the renumbering for ``write_outputs``."""
    keep = set(stream_ids)
    mapping: dict[int, int] = {}
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(STREAM_COLUMNS)
        for s in instance.streams:
            if s.id in keep:
                mapping[s.id] = len(mapping)
                w.writerow((mapping[s.id], s.src, str(list(s.dst)), s.size, s.period, s.deadline, s.jitter))
    return mapping
