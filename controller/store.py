"""The controller's persistent store: tenants, reservations and the audit log in one SQLite file.

Why SQLite: one file, stdlib, transactional, survives a crash. The database runs in WAL mode so
readers never block the writer; the controller holds a single connection guarded by a lock
(``check_same_thread=False``) because the REST thread and the os-ken threads both write.

Every mutation is one transaction. A caller that must write several rows atomically (a
reservation and its audit entry) uses ``with store.transaction() as tx:`` and the methods of
``tx``; the ``Store`` methods of the same names are one-transaction shortcuts.

Group commit (``submit`` + ``wait``): a caller that decided a change under its own lock queues
the write and waits for it after releasing that lock; whichever waiter gets the store's lock first
commits every write queued so far in one transaction (one fsync), so concurrent requests share a
commit instead of queueing one fsync each behind the caller's lock. A queued write is committed
before any other transaction (``transaction`` writes them first), so the store sees changes in
the order they were decided. Durability is unchanged: ``wait`` returns only after the COMMIT
(``synchronous=FULL`` by default: the WAL is fsynced at every commit, i.e. once per group).

Tokens never reach this module in clear: tenants carry only the sha256 of their token, and audit
entries pass through :func:`redact`, which drops any key that looks like a credential.

Each audit entry is also logged once its transaction has committed (logger ``detnet.audit``, level
INFO, message ``audit SEQ: ACTOR ACTION STATUS``, the redacted entry as ``extra={"fields": ...}``
for ``--log-format json``); a rolled-back transaction logs nothing.

Two things make a restart safe beyond the rows themselves:

- ``reservation_ids``, the ledger of every reservation id ever saved (rows are deleted, ledger
  entries never are): the scheduler is told them at start so a generated id is never reused.
  Databases of schema 1 get it filled from their rows and their audit log on first open.
- ``idempotency``: the answer of each request sent with an ``Idempotency-Key``
  (``controller.idempotency``), written in the transaction of the reservation it admitted, so a
  restarted controller replays it; rows older than 24 h are dropped by the next keyed write.
- the topology the reservations were placed on (settings ``topology_name`` and
  ``topology_digest``, see :func:`topology_digest`): a start on another topology is refused by the
  launcher unless the operator allows it.

The store makes the database's folder if needed (tests and tools rely on it); the launcher
refuses a ``--db`` whose folder does not exist before the store is ever opened.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from controller.core.model import Reservation, Tenant
from controller.storebase import AUDIT_LOG, IDEMPOTENCY_TTL_S, StoreBase, StoreError, Ticket, log_audit

__all__ = ["AUDIT_LOG", "SECRET_KEYS", "TOPOLOGY_DIGEST_KEY", "TOPOLOGY_NAME_KEY", "AuditEntry", "Store", "StoreError",
           "StoredTenant", "TopologyIdentity", "Tx", "redact"]

#: Version of the schema below; bump it and add a migration when a table changes.
#: 2: ``reservation_ids`` (the ledger of ids ever used). 3: ``idempotency`` (the answers of
#: requests sent with an ``Idempotency-Key``, see ``controller.idempotency``).
SCHEMA_VERSION = 3

#: settings keys of the topology the stored reservations were placed on
TOPOLOGY_NAME_KEY = "topology_name"
TOPOLOGY_DIGEST_KEY = "topology_digest"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tenants (
    id               INTEGER PRIMARY KEY,
    name             TEXT NOT NULL,
    quota_bps        INTEGER,
    max_reservations INTEGER,
    token_hash       TEXT NOT NULL,
    created          REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS reservations (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    id      TEXT NOT NULL UNIQUE,
    tenant  INTEGER NOT NULL,
    json    TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    ts      REAL NOT NULL,
    actor   TEXT NOT NULL,
    tenant  INTEGER,
    action  TEXT NOT NULL,
    request TEXT,
    outcome TEXT,
    status  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_tenant ON audit (tenant, seq);
CREATE TABLE IF NOT EXISTS reservation_ids (
    id      TEXT PRIMARY KEY,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    scope   TEXT NOT NULL,
    key     TEXT NOT NULL,
    created REAL NOT NULL,
    record  TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX IF NOT EXISTS idempotency_created ON idempotency (created);
"""

