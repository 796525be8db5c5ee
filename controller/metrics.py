"""The controller's Prometheus metrics, with the official client (``prometheus_client``).

Each ``ControllerService`` has its own ``Metrics`` and so its own ``CollectorRegistry`` (never the
client's global one: tests run several controllers in one process). Events are counted as they
happen by the client's ``Counter`` and ``Histogram``; what describes current state (reservations
per tenant, link shares and states, switches, the LLDP check, ...) is read from the service at
scrape time by ``StateCollector`` through a callable returning a ``State``, so a scrape always shows
one consistent snapshot taken under the service lock. ``render`` is the text the client writes
(format 0.0.4, ``CONTENT_TYPE``). The ``*_created`` series of the client are turned off for the
process (``disable_created_metrics``): format 0.0.4 has no use for them and they would double the
number of counter series.

Series (all prefixed ``detnet_``; cardinality: T tenants (at most ``max_tenants``, 128 by
default), L physical links, 2L directed links, R route templates of the REST API (about 20), M = 8 method
values, C status codes actually answered; never a reservation, a client or a raw path):

- ``detnet_admissions_total{tenant}`` counter (T): reservations admitted;
- ``detnet_rejections_total{reason}`` counter (at most 10): requests refused, by reason kind
  (``capacity``, ``latency``, ``jitter``, ``quota``, ``no_path``, ``exists``, ``invalid``, ...;
  the link or bound after the colon is dropped);
- ``detnet_releases_total{tenant}`` counter (T);
- ``detnet_admission_seconds`` histogram (16 series): time to decide one request;
- ``detnet_flow_install_seconds`` histogram (15) and ``detnet_flow_install_failures_total{op}``
  counter (2: install, remove): flow programming as reported by the OpenFlow shim;
- ``detnet_http_requests_total{route,method,code}`` counter (the pairs seen, at most R x M x C)
  and ``detnet_http_request_seconds{route,method}`` histogram (16 per pair seen): REST answers by
  route template (``/v1/reservations/{reservation_id}``; ``unmatched`` for a path no route has)
  (see ``controller.api.http_metrics``);
- ``detnet_switch_refusals_total{reason}`` counter (at most 4: ``unknown_dpid``,
  ``certificate_dpid``, ``duplicate_dpid`` (``controller.switchauth``), ``tls_handshake``
  (``controller.oftls``)): OpenFlow connections refused as a switch, a security event each;
- ``detnet_build_info{version,python}`` gauge (1, value 1);
- ``detnet_reservations{tenant}`` gauge (T), ``detnet_tenants`` gauge (1),
  ``detnet_tenant_reserved_bps{tenant}`` gauge (T) and, for tenants with a quota,
  ``detnet_tenant_quota_bps{tenant}`` and ``detnet_tenant_max_reservations{tenant}`` gauges (<= T);
- ``detnet_link_reserved_share{link="u-v"}`` gauge (2L): reserved fraction of a directed link's slots;
- ``detnet_switches_connected`` and ``detnet_switches_expected`` gauges (1 each);
- ``detnet_lldp_links{state}`` gauge (4: expected, seen, missing, unexpected) and
  ``detnet_lldp_checked`` gauge (1: 0 until the shim's first LLDP link check);
- link failures: ``detnet_link_up{link="u-v"}`` gauge (L: 1 up, 0 reported down),
  ``detnet_link_down_events_total``, ``detnet_link_up_events_total``,
  ``detnet_reservations_rerouted_total``, ``detnet_reservations_failed_total`` counters (1 each),
  ``detnet_reservations_down`` and ``detnet_reservations_unrestored`` gauges (1 each), and
  ``detnet_link_reprogram_seconds`` gauge (the last link event, report to every affected
  reservation reprogrammed; absent before the first).

docs/observability.md has the same list with the figures measured on fntf40.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Iterator, Mapping, Sequence

from prometheus_client import (CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, Counter, Histogram, Info,
                               disable_created_metrics, generate_latest)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["ADMISSION_BUCKETS", "INSTALL_BUCKETS", "HTTP_BUCKETS", "CONTENT_TYPE", "State", "StateCollector",
           "Metrics"]

# before any Counter is made: the client decides at a metric's creation whether it has ``_created``
disable_created_metrics()

#: Histogram bucket upper bounds in seconds (admission takes from ~100 us to ~100 ms).
ADMISSION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                     2.5)

#: Bucket upper bounds in seconds for installing a reservation's flows on the switches.
INSTALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

#: Bucket upper bounds in seconds of one REST answer (a read: ~1 ms; a batch of 4,096: seconds).
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

#: The Content-Type of ``Metrics.render``'s text (the classic text format, which the client writes).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

#: The states of ``detnet_lldp_links`` and the key of each in the shim's link-check report.
LLDP_STATES = ("expected", "seen", "missing", "unexpected")


def _version() -> str:
    try:
        return metadata.version("detnet")
    except metadata.PackageNotFoundError:     # run from a source tree that was never pip-installed
        return "unknown"


@dataclass(frozen=True)
class State:
    """What the service holds at one instant, read under its lock for one scrape.

    ``failover``: the failover's counters (``down_events``, ``up_events``, ``rerouted``,
    ``went_down``, ``last_reprogram_s``); ``link_check``: the shim's LLDP report (``expected``,
    ``seen`` counts, ``missing`` and ``unexpected`` lists, ``checked``); ``tenant_quota`` maps a
    tenant to its (quota_bps, max_reservations), None where there is no limit.
    """

    reservations_by_tenant: Mapping[int, int]
    tenant_reserved_bps: Mapping[int, int]
    tenant_quota: Mapping[int, tuple[int | None, int | None]]
    link_share: Mapping[tuple[str, str], float]
    links: Sequence[tuple[str, str]]
    links_down: frozenset[frozenset[str]]
    switches_connected: int
    switches_expected: int
    failover: Mapping[str, Any]
    reservations_down: int
    reservations_unrestored: int
    link_check: Mapping[str, Any] = field(default_factory=dict)
    #: this member's place in a cluster (``controller.ha.ClusterMember.status``); None: alone
    cluster: Mapping[str, Any] | None = None


class StateCollector(Collector):
    """A collector whose families are computed from ``read()`` at every scrape."""

    def __init__(self, read: Callable[[], State]):
        self._read = read

    def collect(self) -> Iterator[Metric]:
        s = self._read()
        by_tenant = GaugeMetricFamily("detnet_reservations", "Reservations currently held, by tenant.",
                                      labels=["tenant"])
        bps = GaugeMetricFamily("detnet_tenant_reserved_bps", "Bandwidth reserved by each tenant, in bit/s.",
                                labels=["tenant"])
        quota = GaugeMetricFamily("detnet_tenant_quota_bps", "Bandwidth quota of each tenant that has one, "
                                  "in bit/s.", labels=["tenant"])
        max_res = GaugeMetricFamily("detnet_tenant_max_reservations", "Reservation limit of each tenant that "
                                    "has one.", labels=["tenant"])
        for tenant in sorted(s.reservations_by_tenant):
            by_tenant.add_metric([str(tenant)], s.reservations_by_tenant[tenant])
            bps.add_metric([str(tenant)], s.tenant_reserved_bps.get(tenant, 0))
            q, m = s.tenant_quota.get(tenant, (None, None))
            if q is not None:
                quota.add_metric([str(tenant)], q)
            if m is not None:
                max_res.add_metric([str(tenant)], m)
        yield from (by_tenant, bps, quota, max_res)
        yield GaugeMetricFamily("detnet_tenants", "Tenants defined.", value=len(s.reservations_by_tenant))

        share = GaugeMetricFamily("detnet_link_reserved_share", "Reserved fraction of each directed link's slots.",
                                  labels=["link"])
        for (u, v), x in sorted(s.link_share.items()):
            share.add_metric([f"{u}-{v}"], x)
        yield share
        up = GaugeMetricFamily("detnet_link_up", "Physical link state (1 up, 0 reported down).", labels=["link"])
        for u, v in s.links:
            up.add_metric([f"{u}-{v}"], 0 if frozenset((u, v)) in s.links_down else 1)
        yield up

        yield GaugeMetricFamily("detnet_switches_connected", "OpenFlow switches connected to the controller.",
                                value=s.switches_connected)
        yield GaugeMetricFamily("detnet_switches_expected", "Switches of the topology (one per node).",
                                value=s.switches_expected)
        lldp = GaugeMetricFamily("detnet_lldp_links", "The last LLDP link check: links expected from the "
                                 "topology, seen, missing and unexpected.", labels=["state"])
        for state in LLDP_STATES:
            n = s.link_check.get(state, 0)
            lldp.add_metric([state], len(n) if isinstance(n, (list, tuple, set)) else n)
        yield lldp
        yield GaugeMetricFamily("detnet_lldp_checked", "1 once the OpenFlow shim has reported an LLDP link check.",
                                value=1 if s.link_check.get("checked") else 0)

        f = s.failover
        for name, key, help_ in (("detnet_link_down_events", "down_events", "Link-down reports handled."),
                                 ("detnet_link_up_events", "up_events", "Link-up reports handled."),
                                 ("detnet_reservations_rerouted", "rerouted",
                                  "Reservations re-placed after a link failure or recovery."),
                                 ("detnet_reservations_failed", "went_down",
                                  "Reservations a failure left without any path.")):
            yield CounterMetricFamily(name, help_, value=f[key])
        yield GaugeMetricFamily("detnet_reservations_down", "Reservations currently down after a failure.",
                                value=s.reservations_down)
        yield GaugeMetricFamily("detnet_reservations_unrestored", "Stored reservations that could not be put "
                                "back on their slots at start-up.", value=s.reservations_unrestored)
        if f.get("last_reprogram_s") is not None:
            yield GaugeMetricFamily("detnet_link_reprogram_seconds", "Last link event: report to every affected "
                                    "reservation reprogrammed.", value=f["last_reprogram_s"])
        if s.cluster is not None:
            yield from cluster_families(s.cluster)


def cluster_families(c: Mapping[str, Any]) -> Iterator[Metric]:
    """The cluster member's series (only when the controller runs in a cluster on etcd)."""
    yield GaugeMetricFamily("detnet_cluster_leader", "1 while this controller leads its cluster, 0 while it "
                            "follows.", value=1 if c.get("role") == "leader" else 0)
    yield GaugeMetricFamily("detnet_cluster_term", "The leadership this controller holds (its OpenFlow "
                            "generation id); 0 on a follower.", value=int(c.get("term") or 0))
    yield GaugeMetricFamily("detnet_cluster_etcd_up", "1 when the last call to etcd answered.",
                            value=1 if c.get("etcd") == "ok" else 0)
    yield CounterMetricFamily("detnet_cluster_takeovers", "Times this process became the leader.",
                              value=int(c.get("takeovers") or 0))
    info = GaugeMetricFamily("detnet_cluster_info", "Always 1: this controller's advertised URL and the leader's "
                             "it knows ('' for none).", labels=["identity", "leader"])
    info.add_metric([str(c.get("identity") or ""), str(c.get("leader") or "")], 1)
    yield info


