"""The etcd store: the behaviour tests/test_store.py checks on SQLite (round trips, order, one
transaction per mutation, redaction, reopening, the ledger), plus what only a shared store needs:
a writer on a stale view is refused, a leader guard, and a 3-member cluster losing a member."""

import json
import os
import threading
import uuid

import pytest

from controller.core.model import Hop, Reservation, Tenant
from controller.etcdstore import (ETCD_SCHEMA_VERSION, EtcdStore, NotLeader, StoreConflict, op_put,
                                  parse_etcd_url)
from controller.store import StoreError, TopologyIdentity
from tests.etcdhelpers import etcd_cluster


def reservation(rid: str, tenant: int = 1, slots=(3, 4)) -> Reservation:
    return Reservation(id=rid, tenant=tenant, src="A", dst="C", period_ns=1_000_000, frame_bytes=1500,
                       bandwidth_bps=12_000_000, max_latency_ns=5_000_000, latency_bound_ns=1_234_000,
                       jitter_bound_ns=1000, path=["A", "B", "C"],
                       hops=[Hop("A", "B", list(slots)), Hop("B", "C", [s + 600 for s in slots])],
                       tx_offsets_ns=[slots[0] * 1000, slots[1] * 1000 + 17], match={"udp_dst": 5000})


@pytest.fixture(scope="module")
def cluster():
    with etcd_cluster(1) as c:
        yield c


@pytest.fixture
def prefix():
    return f"/t-{uuid.uuid4().hex[:8]}/"


@pytest.fixture
def store(cluster, prefix):
    s = EtcdStore(cluster.url, prefix=prefix)
    yield s
    s.close()


def test_parse_etcd_url():
    assert parse_etcd_url("etcd://127.0.0.1:2379,h2:2380") == ["127.0.0.1:2379", "h2:2380"]
    for bad in ("http://h:1", "etcd://", "etcd://h", "etcd://h:x", "etcd://h:70000", "etcd://:1"):
        with pytest.raises(ValueError, match="bad store"):
            parse_etcd_url(bad)


def test_tenants_round_trip_and_update_keeps_the_token_hash(store):
    assert store.schema_version() == ETCD_SCHEMA_VERSION
    store.save_tenant(Tenant(12, "beta", 10**9, 5), "h2")
    store.save_tenant(Tenant(1, "alpha"), "h1")
    loaded = store.load_tenants()
    assert [st.tenant for st in loaded] == [Tenant(1, "alpha"), Tenant(12, "beta", 10**9, 5)]   # by id, not text
    store.save_tenant(Tenant(12, "beta2", None, 7))
    st = {s.tenant.id: s for s in store.load_tenants()}[12]
    assert st.tenant == Tenant(12, "beta2", None, 7) and st.token_hash == "h2"
    with pytest.raises(ValueError):
        store.save_tenant(Tenant(3, "gamma"))
    assert store.delete_tenant(1) and not store.delete_tenant(1)
    assert [s.tenant.id for s in store.load_tenants()] == [12]


def test_reservations_keep_their_slots_offsets_and_admission_order(store):
    rs = [reservation("r2"), reservation("r1", tenant=2, slots=(7, 8, 9)), reservation("x.3")]
    for r in rs:
        store.save_reservation(r)
    assert [r.to_dict() for r in store.load_reservations()] == [r.to_dict() for r in rs]
    assert store.reservation_count() == 3
    assert store.delete_reservation("r1") and not store.delete_reservation("r1")
    assert [r.id for r in store.load_reservations()] == ["r2", "x.3"]
    store.save_reservation(reservation("r2", slots=(10, 11)))           # replaced in place
    loaded = store.load_reservations()
    assert [r.hops[0].slots for r in loaded] == [[10, 11], [3, 4]]
    assert loaded[0].tx_offsets_ns == [10_000, 11_017]
    assert store.used_reservation_ids() == ["r1", "r2", "x.3"]          # the ledger keeps deleted ids
    assert [row[0] for row in store.reservation_rows()] == ["r2", "x.3"]


def test_a_failed_transaction_leaves_nothing_behind(store):
    store.save_reservation(reservation("keep"))
    before = (store.reservation_rows(), store.audit_count(), store.used_reservation_ids())
    with pytest.raises(RuntimeError):
        with store.transaction() as tx:
            tx.save_reservation(reservation("r9"))
            tx.delete_reservation("keep")
            tx.append_audit("admin", "reserve", {"id": "r9"}, None, "ok", 1)
            raise RuntimeError("disk on fire")
    assert (store.reservation_rows(), store.audit_count(), store.used_reservation_ids()) == before


