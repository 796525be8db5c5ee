"""Idempotency-Key on POST /v1/reservations (controller.idempotency) and the client that retries
and follows a cluster's 307 (tools.client): no emulation, a temporary SQLite file or a throw-away
etcd, httpx MockTransport for the client's redirects and retries."""

from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import pytest
from fastapi.testclient import TestClient

from controller import idempotency
from controller.api import create_app
from controller.store import SCHEMA_VERSION, Store
from test_api import ADMIN, AH, make_service
from tools.client import MAX_RETRY_WAIT, ApiClient, ApiError, BadRedirect, ConnectionFailed

BODY = {"src": "A", "dst": "C", "bandwidth_bps": 10**9, "max_latency_ns": 5_000_000, "match": {"udp_dst": 5000}}


def api_of(service) -> TestClient:
    return TestClient(create_app(service, rate_limit_per_s=0), raise_server_exceptions=False)


def tenant(api: TestClient, name: str, **quota) -> dict[str, str]:
    r = api.post("/v1/tenants", json={"name": name, **quota}, headers=AH)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def post(api: TestClient, headers: dict, key: str | None, body: dict = BODY):
    h = dict(headers) if key is None else {**headers, "Idempotency-Key": key}
    return api.post("/v1/reservations", json=body, headers=h)


def reserve_actions(api: TestClient) -> list[str]:
    return [e["status"] for e in api.get("/v1/events", headers=AH).json()["events"] if e["action"] == "reserve"]


@pytest.fixture
def env(tmp_path):
    service = make_service(tmp_path / "db.sqlite")
    api = api_of(service)
    yield service, api, tenant(api, "alpha")
    service.close()


# ----- server, SQLite ----------------------------------------------------------------------------------
def test_a_repeat_answers_the_first_answer_and_admits_nothing(env):
    service, api, th = env
    first = post(api, th, "order-1")
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    again = post(api, th, "order-1", dict(reversed(list(BODY.items()))))     # key order does not count
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json() and again.headers["location"] == first.headers["location"]
    assert service.store.reservation_count() == 1 and reserve_actions(api) == ["ok"]
    # the recorded answer is the API's answer: the same as reading the reservation back
    assert api.get(first.headers["location"], headers=th).json() == first.json()


def test_the_same_key_with_another_body_is_refused(env):
    service, api, th = env
    assert post(api, th, "order-1").status_code == 201
    r = post(api, th, "order-1", {**BODY, "bandwidth_bps": 2 * 10**9})
    assert r.status_code == 422
    assert r.json()["error"] == "idempotency_key_reused" and r.json()["field"] == "Idempotency-Key"
    assert "\n" not in r.json()["detail"]
    assert service.store.reservation_count() == 1


def test_keys_are_scoped_per_principal(env):
    service, api, th = env
    other = tenant(api, "beta")
    a = post(api, th, "same-key")
    b = post(api, other, "same-key", {**BODY, "bandwidth_bps": 2 * 10**9})     # another body: no collision
    admin = post(api, AH, "same-key", {**BODY, "tenant": 1, "match": {"udp_dst": 6000}})
    assert [x.status_code for x in (a, b, admin)] == [201, 201, 201], (a.text, b.text, admin.text)
    assert all("idempotent-replayed" not in x.headers for x in (a, b, admin))
    assert service.store.reservation_count() == 3


def test_a_restarted_controller_replays(tmp_path):
    service = make_service(tmp_path / "db.sqlite")
    api = api_of(service)
    th = tenant(api, "alpha")
    first = post(api, th, "survives")
    assert first.status_code == 201
    service.close()
    service = make_service(tmp_path / "db.sqlite")
    try:
        again = post(api_of(service), th, "survives")
        assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
        assert again.content == first.content                  # byte for byte, key order too
        assert again.json()["id"] == first.json()["id"] and service.store.reservation_count() == 1
    finally:
        service.close()


@pytest.mark.parametrize("key", [b"", b"x" * 201, "caf\xe9".encode("latin-1"), b"tab\there"])
def test_a_bad_key_is_422_naming_the_header(env, key):
    service, api, th = env
    r = api.post("/v1/reservations", json=BODY, headers={**th, "Idempotency-Key": key})
    assert r.status_code == 422 and r.json()["field"] == "Idempotency-Key", r.text
    assert r.json()["error"] == "invalid" and "\n" not in r.json()["detail"]
    assert service.store.reservation_count() == 0
    assert post(api, th, "x" * 200).status_code == 201          # the longest allowed


