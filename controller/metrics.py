"""Prometheus text exposition (format 0.0.4), written by hand: counters, gauges and one histogram.

Why by hand: prometheus_client is not a dependency and the controller needs a handful of series.
Counters and the histogram accumulate in this process (``Metrics``); gauges that describe current
state (reservations per tenant, reserved share per link, connected switches) are computed by the
service at scrape time and handed to ``render``.

Series (all prefixed ``detnet_``):
- ``detnet_admissions_total{tenant}`` counter: reservations admitted;
- ``detnet_rejections_total{reason}`` counter: requests refused, by reason kind (``capacity``,
  ``latency``, ``jitter``, ``quota``, ``no_path``, ``exists``, ``invalid``; the link or bound
  after the colon is dropped to keep the label set small);
- ``detnet_releases_total{tenant}`` counter;
- ``detnet_admission_seconds`` histogram: time spent deciding one request (scheduler and store);
- ``detnet_http_requests_total{code}`` counter: API answers by HTTP status;
- ``detnet_flow_install_seconds`` histogram and ``detnet_flow_install_failures_total{op}`` counter:
  flow programming as reported by the OpenFlow shim (``ControllerService.observe_install``);
- ``detnet_reservations{tenant}`` gauge, ``detnet_link_reserved_share{link="u-v"}`` gauge,
  ``detnet_switches_connected`` gauge, ``detnet_tenants`` gauge;
- link failures (``render_links``): ``detnet_link_up{link="u-v"}`` gauge,
  ``detnet_link_down_events_total``, ``detnet_link_up_events_total``,
  ``detnet_reservations_rerouted_total``, ``detnet_reservations_failed_total`` counters,
  ``detnet_reservations_down`` gauge and ``detnet_link_reprogram_seconds`` gauge (the last link
  event, report to every affected reservation reprogrammed; absent before the first).
"""

from __future__ import annotations

import bisect
import threading
from typing import Any, Iterable, Mapping

#: Histogram bucket upper bounds in seconds (admission takes from ~100 us to ~100 ms).
ADMISSION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                     2.5)

