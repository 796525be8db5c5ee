"""The OpenAPI document describes every answer, and the docs pages work offline (issue 12).

- every operation of ``/openapi.json`` has a 2xx response with a non-empty schema (a 204 has no
  body), and every property of every response schema has a description;
- real answers of a live app (FastAPI TestClient over a real ``ControllerService`` and SQLite
  store), one or more for every operation and the common 4xx, validate against the schema
  declared for their status, made strict (``additionalProperties: false`` wherever the document
  lists properties): a key the document does not describe fails here, although the models let it
  through at run time;
- declaring the response models changed no answer: the API's JSON equals what the service's own
  views give, key order included;
- ``/docs`` (Swagger UI) and ``/redoc`` load no asset from outside the controller, every JS/CSS file
  they reference is served (200), and they and ``/openapi.json`` need no token.
"""

from __future__ import annotations

import copy
import json
import re

import jsonschema_rs
import pytest
from fastapi.testclient import TestClient

from controller.api import create_app
from controller.api.routers.paths import what_if_answer
from controller.api.routers.reservations import reservation_body
from controller.auth import Principal
from controller.service import ControllerService
from test_api import ADMIN, AH, square
from topologies.hosts import HostPlan

#: (method, path template, status) of every answer the scenario checked
SEEN: set[tuple[str, str, int]] = set()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    topo = square()         # A-B-C-D and A-D: A->C has a link-disjoint protection path
    service = ControllerService(topo, db_path=str(tmp_path_factory.mktemp("openapi") / "o.db"), admin_token=ADMIN,
                                host_plan=HostPlan.build(topo, [(1, "A"), (1, "C")]), store_synchronous="OFF")
    client = TestClient(create_app(service, rate_limit_per_s=0), raise_server_exceptions=False)
    spec = client.get("/openapi.json").json()
    yield service, client, spec
    service.close()


def strict(spec: dict) -> dict:
    """The document's components with ``additionalProperties: false`` on every object with properties."""
    components = copy.deepcopy(spec["components"])

    def walk(node):
        if isinstance(node, dict):
            if "properties" in node:
                node["additionalProperties"] = False
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(components)
    return components


def check(spec: dict, method: str, template: str, response, status: int | None = None):
    """Validate one answer against the (strict) schema the document declares for its status."""
    if status is not None:
        assert response.status_code == status, f"{method} {template}: {response.status_code} {response.text[:300]}"
    op = spec["paths"][template][method.lower()]
    documented = op["responses"].get(str(response.status_code))
    assert documented is not None, f"{method} {template}: status {response.status_code} is not documented"
    SEEN.add((method.upper(), template, response.status_code))
    if response.status_code == 204:
        assert not response.content and "content" not in documented
        return response
    media = response.headers["content-type"].split(";")[0].strip()
    if media == "application/json":
        schema = documented["content"]["application/json"]["schema"]
        root = {**schema, "components": strict(spec)}
        errors = [f"{e.instance_path}: {e.message}" for e in jsonschema_rs.Draft202012Validator(root)
                  .iter_errors(response.json())]
        assert not errors, f"{method} {template} {response.status_code}: {errors[:5]}"
    else:
        assert documented["content"][media]["schema"]["type"] == "string"
    return response


def resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema and len(schema) == 1:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


# ----- the document -----------------------------------------------------------------------------------------
def test_every_operation_documents_a_2xx_answer_with_a_schema(world):
    _, _, spec = world
    operations = 0
    for path, item in spec["paths"].items():
        for method, op in item.items():
            operations += 1
            name = f"{method.upper()} {path}"
            for status in ("401", "404", "409", "413", "422"):     # the common 4xx, where given, are error bodies
                if status in op["responses"]:
                    ref = op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorBody"), f"{name} {status}: {ref}"
            ok = {status: r for status, r in op["responses"].items() if status.startswith("2")}
            assert len(ok) == 1, f"{name}: 2xx answers {sorted(ok)}"
            (status, answer), = ok.items()
            assert answer.get("description"), f"{name}: no description"
            if status == "204":
                assert "content" not in answer, f"{name}: a 204 has no body"
                continue
            for media, content in answer["content"].items():
                schema = resolve(spec, content.get("schema") or {})
                described = "properties" in schema or "anyOf" in schema or schema.get("type") == "string"
                assert described, f"{name} {status} {media}: no schema of the answer ({schema})"
    assert operations >= 20


