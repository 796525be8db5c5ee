"""Issue 12, day-2 tenants: delete (reservations released everywhere, token revoked), token
rotation (the old token refused at once), and a tenant's own quota and usage (GET /v1/tenants/me)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from controller.api import create_app
from controller.dataplane import programs
from controller.service import ControllerService
from fakeswitch import FakeNetwork, link_bps, programmed
from test_day2_modify import ADMIN, AH, PLAN, Env, carried


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path / "d.db", quota_bps=10**9)


def test_deleted_tenants_reservations_are_gone_from_scheduler_store_and_switches(env, tmp_path):
    a = env.reserve(match={"udp_dst": 5000})
    b = env.reserve(match={"udp_dst": 5001}, protection="disjoint")
    other = env.client.post("/v1/reservations", headers=env.th2,
                            json={"src": "A", "dst": "C", "bandwidth_bps": 10**8, "max_latency_ns": 50_000_000})
    assert other.status_code == 201
    live = [env.service.scheduler.reservations[a["id"]], env.service.scheduler.reservations[b["id"]],
            env.service.scheduler.reservations[other.json()["id"]]]
    live = [type(r).from_dict(r.to_dict()) for r in live]
    env.rec.calls.clear()
    r = env.client.delete("/v1/tenants/1", headers=AH)
    assert r.status_code == 200, r.text
    assert r.json() == {"id": 1, "name": "t1", "released": sorted([a["id"], b["id"]])}
    assert sorted(env.service.scheduler.reservations) == [other.json()["id"]]
    assert [x.id for x in env.service.store.load_reservations()] == [other.json()["id"]]
    assert 1 not in [t.tenant.id for t in env.service.store.load_tenants()]
    removed = sorted(c[1].id for c in env.rec.calls if c[0] == "removed")
    assert removed == sorted([a["id"], b["id"]])
    # the removal programs leave the switches as if only the other tenant's reservation existed
    net = FakeNetwork(PLAN)
    net.run(programmed(PLAN, live))
    left = [live[2]]
    for c in env.rec.calls:
        net.run(programs.remove(PLAN, c[1], link_bps(left)))
    want = FakeNetwork(PLAN)
    want.run(programmed(PLAN, left))
    assert net.state() == want.state()
    assert not carried(net, live[0], udp_dst=5000)
    # the token is refused; the tenant is gone; its id is not handed to the next tenant
    assert env.client.get("/v1/reservations", headers=env.th).status_code == 401
    assert env.client.get("/v1/tenants/1", headers=AH).status_code == 404
    assert env.client.delete("/v1/tenants/1", headers=AH).status_code == 404
    n = env.client.post("/v1/tenants", json={"name": "t3"}, headers=AH).json()
    assert n["id"] == 3
    events = env.client.get("/v1/events?since=0", headers=AH).json()["events"]
    assert any(e["action"] == "delete_tenant" and e["status"] == "ok" for e in events)
    # a restart holds what was committed
    env.service.close()
    again = ControllerService(PLAN.topology, db_path=str(tmp_path / "d.db"), admin_token=ADMIN,
                              store_synchronous="OFF", host_plan=PLAN)
    assert sorted(again.scheduler.reservations) == [other.json()["id"]]
    assert [t.id for t in again.tenants] == [2, 3]
    again.close()


def test_only_the_admin_deletes_a_tenant(env):
    assert env.client.delete("/v1/tenants/1", headers=env.th).status_code == 403
    assert env.client.delete("/v1/tenants/2", headers=env.th).status_code == 403
    assert env.client.delete("/v1/tenants/99", headers=AH).status_code == 404


def test_rotated_token_is_refused_at_once(env):
    env.reserve()
    r = env.client.post("/v1/tenants/1/token", headers=AH)
    assert r.status_code == 200 and r.json()["id"] == 1
    new = {"Authorization": f"Bearer {r.json()['token']}"}
    assert env.client.get("/v1/reservations", headers=env.th).status_code == 401
    assert len(env.client.get("/v1/reservations", headers=new).json()["reservations"]) == 1
    # the tenant rotates its own; not another's
    assert env.client.post("/v1/tenants/2/token", headers=new).status_code == 403
    r2 = env.client.post("/v1/tenants/1/token", headers=new)
    assert r2.status_code == 200
    assert env.client.get("/v1/tenants/me", headers=new).status_code == 401
    newer = {"Authorization": f"Bearer {r2.json()['token']}"}
    assert env.client.get("/v1/tenants/me", headers=newer).status_code == 200
    assert env.client.post("/v1/tenants/77/token", headers=AH).status_code == 404
    # the token never reaches the audit log
    events = env.client.get("/v1/events?since=0", headers=AH).text
    assert r.json()["token"] not in events and r2.json()["token"] not in events


def test_rotation_survives_a_restart(env, tmp_path):
    r = env.client.post("/v1/tenants/1/token", headers=AH).json()
    env.service.close()
    again = ControllerService(PLAN.topology, db_path=str(tmp_path / "d.db"), admin_token=ADMIN,
                              store_synchronous="OFF", host_plan=PLAN)
    c = TestClient(create_app(again), raise_server_exceptions=False)
    assert c.get("/v1/tenants/me", headers=env.th).status_code == 401
    assert c.get("/v1/tenants/me", headers={"Authorization": f"Bearer {r['token']}"}).status_code == 200
    again.close()


def test_tenant_reads_its_own_quota_and_usage(env):
    env.reserve(bandwidth_bps=3 * 10**8)
    me = env.client.get("/v1/tenants/me", headers=env.th)
    assert me.status_code == 200
    assert me.json() == {"id": 1, "name": "t1", "quota_bps": 10**9, "max_reservations": None,
                         "reserved_bps": 3 * 10**8, "reservations": 1, "available_bps": 7 * 10**8,
                         "reservations_left": None}
    assert env.client.get("/v1/tenants/me", headers=AH).status_code == 403
    assert env.client.get("/v1/tenants/1", headers=env.th).status_code == 403


def test_me_is_read_only_and_no_tenant_id(env):
    for method in ("PATCH", "DELETE", "POST", "PUT"):
        r = env.client.request(method, "/v1/tenants/me", headers=env.th, json={})
        assert r.status_code == 405 and r.headers["allow"] == "GET", (method, r.text)
