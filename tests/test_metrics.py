"""``/metrics`` as written by ``controller.metrics`` (prometheus_client), read back with the client's own parser.

What a scraper relies on: the text parses as the exposition format, every series of the catalogue
is there with its type, the HTTP series are labelled by route template (never a raw path or an
unknown method), the body limit's 413s are counted, two controllers in one process keep separate
counts, and the scrape-time gauges follow the service's state (LLDP check, tenant quotas).
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from apihelpers import beijing_line
from controller.api import create_app
from controller.service import ControllerService

ADMIN = "metrics-admin-token"
AH = {"Authorization": f"Bearer {ADMIN}"}

#: Every family /metrics has on a fresh controller, with its type (the module docstring's catalogue).
CATALOGUE = {
    "detnet_admissions": "counter", "detnet_rejections": "counter", "detnet_releases": "counter",
    "detnet_admission_seconds": "histogram", "detnet_flow_install_seconds": "histogram",
    "detnet_flow_install_failures": "counter", "detnet_http_requests": "counter",
    "detnet_http_request_seconds": "histogram", "detnet_build_info": "gauge",
    "detnet_reservations": "gauge", "detnet_tenant_reserved_bps": "gauge", "detnet_tenant_quota_bps": "gauge",
    "detnet_tenant_max_reservations": "gauge", "detnet_tenants": "gauge", "detnet_link_reserved_share": "gauge",
    "detnet_link_up": "gauge", "detnet_switches_connected": "gauge", "detnet_switches_expected": "gauge",
    "detnet_lldp_links": "gauge", "detnet_lldp_checked": "gauge", "detnet_link_down_events": "counter",
    "detnet_link_up_events": "counter", "detnet_reservations_rerouted": "counter",
    "detnet_reservations_failed": "counter", "detnet_reservations_down": "gauge",
    "detnet_reservations_unrestored": "gauge", "detnet_switch_refusals": "counter",
}


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of an exposition, parsed by prometheus_client."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def api(tmp_path):
    service = ControllerService(beijing_line("metrics"), db_path=str(tmp_path / "state.db"), admin_token=ADMIN,
                                store_synchronous="OFF")
    yield service, TestClient(create_app(service, max_body_bytes=1024), raise_server_exceptions=False)
    service.close()


def test_catalogue_parses_with_types_and_build_info(api):
    service, client = api
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name: f.type for f in text_string_to_metric_families(r.text)}
    assert families == CATALOGUE
    s = samples(r.text)
    build = [labels for (name, labels) in s if name == "detnet_build_info"]
    assert len(build) == 1 and dict(build[0])["version"] and dict(build[0])["python"].count(".") == 2
    assert s[("detnet_switches_expected", ())] == 3 and s[("detnet_lldp_checked", ())] == 0
    assert s[("detnet_link_up", (("link", "Beijing-Tianjin"),))] == 1
    assert not any(name.endswith("_created") for name, _ in s)     # turned off: no doubled counters


def test_http_series_use_route_templates_and_bounded_methods(api):
    service, client = api
    tenant = client.post("/v1/tenants", json={"name": "alpha"}, headers=AH).json()["id"]
    body = {"tenant": tenant, "src": "Beijing", "dst": "Jinan", "bandwidth_bps": 10**6,
            "max_latency_ns": 50_000_000}
    rid = client.post("/v1/reservations", json=body, headers=AH).json()["id"]
    assert client.get(f"/v1/reservations/{rid}", headers=AH).status_code == 200
    assert client.get("/v1/reservations/r-nonexistent", headers=AH).status_code == 404
    assert client.get("/no/such/path/123").status_code == 404
    assert client.request("BREW", "/healthz").status_code == 405
    big = client.post("/v1/tenants", content=b"{" + b" " * 2048 + b"}", headers={**AH, "Content-Type":
                                                                                  "application/json"})
    assert big.status_code == 413
    text = client.get("/metrics").text
    s = samples(text)
    http = {dict(labels)["route"] + " " + dict(labels)["method"] + " " + dict(labels)["code"]: v
            for (name, labels), v in s.items() if name == "detnet_http_requests_total"}
    assert http["/v1/reservations/{reservation_id} GET 200"] == 1
    assert http["/v1/reservations/{reservation_id} GET 404"] == 1
    assert http["/v1/reservations POST 201"] == 1 and http["/v1/tenants POST 201"] == 1
    assert http["unmatched GET 404"] == 1
    assert http["/healthz other 405"] == 1
    assert http["unmatched POST 413"] == 1      # refused by the body limit before routing
    assert rid not in text and "nonexistent" not in text and "/no/such" not in text and "BREW" not in text
    assert s[("detnet_http_request_seconds_count",
              (("method", "GET"), ("route", "/v1/reservations/{reservation_id}")))] == 2
    assert s[("detnet_reservations", (("tenant", str(tenant)),))] == 1
    assert s[("detnet_tenant_reserved_bps", (("tenant", str(tenant)),))] >= 10**6


def test_two_controllers_in_one_process_count_separately(tmp_path):
    a = ControllerService(beijing_line("a"), db_path=str(tmp_path / "a.db"), admin_token=ADMIN,
                          store_synchronous="OFF")
    b = ControllerService(beijing_line("b"), db_path=str(tmp_path / "b.db"), admin_token=ADMIN,
                          store_synchronous="OFF")
    try:
        a.observe_install("install", "r1", 0.002, False)
        a.observe_install("install", "r2", 0.002, False)
        b.observe_install("remove", "r3", 0.2, True)
        sa, sb = samples(a.metrics_text()), samples(b.metrics_text())
        assert sa[("detnet_flow_install_failures_total", (("op", "install"),))] == 2
        assert sa[("detnet_flow_install_seconds_count", ())] == 2 and sb[("detnet_flow_install_seconds_count", ())] == 1
        assert ("detnet_flow_install_failures_total", (("op", "install"),)) not in sb
        assert sb[("detnet_flow_install_seconds_bucket", (("le", "0.25"),))] == 1
        assert sb[("detnet_flow_install_seconds_bucket", (("le", "0.1"),))] == 0
    finally:
        a.close()
        b.close()


def test_scrape_time_gauges_follow_lldp_check_quotas_and_links(api):
    service, client = api
    tenant, _ = service.create_tenant("quota", quota_bps=5 * 10**8, max_reservations=4)
    service.create_tenant("free")
    service.set_link_check({"expected": 2, "seen": 1, "missing": [["Tianjin", "Jinan"]], "unexpected": []})
    service.link_down("Tianjin", "Jinan")
    s = samples(client.get("/metrics").text)
    assert s[("detnet_lldp_checked", ())] == 1
    assert [s[("detnet_lldp_links", (("state", k),))] for k in ("expected", "seen", "missing", "unexpected")] == \
        [2, 1, 1, 0]
    assert s[("detnet_tenant_quota_bps", (("tenant", str(tenant.id)),))] == 5 * 10**8
    assert s[("detnet_tenant_max_reservations", (("tenant", str(tenant.id)),))] == 4
    quota_tenants = {dict(l)["tenant"] for (n, l) in s if n == "detnet_tenant_quota_bps"}
    assert quota_tenants == {str(tenant.id)} and s[("detnet_tenants", ())] == 2
    assert s[("detnet_link_up", (("link", "Tianjin-Jinan"),))] == 0
    assert s[("detnet_link_up", (("link", "Beijing-Tianjin"),))] == 1
    assert s[("detnet_link_down_events_total", ())] == 1 and ("detnet_link_reprogram_seconds", ()) in s


def test_http_middleware_counts_a_handler_exception_as_500_under_its_route():
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from controller.api.http_metrics import HttpMetricsMiddleware

    seen = []

    def boom(request):
        raise RuntimeError("bug")

    app = Starlette(routes=[Route("/items/{item_id}", boom), Route("/ok", lambda r: PlainTextResponse("ok"))],
                    middleware=[Middleware(HttpMetricsMiddleware, record=lambda *a: seen.append(a[:3]))])
    client = TestClient(app, raise_server_exceptions=False)
    assert client.get("/items/42").status_code == 500
    assert client.get("/ok").status_code == 200
    assert seen == [("/items/{item_id}", "GET", 500), ("/ok", "GET", 200)]
