"""The SQLite store: schema, round trips, one transaction per mutation, redaction, reopening."""

import json
import sqlite3

import pytest

from controller.core.model import Hop, Reservation, Tenant
from controller.store import SCHEMA_VERSION, Store, StoreError, redact


def reservation(rid: str, tenant: int = 1, slots=(3, 4)) -> Reservation:
    return Reservation(id=rid, tenant=tenant, src="A", dst="C", period_ns=1_000_000, frame_bytes=1500,
                       bandwidth_bps=12_000_000, max_latency_ns=5_000_000, latency_bound_ns=1_234_000,
                       jitter_bound_ns=1000, path=["A", "B", "C"],
                       hops=[Hop("A", "B", list(slots)), Hop("B", "C", [s + 600 for s in slots])],
                       tx_offsets_ns=[slots[0] * 1000], match={"udp_dst": 5000})


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state" / "c.db")
    yield s
    s.close()


def test_schema_is_created_in_wal_mode_with_a_version(store, tmp_path):
    assert store.schema_version() == SCHEMA_VERSION
    con = sqlite3.connect(tmp_path / "state" / "c.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"tenants", "reservations", "audit", "schema_version", "settings"} <= tables
    con.close()


def test_tenants_round_trip_and_update_keeps_the_token_hash(store):
    store.save_tenant(Tenant(2, "beta", 10**9, 5), "h2")
    store.save_tenant(Tenant(1, "alpha"), "h1")
    loaded = store.load_tenants()
    assert [st.tenant for st in loaded] == [Tenant(1, "alpha"), Tenant(2, "beta", 10**9, 5)]
    store.save_tenant(Tenant(2, "beta2", None, 7))          # no hash given: keep the old one
    st = {s.tenant.id: s for s in store.load_tenants()}[2]
    assert st.tenant == Tenant(2, "beta2", None, 7) and st.token_hash == "h2"
    with pytest.raises(ValueError):
        store.save_tenant(Tenant(3, "gamma"))                 # a new tenant needs a hash
    assert store.delete_tenant(1) and not store.delete_tenant(1)
    assert [s.tenant.id for s in store.load_tenants()] == [2]


def test_reservations_round_trip_in_admission_order(store):
    rs = [reservation("r2"), reservation("r1", tenant=2, slots=(7, 8, 9)), reservation("x.3")]
    for r in rs:
        store.save_reservation(r)
    assert [r.to_dict() for r in store.load_reservations()] == [r.to_dict() for r in rs]
    assert store.delete_reservation("r1") and not store.delete_reservation("r1")
    assert [r.id for r in store.load_reservations()] == ["r2", "x.3"]
    # saving again under the same id replaces the row in place
    store.save_reservation(reservation("r2", slots=(10, 11)))
    assert [r.hops[0].slots for r in store.load_reservations()] == [[10, 11], [3, 4]]


def test_a_failed_transaction_leaves_nothing_behind(store):
    store.save_reservation(reservation("keep"))
    before = (store.reservation_rows(), store.audit_count())
    with pytest.raises(RuntimeError):
        with store.transaction() as tx:
            tx.save_reservation(reservation("r9"))
            tx.delete_reservation("keep")
            tx.append_audit("admin", "reserve", {"id": "r9"}, None, "ok", 1)
            raise RuntimeError("disk on fire")
    assert (store.reservation_rows(), store.audit_count()) == before


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
    raw = json.dumps(store._query("SELECT * FROM audit"))
    assert "SECRET" not in raw


def test_redact_keeps_other_values():
    assert redact({"a": [1, {"token": "x", "b": 2}], "Token": "y"}) == {"a": [1, {"token": "<redacted>", "b": 2}],
                                                                       "Token": "<redacted>"}


def test_data_survives_reopening(tmp_path):
    s = Store(tmp_path / "c.db")
    s.save_tenant(Tenant(1, "alpha", 5, None), "h")
    s.save_reservation(reservation("r1"))
    s.set_setting("k", "v1")
    s.set_setting("k", "v2")
    s.close()
    s = Store(tmp_path / "c.db")
    assert [st.tenant for st in s.load_tenants()] == [Tenant(1, "alpha", 5, None)]
    assert [r.to_dict() for r in s.load_reservations()] == [reservation("r1").to_dict()]
    assert s.get_setting("k") == "v2" and s.get_setting("nope") is None
    s.close()


def test_newer_schema_and_foreign_files_are_refused(tmp_path):
    s = Store(tmp_path / "c.db")
    with s.transaction() as tx:
        tx._cur.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    s.close()
    with pytest.raises(StoreError, match="newer"):
        Store(tmp_path / "c.db")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError):
        Store(junk)


def test_drop_reservation_deletes_and_keeps_the_id_in_the_ledger(store):
    store.save_reservation(reservation("r1"))
    store.save_reservation(reservation("r2"))
    with store.transaction() as tx:
        tx.drop_reservation("r1")
        tx.drop_reservation("never-stored")         # no error: the desk only drops what it holds
    assert [r.id for r in store.load_reservations()] == ["r2"]
    assert store.used_reservation_ids() == ["r1", "r2"]
