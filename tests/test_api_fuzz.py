"""Fuzz the REST API from its own OpenAPI spec (schemathesis), as the admin and as a tenant.

Every operation of ``/openapi.json`` gets a bounded number of generated requests (valid and
schema-violating ones), sent in-process to the real app (``controller.api.create_app`` over a
``ControllerService`` with a temporary SQLite store). For every answer:

- schemathesis' checks: never a 5xx, the status is documented, the body matches the declared
  response schema, content type and headers conform, schema-violating input is rejected, and
  auth is not ignored (the request is replayed without a token and must get a 401);
- every error is a JSON object ``{"error": str, "detail": str, ...}``;
- a rejected request (any 4xx) and any GET leave the controller's state exactly as it was: the
  tenant and reservation rows, the settings, the scheduler's Schedule JSON and the tenants' usage
  (the audit log may only grow, by entries whose status is not ``ok``).

``positive_data_acceptance`` is the one check left out: the service validates some things the
schema cannot say (printable tenant names, src != dst, node names that exist), so a
schema-valid request may rightly get a 422 or 409. The examples run are counted and the last
test checks every operation was exercised with both tokens.

Sized for CI: ``FUZZ_EXAMPLES`` examples per operation and token (env ``DETNET_FUZZ_EXAMPLES``
overrides it for a longer local run).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter

import pytest

import schemathesis  # noqa: E402  (in the test extras of setup.cfg)
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from controller.api import create_app  # noqa: E402
from controller.auth import Principal  # noqa: E402
from controller.service import ControllerService  # noqa: E402
from apihelpers import beijing_line  # noqa: E402

ADMIN = "fuzz-admin-token-0123456789abcdefghij"
FUZZ_EXAMPLES = int(os.environ.get("DETNET_FUZZ_EXAMPLES", "100"))
HYPOTHESIS = settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))

#: (token kind, operation label) -> examples run; (kind, label, status) -> answers seen
EXAMPLES: Counter = Counter()
STATUSES: Counter = Counter()


def snapshot(service: ControllerService) -> dict:
    """Everything a request could change except the audit log (which is checked separately)."""
    store = service.store
    return {
        "reservations": store.reservation_rows(),
        "tenants": [(s.tenant.id, s.tenant.name, s.tenant.quota_bps, s.tenant.max_reservations, s.token_hash)
                    for s in store.load_tenants()],
        "settings": store._query("SELECT key, value FROM settings ORDER BY key"),
        "schedule": json.dumps(service.schedule_dict(), sort_keys=True),
        "slots": service.scheduler.state_fingerprint(),
        "usage": sorted((t.id, service.tenants.usage(t.id).bps, service.tenants.usage(t.id).reservations)
                        for t in service.tenants),
        "unrestored": sorted(r.id for r in service.unrestored()),
    }


def check_answer(service: ControllerService, case, response, before: dict, audit_seq: int) -> None:
    """The project's own checks on one answer (see the module docstring)."""
    status = response.status_code
    assert status < 500, f"{case.method} {case.path}: {status} {response.text[:300]}"
    if status >= 400:
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(body.get("detail"), str), \
            f"{case.method} {case.path}: error body {response.text[:300]}"
        ctype = response.headers.get("content-type") or [""]     # schemathesis keeps header lists
        assert (ctype[0] if isinstance(ctype, list) else ctype).startswith("application/json")
    if status >= 400 or case.method.upper() == "GET":
        after = snapshot(service)
        changed = [k for k in before if before[k] != after[k]]
        assert not changed, f"{case.method} {case.path} answered {status} but changed {changed}"
        new = service.store.list_audit(audit_seq, limit=100_000)
        assert all(e.status != "ok" for e in new), \
            f"{case.method} {case.path} answered {status} but audited success: {[e.to_dict() for e in new]}"


