"""Bulk and gang admission: POST /v1/reservations/batch and POST /v1/reservations/delete (issue 12)."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings, strategies as st

from controller.api import create_app
from controller.seams import NullListener
from controller.service import ControllerService
from test_api import AH, Env
from topologies.hosts import HostPlan
from topologies.loaders import load_topology


class Recorder(NullListener):
    def __init__(self):
        self.added, self.removed = [], []

    def reservation_added(self, res):
        self.added.append(res.id)

    def reservation_removed(self, res):
        self.removed.append(res.id)


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path / "b.db")
    e.rec = Recorder()
    e.service.add_listener(e.rec)
    yield e
    e.service.close()


def req(port: int, **kw):
    body = {"src": "A", "dst": "C", "bandwidth_bps": 10**8, "max_latency_ns": 5_000_000, "match": {"udp_dst": port}}
    body.update(kw)
    return body


def test_atomic_batch_admits_all_in_order(env):
    _, th = env.tenant("alpha")
    r = env.client.post("/v1/reservations/batch", json={"atomic": True, "reservations": [req(5000 + i) for i in range(5)]},
                        headers=th)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["atomic"] is True and "rejections" not in body
    assert [m["match"]["udp_dst"] for m in body["reservations"]] == [5000 + i for i in range(5)]
    ids = [m["id"] for m in body["reservations"]]
    assert env.rec.added == ids
    assert sorted(x[0] for x in env.service.store.reservation_rows()) == sorted(ids)


def test_atomic_batch_last_member_blocked_leaves_nothing(env):
    _, th = env.tenant("alpha")
    before = env.state()
    members = [req(6000 + i) for i in range(4)] + [req(7000, dst="Nowhere")]
    r = env.client.post("/v1/reservations/batch", json={"atomic": True, "reservations": members}, headers=th)
    assert r.status_code == 422 and r.json()["index"] == 4 and r.json()["field"] == "reservations.4.dst"
    # a member that cannot be placed (10 Gb/s on 1 Gb/s links): 409 naming its index and reason
    members = [req(6000 + i) for i in range(4)] + [req(7000, bandwidth_bps=50 * 10**9)]
    r = env.client.post("/v1/reservations/batch", json={"atomic": True, "reservations": members}, headers=th)
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["error"] == "rejected" and body["index"] == 4 and body["reason"]
    assert env.state() == before
    assert env.rec.added == [] and env.service.list_reservations(env.service.authenticate(AH["Authorization"][7:])) == []


def test_atomic_batch_member_clashing_with_an_earlier_member(env):
    _, th = env.tenant("alpha")
    before = env.state()
    r = env.client.post("/v1/reservations/batch", json={"reservations": [req(1), req(2), req(1)]}, headers=th)
    assert r.status_code == 409 and r.json()["index"] == 2 and r.json()["reason"].startswith("overlap:")
    assert env.state() == before


def test_non_atomic_batch_reports_rejections_with_indices(env):
    _, th = env.tenant("alpha", max_reservations=3)
    members = [req(1), req(2, dst="Nowhere"), req(3), req(1), req(4), req(5)]
    r = env.client.post("/v1/reservations/batch", json={"atomic": False, "reservations": members}, headers=th)
    assert r.status_code == 201, r.text
    body = r.json()
    assert [m["match"]["udp_dst"] for m in body["reservations"]] == [1, 3, 4]
    rej = {x["index"]: x for x in body["rejections"]}
    assert sorted(rej) == [1, 3, 5]
    assert rej[1]["error"] == "invalid" and rej[1]["field"] == "dst"
    assert rej[3]["reason"].startswith("overlap:") and rej[5]["reason"] == "quota"
    assert len(env.service.store.reservation_rows()) == 3 and len(env.rec.added) == 3


def test_tenant_boundaries(env):
    t1, h1 = env.tenant("alpha")
    t2, h2 = env.tenant("beta")
    before = env.state()
    r = env.client.post("/v1/reservations/batch", json={"reservations": [req(1), req(2, tenant=t2)]}, headers=h1)
    assert r.status_code == 403 and r.json()["index"] == 1
    r = env.client.post("/v1/reservations/batch", json={"atomic": False, "reservations": [req(1), req(2, tenant=t2)]},
                        headers=h1)
    assert r.status_code == 403 and r.json()["index"] == 1
    assert env.state() == before
    # the admin names the tenant of each member, any tenant
    r = env.client.post("/v1/reservations/batch", json={"reservations": [req(1, tenant=t1), req(2, tenant=t2)]},
                        headers=AH)
    assert r.status_code == 201 and [m["tenant"] for m in r.json()["reservations"]] == [t1, t2]
    r = env.client.post("/v1/reservations/batch", json={"reservations": [req(3)]}, headers=AH)
    assert r.status_code == 422 and r.json()["index"] == 0
    ids = [m["id"] for m in env.client.get("/v1/reservations", headers=AH).json()["reservations"]]
    # multi-delete: another tenant's id is a 404 naming it, nothing deleted
    other = next(m["id"] for m in env.client.get("/v1/reservations", headers=h2).json()["reservations"])
    mine = next(m["id"] for m in env.client.get("/v1/reservations", headers=h1).json()["reservations"])
    r = env.client.post("/v1/reservations/delete", json={"ids": [mine, other]}, headers=h1)
    assert r.status_code == 404 and r.json()["index"] == 1 and other in r.json()["detail"]
    assert sorted(m["id"] for m in env.client.get("/v1/reservations", headers=AH).json()["reservations"]) == sorted(ids)


def test_multi_delete_all_or_none(env):
    _, th = env.tenant("alpha")
    ids = [m["id"] for m in env.client.post("/v1/reservations/batch", json={"reservations": [req(i) for i in range(6)]},
                                            headers=th).json()["reservations"]]
    before = env.state()
    for bad in (["nope"], [ids[0], ids[1], "nope"], [ids[0], ids[0]]):
        r = env.client.post("/v1/reservations/delete", json={"ids": bad}, headers=th)
        assert r.status_code in (404, 422) and r.json()["index"] == len(bad) - 1, r.text
        assert env.state() == before and env.rec.removed == []
    r = env.client.post("/v1/reservations/delete", json={"ids": ids[:4]}, headers=th)
    assert r.status_code == 200 and r.json() == {"deleted": ids[:4]}
    assert env.rec.removed == ids[:4]
    assert sorted(x[0] for x in env.service.store.reservation_rows()) == sorted(ids[4:])
    assert env.client.post("/v1/reservations/delete", json={"ids": []}, headers=th).status_code == 422


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from([10**8, 3 * 10**8, 6 * 10**8, 2 * 10**9]), min_size=1, max_size=8))
def test_atomic_is_all_or_none_property(tmp_path_factory, rates):
    e = Env(tmp_path_factory.mktemp("p") / "p.db")
    try:
        _, th = e.tenant("alpha")
        before = e.state()
        r = e.client.post("/v1/reservations/batch",
                          json={"reservations": [req(i, bandwidth_bps=b) for i, b in enumerate(rates)]}, headers=th)
        if r.status_code == 201:
            assert len(r.json()["reservations"]) == len(rates) == len(e.service.store.reservation_rows())
        else:
            assert r.status_code == 409 and 0 <= r.json()["index"] < len(rates)
            assert e.state() == before
    finally:
        e.service.close()


def test_body_guard_takes_a_4096_batch_and_single_post_keeps_64k(env):
    _, th = env.tenant("alpha")
    big = {"reservations": [req(i, dst="Nowhere") for i in range(4096)], "atomic": False}
    r = env.client.post("/v1/reservations/batch", json=big, headers=th)
    assert r.status_code == 201 and len(r.json()["rejections"]) == 4096
    r = env.client.post("/v1/reservations", content=b"{" + b" " * 70_000 + b"}", headers={**th, "Content-Type": "application/json"})
    assert r.status_code == 413
    r = env.client.post("/v1/reservations/batch", json={"reservations": [req(i) for i in range(4097)]}, headers=th)
    assert r.status_code == 422


def fntf40_requests(n: int):
    topo = load_topology("fntf40")
    nodes = sorted(topo.nodes)
    out = []
    for i in range(n):
        src = nodes[i % len(nodes)]
        dst = nodes[(i * 7 + 3) % len(nodes)]
        if dst == src:
            dst = nodes[(i + 1) % len(nodes)]
        out.append({"tenant": 1, "src": src, "dst": dst, "frame_bytes": 64, "period_ns": 1_000_000,
                    "max_latency_ns": 100_000_000, "match": {"udp_dst": 1000 + i}})
    return topo, out


def test_fntf40_4096_atomic_batch(tmp_path):
    topo, members = fntf40_requests(4096)
    svc = ControllerService(topo, db_path=str(tmp_path / "f.db"), host_plan=HostPlan.build(topo, []),
                            admin_token=AH["Authorization"][7:], store_synchronous="OFF")
    try:
        client = TestClient(create_app(svc), raise_server_exceptions=False)
        assert client.post("/v1/tenants", json={"name": "job"}, headers=AH).status_code == 201
        t0 = time.perf_counter()
        r = client.post("/v1/reservations/batch", json={"reservations": members}, headers=AH)
        took = time.perf_counter() - t0
        assert r.status_code == 201, r.text[:300]
        assert len(r.json()["reservations"]) == 4096 == len(svc.store.reservation_rows())
        print(f"\nfntf40: 4096 reservations admitted atomically in one batch: {took:.2f} s")
        # the same set once more, plus one member that cannot be placed: all or none, its index named
        before = (svc.store.reservation_rows(), svc.scheduler.state_fingerprint())
        again = [dict(m, match={"udp_dst": 30000 + i}) for i, m in enumerate(members[:100])]
        again.append(dict(members[0], match={"udp_dst": 40000}, max_latency_ns=1000))
        r = client.post("/v1/reservations/batch", json={"reservations": again}, headers=AH)
        assert r.status_code == 409 and r.json()["index"] == 100 and r.json()["reason"].startswith("latency")
        assert (svc.store.reservation_rows(), svc.scheduler.state_fingerprint()) == before
    finally:
        svc.close()


def test_a_failure_inside_the_batch_leaves_nothing(env, monkeypatch):
    """A store write that fails (or a bug in the middle of the batch) rolls every member back."""
    _, th = env.tenant("alpha")
    before = env.state()

    def broken(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(type(env.service.store), "transaction", broken)
    r = env.client.post("/v1/reservations/batch", json={"reservations": [req(1), req(2)]}, headers=th)
    assert r.status_code == 500 and r.json()["error"] == "internal"
    monkeypatch.undo()
    assert env.state() == before and env.rec.added == []
