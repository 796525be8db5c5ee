"""Issue 12, wrong answers 1, 4 and 5 and three small ones of item 9, each pinned by a test.

1. Reservation ids are never reused: not after deleting the highest, not across a restart, not on
   a database written before the id ledger existed.
4. The cycle is the hyperperiod of the current reservations: it shrinks when a reservation leaves
   (deterministically), and a restart gives back the same cycle, slots and talker offsets.
5. A database written for another topology is refused at start unless the operator allows it;
   then what cannot be restored (missing links, or frames that would miss their slots because the
   propagation changed) is listed with ``status: "unrestored"`` and a reason, and can be deleted.
9. ``/healthz`` says ``degraded`` with reasons; ``--db`` in a missing folder is refused (the folder
   is not created); a generated admin token goes to stderr only.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.api import create_app
from controller.config import ControllerConfig
from controller.core.model import Reservation
from controller.core.scheduler import Scheduler
from controller.launcher import LaunchError, LaunchOptions, resolve
from controller.service import ControllerService
from controller.store import Store
from test_scheduler import check_schedule
from test_scheduler_properties import requests, topologies
from topologies.model import Topology

MS = 1_000_000
ADMIN = "admin-token-for-id-and-restart-tests-0123"
AH = {"Authorization": f"Bearer {ADMIN}"}
_PORTS = itertools.count(20000)


def square(name: str = "square", *, with_cd: bool = True, km_ab: float = 100) -> Topology:
    """A-B-C-D plus a long A-D, 10 Gb/s."""
    t = Topology(name)
    for n in "ABCD":
        t.add_node(n)
    t.add_link("A", "B", km_ab, capacity_bps=10**10)
    t.add_link("B", "C", 200, capacity_bps=10**10)
    if with_cd:
        t.add_link("C", "D", 100, capacity_bps=10**10)
    t.add_link("A", "D", 1000, capacity_bps=10**10)
    return t


class Ctl:
    """A service on a database file, its REST app and a few helpers."""

    def __init__(self, db: Path, topo: Topology | None = None):
        self.service = ControllerService(topo or square(), db_path=str(db), admin_token=ADMIN,
                                         store_synchronous="OFF")
        self.client = TestClient(create_app(self.service, rate_limit_per_s=0), raise_server_exceptions=False)

    def tenant(self, name: str) -> dict[str, str]:
        r = self.client.post("/v1/tenants", json={"name": name}, headers=AH)
        assert r.status_code == 201, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}

    def reserve(self, headers, **body) -> dict:
        body.setdefault("src", "A")
        body.setdefault("dst", "C")
        body.setdefault("max_latency_ns", 20 * MS)
        if "frame_bytes" not in body:
            body.setdefault("bandwidth_bps", 10**8)
        body.setdefault("match", {"udp_dst": next(_PORTS)})
        r = self.client.post("/v1/reservations", json=body, headers=headers)
        assert r.status_code == 201, r.text
        return r.json()

    def delete(self, rid: str, headers=AH) -> None:
        r = self.client.delete(f"/v1/reservations/{rid}", headers=headers)
        assert r.status_code == 204, r.text

    def listing(self, headers=AH) -> list[dict]:
        r = self.client.get("/v1/reservations", headers=headers)
        assert r.status_code == 200, r.text
        return r.json()["reservations"]

    def close(self) -> None:
        self.service.close()


# ----- 1. ids are never reused ------------------------------------------------------------------
def test_deleting_the_highest_id_does_not_hand_it_out_again(tmp_path):
    c = Ctl(tmp_path / "c.db")
    try:
        th = c.tenant("alpha")
        ids = [c.reserve(th)["id"] for _ in range(3)]
        assert ids == ["r1", "r2", "r3"]
        c.delete("r3", th)
        assert c.reserve(th)["id"] == "r4"
        c.delete("r1", th)
        assert c.reserve(th)["id"] == "r5"
    finally:
        c.close()


def test_ids_are_not_reused_across_a_restart(tmp_path):
    """The issue's case: after a restart the next POST got a deleted id of another tenant."""
    c = Ctl(tmp_path / "c.db")
    t1, t3 = c.tenant("one"), c.tenant("three")
    for _ in range(3):
        c.reserve(t1)
    old3 = [c.reserve(t3, src="B", dst="D")["id"] for _ in range(2)]     # r4, r5
    for rid in old3:
        c.delete(rid, t3)
    c.delete("r2", t1)
    c.close()

    c = Ctl(tmp_path / "c.db")
    try:
        new = c.reserve(t1)["id"]
        assert new not in {"r1", "r2", "r3", "r4", "r5"} and new == "r6"
        # tenant 3's cleanup script holding its old ids finds nothing of tenant 1's
        for rid in old3:
            assert c.client.delete(f"/v1/reservations/{rid}", headers=AH).status_code == 404
        assert [r["id"] for r in c.listing(t1)] == ["r1", "r3", "r6"]
    finally:
        c.close()


