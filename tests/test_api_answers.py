"""Issue 12, wrong answers of the REST API (items 2, 6, 7, 8 and the API's small ones of 9).

Each test pins one answer that used to be silently wrong; each failed before its fix:

- 2: contradictory or redundant rate fields (``frame_bytes`` with ``bandwidth_bps``) are a 422
  naming both, never a 201 that dropped one of them;
- 6: a tenant's token sees only its own hosts in ``GET /v1/topology``; ``?tenant=`` naming another
  tenant is a 403; the admin's what-if without a tenant names no tenant;
- 7: the what-if (``GET`` and ``POST /v1/paths``) takes every field a POST takes (match, paths,
  protection, id) and gives the POST's verdict;
- 8: one match validation (``controller.core.model.validate_match``) for the API, the CLI and the
  requests file; a reservation that installs nothing carries an explicit ``warnings`` entry;
- 9: ``Content-Length: abc`` gets a JSON answer from the real server; a 429's detail gives the
  same seconds as its ``Retry-After``; an unknown node suggests the node meant.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time

import pytest
import uvicorn
from fastapi.testclient import TestClient

from controller.api import create_app
from controller.core.model import InvalidRequest, Request
from controller.service import ControllerService
from topologies.hosts import HostPlan
from topologies.model import Topology

ADMIN = "admin-token-for-answer-tests-0123456789"
AH = {"Authorization": f"Bearer {ADMIN}"}


def square() -> Topology:
    """A-B-C-D line plus a long A-D link, 10 Gb/s: A->C has two link-disjoint paths (A-B-C, A-D-C)."""
    t = Topology("square")
    for n in "ABCD":
        t.add_node(n)
    t.add_link("A", "B", 100, capacity_bps=10**10)
    t.add_link("B", "C", 200, capacity_bps=10**10)
    t.add_link("C", "D", 100, capacity_bps=10**10)
    t.add_link("A", "D", 1000, capacity_bps=10**10)
    return t


#: tenant 1 has hosts at A and C, tenant 2 at A and D
ATTACH = [(1, "A"), (1, "C"), (2, "A"), (2, "D")]


class Env:
    def __init__(self, db, **app_kw):
        topo = square()
        self.service = ControllerService(topo, db_path=str(db), admin_token=ADMIN, store_synchronous="OFF",
                                         host_plan=HostPlan.build(topo, ATTACH))
        self.app = create_app(self.service, **app_kw)
        self.client = TestClient(self.app, raise_server_exceptions=False)
        self.ports = iter(range(20000, 30000))

    def tenant(self, name: str) -> tuple[int, dict]:
        r = self.client.post("/v1/tenants", json={"name": name}, headers=AH)
        assert r.status_code == 201, r.text
        return r.json()["id"], {"Authorization": f"Bearer {r.json()['token']}"}

    def body(self, **kw) -> dict:
        body = {"src": "A", "dst": "C", "bandwidth_bps": 10**8, "max_latency_ns": 50_000_000,
                "match": {"udp_dst": next(self.ports)}}
        body.update(kw)
        return {k: v for k, v in body.items() if v is not None}

    def state(self):
        return (json.dumps(self.service.schedule_dict(), sort_keys=True), self.service.store.reservation_rows(),
                self.service.scheduler.state_fingerprint())


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path / "c.db")
    yield e
    e.service.close()


def error(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == code and isinstance(body["detail"], str) and body["detail"]
    return body


# ----- 2: frame_bytes and bandwidth_bps together --------------------------------------------------------------
@pytest.mark.parametrize("extra", [{}, {"period_ns": 1_000_000}])
def test_frame_bytes_with_bandwidth_is_422_naming_both_not_a_201_that_drops_one(env, extra):
    tid, th = env.tenant("alpha")
    before = env.state()
    body = env.body(bandwidth_bps=10**9, frame_bytes=100, **extra)
    e = error(env.client.post("/v1/reservations", json=body, headers=th), 422, "invalid")
    assert e["field"] in ("frame_bytes", "bandwidth_bps")
    assert "frame_bytes" in e["detail"] and "bandwidth_bps" in e["detail"]
    # the what-if says the same, and nothing changed
    q = {k: v for k, v in body.items() if k != "match"}
    e = error(env.client.get("/v1/paths", params=q, headers=th), 422, "invalid")
    assert "frame_bytes" in e["detail"] and "bandwidth_bps" in e["detail"]
    assert env.state() == before


def test_the_request_model_refuses_both_rates_and_keeps_the_single_ones():
    base = {"tenant": 1, "src": "A", "dst": "C", "max_latency_ns": 10**7}
    with pytest.raises(InvalidRequest) as e:
        Request.from_dict({**base, "bandwidth_bps": 10**9, "frame_bytes": 100})
    assert "frame_bytes" in str(e.value) and "bandwidth_bps" in str(e.value)
    with pytest.raises(InvalidRequest):
        Request.from_dict({**base, "bandwidth_bps": 8 * 10**5, "frame_bytes": 100, "period_ns": 10**6})
    assert Request.from_dict({**base, "bandwidth_bps": 10**9}).effective_bandwidth_bps() == 10**9
    assert Request.from_dict({**base, "bandwidth_bps": 10**9, "period_ns": 10**5}).effective_bandwidth_bps() == 10**9
    assert Request.from_dict({**base, "frame_bytes": 100, "period_ns": 10**6}).effective_bandwidth_bps() == 800_000


# ----- 6: tenant boundaries ------------------------------------------------------------------------------------
def test_a_tenant_token_sees_only_its_own_hosts_in_the_topology(env):
    t1, h1 = env.tenant("alpha")
    t2, h2 = env.tenant("beta")
    everyone = env.client.get("/v1/topology", headers=AH).json()["hosts"]
    assert {h["tenant"] for h in everyone} == {1, 2}
    for tid, headers in ((t1, h1), (t2, h2)):
        topo = env.client.get("/v1/topology", headers=headers).json()
        assert topo["hosts"] and {h["tenant"] for h in topo["hosts"]} == {tid}
        assert topo["hosts"] == [h for h in everyone if h["tenant"] == tid]
        assert len(topo["nodes"]) == 4 and len(topo["links"]) == 4


def test_listing_another_tenants_reservations_is_403_as_elsewhere(env):
    t1, h1 = env.tenant("alpha")
    t2, h2 = env.tenant("beta")
    assert env.client.post("/v1/reservations", json=env.body(), headers=h1).status_code == 201
    error(env.client.get(f"/v1/reservations?tenant={t1}", headers=h2), 403, "forbidden")
    mine = env.client.get(f"/v1/reservations?tenant={t2}", headers=h2)
    assert mine.status_code == 200 and mine.json() == {"reservations": []}
    assert len(env.client.get(f"/v1/reservations?tenant={t1}", headers=AH).json()["reservations"]) == 1


def test_the_admins_what_if_without_a_tenant_names_no_tenant(env):
    env.tenant("alpha")
    q = {"src": "A", "dst": "C", "bandwidth_bps": 10**8, "max_latency_ns": 50_000_000}
    r = env.client.get("/v1/paths", params=q, headers=AH).json()
    assert r["admissible"] is True and r["tenant"] is None
    r = env.client.get("/v1/paths", params={**q, "tenant": 1}, headers=AH).json()
    assert r["admissible"] is True and r["tenant"] == 1


# ----- 7: the what-if takes what a POST takes and gives its verdict -----------------------------------------------
def _as_query(body: dict) -> list[tuple[str, str]]:
    q: list[tuple[str, str]] = []
    for k, v in body.items():
        if k == "match":
            q += [(f"match.{mk}", str(mv)) for mk, mv in v.items()]
        elif k == "paths":
            q += [("paths", ",".join(p)) for p in v]
        else:
            q.append((k, str(v)))
    return q


def _what_ifs(env, body, headers) -> list[dict]:
    """The verdict of GET /v1/paths (query form) and of POST /v1/paths (body form)."""
    out = []
    for r in (env.client.get("/v1/paths", params=_as_query(body), headers=headers),
              env.client.post("/v1/paths", json=body, headers=headers)):
        assert r.status_code in (200, 422), r.text
        out.append(r.json())
    assert out[0] == out[1]
    return out


def _same_verdict(env, body, headers) -> dict:
    before = env.state()
    what_if = _what_ifs(env, body, headers)[0]
    assert env.state() == before
    posted = env.client.post("/v1/reservations", json=body, headers=headers)
    if posted.status_code == 201:
        got = posted.json()
        assert what_if["admissible"] is True, what_if
        for key in ("path", "hops", "protection_path", "protection_hops", "latency_bound_ns", "match", "tenant"):
            assert what_if.get(key) == got.get(key), key
    elif posted.status_code == 409:
        assert what_if["admissible"] is False and what_if["reason"] == posted.json()["reason"], what_if
    else:
        assert posted.status_code == 422 and what_if.get("field") == posted.json()["field"], (what_if, posted.text)
    return posted.json()


def test_what_if_sees_the_overlap_a_post_refuses(env):
    tid, th = env.tenant("alpha")
    body = env.body(match={"udp_dst": 5000})
    first = _same_verdict(env, body, th)
    again = _same_verdict(env, body, th)
    assert again["reason"] == f"overlap:{first['id']}"
    # a different match is other traffic: both say yes
    _same_verdict(env, env.body(match={"udp_dst": 5001}), th)


def test_what_if_takes_protection_paths_and_id(env):
    tid, th = env.tenant("alpha")
    prot = _same_verdict(env, env.body(protection="disjoint"), th)
    assert prot["protection_path"] and set(prot["path"]) | set(prot["protection_path"]) == set("ABCD")
    hinted = _same_verdict(env, env.body(paths=[["A", "D", "C"]]), th)
    assert hinted["path"] == ["A", "D", "C"]
    named = _same_verdict(env, env.body(id="job-7"), th)
    assert named["id"] == "job-7"
    assert _same_verdict(env, env.body(id="job-7"), th)["reason"] == "exists"
    # the admin's what-if for a tenant goes through the same checks
    assert _same_verdict(env, env.body(tenant=tid, match=prot["match"]), AH)["reason"] == f"overlap:{prot['id']}"
    # invalid input is the same 422 in all three forms
    bad = env.body(protection="ring")
    assert [w["field"] for w in _what_ifs(env, bad, th)] == ["protection", "protection"]


# ----- 8: one match validation, and reservations that install nothing ---------------------------------------------
MATCHES = [
    ({"ip_proto": 6, "udp_dst": 53}, "match.udp_dst"),
    ({"ip_proto": 17, "tcp_dst": 80}, "match.tcp_dst"),
    ({"tcp_dst": 80, "udp_dst": 53}, "match.tcp_dst"),
    ({"ip_proto": 17, "udp_dst": 53}, None),
    ({"tcp_dst": 80}, None),
    ({"ip_src": "10.0.1.1", "ip_dscp": 46}, None),
]


@pytest.mark.parametrize("match, field", MATCHES)
def test_the_api_refuses_the_matches_the_data_plane_cannot_express(env, match, field):
    tid, th = env.tenant("alpha")
    r = env.client.post("/v1/reservations", json=env.body(match=match), headers=th)
    if field is None:
        assert r.status_code == 201, r.text
    else:
        assert error(r, 422, "invalid")["field"] == field


@pytest.mark.parametrize("match, field", MATCHES)
def test_the_cli_and_the_requests_file_use_the_same_match_validation(match, field):
    import argparse

    from schedules.requests_file import RequestsFileError, parse_requests
    from tools.cli import CliError
    from tools.cli.cmd_reserve import build_request

    opts = {"ip_src": None, "ip_dst": None, "ip_proto": None, "udp_dst": None, "tcp_dst": None, "dscp": None}
    for k, v in match.items():
        opts["dscp" if k == "ip_dscp" else k] = str(v) if k == "ip_proto" else v
    args = argparse.Namespace(src="A", dst="C", tenant=None, bandwidth="1G", frame_bytes=None, period=None,
                              max_latency="10ms", max_jitter=None, id=None, via=None, protect=False,
                              **{f"match_{k}": v for k, v in opts.items()})
    entry = {"tenant": 1, "src": "A", "dst": "C", "bandwidth_bps": 10**9, "max_latency_ns": 10**7, "match": match}
    if field is None:
        assert build_request(args)["match"] == match
        assert parse_requests([entry])[0].match == match
    else:
        with pytest.raises(CliError) as e:
            build_request(args)
        assert "--match-" + field.split(".")[1].replace("_", "-") in str(e.value)
        with pytest.raises(RequestsFileError) as e:
            parse_requests([entry])
        assert repr(field) in str(e.value)


def test_a_reservation_that_installs_nothing_says_so(env):
    t1, h1 = env.tenant("alpha")
    t2, h2 = env.tenant("beta")
    ok = env.client.post("/v1/reservations", json=env.body(), headers=h1).json()
    assert ok["warnings"] == []
    # no host of tenant 1 at D
    r = env.client.post("/v1/reservations", json=env.body(dst="D"), headers=h1)
    assert r.status_code == 201
    (w,) = r.json()["warnings"]
    assert w["code"] == "installs_nothing" and "D" in w["detail"]
    # the source host given is tenant 2's (t2h1 at A)
    other = next(h for h in env.client.get("/v1/topology", headers=AH).json()["hosts"]
                 if h["tenant"] == 2 and h["switch"] == "A")
    r = env.client.post("/v1/reservations", json=env.body(match={"ip_src": other["ip"], "udp_dst": 7}), headers=h1)
    assert r.status_code == 201 and [w["code"] for w in r.json()["warnings"]] == ["installs_nothing"]
    # the what-if warns the same way
    w = env.client.get("/v1/paths", params={"src": "A", "dst": "D", "bandwidth_bps": 10**6,
                                            "max_latency_ns": 50_000_000}, headers=h1).json()
    assert w["admissible"] is True and [x["code"] for x in w["warnings"]] == ["installs_nothing"]


# ----- 9: the small ones -----------------------------------------------------------------------------------------
def test_an_unknown_node_suggests_the_one_meant(tmp_path):
    topo = Topology("cities")
    for n in ("Beijing", "Tianjin", "Jinan"):
        topo.add_node(n)
    topo.add_link("Beijing", "Tianjin", 150, capacity_bps=10**9)
    topo.add_link("Tianjin", "Jinan", 330, capacity_bps=10**9)
    svc = ControllerService(topo, db_path=str(tmp_path / "c.db"), admin_token=ADMIN, store_synchronous="OFF")
    try:
        client = TestClient(create_app(svc), raise_server_exceptions=False)
        client.post("/v1/tenants", json={"name": "a"}, headers=AH)
        body = {"tenant": 1, "src": "beijing", "dst": "Jinan", "bandwidth_bps": 10**6, "max_latency_ns": 10**8}
        e = error(client.post("/v1/reservations", json=body, headers=AH), 422, "invalid")
        assert e["field"] == "src" and "did you mean 'Beijing'?" in e["detail"]
        e = error(client.get("/v1/paths", params={**body, "dst": "Jinnan"}, headers=AH), 422, "invalid")
        assert "did you mean 'Beijing'?" in e["detail"]
        e = error(client.get("/v1/paths", params={**body, "src": "Beijing", "dst": "Jinnan"}, headers=AH),
                  422, "invalid")
        assert e["field"] == "dst" and "did you mean 'Jinan'?" in e["detail"]
        e = error(client.post("/v1/reservations", json={**body, "src": "Beijing", "paths": [["Beijing", "tianjin",
                                                                                                "Jinan"]]},
                              headers=AH), 422, "invalid")
        assert e["field"] == "paths" and "did you mean 'Tianjin'?" in e["detail"]
        # nothing close: no guess
        e = error(client.post("/v1/reservations", json={**body, "src": "Urumqi"}, headers=AH), 422, "invalid")
        assert "did you mean" not in e["detail"]
    finally:
        svc.close()


def test_the_429_detail_gives_the_seconds_of_its_retry_after(tmp_path):
    env = Env(tmp_path / "c.db", rate_limit_per_s=0.5, rate_limit_burst=1)
    try:
        now = [1000.0]
        env.app.state.limiter.clock = lambda: now[0]
        assert env.client.get("/v1/reservations", headers=AH).status_code == 200
        for dt in (0.0, 0.1, 0.5, 0.3):           # waits of 2.0, 1.9, 1.4 and 1.1 s: Retry-After 2
            now[0] += dt
            r = env.client.get("/v1/reservations", headers=AH)
            e = error(r, 429, "rate_limited")
            seconds = int(r.headers["retry-after"])
            assert seconds >= 1
            m = re.search(r"retry in (\S+) s", e["detail"])
            assert m and float(m.group(1)) == seconds, (e["detail"], seconds)
    finally:
        env.service.close()


def test_a_malformed_content_length_gets_json_from_the_real_server(env):
    from controller.api.server import server_config

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(server_config(env.app, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.01)
    try:
        for bad in (b"abc", b"-5", b"1, 2"):
            with socket.create_connection(sock.getsockname(), timeout=10) as s:
                s.sendall(b"POST /v1/tenants HTTP/1.1\r\nHost: x\r\nContent-Length: " + bad
                          + b"\r\nAuthorization: Bearer " + ADMIN.encode() + b"\r\n\r\n{}")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 400"), data
            assert b"content-type: application/json" in head.lower()
            answer = json.loads(body)
            assert answer["error"] == "bad_request" and answer["detail"]
        with socket.create_connection(sock.getsockname(), timeout=10) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 200")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