def _referenced(spec: dict) -> set[str]:
    """Names of the component schemas the responses use, transitively."""
    names: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[1]
                if name not in names:
                    names.add(name)
                    walk(spec["components"]["schemas"][name])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for item in spec["paths"].values():
        for op in item.values():
            walk(op["responses"])
    return names


def test_every_response_property_has_a_description(world):
    _, _, spec = world
    names = _referenced(spec)
    assert {"Reservation", "ReservationList", "BatchAnswer", "Topology", "Schedule", "Health", "TenantMe",
            "WhatIfAdmissible", "WhatIfRefused", "ErrorBody"} <= names
    missing = [f"{name}.{prop}" for name in sorted(names)
               for prop, schema in spec["components"]["schemas"][name].get("properties", {}).items()
               if not schema.get("description")]
    assert not missing, f"properties without a description: {missing}"
    units = spec["components"]["schemas"]["Reservation"]["properties"]
    for prop, unit in (("latency_bound_ns", "ns"), ("bandwidth_bps", "bit/s"), ("frame_bytes", "bytes")):
        assert unit in units[prop]["description"], prop


# ----- live answers against the document ----------------------------------------------------------------------
def test_live_answers_validate_against_the_document(world):
    service, client, spec = world
    c = lambda method, template, r, status=None: check(spec, method, template, r, status)     # noqa: E731

    c("GET", "/healthz", client.get("/healthz"), 200)
    c("GET", "/metrics", client.get("/metrics"), 200)
    t = c("POST", "/v1/tenants", client.post("/v1/tenants", json={"name": "alpha", "quota_bps": 10**11}, headers=AH),
          201).json()
    th = {"Authorization": f"Bearer {t['token']}"}
    c("GET", "/v1/tenants", client.get("/v1/tenants", headers=AH), 200)
    c("GET", "/v1/tenants/{tenant_id}", client.get(f"/v1/tenants/{t['id']}", headers=AH), 200)
    c("PATCH", "/v1/tenants/{tenant_id}",
      client.patch(f"/v1/tenants/{t['id']}", json={"max_reservations": 50}, headers=AH), 200)
    c("GET", "/v1/tenants/me", client.get("/v1/tenants/me", headers=th), 200)
    c("GET", "/v1/topology", client.get("/v1/topology", headers=AH), 200)
    c("GET", "/v1/topology", client.get("/v1/topology", headers=th), 200)

    post = lambda body: client.post("/v1/reservations", json=body, headers=th)     # noqa: E731
    plain = c("POST", "/v1/reservations", post({"src": "A", "dst": "C", "bandwidth_bps": 10**9,
                                                 "max_latency_ns": 5_000_000, "match": {"udp_dst": 5000}}), 201).json()
    assert plain["warnings"] == [] and "max_jitter_ns" not in plain and "protection" not in plain
    full = c("POST", "/v1/reservations", post({"src": "A", "dst": "C", "frame_bytes": 1500, "period_ns": 500_000,
                                                "max_latency_ns": 20_000_000, "max_jitter_ns": 100_000, "id": "full-1",
                                                "protection": "disjoint",
                                                "match": {"ip_proto": 17, "udp_dst": 5001, "ip_dscp": 46}}),
             201).json()
    assert full["protection_path"] and full["protection_hops"] and full["max_jitter_ns"] == 100_000
    warned = c("POST", "/v1/reservations", post({"src": "B", "dst": "D", "bandwidth_bps": 10**6,
                                                  "max_latency_ns": 10**8}), 201).json()
    assert warned["warnings"][0]["code"] == "installs_nothing"
    c("POST", "/v1/reservations", post({"src": "A", "dst": "C", "bandwidth_bps": 10**6, "max_latency_ns": 1000,
                                        "match": {"udp_dst": 5002}}), 409)

    c("GET", "/v1/reservations", client.get("/v1/reservations", headers=th), 200)
    compact = c("GET", "/v1/reservations", client.get("/v1/reservations?slots=compact", headers=AH), 200).json()
    assert any("tx_offsets_compact" in r for r in compact["reservations"])
    page = c("GET", "/v1/reservations", client.get("/v1/reservations?limit=2", headers=AH), 200).json()
    last = c("GET", "/v1/reservations",
             client.get(f"/v1/reservations?limit=2&cursor={page['next_cursor']}", headers=AH), 200).json()
    assert last["next_cursor"] is None
    c("GET", "/v1/reservations/{reservation_id}", client.get("/v1/reservations/full-1", headers=th), 200)
    c("PATCH", "/v1/reservations/{reservation_id}",
      client.patch("/v1/reservations/full-1", json={"protection": None, "max_jitter_ns": None}, headers=th), 200)

    what_if = {"src": "A", "dst": "C", "bandwidth_bps": 10**6, "max_latency_ns": 5_000_000, "match": {"udp_dst": 6000}}
    yes = c("POST", "/v1/paths", client.post("/v1/paths", json=what_if, headers=th), 200).json()
    assert yes["admissible"] is True and "id" not in yes
    no = c("POST", "/v1/paths", client.post("/v1/paths", json={**what_if, "max_latency_ns": 1000}, headers=th),
           200).json()
    assert no["admissible"] is False
    net = c("GET", "/v1/paths", client.get("/v1/paths", params={"src": "A", "dst": "C", "bandwidth_bps": 10**6,
                                                                "max_latency_ns": 5_000_000}, headers=AH), 200).json()
    assert net["admissible"] is True and net["tenant"] is None

    members = [{"src": "A", "dst": "C", "bandwidth_bps": 10**6, "max_latency_ns": 5_000_000,
                "match": {"udp_dst": 7000 + i}} for i in range(3)]
    c("POST", "/v1/reservations/batch",
      client.post("/v1/reservations/batch", json={"atomic": True, "reservations": members}, headers=th), 201)
    mixed = [{**members[0], "match": {"udp_dst": 7100}}, {**members[1], "max_latency_ns": 1000},
             {**members[2], "bogus": 1}]
    b = c("POST", "/v1/reservations/batch",
          client.post("/v1/reservations/batch", json={"atomic": False, "reservations": mixed}, headers=th), 201).json()
    assert [x["error"] for x in b["rejections"]] == ["rejected", "invalid"]
    blocked = c("POST", "/v1/reservations/batch",
                client.post("/v1/reservations/batch", json={"atomic": True, "reservations": [
                    {**members[0], "match": {"udp_dst": 7200}}, mixed[1]]}, headers=th),
                409).json()
    assert blocked["index"] == 1
    ids = [r["id"] for r in b["reservations"]]
    c("POST", "/v1/reservations/delete", client.post("/v1/reservations/delete", json={"ids": ids}, headers=th), 200)
    c("POST", "/v1/reservations/delete", client.post("/v1/reservations/delete", json={"ids": ["nope"]}, headers=th),
      404)

    c("GET", "/v1/schedule", client.get("/v1/schedule", headers=AH), 200)
    c("GET", "/v1/schedule", client.get("/v1/schedule", headers=th), 200)
    for fmt in ("json", "yang", "taprio"):
        c("GET", "/v1/schedule/gcl", client.get(f"/v1/schedule/gcl?format={fmt}", headers=AH), 200)
    c("GET", "/v1/schedule/gcl", client.get("/v1/schedule/gcl?src=A", headers=AH), 422)
    c("GET", "/v1/schedule/gcl", client.get("/v1/schedule/gcl", headers=th), 403)
    c("GET", "/v1/events", client.get("/v1/events?since=0", headers=AH), 200)
    c("GET", "/v1/events", client.get("/v1/events?since=0", headers=th), 200)
    c("DELETE", "/v1/reservations/{reservation_id}", client.delete(f"/v1/reservations/{plain['id']}", headers=th), 204)
    c("POST", "/v1/tenants/{tenant_id}/token", client.post(f"/v1/tenants/{t['id']}/token", headers=AH), 200)
    other = client.post("/v1/tenants", json={"name": "beta"}, headers=AH).json()
    c("DELETE", "/v1/tenants/{tenant_id}", client.delete(f"/v1/tenants/{other['id']}", headers=AH), 200)

    # the common 4xx
    c("GET", "/v1/reservations", client.get("/v1/reservations"), 401)
    c("GET", "/v1/tenants", client.get("/v1/tenants", headers=th), 401)      # the rotated token
    c("GET", "/v1/reservations/{reservation_id}", client.get("/v1/reservations/nope", headers=AH), 404)
    c("POST", "/v1/reservations", client.post("/v1/reservations", json={"src": "A"}, headers=AH), 422)
    c("POST", "/v1/reservations", client.post("/v1/reservations", content=b"{", headers={
        **AH, "Content-Type": "application/json"}), 400)
    c("GET", "/v1/tenants/me", client.get("/v1/tenants/me", headers=AH), 403)

    documented = {(m.upper(), p) for p, item in spec["paths"].items() for m in item}
    answered = {(m, p) for m, p, s in SEEN if 200 <= s < 300}
    assert documented == answered, f"operations without a checked 2xx: {sorted(documented - answered)}"


