"""The controller's store on etcd: the same tenants, reservations, id ledger, audit log and settings
as ``controller.store.Store`` (SQLite), kept in an etcd cluster so several controllers share them.

Selected by ``etcd://HOST:PORT[,HOST:PORT...]`` (:func:`parse_etcd_url`); SQLite stays the default
for a single controller. Not wired into the launcher yet (docs/high-availability.md).

**Client: etcd's v3 JSON gRPC-gateway over HTTP, with httpx (already a dependency).** Why not a
library: ``etcd3`` (python-etcd3, gRPC) had its last release in 2020 and its generated protobuf
modules fail to import with protobuf >= 4 (kragniz/python-etcd3 #2000, #2709: still open);
``aetcd`` is asyncio-only, and the service's threads are synchronous. ``etcd3gw`` (OpenStack,
maintained, 2.7.0 in 2026) talks to the same gateway, but it takes one host and port (no failover
across the members of a cluster), brings requests, futurist and pbr, and its ``transaction`` takes
the gateway's raw JSON anyway, which is the part this module needs. What is left to write is small:
base64 keys, four endpoints (``kv/range``, ``kv/txn``, ``lease/grant|keepalive|revoke``) and trying
the next member when one does not answer.

**Layout** (under a prefix, ``/detnet/`` by default; values are JSON):
``tenants/<id>`` (zero-padded), ``reservations/<id>`` (the reservation's ``to_dict`` with its
exact per-hop slots and tx offsets; their order is etcd's ``create_revision``: the order first
admitted, kept when a row is replaced), ``reservation_ids/<id>`` (the ledger of every id ever
saved: a generated id is never reused), ``audit/<seq>`` (zero-padded, ``counters/audit`` the last
one), ``settings/<key>``, ``idempotency/<scope>/<key>`` (the answer of a request sent with an
``Idempotency-Key``, written in the Txn of the reservation it admitted, on a lease of 26 h shared
by the records of one hour: etcd drops them itself, nothing to prune), ``schema`` and ``state``.

**One writer's view at a time.** Every write is one etcd Txn whose compare says the ``state`` key
has not been written since this store last read or wrote it (``mod_revision`` equal), and which
writes ``state`` again. A controller that decided an admission on a stale view (another controller
wrote in between) is refused with :class:`StoreConflict` and nothing is written, so two
controllers can never both commit slots decided from the same free table. ``state`` holds a token
naming the last write, so a Txn retried on another member after its answer was lost is known to
have landed (not reported as a conflict, not applied twice). With a leader
(``controller.election``), :meth:`EtcdStore.set_guard` adds a compare on the leader key's
``create_revision``: once the lease is gone, so is every write (:class:`NotLeader`).

``transaction``, ``submit``/``wait`` and the shortcuts behave as in ``controller.store``: a block
that raises writes nothing; a group of submitted writes is one Txn. etcd bounds the operations of
one Txn (``--max-txn-ops``, 128 by default): a deployment that admits large batches raises it.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import httpx

from controller.core.model import Reservation, Tenant
from controller.store import (TOPOLOGY_DIGEST_KEY, TOPOLOGY_NAME_KEY, AuditEntry, StoredTenant, StoreError,
                              TopologyIdentity, redact)
from controller.storebase import IDEMPOTENCY_TTL_S, StoreBase, Ticket, log_audit

log = logging.getLogger("detnet.controller")

#: Version of the key layout above.
ETCD_SCHEMA_VERSION = 1
_PAD = 20
#: a new lease for the idempotency records every this many seconds; each lease lives the TTL on top
_IDEM_LEASE_EVERY = 3600


class StoreConflict(StoreError):
    """Another controller wrote to the store since this one read it: nothing was written."""


class NotLeader(StoreError):
    """The leader key this store's writes are guarded by is gone or belongs to another leader."""


def parse_etcd_url(url: str) -> list[str]:
    """``etcd://HOST:PORT[,HOST:PORT...]`` -> ``["HOST:PORT", ...]``; ValueError with one line otherwise."""
    if not isinstance(url, str) or not url.startswith("etcd://"):
        raise ValueError(f"bad store {url!r}: expected etcd://HOST:PORT[,HOST:PORT...]")
    endpoints = []
    for part in url[len("etcd://"):].rstrip("/").split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"bad store {url!r}: {part.strip()!r} is not HOST:PORT")
        endpoints.append(f"{host}:{int(port)}")
    return endpoints


