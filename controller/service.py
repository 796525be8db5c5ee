"""The controller's application service: tenants, reservations, auth, audit and data-plane hooks.

One ``ControllerService`` owns the Scheduler (pure core), the TenantBook, the Store (SQLite) and
the process metrics. The REST API and the os-ken application both call it, from different
threads, so every state change happens under one lock and in this order:

1. decide (scheduler), 2. persist (one store transaction: the row and its audit entry),
3. if the store write fails, undo the scheduler change (atomic: both or neither),
4. after the lock is released, tell the listeners (in commit order, exceptions logged).

On start it reloads tenants and reservations from the store and puts every reservation back on
exactly its slots (``Scheduler.restore``). A reservation that no longer fits (the topology
changed, say) is logged and audited as ``restore_failed`` and kept in the store, listed by
``unrestored()``; deleting it (admin or owner) removes the row.

Link failures (``link_down``/``link_up``, called by the os-ken shim on port status): every
reservation on the failed link is re-placed by ``Scheduler.repair`` (same id, tenant and bounds;
a protected one keeps its surviving path) and persisted; one that no longer fits anywhere is
taken off the network but kept in the store with ``status: "down"`` and the reason, audited as
``reservation_down`` (an event in /v1/events), and listed with its status until deleted. Listeners
get ``reservation_changed(old, new)`` (or removed/added when they lack it). On link up the down
reservations and degraded protected ones are tried again; the others stay where they are.

The service knows nothing of HTTP: it returns Reservations and Rejections and raises
``Forbidden``/``NotFound``/``Invalid``/``Conflict``; ``controller.api`` maps those to status codes.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from dataclasses import replace
from typing import Any, Callable

from controller.auth import (ADMIN_HASH_KEY, Principal, configured_admin_token, find_principal,
                             generate_token, hash_token)
from controller.core.model import InvalidRequest, Rejection, Request, Reservation, Tenant
from controller.core.scheduler import Scheduler
from controller.core.tenants import TenantBook, TenantLimitError
from controller.metrics import Metrics
from controller.store import Store

log = logging.getLogger("detnet.controller")

#: Tenant ids double as VLAN ids, hence 1..4094 (see topologies/hosts.py).
MAX_TENANT_ID = 4094
MAX_NAME_CHARS = 64
MAX_QUOTA_BPS = 10**15
MAX_RESERVATIONS_QUOTA = 10**7


class ServiceError(Exception):
    """A request the service refuses; ``code`` is the API error code."""

    code = "error"

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class Forbidden(ServiceError):
    code = "forbidden"


class NotFound(ServiceError):
    code = "not_found"


class Invalid(ServiceError):
    """A bad field; ``field`` names it."""

    code = "invalid"

    def __init__(self, field: str, detail: str):
        super().__init__(detail)
        self.field = field


class Conflict(ServiceError):
    """The request is well formed but cannot be granted; ``reason`` is machine-readable."""

    code = "rejected"

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def _copy(res: Reservation) -> Reservation:
    return Reservation.from_dict(res.to_dict())


def _summary(res: Reservation) -> dict[str, Any]:
    """What the audit log keeps of an admitted reservation (no slot lists: they can be long)."""
    return {"id": res.id, "tenant": res.tenant, "path": list(res.path), "period_ns": res.period_ns,
            "frame_bytes": res.frame_bytes, "bandwidth_bps": res.bandwidth_bps,
            "latency_bound_ns": res.latency_bound_ns, "jitter_bound_ns": res.jitter_bound_ns}


def _status_of(rej: Rejection) -> str:
    return "invalid" if rej.code == "invalid" else "rejected"


def _stderr_announce(token: str) -> None:
    print(f"detnet controller: generated admin token (shown once; its hash is stored, set "
          f"DNCTL_ADMIN_TOKEN to choose your own): {token}", file=sys.stderr, flush=True)


class ControllerService:
    """Everything the REST API and the OpenFlow application share. Thread-safe."""

    def __init__(self, topology, *, db_path: str, host_plan=None, admin_token: str | None = None,
                 scheduler_options: dict[str, Any] | None = None, max_tenants: int = 128,
                 announce: Callable[[str], None] | None = None, store_synchronous: str = "FULL"):
        self.topology = topology
        self.host_plan = host_plan
        self.max_tenants = int(max_tenants)
        self.store = Store(db_path, synchronous=store_synchronous)
        self.tenants = TenantBook(self.max_tenants)
        self.scheduler = Scheduler(topology, tenants=self.tenants, **(scheduler_options or {}))
        self.metrics = Metrics()
        self.started = time.time()
        self._lock = threading.RLock()
        self._listeners: list[Any] = []
        self._pending: deque[tuple[str, Reservation]] = deque()
        self._notify_lock = threading.RLock()
        self._switches: set[int] = set()
        self._link_check: dict[str, Any] = {"expected": len(topology.links()), "seen": 0, "missing": [],
                                            "unexpected": [], "checked": False}
        self._token_hashes: dict[int, str] = {}
        self._admin_hash: str | None = None
        self._unrestored: dict[str, Reservation] = {}
        #: reservations a failure left without a path (status "down"), by id; stored, not scheduled
        self._down: dict[str, Reservation] = {}
        #: physical links (frozenset of the two nodes) reported down
        self._links_down: set[frozenset[str]] = set()
        self._link_stats: dict[str, Any] = {"down_events": 0, "up_events": 0, "rerouted": 0, "went_down": 0,
                                            "last_reprogram_s": None, "last_affected": 0}
        #: True when this start generated the admin token (it was announced once).
        self.admin_token_generated = False
        self._init_admin(admin_token, announce or _stderr_announce)
        self._load()

    @classmethod
    def from_config(cls, config, topology, host_plan=None, **kw) -> "ControllerService":
        """Build from a ``controller.config.ControllerConfig``."""
        return cls(topology, db_path=config.db_path, host_plan=host_plan, admin_token=config.admin_token,
                   scheduler_options=config.scheduler_options(), max_tenants=config.max_tenants, **kw)

    # ----- start-up -------------------------------------------------------------------
    def _init_admin(self, admin_token: str | None, announce: Callable[[str], None]) -> None:
        token = configured_admin_token(admin_token)
        stored = self.store.get_setting(ADMIN_HASH_KEY)
        if token is not None:
            h = hash_token(token)
            if h != stored:
                with self.store.transaction() as tx:
                    tx.set_setting(ADMIN_HASH_KEY, h)
                    tx.append_audit("system", "admin_token_set", status="ok")
            self._admin_hash = h
        elif stored:
            self._admin_hash = stored
        else:
            token = generate_token()
            h = hash_token(token)
            with self.store.transaction() as tx:
                tx.set_setting(ADMIN_HASH_KEY, h)
                tx.append_audit("system", "admin_token_generated", status="ok")
            self._admin_hash = h
            self.admin_token_generated = True
            announce(token)

    def _load(self) -> None:
        stored = self.store.load_tenants()
        if len(stored) > self.max_tenants:
            log.warning("the store holds %d tenants, above max_tenants %d: keeping them all, adding none",
                        len(stored), self.max_tenants)
            self.tenants.max_tenants = len(stored)
        for st in stored:
            self.tenants.add(st.tenant)
            self._token_hashes[st.tenant.id] = st.token_hash
        restored = 0
        for res in self.store.load_reservations():
            if res.status == "down":
                self._down[res.id] = res
                continue
            try:
                self.scheduler.restore(res)
                restored += 1
            except Exception as e:  # noqa: BLE001 - any failure is reported, never silent
                self._unrestored[res.id] = res
                log.error("reservation %s (tenant %s) could not be restored: %s", res.id, res.tenant, e)
                self.store.append_audit("system", "restore_failed", {"id": res.id},
                                        {"reason": str(e)}, "error", res.tenant)
        self.store.append_audit("system", "start", None,
                                {"tenants": len(stored), "reservations": restored,
                                 "unrestored": sorted(self._unrestored)}, "ok")
        log.info("controller state loaded: %d tenants, %d reservations restored, %d could not be",
                 len(stored), restored, len(self._unrestored))

    def close(self) -> None:
        self.store.close()

    # ----- auth -----------------------------------------------------------------------
    def authenticate(self, token: str | None) -> Principal | None:
        """The principal a bearer token stands for, or None (constant-time over all hashes)."""
        if not token:
            return None
        with self._lock:
            admin_hash, tenant_hashes = self._admin_hash, list(self._token_hashes.items())
        return find_principal(token, admin_hash, tenant_hashes)

    @staticmethod
    def _require_admin(principal: Principal | None) -> None:
        if principal is not None and not principal.is_admin:
            raise Forbidden("this operation needs the admin token")

    def _audit_refusal(self, principal: Principal, action: str, request: Any, err: ServiceError,
                       tenant: int | None) -> None:
        outcome: dict[str, Any] = {"error": err.code, "detail": err.detail}
        if isinstance(err, Invalid):
            outcome["field"] = err.field
        if isinstance(err, Conflict):
            outcome["reason"] = err.reason
        status = {"invalid": "invalid", "rejected": "rejected"}.get(err.code, err.code)
        self.store.append_audit(principal.actor, action, request, outcome, status, tenant)

    def record_refusal(self, principal: Principal, action: str, request: Any, code: str, detail: str,
                       field: str | None = None) -> None:
        """Audit a request refused before it reached the service (e.g. by the API's body validation)."""
        outcome: dict[str, Any] = {"error": code, "detail": detail}
        if field is not None:
            outcome["field"] = field
        self.store.append_audit(principal.actor, action, request, outcome,
                                "invalid" if code in ("invalid", "bad_request") else code, principal.tenant)

    # ----- tenants ----------------------------------------------------------------------
    def _tenant_view(self, t: Tenant) -> dict[str, Any]:
        u = self.tenants.usage(t.id)
        return {"id": t.id, "name": t.name, "quota_bps": t.quota_bps, "max_reservations": t.max_reservations,
                "reserved_bps": u.bps, "reservations": u.reservations}

    @staticmethod
    def _check_tenant_fields(fields: dict[str, Any]) -> None:
        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        if "name" in fields:
            name = fields["name"]
            if (not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_CHARS or not name.isprintable()
                    or name != name.strip()):
                raise Invalid("name", f"must be 1-{MAX_NAME_CHARS} printable characters without outer spaces")
        for key, top in (("quota_bps", MAX_QUOTA_BPS), ("max_reservations", MAX_RESERVATIONS_QUOTA)):
            if key in fields and fields[key] is not None:
                v = fields[key]
                if not is_int(v) or not 0 <= v <= top:
                    raise Invalid(key, f"must be null or an integer in [0, {top}]")

    def _next_tenant_id(self) -> int | None:
        used = {t.id for t in self.tenants}
        top = max(used, default=0)
        if top < MAX_TENANT_ID:
            return top + 1
        return next((i for i in range(1, MAX_TENANT_ID + 1) if i not in used), None)

    def create_tenant(self, name: str, quota_bps: int | None = None, max_reservations: int | None = None,
                      *, principal: Principal | None = None) -> tuple[Tenant, str]:
        """Add a tenant; returns it and its token (shown once, only its hash is kept)."""
        principal = principal or Principal.admin()
        request = {"name": name, "quota_bps": quota_bps, "max_reservations": max_reservations}
        try:
            self._require_admin(principal)
            self._check_tenant_fields(request)
            with self._lock:
                if any(t.name == name for t in self.tenants):
                    raise Conflict("exists", f"a tenant named {name!r} exists")
                if len(self.tenants) >= self.tenants.max_tenants:
                    raise Conflict("tenant_limit", f"the limit of {self.tenants.max_tenants} tenants is reached")
                tid = self._next_tenant_id()
                if tid is None:
                    raise Conflict("tenant_limit", f"every tenant id 1..{MAX_TENANT_ID} is taken")
                tenant = Tenant(tid, name, quota_bps, max_reservations)
                token = generate_token()
                h = hash_token(token)
                try:
                    with self.store.transaction() as tx:
                        tx.save_tenant(tenant, h)
                        tx.append_audit(principal.actor, "create_tenant", request,
                                        {"id": tid, "name": name}, "ok", tid)
                        self.tenants.add(tenant)
                except TenantLimitError as e:
                    raise Conflict("tenant_limit", str(e)) from None
                self._token_hashes[tid] = h
        except ServiceError as e:
            self._audit_refusal(principal, "create_tenant", request, e, None)
            raise
        log.info("tenant %d (%s) created", tid, name)
        return tenant, token

    def update_tenant(self, tenant_id: int, *, principal: Principal | None = None, **fields: Any) -> dict[str, Any]:
        """Change a tenant's name, quota_bps or max_reservations (None: unlimited); returns its view."""
        principal = principal or Principal.admin()
        request = {"id": tenant_id, **fields}
        try:
            self._require_admin(principal)
            bad = sorted(set(fields) - {"name", "quota_bps", "max_reservations"})
            if bad:
                raise Invalid(bad[0], "unknown field")
            self._check_tenant_fields(fields)
            with self._lock:
                if tenant_id not in self.tenants:
                    raise NotFound(f"no tenant {tenant_id}")
                if "name" in fields and any(t.name == fields["name"] and t.id != tenant_id for t in self.tenants):
                    raise Conflict("exists", f"a tenant named {fields['name']!r} exists")
                new = replace(self.tenants.get(tenant_id), **fields)
                with self.store.transaction() as tx:
                    tx.save_tenant(new)
                    tx.append_audit(principal.actor, "update_tenant", request, {"id": tenant_id}, "ok", tenant_id)
                    self.tenants.update(tenant_id, **fields)
                return self._tenant_view(self.tenants.get(tenant_id))
        except ServiceError as e:
            self._audit_refusal(principal, "update_tenant", request, e, tenant_id)
            raise

    def get_tenant(self, tenant_id: int, *, principal: Principal | None = None) -> dict[str, Any]:
        self._require_admin(principal)
        with self._lock:
            if tenant_id not in self.tenants:
                raise NotFound(f"no tenant {tenant_id}")
            return self._tenant_view(self.tenants.get(tenant_id))

    def list_tenants(self, *, principal: Principal | None = None) -> list[dict[str, Any]]:
        """Every tenant with its quotas and current usage (reserved_bps, reservations)."""
        self._require_admin(principal)
        with self._lock:
            return [self._tenant_view(t) for t in self.tenants]

    # ----- reservations -------------------------------------------------------------------
    def _request_for(self, principal: Principal, body: Any, *, tenant_optional: bool) -> Request | Rejection:
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
        try:
            return Request.from_dict(body)
        except InvalidRequest as e:
            return Rejection(f"invalid:{e.field}", e.detail)

    def reserve(self, principal: Principal, body: dict[str, Any]) -> Reservation | Rejection:
        """Admit a reservation request (body as in POST /v1/reservations), persist it, notify listeners."""
        t0 = time.perf_counter()
        audit_body = body if isinstance(body, dict) else {"body": repr(body)[:200]}
        try:
            req = self._request_for(principal, body, tenant_optional=False)
        except ServiceError as e:
            self._audit_refusal(principal, "reserve", audit_body, e, principal.tenant)
            raise
        given = body.get("tenant") if isinstance(body, dict) else None
        tenant_of_entry = (req.tenant if isinstance(req, Request)
                           else given if isinstance(given, int) and not isinstance(given, bool) else principal.tenant)
        with self._lock:
            if isinstance(req, Request) and req.id is not None and req.id in self._down:
                req = Rejection("exists", f"id {req.id} belongs to a reservation that is down after a failure; "
                                          "delete it first")
            if isinstance(req, Request) and req.id is not None and req.id in self._unrestored:
                req = Rejection("exists", f"id {req.id} belongs to a stored reservation that could not be "
                                          "restored; delete it first")
            if isinstance(req, Request):
                overlap = self._same_traffic(req)
                if overlap is not None:   # a reason the scheduler would give (quota, capacity...) comes first
                    verdict = self.scheduler.evaluate(req)
                    req = verdict if isinstance(verdict, Rejection) else overlap
            result = req if isinstance(req, Rejection) else self.scheduler.admit(req)
            if isinstance(result, Rejection):
                self.store.append_audit(principal.actor, "reserve", audit_body,
                                        {"reason": result.reason, "detail": result.detail},
                                        _status_of(result), tenant_of_entry)
                self.metrics.rejected(result.reason, time.perf_counter() - t0)
                return result
            try:
                with self.store.transaction() as tx:
                    tx.save_reservation(result)
                    tx.append_audit(principal.actor, "reserve", audit_body, _summary(result), "ok", result.tenant)
            except BaseException:
                self.scheduler.release(result.id)      # roll back: the reservation never existed
                log.exception("store write failed; reservation %s rolled back", result.id)
                raise
            answer = _copy(result)
            self._pending.append(("added", _copy(result)))
        self.metrics.admitted(answer.tenant, time.perf_counter() - t0)
        self._flush()
        return answer

    def _same_traffic(self, req: Request) -> Rejection | None:
        """An ``overlap:<id>`` rejection when the tenant already reserved exactly this traffic.

        Two reservations with the same tenant, endpoints and match would program the same
        OpenFlow match: the second would overwrite the first's entries on the switches and a
        later delete of one would remove the other's. Give distinct matches (e.g. UDP ports).
        """
        for other in self.scheduler.reservations.values():
            if (other.tenant == req.tenant and other.src == req.src and other.dst == req.dst
                    and (other.match or {}) == (req.match or {})):
                return Rejection(f"overlap:{other.id}",
                                 f"reservation {other.id} already carries this tenant's traffic from {req.src} "
                                 f"to {req.dst} with the same match; give a distinct match (e.g. a UDP port)")
        return None

    def _owned(self, principal: Principal, reservation_id: str) -> Reservation | None:
        res = self.scheduler.reservations.get(reservation_id)
        if res is None or (not principal.is_admin and res.tenant != principal.tenant):
            return None
        return res

    def release(self, principal: Principal, reservation_id: str) -> Reservation:
        """Delete a reservation (store first, then the slots); NotFound if absent or not the caller's."""
        request = {"id": reservation_id}
        with self._lock:
            res = self._owned(principal, reservation_id)
            if res is None:
                orphan = self._unrestored.get(reservation_id) or self._down.get(reservation_id)
                if orphan is not None and (principal.is_admin or orphan.tenant == principal.tenant):
                    with self.store.transaction() as tx:
                        tx.delete_reservation(reservation_id)
                        tx.append_audit(principal.actor, "release", request, {"unrestored": True}, "ok",
                                        orphan.tenant)
                    self._unrestored.pop(reservation_id, None)
                    self._down.pop(reservation_id, None)
                    return orphan
                err = NotFound(f"no reservation {reservation_id}")
                self._audit_refusal(principal, "release", request, err, principal.tenant)
                raise err
            with self.store.transaction() as tx:
                tx.delete_reservation(reservation_id)
                tx.append_audit(principal.actor, "release", request, {"id": reservation_id}, "ok", res.tenant)
            released = self.scheduler.release(reservation_id)
            answer = _copy(released)
            self._pending.append(("removed", _copy(released)))
        self.metrics.released(answer.tenant)
        self._flush()
        return answer

    def get_reservation(self, principal: Principal, reservation_id: str) -> Reservation:
        with self._lock:
            res = self._owned(principal, reservation_id)
            down = self._down.get(reservation_id)
            if res is None and down is not None and (principal.is_admin or down.tenant == principal.tenant):
                return _copy(down)
            if res is None:
                raise NotFound(f"no reservation {reservation_id}")
            return _copy(res)

    def list_reservations(self, principal: Principal, tenant: int | None = None) -> list[Reservation]:
        """The caller's reservations (admin: all, or one tenant's), ordered by id."""
        if not principal.is_admin:
            if tenant is not None and tenant != principal.tenant:
                return []
            tenant = principal.tenant
        with self._lock:
            items = [_copy(r) for r in list(self.scheduler.reservations.values()) + list(self._down.values())
                     if tenant is None or r.tenant == tenant]
        return sorted(items, key=lambda r: r.id)

    def what_if(self, principal: Principal, params: dict[str, Any]) -> Reservation | Rejection:
        """What admission would answer now, reserving nothing.

        A tenant's question is checked against its quotas; the admin may leave the tenant out, and
        then quotas are ignored (the question is only about the network).
        """
        req = self._request_for(principal, params, tenant_optional=True)
        if isinstance(req, Rejection):
            return req
        with self._lock:
            if principal.is_admin and params.get("tenant") is None:
                book = self.scheduler.tenants
                self.scheduler.tenants = None       # no tenant named: ignore quotas (restored below)
                try:
                    req.tenant = 1
                    return self.scheduler.evaluate(req)
                finally:
                    self.scheduler.tenants = book
            return self.scheduler.evaluate(req)

    def unrestored(self) -> list[Reservation]:
        """Stored reservations that could not be put back on their slots at start-up."""
        with self._lock:
            return [_copy(r) for r in self._unrestored.values()]

    # ----- read-only views --------------------------------------------------------------------
    def schedule_dict(self, principal: Principal | None = None) -> dict[str, Any]:
        """The Schedule JSON contract; a tenant sees only its own reservations."""
        with self._lock:
            try:
                from schedules.schedule_json import schedule_to_dict
                d = schedule_to_dict(self.scheduler)
            except ImportError:
                d = self._fallback_schedule()
        if principal is not None and not principal.is_admin:
            d["reservations"] = [r for r in d["reservations"] if r.get("tenant") == principal.tenant]
        return d

    def _fallback_schedule(self) -> dict[str, Any]:
        topo = self.topology
        return {"version": 1, "cycle_ns": self.scheduler.cycle_ns, "slot_ns": self.scheduler.slot_ns,
                "topology": topo.name,
                "links": [{"src": u, "dst": v, "capacity_bps": topo.capacity_bps(u, v),
                           "propagation_ns": topo.propagation_ns(u, v)} for u, v in topo.directed_links()],
                "reservations": [r.to_dict() for r in sorted(self.scheduler.reservations.values(),
                                                              key=lambda r: r.id)]}

    def topology_dict(self) -> dict[str, Any]:
        """Native topology JSON plus the host plan (if any) and the LLDP link check."""
        d = self.topology.to_dict()
        d["hosts"] = self.host_plan.to_dict()["hosts"] if self.host_plan is not None else []
        d["link_check"] = self.link_check()
        with self._lock:
            down = set(self._links_down)
        for link in d.get("links", []):
            link["state"] = "down" if frozenset((link["src"], link["dst"])) in down else "up"
        d["links_down"] = sorted(sorted(l) for l in down)
        return d

    def events(self, principal: Principal, since: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """Audit entries after ``since`` (admin: all; a tenant: those about itself)."""
        tenant = None if principal.is_admin else principal.tenant
        return [e.to_dict() for e in self.store.list_audit(since, tenant=tenant, limit=limit)]

    def health(self) -> dict[str, Any]:
        with self._lock:
            return {"status": "ok", "switches_connected": len(self._switches),
                    "reservations": len(self.scheduler.reservations), "tenants": len(self.tenants),
                    "unrestored": len(self._unrestored), "uptime_s": round(time.time() - self.started, 3)}

    def metrics_text(self) -> str:
        with self._lock:
            by_tenant = {t.id: self.tenants.usage(t.id).reservations for t in self.tenants}
            share = self.scheduler.link_share()
            switches, tenants = len(self._switches), len(self.tenants)
            down, stats, n_down = set(self._links_down), dict(self._link_stats), len(self._down)
        text = self.metrics.render(reservations_by_tenant=by_tenant, link_share=share,
                                   switches_connected=switches, tenants=tenants)
        return text + self._link_metrics(down, stats, n_down)

    def _link_metrics(self, down: set[frozenset[str]], stats: dict[str, Any], n_down: int) -> str:
        """Link state and failure-handling series (appended to the Metrics exposition)."""
        from controller.metrics import escape_label
        out = ["# HELP detnet_link_up Physical link state (1 up, 0 reported down).", "# TYPE detnet_link_up gauge"]
        for l in self.topology.links():
            out.append(f'detnet_link_up{{link="{escape_label(l.src)}-{escape_label(l.dst)}"}} '
                       f'{0 if frozenset((l.src, l.dst)) in down else 1}')
        for name, key, help_ in (("detnet_link_down_events_total", "down_events", "Link-down reports handled."),
                                 ("detnet_link_up_events_total", "up_events", "Link-up reports handled."),
                                 ("detnet_reservations_rerouted_total", "rerouted",
                                  "Reservations re-placed after a link failure or recovery."),
                                 ("detnet_reservations_failed_total", "went_down",
                                  "Reservations a failure left without any path.")):
            out += [f"# HELP {name} {help_}", f"# TYPE {name} counter", f"{name} {stats[key]}"]
        out += ["# HELP detnet_reservations_down Reservations currently down after a failure.",
                "# TYPE detnet_reservations_down gauge", f"detnet_reservations_down {n_down}"]
        if stats["last_reprogram_s"] is not None:
            out += ["# HELP detnet_link_reprogram_seconds Last link event: report to every affected "
                    "reservation reprogrammed.", "# TYPE detnet_link_reprogram_seconds gauge",
                    f"detnet_link_reprogram_seconds {stats['last_reprogram_s']:.6f}"]
        return "\n".join(out) + "\n"

    # ----- data-plane hooks (the os-ken application calls these) --------------------------------
    def add_listener(self, listener: Any) -> None:
        """Register an object with ``reservation_added(res)`` and ``reservation_removed(res)``,
        optionally ``reservation_changed(old, new)`` or ``reservations_changed([(old, new), ...])``
        (a batch: all reservations one link event moved; else removed + added are called).

        They are called after the change is committed, outside the service lock, in commit order,
        with a copy of the Reservation; an exception in a listener is logged, never raised.
        """
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Any) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _flush(self) -> None:
        with self._notify_lock:
            while True:
                try:
                    kind, res = self._pending.popleft()
                except IndexError:
                    return
                if kind == "changed":
                    # consecutive changes (one link event) go to a listener in one batch
                    batch = [res]
                    while self._pending and self._pending[0][0] == "changed":
                        batch.append(self._pending.popleft()[1])
                    res = batch
                with self._lock:
                    listeners = list(self._listeners)
                for listener in listeners:
                    try:
                        if kind == "changed":
                            if hasattr(listener, "reservations_changed"):
                                listener.reservations_changed(res)
                            else:
                                for old, new in res:
                                    if hasattr(listener, "reservation_changed"):
                                        listener.reservation_changed(old, new)
                                    else:
                                        listener.reservation_removed(old)
                                        listener.reservation_added(new)
                        else:
                            getattr(listener, "reservation_added" if kind == "added" else "reservation_removed")(res)
                    except Exception:  # noqa: BLE001 - a broken listener must not break the API
                        log.exception("listener %r failed on %s", listener, kind)

    def observe_install(self, op: str, reservation_id: str, seconds: float, ok: bool) -> None:
        """The OpenFlow shim reports how long installing/removing a reservation's flows took."""
        self.metrics.installed(op, seconds, ok)

    def link_reserved_bps(self) -> dict[tuple[str, str], int]:
        """Reserved bit/s per directed link (cheap: no reservation is copied), for the shim's
        best-effort meters after each change."""
        with self._lock:
            return self.scheduler.reserved_bps()

    def reservations_snapshot(self) -> list[Reservation]:
        """Copies of every admitted reservation (e.g. to program a switch that just connected)."""
        with self._lock:
            return [_copy(r) for r in self.scheduler.reservations.values()]

    def switch_connected(self, dpid: int) -> None:
        with self._lock:
            self._switches.add(int(dpid))
        self.store.append_audit("system", "switch_connected", {"dpid": int(dpid)}, None, "ok")

    def switch_disconnected(self, dpid: int) -> None:
        with self._lock:
            self._switches.discard(int(dpid))
        self.store.append_audit("system", "switch_disconnected", {"dpid": int(dpid)}, None, "ok")

    def switches_connected(self) -> set[int]:
        with self._lock:
            return set(self._switches)

    def set_link_check(self, report: dict[str, Any]) -> None:
        """Record the LLDP verification report {"expected","seen","missing","unexpected"}."""
        with self._lock:
            self._link_check = {"checked": True, **dict(report)}

    def link_check(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._link_check)

    # ----- link failures (the os-ken shim calls these on port status) -------------------------------
    def failed_links(self) -> set[tuple[str, str]]:
        """Directed links currently marked failed (both directions of every link reported down)."""
        with self._lock:
            return set(self.scheduler.failed_links)

    def links_down(self) -> list[list[str]]:
        with self._lock:
            return sorted(sorted(l) for l in self._links_down)

    def _check_link(self, u: str, v: str) -> None:
        if not (self.topology.graph.has_edge(u, v) and self.topology.graph.has_edge(v, u)):
            raise NotFound(f"no link {u}-{v}")

    def link_down(self, u: str, v: str, *, detected_at: float | None = None,
                  actor: str = "system") -> dict[str, Any]:
        """Handle a physical link failure (both directions): re-place every reservation on it.

        Returns (and audits as ``link_down``) a summary: ``reservations_affected``, ``rerouted``
        (ids, new paths), ``down`` (ids and reasons), ``scheduling_s`` and ``reprogrammed_s``: from
        ``detected_at`` (``time.perf_counter()`` of the port-status report; default: this call) to
        the listeners returning, i.e. every affected reservation reprogrammed when the listener is
        the OpenFlow shim (it waits for barrier replies). Idempotent: a link already down is a no-op.
        """
        t0 = time.perf_counter() if detected_at is None else detected_at
        self._check_link(u, v)
        key = frozenset((u, v))
        with self._lock:
            if key in self._links_down:
                return {"link": [u, v], "already_down": True, "reservations_affected": 0}
            self._links_down.add(key)
            self._link_stats["down_events"] += 1
            self.scheduler.fail_link(u, v)
            self.scheduler.fail_link(v, u)
            affected = self.scheduler.affected_by({(u, v), (v, u)})
            summary = self._repair_all(affected, actor, "link_down", [u, v])
        return self._finish_link_event("link_down", [u, v], summary, t0, actor)

    def link_up(self, u: str, v: str, *, detected_at: float | None = None, actor: str = "system") -> dict[str, Any]:
        """A reported-down link works again: mark it usable, re-admit reservations that are down and
        re-protect degraded protected ones (others stay where they are: moving a working flow back
        would only risk loss). Audited as ``link_up``."""
        t0 = time.perf_counter() if detected_at is None else detected_at
        self._check_link(u, v)
        key = frozenset((u, v))
        with self._lock:
            if key not in self._links_down:
                return {"link": [u, v], "already_up": True, "reservations_affected": 0}
            self._links_down.discard(key)
            self._link_stats["up_events"] += 1
            self.scheduler.restore_link(u, v)
            self.scheduler.restore_link(v, u)
            degraded = sorted(r.id for r in self.scheduler.reservations.values()
                              if r.protection == "disjoint" and not r.protection_path)
            summary = self._repair_all(degraded, actor, "link_up", [u, v])
            summary["readmitted"] = self._readmit_down(actor)
        return self._finish_link_event("link_up", [u, v], summary, t0, actor)

    def _repair_all(self, ids: list[str], actor: str, cause: str, link: list[str]) -> dict[str, Any]:
        """Repair each reservation (atomic per reservation); persist and queue notifications. Lock held."""
        t0 = time.perf_counter()
        rerouted, down = [], []
        for rid in ids:
            old = self.scheduler.reservations.get(rid)
            if old is None:
                continue
            old = _copy(old)
            result = self.scheduler.repair(rid)
            if result is None:
                continue
            if isinstance(result, Rejection):
                self.scheduler.release(rid)
                dead = _copy(old)
                dead.status, dead.status_reason = "down", f"{cause} {link[0]}-{link[1]}: {result.reason}"
                try:
                    with self.store.transaction() as tx:
                        tx.save_reservation(dead)
                        tx.append_audit(actor, "reservation_down", {"id": rid, "link": link},
                                        {"reason": result.reason, "detail": result.detail, "path": old.path},
                                        "error", old.tenant)
                except BaseException:
                    self.scheduler.restore(old)
                    raise
                self._down[rid] = dead
                self._link_stats["went_down"] += 1
                down.append({"id": rid, "reason": result.reason})
                self._pending.append(("removed", _copy(old)))
                log.warning("reservation %s is down after %s %s-%s: %s", rid, cause, link[0], link[1], result.reason)
                continue
            try:
                with self.store.transaction() as tx:
                    tx.save_reservation(result)
                    tx.append_audit(actor, "reroute", {"id": rid, "cause": cause, "link": link},
                                    {"old_path": old.path, "path": result.path,
                                     "old_protection_path": old.protection_path,
                                     "protection_path": result.protection_path,
                                     "latency_bound_ns": result.latency_bound_ns}, "ok", result.tenant)
            except BaseException:
                self.scheduler.release(rid)
                self.scheduler.restore(old)
                raise
            self._link_stats["rerouted"] += 1
            rerouted.append({"id": rid, "path": result.path, "protection_path": result.protection_path})
            self._pending.append(("changed", (old, _copy(result))))
        return {"reservations_affected": len(ids), "rerouted": rerouted, "down": down,
                "scheduling_s": round(time.perf_counter() - t0, 6)}

    def _readmit_down(self, actor: str) -> list[str]:
        """Try every down reservation again (same id, tenant, bounds). Lock held."""
        back = []
        for rid, dead in list(self._down.items()):
            res = self.scheduler.admit(self.scheduler._request_of(dead))
            if isinstance(res, Rejection):
                continue
            try:
                with self.store.transaction() as tx:
                    tx.save_reservation(res)
                    tx.append_audit(actor, "reservation_up", {"id": rid}, _summary(res), "ok", res.tenant)
            except BaseException:
                self.scheduler.release(rid)
                raise
            del self._down[rid]
            back.append(rid)
            self._pending.append(("added", _copy(res)))
        return back

    def _finish_link_event(self, action: str, link: list[str], summary: dict[str, Any], t0: float,
                           actor: str) -> dict[str, Any]:
        """Notify listeners (they reprogram the switches), then time, count and audit the event."""
        self._flush()
        summary = {"link": link, **summary, "reprogrammed_s": round(time.perf_counter() - t0, 6)}
        with self._lock:
            self._link_stats["last_reprogram_s"] = summary["reprogrammed_s"]
            self._link_stats["last_affected"] = summary["reservations_affected"]
        self.store.append_audit(actor, action, {"link": link}, summary,
                                "ok" if not summary.get("down") else "degraded")
        log.info("%s %s-%s: %d reservations affected, %d rerouted, %d down, reprogrammed in %.1f ms", action,
                 link[0], link[1], summary["reservations_affected"], len(summary["rerouted"]),
                 len(summary["down"]), 1000 * summary["reprogrammed_s"])
        return summary

    def reservations_by_tenant(self) -> dict[int, int]:
        with self._lock:
            return {t.id: self.tenants.usage(t.id).reservations for t in self.tenants}

