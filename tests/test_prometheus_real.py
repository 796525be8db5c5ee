"""A real Prometheus server scrapes a live controller; the tests ask it questions in PromQL.

The server is Debian's ``prometheus`` package (``make setup`` installs it): each test starts the
binary on a free loopback port with a temporary configuration (one job scraping the controller every
250 ms) and a temporary storage directory, and always stops it (fixture finalizer, on failure too).
The controller is the real REST app under uvicorn (``apihelpers.serve``), or ``dnctl controller`` on
the emulation. What is checked is what an operator's Prometheus sees: the target is up and scraped
without error (``up``, ``scrape_samples_scraped``, ``/api/v1/targets`` ``lastError``, no scrape
warning in the server's log), a reservation made through the API shows in ``detnet_reservations``,
and a link reported down through ``ControllerService.link_down`` -- the entry point the OpenFlow
shim calls on a port status or an LLDP timeout (``controller.ofshim._link_worker``) -- shows in
``detnet_link_up`` and in the reroute counter;
``test_link_cut_on_the_emulation_shows_in_prometheus`` (marked ``emulation``) cuts the link on Open
vSwitch instead, so the report is the switches' port status. ``test_fntf40_...`` loads fntf40 with
4,096 reservations and prints the figures of docs/observability.md (series, bytes, scrape time; run
it with ``-s``): label values stay few and none is a reservation id.
"""

from __future__ import annotations

import subprocess
import time
from contextlib import contextmanager

import httpx
import pytest

from apihelpers import serve
from emuhelpers import ring4
from promhelpers import prometheus_tool
from controller.api import create_app
from controller.service import ControllerService
from tools.emulation.controller_proc import free_port

ADMIN = "prometheus-test-admin"
AH = {"Authorization": f"Bearer {ADMIN}"}
SCRAPE_INTERVAL = "250ms"
CONFIG = """\
global:
  scrape_interval: {interval}
  scrape_timeout: {interval}
scrape_configs:
  - job_name: detnet
    static_configs:
      - targets: ["{target}"]
"""


