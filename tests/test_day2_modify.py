"""Issue 12, day-2: PATCH /v1/reservations/{id} (rate, bounds, match, protection; same id).

- a refused change (409 or 422) leaves the scheduler, the store row and the switches untouched;
- an accepted one keeps the id, replaces the row (one transaction, audited ``modify``) and hands
  the data plane one ``reservations_changed`` pair: ``programs.reroute`` gives make-before-break
  phases whose every intermediate state carries the reservation's frames on the fake switches and
  whose end state is the new reservation's (the meter rate included);
- the tenant's quota counts the reservation's own old bandwidth once; tenants touch only theirs.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from controller.api import create_app
from controller.dataplane import programs, specs
from controller.dataplane.programs import FlowAdd, FlowDeleteStrict, MeterModify
from controller.seams import NullListener
from controller.service import ControllerService
from fakeswitch import FakeNetwork, frame_between, intermediate_states, link_bps, programmed, ring_plan

ADMIN = "admin-token-for-day2-tests-0123456789"
AH = {"Authorization": f"Bearer {ADMIN}"}
PLAN = ring_plan()
SRC = PLAN.hosts_of(1)[0].name
DST = [h for h in PLAN.hosts_of(1) if h.switch == "C"][0].name


class Recorder(NullListener):
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def reservation_added(self, res) -> None:
        self.calls.append(("added", res))

    def reservation_removed(self, res) -> None:
        self.calls.append(("removed", res))

    def reservations_changed(self, pairs) -> None:
        self.calls.append(("changed", list(pairs)))


class Env:
    def __init__(self, db, quota_bps=None):
        self.service = ControllerService(PLAN.topology, db_path=str(db), admin_token=ADMIN,
                                         store_synchronous="OFF", host_plan=PLAN)
        self.rec = Recorder()
        self.service.add_listener(self.rec)
        self.client = TestClient(create_app(self.service), raise_server_exceptions=False)
        r = self.client.post("/v1/tenants", json={"name": "t1", "quota_bps": quota_bps}, headers=AH)
        assert r.status_code == 201, r.text
        self.th = {"Authorization": f"Bearer {r.json()['token']}"}
        r = self.client.post("/v1/tenants", json={"name": "t2"}, headers=AH)
        self.th2 = {"Authorization": f"Bearer {r.json()['token']}"}

    def reserve(self, **kw) -> dict:
        body = {"src": "A", "dst": "C", "bandwidth_bps": 10**8, "max_latency_ns": 50_000_000, **kw}
        r = self.client.post("/v1/reservations", json=body, headers=self.th)
        assert r.status_code == 201, r.text
        return r.json()

    def patch(self, rid: str, body: dict, headers=None):
        return self.client.patch(f"/v1/reservations/{rid}", json=body, headers=headers or self.th)

    def snapshot(self, rid: str) -> tuple:
        rows = {i: j for i, _, j in self.service.store.reservation_rows()}
        return (self.service.scheduler.state_fingerprint(), rows.get(rid),
                self.service.scheduler.reservations[rid].to_dict(), dict(self.service.tenants.usage(1).__dict__))


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path / "d.db")


def carried(net: FakeNetwork, res, **frame_kw) -> bool:
    frame = frame_between(PLAN, SRC, DST, **frame_kw)
    cookie = specs.reservation_cookie(res.tenant, res.id)
    for d in net.send(SRC, frame).delivered:
        table1 = [h for h in d.hits if h.table_id == specs.TABLE_DETERMINISTIC]
        if (d.host == DST and len(table1) == len(d.switches)
                and all(specs.cookie_selects(h.cookie, cookie, specs.COOKIE_MASK_RESERVATION) for h in table1)):
            return True
    return False


def test_accepted_rate_change_keeps_the_id_and_reprograms_make_before_break(env):
    r = env.reserve()
    env.rec.calls.clear()
    p = env.patch(r["id"], {"bandwidth_bps": 3 * 10**8, "max_latency_ns": 40_000_000})
    assert p.status_code == 200, p.text
    new = p.json()
    assert new["id"] == r["id"] and new["bandwidth_bps"] == 3 * 10**8 and new["max_latency_ns"] == 40_000_000
    assert env.client.get(f"/v1/reservations/{r['id']}", headers=env.th).json()["bandwidth_bps"] == 3 * 10**8
    assert env.service.tenants.usage(1).bps == 3 * 10**8 and env.service.tenants.usage(1).reservations == 1
    stored = env.service.store.load_reservations()
    assert [(s.id, s.bandwidth_bps) for s in stored] == [(r["id"], 3 * 10**8)]
    # one changed pair, nothing added or removed
    assert [c[0] for c in env.rec.calls] == ["changed"]
    (old, newres), = env.rec.calls[0][1]
    assert old.bandwidth_bps == 10**8 and newres.bandwidth_bps == 3 * 10**8
    # the reroute program run on fake switches: carried at every intermediate state; ends as the new one
    before = programmed(PLAN, [old])
    out = programs.reroute(PLAN, [(old, newres)], link_bps([newres]))
    assert not out.unplaceable
    assert any(isinstance(c, MeterModify) for ph in out.program.phases for c in ph.changes)
    bad = [label for label, net in intermediate_states(lambda: FakeNetwork(PLAN), before, out.program)
           if not carried(net, newres)]
    assert bad == []
    net = FakeNetwork(PLAN)
    net.run(before)
    net.run(out.program)
    want = FakeNetwork(PLAN)
    want.run(programmed(PLAN, [newres]))
    assert net.switches[PLAN.dpid("A")].dump().meters == want.switches[PLAN.dpid("A")].dump().meters
    events = env.client.get("/v1/events?since=0", headers=AH).json()["events"]
    assert [e["action"] for e in events if e["action"] == "modify"] == ["modify"]


def test_match_change_adds_new_entries_before_deleting_old_ones(env):
    r = env.reserve(match={"udp_dst": 5000})
    env.rec.calls.clear()
    p = env.patch(r["id"], {"match": {"udp_dst": 6000}})
    assert p.status_code == 200, p.text
    assert p.json()["match"]["udp_dst"] == 6000
    (old, new), = env.rec.calls[0][1]
    prog = programs.reroute(PLAN, [(old, new)], link_bps([new])).program
    kinds = [(i, type(c)) for i, ph in enumerate(prog.phases) for c in ph.changes]
    first_delete = min(i for i, k in kinds if k is FlowDeleteStrict)
    last_add = max(i for i, k in kinds if k is FlowAdd)
    assert last_add < first_delete
    net = FakeNetwork(PLAN)
    net.run(programmed(PLAN, [old]))
    assert carried(net, old, udp_dst=5000) and not carried(net, new, udp_dst=6000)
    net.run(prog)
    assert carried(net, new, udp_dst=6000) and not carried(net, old, udp_dst=5000)


def test_refused_change_leaves_schedule_store_and_switches_untouched(env):
    r = env.reserve()
    other = env.reserve(match={"udp_dst": 7000})
    before = env.snapshot(r["id"])
    env.rec.calls.clear()
    n_events = len(env.client.get("/v1/events?since=0", headers=AH).json()["events"])
    cases = [({"bandwidth_bps": 5 * 10**9}, 409, "capacity"),           # 1 Gb/s links
             ({"max_latency_ns": 1000}, 409, "latency"),
             ({"match": {"udp_dst": 7000}}, 409, f"overlap:{other['id']}"),
             ({"bandwidth_bps": 10**8, "frame_bytes": 100}, 422, None),
             ({"src": "B"}, 422, None),
             ({}, 422, None),
             ({"max_latency_ns": None}, 422, None)]
    for body, code, reason in cases:
        p = env.patch(r["id"], body)
        assert p.status_code == code, (body, p.text)
        assert "\n" not in p.json()["detail"]
        if reason:
            assert p.json()["reason"].startswith(reason), p.json()
        assert env.snapshot(r["id"]) == before
    assert env.rec.calls == []
    events = env.client.get("/v1/events?since=0", headers=AH).json()["events"]
    assert len(events) > n_events and all(e["status"] != "ok" for e in events[n_events:])


def test_quota_counts_the_old_bandwidth_once(tmp_path):
    env = Env(tmp_path / "q.db", quota_bps=2 * 10**8)
    r = env.reserve(bandwidth_bps=15 * 10**7)
    assert env.patch(r["id"], {"bandwidth_bps": 2 * 10**8}).status_code == 200
    p = env.patch(r["id"], {"bandwidth_bps": 3 * 10**8})
    assert p.status_code == 409 and p.json()["reason"] == "quota"
    assert env.service.tenants.usage(1).bps == 2 * 10**8


def test_tenants_modify_only_their_own(env):
    r = env.reserve()
    assert env.patch(r["id"], {"bandwidth_bps": 2 * 10**8}, headers=env.th2).status_code == 404
    assert env.patch("nope", {"bandwidth_bps": 2 * 10**8}).status_code == 404
    assert env.patch(r["id"], {"bandwidth_bps": 2 * 10**8}, headers=AH).status_code == 200


def test_period_change_grows_then_shrinks_the_cycle_and_protection_can_be_added(env):
    r = env.reserve(frame_bytes=1000, period_ns=1_000_000, bandwidth_bps=None)
    p = env.patch(r["id"], {"period_ns": 1_500_000})
    assert p.status_code == 200, p.text
    assert p.json()["frame_bytes"] == 1000 and p.json()["cycle_ns"] == 3_000_000
    p = env.patch(r["id"], {"period_ns": 1_000_000})
    assert p.json()["cycle_ns"] == 1_000_000
    p = env.patch(r["id"], {"protection": "disjoint"})
    assert p.status_code == 200, p.text
    assert p.json()["protection_path"] and p.json()["path"] != p.json()["protection_path"]
    (old, new), = env.rec.calls[-1][1]
    prog = programs.reroute(PLAN, [(old, new)], link_bps([new])).program
    bad = [label for label, net in intermediate_states(lambda: FakeNetwork(PLAN), programmed(PLAN, [old]), prog)
           if not carried(net, new)]
    assert bad == []
    p = env.patch(r["id"], {"protection": None})
    assert p.status_code == 200 and not p.json().get("protection_path")


def test_a_failing_store_write_leaves_everything_as_it_was(env, monkeypatch):
    import sqlite3

    from controller.auth import Principal
    from controller.store import Tx

    r = env.reserve()
    before = env.snapshot(r["id"])
    env.rec.calls.clear()

    def broken(self, res):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(Tx, "save_reservation", broken)
    with pytest.raises(sqlite3.OperationalError):
        env.service.modify_reservation(Principal.of_tenant(1), r["id"], {"bandwidth_bps": 2 * 10**8})
    assert env.snapshot(r["id"]) == before and env.rec.calls == []
    # a tenant's deletion is one transaction too: a failure keeps the tenant, its token, its reservation
    monkeypatch.setattr(Tx, "delete_tenant", lambda self, tid: (_ for _ in ()).throw(
        sqlite3.OperationalError("disk I/O error")))
    with pytest.raises(sqlite3.OperationalError):
        env.service.delete_tenant(1)
    assert env.snapshot(r["id"]) == before and env.rec.calls == []
    assert env.client.get("/v1/tenants/me", headers=env.th).status_code == 200
    assert [x.id for x in env.service.store.load_reservations()] == [r["id"]]
