"""A cluster of controller services on a real etcd (``controller.ha``), in one process, no switches:
one member leads and writes, the others serve the same state read-only and cannot write; a member
that goes is replaced (at once when it resigns or its REST port refuses, after the lease when it is
merely silent); writes on a follower are answered with 307 to the leader (``controller.api.leader``)."""

import threading
import time
import uuid
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient

from controller.api import create_app
from controller.api.leader import LeaderWritesMiddleware
from controller.etcdstore import EtcdStore, NotLeader
from controller.ha import ClusterMember
from controller.service import ControllerService
from tests.etcdhelpers import etcd_cluster
from test_ids_and_restart import ADMIN, AH, square


@pytest.fixture(scope="module")
def cluster():
    with etcd_cluster(1) as c:
        yield c


class Probe:
    """The followers' probe of the leader's REST port: ``dead`` URLs refuse."""

    def __init__(self):
        self.dead: set[str] = set()

    def __call__(self, url: str) -> bool:
        return url in self.dead


def member(cluster, prefix, name, probe, ttl=2):
    store = EtcdStore(cluster.url, prefix=prefix)
    service = ControllerService(square(), store=store, admin_token=ADMIN, writable=False)
    roles = []
    m = ClusterMember(service, store, f"http://{name}:8080", ttl=ttl, poll=0.05, probe=probe,
                      on_role=lambda role, term: roles.append((role, term)))
    service.cluster_status = m.status
    m.roles = roles
    return m