def test_a_refusal_is_not_recorded_and_the_key_stays_usable(env):
    service, api, _ = env
    th = tenant(api, "small", max_reservations=1)
    held = post(api, th, None, {**BODY, "match": {"udp_dst": 7000}})
    assert held.status_code == 201
    refused = post(api, th, "later")
    assert refused.status_code == 409 and "idempotent-replayed" not in refused.headers
    assert api.delete(held.headers["location"], headers=th).status_code == 204
    admitted = post(api, th, "later")                           # the same key, decided afresh
    assert admitted.status_code == 201 and "idempotent-replayed" not in admitted.headers


def test_a_keyed_batch_is_recorded_with_it_and_replayed(env):
    service, api, th = env
    members = [BODY, {**BODY, "match": {"udp_dst": 5001}}, {**BODY, "src": "Beijng"}]
    doc = {"atomic": False, "reservations": members}

    def send(d=doc, key="batch-1"):
        return api.post("/v1/reservations/batch", json=d, headers={**th, "Idempotency-Key": key})
    first = send()
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers, first.text
    assert len(first.json()["reservations"]) == 2 and first.json()["rejections"][0]["index"] == 2
    again = send()
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content and service.store.reservation_count() == 2
    assert service.store.load_idempotency("tenant:1", "batch-1")["body"] == first.json()   # durable, not only here
    assert send({**doc, "atomic": True}).json()["error"] == "idempotency_key_reused"
    assert post(api, th, "batch-1").status_code == 422             # the single POST is another request
    # an atomic refusal (409) is not recorded: the same key is decided afresh once it fits
    refused = send({"atomic": True, "reservations": [{**BODY, "match": {"udp_dst": 6000}}] * 1
                    + [{**BODY, "bandwidth_bps": 10**11, "match": {"udp_dst": 6001}}]}, key="batch-2")
    assert refused.status_code == 409
    assert service.store.reservation_count() == 2
    ok = send({"atomic": True, "reservations": [{**BODY, "match": {"udp_dst": 6000}}]}, key="batch-2")
    assert ok.status_code == 201 and "idempotent-replayed" not in ok.headers


def test_a_repeat_while_the_first_is_committing_waits_and_replays(env, monkeypatch):
    """The second request arrives between the first one's decision and its commit: it must not
    decide again (here it would be refused as overlapping traffic) but answer the first's answer."""
    service, api, th = env
    who = service.authenticate(th["Authorization"].split()[1])
    store = service.store
    real_wait, decided = store.wait, threading.Event()

    def wait(ticket):               # decided and queued, the service lock released, not committed yet
        decided.set()
        time.sleep(0.3)
        return real_wait(ticket)

    monkeypatch.setattr(store, "wait", wait)
    outcomes: dict[str, object] = {}

    def call(name: str) -> None:
        a = idempotency.Attempt(who.actor, "k", idempotency.fingerprint("t", BODY), lambda res: {"id": res.id})
        try:
            with idempotency.attempt(a):
                outcomes[name] = service.reserve(who, dict(BODY))
        except idempotency.Replayed as e:
            outcomes[name] = e

    first = threading.Thread(target=call, args=("first",))
    first.start()
    assert decided.wait(5)
    call("second")
    first.join(5)
    assert getattr(outcomes["first"], "id", None) == "r1", outcomes
    assert isinstance(outcomes["second"], idempotency.Replayed), outcomes
    assert outcomes["second"].body == {"id": "r1"} and store.reservation_count() == 1


def test_records_older_than_a_day_are_dropped_by_the_next_write(tmp_path):
    store = Store(tmp_path / "db.sqlite", synchronous="OFF")
    old = {"fingerprint": "f", "status": 201, "body": {}, "created": time.time() - idempotency.TTL_S - 60}
    with store.transaction() as tx:
        tx.save_idempotency("tenant:1", "old", old)
    assert store.load_idempotency("tenant:1", "old") == old
    with store.transaction() as tx:
        tx.save_idempotency("tenant:1", "new", {**old, "created": time.time()})
    assert store.load_idempotency("tenant:1", "old") is None
    assert store.load_idempotency("tenant:1", "new") is not None
    store.close()


