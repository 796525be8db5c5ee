"""Turn a training job into reservation requests: who sends how much to whom, and when.

Ring all-reduce: site i sends to site i+1 (in the job's order, wrapping), every step of both
phases (reduce-scatter, then all-gather). Hierarchical: a binary tree over the sites (site 0 is
the root); every child sends its partial sums up and the root sends results down, so each tree
edge carries one flow per direction. Each flow is reserved at the job's ``channel_bps`` with the
job's period; traffic is sent in the iteration's communication window, which opens when the first
gradient bucket is ready (after forward, during backward) and lasts until the all-reduce ends.

``hop_delays`` admits a job's plan into an empty scheduler: the per-hop delays the analytic model
(``schedules.training_model.estimate``) takes for the deterministic and the best-effort network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import networkx as nx

from controller.core.model import Rejection, Request
from controller.core.scheduler import Scheduler
from schedules.training import JobError, TrainingJob
from schedules.training_model import collective_shape
from topologies.model import Topology

class NotAdmissible(JobError):
    """A flow of the job's plan is rejected on an empty network: the job cannot run deterministically."""


def default_max_latency_ns(propagation_ns: int) -> int:
    """Latency asked for when the job gives none: the path's propagation, doubled, plus 5 ms."""
    return 2 * propagation_ns + 5_000_000


@dataclass
class PlannedFlow:
    """One reservation request of the plan and the traffic it carries per iteration."""

    request: dict[str, Any]
    bytes_per_iteration: float
    window_start_s: float
    window_end_s: float
    propagation_ns: int

    def to_dict(self) -> dict[str, Any]:
        return {"request": self.request, "bytes_per_iteration": self.bytes_per_iteration,
                "window_start_s": self.window_start_s, "window_end_s": self.window_end_s,
                "propagation_ns": self.propagation_ns}


def site_pairs(job: TrainingJob) -> list[tuple[str, str]]:
    """Directed (sender, receiver) site pairs the collective uses."""
    s = job.sites
    if job.collective == "ring":
        return [(s[i], s[(i + 1) % len(s)]) for i in range(len(s))]
    pairs = []
    for child in range(1, len(s)):
        parent = (child - 1) // 2
        pairs += [(s[child], s[parent]), (s[parent], s[child])]
    return pairs


def check_sites(job: TrainingJob, topology: Topology) -> None:
    """Every site must be a node of the topology."""
    for site in job.sites:
        if not topology.has_node(site):
            raise JobError(f"job {job.name}: site {site!r} is not a node of topology {topology.name}")


def shortest_propagation_ns(topology: Topology, src: str, dst: str) -> int:
    """Propagation of the lowest-delay path from src to dst."""
    try:
        return int(nx.shortest_path_length(topology.graph, src, dst, weight="propagation_ns"))
    except nx.NetworkXNoPath:
        raise JobError(f"no path from {src} to {dst} in topology {topology.name}") from None


def plan(job: TrainingJob, topology: Topology, tenant: int = 1) -> list[PlannedFlow]:
    """The reservation requests of one job for ``tenant``, in a stable order."""
    check_sites(job, topology)
    volume, _ = collective_shape(job)
    pairs = site_pairs(job)
    # Bytes one flow carries: ring flows carry the site's whole volume; a tree edge carries G each way.
    per_flow = volume if job.collective == "ring" else job.gradient_bytes
    comm_s = per_flow * 8 / job.channel_bps
    start = job.forward_s  # the first gradient bucket is ready as backward starts
    end = max(job.compute_s, start + comm_s)
    flows = []
    for i, (src, dst) in enumerate(pairs):
        prop = shortest_propagation_ns(topology, src, dst)
        request = {
            "id": f"{job.name}-{i}", "tenant": tenant, "src": src, "dst": dst,
            "bandwidth_bps": int(job.channel_bps), "period_ns": int(job.period_ns),
            "max_latency_ns": int(job.max_latency_ns or default_max_latency_ns(prop)),
        }
        flows.append(PlannedFlow(request, per_flow, start, end, prop))
    return flows


def hop_delays(job: TrainingJob, topology: Topology) -> tuple[float, float, list[dict[str, Any]]]:
    """(deterministic hop delay s, best-effort hop delay s, admitted reservations) for a job.

    Deterministic: the worst latency bound among the job's reservations, admitted into an empty
    scheduler; best effort: the worst shortest-path propagation between consecutive sites.
    Raises ``NotAdmissible`` when a flow of the plan is rejected.
    """
    flows = plan(job, topology)
    sched = Scheduler(topology)
    bounds, reservations = [], []
    for fl in flows:
        res = sched.admit(Request.from_dict(fl.request))
        if isinstance(res, Rejection):
            raise NotAdmissible(f"job {job.name} is not admissible on {topology.name}: {fl.request['id']} "
                                f"rejected ({res.reason}): {res.detail}")
        bounds.append(res.latency_bound_ns)
        reservations.append(res.to_dict())
    return max(bounds) / 1e9, max(fl.propagation_ns for fl in flows) / 1e9, reservations