class Prom:
    """A running Prometheus: ``query`` (instant PromQL), ``value``, ``eventually``, ``targets``."""

    def __init__(self, url: str, log_path):
        self.url, self.log_path = url, log_path

    def query(self, expr: str) -> list[dict]:
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", (expr, r.text)
        return body["data"]["result"]

    def value(self, expr: str) -> float | None:
        """The value of an expression with at most one series (None when it has none)."""
        result = self.query(expr)
        assert len(result) <= 1, (expr, result)
        return float(result[0]["value"][1]) if result else None

    def eventually(self, expr: str, expected: float, timeout: float = 20.0) -> None:
        """Wait until ``expr`` has the value ``expected`` (new scrapes every 250 ms)."""
        deadline, got = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            got = self.value(expr)
            if got == expected:
                return
            time.sleep(0.1)
        raise AssertionError(f"{expr} = {got} after {timeout} s, expected {expected}")

    def targets(self) -> list[dict]:
        return httpx.get(f"{self.url}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def controller(tmp_path):
    service = ControllerService(ring4("square", 100, 300), db_path=str(tmp_path / "state.db"), admin_token=ADMIN,
                                store_synchronous="OFF")
    try:
        with serve(create_app(service), log_level="warning") as (host, port):
            yield service, f"http://{host}:{port}"
    finally:
        service.close()


@contextmanager
def running_prometheus(target_url: str, tmp_path):
    """A Prometheus scraping ``target_url`` every 250 ms until the block ends (stopped even on failure)."""
    config = tmp_path / "prometheus.yml"
    config.write_text(CONFIG.format(interval=SCRAPE_INTERVAL, target=target_url.removeprefix("http://")))
    log_path = tmp_path / "prometheus.log"
    for _attempt in range(3):       # the free port may be taken between its probe and the server's bind
        port = free_port()
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([prometheus_tool("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                     f"--web.listen-address=127.0.0.1:{port}", "--log.level=info"],
                                    stdout=log, stderr=subprocess.STDOUT)
        try:
            prom = Prom(f"http://127.0.0.1:{port}", log_path)
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    if httpx.get(f"{prom.url}/-/ready", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            if proc.poll() is None and time.monotonic() < deadline:
                yield prom
                return
            if "address already in use" not in prom.log():
                raise AssertionError(f"prometheus did not start:\n{prom.log()[-3000:]}")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    raise AssertionError(f"prometheus found no free port:\n{log_path.read_text()[-2000:]}")


@pytest.fixture
def prometheus(controller, tmp_path):
    with running_prometheus(controller[1], tmp_path) as prom:
        yield prom


def test_reservation_shows_in_prometheus_and_scrapes_have_no_errors(controller, prometheus):
    _, url = controller
    tenant = httpx.post(f"{url}/v1/tenants", json={"name": "blue"}, headers=AH).json()["id"]
    prometheus.eventually(f'detnet_reservations{{tenant="{tenant}"}}', 0)
    r = httpx.post(f"{url}/v1/reservations", headers=AH, json={
        "tenant": tenant, "src": "A", "dst": "C", "bandwidth_bps": 10**8, "max_latency_ns": 50_000_000})
    assert r.status_code == 201, r.text
    prometheus.eventually(f'detnet_reservations{{tenant="{tenant}"}}', 1)
    prometheus.eventually(f'detnet_admissions_total{{tenant="{tenant}"}}', 1)
    prometheus.eventually('detnet_http_requests_total{route="/v1/reservations",method="POST",code="201"}', 1)
    assert prometheus.value(f'detnet_tenant_reserved_bps{{tenant="{tenant}"}}') >= 10**8
    # the shares the dashboard shows: only the links of the path carry the reservation
    loaded = {s["metric"]["link"] for s in prometheus.query("detnet_link_reserved_share > 0")}
    assert loaded == {"A-B", "B-C"}

    assert prometheus.value('up{job="detnet"}') == 1
    scraped = prometheus.value('scrape_samples_scraped{job="detnet"}')
    assert scraped > 50
    assert scraped >= prometheus.value('count({job="detnet", __name__=~"detnet_.*"})')
    assert prometheus.value('detnet_build_info{job="detnet"}') == 1
    [target] = prometheus.targets()
    assert target["health"] == "up" and target["lastError"] == "", target
    assert target["labels"]["job"] == "detnet"
    warnings = [line for line in prometheus.log().splitlines()
                if "scrape" in line and ("level=warn" in line or "level=error" in line)]
    assert warnings == []


def test_link_cut_shows_in_link_up_and_reroute_counter(controller, prometheus):
    service, url = controller
    tenant = httpx.post(f"{url}/v1/tenants", json={"name": "blue"}, headers=AH).json()["id"]
    r = httpx.post(f"{url}/v1/reservations", headers=AH, json={
        "tenant": tenant, "src": "A", "dst": "C", "bandwidth_bps": 10**8, "max_latency_ns": 50_000_000})
    assert r.status_code == 201 and r.json()["path"] == ["A", "B", "C"], r.text
    prometheus.eventually('detnet_link_up{link="A-B"}', 1)
    prometheus.eventually("detnet_reservations_rerouted_total", 0)

    service.link_down("A", "B")        # what the OpenFlow shim calls when a port of A-B goes down
    prometheus.eventually('detnet_link_up{link="A-B"}', 0)
    prometheus.eventually("detnet_reservations_rerouted_total", 1)
    assert prometheus.value("detnet_link_down_events_total") == 1
    assert prometheus.value("detnet_reservations_down") == 0
    assert prometheus.value("sum(detnet_link_up)") == 3          # the other three links stay up
    loaded = {s["metric"]["link"] for s in prometheus.query("detnet_link_reserved_share > 0")}
    assert loaded == {"A-D", "D-C"}

    service.link_up("A", "B")
    prometheus.eventually('detnet_link_up{link="A-B"}', 1)
    prometheus.eventually("detnet_link_up_events_total", 1)
    # the dip is in the stored series: up, down, up again
    assert prometheus.value('changes(detnet_link_up{link="A-B"}[5m])') == 2
    assert prometheus.value('min_over_time(detnet_link_up{link="A-B"}[5m])') == 0


def test_fntf40_with_4096_reservations_bounded_cardinality_and_scrape_time(tmp_path):
    """The figures of docs/observability.md: fntf40 with 128 tenants holding 4,096 reservations
    (the ``dnctl bench rest`` workload, admitted in batches as POST /v1/reservations/batch does).
    No label takes a reservation id, each label has few values, and Prometheus scrapes it fast."""
    from controller.auth import Principal
    from tools.runs.bench_rest import rest_workload
    from tools.runs.isolation import spread_plan
    from topologies.loaders import load_topology

    topo = load_topology("fntf40")
    plan = spread_plan(topo, 128, 2)
    service = ControllerService(topo, db_path=str(tmp_path / "state.db"), host_plan=plan, max_tenants=128,
                                admin_token=ADMIN, store_synchronous="OFF")
    for t in range(1, 129):
        service.create_tenant(f"tenant{t}")
    bodies = [{**item.body, "tenant": item.tenant} for item in rest_workload(plan, 5000, 128)]
    while len(service.scheduler.reservations) < 4096:      # some are refused: top up to 4,096 held
        want = min(256, 4096 - len(service.scheduler.reservations))
        chunk, bodies = bodies[:want], bodies[want:]
        service.reserve_batch(Principal.admin(), chunk, atomic=False)
    ids = set(service.scheduler.reservations)
    renders = []
    for _ in range(10):          # the controller's own share of a scrape: state read and text written
        t0 = time.perf_counter()
        service.metrics_text()
        renders.append(time.perf_counter() - t0)
    try:
        with serve(create_app(service), log_level="warning") as (host, port), \
                running_prometheus(f"http://{host}:{port}", tmp_path) as prom:
            prom.eventually("sum(detnet_reservations)", 4096)
            time.sleep(3)            # a dozen scrapes of the loaded controller
            text = httpx.get(f"http://{host}:{port}/metrics").text
            series = prom.value('count({job="detnet", __name__=~"detnet_.*"})')
            scraped = prom.value('max_over_time(scrape_samples_scraped{job="detnet"}[10s])')
            median = prom.value('quantile_over_time(0.5, scrape_duration_seconds{job="detnet"}[10s])')
            worst = prom.value('max_over_time(scrape_duration_seconds{job="detnet"}[10s])')
            values = {name: httpx.get(f"{prom.url}/api/v1/label/{name}/values",
                                      params={"match[]": '{__name__=~"detnet_.*"}'}).json()["data"]
                      for name in httpx.get(f"{prom.url}/api/v1/labels").json()["data"]}
            [target] = prom.targets()
    finally:
        service.close()
    print(f"\nfntf40, 128 tenants, 4,096 reservations: {series:.0f} detnet_ series, {scraped:.0f} samples "
          f"per scrape, {len(text.encode())} bytes; Prometheus scrape_duration_seconds median "
          f"{1e3 * median:.1f} ms, max {1e3 * worst:.1f} ms (last 10 s); metrics_text() in process "
          f"{1e3 * sorted(renders)[5]:.1f} ms")
    assert target["health"] == "up" and target["lastError"] == ""
    assert not ids & {v for vs in values.values() for v in vs}          # no reservation id is a label value
    assert len(values["tenant"]) == 128 and len(values["link"]) == 2 * len(topo.links())
    # the label names of the catalogue only (controller/metrics.py); ``op`` appears with a failed install
    assert set(values) - {"__name__", "instance", "job"} <= {"tenant", "link", "le", "route", "method", "code",
                                                             "reason", "state", "version", "python", "op"}
    assert series < 1000 and scraped < 1000 and len(text.encode()) < 100_000
    assert median < 1.0


@pytest.mark.emulation
def test_link_cut_on_the_emulation_shows_in_prometheus(emu_lock, tmp_path):
    """The same link cut on Open vSwitch: the switch-side interface of A-B of chaos6 is set down,
    the switches report the port status, and Prometheus sees ``detnet_link_up`` fall to 0 and the
    reroute counter rise; with the interface up again the link is back to 1."""
    from tools.emulation.stack import NetworkStack
    from tools.runs.chaos import chaos6
    from topologies.emulated import switch_intf_name
    from topologies.hosts import HostPlan

    topo = chaos6()
    plan = HostPlan.build(topo, [(1, "A"), (1, "C")])
    intf = switch_intf_name(plan.switch_name("A"), plan.port("A", "B"))

    def set_intf(state: str) -> None:
        subprocess.run(["ip", "link", "set", intf, state], check=True, capture_output=True, timeout=10)

    with NetworkStack(topo, plan, verbose=False, log_dir=str(tmp_path)) as net, \
            running_prometheus(net.ctl.url, tmp_path) as prom:
        api = net.ctl.client()
        tenant = api.post("/v1/tenants", {"name": "blue"})["id"]
        r = api.post("/v1/reservations", {"tenant": tenant, "src": "A", "dst": "C", "bandwidth_bps": 10**6,
                                          "max_latency_ns": 50_000_000})
        assert r["path"] == ["A", "B", "C"], r
        prom.eventually("detnet_switches_connected", prom.value("detnet_switches_expected"))
        prom.eventually('detnet_link_up{link="A-B"}', 1)
        try:
            set_intf("down")
            prom.eventually('detnet_link_up{link="A-B"}', 0)
            prom.eventually("detnet_reservations_rerouted_total", 1)
            assert prom.value("detnet_link_down_events_total") == 1
        finally:
            set_intf("up")
        prom.eventually('detnet_link_up{link="A-B"}', 1, timeout=30)
        assert prom.value('changes(detnet_link_up{link="A-B"}[5m])') == 2
        [target] = prom.targets()
        assert target["health"] == "up" and target["lastError"] == ""
