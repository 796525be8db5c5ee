"""Training job descriptions: what a cross-city data-parallel training job needs from the network.

A job file is JSON or YAML with these fields (validated; errors name the file and the field)::

    name: gpt-175b-4dc
    sites: [Zhangjiakou, Wuhu, Shaoguan, Guiyang]   # data-centre cities (topology node names)
    parameters: 175e9                              # model parameters
    bytes_per_element: 2                           # gradient element size (bf16)
    wan_compression: 0.0625                        # share of gradient bytes that cross the WAN
    forward_s: 5.2                                 # compute per iteration, single site
    backward_s: 10.48
    overlap: 0.95                                  # share of gradient traffic that can overlap backward
    collective: ring                               # ring | hierarchical
    channel_bps: 50e9                              # WAN rate per site: reserved (deterministic) or
                                                   # the best-effort channel it shares
    iterations: 500000
    period_ns: 1000000                             # reservation period (optional)
    max_latency_ns: 40000000                       # per-flow latency bound asked for (optional)
    best_effort_efficiency: 0.84                   # goodput share of a best-effort channel (optional)
    straggler_cv: 0.1                              # spread of best-effort flow completion (optional)

Numbers may be written as ``175e9`` or ``175000000000``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

COLLECTIVES = ("ring", "hierarchical")


class JobError(ValueError):
    """A job file is invalid; the message is one line naming the file and the problem."""


@dataclass
class TrainingJob:
    """A data-parallel training job spread over data-centre sites."""

    name: str
    sites: list[str]
    parameters: float
    bytes_per_element: float
    forward_s: float
    backward_s: float
    overlap: float
    collective: str
    channel_bps: float
    iterations: int
    wan_compression: float = 1.0
    period_ns: int = 1_000_000
    max_latency_ns: int | None = None
    best_effort_efficiency: float = 0.84
    straggler_cv: float = 0.1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def k(self) -> int:
        """Number of sites."""
        return len(self.sites)

    @property
    def gradient_bytes(self) -> float:
        """Bytes of gradient each site contributes to the WAN all-reduce per iteration."""
        return self.parameters * self.bytes_per_element * self.wan_compression

    @property
    def compute_s(self) -> float:
        """Single-site iteration time: forward plus backward compute."""
        return self.forward_s + self.backward_s

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("extra")
        d.update(self.extra)
        return d


_REQUIRED = {"name": str, "sites": list, "parameters": float, "bytes_per_element": float,
             "forward_s": float, "backward_s": float, "overlap": float, "collective": str,
             "channel_bps": float, "iterations": int}
_OPTIONAL = {"wan_compression": float, "period_ns": int, "max_latency_ns": int,
             "best_effort_efficiency": float, "straggler_cv": float}
_FREE = {"description", "notes", "source"}


def _number(source: str, key: str, value: Any, kind: type) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise JobError(f"{source}: {key} must be a number")
    try:
        x = float(value)
    except ValueError:
        raise JobError(f"{source}: {key} must be a number, not {value!r}") from None
    if kind is int:
        if x != int(x):
            raise JobError(f"{source}: {key} must be a whole number")
        return int(x)
    return x


def job_from_dict(data: Any, source: str = "<job>") -> TrainingJob:
    """Validate a parsed job description and build a TrainingJob; raise JobError on the first problem."""
    if not isinstance(data, dict):
        raise JobError(f"{source}: a job is a mapping of fields")
    unknown = sorted(set(data) - set(_REQUIRED) - set(_OPTIONAL) - _FREE)
    if unknown:
        raise JobError(f"{source}: unknown field {unknown[0]!r}")
    values: dict[str, Any] = {}
    for key, kind in _REQUIRED.items():
        if key not in data:
            raise JobError(f"{source}: missing field {key!r}")
    for key, kind in {**_REQUIRED, **_OPTIONAL}.items():
        if key not in data or data[key] is None:
            continue
        v = data[key]
        if kind is str:
            if not isinstance(v, str) or not v:
                raise JobError(f"{source}: {key} must be a non-empty string")
            values[key] = v
        elif kind is list:
            if not isinstance(v, list) or not all(isinstance(s, str) and s for s in v):
                raise JobError(f"{source}: {key} must be a list of city names")
            values[key] = list(v)
        else:
            values[key] = _number(source, key, v, kind)
    job = TrainingJob(**values, extra={k: data[k] for k in _FREE if k in data})
    _check_ranges(job, source)
    return job


def _check_ranges(job: TrainingJob, source: str) -> None:
    if len(job.sites) < 2:
        raise JobError(f"{source}: sites needs at least two data-centre cities")
    if len(set(job.sites)) != len(job.sites):
        raise JobError(f"{source}: sites lists a city twice")
    if job.collective not in COLLECTIVES:
        raise JobError(f"{source}: collective must be one of {', '.join(COLLECTIVES)}")
    positive = ("parameters", "bytes_per_element", "channel_bps", "iterations", "period_ns")
    for key in positive:
        if getattr(job, key) <= 0:
            raise JobError(f"{source}: {key} must be positive")
    for key in ("forward_s", "backward_s"):
        if getattr(job, key) < 0:
            raise JobError(f"{source}: {key} must not be negative")
    if job.compute_s <= 0:
        raise JobError(f"{source}: forward_s + backward_s must be positive")
    for key in ("overlap", "wan_compression", "best_effort_efficiency"):
        v = getattr(job, key)
        if not 0 <= v <= 1 or (key != "overlap" and v == 0):
            raise JobError(f"{source}: {key} must be in {'[0, 1]' if key == 'overlap' else '(0, 1]'}")
    if job.straggler_cv < 0:
        raise JobError(f"{source}: straggler_cv must not be negative")
    if job.max_latency_ns is not None and job.max_latency_ns <= 0:
        raise JobError(f"{source}: max_latency_ns must be positive")


def load_job(path_or_name: str | Path) -> TrainingJob:
    """Load a job from a JSON or YAML file, or a shipped job by name (see ``list_jobs``)."""
    path = Path(path_or_name)
    if not path.exists():
        shipped = _jobs_dir() / f"{path_or_name}.json"
        if shipped.exists():
            path = shipped
        else:
            names = ", ".join(list_jobs())
            raise JobError(f"{path_or_name}: no such file or shipped job (shipped: {names})")
    source = str(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise JobError(f"{source}: cannot read ({e.strerror})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise JobError(f"{source}: not valid YAML{where}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise JobError(f"{source}: not valid JSON ({e.msg} at line {e.lineno})") from None
    return job_from_dict(data, source)


def _jobs_dir() -> Path:
    return Path(__file__).resolve().parent / "data" / "jobs"


def list_jobs() -> list[str]:
    """Names of the shipped jobs."""
    return sorted(p.stem for p in _jobs_dir().glob("*.json"))