def test_a_transaction_is_atomic_and_reads_its_own_writes(store):
    with store.transaction() as tx:
        tx.save_tenant(Tenant(1, "a"), "h")
        tx.save_tenant(Tenant(1, "a2"))                 # sees the insert above: keeps "h"
        tx.save_reservation(reservation("r1"))
        assert tx.delete_reservation("r1") and not tx.delete_reservation("r1")
        s1 = tx.append_audit("admin", "x")
        s2 = tx.append_audit("admin", "y")
    assert s2 == s1 + 1
    assert [(t.tenant.name, t.token_hash) for t in store.load_tenants()] == [("a2", "h")]
    assert store.load_reservations() == [] and store.used_reservation_ids() == ["r1"]


def test_audit_is_redacted_ordered_and_filtered_by_tenant(store):
    s1 = store.append_audit("admin", "create_tenant", {"name": "a", "token": "SECRET-1"},
                            {"id": 1, "nested": [{"Authorization": "Bearer SECRET-2"}]}, "ok", 1)
    s2 = store.append_audit("tenant:2", "reserve", {"src": "A"}, {"reason": "quota"}, "rejected", 2)
    s3 = store.append_audit("system", "start")
    assert s1 < s2 < s3
    entries = store.list_audit()
    assert [e.seq for e in entries] == [s1, s2, s3]
    assert entries[0].request == {"name": "a", "token": "<redacted>"}
    assert entries[0].outcome["nested"][0]["Authorization"] == "<redacted>"
    assert [e.seq for e in store.list_audit(s1)] == [s2, s3]
    assert [e.actor for e in store.list_audit(tenant=2)] == ["tenant:2"]
    assert len(store.list_audit(limit=1)) == 1
    raw = json.dumps(store.client.range(store.prefix, prefix=True))
    assert "SECRET" not in raw and "U0VDUkVU" not in raw               # neither clear nor base64


def test_audit_pages_past_one_range(store):
    with store.transaction() as tx:
        for i in range(600):
            tx.append_audit("system", "tick", None, None, "ok", i % 3)
    assert store.audit_count() == 600
    mine = store.list_audit(tenant=2, limit=1000)
    assert len(mine) == 200 and all(e.tenant == 2 for e in mine)
    assert [e.seq for e in store.list_audit(550, limit=5)] == [551, 552, 553, 554, 555]


def test_data_survives_reopening_and_a_newer_schema_is_refused(cluster, prefix):
    s = EtcdStore(cluster.url, prefix=prefix)
    s.save_tenant(Tenant(1, "alpha", 5, None), "h")
    s.save_reservation(reservation("r1"))
    s.set_setting("k", "v1")
    s.set_setting("k", "v2")
    s.set_topology(TopologyIdentity("fntf40", "ab" * 32))
    s.close()
    s = EtcdStore(cluster.url, prefix=prefix)
    assert [st.tenant for st in s.load_tenants()] == [Tenant(1, "alpha", 5, None)]
    assert [r.to_dict() for r in s.load_reservations()] == [reservation("r1").to_dict()]
    assert s.get_setting("k") == "v2" and s.get_setting("nope") is None
    assert s.topology() == TopologyIdentity("fntf40", "ab" * 32)
    s.client.txn([], [op_put(prefix + "schema", str(ETCD_SCHEMA_VERSION + 1))])
    s.close()
    with pytest.raises(StoreError, match="newer"):
        EtcdStore(cluster.url, prefix=prefix)


def test_a_writer_on_a_stale_view_is_refused_and_writes_nothing(cluster, prefix):
    a, b = EtcdStore(cluster.url, prefix=prefix), EtcdStore(cluster.url, prefix=prefix)
    a.save_reservation(reservation("r1", slots=(3, 4)))
    before = a.reservation_rows()
    with pytest.raises(StoreConflict, match="reload"):        # b decided on the view before a's write
        with b.transaction() as tx:
            tx.save_reservation(reservation("r2", slots=(3, 4)))
            tx.append_audit("admin", "reserve", {"id": "r2"})
    assert a.reservation_rows() == before and a.audit_count() == 0 and a.used_reservation_ids() == ["r1"]
    b.refresh()                                                # b reloads: now it may write
    b.save_reservation(reservation("r2", slots=(5, 6)))
    assert [r.id for r in a.load_reservations()] == ["r1", "r2"]
    a.close(), b.close()


