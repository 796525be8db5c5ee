"""REST API v1 over a real ControllerService and SQLite store (FastAPI TestClient, no network).

Covers the status semantics (201/204/400/401/403/404/409/413/422/429), tenant isolation, the
{"error","detail"} error shape, that refused input changes neither the schedule nor the store,
OpenAPI, metrics, what-if, listeners, store-failure rollback and restarts on the same database.
"""

import itertools
import json
import logging
import threading

import pytest
from fastapi.testclient import TestClient

from controller.api import create_app
from controller.core.model import Reservation
from controller.seams import DataPlaneHost, NullListener, ReservationListener
from controller.service import ControllerService, Forbidden
from topologies.hosts import HostPlan
from topologies.model import Topology

ADMIN = "admin-token-for-api-tests-0123456789"
AH = {"Authorization": f"Bearer {ADMIN}"}


def square(with_cd: bool = True) -> Topology:
    """A-B-C-D line plus a long A-D link, 10 Gb/s: a 1 Gb/s flow holds 100 of 1000 slots per ms."""
    t = Topology("square")
    for n in "ABCD":
        t.add_node(n)
    t.add_link("A", "B", 100, capacity_bps=10**10)
    t.add_link("B", "C", 200, capacity_bps=10**10)
    if with_cd:
        t.add_link("C", "D", 100, capacity_bps=10**10)
    t.add_link("A", "D", 1000, capacity_bps=10**10)
    return t


def make_service(db, topo=None, **kw) -> ControllerService:
    topo = topo or square()
    kw.setdefault("admin_token", ADMIN)
    kw.setdefault("store_synchronous", "OFF")
    return ControllerService(topo, db_path=str(db), host_plan=HostPlan.build(topo, [(1, "A"), (2, "C")]), **kw)

_PORTS = itertools.count(10000)


class Env:
    """A service, its app and a client; helpers to create tenants and reserve."""

    def __init__(self, db, **app_kw):
        self.db = db
        self.service = make_service(db)
        self.client = TestClient(create_app(self.service, **app_kw), raise_server_exceptions=False)

    def tenant(self, name: str, **quotas) -> tuple[int, dict]:
        r = self.client.post("/v1/tenants", json={"name": name, **quotas}, headers=AH)
        assert r.status_code == 201, r.text
        return r.json()["id"], {"Authorization": f"Bearer {r.json()['token']}"}

    def reserve(self, headers, **body):
        body.setdefault("src", "A")
        body.setdefault("dst", "C")
        body.setdefault("bandwidth_bps", 10**9)
        body.setdefault("max_latency_ns", 5_000_000)
        body.setdefault("match", {"udp_dst": next(_PORTS)})   # distinct traffic per reservation
        return self.client.post("/v1/reservations", json=body, headers=headers)

    def state(self):
        """Everything a refused request must leave alone."""
        return (json.dumps(self.service.schedule_dict(), sort_keys=True), self.service.store.reservation_rows(),
                [(t.tenant, t.token_hash) for t in self.service.store.load_tenants()],
                self.service.scheduler.state_fingerprint())


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path / "c.db")
    yield e
    e.service.close()