def test_a_what_if_does_not_consume_an_id_and_a_given_id_is_skipped(tmp_path):
    c = Ctl(tmp_path / "c.db")
    try:
        th = c.tenant("alpha")
        what = c.client.get("/v1/paths", params={"src": "A", "dst": "C", "bandwidth_bps": 10**8,
                                                 "max_latency_ns": 20 * MS, "tenant": 1}, headers=AH)
        assert what.status_code == 200 and what.json()["admissible"], what.text
        assert c.reserve(th)["id"] == "r1"
        assert c.reserve(th, id="r2")["id"] == "r2"          # chosen by the client
        c.delete("r2", th)
        assert c.reserve(th)["id"] == "r3"                    # r2 was used once: never generated
    finally:
        c.close()


def test_a_database_from_before_the_id_ledger_learns_its_used_ids_from_the_audit_log(tmp_path):
    c = Ctl(tmp_path / "c.db")
    th = c.tenant("alpha")
    for _ in range(3):
        c.reserve(th)
    c.delete("r3", th)
    c.delete("r2", th)
    c.close()
    # make it look like a version-1 database: no ledger of used ids
    s = Store(tmp_path / "c.db")
    with s.transaction() as tx:
        tx._cur.execute("DROP TABLE IF EXISTS reservation_ids")
        tx._cur.execute("UPDATE schema_version SET version = 1")
    s.close()

    c = Ctl(tmp_path / "c.db")
    try:
        assert c.reserve(th)["id"] == "r4"
    finally:
        c.close()


def test_scheduler_ids_skip_every_id_ever_used():
    s = Scheduler(square())
    s.note_ids_used(["r1", "r2", "r7", "x", "r0", "r05"])
    got = []
    for _ in range(6):
        r = s.admit(_req())
        got.append(r.id)
        s.release(r.id)
    assert got == ["r3", "r4", "r5", "r6", "r8", "r9"]


def _req(**kw):
    from controller.core.model import Request
    d = dict(tenant=1, src="A", dst="C", max_latency_ns=20 * MS, period_ns=MS, frame_bytes=1500)
    d.update(kw)
    return Request(**d)