def test_two_controllers_racing_for_the_same_slots_commit_once(cluster, prefix):
    stores = [EtcdStore(cluster.url, prefix=prefix) for _ in range(4)]
    go = threading.Barrier(len(stores))
    outcome: dict[int, str] = {}

    def admit(i: int) -> None:
        s = stores[i]
        s.refresh()
        free = not any(r.hops[0].slots == [3, 4] for r in s.load_reservations())   # the "scheduler"
        go.wait()
        try:
            if free:
                s.save_reservation(reservation(f"r{i}", slots=(3, 4)))
            outcome[i] = "ok"
        except StoreConflict:
            outcome[i] = "conflict"

    threads = [threading.Thread(target=admit, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcome.values()) == ["conflict"] * 3 + ["ok"]
    assert len(stores[0].load_reservations()) == 1
    for s in stores:
        s.close()


def test_group_commit_is_one_txn_in_order_and_a_failed_group_is_undone(store):
    order: list[str] = []
    t1 = store.submit(lambda tx: tx.save_reservation(reservation("g1")), committed=lambda: order.append("g1"))
    t2 = store.submit(lambda tx: (tx.save_reservation(reservation("g2")), tx.append_audit("admin", "reserve")),
                      committed=lambda: order.append("g2"))
    assert store.pending() == 2
    def revision():
        return int(store.client.range(store.prefix + "state")["header"]["revision"])
    rev = revision()
    store.wait(t2)
    assert t1.done.is_set() and order == ["g1", "g2"] and store.pending() == 0
    assert revision() == rev + 1                                   # both writes: one etcd revision
    other = EtcdStore(store.path, prefix=store.prefix)
    other.append_audit("system", "elsewhere")                      # makes this store's view stale
    undone: list[str] = []
    t3 = store.submit(lambda tx: tx.save_reservation(reservation("g3")), failed=lambda: undone.append("g3"))
    with pytest.raises(StoreError, match="not committed"):
        store.wait(t3)
    assert undone == ["g3"] and [r.id for r in store.load_reservations()] == ["g1", "g2"]
    other.close()


def test_a_guarded_store_stops_writing_when_the_leader_key_goes(store):
    c = store.client
    lease = c.lease_grant(30)
    key = store.prefix + "leader"
    answer = c.txn([], [op_put(key, "me", lease)])
    created = int(answer["header"]["revision"])
    store.set_guard(key, created)
    store.save_reservation(reservation("r1"))
    c.lease_revoke(lease)                                          # the lease ends: the key goes
    with pytest.raises(NotLeader, match="gone"):
        store.save_reservation(reservation("r2"))
    c.txn([], [op_put(key, "someone else")])                       # a new leader under the same name
    with pytest.raises(NotLeader, match="another"):
        store.save_reservation(reservation("r2"))
    assert [r.id for r in store.load_reservations()] == ["r1"]


def test_three_members_keep_serving_when_one_dies():
    with etcd_cluster(3) as c:
        s = EtcdStore(c.url)
        s.save_tenant(Tenant(1, "a"), "h")
        first = s.client.endpoints.index(c.endpoints[0])
        c.stop(first)                                              # the member the client talks to
        for i in range(5):
            s.save_reservation(reservation(f"r{i}", slots=(i, i + 1)))
        assert [r.id for r in s.load_reservations()] == [f"r{i}" for i in range(5)]
        s.close()
        survivor = EtcdStore([c.endpoints[2]])                     # every member has the writes
        assert survivor.reservation_count() == 5 and survivor.load_tenants()[0].token_hash == "h"
        survivor.close()
        pids, root = [m.proc.pid for m in c.members], c.root
    assert not root.exists()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_no_member_answering_is_a_store_error():
    with etcd_cluster(1) as c:
        url = c.url
    with pytest.raises(StoreError, match="no member answered"):
        EtcdStore(url, timeout=1.0)


def test_audit_numbers_stay_consecutive_across_controllers_taking_turns(cluster, prefix):
    a, b = EtcdStore(cluster.url, prefix=prefix), EtcdStore(cluster.url, prefix=prefix)
    assert a.append_audit("system", "x") == 1 and a.append_audit("system", "y") == 2
    b.refresh()
    assert b.append_audit("system", "z") == 3
    with pytest.raises(StoreConflict):
        a.append_audit("system", "stale")                 # a's cached counter is stale: refused
    a.refresh()
    assert a.append_audit("system", "w") == 4
    assert [e.action for e in a.list_audit()] == ["x", "y", "z", "w"]
    a.close(), b.close()


def test_a_missing_etcd_fails_and_says_run_make_setup(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(pytest.fail.Exception, match="run make setup"):
        with etcd_cluster(1):
            pass


def test_the_service_runs_on_the_etcd_store_and_restarts_with_the_same_slots(cluster, prefix, monkeypatch):
    """The service on ``store=EtcdStore`` (as ``dnctl controller --store etcd://`` builds it):
    everything the service and its desks call works on etcd, and a restart finds the same slots."""
    from fastapi.testclient import TestClient

    from controller.api import create_app
    from controller.service import ControllerService
    from test_ids_and_restart import ADMIN, AH, square

    def start():
        service = ControllerService(square(), store=EtcdStore(cluster.url, prefix=prefix), admin_token=ADMIN)
        return service, TestClient(create_app(service, rate_limit_per_s=0), raise_server_exceptions=False)

    service, api = start()
    r = api.post("/v1/tenants", json={"name": "alpha"}, headers=AH)
    assert r.status_code == 201, r.text
    th = {"Authorization": f"Bearer {r.json()['token']}"}
    ids = []
    for port in (5000, 5001, 5002):
        r = api.post("/v1/reservations", headers=th, json={"src": "A", "dst": "C", "bandwidth_bps": 10**8,
                                                          "max_latency_ns": 20_000_000, "match": {"udp_dst": port}})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    assert api.delete(f"/v1/reservations/{ids[-1]}", headers=th).status_code == 204
    before = api.get("/v1/reservations", headers=AH).json()["reservations"]
    service.close()

    service, api = start()                                    # a restart on the same etcd data
    after = api.get("/v1/reservations", headers=AH).json()["reservations"]
    assert after == before and [r["id"] for r in after] == ids[:2]
    r = api.post("/v1/reservations", headers=th, json={"src": "A", "dst": "C", "bandwidth_bps": 10**8,
                                                      "max_latency_ns": 20_000_000, "match": {"udp_dst": 5003}})
    assert r.status_code == 201 and r.json()["id"] not in ids  # the ledger: a deleted id is not reused
    actions = [e["action"] for e in api.get("/v1/events", headers=AH).json()["events"]]
    assert actions.count("reserve") == 4 and actions.count("start") == 2
    service.close()


def test_a_write_whose_answer_was_lost_is_not_reported_as_a_conflict_nor_applied_twice(cluster, prefix):
    import httpx
    s = EtcdStore([cluster.endpoints[0]] * 2, prefix=prefix)     # "two members": the retry goes to the other
    real_post, lost = s.client._http.post, []

    def post(url, **kw):
        answer = real_post(url, **kw)
        if url.endswith("/kv/txn") and not lost:
            lost.append(url)
            raise httpx.ReadTimeout("the answer was lost")      # the Txn was applied; its answer never came
        return answer

    s.client._http.post = post
    with s.transaction() as tx:
        tx.save_reservation(reservation("r1"))
        tx.append_audit("admin", "reserve", {"id": "r1"})
    assert lost and [r.id for r in s.load_reservations()] == ["r1"] and s.audit_count() == 1
    s.save_reservation(reservation("r2"))                       # the view is current after it
    assert s.reservation_count() == 2
    s.close()


def test_drop_reservation_deletes_without_reading_and_absent_ids_are_no_error(store, monkeypatch):
    """The desk's deletions (release, batch release, tenant deletion) read nothing from etcd: one
    read per reservation made a 1,000-reservation release 7.9x slower than on SQLite."""
    for rid in ("r1", "r2", "r3"):
        store.save_reservation(reservation(rid))
    reads = []
    real = store._client.range
    monkeypatch.setattr(store._client, "range", lambda key, *a, **kw: reads.append(key) or real(key, *a, **kw))
    with store.transaction() as tx:
        tx.drop_reservation("r1")
        tx.drop_reservation("r3")
        tx.drop_reservation("never-stored")
    assert not [k for k in reads if "/reservations/" in k]
    monkeypatch.undo()
    assert [r.id for r in store.load_reservations()] == ["r2"]
    assert store.used_reservation_ids() == ["r1", "r2", "r3"]


def test_drop_reservation_inside_a_transaction_is_seen_by_its_later_reads(store):
    store.save_reservation(reservation("r1"))
    with store.transaction() as tx:
        tx.drop_reservation("r1")
        assert not tx.delete_reservation("r1")      # this transaction's own view: already gone
    assert store.load_reservations() == []