def is_error(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == code and isinstance(body["detail"], str) and body["detail"]
    assert set(body) <= {"error", "detail", "field", "reason"}
    return body


# ----- tenants and auth ------------------------------------------------------------------------------
def test_tenant_creation_listing_and_admin_only_routes(env):
    tid, th = env.tenant("alpha", quota_bps=5 * 10**9, max_reservations=3)
    r = env.client.post("/v1/tenants", json={"name": "beta"}, headers=AH)
    assert r.status_code == 201 and r.headers["location"] == f"/v1/tenants/{r.json()['id']}"
    assert set(r.json()) == {"id", "name", "quota_bps", "max_reservations", "token"}
    env.reserve(th)
    tenants = env.client.get("/v1/tenants", headers=AH).json()["tenants"]
    alpha = next(t for t in tenants if t["id"] == tid)
    assert alpha == {"id": tid, "name": "alpha", "quota_bps": 5 * 10**9, "max_reservations": 3,
                     "reserved_bps": 10**9, "reservations": 1}
    assert env.client.get(f"/v1/tenants/{tid}", headers=AH).json() == alpha
    is_error(env.client.get("/v1/tenants", headers=th), 403, "forbidden")
    is_error(env.client.post("/v1/tenants", json={"name": "x"}, headers=th), 403, "forbidden")
    is_error(env.client.get("/v1/tenants"), 401, "unauthorized")
    is_error(env.client.get("/v1/tenants", headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
    is_error(env.client.get("/v1/tenants", headers={"Authorization": ADMIN}), 401, "unauthorized")
    is_error(env.client.get("/v1/tenants/99", headers=AH), 404, "not_found")
    is_error(env.client.post("/v1/tenants", json={"name": "alpha"}, headers=AH), 409, "rejected")


def test_patch_tenant_changes_quotas_and_rejects_bad_fields(env):
    tid, th = env.tenant("alpha")
    r = env.client.patch(f"/v1/tenants/{tid}", json={"max_reservations": 1}, headers=AH)
    assert r.status_code == 200 and r.json()["max_reservations"] == 1 and r.json()["quota_bps"] is None
    assert env.reserve(th).status_code == 201
    body = is_error(env.reserve(th), 409, "rejected")
    assert body["reason"] == "quota"
    r = env.client.patch(f"/v1/tenants/{tid}", json={"max_reservations": None, "name": "alpha2"}, headers=AH)
    assert r.json()["max_reservations"] is None and r.json()["name"] == "alpha2"
    assert env.reserve(th).status_code == 201
    assert is_error(env.client.patch(f"/v1/tenants/{tid}", json={"colour": 1}, headers=AH), 422,
                    "invalid")["field"] == "colour"
    assert is_error(env.client.patch(f"/v1/tenants/{tid}", json={"quota_bps": -1}, headers=AH), 422,
                    "invalid")["field"] == "quota_bps"
    assert is_error(env.client.patch(f"/v1/tenants/{tid}", json={"name": None}, headers=AH), 422,
                    "invalid")["field"] == "name"
    is_error(env.client.patch("/v1/tenants/77", json={"quota_bps": 1}, headers=AH), 404, "not_found")
    assert is_error(env.client.patch("/v1/tenants/abc", json={}, headers=AH), 422, "invalid")["field"] == "tenant_id"
    is_error(env.client.patch(f"/v1/tenants/{tid}", json={"quota_bps": 1}, headers=th), 403, "forbidden")


# ----- reservations ------------------------------------------------------------------------------------
def test_reserve_get_list_delete(env):
    tid, th = env.tenant("alpha")
    r = env.reserve(th, period_ns=1_000_000, match={"ip_dst": "10.0.2.1", "udp_dst": 5000})
    assert r.status_code == 201, r.text
    res = r.json()
    assert r.headers["location"] == f"/v1/reservations/{res['id']}"
    for key in ("id", "tenant", "src", "dst", "period_ns", "frame_bytes", "bandwidth_bps", "max_latency_ns",
                "latency_bound_ns", "jitter_bound_ns", "path", "hops", "tx_offsets_ns", "cycle_ns", "slot_ns"):
        assert key in res
    assert res["tenant"] == tid and res["path"][0] == "A" and res["path"][-1] == "C"
    assert res["latency_bound_ns"] <= res["max_latency_ns"] and res["match"]["udp_dst"] == 5000
    assert env.client.get(res["id"] and r.headers["location"], headers=th).json() == res
    assert env.client.get("/v1/reservations", headers=th).json() == {"reservations": [res]}
    assert env.service.store.reservation_rows()[0][0] == res["id"]
    r = env.client.delete(r.headers["location"], headers=th)
    assert r.status_code == 204 and r.content == b""
    is_error(env.client.get(f"/v1/reservations/{res['id']}", headers=th), 404, "not_found")
    is_error(env.client.delete(f"/v1/reservations/{res['id']}", headers=th), 404, "not_found")
    assert env.service.store.reservation_rows() == [] and env.service.scheduler.reservations == {}


def test_tenants_see_and_delete_only_their_own(env):
    a, ah = env.tenant("alpha")
    b, bh = env.tenant("beta")
    ra = env.reserve(ah).json()
    rb = env.reserve(bh, src="B", dst="D").json()
    assert [x["id"] for x in env.client.get("/v1/reservations", headers=ah).json()["reservations"]] == [ra["id"]]
    assert [x["id"] for x in env.client.get("/v1/reservations", headers=bh).json()["reservations"]] == [rb["id"]]
    is_error(env.client.get(f"/v1/reservations?tenant={a}", headers=bh), 403, "forbidden")
    # another tenant's id is a plain 404, for reading and for deleting
    before = env.state()
    is_error(env.client.get(f"/v1/reservations/{ra['id']}", headers=bh), 404, "not_found")
    is_error(env.client.delete(f"/v1/reservations/{ra['id']}", headers=bh), 404, "not_found")
    assert env.state() == before
    # a tenant may not reserve for another tenant
    is_error(env.reserve(bh, tenant=a), 403, "forbidden")
    assert env.reserve(bh, tenant=b).status_code == 201
    # the admin sees all, can filter, and can delete anyone's
    all_ids = {x["id"] for x in env.client.get("/v1/reservations", headers=AH).json()["reservations"]}
    assert {ra["id"], rb["id"]} <= all_ids and len(all_ids) == 3
    only_a = env.client.get(f"/v1/reservations?tenant={a}", headers=AH).json()["reservations"]
    assert [x["id"] for x in only_a] == [ra["id"]]
    assert env.client.delete(f"/v1/reservations/{ra['id']}", headers=AH).status_code == 204
    # schedule and events are scoped too
    sched = env.client.get("/v1/schedule", headers=bh).json()
    assert sched["reservations"] and {x["tenant"] for x in sched["reservations"]} == {b}
    assert {x["tenant"] for x in env.client.get("/v1/schedule", headers=AH).json()["reservations"]} == {b}
    events = env.client.get("/v1/events", headers=bh).json()["events"]
    assert events and {e["tenant"] for e in events} == {b}


def test_admin_must_name_an_existing_tenant(env):
    tid, _ = env.tenant("alpha")
    before = env.state()
    assert is_error(env.reserve(AH), 422, "invalid")["field"] == "tenant"
    assert is_error(env.reserve(AH, tenant=42), 422, "invalid")["field"] == "tenant"
    assert env.state() == before
    r = env.reserve(AH, tenant=tid)
    assert r.status_code == 201 and r.json()["tenant"] == tid


def test_rejections_are_409_with_a_machine_reason(env):
    tid, th = env.tenant("alpha", quota_bps=20 * 10**9)
    body = is_error(env.reserve(th, max_latency_ns=1000), 409, "rejected")
    assert body["reason"].startswith("latency:")
    # 1 Gb/s holds 100 of 1000 slots; max_share 0.75 lets 7 through A-B, the 8th finds no capacity
    codes = [env.reserve(th, src="A", dst="B", paths=[["A", "B"]]).status_code for _ in range(8)]
    assert codes == [201] * 7 + [409]
    body = is_error(env.reserve(th, src="A", dst="B", paths=[["A", "B"]]), 409, "rejected")
    assert body["reason"] == "capacity:A-B"
    assert env.reserve(th, id="mine", src="C", dst="D").status_code == 201
    assert is_error(env.reserve(th, id="mine", src="B", dst="C"), 409, "rejected")["reason"] == "exists"
    env.client.patch(f"/v1/tenants/{tid}", json={"quota_bps": 0}, headers=AH)
    assert is_error(env.reserve(th, src="C", dst="D"), 409, "rejected")["reason"] == "quota"


BAD_BODIES = [
    # (raw body or JSON value, status, field)
    (b'{"src": "A", "dst": "C", ', 400, None),
    (b"not json at all", 400, None),
    ({"src": "A", "dst": "C", "bandwidth_bps": 10**9, "max_latency_ns": 5_000_000, "colour": "red"}, 422, "colour"),
    ({"src": "A", "dst": "C", "bandwidth_bps": -5, "max_latency_ns": 5_000_000}, 422, "bandwidth_bps"),
    ({"src": "A", "dst": "C", "bandwidth_bps": 10**30, "max_latency_ns": 5_000_000}, 422, "bandwidth_bps"),
    ({"src": "A", "dst": "C", "bandwidth_bps": 1.5e9, "max_latency_ns": 5_000_000}, 422, "bandwidth_bps"),
    ({"src": "A", "dst": "C", "bandwidth_bps": "1000", "max_latency_ns": 5_000_000}, 422, "bandwidth_bps"),
    ({"src": "A", "dst": "C", "bandwidth_bps": True, "max_latency_ns": 5_000_000}, 422, "bandwidth_bps"),
    ({"src": "A", "dst": "C", "bandwidth_bps": 10**9, "max_latency_ns": 0}, 422, "max_latency_ns"),
    ({"src": "A", "dst": "C", "bandwidth_bps": 10**9}, 422, "max_latency_ns"),
    ({"src": "A", "dst": "Atlantis", "bandwidth_bps": 10**9, "max_latency_ns": 5_000_000}, 422, "dst"),
    ({"src": "A", "dst": "A", "bandwidth_bps": 10**9, "max_latency_ns": 5_000_000}, 422, "dst"),
    ({"src": "", "dst": "C", "bandwidth_bps": 10**9, "max_latency_ns": 5_000_000}, 422, "src"),
    ({"src": "A", "dst": "C", "frame_bytes": 1500, "max_latency_ns": 5_000_000}, 422, "period_ns"),
    ({"src": "A", "dst": "C", "frame_bytes": 1500, "period_ns": 1500, "max_latency_ns": 5_000_000}, 422, "period_ns"),
    ({"src": "A", "dst": "C", "bandwidth_bps": 10**9, "max_latency_ns": 5_000_000, "id": "no spaces"}, 422, "id"),
    ({"src": "A", "dst": "C", "bandwidth_bps": 10**9, "max_latency_ns": 5_000_000, "paths": [["A", "D", "C"],
                                                                                             ["A", "X"]]}, 422,
     "paths"),
    ({"src": "A", "dst": "C", "bandwidth_bps": 10**9, "max_latency_ns": 5_000_000, "match": {"ip_src": "1.2.3"}},
     422, "match.ip_src"),
    ({"src": "A", "dst": "C", "bandwidth_bps": 10**9, "max_latency_ns": 5_000_000, "match": {"vlan": 3}},
     422, "match.vlan"),
    ({"src": "A", "dst": "C", "bandwidth_bps": 10**9, "max_latency_ns": 5_000_000, "tenant": 99999}, 422, "tenant"),
    ([1, 2, 3], 422, "body"),
    ("a string", 422, "body"),
    (None, 422, "body"),
]


@pytest.mark.parametrize("body,status,field", BAD_BODIES)
def test_refused_input_is_4xx_json_and_changes_nothing(env, body, status, field):
    tid, th = env.tenant("alpha")
    env.reserve(th)                       # some state to protect
    before = env.state()
    if isinstance(body, bytes):
        r = env.client.post("/v1/reservations", content=body, headers={**th, "Content-Type": "application/json"})
    elif body is None:
        r = env.client.post("/v1/reservations", headers=th)
    else:
        r = env.client.post("/v1/reservations", json=body, headers=th)
    err = is_error(r, status, "bad_request" if status == 400 else "invalid")
    if field is not None:
        assert err["field"] == field
    assert env.state() == before


def test_bodies_above_64_kib_are_413_declared_or_streamed(env):
    tid, th = env.tenant("alpha")
    before = env.state()
    big = json.dumps({"src": "A", "dst": "C", "bandwidth_bps": 10**9, "max_latency_ns": 5_000_000,
                      "id": "x" * (1 << 20)}).encode()
    is_error(env.client.post("/v1/reservations", content=big, headers={**th, "Content-Type": "application/json"}),
             413, "too_large")

    def chunks():                        # no Content-Length: chunked transfer
        for i in range(0, len(big), 8192):
            yield big[i:i + 8192]

    is_error(env.client.post("/v1/reservations", content=chunks(), headers={**th, "Content-Type": "application/json"}),
             413, "too_large")
    is_error(env.client.post("/v1/tenants", content=b"{" + b" " * 70_000 + b"}",
                             headers={**AH, "Content-Type": "application/json"}), 413, "too_large")
    assert env.state() == before
    # just under the limit is read normally (and refused for its content, not its size)
    padded = b'{"src":"A","dst":"C","bandwidth_bps":1000000000,"max_latency_ns":5000000' + b" " * 60_000 + b"}"
    assert env.client.post("/v1/reservations", content=padded,
                           headers={**th, "Content-Type": "application/json"}).status_code == 201


def test_no_token_is_401_before_anything_about_the_body(env):
    before = env.state()
    is_error(env.client.post("/v1/reservations", content=b"{broken", headers={"Content-Type": "application/json"}),
             401, "unauthorized")
    is_error(env.client.post("/v1/reservations", json={"colour": 1}), 401, "unauthorized")
    r = env.client.get("/v1/reservations")
    is_error(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"
    for path in ("/v1/topology", "/v1/schedule", "/v1/events", "/v1/paths?src=A&dst=B&max_latency_ns=5"):
        is_error(env.client.get(path), 401, "unauthorized")
    assert env.state() == before


def test_unknown_routes_and_methods_answer_json(env):
    is_error(env.client.get("/v2/nothing"), 404, "not_found")
    is_error(env.client.put("/v1/reservations", headers=AH), 405, "method_not_allowed")


def test_rate_limit_is_per_token_with_retry_after(tmp_path):
    e = Env(tmp_path / "c.db", rate_limit_per_s=0.001, rate_limit_burst=3)
    try:
        tid, th = e.tenant("alpha")       # the admin spends one token here
        codes = [e.client.get("/v1/reservations", headers=th).status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        r = e.client.get("/v1/reservations", headers=th)
        is_error(r, 429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1
        assert e.client.get("/v1/reservations", headers=AH).status_code == 200   # admin has its own bucket
        bad = [e.client.get("/v1/reservations", headers={"Authorization": "Bearer guess"}).status_code
               for _ in range(5)]
        assert bad[:3] == [401] * 3 and bad[3:] == [429, 429]              # guessing is limited too
    finally:
        e.service.close()


# ----- what-if, topology, schedule, events ---------------------------------------------------------------
def test_paths_what_if_reserves_nothing(env):
    tid, th = env.tenant("alpha", quota_bps=10**9)
    before = env.state()
    q = {"src": "A", "dst": "C", "bandwidth_bps": 10**9, "max_latency_ns": 5_000_000}
    r = env.client.get("/v1/paths", params=q, headers=th)
    assert r.status_code == 200 and r.json()["admissible"] is True
    assert r.json()["path"][0] == "A" and r.json()["latency_bound_ns"] > 0 and r.json()["hops"]
    no = env.client.get("/v1/paths", params={**q, "max_latency_ns": 1000}, headers=th).json()
    assert no["admissible"] is False and no["reason"].startswith("latency:") and no["detail"]
    over = env.client.get("/v1/paths", params={**q, "bandwidth_bps": 2 * 10**9}, headers=th).json()
    assert over == {"admissible": False, "reason": "quota", "detail": over["detail"]}
    # the admin may ask without a tenant (quotas ignored) or for a tenant (its quotas apply)
    assert env.client.get("/v1/paths", params={**q, "bandwidth_bps": 2 * 10**9}, headers=AH).json()["admissible"]
    assert env.client.get("/v1/paths", params={**q, "bandwidth_bps": 2 * 10**9, "tenant": tid},
                          headers=AH).json()["reason"] == "quota"
    assert is_error(env.client.get("/v1/paths", params={**q, "dst": "Nowhere"}, headers=th), 422,
                    "invalid")["field"] == "dst"
    assert is_error(env.client.get("/v1/paths", params={**q, "bandwidth_bps": "lots"}, headers=th), 422,
                    "invalid")["field"] == "bandwidth_bps"
    assert is_error(env.client.get("/v1/paths", params={"src": "A", "dst": "C"}, headers=th), 422,
                    "invalid")["field"] == "max_latency_ns"
    is_error(env.client.get("/v1/paths", params={**q, "tenant": tid + 1}, headers=th), 403, "forbidden")
    assert env.state() == before
    assert env.service.scheduler.tenants is env.service.tenants


def test_topology_schedule_and_link_check(env):
    tid, th = env.tenant("alpha")
    topo = env.client.get("/v1/topology", headers=th).json()
    assert {n["name"] for n in topo["nodes"]} == set("ABCD") and len(topo["links"]) == 4
    assert [h["name"] for h in topo["hosts"]] == ["t1h1"]       # a tenant sees only its own hosts
    assert topo["link_check"]["expected"] == 4 and topo["link_check"]["checked"] is False
    env.service.set_link_check({"expected": 4, "seen": 3, "missing": [["C", "D"]], "unexpected": []})
    lc = env.client.get("/v1/topology", headers=AH).json()["link_check"]
    assert lc["missing"] == [["C", "D"]] and lc["seen"] == 3
    res = env.reserve(th).json()
    sched = env.client.get("/v1/schedule", headers=AH).json()
    assert sched["version"] == 1 and sched["slot_ns"] == 1000 and sched["cycle_ns"] == res["cycle_ns"]
    assert len(sched["links"]) == 8
    assert [r["id"] for r in sched["reservations"]] == [res["id"]]
    assert sched["reservations"][0]["hops"] == res["hops"]


def test_events_since_and_no_tokens_anywhere(env, caplog):
    caplog.set_level(logging.DEBUG)
    tid, th = env.tenant("alpha")
    token = th["Authorization"].split()[1]
    env.reserve(th)
    env.reserve(th, max_latency_ns=1000)
    env.client.post("/v1/reservations", json={"colour": 1, "token": token}, headers=th)
    events = env.client.get("/v1/events", headers=AH).json()
    actions = [(e["actor"], e["action"], e["status"]) for e in events["events"]]
    assert ("admin", "create_tenant", "ok") in actions
    assert ("tenant:1", "reserve", "ok") in actions and ("tenant:1", "reserve", "rejected") in actions
    assert ("tenant:1", "reserve", "invalid") in actions
    later = env.client.get(f"/v1/events?since={events['next'] - 1}", headers=AH).json()["events"]
    assert [e["seq"] for e in later] == [events["next"]]
    raw = json.dumps(env.service.store._query("SELECT * FROM audit"))
    assert token not in raw and ADMIN not in raw
    assert token not in caplog.text and ADMIN not in caplog.text
    assert is_error(env.client.get("/v1/events?since=-1", headers=AH), 422, "invalid")["field"] == "since"


# ----- health, metrics, openapi -------------------------------------------------------------------------------
def test_healthz_metrics_and_openapi(env):
    tid, th = env.tenant("alpha")
    env.reserve(th)
    env.reserve(th, max_latency_ns=1000)
    env.service.switch_connected(1)
    env.service.switch_connected(2)
    env.service.switch_disconnected(2)
    env.service.observe_install("install", "r1", 0.003, True)
    env.service.observe_install("remove", "r1", 0.2, False)
    h = env.client.get("/healthz").json()
    assert h["status"] == "ok" and h["switches_connected"] == 1 and h["reservations"] == 1
    r = env.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'detnet_admissions_total{tenant="1"} 1' in text
    assert 'detnet_rejections_total{reason="latency"} 1' in text
    assert "detnet_admission_seconds_count 2" in text and 'detnet_admission_seconds_bucket{le="+Inf"} 2' in text
    assert 'detnet_reservations{tenant="1"} 1' in text
    assert "detnet_switches_connected 1" in text
    assert 'detnet_flow_install_seconds_bucket{le="0.005"} 1' in text and "detnet_flow_install_seconds_count 2" in text
    assert 'detnet_flow_install_failures_total{op="remove"} 1' in text
    shares = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line.startswith("detnet_link_reserved_share{")}
    assert len(shares) == 8 and shares['detnet_link_reserved_share{link="A-B"}'] == pytest.approx(0.1)
    assert shares['detnet_link_reserved_share{link="C-D"}'] == 0
    for line in text.splitlines():        # every sample line is "name{labels} number"
        if not line.startswith("#"):
            float(line.rsplit(" ", 1)[1].replace("+Inf", "inf"))
    spec = env.client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    for route, methods in {"/v1/reservations": {"get", "post"}, "/v1/reservations/{reservation_id}": {"get", "delete"},
                           "/v1/tenants": {"get", "post"}, "/v1/tenants/{tenant_id}": {"get", "patch"},
                           "/v1/paths": {"get"}, "/v1/topology": {"get"}, "/v1/schedule": {"get"},
                           "/v1/events": {"get"}, "/healthz": {"get"}, "/metrics": {"get"}}.items():
        assert methods <= set(paths[route]), route
    assert "additionalProperties" in json.dumps(spec["components"]["schemas"]["ReservationBody"])


# ----- data-plane hooks, atomicity, concurrency ----------------------------------------------------------------
class Recorder(NullListener):
    def __init__(self):
        self.events: list[tuple[str, str]] = []

    def reservation_added(self, res: Reservation):
        self.events.append(("added", res.id))

    def reservation_removed(self, res: Reservation):
        self.events.append(("removed", res.id))


class Broken(NullListener):
    def reservation_added(self, res):
        raise RuntimeError("switch on fire")

    reservation_removed = reservation_added


def test_the_service_is_the_data_planes_host_and_doubles_are_listeners(env):
    import inspect
    svc = env.service
    assert isinstance(svc, DataPlaneHost)
    assert svc.host_plan is not None and svc.host_plan.topology is svc.topology
    for name, member in inspect.getmembers(DataPlaneHost, inspect.isfunction):
        if not name.startswith("_"):      # same parameters (names, kinds, defaults) as the protocol
            assert (list(inspect.signature(getattr(svc, name)).parameters.values())
                    == list(inspect.signature(member).parameters.values())[1:]), name
    assert isinstance(Recorder(), ReservationListener) and isinstance(Broken(), ReservationListener)
    bare = ControllerService(square(), db_path=str(env.db.parent / "bare.db"), admin_token=ADMIN,
                             store_synchronous="OFF")      # no host plan given: the plain numbering
    assert bare.host_plan.hosts == [] and bare.host_plan.dpid("A") == 1
    assert bare.topology_dict()["hosts"] == []
    bare.close()


def test_listeners_are_told_in_order_and_a_broken_one_changes_nothing(env, caplog):
    rec = Recorder()
    env.service.add_listener(Broken())
    env.service.add_listener(rec)
    tid, th = env.tenant("alpha")
    a = env.reserve(th).json()["id"]
    b = env.reserve(th, src="B", dst="D").json()["id"]
    assert env.client.delete(f"/v1/reservations/{a}", headers=th).status_code == 204
    env.reserve(th, max_latency_ns=1000)                      # rejected: no event
    assert rec.events == [("added", a), ("added", b), ("removed", a)]
    assert "switch on fire" in caplog.text
    assert [r.id for r in env.service.reservations_snapshot()] == [b]
    assert env.service.switches_connected() == set()


def test_a_failed_store_write_rolls_the_scheduler_back(env, monkeypatch):
    tid, th = env.tenant("alpha")
    env.reserve(th)
    before = env.state()
    rec = Recorder()
    env.service.add_listener(rec)

    def boom(res):
        raise OSError("disk full")

    from controller import store as store_mod
    monkeypatch.setattr(store_mod.Tx, "save_reservation", lambda self, res: boom(res))
    r = env.reserve(th, src="B", dst="D")
    is_error(r, 503, "store_unavailable")      # nothing changed; worth a retry
    assert env.state() == before and rec.events == []
    assert env.service.tenants.usage(tid).reservations == 1


def test_concurrent_reservations_never_share_a_slot(env):
    tid, th = env.tenant("alpha")
    svc = env.service
    from controller.auth import Principal
    who = Principal.of_tenant(tid)
    results = []

    def worker(k):
        for i in range(4):
            results.append(svc.reserve(who, {"src": "ABCD"[k % 4], "dst": "ABCD"[(k + 2) % 4],
                                             "bandwidth_bps": 5 * 10**8, "max_latency_ns": 20_000_000}))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    admitted = [r for r in results if isinstance(r, Reservation)]
    assert len(results) == 16 and admitted
    held: dict[tuple[str, str], set[int]] = {}
    for r in svc.reservations_snapshot():
        for hop in r.hops:
            slots = set(hop.slots)
            assert not slots & held.get((hop.src, hop.dst), set())
            held.setdefault((hop.src, hop.dst), set()).update(slots)
    assert sorted(x[0] for x in svc.store.reservation_rows()) == sorted(svc.scheduler.reservations)
    with pytest.raises(Forbidden):
        svc.reserve(who, {"tenant": tid + 5, "src": "A", "dst": "B", "bandwidth_bps": 1, "max_latency_ns": 10**9})


# ----- restarts -------------------------------------------------------------------------------------------------
def test_restart_restores_exact_slots_tokens_and_forgets_released(tmp_path):
    e = Env(tmp_path / "c.db")
    a, ah = e.tenant("alpha", quota_bps=9 * 10**9, max_reservations=10)
    b, bh = e.tenant("beta")
    kept = [e.reserve(ah).json(), e.reserve(bh, src="B", dst="D", period_ns=2_000_000, frame_bytes=20_000,
                                                 bandwidth_bps=None).json(),
            e.reserve(ah, src="D", dst="B", id="custom.1").json()]
    gone = e.reserve(ah, src="C", dst="A").json()
    assert e.client.delete(f"/v1/reservations/{gone['id']}", headers=ah).status_code == 204
    sched_before = e.client.get("/v1/schedule", headers=AH).json()
    tenants_before = e.client.get("/v1/tenants", headers=AH).json()
    rows_before = e.service.store.reservation_rows()
    e.service.close()

    e2 = Env(tmp_path / "c.db")
    try:
        assert e2.client.get("/v1/schedule", headers=AH).json() == sched_before     # same slots, same cycle
        assert e2.client.get("/v1/tenants", headers=AH).json() == tenants_before    # same quotas and usage
        assert e2.service.store.reservation_rows() == rows_before
        mine = {r["id"] for r in e2.client.get("/v1/reservations", headers=ah).json()["reservations"]}
        assert mine == {kept[0]["id"], "custom.1"}                                  # old tokens still work
        is_error(e2.client.get(f"/v1/reservations/{gone['id']}", headers=AH), 404, "not_found")
        assert e2.client.get(f"/v1/reservations/{kept[1]['id']}", headers=bh).json()["hops"] == kept[1]["hops"]
        # new admissions go around the restored slots, never onto them
        assert e2.reserve(ah).status_code == 201
        assert e2.service.health()["unrestored"] == 0
        starts = [ev for ev in e2.client.get("/v1/events", headers=AH).json()["events"] if ev["action"] == "start"]
        assert starts[-1]["outcome"]["reservations"] == 3
    finally:
        e2.service.close()


def test_a_reservation_that_no_longer_fits_is_reported_not_dropped(tmp_path, caplog):
    e = Env(tmp_path / "c.db")
    tid, th = e.tenant("alpha")
    on_cd = e.reserve(th, src="C", dst="D", paths=[["C", "D"]]).json()
    elsewhere = e.reserve(th, src="A", dst="B").json()
    e.service.close()

    svc = make_service(tmp_path / "c.db", topo=square(with_cd=False))      # the C-D link is gone
    try:
        client = TestClient(create_app(svc), raise_server_exceptions=False)
        assert on_cd["id"] in caplog.text and "could not be restored" in caplog.text
        assert [r.id for r in svc.unrestored()] == [on_cd["id"]]
        assert set(svc.scheduler.reservations) == {elsewhere["id"]}
        assert client.get("/healthz").json()["unrestored"] == 1
        failed = [ev for ev in client.get("/v1/events", headers=AH).json()["events"]
                  if ev["action"] == "restore_failed"]
        assert failed and failed[0]["request"] == {"id": on_cd["id"]} and failed[0]["status"] == "error"
        assert on_cd["id"] in [r[0] for r in svc.store.reservation_rows()]          # kept in the store
        assert is_error(client.post("/v1/reservations", headers=th,
                                    json={"src": "A", "dst": "B", "bandwidth_bps": 10**6, "max_latency_ns": 10**7,
                                          "id": on_cd["id"]}), 409, "rejected")["reason"] == "exists"
        assert client.delete(f"/v1/reservations/{on_cd['id']}", headers=th).status_code == 204
        assert svc.unrestored() == [] and on_cd["id"] not in [r[0] for r in svc.store.reservation_rows()]
    finally:
        svc.close()


def test_identical_traffic_twice_is_an_overlap_not_a_silent_overwrite(env):
    """The same tenant, endpoints and match would program the same OpenFlow match: refuse the second."""
    _, th = env.tenant("overlap")
    first = env.reserve(th, match={"udp_dst": 7000})
    assert first.status_code == 201
    before = env.state()
    body = is_error(env.reserve(th, match={"udp_dst": 7000}), 409, "rejected")
    assert body["reason"] == f"overlap:{first.json()['id']}"
    assert env.state() == before
    assert env.reserve(th, match={"udp_dst": 7001}).status_code == 201


def test_unknown_query_parameter_is_422_not_ignored(env):
    """A typo such as ?tennant=3 must not silently list every tenant's reservations."""
    r = env.client.get("/v1/reservations", params={"tennant": 3}, headers=AH)
    body = is_error(r, 422, "invalid")
    assert body["field"] == "tennant"
    assert env.client.get("/v1/reservations", params={"tenant": 3}, headers=AH).status_code == 200
    ok = env.client.get("/v1/paths", params={"src": "A", "dst": "C", "max_latency_ns": 5_000_000,
                                             "bandwidth_bps": 10**9}, headers=AH)
    assert ok.status_code == 200
    assert is_error(env.client.get("/v1/events", params={"sinse": 1}, headers=AH), 422, "invalid")["field"] == "sinse"