def _world(name: str):
    """A service with one tenant and one reservation, its app, and the tenant's token.

    Built at import time: schemathesis parametrizes the tests from the schema when pytest collects
    them (its lazy ``from_fixture`` loader does not work with this pytest).
    """
    db = os.path.join(_TMP.name, f"{name}.db")
    service = ControllerService(beijing_line("fuzz"), db_path=db, admin_token=ADMIN, store_synchronous="OFF")
    tenant, token = service.create_tenant("fuzz-tenant", quota_bps=None, max_reservations=None)
    service.create_tenant("other-tenant", quota_bps=10**8, max_reservations=3)      # id 2, tight quotas
    res = service.reserve(Principal.of_tenant(tenant.id),
                          {"src": "Beijing", "dst": "Jinan", "bandwidth_bps": 10**6, "max_latency_ns": 10**8,
                           "id": "seed-1"})
    assert getattr(res, "id", None) == "seed-1", res
    # the rate limiter is tested in test_api_hostile.py; here it would only turn answers into 429s
    app = create_app(service, rate_limit_per_s=0)
    return service, app, token


def _schema(app, token: str):
    config = schemathesis.Config.from_dict({"auth": {"openapi": {"HTTPBearer": {"bearer": token}}}})
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


_TMP = tempfile.TemporaryDirectory(prefix="detnet-fuzz-")
ADMIN_SERVICE, _admin_app, _ = _world("admin")
TENANT_SERVICE, _tenant_app, TENANT_TOKEN = _world("tenant")
SEQ_SERVICE, _seq_app, SEQ_TENANT_TOKEN = _world("sequences")   # its own: the admin fuzz patches quotas

admin_schema = _schema(_admin_app, ADMIN)
tenant_schema = _schema(_tenant_app, TENANT_TOKEN)


@pytest.fixture(scope="module", autouse=True)
def _close_services():
    yield
    for service in (ADMIN_SERVICE, TENANT_SERVICE, SEQ_SERVICE):
        service.close()
    _TMP.cleanup()


def _run(kind: str, service: ControllerService, case) -> None:
    before = snapshot(service)
    audit_seq = service.store.list_audit(0, limit=10**9)[-1].seq
    response = case.call()
    EXAMPLES[(kind, f"{case.operation.method.upper()} {case.operation.path}")] += 1
    STATUSES[(kind, response.status_code)] += 1
    check_answer(service, case, response, before, audit_seq)
    case.validate_response(response, excluded_checks=[positive_data_acceptance])


@admin_schema.parametrize()
@HYPOTHESIS
def test_fuzz_as_admin(case):
    _run("admin", ADMIN_SERVICE, case)


@tenant_schema.parametrize()
@HYPOTHESIS
def test_fuzz_as_tenant(case):
    _run("tenant", TENANT_SERVICE, case)


# ----- semantic fuzz: requests that reach admission (schemathesis rarely names a real city) -------------
NODES = ["Beijing", "Tianjin", "Jinan"]
_name = st.one_of(st.sampled_from(NODES), st.text(min_size=0, max_size=12))
_big = st.one_of(st.integers(-2, 10**4), st.integers(10**3, 10**10), st.sampled_from([2**63, 2**70, -(2**63)]))
_plausible = st.permutations(NODES).flatmap(lambda p: st.fixed_dictionaries(
    {"src": st.just(p[0]), "dst": st.just(p[1]), "tenant": st.sampled_from([1, 1, 1, 2]),
     "max_latency_ns": st.integers(10**6, 10**9), "bandwidth_bps": st.integers(10**4, 4 * 10**8)},
    optional={"id": st.from_regex(r"[a-c]", fullmatch=True), "max_jitter_ns": st.integers(1, 10**7)}))
_wild = st.fixed_dictionaries(
    {"src": _name, "dst": _name},
    optional={"max_latency_ns": _big, "bandwidth_bps": _big, "frame_bytes": _big, "period_ns": _big,
              "max_jitter_ns": _big, "id": st.from_regex(r"[A-Za-z0-9._-]{1,8}", fullmatch=True),
              "tenant": st.one_of(st.integers(0, 5), st.none(), st.text(max_size=3)),
              "paths": st.lists(st.lists(st.sampled_from(NODES), min_size=1, max_size=4), max_size=3),
              "match": st.fixed_dictionaries({}, optional={"udp_dst": st.integers(-1, 70000),
                                                           "ip_dst": st.sampled_from(["10.0.0.1", "1.2.3.4/33", ""])})})