class Metrics:
    """One controller's registry: its event counters and histograms, and its state collector."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.admissions = Counter("detnet_admissions", "Reservations admitted, by tenant.", ["tenant"], registry=r)
        self.rejections = Counter("detnet_rejections", "Reservation requests refused, by reason kind.", ["reason"],
                                  registry=r)
        self.releases = Counter("detnet_releases", "Reservations released, by tenant.", ["tenant"], registry=r)
        self.admission_seconds = Histogram("detnet_admission_seconds", "Time to decide one reservation request.",
                                           buckets=ADMISSION_BUCKETS, registry=r)
        self.install_seconds = Histogram("detnet_flow_install_seconds",
                                         "Time to install or remove one reservation's flows.",
                                         buckets=INSTALL_BUCKETS, registry=r)
        self.install_failures = Counter("detnet_flow_install_failures",
                                        "Flow installs or removals without a complete barrier, by operation.",
                                        ["op"], registry=r)
        self.http_requests = Counter("detnet_http_requests", "REST API answers, by route template, method and "
                                     "HTTP status.", ["route", "method", "code"], registry=r)
        self.http_seconds = Histogram("detnet_http_request_seconds", "Time to answer one REST request, by route "
                                      "template and method.", ["route", "method"], buckets=HTTP_BUCKETS, registry=r)
        self.switch_refusals = Counter("detnet_switch_refusals", "OpenFlow connections refused as a switch "
                                       "(security events), by reason.", ["reason"], registry=r)
        Info("detnet_build", "The controller's version and Python.", registry=r).info(
            {"version": _version(), "python": platform.python_version()})

    # ----- events -------------------------------------------------------------------------------------
    def admitted(self, tenant: int, seconds: float) -> None:
        self.admissions.labels(str(tenant)).inc()
        self.admission_seconds.observe(seconds)

    def rejected(self, reason: str, seconds: float | None = None) -> None:
        self.rejections.labels(reason.split(":", 1)[0]).inc()
        if seconds is not None:
            self.admission_seconds.observe(seconds)

    def released(self, tenant: int) -> None:
        self.releases.labels(str(tenant)).inc()

    def installed(self, op: str, seconds: float, ok: bool) -> None:
        """One reservation's flows installed or removed on the switches (reported by the OpenFlow shim)."""
        self.install_seconds.observe(seconds)
        if not ok:
            self.install_failures.labels(op).inc()

    def switch_refused(self, reason: str) -> None:
        """An OpenFlow connection was refused as a switch (``controller.switchauth.REASONS``)."""
        self.switch_refusals.labels(reason).inc()

    def http_answer(self, route: str, method: str, status: int, seconds: float) -> None:
        """One REST answer (``controller.api.http_metrics``): ``route`` is a template, never a raw path."""
        self.http_requests.labels(route, method, str(status)).inc()
        self.http_seconds.labels(route, method).observe(seconds)

    # ----- state and exposition -------------------------------------------------------------------------
    def watch(self, read: Callable[[], State]) -> None:
        """Add the series computed from ``read()`` at each scrape (the service calls this once)."""
        self.registry.register(StateCollector(read))

    def render(self) -> str:
        """The exposition text of every series (``CONTENT_TYPE``)."""
        return generate_latest(self.registry).decode()
