"""The admission benchmark: a seeded, documented workload and its measurement.

Workload (``workload``), drawn from ``random.Random(seed)`` so a run is reproducible:

- about 10% bulk training flows: ``bandwidth_bps`` uniform in 1-5 Gb/s (1 Mb/s steps), period 1 ms;
- about 90% small periodic service streams: ``frame_bytes`` uniform in 64-1500, period drawn from
  the harmonic set 1, 2, 4, 8 ms. Harmonic periods (each divides the next) keep the hyperperiod at
  8 ms whatever the mix, so slot tables stay 8,000 slots long at the default 1 us slot;
- src and dst: a uniformly random ordered pair of distinct nodes;
- ``max_latency_ns`` = 2 x the pair's shortest propagation + 5 ms: generous for the backbone, yet
  it rules out absurd detours;
- tenants round-robin 1..T (all registered in a TenantBook without quotas).

Measurement (``run_admission``): wall time of each ``Scheduler.admit`` call (time.perf_counter),
their total, p50/p99, and the process's peak resident set size (``resource.getrusage``).
"""

from __future__ import annotations

import random
import resource
import sys
import time
from collections import Counter
from typing import Any

import networkx as nx
import numpy as np

from .model import Request, Tenant
from .scheduler import Scheduler
from .tenants import TenantBook

HARMONIC_PERIODS_NS = (1_000_000, 2_000_000, 4_000_000, 8_000_000)
BULK_FRACTION = 0.10


def workload(topology, reservations: int, tenants: int, seed: int = 1) -> list[Request]:
    """The seeded request list described in the module docstring."""
    if reservations < 0 or tenants < 1:
        raise ValueError("reservations must be >= 0 and tenants >= 1")
    rng = random.Random(seed)
    nodes = sorted(topology.graph.nodes)
    if len(nodes) < 2:
        raise ValueError("the topology needs at least two nodes")
    out: list[Request] = []
    for i in range(reservations):
        src, dst = rng.sample(nodes, 2)
        tenant = i % tenants + 1
        if rng.random() < BULK_FRACTION:
            req = Request(tenant=tenant, src=src, dst=dst, max_latency_ns=0, period_ns=1_000_000,
                          bandwidth_bps=rng.randint(1_000, 5_000) * 1_000_000, id=f"b{i}")
        else:
            req = Request(tenant=tenant, src=src, dst=dst, max_latency_ns=0,
                          period_ns=rng.choice(HARMONIC_PERIODS_NS), frame_bytes=rng.randint(64, 1500),
                          id=f"s{i}")
        out.append(req)
    # max_latency_ns from the shortest propagation: one Dijkstra per source drawn, one source at a
    # time (all pairs of a 2,000-node topology would be millions of entries)
    by_src: dict[str, list[Request]] = {}
    for req in out:
        by_src.setdefault(req.src, []).append(req)
    for src, reqs in by_src.items():
        dist = nx.single_source_dijkstra_path_length(topology.graph, src, weight="propagation_ns")
        for req in reqs:
            prop = dist.get(req.dst)
            req.max_latency_ns = int(2 * prop + 5_000_000) if prop is not None else 5_000_000
    return out


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def run_admission(topology, reservations: int, tenants: int, seed: int = 1, **scheduler_opts: Any) -> dict:
    """Admit the seeded workload one request at a time; return the figures as a JSON-able dict."""
    book = TenantBook(max_tenants=max(128, tenants))
    for t in range(1, tenants + 1):
        book.add(Tenant(t, f"tenant{t}"))
    sched = Scheduler(topology, tenants=book, **scheduler_opts)
    reqs = workload(topology, reservations, tenants, seed)
    times = np.empty(len(reqs))
    reasons: Counter[str] = Counter()
    admitted = 0
    clock = time.perf_counter
    cpu_start = time.process_time()
    t_start = clock()
    for i, req in enumerate(reqs):
        t0 = clock()
        out = sched.admit(req)
        times[i] = clock() - t0
        if hasattr(out, "reason"):
            reasons[out.code] += 1
        else:
            admitted += 1
    total = clock() - t_start
    cpu = time.process_time() - cpu_start
    shares = list(sched.link_share().values())
    ms = times * 1000.0
    return {
        "topology": topology.name,
        "reservations": reservations,
        "tenants": tenants,
        "seed": seed,
        "admitted": admitted,
        "rejected": reservations - admitted,
        "rejected_by_reason": dict(sorted(reasons.items())),
        "total_s": round(total, 4),
        "cpu_s": round(cpu, 4),
        "p50_ms": round(float(np.percentile(ms, 50)), 4) if len(ms) else 0.0,
        "p99_ms": round(float(np.percentile(ms, 99)), 4) if len(ms) else 0.0,
        "max_ms": round(float(ms.max()), 4) if len(ms) else 0.0,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "cycle_ns": sched.cycle_ns,
        "slot_ns": sched.slot_ns,
        "mean_link_share": round(float(np.mean(shares)), 4) if shares else 0.0,
        "max_link_share": round(float(np.max(shares)), 4) if shares else 0.0,
    }
