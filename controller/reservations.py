"""Reservations as the service manages them: admit, release, read, and what-if.

Every change follows the service's commit order: 1. decide (scheduler), under the service lock,
2. persist (one store transaction: the row and its audit entry), 3. undo the scheduler change if
the store write fails; then, after the lock is released, 4. the listeners hear of it
(``controller.notify``). Rejections are audited and counted, never raised.

A single POST or DELETE (``reserve``, ``release``) decides under the lock and queues its write
for **group commit** (``controller.store.Store.submit``); it waits for the commit after releasing
the lock, so the requests that decided meanwhile share one transaction and one fsync, and one
program on the switches (the listeners hear of the group's changes together). The answer still
means "durable" and, for the listeners that wait (the OpenFlow shim), "installed": it is sent
only after its own commit and its own delivery. Between the decision and the commit other
requests see the change (a concurrent admission counts its slots): should the write fail, the
change is undone (``_undo_admission``/``_undo_release``) and the caller gets the error.

Besides the admitted reservations (in the scheduler) two kinds are stored but not on the network:
those a link failure left down (held by ``controller.failover``) and those that could not be put
back on their slots at start-up (``status: "unrestored"`` with ``status_reason``: a link or node
is gone, the slots conflict, or the frames would now miss their slots because propagation or
processing changed). Both are listed, readable and deletable, and keep their ids until deleted.

Ids are never reused: the store's ledger of every id ever saved is handed to the scheduler at
start. An id leaks nothing across tenants: an id a tenant chooses is scoped to that tenant. When
another tenant holds it, the reservation is kept under ``ID@TENANT`` (``scoped``); the tenant
sees and names it ``ID`` (``key_for`` on the way in, ``controller.views.tenant_view`` on the way
out), the admin sees ``ID@TENANT``. So a tenant's answers never depend on other tenants' ids.
The cycle is settled (shrunk to the hyperperiod of what is left) after every release, so it
depends only on the current reservations and a restart gives back the same cycle.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Any

from controller import audit, idempotency
from controller.auth import Principal
from controller.core.model import InvalidRequest, Rejection, Request, Reservation
from controller.core.scheduler import Scheduler
from controller.errors import Forbidden, NotFound, ServiceError
from controller.failover import Failover
from controller.metrics import Metrics
from controller.notify import Notifier
from controller.store import Store, StoreError, TopologyIdentity
from controller.views import detached, shown_id

log = logging.getLogger("detnet.controller")


class ReservationDesk:
    """Reservation requests of the API over the scheduler, the store and the listeners."""

    def __init__(self, *, lock: threading.RLock, store: Store, scheduler: Scheduler, metrics: Metrics,
                 notifier: Notifier, failover: Failover):
        self._lock, self._store, self._scheduler = lock, store, scheduler
        self._metrics, self._notifier, self._failover = metrics, notifier, failover
        #: stored reservations that could not be put back on their slots at start-up, by id
        self._unrestored: dict[str, Reservation] = {}
        #: Idempotency-Keys this process decided (in flight, or committed a moment ago)
        self._idempotency = idempotency.Ledger()

    # ----- start-up ---------------------------------------------------------------------------
    def load(self, stored: list[Reservation], *, record: bool = True) -> int:
        """Put stored reservations back on exactly their slots; returns how many. A down one goes
        to the failover; one that no longer fits (or whose frames would miss its slots on this
        topology) is logged, audited as ``restore_failed`` and kept as ``unrestored``.
        ``record=False`` (a follower of a cluster, which must not write): nothing is written, the
        topology not recorded nor a failed restore audited (the leader does both)."""
        if record:
            self._record_topology()
        self._scheduler.note_ids_used(self._store.used_reservation_ids())
        self._scheduler.note_ids_used(r.id for r in stored)
        restored = 0
        for res in stored:
            if res.status == "down":
                self._failover.hold_down(res)
                continue
            try:
                why = self._scheduler.timing_violation(res)
                if why is not None:
                    raise ValueError(why)
                self._scheduler.restore(res)
                restored += 1
            except Exception as e:  # noqa: BLE001 - any failure is reported, never silent
                kept = detached(res)
                kept.status, kept.status_reason = "unrestored", str(e)
                self._unrestored[res.id] = kept
                log.error("reservation %s (tenant %s) could not be restored: %s", res.id, res.tenant, e)
                if record:
                    self._store.append_audit("system", "restore_failed", {"id": res.id},
                                             {"reason": str(e)}, "error", res.tenant)
        return restored

    def _record_topology(self) -> None:
        """Record the topology the reservations are placed on; a change (allowed by the operator:
        the launcher refuses it otherwise) is logged and audited as ``topology_changed``."""
        now = TopologyIdentity.of(self._scheduler.topology)
        before = self._store.topology()
        if before == now:
            return
        with self._store.transaction() as tx:
            tx.set_topology(now)
            if before is not None:
                tx.append_audit("system", "topology_changed", None,
                                {"from": before.to_dict(), "to": now.to_dict()}, "degraded")
        if before is not None:
            log.warning("the database was written for topology %s; now %s: stored reservations that no "
                        "longer fit are listed as unrestored", before.describe(), now.describe())

    def unrestored_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._unrestored)

    def unrestored(self) -> list[Reservation]:
        """Stored reservations that could not be put back on their slots at start-up."""
        with self._lock:
            return [detached(r) for r in self._unrestored.values()]

    # ----- ids: scoped per tenant -------------------------------------------------------------
    def _held(self, rid: str) -> Reservation | None:
        """The reservation (on the network, down or unrestored) stored under ``rid``."""
        return (self._scheduler.reservations.get(rid) or self._failover.down_reservation(rid)
                or self._unrestored.get(rid))

    def key_for(self, principal: Principal, rid: str) -> str:
        """The stored id of the reservation ``principal`` names ``rid``: for a tenant, its own
        ``rid@tenant`` when it holds one, else ``rid`` (whose owner the caller still checks)."""
        if principal.is_admin or not isinstance(rid, str) or "@" in rid:
            return rid
        with self._lock:
            own = f"{rid}@{principal.tenant}"
            held = self._held(own)
            return own if held is not None and held.tenant == principal.tenant else rid

    def scoped(self, principal: Principal, req: Request | Rejection) -> Request | Rejection:
        """The request with the id it will be stored under (caller holds the lock): ``ID@TENANT``
        when the tenant already holds that (then the scheduler answers ``exists``, as for its own
        plain ``ID``) or when a tenant token chose an ``ID`` another tenant holds; else as given.
        The admin's ids are not qualified (the admin sees every id; one another tenant holds is
        ``exists``)."""
        if not isinstance(req, Request) or req.id is None:
            return req
        own = f"{req.id}@{req.tenant}"
        if self._held(own) is not None:
            return replace(req, id=own)
        other = self._held(req.id)
        if other is not None and other.tenant != req.tenant and not principal.is_admin:
            return replace(req, id=own)
        return req

    # ----- requests ---------------------------------------------------------------------------
    @staticmethod
    def request_for(principal: Principal, body: Any, *, tenant_optional: bool) -> Request | Rejection:
        """Turn a body into a Request owned by the right tenant (Forbidden for another tenant's id)."""
        if not isinstance(body, dict):
            return Rejection("invalid:request", "must be a JSON object")
        body = dict(body)
        given = body.get("tenant")
        if principal.is_admin:
            if given is None and not tenant_optional:
                return Rejection("invalid:tenant", "the admin token must name the tenant")
        elif given is None:
            body["tenant"] = principal.tenant
        elif isinstance(given, int) and not isinstance(given, bool) and given != principal.tenant:
            raise Forbidden("a tenant token may only act for its own tenant")
        if body.get("tenant") is None:
            body.pop("tenant", None)
        if isinstance(body.get("id"), str) and "@" in body["id"]:     # the controller's qualifier only
            return Rejection("invalid:id", "must be 1-64 characters of letters, digits, '-', '_' or '.'")
        try:
            return Request.from_dict(body)
        except InvalidRequest as e:
            return Rejection(f"invalid:{e.field}", e.detail)

    def reserve(self, principal: Principal, body: dict[str, Any]) -> Reservation | Rejection:
        """Admit a reservation request (body as in POST /v1/reservations), persist it, notify listeners.

        A keyed request (``controller.idempotency.current()``, set by the API for an
        ``Idempotency-Key``) whose key is known raises ``Replayed`` (same body) or ``KeyReused``
        and decides nothing; an admission records the key's answer in the reservation's own write.
        """
        attempt = idempotency.current()
        if attempt is not None:     # a key committed before this call: the store has it
            idempotency.replay(attempt, self._store.load_idempotency(attempt.scope, attempt.key))
        while True:
            try:
                return self._reserve(principal, body, attempt)
            except idempotency.InFlight as e:   # the same key is being committed: its answer is ours
                try:
                    self._store.wait(e.ticket)
                except StoreError:
                    pass                        # it was not written: decide this one afresh

    def _reserve(self, principal: Principal, body: dict[str, Any],
                 attempt: idempotency.Attempt | None) -> Reservation | Rejection:
        t0 = time.perf_counter()
        audit_body = body if isinstance(body, dict) else {"body": repr(body)[:200]}
        try:
            req = self.request_for(principal, body, tenant_optional=False)
        except ServiceError as e:
            audit.refusal(self._store, principal, "reserve", audit_body, e, principal.tenant)
            raise
        given = body.get("tenant") if isinstance(body, dict) else None
        tenant_of_entry = (req.tenant if isinstance(req, Request)
                           else given if isinstance(given, int) and not isinstance(given, bool) else principal.tenant)
        with self._lock:
            if attempt is not None:
                self._idempotency.check(attempt)    # one this process decided since the lookup above
            req = self.scoped(principal, req)
            if isinstance(req, Request) and req.id is not None and self._failover.down_reservation(req.id) is not None:
                req = Rejection("exists", f"id {req.id} belongs to a reservation that is down after a failure; "
                                          "delete it first")
            if isinstance(req, Request) and req.id is not None and req.id in self._unrestored:
                req = Rejection("exists", f"id {req.id} belongs to a stored reservation that could not be "
                                          "restored; delete it first")
            if isinstance(req, Request):
                overlap = self._same_traffic(req)
                if overlap is not None:   # a reason the scheduler would give (quota, capacity...) comes first
                    verdict = self._scheduler.evaluate(req)
                    req = verdict if isinstance(verdict, Rejection) else overlap
            result = req if isinstance(req, Rejection) else self._scheduler.admit(req)
            if isinstance(result, Rejection):
                rejected = result
                ticket = self._store.submit(lambda tx: tx.append_audit(
                    principal.actor, "reserve", audit_body, {"reason": rejected.reason, "detail": rejected.detail},
                    audit.rejection_status(rejected), tenant_of_entry))
            else:
                answer, note = detached(result), detached(result)
                if attempt is None:
                    ticket = self._store.submit(
                        lambda tx: self._write_admission(tx, principal, audit_body, answer),
                        committed=lambda: self._notifier.added(note),
                        failed=lambda: self._undo_admission(answer.id))
                else:
                    ticket = self._submit_keyed(attempt, principal, audit_body, answer, note)
        # group commit: the write is committed outside the lock, with whatever other requests
        # decided meanwhile (one transaction, one fsync); the answer waits for it
        self._store.wait(ticket)
        if isinstance(result, Rejection):
            self._metrics.rejected(result.reason, time.perf_counter() - t0)
            return result
        self._metrics.admitted(answer.tenant, time.perf_counter() - t0)
        self._notifier.flush()
        return answer

    def _submit_keyed(self, attempt: idempotency.Attempt, principal: Principal, audit_body: Any,
                      answer: Reservation, note: Reservation) -> Any:
        """Queue a keyed admission: the reservation, its audit entry and the key's record (the
        answer ``attempt.render`` makes of it, status 201) in one write. Caller holds the lock."""
        record = attempt.record(201, attempt.render(detached(answer)))
        ledger = self._idempotency

        def write(tx: Any) -> None:
            self._write_admission(tx, principal, audit_body, answer)
            tx.save_idempotency(attempt.scope, attempt.key, record)

        def committed() -> None:
            ledger.committed(attempt, record)
            self._notifier.added(note)

        def failed() -> None:
            ledger.failed(attempt)
            self._undo_admission(answer.id)

        ledger.begin(attempt)
        ticket = self._store.submit(write, committed=committed, failed=failed)
        ledger.attach(attempt, ticket)
        return ticket

    @staticmethod
    def _write_admission(tx: Any, principal: Principal, audit_body: Any, res: Reservation) -> None:
        tx.save_reservation(res)
        tx.append_audit(principal.actor, "reserve", audit_body, audit.summary(res), "ok", res.tenant)

    def _undo_admission(self, rid: str) -> None:
        """The store could not write an admission: the reservation never existed."""
        with self._lock:
            if rid in self._scheduler.reservations:
                self._scheduler.release(rid)
                self._scheduler.settle_cycle()      # ... and the cycle is what it was
        log.error("store write failed; reservation %s rolled back", rid)

    def _same_traffic(self, req: Request) -> Rejection | None:
        """An ``overlap:<id>`` rejection when the tenant already reserved exactly this traffic.

        Two reservations with the same tenant, endpoints and match would program the same
        OpenFlow match: the second would overwrite the first's entries on the switches and a
        later delete of one would remove the other's. Give distinct matches (e.g. UDP ports).
        """
        for other in self._scheduler.reservations.values():
            if (other.tenant == req.tenant and other.src == req.src and other.dst == req.dst
                    and (other.match or {}) == (req.match or {})):
                return Rejection(f"overlap:{other.id}",
                                 f"reservation {other.id} already carries this tenant's traffic from {req.src} "
                                 f"to {req.dst} with the same match; give a distinct match (e.g. a UDP port)")
        return None

    def _owned(self, principal: Principal, reservation_id: str) -> Reservation | None:
        res = self._scheduler.reservations.get(reservation_id)
        if res is None or (not principal.is_admin and res.tenant != principal.tenant):
            return None
        return res

    def release(self, principal: Principal, reservation_id: str) -> Reservation:
        """Delete a reservation; NotFound if absent or not the caller's. The slots are freed under
        the lock and the delete is group-committed after it (``Store.submit``); should the write
        fail, the reservation is put back on exactly its slots and the caller gets the error."""
        request = {"id": reservation_id}
        with self._lock:
            given, reservation_id = reservation_id, self.key_for(principal, reservation_id)
            res = self._owned(principal, reservation_id)
            if res is None:
                orphan = self._unrestored.get(reservation_id) or self._failover.down_reservation(reservation_id)
                if orphan is not None and (principal.is_admin or orphan.tenant == principal.tenant):
                    with self._store.transaction() as tx:
                        tx.drop_reservation(reservation_id)
                        tx.append_audit(principal.actor, "release", request, {"unrestored": True}, "ok",
                                        orphan.tenant)
                    self._unrestored.pop(reservation_id, None)
                    self._failover.forget_down(reservation_id)
                    return orphan
                err = NotFound(f"no reservation {given}")
                audit.refusal(self._store, principal, "release", request, err, principal.tenant)
                raise err
            released = self._scheduler.release(reservation_id)
            answer, note = detached(released), detached(released)
            self._scheduler.settle_cycle()
            rid, tenant = reservation_id, res.tenant
            ticket = self._store.submit(
                lambda tx: (tx.drop_reservation(rid),
                            tx.append_audit(principal.actor, "release", request, {"id": rid}, "ok", tenant)),
                committed=lambda: self._notifier.removed(note),
                failed=lambda: self._undo_release(answer))
        self._store.wait(ticket)        # group commit, as in reserve
        self._metrics.released(answer.tenant)
        self._notifier.flush()
        return answer

    def _undo_release(self, res: Reservation) -> None:
        """The store could not write a release: the reservation is back on exactly its slots."""
        with self._lock:
            if res.id not in self._scheduler.reservations:
                self._scheduler.restore(detached(res))
        log.error("store write failed; release of %s undone", res.id)

    def get(self, principal: Principal, reservation_id: str) -> Reservation:
        with self._lock:
            given, reservation_id = reservation_id, self.key_for(principal, reservation_id)
            res = self._owned(principal, reservation_id)
            if res is None:
                res = self._failover.down_reservation(reservation_id) or self._unrestored.get(reservation_id)
                if res is not None and not (principal.is_admin or res.tenant == principal.tenant):
                    res = None
            if res is None:
                raise NotFound(f"no reservation {given}")
            return detached(res)

    def list(self, principal: Principal, tenant: int | None = None) -> list[Reservation]:
        """The caller's reservations (admin: all, or one tenant's), ordered by id."""
        if not principal.is_admin:
            if tenant is not None and tenant != principal.tenant:
                return []
            tenant = principal.tenant
        with self._lock:
            items = [detached(r) for r in
                     list(self._scheduler.reservations.values()) + self._failover.down_reservations()
                     + list(self._unrestored.values())
                     if tenant is None or r.tenant == tenant]
        return sorted(items, key=lambda r: shown_id(principal, r.id))

    def what_if(self, principal: Principal, params: dict[str, Any]) -> Reservation | Rejection:
        """What admission would answer now, reserving nothing.

        A tenant's question is checked against its quotas; the admin may leave the tenant out, and
        then the tenant book is left out too (the question is only about the network; the answer
        names tenant 1, as it always has).
        """
        req = self.request_for(principal, params, tenant_optional=True)
        if isinstance(req, Rejection):
            return req
        with self._lock:
            req = self.scoped(principal, req)
            if principal.is_admin and params.get("tenant") is None:
                return self._scheduler.evaluate(replace(req, tenant=1), network_only=True)
            return self._scheduler.evaluate(req)

    # ----- day-2: modify (PATCH) ---------------------------------------------------------------
    #: Fields a PATCH may change (src, dst, tenant and id stay).
    MODIFIABLE = ("bandwidth_bps", "frame_bytes", "period_ns", "max_latency_ns", "max_jitter_ns", "match",
                  "protection")

    @staticmethod
    def modified_request(old: Reservation, patch: dict[str, Any]) -> dict[str, Any]:
        """The full request body ``old`` becomes with ``patch`` applied (the rate rule below).

        Rate: ``bandwidth_bps`` (with ``period_ns`` or the old period) or ``frame_bytes`` (with
        ``period_ns`` or the old period); ``period_ns`` alone keeps the bytes per period
        (``frame_bytes``); neither keeps both. ``match``/``protection``/``max_jitter_ns`` null
        removes them."""
        body: dict[str, Any] = {"tenant": old.tenant, "src": old.src, "dst": old.dst, "id": old.id,
                                "max_latency_ns": patch.get("max_latency_ns", old.max_latency_ns),
                                "period_ns": patch.get("period_ns", old.period_ns)}
        if "bandwidth_bps" in patch:
            body["bandwidth_bps"] = patch["bandwidth_bps"]
            if "frame_bytes" in patch:
                body["frame_bytes"] = patch["frame_bytes"]      # refused by the request's own rule
        else:
            body["frame_bytes"] = patch.get("frame_bytes", old.frame_bytes)
        jitter = patch["max_jitter_ns"] if "max_jitter_ns" in patch else old.max_jitter_ns
        if jitter is not None:
            body["max_jitter_ns"] = jitter
        match = patch["match"] if "match" in patch else old.match
        if match:
            body["match"] = dict(match)
        protection = patch["protection"] if "protection" in patch else old.protection
        if protection is not None:
            body["protection"] = protection
        return body

    def modify(self, principal: Principal, reservation_id: str, patch: dict[str, Any]) -> Reservation | Rejection:
        """Change a reservation's rate, bounds, match or protection, keeping its id.

        The new placement is decided first with the old one's slots freed (its own bandwidth does
        not count against the quota twice); a refusal puts the old one back on exactly its slots
        and changes nothing. On success the row is replaced and audited (one transaction) and the
        listeners hear ``reservations_changed([(old, new)])``: the data plane reprograms
        make-before-break (``controller.dataplane.programs.reroute``). NotFound for an id that is
        not the caller's; a down or unrestored reservation is a 409 ``not_active``."""
        t0 = time.perf_counter()
        request = {"id": reservation_id, **(patch if isinstance(patch, dict) else {})}
        with self._lock:
            given, reservation_id = reservation_id, self.key_for(principal, reservation_id)
            old_live = self._owned(principal, reservation_id)
            if old_live is None:
                orphan = self._unrestored.get(reservation_id) or self._failover.down_reservation(reservation_id)
                if orphan is not None and (principal.is_admin or orphan.tenant == principal.tenant):
                    result: Reservation | Rejection = Rejection(
                        "not_active", f"reservation {reservation_id} is {orphan.status} ({orphan.status_reason}); "
                                      "delete it and reserve again")
                    self._store.append_audit(principal.actor, "modify", request,
                                             {"reason": result.reason, "detail": result.detail},
                                             audit.rejection_status(result), orphan.tenant)
                    return result
                err = NotFound(f"no reservation {given}")
                audit.refusal(self._store, principal, "modify", request, err, principal.tenant)
                raise err
            old = detached(old_live)
            bad = sorted(set(patch) - set(self.MODIFIABLE)) if isinstance(patch, dict) else ["request"]
            if bad:
                req: Request | Rejection = Rejection(f"invalid:{bad[0]}", "cannot be changed by a PATCH (only "
                                                     + ", ".join(self.MODIFIABLE) + ")")
            elif not patch:
                req = Rejection("invalid:request", "nothing to change: give at least one of "
                                + ", ".join(self.MODIFIABLE))
            else:
                try:
                    req = Request.from_dict(self.modified_request(old, patch))
                except InvalidRequest as e:
                    req = Rejection(f"invalid:{e.field}", e.detail)
            if isinstance(req, Request):
                for other in self._scheduler.reservations.values():
                    if (other.id != old.id and other.tenant == req.tenant and other.src == req.src
                            and other.dst == req.dst and (other.match or {}) == (req.match or {})):
                        req = Rejection(f"overlap:{other.id}",
                                        f"reservation {other.id} already carries this tenant's traffic from "
                                        f"{req.src} to {req.dst} with the same match; give a distinct match")
                        break
            result = req
            if isinstance(req, Request):
                self._scheduler.release(old.id)             # the cycle stays: the old slots index it
                try:
                    result = self._scheduler.admit(req)
                except BaseException:
                    if old.id not in self._scheduler.reservations:
                        self._scheduler.restore(old)
                    raise
                if isinstance(result, Rejection):
                    self._scheduler.restore(old)            # exactly its slots again: nothing changed
            if isinstance(result, Rejection):
                self._store.append_audit(principal.actor, "modify", request,
                                         {"reason": result.reason, "detail": result.detail},
                                         audit.rejection_status(result), old.tenant)
                self._metrics.rejected(result.reason, time.perf_counter() - t0)
                return result
            try:
                with self._store.transaction() as tx:
                    tx.save_reservation(result)
                    tx.append_audit(principal.actor, "modify", request,
                                    {**audit.summary(result), "old": audit.summary(old)}, "ok", result.tenant)
            except BaseException:
                self._scheduler.release(result.id)
                self._scheduler.restore(old)
                self._scheduler.settle_cycle()
                log.exception("store write failed; modification of %s rolled back", result.id)
                raise
            self._scheduler.settle_cycle()      # the old period may have been what kept the cycle long
            new = self._scheduler.reservations[result.id]
            answer = detached(new)
            self._notifier.changed(old, detached(new))
        self._notifier.flush()
        return answer

    # ----- day-2: a tenant deleted -----------------------------------------------------------
    def release_tenant(self, tenant_id: int, write_rest: Any) -> list[Reservation]:
        """Release every reservation of ``tenant_id`` (on the network, down or unrestored) in one
        store transaction, in which ``write_rest(tx, ids)`` writes the rest (the tenant row, the
        audit entry); then free their slots, settle the cycle and queue their removal for the
        listeners (the switches' entries go). Caller holds the lock and flushes the notifier."""
        live = [detached(r) for r in self._scheduler.reservations.values() if r.tenant == tenant_id]
        orphans = [r for r in list(self._unrestored.values()) + self._failover.down_reservations()
                   if r.tenant == tenant_id]
        ids = sorted({r.id for r in live + orphans})
        with self._store.transaction() as tx:
            for rid in ids:
                tx.drop_reservation(rid)
            tx.delete_idempotency_scope(f"tenant:{tenant_id}")     # its keys die with it
            write_rest(tx, ids)
        self._idempotency.forget(f"tenant:{tenant_id}")
        for r in live:
            self._scheduler.release(r.id)
            self._notifier.removed(r)
            self._metrics.released(tenant_id)
        for r in orphans:
            self._unrestored.pop(r.id, None)
            self._failover.forget_down(r.id)
        if live:
            self._scheduler.settle_cycle()
        return live + orphans

    # ----- day-2: listing at scale ---------------------------------------------------------------
    def list_page(self, principal: Principal, *, tenant: int | None = None, src: str | None = None,
                  dst: str | None = None, status: str | None = None, after: str | None = None,
                  limit: int | None = None) -> tuple[list[Reservation], str | None]:
        """One page of the caller's reservations (as ``list``: admin all or ``tenant``'s), ordered
        by id, filtered by ``src``/``dst``/``status`` (``active``, ``down``, ``unrestored``), those
        with an id above ``after`` only; at most ``limit`` (None: all). Returns the page and the id
        to continue after (None: nothing more). Keyset paging: a reservation present from the
        first page to the last is seen exactly once, whatever is added or deleted meanwhile."""
        if not principal.is_admin:
            tenant = principal.tenant

        def key(r: Reservation) -> str:         # pages by the ids the caller sees (a tenant's own form)
            return shown_id(principal, r.id)

        with self._lock:
            pool = (list(self._scheduler.reservations.values()) + self._failover.down_reservations()
                    + list(self._unrestored.values()))
            chosen = sorted((r for r in pool
                             if (tenant is None or r.tenant == tenant) and (src is None or r.src == src)
                             and (dst is None or r.dst == dst)
                             and (status is None or (r.status or "active") == status)
                             and (after is None or key(r) > after)), key=key)
            more = limit is not None and len(chosen) > limit
            if limit is not None:
                chosen = chosen[:limit]
            page = [detached(r) for r in chosen]
        return page, (key(page[-1]) if more and page else None)
