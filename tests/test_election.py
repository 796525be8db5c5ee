"""Leader election on a real etcd: one leader among candidates; a leader whose keepalive fails or
whose lease ends loses at once (``on_lost``), another wins within the lease's TTL, and the former
leader's writes are refused by etcd (the store's Txn compares the leader key's revision)."""

import threading
import time

import pytest

from controller.core.model import Hop, Reservation
from controller.election import Election
from controller.etcdstore import EtcdClient, EtcdStore, NotLeader
from tests.etcdhelpers import etcd_cluster

KEY = "/detnet/leader"


def reservation(rid: str) -> Reservation:
    return Reservation(id=rid, tenant=1, src="A", dst="B", period_ns=1_000_000, frame_bytes=1500,
                       bandwidth_bps=12_000_000, max_latency_ns=5_000_000, latency_bound_ns=1_000_000,
                       jitter_bound_ns=1000, path=["A", "B"], hops=[Hop("A", "B", [1, 2])], tx_offsets_ns=[1000])


def follower_index(endpoints: list[str]) -> int:
    """The index of a member that is not the raft leader (etcd's maintenance status)."""
    for i, e in enumerate(endpoints):
        client = EtcdClient([e])
        status = client.call("maintenance/status", {})
        client.close()
        if status["leader"] != status["header"]["member_id"]:
            return i
    raise AssertionError("no follower in the cluster")


class Lost:
    """An ``on_lost`` that records when it fired and why."""

    def __init__(self):
        self.fired = threading.Event()
        self.at = 0.0
        self.reasons: list[str] = []

    def __call__(self, reason: str) -> None:
        self.reasons.append(reason)
        self.at = time.monotonic()
        self.fired.set()


def test_ttl_below_two_seconds_is_refused():
    with pytest.raises(ValueError, match="at least 2"):
        Election(EtcdClient(["127.0.0.1:1"]), KEY, "a", ttl=1)


def test_one_leader_among_two_and_the_other_takes_over_when_it_resigns():
    with etcd_cluster(1) as c:
        a, b = (Election(EtcdClient(c.endpoints), KEY, name, ttl=2) for name in ("a", "b"))
        assert a.campaign(timeout=2)
        assert not b.campaign(timeout=1)
        assert a.is_leader and not b.is_leader and b.leader() == "a"
        time.sleep(2.5)                                      # past one TTL: the keepalive holds it
        assert a.is_leader and a.leader() == "a"
        with pytest.raises(ValueError, match="not the leader"):
            b.guard()
        a.resign()
        t0 = time.monotonic()
        assert b.campaign(timeout=3) and b.leader() == "b"
        assert time.monotonic() - t0 < 1.0                   # resigning revokes: no TTL to wait out
        b.resign()


def test_a_leader_cut_off_from_etcd_loses_at_once_and_another_wins_within_the_ttl():
    ttl = 2
    with etcd_cluster(3) as c:
        # a reaches one raft follower only; killing it leaves the raft leader (and its lease clock) alone
        f = follower_index(c.endpoints)
        others = [e for i, e in enumerate(c.endpoints) if i != f]
        lost = Lost()
        a = Election(EtcdClient([c.endpoints[f]]), KEY, "a", ttl=ttl, on_lost=lost)
        b = Election(EtcdClient(others), KEY, "b", ttl=ttl)
        assert a.campaign(timeout=2)
        a_store = EtcdStore(others)                             # a's writes, as etcd will judge them
        a_store.set_guard(*a.guard())
        a_store.save_reservation(reservation("r1"))
        won = threading.Event()
        waiter = threading.Thread(target=lambda: b.campaign(timeout=20) and won.set())
        waiter.start()
        t_kill = time.monotonic()
        c.stop(f)                                               # a's keepalive now fails
        assert lost.fired.wait(ttl + 1), "on_lost did not fire"
        assert not a.is_leader and lost.at - t_kill <= ttl / 3 + 1.0
        assert won.wait(ttl + 3), "the other candidate did not win"
        t_won = time.monotonic()
        waiter.join()
        assert b.is_leader and b.leader() == "b" and t_won - t_kill <= ttl + 1.5   # a's last renewal + ttl
        with pytest.raises(NotLeader):
            a_store.save_reservation(reservation("r2"))
        b_store = EtcdStore(others)
        b_store.set_guard(*b.guard())
        b_store.save_reservation(reservation("r3"))
        assert [r.id for r in b_store.load_reservations()] == ["r1", "r3"]
        for x in (a, b):
            x.resign()
        a_store.close(), b_store.close()


def test_a_leader_whose_member_hangs_loses_by_the_lease_deadline_not_the_http_timeout():
    ttl = 2
    with etcd_cluster(3) as c:
        f = follower_index(c.endpoints)
        others = [e for i, e in enumerate(c.endpoints) if i != f]
        lost = Lost()
        a = Election(EtcdClient([c.endpoints[f]], timeout=30), KEY, "a", ttl=ttl, on_lost=lost)
        b = Election(EtcdClient(others), KEY, "b", ttl=ttl)
        assert a.campaign(timeout=2)
        t_pause = time.monotonic()
        c.pause(f)                                              # a's member takes calls and never answers
        assert lost.fired.wait(ttl + 1), "on_lost did not fire"
        assert lost.at - t_pause <= ttl + 0.5 and not a.is_leader
        assert b.campaign(timeout=ttl + 3) and time.monotonic() - t_pause <= ttl + 1.5
        b.resign(), a.resign()


def test_a_lease_that_ends_makes_the_leader_lose_and_its_writes_are_refused():
    with etcd_cluster(1) as c:
        lost = Lost()
        a = Election(EtcdClient(c.endpoints), KEY, "a", ttl=3, on_lost=lost)
        b = Election(EtcdClient(c.endpoints), KEY, "b", ttl=3)
        assert a.campaign(timeout=2)
        store = EtcdStore(c.endpoints)
        store.set_guard(*a.guard())
        store.save_reservation(reservation("r1"))
        EtcdClient(c.endpoints).lease_revoke(a.lease)           # the lease ends under a's feet
        assert lost.fired.wait(3) and not a.is_leader
        assert lost.reasons[0] in ("the lease expired", "the leader key is gone")
        with pytest.raises(NotLeader):
            store.save_reservation(reservation("r2"))
        assert b.campaign(timeout=2) and b.leader() == "b"
        assert len(lost.reasons) == 1                           # on_lost fires once
        b.resign()
        store.close()


def test_the_lease_deadline_ends_leadership_without_any_call():
    now = [1000.0]
    with etcd_cluster(1) as c:
        lost = Lost()
        a = Election(EtcdClient(c.endpoints), KEY, "a", ttl=5, on_lost=lost, clock=lambda: now[0])
        assert a.campaign(timeout=1) and a.is_leader
        now[0] += 5.0                                           # the host's clock passes the deadline
        assert not a.is_leader                                  # at once, before the thread notices
        assert lost.fired.wait(3) and "deadline" in lost.reasons[0]
        a.resign()