#: Keys never written to the audit log, whatever their nesting (compared lower-case).
SECRET_KEYS = frozenset({"token", "admin_token", "authorization", "token_hash", "password", "secret"})


def redact(value: Any) -> Any:
    """A copy of ``value`` with every credential-like key replaced by ``"<redacted>"``."""
    if isinstance(value, dict):
        return {k: ("<redacted>" if str(k).lower() in SECRET_KEYS else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


@dataclass(frozen=True)
class StoredTenant:
    """A tenant row: the tenant, the sha256 hex of its token and its creation time."""

    tenant: Tenant
    token_hash: str
    created: float


@dataclass(frozen=True)
class AuditEntry:
    """One audit row. ``actor`` is ``admin``, ``tenant:N`` or ``system``; ``tenant`` the tenant concerned."""

    seq: int
    ts: float
    actor: str
    tenant: int | None
    action: str
    request: Any
    outcome: Any
    status: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "ts": self.ts, "actor": self.actor, "tenant": self.tenant,
                "action": self.action, "request": self.request, "outcome": self.outcome,
                "status": self.status}


def topology_digest(topology: Any) -> str:
    """sha256 hex of what scheduling depends on: the sorted node names and every directed link
    with its capacity, propagation and (when set) processing time. The name is not part of it."""
    g = topology.graph
    doc = {"nodes": sorted(str(n) for n in g.nodes),
           "links": sorted([str(u), str(v), int(d["capacity_bps"]), int(d["propagation_ns"]),
                            None if d.get("processing_ns") is None else int(d["processing_ns"])]
                           for u, v, d in g.edges(data=True))}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class TopologyIdentity:
    """The topology a database's reservations were placed on: its name and ``topology_digest``."""

    name: str
    digest: str

    @classmethod
    def of(cls, topology: Any) -> "TopologyIdentity":
        return cls(str(topology.name), topology_digest(topology))

    def describe(self) -> str:
        return f"{self.name!r} (sha256 {self.digest[:12]})"

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "digest": self.digest}


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(redact(value), sort_keys=True, separators=(",", ":"))


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class Tx:
    """The writes and reads available inside one transaction (see ``Store.transaction``)."""

    def __init__(self, cur: sqlite3.Cursor):
        self._cur = cur
        #: the audit entries this transaction appended, logged once it commits
        self.audited: list[AuditEntry] = []

    # tenants -------------------------------------------------------------------
    def save_tenant(self, tenant: Tenant, token_hash: str | None = None) -> None:
        """Insert or update a tenant; ``token_hash`` is required on insert, kept when None on update."""
        row = self._cur.execute("SELECT token_hash FROM tenants WHERE id = ?", (tenant.id,)).fetchone()
        if row is None:
            if not token_hash:
                raise ValueError(f"tenant {tenant.id}: a new tenant needs a token hash")
            self._cur.execute(
                "INSERT INTO tenants (id, name, quota_bps, max_reservations, token_hash, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (tenant.id, tenant.name, tenant.quota_bps, tenant.max_reservations, token_hash, time.time()))
        else:
            self._cur.execute(
                "UPDATE tenants SET name = ?, quota_bps = ?, max_reservations = ?, token_hash = ? WHERE id = ?",
                (tenant.name, tenant.quota_bps, tenant.max_reservations, token_hash or row[0], tenant.id))

    def delete_tenant(self, tenant_id: int) -> bool:
        return self._cur.execute("DELETE FROM tenants WHERE id = ?", (tenant_id,)).rowcount > 0

    # reservations ----------------------------------------------------------------
    def save_reservation(self, res: Reservation) -> None:
        """Insert a reservation (replacing a row with the same id, which keeps its place in the order)."""
        body = json.dumps(res.to_dict(), sort_keys=True, separators=(",", ":"))
        cur = self._cur.execute("UPDATE reservations SET tenant = ?, json = ? WHERE id = ?",
                                (res.tenant, body, res.id))
        if cur.rowcount == 0:
            self._cur.execute("INSERT INTO reservations (id, tenant, json, created) VALUES (?, ?, ?, ?)",
                              (res.id, res.tenant, body, time.time()))
            self._cur.execute("INSERT OR IGNORE INTO reservation_ids (id, created) VALUES (?, ?)",
                              (res.id, time.time()))

    def delete_reservation(self, reservation_id: str) -> bool:
        return self._cur.execute("DELETE FROM reservations WHERE id = ?", (reservation_id,)).rowcount > 0

    def drop_reservation(self, reservation_id: str) -> None:
        """Delete a reservation the caller holds in its state (no answer whether it existed: see
        ``EtcdTx.drop_reservation``, where that saves a read)."""
        self.delete_reservation(reservation_id)

    # audit -------------------------------------------------------------------------
    def append_audit(self, actor: str, action: str, request: Any = None, outcome: Any = None,
                     status: str = "ok", tenant: int | None = None) -> int:
        """Append one audit entry (credentials redacted); returns its sequence number."""
        ts = time.time()
        cur = self._cur.execute(
            "INSERT INTO audit (ts, actor, tenant, action, request, outcome, status) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (ts, actor, tenant, action, _dumps(request), _dumps(outcome), status))
        seq = int(cur.lastrowid or 0)
        if AUDIT_LOG.isEnabledFor(logging.INFO):
            self.audited.append(AuditEntry(seq, ts, actor, tenant, action, redact(request), redact(outcome), status))
        return seq

    # idempotency keys --------------------------------------------------------------
    def save_idempotency(self, scope: str, key: str, record: dict[str, Any]) -> None:
        """Record the answer of the first request with ``key`` (``controller.idempotency``), and
        drop the records older than ``IDEMPOTENCY_TTL_S`` (an index range: nothing to scan)."""
        now = time.time()
        self._cur.execute("DELETE FROM idempotency WHERE created < ?", (now - IDEMPOTENCY_TTL_S,))
        self._cur.execute("INSERT OR REPLACE INTO idempotency (scope, key, created, record) VALUES (?, ?, ?, ?)",
                          (scope, key, float(record.get("created", now)),
                           json.dumps(record, separators=(",", ":"))))     # key order kept: replayed as sent

    def delete_idempotency_scope(self, scope: str) -> None:
        """Forget every key of ``scope`` (a deleted tenant's: a later tenant never replays them)."""
        self._cur.execute("DELETE FROM idempotency WHERE scope = ?", (scope,))

    # settings ------------------------------------------------------------------------
    def set_setting(self, key: str, value: str) -> None:
        self._cur.execute("INSERT INTO settings (key, value) VALUES (?, ?) "
                          "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    def set_topology(self, identity: TopologyIdentity) -> None:
        """Record the topology the stored reservations are placed on."""
        self.set_setting(TOPOLOGY_NAME_KEY, identity.name)
        self.set_setting(TOPOLOGY_DIGEST_KEY, identity.digest)


class Store(StoreBase):
    """SQLite-backed persistence of tenants, reservations, the audit log and a few settings."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL"):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        #: writes submitted for the next group commit (``submit``), in the order they were decided
        self._pending: list[Ticket] = []
        self._pending_lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
            self._conn.execute("PRAGMA journal_mode=WAL")
            if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
                raise StoreError(f"{self.path}: bad synchronous mode {synchronous!r}")
            self._conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._init_schema()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path}: cannot open the controller database: {e}") from None

    def _init_schema(self) -> None:
        with self.transaction() as tx:
            # executescript would commit on its own: run the statements one by one inside the transaction
            for stmt in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                tx._cur.execute(stmt)
            row = tx._cur.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                tx._cur.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] > SCHEMA_VERSION:
                raise StoreError(f"{self.path}: schema version {row[0]} is newer than this controller's "
                                 f"({SCHEMA_VERSION}); upgrade detnet")
            elif row[0] < SCHEMA_VERSION:      # 3 adds a table only (made above)
                if row[0] < 2:
                    self._fill_id_ledger(tx._cur)
                tx._cur.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    @staticmethod
    def _fill_id_ledger(cur: sqlite3.Cursor) -> None:
        """Schema 1 -> 2: every id a stored row or an admission in the audit log ever used."""
        used = {r[0] for r in cur.execute("SELECT id FROM reservations")}
        for (outcome,) in cur.execute("SELECT outcome FROM audit WHERE action IN ('reserve', 'reservation_up') "
                                      "AND status = 'ok' AND outcome IS NOT NULL").fetchall():
            try:
                rid = json.loads(outcome).get("id")
            except (ValueError, AttributeError):
                continue
            if isinstance(rid, str):
                used.add(rid)
        now = time.time()
        cur.executemany("INSERT OR IGNORE INTO reservation_ids (id, created) VALUES (?, ?)",
                        [(rid, now) for rid in sorted(used)])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT); rolled back if the block raises.

        The writes queued by ``submit`` and not yet committed go first, in the same transaction
        (so the store sees every change in the order it was decided); their ``committed``
        callbacks run after the COMMIT, before this block's caller goes on. If the transaction
        is rolled back they go back to the head of the queue (their waiters commit them)."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            tx = Tx(cur)
            group = self._take_pending()
            try:
                for t in group:
                    t.write(tx)
                yield tx
            except BaseException:
                cur.execute("ROLLBACK")
                self._requeue(group)
                raise
            else:
                cur.execute("COMMIT")
                self._settle(group, None)
                log_audit(tx)
            finally:
                cur.close()

    def _commit_group(self, group: list[Ticket]) -> Tx:
        """The queued writes in one transaction (``StoreBase``'s group commit), under ``_lock``."""
        cur = self._conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
            tx = Tx(cur)
            for t in group:
                t.write(tx)
            cur.execute("COMMIT")
            return tx
        except BaseException:
            if self._conn.in_transaction:
                cur.execute("ROLLBACK")
            raise
        finally:
            cur.close()

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # reads -----------------------------------------------------------------------------
    def schema_version(self) -> int:
        return int(self._query("SELECT version FROM schema_version")[0][0])

    def get_setting(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM settings WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def load_tenants(self) -> list[StoredTenant]:
        """Every tenant, by id."""
        rows = self._query("SELECT id, name, quota_bps, max_reservations, token_hash, created "
                           "FROM tenants ORDER BY id")
        return [StoredTenant(Tenant(r[0], r[1], r[2], r[3]), r[4], r[5]) for r in rows]

    def load_reservations(self) -> list[Reservation]:
        """Every stored reservation, in the order they were first admitted."""
        rows = self._query("SELECT json FROM reservations ORDER BY seq")
        return [Reservation.from_dict(json.loads(r[0])) for r in rows]

    def used_reservation_ids(self) -> list[str]:
        """Every reservation id ever saved, deleted or not (the ledger)."""
        return [r[0] for r in self._query("SELECT id FROM reservation_ids ORDER BY id")]

    def reservation_count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM reservations")[0][0])

    def topology(self) -> TopologyIdentity | None:
        """The topology the stored reservations were placed on (None: never recorded)."""
        name, digest = self.get_setting(TOPOLOGY_NAME_KEY), self.get_setting(TOPOLOGY_DIGEST_KEY)
        return None if name is None or digest is None else TopologyIdentity(name, digest)

    def reservation_rows(self) -> list[tuple[str, int, str]]:
        """(id, tenant, json) of every reservation, in order: a cheap fingerprint for tests and checks."""
        return [(r[0], r[1], r[2]) for r in self._query("SELECT id, tenant, json FROM reservations ORDER BY seq")]

    def list_audit(self, since: int = 0, *, tenant: int | None = None, limit: int = 1000) -> list[AuditEntry]:
        """Audit entries with ``seq > since`` (oldest first), only those of ``tenant`` when given."""
        sql = "SELECT seq, ts, actor, tenant, action, request, outcome, status FROM audit WHERE seq > ?"
        params: tuple = (since,)
        if tenant is not None:
            sql += " AND tenant = ?"
            params += (tenant,)
        sql += " ORDER BY seq LIMIT ?"
        params += (max(0, int(limit)),)
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], _loads(r[5]), _loads(r[6]), r[7])
                for r in self._query(sql, params)]

    def audit_count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM audit")[0][0])

    def load_idempotency(self, scope: str, key: str) -> dict[str, Any] | None:
        """The record of ``key`` in ``scope`` (``Tx.save_idempotency``), or None."""
        rows = self._query("SELECT record FROM idempotency WHERE scope = ? AND key = ?", (scope, key))
        return json.loads(rows[0][0]) if rows else None