def test_declared_models_change_no_answer(world):
    """The JSON is exactly the service's own view (no field filtered, renamed, retyped or reordered)."""
    service, client, _ = world
    admin = Principal.admin()

    def same(answer, expected):
        expected = json.loads(json.dumps(expected))
        assert answer == expected
        assert json.dumps(answer) == json.dumps(expected), "key order changed"

    r = client.post("/v1/reservations", json={"tenant": 1, "src": "A", "dst": "C", "frame_bytes": 900,
                                               "period_ns": 250_000, "max_latency_ns": 20_000_000, "id": "same-1",
                                               "max_jitter_ns": 50_000, "protection": "disjoint",
                                               "match": {"udp_dst": 9100}}, headers=AH)
    assert r.status_code == 201, r.text
    same(r.json(), reservation_body(service, service.get_reservation(admin, "same-1")))
    same(client.get("/v1/reservations/same-1", headers=AH).json(),
         reservation_body(service, service.get_reservation(admin, "same-1")))
    same(client.get("/v1/reservations", headers=AH).json(),
         {"reservations": [reservation_body(service, x) for x in service.list_reservations(admin)]})
    same(client.get("/v1/topology", headers=AH).json(), service.topology_for(admin))
    ask = {"tenant": 1, "src": "A", "dst": "C", "bandwidth_bps": 10**6, "max_latency_ns": 20_000_000,
           "match": {"udp_dst": 9200}}
    same(client.post("/v1/paths", json=ask, headers=AH).json(), what_if_answer(service, admin, ask))
    same(client.post("/v1/paths", json={**ask, "max_latency_ns": 1000}, headers=AH).json(),
         what_if_answer(service, admin, {**ask, "max_latency_ns": 1000}))
    same(client.get("/v1/schedule", headers=AH).json(), service.schedule_dict(admin))
    same(client.get("/v1/tenants", headers=AH).json(), {"tenants": service.list_tenants(principal=admin)})
    same(client.get("/v1/events?since=0", headers=AH).json()["events"], service.events(admin, 0, 1000))
    health = client.get("/healthz").json()
    expected = service.health()
    assert list(health) == list(expected) and {**health, "uptime_s": 0} == {**expected, "uptime_s": 0}
    assert isinstance(health["uptime_s"], float)


# ----- the docs pages, offline --------------------------------------------------------------------------------
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_nothing_from_outside_and_need_no_token(world, page):
    _, client, _ = world
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    urls += re.findall(r"""(?:url|spec-url)\s*[:=]\s*["']([^"']+)["']""", html)
    assert urls, html
    outside = [u for u in urls if re.match(r"^(https?:)?//", u)]
    assert not outside, f"{page} loads from outside the controller: {outside}"
    assert not re.search(r"https?://", html), f"{page} names an outside URL"
    assets = [u for u in urls if u.endswith((".js", ".css"))]
    assert any(u.endswith(".js") for u in assets)
    for url in assets + ["/openapi.json"]:
        got = client.get(url)          # no token
        assert got.status_code == 200 and len(got.content) > 1000, f"{page}: {url} answered {got.status_code}"
        want = "css" if url.endswith(".css") else "javascript" if url.endswith(".js") else "json"
        assert want in got.headers["content-type"], (url, got.headers["content-type"])
    if page == "/docs":
        assert '"validatorUrl": null' in html             # no badge fetched from validator.swagger.io
    missing = client.get("/docs-assets/nope.js")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
