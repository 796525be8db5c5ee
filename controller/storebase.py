"""What every store of the controller shares: group commit of decided writes, and one-write shortcuts.

Two stores keep the controller's state: ``controller.store.Store`` (SQLite, the default) and
``controller.etcdstore.EtcdStore`` (etcd, for a cluster of controllers). Each knows how to run
one transaction; this base gives both the same:

- **group commit** (``submit``/``wait``): a request decides a change under the service's lock,
  queues its write and waits outside that lock; whoever commits next writes every queued change in
  one transaction (one fsync, one etcd Txn). ``committed`` callbacks run in queue order once the
  group is durable, ``failed`` callbacks newest first when it is not (they undo the decisions);
- **shortcuts**: ``save_tenant``, ``save_reservation``, ``append_audit``... each one transaction.

Both also keep the records of ``Idempotency-Key`` requests (``controller.idempotency``): a
transaction's ``save_idempotency(scope, key, record)`` (written with the reservation it admitted)
and the store's ``load_idempotency(scope, key)``; kept at least ``IDEMPOTENCY_TTL_S``;
``delete_idempotency_scope(scope)`` forgets a deleted tenant's.

A subclass sets ``path``, ``_lock`` (an RLock), ``_pending`` (a list) and ``_pending_lock``,
provides ``transaction()`` (a context manager yielding its write transaction, which commits the
queued writes first) and ``_commit_group(group)`` (under ``_lock``: run every ticket's write in
one new transaction and commit it, raising if it cannot; returns that transaction, whose
``audited`` entries are then logged).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from controller.core.model import Reservation, Tenant

__all__ = ["AUDIT_LOG", "IDEMPOTENCY_TTL_S", "StoreBase", "StoreError", "Ticket", "log_audit"]

AUDIT_LOG = logging.getLogger("detnet.audit")
_LOG = logging.getLogger("detnet.controller")
#: Idempotency-Key records are kept at least this long (seconds), then dropped cheaply
IDEMPOTENCY_TTL_S = 24 * 3600


class StoreError(RuntimeError):
    """The store cannot be used (newer schema, not a detnet database, disk error, etcd unreachable
    or refusing the write); re-exported by ``controller.store``."""


class Ticket:
    """One write submitted for group commit (``StoreBase.submit``): ``done`` is set once its group
    committed or failed; ``error`` says which."""

    __slots__ = ("write", "committed", "failed", "done", "error")

    def __init__(self, write: Callable[[Any], None], committed: Callable[[], None] | None,
                 failed: Callable[[], None] | None):
        self.write, self.committed, self.failed = write, committed, failed
        self.done = threading.Event()
        self.error: BaseException | None = None


def log_audit(tx: Any) -> None:
    """Log the audit entries a committed transaction wrote (under the store's lock: in sequence order)."""
    for e in tx.audited:
        AUDIT_LOG.info("audit %d: %s %s %s%s", e.seq, e.actor, e.action, e.status,
                       "" if e.tenant is None else f" (tenant {e.tenant})", extra={"fields": e.to_dict()})


def _undo(failed: list[Ticket]) -> None:
    """Undo the decisions of a group that could not be written, newest first, then release their
    waiters (each raises ``StoreError``). An undo that fails is logged: the store is failing."""
    for t in reversed(failed):
        if t.failed is not None:
            try:
                t.failed()
            except Exception:  # noqa: BLE001 - undo the others anyway
                _LOG.exception("group commit: undoing a failed write failed")
    for t in failed:
        t.done.set()


class StoreBase:
    """Group commit and one-transaction shortcuts over a subclass's ``transaction``/``_commit_group``."""

    path: str
    _lock: Any
    _pending: list[Ticket]
    _pending_lock: Any

    # what a subclass provides ----------------------------------------------------------------
    def transaction(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _commit_group(self, group: list[Ticket]) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def load_idempotency(self, scope: str, key: str) -> dict[str, Any] | None:  # pragma: no cover - abstract
        """The record a transaction's ``save_idempotency(scope, key, record)`` wrote, or None."""
        raise NotImplementedError

    # group commit ------------------------------------------------------------------------------
    def submit(self, write: Callable[[Any], None], *, committed: Callable[[], None] | None = None,
               failed: Callable[[], None] | None = None) -> Ticket:
        """Queue ``write`` (a change the caller decided under its own lock) for the next group
        commit; returns the ticket to ``wait`` on. Writes queued while a commit runs go together
        into the next one: one transaction, one fsync for all of them (group commit).

        ``committed`` runs once the write is durable, in queue order, under the store's lock (queue
        the listeners' notification there: they must hear of changes in commit order and only of
        committed ones); ``failed`` runs when its group could not be written, newest first, outside
        the store's lock (undo the decision there; it may take the caller's lock again). Every
        other ``transaction`` commits the queued writes first, so nothing overtakes them."""
        t = Ticket(write, committed, failed)
        with self._pending_lock:
            self._pending.append(t)
        return t

    def wait(self, ticket: Ticket) -> None:
        """Return once ``ticket``'s write is committed: committed by a group already, or now, with
        every write queued so far, by this thread (the leader of the group). Raises ``StoreError``
        when its group failed (its ``failed`` callback has run)."""
        while not ticket.done.is_set():
            if ticket.error is not None:    # its group failed: the undo is running
                ticket.done.wait()
                break
            self._commit_pending()      # waits for a group in flight; ours may be done then
        if ticket.error is not None:
            raise StoreError(f"{self.path}: the write was not committed: {ticket.error}") from ticket.error

    def pending(self) -> int:
        """How many submitted writes are not committed yet."""
        with self._pending_lock:
            return len(self._pending)

    def _commit_pending(self) -> None:
        """Commit every queued write in one transaction (nothing when the queue is empty)."""
        failed: list[Ticket] = []
        try:
            with self._lock:
                group = self._take_pending()
                if not group:
                    return
                try:
                    tx = self._commit_group(group)
                except BaseException as e:
                    failed = self._settle(group, e)
                    _LOG.error("group commit of %d writes failed: %s", len(group), e)
                    return
                self._settle(group, None)
                log_audit(tx)
        finally:
            _undo(failed)               # outside the lock: an undo takes the service's lock

    def _take_pending(self) -> list[Ticket]:
        with self._pending_lock:
            group, self._pending = self._pending, []
        return group

    def _requeue(self, group: list[Ticket]) -> None:
        """Put a group taken by a transaction that rolled back at the head of the queue again."""
        with self._pending_lock:
            self._pending[:0] = group

    @staticmethod
    def _settle(group: list[Ticket], error: BaseException | None) -> list[Ticket]:
        """Mark a group committed (running the ``committed`` callbacks in order) or failed;
        returns the failed tickets, whose undo runs after the store's lock is released."""
        for t in group:
            t.error = error
            if error is not None:
                continue
            if t.committed is not None:
                try:
                    t.committed()
                except Exception:  # noqa: BLE001 - the write is durable; a callback bug is logged
                    _LOG.exception("group commit: a committed callback failed")
            t.done.set()
        return group if error is not None else []

    # one-transaction shortcuts -----------------------------------------------------------------
    def save_tenant(self, tenant: Tenant, token_hash: str | None = None) -> None:
        with self.transaction() as tx:
            tx.save_tenant(tenant, token_hash)

    def delete_tenant(self, tenant_id: int) -> bool:
        with self.transaction() as tx:
            return tx.delete_tenant(tenant_id)

    def save_reservation(self, res: Reservation) -> None:
        with self.transaction() as tx:
            tx.save_reservation(res)

    def delete_reservation(self, reservation_id: str) -> bool:
        with self.transaction() as tx:
            return tx.delete_reservation(reservation_id)

    def append_audit(self, actor: str, action: str, request: Any = None, outcome: Any = None,
                     status: str = "ok", tenant: int | None = None) -> int:
        with self.transaction() as tx:
            return tx.append_audit(actor, action, request, outcome, status, tenant)

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction() as tx:
            tx.set_setting(key, value)

    def set_topology(self, identity: Any) -> None:
        with self.transaction() as tx:
            tx.set_topology(identity)
