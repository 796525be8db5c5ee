"""Group commit (``controller.store.Store.submit``/``wait``) and the notifier's hand-over.

Concurrent POSTs decide under the service lock, then share one store transaction (one fsync) and
one delivery to the data plane. What must hold: an answer means durable (the row is in the file
when ``reserve`` returns), listeners hear only committed changes, in commit order, once each; a
group whose write fails is undone (newest first) and every waiter of it gets the error; a
synchronous transaction never overtakes queued writes; a caller's ``flush`` returns once its own
changes are delivered, not after the changes queued behind it.
"""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from controller.auth import Principal
from controller.core.model import Reservation
from controller.notify import Notifier
from controller.service import ControllerService
from controller.store import Store, StoreError
from fakeswitch import reservation
from topologies.hosts import HostPlan
from topologies.model import Topology

ADMIN = "group-commit-admin-token-0123456789"


def commits(store: Store) -> list[str]:
    """Record the COMMITs the store's connection runs from now on."""
    seen: list[str] = []
    store._conn.set_trace_callback(lambda sql: seen.append(sql) if sql.strip().upper() == "COMMIT" else None)
    return seen


def audit_actions(path) -> list[str]:
    """The audit log's actions as another connection reads them from the file (what survives)."""
    with sqlite3.connect(path) as c:
        return [r[0] for r in c.execute("SELECT action FROM audit ORDER BY seq")]


def test_queued_writes_share_one_transaction_and_run_their_callbacks_in_order(tmp_path):
    store = Store(tmp_path / "s.db")
    seen = commits(store)
    order: list[int] = []
    tickets = [store.submit(lambda tx, i=i: tx.append_audit("admin", f"w{i}"),
                            committed=lambda i=i: order.append(i)) for i in range(5)]
    assert store.pending() == 5 and audit_actions(tmp_path / "s.db") == []
    store.wait(tickets[2])                  # the waiter commits every write queued so far
    assert len(seen) == 1 and order == [0, 1, 2, 3, 4] and store.pending() == 0
    assert all(t.done.is_set() for t in tickets)
    for t in tickets:
        store.wait(t)                       # already committed: no transaction
    assert len(seen) == 1
    assert audit_actions(tmp_path / "s.db") == [f"w{i}" for i in range(5)]


def test_a_transaction_commits_the_queued_writes_first(tmp_path):
    store = Store(tmp_path / "s.db")
    queued = store.submit(lambda tx: tx.append_audit("admin", "queued"))
    with store.transaction() as tx:
        tx.append_audit("admin", "direct")
    assert queued.done.is_set()
    assert audit_actions(tmp_path / "s.db") == ["queued", "direct"]


def test_a_rolled_back_transaction_puts_the_queued_writes_back_for_their_waiters(tmp_path):
    store = Store(tmp_path / "s.db")
    queued = store.submit(lambda tx: tx.append_audit("admin", "queued"))
    with pytest.raises(RuntimeError):
        with store.transaction() as tx:
            tx.append_audit("admin", "direct")
            raise RuntimeError("the caller's own failure")
    assert not queued.done.is_set() and store.pending() == 1
    store.wait(queued)
    assert audit_actions(tmp_path / "s.db") == ["queued"]


def test_a_failed_group_is_undone_newest_first_and_every_waiter_gets_the_error(tmp_path):
    store = Store(tmp_path / "s.db")
    undone: list[int] = []

    def write(tx, i):
        tx.append_audit("admin", f"w{i}")
        if i == 1:
            raise OSError("disk full")

    tickets = [store.submit(lambda tx, i=i: write(tx, i), committed=lambda: undone.append(-1),
                            failed=lambda i=i: undone.append(i)) for i in range(3)]
    with pytest.raises(StoreError, match="disk full"):
        store.wait(tickets[0])
    for t in tickets[1:]:
        with pytest.raises(StoreError):
            store.wait(t)
    assert undone == [2, 1, 0]              # no committed callback ran; undone in reverse order
    assert audit_actions(tmp_path / "s.db") == []           # nothing of the group was written
    ok = store.submit(lambda tx: tx.append_audit("admin", "after"))
    store.wait(ok)                          # the store goes on
    assert audit_actions(tmp_path / "s.db") == ["after"]


# ----- the service: concurrent POSTs -------------------------------------------------------------

def line() -> Topology:
    t = Topology("line4")
    for n in "ABCD":
        t.add_node(n)
    for a, b in (("A", "B"), ("B", "C"), ("C", "D")):
        t.add_link(a, b, 100, capacity_bps=10**11)
    return t


class Recorder:
    def __init__(self):
        self.calls: list[tuple[str, list[str]]] = []

    def reservations_added(self, added):
        self.calls.append(("added", [r.id for r in added]))

    def reservations_removed(self, removed):
        self.calls.append(("removed", [r.id for r in removed]))

    def reservations_changed(self, pairs):
        self.calls.append(("changed", [n.id for _, n in pairs]))


@pytest.fixture
def svc(tmp_path):
    topo = line()
    service = ControllerService(topo, db_path=str(tmp_path / "state.db"), admin_token=ADMIN,
                                host_plan=HostPlan.build(topo, [(1, "A"), (1, "D")]))   # FULL: durable
    service.create_tenant("blue")
    yield service
    service.close()