def wait_for(pred, timeout=10.0, step=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(step)
    raise AssertionError("condition not met within %.1f s" % timeout)


def leaders(members):
    return [m for m in members if m.is_leader]


def reserve(service, port):
    app = TestClient(create_app(service, rate_limit_per_s=0), raise_server_exceptions=False)
    return app.post("/v1/reservations", headers=AH, json={
        "tenant": 1, "src": "A", "dst": "C", "bandwidth_bps": 10**8, "max_latency_ns": 20_000_000,
        "match": {"udp_dst": port}})


def stop_all(members):
    for m in members:
        m.stop()
        m.service.close()


@contextmanager
def running(cluster, names, ttl=2):
    """Members ``names`` started on a fresh prefix; yields (probe, members, leader, others)."""
    probe, prefix = Probe(), f"/t{uuid.uuid4().hex[:8]}/"
    ms = [member(cluster, prefix, n, probe, ttl=ttl) for n in names]
    try:
        for m in ms:
            m.start()
        [lead] = wait_for(lambda: leaders(ms) if len(leaders(ms)) == 1 else None)
        yield probe, ms, lead, [m for m in ms if m is not lead]
    finally:
        stop_all(ms)


def test_one_leads_the_others_follow_the_same_state_and_cannot_write(cluster):
    with running(cluster, ("a", "b", "c")) as (probe, ms, lead, others):
        followers = others
        assert lead.roles == [("leader", lead.status()["term"])] and lead.status()["term"] > 0
        assert lead.service.writable and not any(f.service.writable for f in followers)
        app = TestClient(create_app(lead.service, rate_limit_per_s=0))
        assert app.post("/v1/tenants", headers=AH, json={"name": "alpha"}).status_code == 201
        r = reserve(lead.service, 6000)
        assert r.status_code == 201, r.text
        want = r.json()
        # the followers reload when the leader writes: the same reservation, the same slots
        for f in followers:
            got = wait_for(lambda: f.service.scheduler.reservations.get(want["id"]))
            assert [h.slots for h in got.hops] == [h["slots"] for h in want["hops"]]
            assert f.status() | {"view_revision": 0} == {
                "role": "follower", "term": 0, "identity": f.identity, "leader": lead.identity, "etcd": "ok",
                "view_revision": 0, "takeovers": 0}
        # /metrics says who leads
        assert "detnet_cluster_leader 1.0" in lead.service.metrics_text()
        text = followers[0].service.metrics_text()
        assert "detnet_cluster_leader 0.0" in text and "detnet_cluster_etcd_up 1.0" in text
        assert f'detnet_cluster_info{{identity="{followers[0].identity}",leader="{lead.identity}"}} 1.0' in text
        # a follower's store cannot write, whatever calls it
        with pytest.raises(NotLeader):
            followers[0].service.store.append_audit("system", "sneak", None, None, "ok")
        assert "sneak" not in [e.action for e in lead.service.store.list_audit(0)]


def test_a_resigning_leader_is_replaced_at_once_with_nothing_lost(cluster):
    with running(cluster, ("a", "b"), ttl=5) as (probe, ms, lead, others):
        [other] = others
        TestClient(create_app(lead.service, rate_limit_per_s=0)).post("/v1/tenants", headers=AH,
                                                                      json={"name": "alpha"})
        ids = [reserve(lead.service, 6000 + i).json()["id"] for i in range(3)]
        term = lead.status()["term"]
        t0 = time.monotonic()
        lead.stop()
        wait_for(lambda: other.is_leader)
        took = time.monotonic() - t0
        assert took < 2.5, f"{took:.2f} s: the follower waited for the 5 s lease: the resignation did not revoke it"
        assert other.status()["term"] > term and other.roles[-1] == ("leader", other.status()["term"])
        assert sorted(other.service.scheduler.reservations) == sorted(ids)
        r = reserve(other.service, 7000)                 # the new leader admits
        assert r.status_code == 201 and r.json()["id"] not in ids
        # the former leader's store is guarded: nothing it writes lands
        with pytest.raises(NotLeader):
            lead.service.store.append_audit("system", "sneak", None, None, "ok")


def _freeze(m):
    """A leader process stopping dead: no more renewals, no resignation (its lease stays in etcd)."""
    m._stop.set()
    m.election._stop.set()


def test_a_dead_leader_whose_port_refuses_is_replaced_before_its_lease_ends(cluster):
    with running(cluster, ("a", "b"), ttl=5) as (probe, ms, lead, others):
        [other] = others
        _freeze(lead)
        t0 = time.monotonic()
        probe.dead.add(lead.identity)
        wait_for(lambda: other.is_leader)
        took = time.monotonic() - t0
        assert took < 2.5, f"{took:.2f} s: the follower waited for the 5 s lease instead of revoking it"


def test_a_silent_leader_is_replaced_only_when_its_lease_ends(cluster):
    """A timeout proves nothing (a partition, a busy host): no revocation, the lease decides."""
    with running(cluster, ("a", "b"), ttl=3) as (probe, ms, lead, others):
        [other] = others
        t0 = time.monotonic()
        _freeze(lead)
        wait_for(lambda: other.is_leader, timeout=10)
        took = time.monotonic() - t0
        assert 1.5 < took < 5.0, took


def test_writes_on_a_follower_are_redirected_to_the_leader_and_reads_served(cluster):
    with running(cluster, ("a", "b")) as (probe, ms, lead, others):
        [f] = others
        TestClient(create_app(lead.service, rate_limit_per_s=0)).post("/v1/tenants", headers=AH,
                                                                      json={"name": "alpha"})
        wait_for(lambda: len(f.service.tenants) == 1)
        app = create_app(f.service, rate_limit_per_s=0)
        app.add_middleware(LeaderWritesMiddleware, member=f)
        api = TestClient(app, follow_redirects=False)
        r = api.post("/v1/reservations?x=1", headers=AH, json={"src": "A", "dst": "C"})
        assert r.status_code == 307, r.text
        assert r.headers["location"] == lead.identity + "/v1/reservations?x=1"
        assert r.json()["error"] == "not_leader" and r.json()["leader"] == lead.identity
        assert api.delete("/v1/reservations/x", headers=AH).status_code == 307
        # reads and what-if are served by the follower
        r = api.get("/v1/tenants", headers=AH)
        assert r.status_code == 200 and "alpha" in r.text
        assert api.get("/v1/reservations", headers=AH).status_code == 200
        r = api.post("/v1/paths", headers=AH, json={"tenant": 1, "src": "A", "dst": "C", "bandwidth_bps": 10**8,
                                                   "max_latency_ns": 20_000_000})
        assert r.status_code == 200, r.text
        h = api.get("/healthz").json()
        assert h["cluster"]["role"] == "follower" and h["cluster"]["leader"] == lead.identity
        # the leader dies (its port refuses): a write is held, not sent to it, and served by the
        # member elected meanwhile (here the follower itself)
        _freeze(lead)
        probe.dead.add(lead.identity)
        r = api.post("/v1/reservations", headers=AH, json={"tenant": 1, "src": "A", "dst": "C",
                                                          "bandwidth_bps": 10**8, "max_latency_ns": 20_000_000})
        assert r.status_code == 201, r.text
        assert f.is_leader
        # nobody leads: 503 no_leader with Retry-After
        for m in ms:
            m.stop()
        r = api.post("/v1/reservations", headers=AH, json={})
        assert r.status_code == 503 and r.json()["error"] == "no_leader" and r.headers["retry-after"] == "1"


def test_a_follower_catches_up_incrementally_and_matches_a_full_load(cluster):
    """New and deleted reservations reach a follower without a full reload; what it serves is
    what a fresh load of the store gives (slots, cycle, the next id)."""
    with running(cluster, ("a", "b")) as (probe, ms, lead, others):
        [f] = others
        f.reload_every = 0.0
        TestClient(create_app(lead.service, rate_limit_per_s=0)).post("/v1/tenants", headers=AH,
                                                                      json={"name": "alpha"})
        wait_for(lambda: len(f.service.tenants) == 1)
        wait_for(lambda: f._view == lead.store.view_revision)      # caught up with the tenant's write
        time.sleep(0.2)
        reloads = []
        real = f.service.reload
        f.service.reload = lambda **kw: (reloads.append(kw), real(**kw))[1]
        ids = [reserve(lead.service, 6000 + i).json()["id"] for i in range(6)]
        app = TestClient(create_app(lead.service, rate_limit_per_s=0))
        for rid in ids[:3]:
            assert app.delete(f"/v1/reservations/{rid}", headers=AH).status_code == 204
        ids += [reserve(lead.service, 7000).json()["id"]]
        want = sorted(ids[3:])
        wait_for(lambda: sorted(f.service.scheduler.reservations) == want)
        assert reloads == [], "a full reload where the changes sufficed"
        fresh = ControllerService(square(), store=EtcdStore(cluster.url, prefix=lead.store.prefix),
                                  admin_token=ADMIN, writable=False)
        try:
            assert f.service.schedule_dict() == fresh.schedule_dict()
        finally:
            fresh.close()
        # a modified reservation is a full reload (its place in the order)
        r = app.patch(f"/v1/reservations/{ids[-1]}", headers=AH, json={"max_latency_ns": 30_000_000})
        assert r.status_code == 200, r.text
        wait_for(lambda: reloads)
        wait_for(lambda: getattr(f.service.scheduler.reservations.get(ids[-1]), "max_latency_ns", 0) == 30_000_000)


def test_a_store_that_cannot_write_is_a_503_or_a_413_never_a_500():
    """etcd gone: 503 ``store_unavailable`` with Retry-After, nothing admitted; a batch above
    etcd's request limit: 413 ``too_large``, nothing admitted."""
    with etcd_cluster(1, max_request_bytes=64 * 1024) as c:
        service = ControllerService(square(), store=EtcdStore(c.url, timeout=1.0), admin_token=ADMIN)
        try:
            api = TestClient(create_app(service, rate_limit_per_s=0), raise_server_exceptions=False)
            assert api.post("/v1/tenants", headers=AH, json={"name": "alpha"}).status_code == 201
            bodies = [{"tenant": 1, "src": "A", "dst": "C", "period_ns": 10_000_000, "frame_bytes": 100,
                       "max_latency_ns": 100_000_000, "match": {"udp_dst": 6000 + i}} for i in range(300)]
            r = api.post("/v1/reservations/batch", headers=AH, json={"reservations": bodies, "atomic": True})
            assert r.status_code == 413 and r.json()["error"] == "too_large", r.text
            assert "etcd" in r.json()["detail"] and len(service.scheduler.reservations) == 0
            c.stop(0)
            r = reserve(service, 7000)
            assert r.status_code == 503 and r.json()["error"] == "store_unavailable", r.text
            assert r.headers["retry-after"] == "1" and len(service.scheduler.reservations) == 0
        finally:
            service.close()


def test_switch_events_on_a_follower_are_counted_not_audited_and_raise_nothing(cluster):
    """A follower's store refuses every write: a switch refused or replaced there is logged by the
    shim and counted, and the shared audit log holds only the leader's own connection events."""
    with running(cluster, ("a", "b")) as (probe, ms, lead, others):
        follower = others[0].service
        follower.switch_refused(7, "10.0.0.9:4444", "unknown_dpid", "no switch has dpid 7")
        follower.switch_replaced(1, "10.0.0.2:1", "10.0.0.1:1")
        follower.switch_connected(1)
        follower.switch_disconnected(1)
        assert 'reason="unknown_dpid"' in follower.metrics_text()
        lead.service.switch_refused(8, "10.0.0.8:4444", "unknown_dpid", "no switch has dpid 8")
        audited = [(e.action, (e.request or {}).get("dpid")) for e in lead.service.store.list_audit(0)]
        assert ("switch_refused", 8) in audited
        assert not [a for a in audited if a[1] in (1, 7)]


def test_a_switch_event_the_store_cannot_audit_is_a_warning_not_an_error(cluster, caplog):
    """A leader that lost its key (or etcd going away at shutdown while switches disconnect) logs
    one line per event it could not audit, and raises nothing into the shim."""
    with running(cluster, ("a",)) as (probe, ms, lead, others):
        lead.service.store.set_guard(lead.service.store.prefix + "not-the-leader-key", 1)
        with caplog.at_level("WARNING", logger="detnet.controller"):
            lead.service.switch_disconnected(3)
        assert [r.getMessage() for r in caplog.records if "not audited" in r.getMessage()]
        assert 3 not in lead.service.switches_connected()


def test_tokens_keep_working_while_a_follower_reloads(tmp_path):
    """A follower reloads its state after every leader write (``ControllerService.reload``); requests
    keep arriving meanwhile, and authentication takes no lock. The tokens must be checked against the
    previous load's hashes until the new load is complete, never against a half-built table (CI saw a
    follower answer 401 "invalid bearer token" to the admin's GET right after a write)."""
    service = ControllerService(square(), db_path=str(tmp_path / "s.db"), admin_token=ADMIN)
    _, tenant_token = service.create_tenant("alpha")
    store = service.store
    slow = {name: getattr(store, name) for name in ("get_setting", "load_tenants", "load_reservations")}

    def slowed(f):
        def call(*a, **kw):
            time.sleep(0.2)           # an etcd round trip on a loaded machine, made long
            return f(*a, **kw)
        return call

    for name, f in slow.items():
        setattr(store, name, slowed(f))
    refused: list[str] = []
    done = threading.Event()

    def knock():
        while not done.is_set():
            for who, token in (("admin", ADMIN), ("tenant", tenant_token)):
                if service.authenticate(token) is None:
                    refused.append(who)

    t = threading.Thread(target=knock)
    t.start()
    try:
        service.reload(writable=False)
    finally:
        done.set()
        t.join()
        service.close()
    assert refused == []
    assert service.authenticate(ADMIN).is_admin and service.authenticate(tenant_token).tenant == 1
