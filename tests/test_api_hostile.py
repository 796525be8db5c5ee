"""Hostile and heavy input against the REST API: what an attacker or a broken client sends.

Each test drives the real app (``controller.api.create_app`` over a ``ControllerService`` with a
temporary SQLite store) and checks three things besides the status: the answer is a JSON
``{"error","detail"}`` (never a 5xx), nothing in the store or the scheduler changed, and no
refused request was audited as a success. Covered: body size (declared and chunked, over a real
uvicorn server), per-token rate limiting (with a fake clock), deep nesting, huge and non-finite
numbers, wrong content types, unicode node names, path-traversal-looking ids, SQL-looking
strings, tokens in logs / the database / answers, and constant-time token comparison.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import socket
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import controller.auth as auth
from controller.api import create_app
from controller.service import ControllerService
from topologies.model import Topology
from apihelpers import serve

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

ADMIN = "hostile-admin-token-0123456789abcdefXYZ"
AH = {"Authorization": f"Bearer {ADMIN}"}
MIB = 1 << 20
CITIES = ["Zürich", "北京", "São Paulo", "Kraków", "القاهرة"]


def unicode_line() -> Topology:
    """Zürich - 北京 - São Paulo - Kraków - القاهرة, 10 Gb/s (names in four scripts)."""
    t = Topology("unicode-line")
    for name in CITIES:
        t.add_node(name)
    for a, b in zip(CITIES, CITIES[1:]):
        t.add_link(a, b, 200, capacity_bps=10**10)
    return t


class World:
    """A service with two tenants and one reservation each; a TestClient; state snapshots."""

    def __init__(self, db: Path, **app_kw):
        self.db = db
        self.service = ControllerService(unicode_line(), db_path=str(db), admin_token=ADMIN, store_synchronous="OFF")
        self.app = create_app(self.service, **app_kw)
        self.client = TestClient(self.app, raise_server_exceptions=False)
        self.tokens: dict[int, str] = {}
        for name in ("alpha", "beta"):
            tenant, token = self.service.create_tenant(name)
            self.tokens[tenant.id] = token
        self.h1 = {"Authorization": f"Bearer {self.tokens[1]}"}
        self.h2 = {"Authorization": f"Bearer {self.tokens[2]}"}
        for tid, h in ((1, self.h1), (2, self.h2)):
            r = self.client.post("/v1/reservations", headers=h,
                                 json={"src": CITIES[0], "dst": CITIES[2], "bandwidth_bps": 10**8,
                                       "max_latency_ns": 10**8, "id": f"seed-{tid}"})
            assert r.status_code == 201, r.text

    def state(self) -> tuple:
        """Everything a refused request must leave alone (the audit log is checked by ``refused``)."""
        s = self.service
        return (s.store.reservation_rows(),
                [(t.tenant, t.token_hash) for t in s.store.load_tenants()],
                s.store._query("SELECT key, value FROM settings ORDER BY key"),
                json.dumps(s.schedule_dict(), sort_keys=True), s.scheduler.state_fingerprint(),
                sorted((t.id, s.tenants.usage(t.id).bps, s.tenants.usage(t.id).reservations) for t in s.tenants))

    def last_seq(self) -> int:
        entries = self.service.store.list_audit(0, limit=10**9)
        return entries[-1].seq if entries else 0

    @contextmanager
    def refused(self, *statuses: int):
        """Check every answer recorded in the block: 4xx among ``statuses``, error JSON, no change."""
        before, seq, answers = self.state(), self.last_seq(), []
        yield answers
        assert answers, "nothing was recorded"
        for r in answers:
            assert r.status_code in statuses, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:200]}"
            body = r.json()
            assert isinstance(body.get("error"), str) and isinstance(body.get("detail"), str), r.text
            assert r.headers["content-type"].startswith("application/json")
        assert self.state() == before, "a refused request changed the store or the scheduler"
        new = self.service.store.list_audit(seq, limit=10**6)
        assert all(e.status != "ok" for e in new), [e.to_dict() for e in new]

    def close(self) -> None:
        self.client.close()
        self.service.close()


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path / "c.db", rate_limit_per_s=0)
    yield w
    w.close()


def raw_request(addr, head: bytes, body_parts=(), timeout: float = 10.0) -> tuple[int, dict, bytes]:
    """Send a hand-written HTTP/1.1 request; tolerate the server closing early; return the answer."""
    with socket.create_connection(addr, timeout=timeout) as s:
        try:
            s.sendall(head)
            for part in body_parts:
                s.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass                                  # the server answered and closed before the end
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
                if b"\r\n\r\n" in data:
                    head_part, _, rest = data.partition(b"\r\n\r\n")
                    m = re.search(rb"content-length:\s*(\d+)", head_part, re.I)
                    if m and len(rest) >= int(m.group(1)):
                        break
        except ConnectionResetError:
            pass
    head_part, _, rest = data.partition(b"\r\n\r\n")
    lines = head_part.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    return status, headers, rest


# ----- body size ---------------------------------------------------------------------------------------------
def test_a_1_mib_body_is_413_on_every_write_route(world):
    big = json.dumps({"src": CITIES[0], "dst": CITIES[1], "max_latency_ns": 10**8, "bandwidth_bps": 10**6,
                      "id": "x" * MIB}).encode()
    jh = {"Content-Type": "application/json"}
    with world.refused(413) as answers:
        answers.append(world.client.post("/v1/reservations", content=big, headers={**world.h1, **jh}))
        answers.append(world.client.post("/v1/tenants", content=big, headers={**AH, **jh}))
        answers.append(world.client.patch("/v1/tenants/1", content=big, headers={**AH, **jh}))
        answers.append(world.client.request("GET", "/v1/reservations", content=big, headers={**world.h1, **jh}))
        # no token either: the size is refused before anything is parsed
        answers.append(world.client.post("/v1/reservations", content=big, headers=jh))
    assert all(r.json()["error"] == "too_large" for r in answers)


def test_a_chunked_1_mib_body_without_content_length_is_413_over_real_http(world):
    chunk = b"[" * 65536
    head = (b"POST /v1/reservations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nAuthorization: Bearer " + world.tokens[1].encode() + b"\r\n\r\n")
    parts = [b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(MIB // len(chunk))] + [b"0\r\n\r\n"]
    before, seq = world.state(), world.last_seq()
    with serve(world.app, log_level="warning") as addr:
        status, headers, body = raw_request(addr, head, parts)
        assert status == 413 and json.loads(body)["error"] == "too_large"
        assert "content-length" not in head.decode().lower()
        # a body just under the limit, chunked, is read and judged on its content
        ok = json.dumps({"src": CITIES[1], "dst": CITIES[3], "max_latency_ns": 10**8, "bandwidth_bps": 10**6,
                         "id": "chunked-ok"}).encode()
        status, _, body = raw_request(addr, head, [b"%x\r\n%s\r\n" % (len(ok), ok), b"0\r\n\r\n"])
        assert status == 201, body
        # a Content-Length that is not a number, and one that is negative
        for bad in (b"abc", b"-5"):
            status, _, body = raw_request(addr, b"POST /v1/tenants HTTP/1.1\r\nHost: x\r\nContent-Length: "
                                          + bad + b"\r\nAuthorization: Bearer " + ADMIN.encode() + b"\r\n\r\n{}")
            assert 400 <= status < 500
        # and the server is still healthy
        status, _, body = raw_request(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status == 200 and json.loads(body)["status"] == "ok"
    world.service.release(auth.Principal.admin(), "chunked-ok")
    assert world.state() == before
    assert [e.action for e in world.service.store.list_audit(seq) if e.status == "ok"] == ["reserve", "release"]


# ----- rate limiting -------------------------------------------------------------------------------------------
@pytest.fixture
def limited(tmp_path):
    """burst 3, 1 request/s, on a clock the test moves by hand."""
    w = World(tmp_path / "c.db", rate_limit_per_s=0)          # set-up requests are not limited
    w.app = create_app(w.service, rate_limit_per_s=1.0, rate_limit_burst=3)
    w.client = TestClient(w.app, raise_server_exceptions=False)
    now = [1000.0]
    w.app.state.limiter.clock = lambda: now[0]
    w.now = now
    yield w
    w.close()


def test_rate_limit_is_per_token_with_429_and_retry_after(limited):
    w = limited
    assert [w.client.get("/v1/reservations", headers=w.h1).status_code for _ in range(3)] == [200] * 3
    with w.refused(429) as answers:
        answers += [w.client.get("/v1/reservations", headers=w.h1) for _ in range(3)]
        answers.append(w.client.post("/v1/reservations", headers=w.h1,
                                     json={"src": CITIES[0], "dst": CITIES[1], "max_latency_ns": 10**8,
                                           "bandwidth_bps": 10**6}))
        answers.append(w.client.delete("/v1/reservations/seed-1", headers=w.h1))
    assert answers[0].json()["error"] == "rate_limited" and int(answers[0].headers["retry-after"]) >= 1
    # the other tenant and the admin have their own buckets
    assert [w.client.get("/v1/reservations", headers=w.h2).status_code for _ in range(3)] == [200] * 3
    assert w.client.get("/v1/tenants", headers=AH).status_code == 200
    # one second later, exactly one more request
    w.now[0] += 1.0
    assert [w.client.get("/v1/reservations", headers=w.h1).status_code for _ in range(2)] == [200, 429]


def test_malformed_requests_and_token_guessing_are_rate_limited_too(limited):
    w = limited
    jh = {**w.h1, "Content-Type": "application/json"}
    seq = w.last_seq()
    codes = [w.client.post("/v1/reservations", content=b"{nope", headers=jh).status_code for _ in range(6)]
    assert codes == [400] * 3 + [429] * 3
    codes = [w.client.get("/v1/events?since=-1", headers=w.h2).status_code for _ in range(5)]
    assert codes == [422] * 3 + [429] * 2
    assert len(w.service.store.list_audit(seq)) == 3      # only the requests let through were audited
    # guesses come from one address: they share one bucket, which a real token does not use
    guesses = [w.client.get("/v1/tenants", headers={"Authorization": f"Bearer guess-{i}"}).status_code
               for i in range(5)]
    assert guesses == [401] * 3 + [429] * 2
    assert w.client.get("/v1/tenants", headers=AH).status_code == 200


# ----- malformed JSON -------------------------------------------------------------------------------------------
DEEP = 30_000                                   # well past Python's recursion limit, under the 64 KiB limit


@pytest.mark.parametrize("body", [
    b"[" * DEEP + b"]" * DEEP,
    b"[" * DEEP,
    b'{"a":' * (DEEP // 5) + b"1" + b"}" * (DEEP // 5),
    b'{"src":"Z","dst":"Y","max_latency_ns":1,"match":' + b'{"ip_src":' * 5000 + b"1" + b"}" * 5001,
    b'{"src":' + b"[" * DEEP,
], ids=["deep-list", "unclosed", "deep-object", "deep-in-match", "deep-in-field"])
def test_deeply_nested_json_is_a_clean_4xx(world, body):
    with world.refused(400, 422) as answers:
        for path, h in (("/v1/reservations", world.h1), ("/v1/tenants", AH)):
            answers.append(world.client.post(path, content=body, headers={**h, "Content-Type": "application/json"}))


NUMBERS = [b"1180591620717411303424", b"-1180591620717411303424", b"1" * 5000, b"NaN", b"Infinity", b"-Infinity",
           b"1e400", b"-0.0", b"1.5", b"true", b'"100"', b"null", b"[1]", b"{}"]


@pytest.mark.parametrize("number", NUMBERS, ids=[n[:12].decode() for n in NUMBERS])
def test_huge_and_non_finite_numbers_are_refused_everywhere(world, number):
    base = {"src": CITIES[0], "dst": CITIES[1], "max_latency_ns": 10**8, "bandwidth_bps": 10**6}
    with world.refused(400, 422) as answers:
        for field in ("max_latency_ns", "bandwidth_bps", "frame_bytes", "period_ns", "max_jitter_ns", "tenant"):
            if number == b"null" and field != "max_latency_ns":
                continue                          # null means "not given" for the optional fields
            body = json.dumps({**base, field: "@"}).replace('"@"', number.decode()).encode()
            answers.append(world.client.post("/v1/reservations", content=body,
                                             headers={**AH, "Content-Type": "application/json"}))
        for field in ("quota_bps", "max_reservations"):
            if number == b"null":
                continue
            body = b'{"%s":%s}' % (field.encode(), number)
            answers.append(world.client.patch("/v1/tenants/1", content=body,
                                              headers={**AH, "Content-Type": "application/json"}))
        if number == b"-0.0":
            return                                # a query string "-0.0" is the integer 0: fine
        q = number.decode()
        answers.append(world.client.get(f"/v1/events?since={q}", headers=AH))
        answers.append(world.client.get(f"/v1/reservations?tenant={q}", headers=AH))
        answers.append(world.client.get("/v1/paths", headers=world.h1,
                                        params={"src": CITIES[0], "dst": CITIES[1], "max_latency_ns": q}))
        if number != b"null":
            answers.append(world.client.get(f"/v1/tenants/{q}", headers=AH))


def test_wrong_content_types_are_415_and_json_variants_are_read(world):
    good = json.dumps({"name": "gamma"}).encode()
    with world.refused(415) as answers:
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                      "application/xml", "application/jsonp", None):
            h = {**AH, **({"Content-Type": ctype} if ctype else {})}
            answers.append(world.client.post("/v1/tenants", content=good, headers=h))
        answers.append(world.client.post("/v1/tenants", data={"name": "gamma"}, headers=AH))
    assert {r.json()["error"] for r in answers} == {"unsupported_media_type"}
    for i, ctype in enumerate(("application/json", "application/json; charset=utf-8", "application/merge-patch+json")):
        r = world.client.post("/v1/tenants", content=json.dumps({"name": f"t{i}"}).encode(),
                              headers={**AH, "Content-Type": ctype})
        assert r.status_code == 201, (ctype, r.text)
    with world.refused(400, 422) as answers:          # bad UTF-8, a lone surrogate, no body at all
        answers.append(world.client.post("/v1/tenants", content=b'{"name":"\xff\xfe"}',
                                         headers={**AH, "Content-Type": "application/json"}))
        answers.append(world.client.post("/v1/tenants", content=b'{"name":"a\\ud800"}',
                                         headers={**AH, "Content-Type": "application/json"}))
        answers.append(world.client.post("/v1/tenants", headers=AH))


# ----- names, ids and strings ------------------------------------------------------------------------------------
def test_unicode_node_names_are_reserved_listed_and_audited_verbatim(world):
    r = world.client.post("/v1/reservations", headers=world.h1,
                          json={"src": "北京", "dst": "القاهرة", "bandwidth_bps": 10**6, "max_latency_ns": 10**8,
                                "id": "uni"})
    assert r.status_code == 201, r.text
    assert r.json()["path"] == CITIES[1:]
    assert world.client.get("/v1/reservations/uni", headers=world.h1).json()["path"] == CITIES[1:]
    sched = world.client.get("/v1/schedule", headers=AH).json()
    assert next(x for x in sched["reservations"] if x["id"] == "uni")["src"] == "北京"
    audit = [e for e in world.service.store.list_audit(0) if e.action == "reserve" and e.status == "ok"]
    assert audit[-1].request["dst"] == "القاهرة"
    with world.refused(409, 422) as answers:
        for name in ("Zu\u0308rich",             # the same city, decomposed: not the node
                     "北京\u202e", "北京\x00", "\ufeff北京", "ZÜRICH", "Zürich ", "🚀", "\u200b"):
            answers.append(world.client.post("/v1/reservations", headers=world.h1,
                                             json={"src": name, "dst": "Kraków", "bandwidth_bps": 10**6,
                                                   "max_latency_ns": 10**8}))
            answers.append(world.client.get("/v1/paths", headers=world.h1,
                                            params={"src": name, "dst": "Kraków", "max_latency_ns": 10**8}))
        answers.append(world.client.post("/v1/tenants", headers=AH, json={"name": "bad\u202ename"}))
        answers.append(world.client.post("/v1/tenants", headers=AH, json={"name": "x" * 65}))


TRAVERSALS = ["..", "%2e%2e", "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fv1%2ftenants", "seed-1%00", "seed-1%2F",
              "seed-1%20", "%c0%ae%c0%ae", "....//....//", "seed-1;DROP", "C:%5Cwindows", "~root", "x" * 300]


def test_path_traversal_looking_ids_are_404_or_422_and_touch_nothing(world):
    with world.refused(404, 405, 422) as answers:
        for rid in TRAVERSALS:
            for h in (world.h1, world.h2, AH):
                answers.append(world.client.get(f"/v1/reservations/{rid}", headers=h))
                answers.append(world.client.delete(f"/v1/reservations/{rid}", headers=h))
            answers.append(world.client.get(f"/v1/tenants/{rid}", headers=AH))
        for rid in ("../seed-1", "seed-1/..", "a b", "seed\x001", "é", "x" * 65, ""):
            answers.append(world.client.post("/v1/reservations", headers=world.h1,
                                             json={"src": CITIES[0], "dst": CITIES[1], "bandwidth_bps": 10**6,
                                                   "max_latency_ns": 10**8, "id": rid}))
    # the seeds are still there, each visible to its owner only
    assert world.client.get("/v1/reservations/seed-1", headers=world.h1).status_code == 200
    assert world.client.get("/v1/reservations/seed-1", headers=world.h2).status_code == 404


SQLISH = ["Robert'); DROP TABLE tenants;--", "' OR '1'='1", "\"; DELETE FROM reservations; --",
          "1; UPDATE settings SET value='x'", "x' UNION SELECT token_hash FROM tenants--"]


def test_sql_looking_strings_are_stored_verbatim_and_run_nothing(world):
    tables = world.service.store._query("SELECT name FROM sqlite_master ORDER BY name")
    for i, name in enumerate(SQLISH):
        r = world.client.post("/v1/tenants", headers=AH, json={"name": name, "quota_bps": 10**9})
        assert r.status_code == 201, r.text
        assert world.client.get(f"/v1/tenants/{r.json()['id']}", headers=AH).json()["name"] == name
    assert [s.tenant.name for s in world.service.store.load_tenants()][2:] == SQLISH
    with world.refused(404, 409, 422) as answers:
        for s in SQLISH:
            answers.append(world.client.post("/v1/reservations", headers=world.h1,
                                             json={"src": s, "dst": CITIES[1], "bandwidth_bps": 10**6,
                                                   "max_latency_ns": 10**8}))
            answers.append(world.client.get("/v1/reservations/" + s.replace("/", "_"), headers=world.h1))
            answers.append(world.client.get("/v1/reservations", params={"tenant": s}, headers=AH))
            answers.append(world.client.get("/v1/events", params={"since": s}, headers=AH))
    refused = [e.request for e in world.service.store.list_audit(0) if e.action == "reserve" and e.status != "ok"]
    assert [q["src"] for q in refused[-len(SQLISH):]] == SQLISH
    assert world.service.store._query("SELECT name FROM sqlite_master ORDER BY name") == tables
    assert len(world.service.store.reservation_rows()) == 2


# ----- secrets ------------------------------------------------------------------------------------------------------
def _windows(token: str, width: int = 12) -> list[str]:
    return [token[i:i + width] for i in range(len(token) - width + 1)]


def test_tokens_never_reach_logs_the_database_or_answers(world, caplog, monkeypatch):
    """A DEBUG-level run over real HTTP (uvicorn's loggers included), with an internal error on the way."""
    caplog.set_level(logging.DEBUG)
    secrets = [ADMIN, *world.tokens.values()]
    answers: list[bytes] = []
    bodies: list[bytes] = []
    with serve(world.app, log_level="debug", log_config=None, access_log=True) as addr:
        def call(method: str, path: str, token: str | None, body: bytes = b"") -> int:
            head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".encode()
            if token is not None:
                head += b"Authorization: Bearer " + token.encode("utf-8", "surrogateescape") + b"\r\n"
            if body:
                head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
            status, headers, data = raw_request(addr, head + b"\r\n" + body)
            bodies.append(data)
            answers.append(data + json.dumps(headers).encode())
            return status

        assert call("POST", "/v1/tenants", ADMIN, b'{"name":"gamma"}') == 201
        new_token = json.loads(bodies.pop())["token"]      # the one answer that must carry a token
        answers.pop()
        secrets.append(new_token)
        for token in secrets:
            call("GET", "/v1/reservations", token)
            call("POST", "/v1/reservations", token, json.dumps({"src": CITIES[0], "dst": CITIES[3],
                 "bandwidth_bps": 10**6, "max_latency_ns": 10**8, "token": token}).encode())
            call("POST", "/v1/reservations", token, b"{broken " + token.encode())
            call("GET", "/v1/tenants", token[:-1] + ("A" if token[-1] != "A" else "B"))    # near miss
            call("GET", "/v1/tenants", token + " " + token)
        monkeypatch.setattr(world.service, "topology_dict", lambda: 1 / 0)
        assert call("GET", "/v1/topology", ADMIN) == 500                               # logged with a traceback
    assert "ZeroDivisionError" in caplog.text and "uvicorn" in " ".join(r.name for r in caplog.records)
    db_bytes = b"".join(p.read_bytes() for p in world.db.parent.glob(world.db.name + "*"))
    audit = json.dumps(world.service.store._query("SELECT * FROM audit"))
    for token in secrets:
        for piece in _windows(token):
            assert piece not in caplog.text, "a token reached the logs"
            assert piece not in audit, "a token reached the audit table"
            assert piece.encode() not in db_bytes, "a token reached the database file"
            assert not any(piece.encode() in a for a in answers), "a token was echoed in an answer"


def test_token_comparison_is_constant_time(monkeypatch):
    """hmac.compare_digest on every candidate hash, no early exit, whichever token (if any) matches."""
    for fn in (auth.find_principal, auth.verify_token):
        src = inspect.getsource(fn)
        assert "hmac.compare_digest" in src
        assert not re.search(r"(h|hash\w*|token\w*)\s*==\s*\w*hash", src), "a hash compared with =="
    calls: list[tuple[str, str]] = []
    real = auth.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    tokens = {tid: auth.generate_token() for tid in range(1, 9)}
    hashes = [(tid, auth.hash_token(t)) for tid, t in tokens.items()]
    admin = auth.generate_token()
    for token, expect in [(admin, auth.Principal.admin()), (tokens[1], auth.Principal.of_tenant(1)),
                          (tokens[8], auth.Principal.of_tenant(8)), ("nobody-" + "x" * 40, None)]:
        calls.clear()
        assert auth.find_principal(token, auth.hash_token(admin), hashes) == expect
        assert len(calls) == 1 + len(hashes)            # admin + every tenant, match or not
        assert {b for _, b in calls} == {auth.hash_token(admin), *(h for _, h in hashes)}
    calls.clear()
    assert auth.verify_token(admin, auth.hash_token(admin)) and len(calls) == 1
    # tokens are 32 random bytes: nothing to brute-force behind the fast hash
    assert len(auth.generate_token()) >= 43


def test_auth_header_oddities_are_401_not_500(world):
    with world.refused(401) as answers:
        for value in (b"Bearer \xe9\xe9\xe9", b"Bearer", b"Bearer  ", b"bearer" + b" " * 3 + b"x",
                      b"Basic " + ADMIN.encode(), ADMIN.encode(), b"Bearer " + b"x" * 60_000,
                      b"Bearer " + ADMIN.encode() + b"\x00", b"Bearer " + ADMIN[:-1].encode()):
            answers.append(world.client.get("/v1/reservations", headers={"Authorization": value}))
