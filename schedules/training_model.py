"""Analytic iteration-time model of cross-city data-parallel training (deterministic vs best effort).

Every term is returned by name so the CLI can print it; docs/training.md gives the formulas and
their sources. In short, with K sites, gradient bytes G crossing the WAN per site and a per-site
channel of rate R:

- ring all-reduce sends ``V = 2(K-1)/K * G`` bytes per site in ``2(K-1)`` latency-bound rounds
  (Patarasuk and Yuan 2009); the hierarchical (tree across sites) variant sends ``V = 2G`` in
  ``2*ceil(log2 K)`` rounds;
- communication time ``T_comm = 8V / R_eff`` (times the straggler factor on best effort);
- exposed time = late buckets ``(1 - overlap) * T_comm`` (gradients ready only when backward ends)
  + overflow of the overlap window ``max(0, overlap * T_comm - backward_s)``
  + latency ``rounds * (one-way delay of the slowest ring hop + jitter or queueing)``;
- iteration = forward + backward + exposed; efficiency = single-site iteration / iteration.

Deterministic: ``R_eff = R`` (the reserved rate; interference cannot take it), hop delay = the
reservation's latency bound, jitter = one slot. Best effort: unresponsive interference I takes its
rate first, ``R_eff = max(R - I, floor * R) * best_effort_efficiency`` (floor = 2%: the published
ordinary channel fell below 1 Gb/s of 50 under a 50 Gb/s interference flow; efficiency 0.84: it
carried 42 of 50 Gb/s without interference), the ring waits for the slowest of its m = K flows
(straggler factor ``1 + cv * sqrt(2 ln m)``, the expected maximum of m normal completion times),
and each round waits for a standing queue (``queue_s``, default 5 ms when interference loads the
channel, 0.5 ms otherwise).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from schedules.training import TrainingJob

#: Share of a best-effort channel left to responsive traffic when unresponsive load fills it.
OVERLOAD_FLOOR = 0.02
#: Standing queue a best-effort round waits behind, loaded and unloaded.
QUEUE_LOADED_S = 0.005
QUEUE_IDLE_S = 0.0005

NETWORKS = ("deterministic", "best-effort")


@dataclass
class Estimate:
    """One iteration-time estimate with every term of the model (seconds unless named)."""

    network: str
    interference_bps: float
    sites: int
    collective: str
    baseline_s: float
    wan_bytes_per_site: float
    rounds: int
    effective_rate_bps: float
    straggler_factor: float
    comm_s: float
    late_buckets_s: float
    overflow_s: float
    hop_delay_s: float
    latency_s: float
    exposed_s: float
    iteration_s: float
    efficiency: float
    job_hours: float

    def to_dict(self) -> dict:
        return asdict(self)


def collective_shape(job: TrainingJob) -> tuple[float, int]:
    """(bytes each site sends over the WAN per iteration, latency-bound rounds) for the collective."""
    k = job.k
    if job.collective == "ring":
        return 2 * (k - 1) / k * job.gradient_bytes, 2 * (k - 1)
    return 2 * job.gradient_bytes, 2 * math.ceil(math.log2(k))


def estimate(job: TrainingJob, hop_delay_s: float, *, network: str = "deterministic",
             interference_bps: float = 0.0, jitter_s: float = 1e-6) -> Estimate:
    """Iteration time of ``job`` on a network whose slowest ring hop has one-way delay ``hop_delay_s``.

    ``hop_delay_s`` is the propagation (best effort) or the reservation's latency bound
    (deterministic) of the worst pair of consecutive sites; ``jitter_s`` is the deterministic
    jitter bound (one slot).
    """
    if network not in NETWORKS:
        raise ValueError(f"network must be one of {', '.join(NETWORKS)}")
    if interference_bps < 0:
        raise ValueError("interference must not be negative")
    volume, rounds = collective_shape(job)
    rate = float(job.channel_bps)
    if network == "deterministic":
        eff_rate, straggler = rate, 1.0
        per_round_wait = jitter_s
    else:
        left = max(rate - interference_bps, OVERLOAD_FLOOR * rate)
        eff_rate = left * job.best_effort_efficiency
        straggler = 1.0 + job.straggler_cv * math.sqrt(2 * math.log(max(job.k, 2)))
        per_round_wait = QUEUE_LOADED_S if interference_bps > 0 else QUEUE_IDLE_S
    comm = volume * 8 / eff_rate * straggler
    late = (1 - job.overlap) * comm
    overflow = max(0.0, job.overlap * comm - job.backward_s)
    latency = rounds * (hop_delay_s + per_round_wait)
    exposed = late + overflow + latency
    iteration = job.compute_s + exposed
    return Estimate(
        network=network, interference_bps=interference_bps, sites=job.k, collective=job.collective,
        baseline_s=job.compute_s, wan_bytes_per_site=volume, rounds=rounds, effective_rate_bps=eff_rate,
        straggler_factor=straggler, comm_s=comm, late_buckets_s=late, overflow_s=overflow,
        hop_delay_s=hop_delay_s, latency_s=latency, exposed_s=exposed, iteration_s=iteration,
        efficiency=job.compute_s / iteration, job_hours=iteration * job.iterations / 3600,
    )