_reservation = st.one_of(_plausible, _plausible, _wild)     # two thirds plausible
_op = st.one_of(st.tuples(st.just("reserve"), st.sampled_from(["admin", "tenant"]), _reservation),
                st.tuples(st.just("release"), st.sampled_from(["admin", "tenant"]),
                          st.sampled_from(["seed-1", "a", "b", "c", "0", "../seed-1", "seed-1%00"])),
                st.tuples(st.just("paths"), st.sampled_from(["admin", "tenant"]), _reservation))


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
@settings(max_examples=max(10, FUZZ_EXAMPLES // 2), deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(ops=st.lists(_op, min_size=1, max_size=8))
def test_admission_sequences_keep_store_and_scheduler_in_step(ops):
    """Random reserve / release / what-if sequences with real and bogus city names and extreme numbers."""
    from starlette.testclient import TestClient

    service = SEQ_SERVICE
    tokens = {"admin": ADMIN, "tenant": SEQ_TENANT_TOKEN}
    with TestClient(_seq_app, raise_server_exceptions=False) as client:
        for kind, who, arg in ops:
            before, seq = snapshot(service), service.store.list_audit(0, limit=10**9)[-1].seq
            headers = {"Authorization": f"Bearer {tokens[who]}"}
            if kind == "reserve":
                r = client.post("/v1/reservations", json=arg, headers=headers)
            elif kind == "release":
                r = client.delete(f"/v1/reservations/{arg}", headers=headers)
            else:
                r = client.get("/v1/paths", params={k: v for k, v in arg.items() if not isinstance(v, (dict, list))},
                               headers=headers)
            EXAMPLES[("sequence", kind)] += 1
            STATUSES[("sequence", r.status_code)] += 1
            assert r.status_code < 500, r.text
            if r.status_code >= 400 or kind == "paths":
                assert snapshot(service) == before, f"{kind} {arg!r}: {r.status_code} changed the state"
                assert all(e.status != "ok" for e in service.store.list_audit(seq, limit=10**6))
            if r.status_code >= 400:
                body = r.json()
                assert isinstance(body["error"], str) and isinstance(body["detail"], str)
            # the store and the scheduler always agree
            stored = {rid: json.loads(js) for rid, _, js in service.store.reservation_rows()}
            live = {rid: res.to_dict() for rid, res in service.scheduler.reservations.items()}
            assert stored == live


def test_fuzz_covered_every_operation_with_both_tokens():
    """Runs last (file order): each operation got examples with each token; prints the figures."""
    if not EXAMPLES:
        pytest.fail("the fuzz tests above did not run (run the whole file)")
    ops = {f"{method.upper()} {path}" for path, item in admin_schema.raw_schema["paths"].items() for method in item}
    for kind in ("admin", "tenant"):
        missing = sorted(op for op in ops if EXAMPLES[(kind, op)] == 0)
        assert not missing, f"{kind}: no examples for {missing}"
    spec = sum(n for (kind, _), n in EXAMPLES.items() if kind in ("admin", "tenant"))
    seq = sum(n for (kind, _), n in EXAMPLES.items() if kind == "sequence")
    by_status = Counter()
    for (_, status), n in STATUSES.items():
        by_status[status] += n
    seq_status = sorted((s, n) for (k, s), n in STATUSES.items() if k == "sequence")
    print(f"\nfuzz: {spec} spec-generated requests over {len(ops)} operations x 2 tokens, "
          f"{seq} admission-sequence requests {seq_status}; all statuses {sorted(by_status.items())}")
    assert all(s < 500 for (_, s) in STATUSES)
    assert STATUSES[("sequence", 201)] > 0, "the admission sequences never admitted anything"