def _b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def _prefix_end(prefix: str) -> str:
    """The ``range_end`` that makes a range cover every key starting with ``prefix``."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return _b64(bytes(raw))


class EtcdClient:
    """The few calls of etcd's v3 JSON gateway this project needs, over httpx, trying each member
    in turn when one does not answer (the one that answered is tried first next time)."""

    def __init__(self, endpoints: list[str], *, timeout: float = 5.0):
        if not endpoints:
            raise ValueError("etcd: no endpoints")
        self.endpoints = list(endpoints)
        self._http = httpx.Client(timeout=timeout)
        self._first = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def call(self, path: str, body: dict[str, Any], *, within: float | None = None) -> dict[str, Any]:
        """POST ``body`` to ``/v3/<path>`` on the first member that answers; StoreError if none does
        (within ``within`` seconds in all, when given) or etcd refuses the request."""
        errors = []
        end = None if within is None else time.monotonic() + within
        with self._lock:
            start = self._first
        for i in range(len(self.endpoints)):
            k = (start + i) % len(self.endpoints)
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                errors.append(f"{self.endpoints[k]}: not tried, {within:.2f} s spent")
                break
            try:
                r = self._http.post(f"http://{self.endpoints[k]}/v3/{path}", json=body,
                                    **({} if left is None else {"timeout": left}))
            except httpx.TransportError as e:
                errors.append(f"{self.endpoints[k]}: {e.__class__.__name__}")
                continue
            if r.status_code == 503 or r.status_code >= 500 and "no leader" in r.text:
                errors.append(f"{self.endpoints[k]}: {r.status_code}")
                continue
            if r.status_code != 200:
                try:
                    detail = r.json().get("error") or r.text
                except ValueError:
                    detail = r.text
                hint = ("; raise etcd's --max-txn-ops" if "too many operations" in detail else "")
                raise StoreError(f"etcd {path}: {r.status_code} {detail.strip()[:200]}{hint}")
            with self._lock:
                self._first = k
            return r.json()
        raise StoreError(f"etcd {path}: no member answered ({'; '.join(errors)})")

    # kv ---------------------------------------------------------------------------------
    def range(self, key: str, *, prefix: bool = False, start: str | None = None, limit: int = 0,
              count_only: bool = False, within: float | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"key": _b64(start if start is not None else key)}
        if prefix:
            body["range_end"] = _prefix_end(key)
        if limit:
            body["limit"] = limit
        if count_only:
            body["count_only"] = True
        return self.call("kv/range", body, within=within)

    def txn(self, compare: list[dict], success: list[dict], failure: list[dict] | None = None) -> dict[str, Any]:
        return self.call("kv/txn", {"compare": compare, "success": success, "failure": failure or []})

    # leases -----------------------------------------------------------------------------
    def lease_grant(self, ttl: int) -> int:
        return int(self.call("lease/grant", {"TTL": int(ttl)})["ID"])

    def lease_keepalive(self, lease: int, *, within: float | None = None) -> int:
        """Renew ``lease``; returns its TTL left (0 or less: it has expired)."""
        answer = self.call("lease/keepalive", {"ID": str(lease)}, within=within)
        return int(answer.get("result", answer).get("TTL", 0))

    def lease_revoke(self, lease: int, *, within: float | None = None) -> None:
        self.call("lease/revoke", {"ID": str(lease)}, within=within)


def op_put(key: str, value: str, lease: int | None = None) -> dict:
    put: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
    if lease:
        put["lease"] = str(lease)
    return {"request_put": put}


def op_delete(key: str) -> dict:
    return {"request_delete_range": {"key": _b64(key)}}


def op_range(key: str) -> dict:
    return {"request_range": {"key": _b64(key)}}


def compare_mod(key: str, revision: int) -> dict:
    """Compare: ``key`` was last written at ``revision`` (0: the key does not exist)."""
    return {"key": _b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(revision)}


def compare_create(key: str, revision: int) -> dict:
    """Compare: ``key`` was created at ``revision`` (0: the key does not exist)."""
    return {"key": _b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": str(revision)}


def kvs_of(answer: dict) -> list[dict]:
    return answer.get("kvs", [])


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class EtcdTx:
    """The writes and reads available inside one transaction (``EtcdStore.transaction``): reads see
    etcd now plus this transaction's own writes; writes are sent together as one Txn at the end."""

    def __init__(self, store: "EtcdStore"):
        self._store = store
        self._ops: dict[str, dict] = {}       # etcd refuses a key twice in one Txn: the last write wins
        self._overlay: dict[str, str | None] = {}
        self._audit_seq: int | None = None
        self._ledger_added: set[str] = set()
        #: the audit entries this transaction appended, logged once it commits
        self.audited: list[AuditEntry] = []

    @property
    def ops(self) -> list[dict]:
        return list(self._ops.values())

    def _get(self, key: str) -> str | None:
        if key in self._overlay:
            return self._overlay[key]
        kvs = kvs_of(self._store._client.range(key))
        return unb64(kvs[0]["value"]) if kvs else None

    def _put(self, key: str, value: str) -> None:
        self._overlay[key] = value
        self._ops[key] = op_put(key, value)

    def _delete(self, key: str) -> bool:
        existed = self._get(key) is not None
        if existed:
            self._overlay[key] = None
            self._ops[key] = op_delete(key)
        return existed

    # tenants ---------------------------------------------------------------------------
    def save_tenant(self, tenant: Tenant, token_hash: str | None = None) -> None:
        """Insert or update a tenant; ``token_hash`` is required on insert, kept when None on update."""
        key = self._store._k("tenants", f"{tenant.id:0{_PAD}d}")
        old = self._get(key)
        if old is None and not token_hash:
            raise ValueError(f"tenant {tenant.id}: a new tenant needs a token hash")
        row = json.loads(old) if old else {"created": time.time()}
        row.update(id=tenant.id, name=tenant.name, quota_bps=tenant.quota_bps,
                   max_reservations=tenant.max_reservations, token_hash=token_hash or row.get("token_hash"))
        self._put(key, _dumps(row))

    def delete_tenant(self, tenant_id: int) -> bool:
        return self._delete(self._store._k("tenants", f"{tenant_id:0{_PAD}d}"))

    # reservations ----------------------------------------------------------------------
    def save_reservation(self, res: Reservation) -> None:
        """Insert a reservation, or replace the row of the same id (which keeps its place in the order)."""
        self._put(self._store._k("reservations", res.id), _dumps(res.to_dict()))
        if res.id not in self._ledger_added:
            self._ledger_added.add(res.id)
            key = self._store._k("reservation_ids", res.id)
            self._ops[key] = op_put(key, _dumps({"created": time.time()}))

    def delete_reservation(self, reservation_id: str) -> bool:
        return self._delete(self._store._k("reservations", reservation_id))

    def drop_reservation(self, reservation_id: str) -> None:
        """Delete a reservation the caller holds in its state, without reading it first.

        ``delete_reservation`` answers whether the key existed, which costs one etcd read per
        reservation (a 1,000-reservation release took 3.7 s on etcd against 0.5 s on SQLite). The
        desk, which deletes only what it holds, needs no answer: its view is the store's while it
        leads, since every Txn it sends is guarded by its term. Deleting an absent key is no error."""
        key = self._store._k("reservations", reservation_id)
        self._overlay[key] = None
        self._ops[key] = op_delete(key)

    # audit -----------------------------------------------------------------------------
    def append_audit(self, actor: str, action: str, request: Any = None, outcome: Any = None,
                     status: str = "ok", tenant: int | None = None) -> int:
        """Append one audit entry (credentials redacted); returns its sequence number."""
        if self._audit_seq is None:     # the last seq this store committed is current while its view is
            cached = self._store._audit_last
            self._audit_seq = cached if cached is not None else int(self._get(self._store._k("counters", "audit")) or 0)
        self._audit_seq += 1
        seq, ts = self._audit_seq, time.time()
        entry = AuditEntry(seq, ts, actor, tenant, action, redact(request), redact(outcome), status)
        key = self._store._k("audit", f"{seq:0{_PAD}d}")
        self._ops[key] = op_put(key, _dumps(entry.to_dict()))
        self._put(self._store._k("counters", "audit"), str(seq))
        self.audited.append(entry)
        return seq

    # idempotency keys ------------------------------------------------------------------
    def save_idempotency(self, scope: str, key: str, record: dict[str, Any]) -> None:
        """Record the answer of the first request with ``key`` (``controller.idempotency``), on the
        lease that drops it after ``IDEMPOTENCY_TTL_S`` (and at most two hours more)."""
        k = self._store._k("idempotency", scope, key)
        value = json.dumps(record, separators=(",", ":"))        # key order kept: replayed as sent
        self._ops[k] = op_put(k, value, self._store._idempotency_lease())

    def delete_idempotency_scope(self, scope: str) -> None:
        """Forget every key of ``scope`` (a deleted tenant's: a later tenant never replays them)."""
        prefix = self._store._k("idempotency", scope) + "/"
        for k in [k for k in self._ops if k.startswith(prefix)]:    # etcd refuses a put and a delete of one key
            del self._ops[k]                                        # in one Txn; the delete covers it
        self._ops[prefix] = {"request_delete_range": {"key": _b64(prefix), "range_end": _prefix_end(prefix)}}

    # settings --------------------------------------------------------------------------
    def set_setting(self, key: str, value: str) -> None:
        self._put(self._store._k("settings", key), value)

    def set_topology(self, identity: TopologyIdentity) -> None:
        self.set_setting(TOPOLOGY_NAME_KEY, identity.name)
        self.set_setting(TOPOLOGY_DIGEST_KEY, identity.digest)