#: Bucket upper bounds in seconds for installing a reservation's flows on the switches.
INSTALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def escape_label(value: object) -> str:
    """A label value escaped as the text format wants (backslash, quote, newline)."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _fmt(v: float) -> str:
    if v == float("inf"):
        return "+Inf"
    if float(v).is_integer():
        return str(int(v))
    return repr(float(v))


def _labels(pairs: Mapping[str, object]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{escape_label(v)}"' for k, v in pairs.items()) + "}"


class Histogram:
    """A cumulative histogram with fixed buckets."""

    def __init__(self, buckets: Iterable[float] = ADMISSION_BUCKETS):
        self.buckets = tuple(sorted(buckets))
        self.counts = [0] * (len(self.buckets) + 1)   # last: +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str) -> list[str]:
        out, acc = [], 0
        for bound, n in zip(self.buckets + (float("inf"),), self.counts):
            acc += n
            out.append(f'{name}_bucket{{le="{_fmt(bound)}"}} {acc}')
        out.append(f"{name}_sum {_fmt(self.sum)}")
        out.append(f"{name}_count {self.count}")
        return out


class Metrics:
    """The process's counters and histogram (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.admissions: dict[str, int] = {}
        self.rejections: dict[str, int] = {}
        self.releases: dict[str, int] = {}
        self.http: dict[str, int] = {}
        self.admission_seconds = Histogram()
        self.install_seconds = Histogram(INSTALL_BUCKETS)
        self.install_failures: dict[str, int] = {}

    def admitted(self, tenant: int, seconds: float) -> None:
        with self._lock:
            self.admissions[str(tenant)] = self.admissions.get(str(tenant), 0) + 1
            self.admission_seconds.observe(seconds)

    def rejected(self, reason: str, seconds: float | None = None) -> None:
        kind = reason.split(":", 1)[0]
        with self._lock:
            self.rejections[kind] = self.rejections.get(kind, 0) + 1
            if seconds is not None:
                self.admission_seconds.observe(seconds)

    def released(self, tenant: int) -> None:
        with self._lock:
            self.releases[str(tenant)] = self.releases.get(str(tenant), 0) + 1

    def installed(self, op: str, seconds: float, ok: bool) -> None:
        """One reservation's flows installed or removed on the switches (reported by the OpenFlow shim)."""
        with self._lock:
            self.install_seconds.observe(seconds)
            if not ok:
                self.install_failures[op] = self.install_failures.get(op, 0) + 1

    def http_answer(self, status: int) -> None:
        with self._lock:
            self.http[str(status)] = self.http.get(str(status), 0) + 1

    def render(self, *, reservations_by_tenant: Mapping[int, int], link_share: Mapping[tuple[str, str], float],
               switches_connected: int, tenants: int) -> str:
        """The whole exposition text, counters from this object and gauges from the arguments."""
        out: list[str] = []

        def family(name: str, kind: str, help_: str, samples: Iterable[tuple[Mapping[str, object], float]]) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                out.append(f"{name}{_labels(labels)} {_fmt(value)}")

        with self._lock:
            family("detnet_admissions_total", "counter", "Reservations admitted, by tenant.",
                   [({"tenant": t}, n) for t, n in sorted(self.admissions.items())])
            family("detnet_rejections_total", "counter", "Reservation requests refused, by reason kind.",
                   [({"reason": r}, n) for r, n in sorted(self.rejections.items())])
            family("detnet_releases_total", "counter", "Reservations released, by tenant.",
                   [({"tenant": t}, n) for t, n in sorted(self.releases.items())])
            family("detnet_http_requests_total", "counter", "REST API answers, by HTTP status.",
                   [({"code": c}, n) for c, n in sorted(self.http.items())])
            out.append("# HELP detnet_admission_seconds Time to decide one reservation request.")
            out.append("# TYPE detnet_admission_seconds histogram")
            out.extend(self.admission_seconds.lines("detnet_admission_seconds"))
            out.append("# HELP detnet_flow_install_seconds Time to install or remove one reservation's flows.")
            out.append("# TYPE detnet_flow_install_seconds histogram")
            out.extend(self.install_seconds.lines("detnet_flow_install_seconds"))
            family("detnet_flow_install_failures_total", "counter",
                   "Flow installs or removals without a complete barrier, by operation.",
                   [({"op": o}, n) for o, n in sorted(self.install_failures.items())])
        family("detnet_reservations", "gauge", "Reservations currently held, by tenant.",
               [({"tenant": t}, n) for t, n in sorted(reservations_by_tenant.items())])
        family("detnet_link_reserved_share", "gauge", "Reserved fraction of each directed link's slots.",
               [({"link": f"{u}-{v}"}, share) for (u, v), share in sorted(link_share.items())])
        family("detnet_switches_connected", "gauge", "OpenFlow switches connected to the controller.",
               [({}, switches_connected)])
        family("detnet_tenants", "gauge", "Tenants defined.", [({}, tenants)])
        return "\n".join(out) + "\n"


def render_links(links: Iterable[tuple[str, str]], down: set[frozenset[str]], stats: Mapping[str, Any],
                 reservations_down: int) -> str:
    """Link state and failure-handling series (appended to ``Metrics.render``'s text).

    ``links``: the physical links (u, v) of the topology; ``down``: those reported down, as
    frozensets of the two nodes; ``stats``: the failover's counters (``down_events``,
    ``up_events``, ``rerouted``, ``went_down``, ``last_reprogram_s``).
    """
    out = ["# HELP detnet_link_up Physical link state (1 up, 0 reported down).", "# TYPE detnet_link_up gauge"]
    for u, v in links:
        out.append(f'detnet_link_up{{link="{escape_label(u)}-{escape_label(v)}"}} '
                   f'{0 if frozenset((u, v)) in down else 1}')
    for name, key, help_ in (("detnet_link_down_events_total", "down_events", "Link-down reports handled."),
                             ("detnet_link_up_events_total", "up_events", "Link-up reports handled."),
                             ("detnet_reservations_rerouted_total", "rerouted",
                              "Reservations re-placed after a link failure or recovery."),
                             ("detnet_reservations_failed_total", "went_down",
                              "Reservations a failure left without any path.")):
        out += [f"# HELP {name} {help_}", f"# TYPE {name} counter", f"{name} {stats[key]}"]
    out += ["# HELP detnet_reservations_down Reservations currently down after a failure.",
            "# TYPE detnet_reservations_down gauge", f"detnet_reservations_down {reservations_down}"]
    if stats["last_reprogram_s"] is not None:
        out += ["# HELP detnet_link_reprogram_seconds Last link event: report to every affected "
                "reservation reprogrammed.", "# TYPE detnet_link_reprogram_seconds gauge",
                f"detnet_link_reprogram_seconds {stats['last_reprogram_s']:.6f}"]
    return "\n".join(out) + "\n"
