"""Issue 12, wrong answer 6 (part): a reservation id leaks nothing across tenants.

Before: tenant 2 POSTing an explicit id that tenant 1 held was answered 409 ``exists``, so any
tenant could probe which ids the others use (the docs promise "an id leaks nothing"). Now an id a
tenant chooses is scoped to that tenant (``controller.reservations``: held by another tenant, it is
kept internally as ``ID@TENANT``; the tenant sees and addresses it as ``ID``).

The main test is differential: the same sequence of tenant 2's requests (POST, GET, list, pages,
compact form, schedule, PATCH, what-if, batches, multi-delete, DELETE, events) is run in two
worlds that differ only in the id tenant 1 holds ("shared", the id tenant 2 then uses, or
"elsewhere"), and tenant 2's answers must be identical, byte for byte but the audit timestamps.
"""

import json

import pytest
from fastapi.testclient import TestClient

from controller.api import create_app
from test_api import AH, make_service


def _tenants(client):
    heads = []
    for name in ("alpha", "beta"):
        r = client.post("/v1/tenants", json={"name": name}, headers=AH)
        assert r.status_code == 201, r.text
        heads.append({"Authorization": f"Bearer {r.json()['token']}"})
    return heads


def _body(**kw):
    body = {"src": "A", "dst": "B", "bandwidth_bps": 10**9, "max_latency_ns": 5_000_000,
            "match": {"udp_dst": 6000}}
    body.update(kw)
    return body


def _answer(r):
    """What a client sees of an answer: status, Location and the JSON body (timestamps dropped)."""
    try:
        body = r.json()
    except ValueError:
        body = r.text
    if isinstance(body, dict) and "events" in body:
        body = {**body, "events": [{k: v for k, v in e.items() if k != "ts"} for e in body["events"]]}
    return r.status_code, r.headers.get("location"), body


def _tenant2_transcript(tmp_path, held_by_tenant1: str) -> list:
    svc = make_service(tmp_path / f"{held_by_tenant1}.db")
    try:
        client = TestClient(create_app(svc), raise_server_exceptions=False)
        t1, t2 = _tenants(client)
        r = client.post("/v1/reservations", json=_body(id=held_by_tenant1, src="A", dst="C",
                                                      match={"udp_dst": 7000}), headers=t1)
        assert r.status_code == 201, r.text
        log = []

        def say(method, url, **kw):
            log.append((method, url, _answer(client.request(method, url, headers=t2, **kw))))
            return log[-1][2]

        # tenant 1's id, seen by tenant 2 before it has one: exactly a nonexistent id
        say("GET", "/v1/reservations/shared")
        say("PATCH", "/v1/reservations/shared", json={"bandwidth_bps": 2 * 10**9})
        say("DELETE", "/v1/reservations/shared")
        say("POST", "/v1/reservations/delete", json={"ids": ["shared"]})
        say("POST", "/v1/paths", json=_body(id="shared"))
        say("GET", "/v1/paths?src=A&dst=B&bandwidth_bps=1000000000&max_latency_ns=5000000&id=shared")
        blocked = say("POST", "/v1/reservations/batch", json={"atomic": True, "reservations": [
            _body(id="shared", match={"udp_dst": 6200}), _body(dst="D", max_latency_ns=1000)]})
        assert blocked[0] == 409 and blocked[2]["index"] == 1, blocked      # not refused for its id
        # tenant 2 takes the id for itself
        created = say("POST", "/v1/reservations", json=_body(id="shared"))
        assert created[0] == 201, created
        say("POST", "/v1/reservations", json=_body(id="other", src="C", dst="D", match={"udp_dst": 6001}))
        say("GET", "/v1/reservations/shared")
        say("GET", "/v1/reservations")
        page = say("GET", "/v1/reservations?limit=1")
        say("GET", f"/v1/reservations?limit=1&cursor={page[2]['next_cursor']}")
        say("GET", "/v1/reservations?slots=compact")
        say("GET", "/v1/schedule")
        say("PATCH", "/v1/reservations/shared", json={"bandwidth_bps": 2 * 10**9})
        say("PATCH", "/v1/reservations/other", json={"match": {"udp_dst": 6000}})      # overlap:shared
        say("POST", "/v1/reservations", json=_body(id="shared", src="C", dst="D"))     # exists: its own
        say("POST", "/v1/paths", json=_body(id="shared", match={"udp_dst": 6009}))
        say("POST", "/v1/reservations/batch", json={"atomic": False, "reservations": [
            _body(id="shared", match={"udp_dst": 6010}), _body(match={"udp_dst": 6000})]})
        say("POST", "/v1/reservations/batch", json={"atomic": True, "reservations": [
            _body(id="shared", match={"udp_dst": 6011})]})
        say("POST", "/v1/reservations/delete", json={"ids": ["other", "shared"]})
        say("POST", "/v1/reservations/batch", json={"atomic": True, "reservations": [
            _body(id="shared", match={"udp_dst": 6012})]})
        say("DELETE", "/v1/reservations/shared")
        say("GET", "/v1/reservations/shared")
        say("GET", "/v1/events")
        return log
    finally:
        svc.close()