def body(i: int) -> dict:
    return {"id": f"x{i}", "src": "A", "dst": "D", "frame_bytes": 200, "period_ns": 1_000_000,
            "max_latency_ns": 10**8, "match": {"udp_dst": 5000 + i}}


def test_concurrent_posts_share_one_commit_and_one_delivery_and_are_durable(svc, tmp_path):
    rec = Recorder()
    svc.add_listener(rec)
    who = Principal.of_tenant(1)
    seen = commits(svc.store)
    results: dict[int, object] = {}
    durable_at_answer: dict[int, bool] = {}

    def post(i):
        results[i] = svc.reserve(who, body(i))
        with sqlite3.connect(tmp_path / "state.db") as c:       # what a crash right now would keep
            durable_at_answer[i] = c.execute("SELECT COUNT(*) FROM reservations WHERE id = ?",
                                             (f"x{i}",)).fetchone()[0] == 1

    threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]
    with svc.store._lock:                   # a commit in flight: the 8 decide and queue behind it
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while svc.store.pending() < 8 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert svc.store.pending() == 8
        assert rec.calls == []              # decided, not committed: the switches hear nothing yet
    for t in threads:
        t.join(10)
    assert all(isinstance(r, Reservation) for r in results.values()) and len(results) == 8
    assert all(durable_at_answer.values())
    assert len(seen) == 1                   # one transaction for the eight
    assert len(rec.calls) == 1 and rec.calls[0][0] == "added"      # one program for the eight
    stored = [row[0] for row in svc.store.reservation_rows()]
    assert rec.calls[0][1] == stored        # in commit order
    assert sorted(stored) == sorted(f"x{i}" for i in range(8))


def test_concurrent_posts_and_deletes_reach_listeners_once_each_in_commit_order(svc):
    rec = Recorder()
    svc.add_listener(rec)
    who = Principal.of_tenant(1)

    def worker(k):
        for j in range(6):
            i = 10 * k + j
            res = svc.reserve(who, body(i))
            assert isinstance(res, Reservation)
            if j % 2:
                svc.release(who, res.id)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    added = [rid for kind, ids in rec.calls if kind == "added" for rid in ids]
    removed = [rid for kind, ids in rec.calls if kind == "removed" for rid in ids]
    assert sorted(added) == sorted(f"x{10 * k + j}" for k in range(6) for j in range(6))
    assert sorted(removed) == sorted(f"x{10 * k + j}" for k in range(6) for j in range(6) if j % 2)
    for rid in removed:                     # each removal after its own addition
        first_add = next(n for n, (kind, ids) in enumerate(rec.calls) if kind == "added" and rid in ids)
        first_rm = next(n for n, (kind, ids) in enumerate(rec.calls) if kind == "removed" and rid in ids)
        assert first_add < first_rm
    assert sorted(r[0] for r in svc.store.reservation_rows()) == sorted(svc.scheduler.reservations)
    assert len(svc.scheduler.reservations) == 18


def test_a_failed_group_write_undoes_the_admission_and_the_release(svc, monkeypatch):
    rec = Recorder()
    svc.add_listener(rec)
    who = Principal.of_tenant(1)
    kept = svc.reserve(who, body(1))
    before = {rid: r.to_dict() for rid, r in svc.scheduler.reservations.items()}
    from controller import store as store_mod
    real_delete = store_mod.Tx.delete_reservation

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(store_mod.Tx, "save_reservation", boom)
    with pytest.raises(StoreError):
        svc.reserve(who, body(2))
    monkeypatch.setattr(store_mod.Tx, "delete_reservation", boom)
    with pytest.raises(StoreError):
        svc.release(who, kept.id)
    monkeypatch.setattr(store_mod.Tx, "delete_reservation", real_delete)
    assert {rid: r.to_dict() for rid, r in svc.scheduler.reservations.items()} == before   # exactly its slots
    assert rec.calls == [("added", ["x1"])]                     # nothing uncommitted was announced
    assert [r[0] for r in svc.store.reservation_rows()] == ["x1"]
    svc.release(who, kept.id)               # the store works again: the release goes through
    assert rec.calls[-1] == ("removed", ["x1"]) and svc.scheduler.reservations == {}


# ----- the notifier's hand-over --------------------------------------------------------------------

def test_flush_returns_once_its_own_changes_are_delivered():
    """A POST's answer waits for its own program, not for the programs of requests behind it."""
    first_in, first_go, second_in, second_go = (threading.Event() for _ in range(4))

    class Gated(Recorder):
        def reservations_added(self, added):
            super().reservations_added(added)
            if len(self.calls) == 1:
                first_in.set()
                first_go.wait(5)
            else:
                second_in.set()
                second_go.wait(5)

    n, rec = Notifier(), Gated()
    n.add(rec)
    n.added(reservation("a", ["A", "B"]))
    a = threading.Thread(target=n.flush)
    a.start()
    assert first_in.wait(5)
    n.added(reservation("b", ["A", "B"]))
    b = threading.Thread(target=n.flush)
    b.start()
    first_go.set()                          # a's change is delivered; b's delivery starts
    assert second_in.wait(5)
    a.join(5)
    assert not a.is_alive() and b.is_alive()   # a answered while b's program still runs
    second_go.set()
    b.join(5)
    assert rec.calls == [("added", ["a"]), ("added", ["b"])]
