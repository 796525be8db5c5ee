"""TenantBook: tenants, limits, quotas and usage accounting (alone and through the scheduler)."""

from __future__ import annotations

import pytest

from controller.core.model import Request, Reservation, Tenant
from controller.core.scheduler import Scheduler
from controller.core.tenants import TenantBook, TenantLimitError
from topologies.model import Topology


def test_add_get_update_remove():
    book = TenantBook()
    book.add(Tenant(1, "alpha", quota_bps=10**9))
    book.add(Tenant(2, "beta"))
    assert book.get(1).name == "alpha" and 2 in book and 3 not in book and len(book) == 2
    assert [t.id for t in book] == [1, 2]
    up = book.update(1, name="alpha2", max_reservations=5)
    assert up.name == "alpha2" and up.quota_bps == 10**9 and book.get(1).max_reservations == 5
    with pytest.raises(ValueError):
        book.update(1, id=7)
    with pytest.raises(ValueError):
        book.update(1, quota_bps=-1)
    with pytest.raises(ValueError, match="already exists"):
        book.add(Tenant(2, "again"))
    with pytest.raises(ValueError):
        book.add(Tenant(0, "zero"))
    assert book.remove(2).name == "beta"
    with pytest.raises(KeyError):
        book.get(2)
    with pytest.raises(KeyError):
        book.remove(2)


def test_limit_of_128_and_raising_it():
    book = TenantBook()
    for i in range(1, 129):
        book.add(Tenant(i, f"t{i}"))
    with pytest.raises(TenantLimitError, match="128"):
        book.add(Tenant(129, "one too many"))
    assert len(book) == 128
    book.max_tenants = 300
    for i in range(129, 301):
        book.add(Tenant(i, f"t{i}"))
    assert len(book) == 300 and book.get(300).name == "t300"


def test_quota_checks_and_usage():
    book = TenantBook()
    book.add(Tenant(1, "a", quota_bps=100, max_reservations=2))
    assert book.check(1, 100) is None
    assert "quota" in book.check(1, 101)
    book.charge(1, 60)
    assert book.usage(1).bps == 60 and book.usage(1).reservations == 1
    assert book.check(1, 50) is not None and book.check(1, 40) is None
    book.charge(1, 40)
    assert "2 of 2" in book.check(1, 0)
    book.credit(1, 60)
    assert book.usage(1).bps == 40 and book.usage(1).reservations == 1


def test_scheduler_accounts_usage_and_blocks_removal_of_busy_tenants():
    t = Topology("pair")
    t.add_node("A")
    t.add_node("B")
    t.add_link("A", "B", km=1, capacity_bps=10**9)
    book = TenantBook(max_tenants=200)
    for i in range(1, 151):                    # more than 128 tenants work once the limit is raised
        book.add(Tenant(i, f"t{i}", max_reservations=1))
    s = Scheduler(t, tenants=book)
    made = [s.admit(Request(tenant=i, src="A", dst="B", max_latency_ns=10**7, period_ns=10**6, frame_bytes=100))
            for i in range(1, 151)]
    assert all(isinstance(r, Reservation) for r in made)
    assert book.usage(150).reservations == 1 and book.usage(150).bps == made[-1].bandwidth_bps
    assert s.admit(Request(tenant=150, src="A", dst="B", max_latency_ns=10**7, period_ns=10**6,
                           frame_bytes=100)).reason == "quota"
    with pytest.raises(ValueError, match="holds"):
        book.remove(150)
    s.release(made[-1].id)
    assert book.usage(150).reservations == 0 and book.usage(150).bps == 0
    book.remove(150)
    assert s.admit(Request(tenant=150, src="A", dst="B", max_latency_ns=10**7, period_ns=10**6,
                           frame_bytes=100)).reason == "invalid:tenant"
    # restore charges the tenant too, and refuses unknown tenants
    s.restore(Reservation.from_dict(dict(made[-1].to_dict(), tenant=149, id="back")))
    assert book.usage(149).reservations == 2
    with pytest.raises(ValueError, match="tenant"):
        s.restore(Reservation.from_dict(dict(made[-1].to_dict(), tenant=150, id="nope")))


def test_network_only_evaluation_leaves_the_tenant_book_out_and_request_of_round_trips():
    t = Topology("triangle")
    for n in "ABC":
        t.add_node(n)
    for a, b in (("A", "B"), ("A", "C"), ("C", "B")):
        t.add_link(a, b, km=1, capacity_bps=10**9)
    book = TenantBook()
    book.add(Tenant(1, "small", quota_bps=1000))
    s = Scheduler(t, tenants=book)
    big = dict(src="A", dst="B", max_latency_ns=10**7, period_ns=10**6, frame_bytes=1000)
    assert s.evaluate(Request(tenant=1, **big)).reason == "quota"
    assert s.evaluate(Request(tenant=7, **big)).reason == "invalid:tenant"
    before = (s.state_fingerprint(), book.usage(1))
    for protection in (None, "disjoint"):
        for tenant in (0, 1, 7):          # any tenant, even unknown or 0: the network alone answers
            ans = s.evaluate(Request(tenant=tenant, protection=protection, **big), network_only=True)
            assert isinstance(ans, Reservation), ans
            assert ans.tenant == tenant and ans.path == ["A", "B"]
            assert (ans.protection_path == ["A", "C", "B"]) == (protection == "disjoint")
    assert s.tenants is book and (s.state_fingerprint(), book.usage(1)) == before
    # the request that re-places a reservation: same id, tenant, size, period, bounds, match
    book.add(Tenant(2, "roomy"))
    res = s.admit(Request(tenant=2, match={"udp_dst": 9}, id="x", **big))
    req = Scheduler.request_of(res)
    assert (req.id, req.tenant, req.src, req.dst, req.period_ns, req.frame_bytes, req.max_latency_ns,
            req.match) == ("x", 2, "A", "B", 10**6, 1000, 10**7, {"udp_dst": 9})
    s.release("x")
    assert s.admit(req).to_dict() == res.to_dict()