def test_a_schema_2_database_gets_the_table(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    with store.transaction() as tx:
        tx._cur.execute("DROP TABLE idempotency")
        tx._cur.execute("UPDATE schema_version SET version = 2")
    store.close()
    store = Store(tmp_path / "db.sqlite")
    assert store.schema_version() == SCHEMA_VERSION == 3
    assert store.load_idempotency("admin", "k") is None
    store.close()


# ----- server, etcd --------------------------------------------------------------------------------------
def test_the_etcd_store_records_replays_and_restarts(monkeypatch):
    import controller.service
    from controller.etcdstore import EtcdStore
    from etcdhelpers import etcd_cluster

    prefix = f"/t-{uuid.uuid4().hex[:8]}/"
    with etcd_cluster(1) as cluster:
        monkeypatch.setattr(controller.service, "Store",
                            lambda url, synchronous="FULL": EtcdStore(url, prefix=prefix))
        from controller.service import ControllerService
        from test_api import square

        service = ControllerService(square(), db_path=cluster.url, admin_token=ADMIN)
        api = api_of(service)
        th = tenant(api, "alpha")
        first = post(api, th, "etcd-key")
        assert first.status_code == 201, first.text
        again = post(api, th, "etcd-key")
        assert again.headers.get("idempotent-replayed") == "true" and again.json() == first.json()
        assert post(api, th, "etcd-key", {**BODY, "bandwidth_bps": 2 * 10**9}).status_code == 422
        kvs = service.store.client.range(f"{prefix}idempotency/tenant:1/etcd-key")["kvs"]
        assert len(kvs) == 1 and int(kvs[0].get("lease", 0)) != 0     # etcd drops it when the lease ends
        ttl = service.store.client.call("lease/timetolive", {"ID": kvs[0]["lease"]})
        assert int(ttl["TTL"]) > idempotency.TTL_S
        service.close()
        service = ControllerService(square(), db_path=cluster.url, admin_token=ADMIN)
        try:
            replay = post(api_of(service), th, "etcd-key")
            assert replay.headers.get("idempotent-replayed") == "true" and replay.content == first.content
            assert service.store.reservation_count() == 1
        finally:
            service.close()


# ----- client: redirects ---------------------------------------------------------------------------------
def recorder(answer):
    """A MockTransport handler recording every request; ``answer(request, n)`` makes the response."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request, len(seen))
    return seen, handler


def test_a_307_to_another_origin_keeps_method_body_and_token():
    def answer(request, n):
        if request.url.host == "follower":
            return httpx.Response(307, headers={"Location": "http://leader:9090/v1/reservations?from=307"})
        return httpx.Response(201, json={"id": "r1"})
    seen, handler = recorder(answer)
    api = ApiClient("http://follower:8080", token="secret", transport=httpx.MockTransport(handler))
    assert api.reserve(BODY) == {"id": "r1"}
    assert [(r.method, r.url.host, r.url.port) for r in seen] == [("POST", "follower", 8080), ("POST", "leader", 9090)]
    assert seen[1].headers["authorization"] == "Bearer secret"
    assert json.loads(seen[1].content) == json.loads(seen[0].content) == BODY
    assert seen[1].headers["idempotency-key"] == seen[0].headers["idempotency-key"]
    assert seen[1].url.params["from"] == "307"


def test_three_redirects_are_followed_and_a_fourth_is_refused():
    def chain(limit):
        def answer(request, n):
            if n <= limit:
                return httpx.Response(308, headers={"Location": f"http://c{n}:80/v1/reservations/x"})
            return httpx.Response(204)
        return answer
    seen, handler = recorder(chain(3))
    ApiClient("http://c0:80", token="t", transport=httpx.MockTransport(handler)).delete("/v1/reservations/x")
    assert len(seen) == 4 and all(r.method == "DELETE" and r.headers["authorization"] == "Bearer t" for r in seen)
    seen, handler = recorder(chain(4))
    with pytest.raises(BadRedirect, match="more than 3") as e:
        ApiClient("http://c0:80", transport=httpx.MockTransport(handler)).delete("/v1/reservations/x")
    assert len(seen) == 4 and "\n" not in str(e.value) and isinstance(e.value, ConnectionFailed)


def test_a_redirect_to_a_non_http_url_is_refused_and_not_retried():
    seen, handler = recorder(lambda request, n: httpx.Response(307, headers={"Location": "ftp://leader/x"}))
    with pytest.raises(BadRedirect, match="not an http"):
        ApiClient("http://f:80", transport=httpx.MockTransport(handler)).reserve(BODY)
    assert len(seen) == 1


# ----- client: reserve retries -----------------------------------------------------------------------------
def test_reserve_retries_a_503_after_retry_after_with_the_same_key():
    def answer(request, n):
        if n == 1:
            return httpx.Response(503, headers={"Retry-After": "2"}, json={"error": "no_leader", "detail": "x"})
        if n == 2:
            return httpx.Response(503, headers={"Retry-After": "3600"}, json={"error": "no_leader", "detail": "x"})
        return httpx.Response(201, json={"id": "r1"})
    seen, handler = recorder(answer)
    api = ApiClient("http://c:80", transport=httpx.MockTransport(handler), retry_s=30)
    waits: list[float] = []
    api._sleep = waits.append
    assert api.reserve(BODY) == {"id": "r1"}
    assert waits == [2.0, MAX_RETRY_WAIT]                                   # honoured, then capped
    keys = {r.headers["idempotency-key"] for r in seen}
    assert len(seen) == 3 and len(keys) == 1 and uuid.UUID(keys.pop()).version == 4


def test_reserve_retries_a_connection_failure_and_a_given_key_is_sent():
    def answer(request, n):
        if n == 1:
            raise httpx.ConnectError("refused", request=request)
        if n == 2:
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(201, json={"id": "r1"})
    seen, handler = recorder(answer)
    api = ApiClient("http://c:80", transport=httpx.MockTransport(handler))
    api._sleep = lambda s: None
    assert api.reserve(BODY, idempotency_key="mine") == {"id": "r1"}
    assert [r.headers["idempotency-key"] for r in seen] == ["mine"] * 3


def test_no_retry_when_disabled_after_the_deadline_or_for_other_answers_and_calls():
    def always(status):
        return lambda request, n: httpx.Response(status, json={"error": "x", "detail": "d", "reason": "capacity"})
    seen, handler = recorder(always(503))
    with pytest.raises(ApiError) as e:
        ApiClient("http://c:80", transport=httpx.MockTransport(handler), retry_s=0).reserve(BODY)
    assert e.value.status == 503 and len(seen) == 1
    seen, handler = recorder(always(503))
    api = ApiClient("http://c:80", transport=httpx.MockTransport(handler), retry_s=0.3)
    t0 = time.monotonic()
    with pytest.raises(ApiError):
        api.reserve(BODY)
    assert 0.25 < time.monotonic() - t0 < 2 and len(seen) >= 2
    seen, handler = recorder(always(409))
    with pytest.raises(ApiError):
        ApiClient("http://c:80", transport=httpx.MockTransport(handler)).reserve(BODY)
    assert len(seen) == 1
    seen, handler = recorder(always(503))
    with pytest.raises(ApiError):
        ApiClient("http://c:80", transport=httpx.MockTransport(handler)).post("/v1/reservations", BODY)
    assert len(seen) == 1 and "idempotency-key" not in seen[0].headers


# ----- end to end: dnctl reserve --idempotency-key ------------------------------------------------------------
def test_dnctl_reserve_with_a_key_twice_books_once(tmp_path, monkeypatch, capsys):
    from apihelpers import dnctl_runner, live_controller
    from test_api import square

    with live_controller(square(), tmp_path / "db.sqlite", ADMIN) as url:
        run = dnctl_runner(monkeypatch, capsys, ADMIN, url)
        argv = ("reserve", "--tenant", "1", "--src", "A", "--dst", "C", "--bandwidth", "1G", "--max-latency", "5ms",
                "--match-udp-dst", "5000", "--idempotency-key", "cli-1", "--json")
        code, out, err = run("tenant", "create", "alpha")
        assert code == 0, err
        first, second = run(*argv), run(*argv)
        assert first[0] == second[0] == 0, (first, second)
        assert json.loads(first[1])["id"] == json.loads(second[1])["id"]
        code, out, err = run("reservations", "--json")
        assert code == 0 and len(json.loads(out)["reservations"]) == 1, out
        assert run(*argv[:-3], "--idempotency-key", "", "--json")[0] == 2


@pytest.mark.parametrize("store_kind", ["sqlite", "etcd"])
def test_a_deleted_tenants_keys_go_with_it(tmp_path, monkeypatch, store_kind):
    """Tenant ids are not reused while free ones remain, but should one be, the new tenant must
    not replay the old one's answers: the keys are deleted with the tenant."""
    if store_kind == "etcd":
        import controller.service
        from controller.etcdstore import EtcdStore
        from etcdhelpers import etcd_cluster
        from test_api import square
        from controller.service import ControllerService
        prefix = f"/t-{uuid.uuid4().hex[:8]}/"
        ctx = etcd_cluster(1)
        cluster = ctx.__enter__()
        monkeypatch.setattr(controller.service, "Store", lambda url, synchronous="FULL": EtcdStore(url, prefix=prefix))
        service = ControllerService(square(), db_path=cluster.url, admin_token=ADMIN)
    else:
        ctx, service = None, make_service(tmp_path / "db.sqlite")
    try:
        api = api_of(service)
        th = tenant(api, "alpha")
        other = tenant(api, "beta")
        assert post(api, th, "k").status_code == 201 and post(api, other, "k").status_code == 201
        assert service.store.load_idempotency("tenant:1", "k") is not None
        assert api.delete("/v1/tenants/1", headers=AH).status_code == 200
        assert service.store.load_idempotency("tenant:1", "k") is None
        assert service.store.load_idempotency("tenant:2", "k") is not None       # another tenant's stay
        assert service._desk._idempotency.recent.keys() == {("tenant:2", "k")}
    finally:
        service.close()
        if ctx is not None:
            ctx.__exit__(None, None, None)