class EtcdStore(StoreBase):
    """Tenants, reservations, the id ledger, the audit log and settings in etcd (see the module doc)."""

    def __init__(self, url_or_endpoints: str | list[str], *, prefix: str = "/detnet/", timeout: float = 5.0):
        endpoints = parse_etcd_url(url_or_endpoints) if isinstance(url_or_endpoints, str) else list(url_or_endpoints)
        self.path = "etcd://" + ",".join(endpoints)      # what messages name, as Store.path
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self._client = EtcdClient(endpoints, timeout=timeout)
        self._lock = threading.RLock()
        self._pending: list[Ticket] = []
        self._pending_lock = threading.Lock()
        self._guard: tuple[str, int] | None = None
        self._seen = 0
        #: the audit counter as this store last committed it (None: read it from etcd)
        self._audit_last: int | None = None
        #: the lease of the idempotency records written now, and when it was granted (monotonic)
        self._idem_lease: tuple[int, float] | None = None
        try:
            self._init_schema()
        except StoreError:
            self._client.close()
            raise

    def _k(self, *parts: str) -> str:
        return self.prefix + "/".join(parts)

    def _init_schema(self) -> None:
        schema = self._k("schema")
        answer = self._client.txn([compare_create(schema, 0)], [op_put(schema, str(ETCD_SCHEMA_VERSION))],
                                  [op_range(schema)])
        if not answer.get("succeeded"):
            kvs = kvs_of(answer["responses"][0]["response_range"])
            version = int(unb64(kvs[0]["value"])) if kvs else 0
            if version > ETCD_SCHEMA_VERSION:
                raise StoreError(f"{self.path}: schema version {version} is newer than this controller's "
                                 f"({ETCD_SCHEMA_VERSION}); upgrade detnet")
        self.refresh()

    def close(self) -> None:
        self._client.close()

    @property
    def client(self) -> EtcdClient:
        return self._client

    def _idempotency_lease(self) -> int:
        """The lease new idempotency records go on (a new one each hour; under ``_lock``)."""
        now = time.monotonic()
        if self._idem_lease is None or now - self._idem_lease[1] > _IDEM_LEASE_EVERY:
            self._idem_lease = (self._client.lease_grant(IDEMPOTENCY_TTL_S + 2 * _IDEM_LEASE_EVERY), now)
        return self._idem_lease[0]

    # the writer's view -----------------------------------------------------------------
    def refresh(self) -> int:
        """Take the store as it is now as this writer's view (call it before reloading state, e.g.
        on becoming leader); returns the revision of that view."""
        kvs = kvs_of(self._client.range(self._k("state")))
        with self._lock:
            self._seen = int(kvs[0]["mod_revision"]) if kvs else 0
            self._audit_last = None
            return self._seen

    @property
    def view_revision(self) -> int:
        """The etcd revision of this store's view: the last it read (``refresh``) or wrote."""
        return self._seen

    def set_guard(self, key: str | None, create_revision: int = 0) -> None:
        """Write only while ``key`` exists with this ``create_revision`` (a leader key: see
        ``controller.election``); None removes the guard. Never waits: a leader that lost its
        lease calls it while a commit of its may hang on an unreachable etcd (which holds the
        store's lock); the next Txn reads the new guard (one atomic assignment)."""
        self._guard = None if key is None else (key, int(create_revision))

    def _commit(self, tx: EtcdTx) -> None:
        """Send ``tx``'s writes as one Txn guarded by the view (and the leader key, if set)."""
        if not tx.ops:
            return
        state = self._k("state")
        compare = [compare_mod(state, self._seen)]
        failure = [op_range(state)]
        if self._guard is not None:
            compare.append(compare_create(*self._guard))
            failure.append(op_range(self._guard[0]))
        token = uuid.uuid4().hex        # names this write in ``state``: a retried Txn can tell it landed
        try:
            answer = self._client.txn(compare, tx.ops + [op_put(state, token)], failure)
        except StoreError as e:
            if "lease not found" in str(e):     # etcd lost it (restored from a snapshot?): grant anew next time
                self._idem_lease = None
            raise
        responses = answer.get("responses", [])
        landed = kvs_of(responses[0]["response_range"]) if not answer.get("succeeded") and responses else []
        if answer.get("succeeded") or (landed and unb64(landed[0]["value"]) == token):
            # the second case: the answer to a first try was lost and the client tried another member
            self._seen = int(answer["header"]["revision"]) if answer.get("succeeded") else \
                int(landed[0]["mod_revision"])
            if tx._audit_seq is not None:
                self._audit_last = tx._audit_seq
            return
        self._audit_last = None
        if self._guard is not None:
            kvs = kvs_of(responses[1]["response_range"]) if len(responses) > 1 else []
            if not kvs or int(kvs[0]["create_revision"]) != self._guard[1]:
                raise NotLeader(f"{self.path}: not the leader any more ({self._guard[0]} "
                                f"{'gone' if not kvs else 'held by another'}): nothing written")
        kvs = kvs_of(responses[0]["response_range"]) if responses else []
        now = int(kvs[0]["mod_revision"]) if kvs else 0
        raise StoreConflict(f"{self.path}: another controller wrote at revision {now} since this one's "
                            f"view ({self._seen}): nothing written; reload")

    @contextmanager
    def transaction(self) -> Iterator[EtcdTx]:
        """One write transaction (one etcd Txn); nothing is written if the block raises. Writes
        queued by ``submit`` go first, in the same Txn."""
        with self._lock:
            tx = EtcdTx(self)
            group = self._take_pending()
            try:
                for t in group:
                    t.write(tx)
                yield tx
                self._commit(tx)
            except BaseException:
                self._requeue(group)
                raise
            self._settle(group, None)
            log_audit(tx)

    def _commit_group(self, group: list[Ticket]) -> EtcdTx:
        """The queued writes in one etcd Txn (``StoreBase``'s group commit), under ``_lock``."""
        tx = EtcdTx(self)
        for t in group:
            t.write(tx)
        self._commit(tx)
        return tx

    # reads -----------------------------------------------------------------------------------
    def _values(self, *parts: str) -> list[dict]:
        """Every key-value under ``prefix/parts/``, in key order (the gateway's kvs, values decoded)."""
        out = []
        for kv in kvs_of(self._client.range(self._k(*parts) + "/", prefix=True)):
            out.append({**kv, "value": unb64(kv["value"]), "key": unb64(kv["key"])})
        return out

    def schema_version(self) -> int:
        kvs = kvs_of(self._client.range(self._k("schema")))
        return int(unb64(kvs[0]["value"])) if kvs else 0

    def get_setting(self, key: str) -> str | None:
        kvs = kvs_of(self._client.range(self._k("settings", key)))
        return unb64(kvs[0]["value"]) if kvs else None

    def load_tenants(self) -> list[StoredTenant]:
        """Every tenant, by id."""
        out = []
        for kv in self._values("tenants"):
            r = json.loads(kv["value"])
            out.append(StoredTenant(Tenant(r["id"], r["name"], r["quota_bps"], r["max_reservations"]),
                                    r["token_hash"], r["created"]))
        return out

    def _reservation_kvs(self) -> list[dict]:
        return sorted(self._values("reservations"), key=lambda kv: int(kv["create_revision"]))

    def changes_since(self, revision: int) -> tuple[list[Reservation], set[str], bool, int]:
        """What a follower at ``revision`` must apply to be current (``ControllerService.follow``):
        the reservations written after it (in admission order), the ids of every reservation
        stored now (those it holds and etcd does not were deleted), whether anything else it
        loads (tenants, settings, the topology identity) changed, and the revision the first
        answer was read at (the follower's next view: a later write shows up in the next call);
        three short ranges."""
        pre = self._k("reservations") + "/"
        span = {"key": _b64(pre), "range_end": _prefix_end(pre)}
        answer = self._client.call("kv/range", {**span, "min_mod_revision": revision + 1})
        read_at = int(answer["header"]["revision"])
        kvs = kvs_of(answer)
        changed = [Reservation.from_dict(json.loads(unb64(kv["value"])))
                   for kv in sorted(kvs, key=lambda kv: int(kv["create_revision"]))]
        ids = {unb64(kv["key"])[len(pre):] for kv in kvs_of(self._client.call("kv/range", {**span, "keys_only": True}))}
        others = False
        for part in ("tenants", "settings"):
            p = self._k(part) + "/"
            # keys_only, not count_only: etcd counts every key of the range, before the revision filter
            answer = self._client.call("kv/range", {"key": _b64(p), "range_end": _prefix_end(p),
                                                    "min_mod_revision": revision + 1, "keys_only": True})
            others = others or bool(kvs_of(answer))
        return changed, ids, others, read_at

    def load_reservations(self) -> list[Reservation]:
        """Every stored reservation, in the order they were first admitted."""
        return [Reservation.from_dict(json.loads(kv["value"])) for kv in self._reservation_kvs()]

    def reservation_rows(self) -> list[tuple[str, int, str]]:
        """(id, tenant, json) of every reservation, in order."""
        rows = []
        for kv in self._reservation_kvs():
            d = json.loads(kv["value"])
            rows.append((d["id"], d["tenant"], kv["value"]))
        return rows

    def used_reservation_ids(self) -> list[str]:
        """Every reservation id ever saved, deleted or not (the ledger)."""
        start = len(self._k("reservation_ids") + "/")
        return sorted(kv["key"][start:] for kv in self._values("reservation_ids"))

    def reservation_count(self) -> int:
        return int(self._client.range(self._k("reservations") + "/", prefix=True, count_only=True).get("count", 0))

    def audit_count(self) -> int:
        return int(self._client.range(self._k("audit") + "/", prefix=True, count_only=True).get("count", 0))

    def load_idempotency(self, scope: str, key: str) -> dict[str, Any] | None:
        """The record of ``key`` in ``scope`` (``EtcdTx.save_idempotency``), or None."""
        kvs = kvs_of(self._client.range(self._k("idempotency", scope, key)))
        return json.loads(unb64(kvs[0]["value"])) if kvs else None

    def topology(self) -> TopologyIdentity | None:
        name, digest = self.get_setting(TOPOLOGY_NAME_KEY), self.get_setting(TOPOLOGY_DIGEST_KEY)
        return None if name is None or digest is None else TopologyIdentity(name, digest)

    def list_audit(self, since: int = 0, *, tenant: int | None = None, limit: int = 1000) -> list[AuditEntry]:
        """Audit entries with ``seq > since`` (oldest first), only those of ``tenant`` when given."""
        limit = max(0, int(limit))
        out: list[AuditEntry] = []
        prefix = self._k("audit") + "/"
        nxt = int(since) + 1
        while len(out) < limit:
            page = kvs_of(self._client.range(prefix, prefix=True, start=f"{prefix}{nxt:0{_PAD}d}", limit=512))
            for kv in page:
                d = json.loads(unb64(kv["value"]))
                if tenant is None or d["tenant"] == tenant:
                    out.append(AuditEntry(**d))
                    if len(out) == limit:
                        break
            if len(page) < 512:
                break
            nxt = int(unb64(page[-1]["key"])[len(prefix):]) + 1
        return out
