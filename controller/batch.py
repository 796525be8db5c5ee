"""Bulk and gang admission: many reservation requests, or many deletes, as one change.

``reserve_batch`` admits a list of requests in order under the service lock and stores them in one
transaction (``atomic``: all or none, the first member that blocked is named); ``release_many``
deletes a list of ids all or none. Both follow the desk's commit order (decide, persist, undo the
scheduler on a failed write, then notify after the lock) and use the desk's own collaborators
(``controller.reservations.ReservationDesk``): this module is its batch half, kept apart so the
single-request paths stay as they are.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from controller import audit, idempotency
from controller.auth import Principal
from controller.core.model import Rejection, Request, Reservation
from controller.errors import Invalid, NotFound, ServiceError
from controller.reservations import ReservationDesk
from controller.views import detached

log = logging.getLogger("detnet.controller")


class BatchMemberError(ServiceError):
    """A batch refused because of one member: ``index`` in the request's list, ``error`` what that
    member got (Forbidden, NotFound, Invalid)."""

    def __init__(self, index: int, error: ServiceError):
        super().__init__(f"[{index}] {error.detail}")
        self.index, self.error = index, error
        self.code = error.code


class BatchOutcome:
    """What a batch got: ``admitted`` (in request order), ``rejected`` (``(index, Rejection)``), and
    for a refused atomic batch ``blocked`` (the first member that blocked it; nothing was kept)."""

    def __init__(self) -> None:
        self.admitted: list[Reservation] = []
        self.rejected: list[tuple[int, Rejection]] = []
        self.blocked: tuple[int, Rejection] | None = None


def reserve_batch(desk: ReservationDesk, principal: Principal, bodies: list[Any], *,
                   atomic: bool) -> BatchOutcome:
    """Admit a list of request bodies (each as in POST /v1/reservations, or a ``Rejection`` the API
    already gave it) in order, under the service lock, in one store transaction.

    ``atomic``: all or none; the first member refused stops the batch (``outcome.blocked``), every
    member admitted before it is released again (the cycle settled back) and nothing is stored or
    notified. Otherwise the members refused are in ``outcome.rejected`` and the others admitted.
    A member naming another tenant (tenant token) refuses the whole batch (``BatchMemberError``).
    Listeners hear the members in one ``reservations_added`` call, after the commit (the os-ken shim
    programs them as one program: one message run and barrier per phase on each switch).
    """
    t0 = time.perf_counter()
    attempt = idempotency.current()     # an Idempotency-Key: its answer is written with the batch
    if attempt is not None:
        idempotency.replay(attempt, desk._store.load_idempotency(attempt.scope, attempt.key))
    out = BatchOutcome()
    reqs: list[Request | Rejection] = []
    for i, body in enumerate(bodies):
        if isinstance(body, Rejection):
            reqs.append(body)
            continue
        try:
            reqs.append(desk.request_for(principal, body, tenant_optional=False))
        except ServiceError as e:
            audit.refusal(desk._store, principal, "reserve_batch", {"index": i, "reservation": body}, e,
                          principal.tenant)
            raise BatchMemberError(i, e) from None
    with desk._lock:
        if attempt is not None:
            desk._idempotency.check(attempt)
        placed: list[tuple[int, Reservation]] = []
        traffic: dict[tuple, str] = {}
        for other in desk._scheduler.reservations.values():
            traffic.setdefault(_traffic_key(other.tenant, other.src, other.dst, other.match), other.id)
        try:
            for i, req in enumerate(reqs):
                result = req if isinstance(req, Rejection) else _precheck(desk, desk.scoped(principal, req), traffic)
                if not isinstance(result, Rejection):
                    result = desk._scheduler.admit(result)
                    if isinstance(result, Reservation):
                        traffic.setdefault(_traffic_key(result.tenant, result.src, result.dst, result.match),
                                           result.id)
                if isinstance(result, Rejection):
                    desk._metrics.rejected(result.reason)
                    if atomic:
                        out.blocked = (i, result)
                        break
                    out.rejected.append((i, result))
                else:
                    placed.append((i, result))
        except BaseException:
            _rollback(desk, [r for _, r in placed])     # a bug must not leave half a batch admitted
            raise
        if out.blocked is not None:
            _rollback(desk, [r for _, r in placed])
            i, rej = out.blocked
            desk._store.append_audit(principal.actor, "reserve_batch", {"atomic": True, "count": len(bodies)},
                                     {"index": i, "reason": rej.reason, "detail": rej.detail},
                                     audit.rejection_status(rej), principal.tenant)
            return out
        try:
            with desk._store.transaction() as tx:
                for i, res in placed:
                    tx.save_reservation(res)
                    tx.append_audit(principal.actor, "reserve", {"batch_index": i, **bodies[i]},
                                    audit.summary(res), "ok", res.tenant)
                for i, rej in out.rejected:
                    body = bodies[i] if isinstance(bodies[i], dict) else {}
                    tx.append_audit(principal.actor, "reserve", {"batch_index": i, **body},
                                    {"reason": rej.reason, "detail": rej.detail}, audit.rejection_status(rej),
                                    body.get("tenant") if isinstance(body.get("tenant"), int) else principal.tenant)
                if attempt is not None:
                    record = attempt.record(201, attempt.render([detached(r) for _, r in placed], out.rejected))
                    tx.save_idempotency(attempt.scope, attempt.key, record)
        except BaseException:
            _rollback(desk, [r for _, r in placed])
            log.exception("store write failed; a batch of %d reservations rolled back", len(placed))
            raise
        if attempt is not None:
            desk._idempotency.committed(attempt, record)
        for _, res in placed:       # one copy for the answer and the listeners: neither changes it
            copy = detached(res)
            out.admitted.append(copy)
            desk._notifier.added(copy)
    elapsed = time.perf_counter() - t0
    for res in out.admitted:
        desk._metrics.admitted(res.tenant, elapsed / max(1, len(out.admitted)))
    desk._notifier.flush()
    return out


def release_many(desk: ReservationDesk, principal: Principal, ids: list[str]) -> list[Reservation]:
    """Delete every reservation of ``ids`` in one transaction, or none: an id that is unknown or not
    the caller's (404, never 403: an id leaks nothing) or given twice raises ``BatchMemberError``
    naming its index and nothing is deleted."""
    with desk._lock:
        seen: set[str] = set()
        keys: list[str] = []                # the stored ids, in the order given
        active: list[Reservation] = []
        orphans: list[Reservation] = []
        for i, rid in enumerate(ids):
            if rid in seen:
                raise BatchMemberError(i, Invalid("ids", f"id {rid} is given twice"))
            seen.add(rid)
            given, rid = rid, desk.key_for(principal, rid)
            keys.append(rid)
            res = desk._owned(principal, rid)
            if res is not None:
                active.append(res)
                continue
            orphan = desk._unrestored.get(rid) or desk._failover.down_reservation(rid)
            if orphan is not None and (principal.is_admin or orphan.tenant == principal.tenant):
                orphans.append(orphan)
                continue
            err = NotFound(f"no reservation {given}")
            audit.refusal(desk._store, principal, "release_many", {"ids": ids[:100], "index": i}, err,
                          principal.tenant)
            raise BatchMemberError(i, err)
        active_ids = {res.id for res in active}
        with desk._store.transaction() as tx:
            for res in active + orphans:
                tx.drop_reservation(res.id)
                tx.append_audit(principal.actor, "release", {"id": res.id, "batch": True},
                                {"id": res.id} if res.id in active_ids else {"unrestored": True}, "ok", res.tenant)
        for res in orphans:
            desk._unrestored.pop(res.id, None)
            desk._failover.forget_down(res.id)
        released = [detached(desk._scheduler.release(res.id)) for res in active]
        desk._scheduler.settle_cycle()
        for res in released:
            desk._notifier.removed(res)
    for res in released:
        desk._metrics.released(res.tenant)
    desk._notifier.flush()
    by_id = {r.id: r for r in released + [detached(o) for o in orphans]}
    return [by_id[rid] for rid in keys]


def _traffic_key(tenant: int, src: str, dst: str, match: dict[str, Any] | None) -> tuple:
    return (tenant, src, dst, json.dumps(match or {}, sort_keys=True))


def _precheck(desk: ReservationDesk, req: Request, traffic: dict[tuple, str]) -> Request | Rejection:
    """The checks ``reserve`` makes before the scheduler: ids held by a down or unrestored
    reservation (``exists``), the tenant's same traffic (``overlap:<id>``, after the scheduler's own
    reason; ``traffic`` indexes what ``ReservationDesk._same_traffic`` scans, so a batch costs no
    scan of every reservation per member)."""
    if req.id is not None and desk._failover.down_reservation(req.id) is not None:
        return Rejection("exists", f"id {req.id} belongs to a reservation that is down after a failure; "
                                   "delete it first")
    if req.id is not None and req.id in desk._unrestored:
        return Rejection("exists", f"id {req.id} belongs to a stored reservation that could not be "
                                   "restored; delete it first")
    other = traffic.get(_traffic_key(req.tenant, req.src, req.dst, req.match))
    if other is not None:
        verdict = desk._scheduler.evaluate(req)
        if isinstance(verdict, Rejection):
            return verdict
        return Rejection(f"overlap:{other}",
                         f"reservation {other} already carries this tenant's traffic from {req.src} "
                         f"to {req.dst} with the same match; give a distinct match (e.g. a UDP port)")
    return req


def _rollback(desk: ReservationDesk, placed: list[Reservation]) -> None:
    """Undo the scheduler admissions of a batch (newest first), then settle the cycle back."""
    for res in reversed(placed):
        desk._scheduler.release(res.id)
    desk._scheduler.settle_cycle()
