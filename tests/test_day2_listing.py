"""Issue 12, day-2 listing at scale: cursor pages (every reservation seen exactly once while others
are added and deleted), filters (src, dst, status, tenant for the admin) and the compact slot form
(``?slots=compact``: it expands back to exactly the expanded lists; the default stays expanded)."""

from __future__ import annotations

import pytest

from controller.listing import expand_offsets, expand_slots
from test_day2_modify import AH, Env


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path / "d.db")


def add(env, i: int, **kw) -> str:
    return env.reserve(**{"bandwidth_bps": 10**7, "match": {"udp_dst": 1000 + i}, **kw})["id"]


def test_unpaged_answer_is_unchanged_and_expanded(env):
    rid = add(env, 0)
    body = env.client.get("/v1/reservations", headers=env.th).json()
    assert list(body) == ["reservations"]            # no next_cursor unless paging was asked for
    assert body["reservations"][0]["id"] == rid and "slots" in body["reservations"][0]["hops"][0]
    assert env.client.get("/v1/reservations?slots=expanded", headers=env.th).json() == body


def test_pages_visit_every_reservation_exactly_once_under_concurrent_changes(env):
    first = [add(env, i, id=f"m{i:02d}") for i in range(30)]
    seen: list[str] = []
    cursor, pages, extra = None, 0, 100
    doomed = {"m25", "m26"}
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = env.client.get("/v1/reservations", params=params, headers=env.th).json()
        seen += [r["id"] for r in page["reservations"]]
        pages += 1
        # meanwhile: ids below and above the cursor are added, two not yet seen are deleted
        for rid in (f"a{extra}", f"z{extra}"):
            add(env, extra, id=rid)
            extra += 1
        for rid in list(doomed):
            if rid not in seen:
                assert env.client.delete(f"/v1/reservations/{rid}", headers=env.th).status_code == 204
                doomed.discard(rid)
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 50
    assert len(seen) == len(set(seen))                          # nothing twice
    assert set(first) - {"m25", "m26"} <= set(seen)             # everything that stayed, once
    assert seen == sorted(seen)


def test_filters_and_tenant_rules(env):
    a = add(env, 1)
    b = env.reserve(dst="E", bandwidth_bps=10**7)["id"]
    other = env.client.post("/v1/reservations", headers=env.th2, json={
        "src": "C", "dst": "A", "bandwidth_bps": 10**7, "max_latency_ns": 50_000_000}).json()["id"]

    def ids(params, headers=AH):
        r = env.client.get("/v1/reservations", params=params, headers=headers)
        assert r.status_code == 200, r.text
        return sorted(x["id"] for x in r.json()["reservations"])

    assert ids({"dst": "E"}) == [b]
    assert ids({"src": "A"}) == sorted([a, b])
    assert ids({"src": "C"}) == [other]
    assert ids({"tenant": 2}) == [other]
    assert ids({"src": "C"}, env.th) == []                      # a tenant sees only its own
    assert ids({"status": "active"}, env.th) == sorted([a, b])
    assert ids({"status": "down"}) == []
    assert env.client.get("/v1/reservations?tenant=2", headers=env.th).status_code == 403
    for bad in ("limit=0", "limit=10001", "cursor=%21%21", "cursor=bm9wZQ", "status=gone", "slots=tiny"):
        r = env.client.get(f"/v1/reservations?{bad}&cursor=x" if bad == "cursor=bm9wZQ" else f"/v1/reservations?{bad}",
                           headers=AH)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["error"] == "invalid"


def test_down_reservations_are_found_by_status(env):
    rid = add(env, 1)
    env.service.link_down("A", "B")
    env.service.link_down("A", "D")
    down = env.client.get("/v1/reservations?status=down", headers=env.th).json()["reservations"]
    assert [r["id"] for r in down] == [rid] and down[0]["status"] == "down"
    assert env.client.get("/v1/reservations?status=active", headers=env.th).json()["reservations"] == []
    compact = env.client.get("/v1/reservations?status=down&slots=compact", headers=env.th).json()["reservations"]
    assert expand_slots(compact[0]["hops"][0]["slots_compact"]) == down[0]["hops"][0]["slots"]


def test_compact_form_expands_to_exactly_the_expanded_lists(env):
    add(env, 1, bandwidth_bps=None, frame_bytes=1500, period_ns=1_500_000)          # cycle 3 ms
    add(env, 2, bandwidth_bps=9 * 10**8 // 2)                                       # many slots
    add(env, 3, protection="disjoint")
    full = env.client.get("/v1/reservations", headers=env.th).json()["reservations"]
    small = env.client.get("/v1/reservations?slots=compact", headers=env.th).json()["reservations"]
    assert [r["id"] for r in full] == [r["id"] for r in small]
    assert any(r.get("protection_hops") for r in full)
    for f, c in zip(full, small):
        assert "tx_offsets_ns" not in c
        assert expand_offsets(c["tx_offsets_compact"]) == sorted(f["tx_offsets_ns"])
        for key in ("hops", "protection_hops"):
            for fh, ch in zip(f.get(key) or [], c.get(key) or []):
                assert "slots" not in ch and (ch["src"], ch["dst"]) == (fh["src"], fh["dst"])
                assert expand_slots(ch["slots_compact"]) == fh["slots"]
                assert ch["slots_compact"]["repeat"] * ch["slots_compact"]["period_slots"] * f["slot_ns"] \
                    == f["cycle_ns"]
        rest = {k: v for k, v in f.items() if k not in ("hops", "protection_hops", "tx_offsets_ns")}
        assert {k: v for k, v in c.items() if k in rest} == rest
    big = max(full, key=lambda r: len(r["hops"][0]["slots"]))
    assert len(big["hops"][0]["slots"]) > 300
    assert len(next(c for c in small if c["id"] == big["id"])["hops"][0]["slots_compact"]["runs"]) < 10
    # /v1/schedule stays expanded
    sched = env.client.get("/v1/schedule", headers=env.th).json()
    assert all("slots" in h for r in sched["reservations"] for h in r["hops"])


def test_pages_under_a_concurrent_writer_thread(env):
    import threading

    first = [add(env, i, id=f"k{i:03d}") for i in range(40)]
    stop = threading.Event()
    errors: list[str] = []

    def writer():
        i = 500
        while not stop.is_set() and i < 700:
            for rid in (f"b{i}", f"x{i}"):
                r = env.client.post("/v1/reservations", headers=env.th, json={
                    "src": "A", "dst": "C", "bandwidth_bps": 10**6, "max_latency_ns": 50_000_000, "id": rid,
                    "match": {"udp_dst": 2000 + i}})
                if r.status_code != 201:
                    errors.append(r.text)
                i += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        seen, cursor = [], None
        while True:
            page = env.client.get("/v1/reservations", params={"limit": 3, **({"cursor": cursor} if cursor else {})},
                                  headers=env.th).json()
            seen += [r["id"] for r in page["reservations"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    finally:
        stop.set()
        t.join()
    assert not errors
    assert len(seen) == len(set(seen)) and set(first) <= set(seen)