def test_tenant_answers_do_not_depend_on_another_tenants_ids(tmp_path):
    holds = _tenant2_transcript(tmp_path, "shared")
    other = _tenant2_transcript(tmp_path, "elsewhere")
    for (method, url, seen), (_, _, expected) in zip(holds, other):
        assert seen == expected, f"{method} {url}: tenant 1 holding the id changed tenant 2's answer"
    assert len(holds) == len(other)


def test_same_id_in_two_tenants_and_the_admins_view(tmp_path):
    db = tmp_path / "c.db"
    svc = make_service(db)
    try:
        client = TestClient(create_app(svc), raise_server_exceptions=False)
        t1, t2 = _tenants(client)
        one = client.post("/v1/reservations", json=_body(id="job", src="A", dst="C"), headers=t1)
        two = client.post("/v1/reservations", json=_body(id="job"), headers=t2)
        assert one.status_code == two.status_code == 201
        assert one.json()["id"] == two.json()["id"] == "job"
        assert two.headers["location"] == "/v1/reservations/job"
        # each tenant reaches its own; the admin sees both, tenant 2's qualified by its tenant
        assert client.get("/v1/reservations/job", headers=t1).json()["dst"] == "C"
        assert client.get("/v1/reservations/job", headers=t2).json()["dst"] == "B"
        assert sorted(r["id"] for r in client.get("/v1/reservations", headers=AH).json()["reservations"]) \
            == ["job", "job@2"]
        assert client.get("/v1/reservations/job@2", headers=AH).json()["tenant"] == 2
        # a tenant cannot name the qualified form of another tenant's id, nor choose an '@' id
        assert client.get("/v1/reservations/job@1", headers=t2).status_code == 404
        bad = client.post("/v1/reservations", json=_body(id="x@1", match={"udp_dst": 6100}), headers=t2)
        assert bad.status_code == 422 and bad.json()["field"] == "id"
        # the admin giving tenant 2 an id it already holds (as job@2) is refused: ids stay unique per tenant
        dup = client.post("/v1/reservations", json=_body(id="job", tenant=2, match={"udp_dst": 6101}), headers=AH)
        assert dup.status_code == 409 and dup.json()["reason"] == "exists"
    finally:
        svc.close()
    svc = make_service(db)                          # a restart keeps both, each its tenant's "job"
    try:
        client = TestClient(create_app(svc), raise_server_exceptions=False)
        assert sorted(r.id for r in svc.scheduler.reservations.values()) == ["job", "job@2"]
        assert client.delete("/v1/reservations/job@2", headers=AH).status_code == 204
        assert [r.id for r in svc.scheduler.reservations.values()] == ["job"]
    finally:
        svc.close()


@pytest.mark.parametrize("route", ["get", "delete", "patch", "multi-delete"])
def test_another_tenants_id_answers_as_a_nonexistent_one(tmp_path, route):
    svc = make_service(tmp_path / "c.db")
    try:
        client = TestClient(create_app(svc), raise_server_exceptions=False)
        t1, t2 = _tenants(client)
        assert client.post("/v1/reservations", json=_body(id="mine"), headers=t1).status_code == 201

        def ask(rid):
            if route == "multi-delete":
                r = client.post("/v1/reservations/delete", json={"ids": [rid]}, headers=t2)
            elif route == "patch":
                r = client.patch(f"/v1/reservations/{rid}", json={"bandwidth_bps": 10**8}, headers=t2)
            else:
                r = client.request(route.upper(), f"/v1/reservations/{rid}", headers=t2)
            return r.status_code, json.loads(r.text.replace(rid, "ID"))

        assert ask("mine") == ask("nothing") and ask("mine")[0] == 404
        assert client.get("/v1/reservations/mine", headers=t1).status_code == 200      # untouched
    finally:
        svc.close()