# ----- 4. the cycle: shrinks when reservations leave, and survives a restart exactly -----------------
def test_the_cycle_shrinks_when_the_long_period_leaves(tmp_path):
    """The issue's case: a 1.5 ms reservation deleted, the cycle stayed 6 ms and a 9.1 ms what-if
    was refused ("hyperperiod would be 546000000 ns")."""
    c = Ctl(tmp_path / "c.db")
    try:
        th = c.tenant("alpha")
        keep = c.reserve(th, period_ns=MS, frame_bytes=1500)
        gone = [c.reserve(th, src="B", dst="D", period_ns=1_500_000, frame_bytes=1500),
                c.reserve(th, src="D", dst="B", period_ns=2 * MS, frame_bytes=1500)]
        assert c.client.get("/v1/schedule", headers=AH).json()["cycle_ns"] == 6 * MS
        for g in gone:
            c.delete(g["id"], th)
        assert c.client.get("/v1/schedule", headers=AH).json()["cycle_ns"] == MS
        mine = c.client.get(f"/v1/reservations/{keep['id']}", headers=th).json()
        assert mine["cycle_ns"] == MS and mine["tx_offsets_ns"] == keep["tx_offsets_ns"]
        assert mine["hops"] == keep["hops"]                 # as admitted, before the cycle grew
        what = c.client.get("/v1/paths", params={"src": "A", "dst": "C", "period_ns": 9_100_000,
                                                 "frame_bytes": 1500, "max_latency_ns": 30 * MS, "tenant": 1},
                            headers=AH)
        assert what.status_code == 200 and what.json()["admissible"], what.text
    finally:
        c.close()


def test_a_restart_gives_back_the_same_cycle_slots_and_offsets(tmp_path):
    c = Ctl(tmp_path / "c.db")
    th = c.tenant("alpha")
    c.reserve(th, period_ns=MS, frame_bytes=1500)
    c.reserve(th, src="B", dst="D", period_ns=2 * MS, frame_bytes=3000)
    long = c.reserve(th, src="D", dst="B", period_ns=3 * MS, frame_bytes=9000)
    c.reserve(th, src="C", dst="A", period_ns=4 * MS, frame_bytes=1500, protection="disjoint")
    c.delete(long["id"], th)                      # 12 ms -> 4 ms
    before = (c.listing(), c.client.get("/v1/schedule", headers=AH).json())
    assert before[1]["cycle_ns"] == 4 * MS
    c.close()

    c = Ctl(tmp_path / "c.db")
    try:
        after = (c.listing(), c.client.get("/v1/schedule", headers=AH).json())
        assert after == before
        assert c.service.health()["unrestored"] == 0
    finally:
        c.close()


def test_rerouted_and_degraded_reservations_come_back_exactly_after_a_restart(tmp_path):
    """What a link failure re-placed (a protected one keeping its second path as the primary, one
    rerouted, one left down) passes the start-up checks and comes back as it was."""
    db = tmp_path / "c.db"
    c = Ctl(db)
    th = c.tenant("alpha")
    c.reserve(th, src="C", dst="A", period_ns=2 * MS, frame_bytes=1500, protection="disjoint")
    c.reserve(th, src="A", dst="C", period_ns=MS, frame_bytes=1500)
    c.reserve(th, src="B", dst="D", period_ns=4 * MS, frame_bytes=1500, protection="disjoint")
    c.reserve(th, src="B", dst="C", period_ns=3 * MS, frame_bytes=1500, paths=[["B", "C"]], max_latency_ns=2 * MS)
    out = c.service.link_down("B", "C")
    assert out["rerouted"] and out["down"]
    before = (c.listing(), c.client.get("/v1/schedule", headers=AH).json())
    assert before[1]["cycle_ns"] == 4 * MS                # the 3 ms one went down: 12 ms -> 4 ms
    c.close()

    c = Ctl(db)
    try:
        assert (c.listing(), c.client.get("/v1/schedule", headers=AH).json()) == before
        assert c.service.unrestored() == []
    finally:
        c.close()


def test_a_rolled_back_admission_leaves_the_cycle_as_it_was(tmp_path, monkeypatch):
    c = Ctl(tmp_path / "c.db")
    try:
        th = c.tenant("alpha")
        c.reserve(th, period_ns=MS, frame_bytes=1500)
        from controller import store as store_mod

        def boom(self, res):
            raise OSError("disk full")
        monkeypatch.setattr(store_mod.Tx, "save_reservation", boom)
        r = c.client.post("/v1/reservations", headers=th, json={
            "src": "B", "dst": "D", "period_ns": 3 * MS, "frame_bytes": 1500, "max_latency_ns": 20 * MS})
        assert r.status_code == 503 and r.json()["error"] == "store_unavailable"     # nothing changed
        assert c.service.scheduler.cycle_ns == MS
    finally:
        c.close()


PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _pattern(s: Scheduler, r: Reservation) -> tuple:
    """What a reservation holds, independent of the cycle it is written in: per hop, the held
    residues modulo its period; the talker offsets modulo its period."""
    p = r.period_ns // s.slot_ns
    hops = [(h.src, h.dst, tuple(sorted({x % p for x in h.slots})))
            for h in list(r.hops) + list(r.protection_hops or [])]
    return tuple(hops), tuple(sorted({t % r.period_ns for t in r.tx_offsets_ns}))


@st.composite
def _mixes(draw):
    topo = draw(topologies())
    n = topo.graph.number_of_nodes()
    reqs = draw(st.lists(requests(n), min_size=1, max_size=14))
    releases = draw(st.lists(st.integers(0, 50), max_size=10))
    return topo, reqs, releases


@PROPS
@given(_mixes(), st.sampled_from([MS, 2 * MS]))
def test_settling_the_cycle_keeps_every_remaining_reservation_where_it_was(mix, base):
    topo, reqs, releases = mix
    s = Scheduler(topo, base_cycle_ns=base, max_cycle_ns=24 * MS)
    first_seen: dict[str, dict] = {}
    for q in reqs:
        out = s.admit(q)
        if isinstance(out, Reservation):
            first_seen[out.id] = out.to_dict()       # as stored at admission (its cycle then)
    for k in releases:
        if not s.reservations:
            break
        before = {rid: _pattern(s, r) for rid, r in s.reservations.items()}
        rid = sorted(s.reservations)[k % len(s.reservations)]
        s.release(rid)
        s.settle_cycle()
        del before[rid]
        # the cycle is the hyperperiod of what is left, and nobody moved
        want = math.lcm(base // s.slot_ns, *[r.period_ns // s.slot_ns for r in s.reservations.values()])
        assert s.cycle_ns == want * s.slot_ns
        assert {i: _pattern(s, r) for i, r in s.reservations.items()} == before
        check_schedule(s)
        # admission after the shrink agrees with a what-if
        probe = reqs[k % len(reqs)]
        w, a = s.evaluate(probe), s.admit(probe)
        assert (w.to_dict() == a.to_dict()) if isinstance(a, Reservation) else (w == a)
        if isinstance(a, Reservation):
            first_seen[a.id] = a.to_dict()
    # a restart from the rows as stored at admission gives exactly the same schedule
    s2 = Scheduler(topo, base_cycle_ns=base, max_cycle_ns=24 * MS)
    for rid in s.reservations:
        s2.restore(Reservation.from_dict(first_seen[rid]))
    assert s2.cycle_ns == s.cycle_ns
    assert {i: r.to_dict() for i, r in s2.reservations.items()} == {i: r.to_dict() for i, r in s.reservations.items()}
    assert s2.state_fingerprint() == s.state_fingerprint()
    # every reservation the scheduler made passes the start-up timing check, with its exact bound
    for r in s.reservations.values():
        assert s2.timing_violation(r) is None
        bounds = s2.path_bounds_ns(r)
        assert bounds[0] == r.latency_bound_ns
        if r.protection_path:
            assert bounds[1] == r.protection_latency_bound_ns


# ----- 5. another topology --------------------------------------------------------------------------
def _topo_file(tmp_path: Path, topo: Topology, name: str) -> str:
    p = tmp_path / f"{name}.json"
    p.write_text(topo.to_json())
    return str(p)


def _fill(db: Path, topo: Topology) -> dict[str, dict]:
    c = Ctl(db, topo)
    th = c.tenant("alpha")
    made = {"cd": c.reserve(th, src="C", dst="D", paths=[["C", "D"]]), "ab": c.reserve(th, src="A", dst="B")}
    c.close()
    return made


def test_a_database_of_another_topology_is_refused_unless_allowed(tmp_path):
    db = tmp_path / "c.db"
    _fill(db, square())
    other = _topo_file(tmp_path, square(with_cd=False), "square-no-cd")
    with pytest.raises(LaunchError) as err:
        resolve(LaunchOptions(topology=other, db=str(db)))
    msg = str(err.value)
    assert "\n" not in msg and err.value.code == 2
    assert "square" in msg and "--allow-topology-change" in msg and msg.count("sha256") == 2
    # the same topology from a file is the same topology
    assert resolve(LaunchOptions(topology=_topo_file(tmp_path, square(), "same"), db=str(db),
                                 of_plain=True)).topology.name == "square"
    # explicitly allowed: on the command line (launcher option) or in the config file
    assert resolve(LaunchOptions(topology=other, db=str(db), allow_topology_change=True,
                                 of_plain=True)).config.allow_topology_change
    cfg = tmp_path / "c.toml"
    cfg.write_text("allow_topology_change = true\n")
    assert resolve(LaunchOptions(topology=other, db=str(db), config=str(cfg), of_plain=True)).topology.name == "square"


def test_another_name_is_another_topology_and_a_new_database_is_fine(tmp_path):
    db = tmp_path / "c.db"
    _fill(db, square())
    with pytest.raises(LaunchError, match="'abilene'"):
        resolve(LaunchOptions(topology=_topo_file(tmp_path, square("abilene"), "abilene"), db=str(db)))
    fresh = tmp_path / "fresh.db"
    resolve(LaunchOptions(topology=_topo_file(tmp_path, square("abilene"), "abilene"), db=str(fresh), of_plain=True))
    assert not fresh.exists()                     # resolving creates nothing


def test_unrestored_reservations_are_listed_readable_and_deletable(tmp_path):
    db = tmp_path / "c.db"
    made = _fill(db, square())
    c = Ctl(db, square(with_cd=False))            # what --allow-topology-change leads to
    try:
        listed = {r["id"]: r for r in c.listing()}
        cd, ab = made["cd"]["id"], made["ab"]["id"]
        assert set(listed) == {cd, ab}
        assert listed[cd]["status"] == "unrestored" and "C-D" in listed[cd]["status_reason"]
        assert "status" not in listed[ab]
        one = c.client.get(f"/v1/reservations/{cd}", headers=AH)
        assert one.status_code == 200 and one.json()["status"] == "unrestored"
        assert c.client.get("/v1/reservations", params={"tenant": 1}, headers=AH).json()["reservations"][0]["id"] == cd
        c.delete(cd)
        assert c.client.get(f"/v1/reservations/{cd}", headers=AH).status_code == 404
        assert [r["id"] for r in c.listing()] == [ab]
        events = c.client.get("/v1/events", headers=AH).json()["events"]
        changed = [e for e in events if e["action"] == "topology_changed"]
        assert changed and changed[-1]["outcome"]["from"]["digest"] != changed[-1]["outcome"]["to"]["digest"]
    finally:
        c.close()


def test_a_longer_link_unrestores_what_would_miss_its_slots(tmp_path):
    """Same links, but A-B is now 2000 km: a reservation's frames would reach B after its B-C
    slots. Restoring it silently would promise a bound the network no longer keeps."""
    db = tmp_path / "c.db"
    c = Ctl(db, square())
    th = c.tenant("alpha")
    abc = c.reserve(th, src="A", dst="C", paths=[["A", "B", "C"]], max_latency_ns=5 * MS)
    bc = c.reserve(th, src="B", dst="C", paths=[["B", "C"]], max_latency_ns=5 * MS)
    c.close()
    c = Ctl(db, square(km_ab=2000))
    try:
        listed = {r["id"]: r for r in c.listing()}
        assert listed[abc["id"]]["status"] == "unrestored"
        assert "bound" in listed[abc["id"]]["status_reason"]
        assert "status" not in listed[bc["id"]] and listed[bc["id"]]["hops"] == bc["hops"]
    finally:
        c.close()


# ----- 9. /healthz, --db, the admin token ------------------------------------------------------------
def test_healthz_view_is_degraded_with_reasons():
    from controller.views import health_view

    base = dict(switches_connected=4, reservations=3, tenants=1, unrestored=0, down=0, uptime_s=1.0)
    ok = health_view(**base, link_check={"checked": False, "expected": 8, "seen": 0, "missing": []})
    assert ok["status"] == "ok" and ok["reasons"] == []
    none_seen = health_view(**base, link_check={"checked": True, "expected": 8, "seen": 0,
                                                "missing": [["A", "B"]] * 8})
    assert none_seen["status"] == "degraded" and "8" in none_seen["reasons"][0]
    lost = health_view(**dict(base, unrestored=2, down=1),
                       link_check={"checked": True, "expected": 8, "seen": 8, "missing": []})
    assert lost["status"] == "degraded" and len(lost["reasons"]) == 2
    assert lost["unrestored"] == 2 and lost["switches_connected"] == 4


def test_healthz_says_degraded_when_reservations_are_unrestored_or_no_link_is_seen(tmp_path):
    db = tmp_path / "c.db"
    _fill(db, square())
    c = Ctl(db, square(with_cd=False))
    try:
        h = c.client.get("/healthz").json()
        assert h["status"] == "degraded" and any("unrestored" in r for r in h["reasons"])
    finally:
        c.close()
    c = Ctl(tmp_path / "other.db")
    try:
        c.service.set_link_check({"expected": 8, "seen": 0, "missing": [["A", "B"]] * 8, "unexpected": []})
        h = c.client.get("/healthz").json()
        assert h["status"] == "degraded" and h["reasons"]
    finally:
        c.close()


def test_db_in_a_missing_folder_is_refused_and_not_created(tmp_path):
    missing = tmp_path / "nonexistent" / "dir"
    with pytest.raises(LaunchError) as err:
        resolve(LaunchOptions(topology="fntf40", db=str(missing / "x.db")))
    assert err.value.code == 2 and "does not exist" in str(err.value) and "\n" not in str(err.value)
    assert not missing.exists() and not missing.parent.exists()
    cfg = tmp_path / "c.toml"
    cfg.write_text('db_path = "state/x.db"\n')              # relative to the config file: same rule
    with pytest.raises(LaunchError, match="does not exist"):
        resolve(LaunchOptions(topology="fntf40", config=str(cfg)))
    assert not (tmp_path / "state").exists()


def test_a_generated_admin_token_goes_to_stderr_only(tmp_path, capfd, monkeypatch):
    """As the launcher builds the service (``from_config``, default announce)."""
    monkeypatch.delenv("DNCTL_ADMIN_TOKEN", raising=False)
    cfg = ControllerConfig(db_path=str(tmp_path / "c.db"))
    svc = ControllerService.from_config(cfg, square())
    try:
        assert svc.admin_token_generated
        out, err = capfd.readouterr()
        token = err.strip().rsplit(" ", 1)[-1]
        assert len(token) >= 32 and token not in out and out == ""
        assert svc.authenticate(token) is not None
    finally:
        svc.close()


def test_json_of_a_reservation_row_is_unchanged_by_a_restart(tmp_path):
    """The stored rows are what a restart reads: a restart writes none of them."""
    db = tmp_path / "c.db"
    _fill(db, square())
    rows = Store(db).reservation_rows()
    c = Ctl(db, square())
    try:
        assert c.service.store.reservation_rows() == rows
        assert all(json.loads(r[2])["id"] == r[0] for r in rows)
    finally:
        c.close()
