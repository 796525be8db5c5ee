"""The controller's application service: the one facade the REST API and the os-ken shim call.

``ControllerService`` owns the Scheduler (pure core), the TenantBook, the Store (SQLite), the
process metrics and one lock, and hands each job to a collaborator with one job:

- ``controller.credentials``: token hashes, the admin token at start, ``authenticate``;
- ``controller.tenancy``: tenants (admin): create, change, list with quotas and usage;
- ``controller.reservations``: admit, release, read, what-if;
- ``controller.failover``: link down/up, re-placing and re-admitting reservations;
- ``controller.notify``: the ordered queue of committed changes and its listeners;
- ``controller.views`` and ``controller.metrics``: the documents and the Prometheus text;
- ``controller.audit``: what the audit log keeps of admissions and refusals.

The API and the shim call it from different threads, so every state change happens under the one
lock and in this order (the commit-order contract):

1. decide (scheduler), 2. persist (one store transaction: the row and its audit entry),
3. if the store write fails, undo the scheduler change (atomic: both or neither),
4. after the lock is released, tell the listeners (in commit order, exceptions logged).

On start it reloads tenants and reservations from the store and puts every reservation back on
exactly its slots (``Scheduler.restore``). A reservation that no longer fits (the topology
changed, say) is logged and audited as ``restore_failed`` and kept in the store, listed by
``unrestored()``; deleting it (admin or owner) removes the row. A reservation a link failure left
down stays stored with ``status: "down"`` until a link comes back and it fits again, or it is
deleted (see ``controller.failover``).

It implements ``controller.seams.DataPlaneHost`` for the shim, and tells its listeners
(``controller.seams.ReservationListener``) of every committed change. It knows nothing of HTTP:
it returns Reservations and Rejections and raises ``Forbidden``/``NotFound``/``Invalid``/
``Conflict`` (``controller.errors``, re-exported here); ``controller.api`` maps those to status codes.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any, Callable

from controller import audit, batch
from controller.auth import Principal
from controller.config import ControllerConfig
from controller.core.model import Rejection, Reservation, Tenant
from controller.core.scheduler import Scheduler
from controller.core.tenants import TenantBook
from controller.credentials import Credentials, stderr_announce
from controller.dataplane.translation import TranslationError, reservation_flows
from controller.errors import Conflict, Forbidden, Invalid, NotFound, ServiceError
from controller.failover import Failover
from controller.metrics import Metrics, State
from controller.notify import Notifier
from controller.reservations import ReservationDesk
from controller.seams import Link, ReservationListener
from controller.store import Store
from controller.storebase import StoreBase, StoreError
from controller.tenancy import MAX_TENANT_ID, TenantDesk
from controller.views import detached, health_view, schedule_view, tenant_view, topology_view
from topologies.hosts import HostPlan
from topologies.loaders import suggestion
from topologies.model import Topology

__all__ = ["ControllerService", "ServiceError", "Forbidden", "NotFound", "Invalid", "Conflict", "MAX_TENANT_ID"]

log = logging.getLogger("detnet.controller")


class ControllerService:
    """Everything the REST API and the OpenFlow application share. Thread-safe."""

    def __init__(self, topology: Topology, *, db_path: str | None = None, store: StoreBase | None = None,
                 host_plan: HostPlan | None = None, admin_token: str | None = None,
                 scheduler_options: dict[str, Any] | None = None, max_tenants: int = 128,
                 announce: Callable[[str], None] | None = None, store_synchronous: str = "FULL",
                 writable: bool = True):
        """On the SQLite file ``db_path``, or on ``store`` (an open ``Store`` or ``EtcdStore``; one
        of the two). ``writable=False``: a follower of a cluster, which loads the state without
        writing anything (see ``reload``)."""
        if (db_path is None) == (store is None):
            raise ValueError("ControllerService: give db_path or store, not both")
        self.topology = topology
        #: the switch numbering and tenant hosts; without one given, the topology's plain numbering
        self.host_plan = host_plan if host_plan is not None else HostPlan(topology)
        self.max_tenants = int(max_tenants)
        self.store = store if store is not None else Store(db_path, synchronous=store_synchronous)
        self.metrics = Metrics()
        self.started = time.time()
        self._lock = threading.RLock()
        self._notifier = Notifier()
        self._scheduler_options = dict(scheduler_options or {})
        self._admin_token, self._announce = admin_token, announce or stderr_announce
        self._switches: set[int] = set()
        #: install_warnings' answers by (tenant, path ends, match): the host plan never changes
        self._install_checks: dict[tuple, str] = {}
        self._link_check: dict[str, Any] = {"expected": len(topology.links()), "seen": 0, "missing": [],
                                            "unexpected": [], "checked": False}
        #: what ``health`` adds about the cluster (``controller.ha``); None: a single controller
        self.cluster_status: Callable[[], dict[str, Any]] | None = None
        self.writable = writable
        self._build()
        self._credentials.init_admin(self.store, admin_token, self._announce, write=writable)
        self._load(record=writable)
        #: the token hashes ``authenticate`` reads (it takes no lock): those of the last complete load
        self._serving_credentials = self._credentials
        self.metrics.watch(self._metrics_state)

    def _build(self) -> None:
        """The in-memory state, empty: tenants, scheduler, credentials and the desks over them."""
        self.tenants = TenantBook(self.max_tenants)
        self.scheduler = Scheduler(self.topology, tenants=self.tenants, **self._scheduler_options)
        self._credentials = Credentials()
        self._tenant_desk = TenantDesk(lock=self._lock, store=self.store, book=self.tenants,
                                       credentials=self._credentials)
        self._failover = Failover(lock=self._lock, topology=self.topology, scheduler=self.scheduler,
                                  store=self.store, notifier=self._notifier)
        self._desk = ReservationDesk(lock=self._lock, store=self.store, scheduler=self.scheduler,
                                     metrics=self.metrics, notifier=self._notifier, failover=self._failover)

    def follow(self, changed: list[Reservation], stored_ids: set[str]) -> bool:
        """A follower's incremental reload: place the reservations ``changed`` names that it does
        not hold yet and drop those no longer in ``stored_ids``. Returns False (then the caller
        reloads in full: ``reload``) for anything else: a reservation it holds that changed (a
        modification or a re-route keeps its place in the leader's order only in a full load), one
        that is not simply active, or one that does not fit."""
        with self._lock:
            held = self.scheduler.reservations
            # one the last load already had (it raced with a write) is skipped if unchanged
            changed = [r for r in changed if r.id not in held or held[r.id].to_dict() != r.to_dict()]
            if any(r.id in held or r.status in ("down", "unrestored") for r in changed):
                return False
            if self._desk.unrestored_ids() or self._failover.down_reservations():
                return False
            try:
                gone = [rid for rid in held if rid not in stored_ids]
                for rid in gone:
                    self.scheduler.release(rid)
                if gone:
                    self.scheduler.settle_cycle()       # as the leader did after its releases
                for r in changed:
                    self.scheduler.restore(r)
                self.scheduler.note_ids_used(r.id for r in changed)
            except ValueError:
                return False
            return True

    def promote(self, note: dict[str, Any] | None = None) -> None:
        """Become writable on the state already loaded (a cluster member taking the lead whose
        read-only view is the store's current one: no reload needed); audited as ``start``."""
        with self._lock:
            self.writable = True
            # ids admitted and deleted between two of the follower's reloads are in the ledger only
            self.scheduler.note_ids_used(self.store.used_reservation_ids())
            self._credentials.init_admin(self.store, self._admin_token, self._announce, write=True)
            self.store.append_audit("system", "start", None,
                                    {"tenants": len(self.tenants), "reservations": len(self.scheduler.reservations),
                                     "unrestored": self._desk.unrestored_ids(), **(note or {})}, "ok")

    def reload(self, *, writable: bool, note: dict[str, Any] | None = None) -> None:
        """Throw the in-memory state away and load it again from the store (a cluster member:
        a follower after the leader wrote, or on taking the lead). Reads wait for it (they take the
        lock); authentication keeps the previous load's tokens until it is done. The listeners (the
        shim) stay; they are not told of the reload: a new leader resynchronises the switches itself.
        ``note`` goes into the ``start`` audit entry a writable load makes."""
        with self._lock:
            self.writable = writable
            self._build()
            self._credentials.init_admin(self.store, self._admin_token, self._announce, write=writable)
            self._load(record=writable, note=note)
            # only now: until here a token is checked against the previous load's hashes, never
            # against the half-built table (which refused valid tokens with 401 mid-reload)
            self._serving_credentials = self._credentials

    @classmethod
    def from_config(cls, config: ControllerConfig, topology: Topology, host_plan: HostPlan | None = None,
                    **kw: Any) -> "ControllerService":
        """Build from a ``controller.config.ControllerConfig``."""
        return cls(topology, db_path=config.db_path, host_plan=host_plan, admin_token=config.admin_token,
                   scheduler_options=config.scheduler_options(), max_tenants=config.max_tenants, **kw)

    @property
    def admin_token_generated(self) -> bool:
        """True when this start generated the admin token (it was announced once)."""
        return self._credentials.admin_token_generated

    # ----- start-up -------------------------------------------------------------------
    def _load(self, *, record: bool = True, note: dict[str, Any] | None = None) -> None:
        stored = self.store.load_tenants()
        self._tenant_desk.load(stored)
        restored = self._desk.load(self.store.load_reservations(), record=record)
        unrestored = self._desk.unrestored_ids()
        if record:
            self.store.append_audit("system", "start", None,
                                    {"tenants": len(stored), "reservations": restored, "unrestored": unrestored,
                                     **(note or {})}, "ok")
        log.info("controller state loaded%s: %d tenants, %d reservations restored, %d could not be",
                 "" if record else " (read-only)", len(stored), restored, len(unrestored))

    def close(self) -> None:
        self.store.close()

    # ----- auth -----------------------------------------------------------------------
    def authenticate(self, token: str | None) -> Principal | None:
        """The principal a bearer token stands for, or None (constant-time over all hashes)."""
        return self._serving_credentials.authenticate(token)

    def record_refusal(self, principal: Principal, action: str, request: Any, code: str, detail: str,
                       field: str | None = None) -> None:
        """Audit a request refused before it reached the service (e.g. by the API's body validation)."""
        audit.input_refusal(self.store, principal, action, request, code, detail, field)

    # ----- tenants ----------------------------------------------------------------------
    def create_tenant(self, name: str, quota_bps: int | None = None, max_reservations: int | None = None,
                      *, principal: Principal | None = None) -> tuple[Tenant, str]:
        """Add a tenant; returns it and its token (shown once, only its hash is kept)."""
        return self._tenant_desk.create(name, quota_bps, max_reservations, principal or Principal.admin())

    def update_tenant(self, tenant_id: int, *, principal: Principal | None = None, **fields: Any) -> dict[str, Any]:
        """Change a tenant's name, quota_bps or max_reservations (None: unlimited); returns its view."""
        return self._tenant_desk.update(tenant_id, principal or Principal.admin(), fields)

    def get_tenant(self, tenant_id: int, *, principal: Principal | None = None) -> dict[str, Any]:
        return self._tenant_desk.get(tenant_id, principal)

    def list_tenants(self, *, principal: Principal | None = None) -> list[dict[str, Any]]:
        """Every tenant with its quotas and current usage (reserved_bps, reservations)."""
        return self._tenant_desk.list(principal)

    def delete_tenant(self, tenant_id: int, *, principal: Principal | None = None) -> dict[str, Any]:
        """Delete a tenant (admin): its reservations released (entries removed from the switches),
        its token revoked, one transaction and one audit entry; ``{"id", "name", "released"}``."""
        answer = self._tenant_desk.delete(tenant_id, principal or Principal.admin(), self._desk.release_tenant)
        self._notifier.flush()
        return answer

    def rotate_tenant_token(self, tenant_id: int, *, principal: Principal | None = None) -> dict[str, Any]:
        """A new token for the tenant (admin or the tenant itself); the old one stops at once."""
        return self._tenant_desk.rotate_token(tenant_id, principal or Principal.admin())

    def my_tenant(self, principal: Principal) -> dict[str, Any]:
        """The calling tenant's quotas and usage (``GET /v1/tenants/me``)."""
        return self._tenant_desk.me(principal)

    # ----- reservations -------------------------------------------------------------------
    def reserve(self, principal: Principal, body: dict[str, Any]) -> Reservation | Rejection:
        """Admit a reservation request (body as in POST /v1/reservations), persist it, notify listeners.

        A node name the topology lacks is refused naming the one probably meant ("did you mean
        'Beijing'?"). Whether the admitted reservation installs anything on the switches is
        ``install_warnings``' question. Ids in every answer are as the caller sees them (a tenant:
        as it chose them, ``controller.views.tenant_view``), here and in each method below.
        """
        return tenant_view(principal, self._hinted(self._desk.reserve(principal, body), body))

    def release(self, principal: Principal, reservation_id: str) -> Reservation:
        """Delete a reservation (store first, then the slots); NotFound if absent or not the caller's."""
        return tenant_view(principal, self._desk.release(principal, reservation_id))

    def get_reservation(self, principal: Principal, reservation_id: str) -> Reservation:
        return tenant_view(principal, self._desk.get(principal, reservation_id))

    def modify_reservation(self, principal: Principal, reservation_id: str,
                           patch: dict[str, Any]) -> Reservation | Rejection:
        """PATCH a reservation (rate, max latency/jitter, match, protection), same id; a refusal
        changes nothing; on success the listeners reprogram it make-before-break (see
        ``ReservationDesk.modify``)."""
        return tenant_view(principal, self._desk.modify(principal, reservation_id, patch))

    def list_reservations(self, principal: Principal, tenant: int | None = None) -> list[Reservation]:
        """The caller's reservations (admin: all, or one tenant's), ordered by id. A tenant naming
        another tenant is Forbidden, as everywhere else (not an empty list)."""
        if not principal.is_admin and tenant is not None and tenant != principal.tenant:
            raise Forbidden("a tenant token may only list its own reservations")
        return tenant_view(principal, self._desk.list(principal, tenant))

    def list_reservations_page(self, principal: Principal, *, tenant: int | None = None,
                               after: str | None = None, limit: int | None = None,
                               **filters: Any) -> tuple[list[Reservation], str | None]:
        """A page of ``list_reservations`` (filters ``src``, ``dst``, ``status``; ids above
        ``after``; at most ``limit``) and the id to continue after (None: the last page)."""
        if not principal.is_admin and tenant is not None and tenant != principal.tenant:
            raise Forbidden("a tenant token may only list its own reservations")
        page, last = self._desk.list_page(principal, tenant=tenant, after=after, limit=limit, **filters)
        return tenant_view(principal, page), last

    def what_if(self, principal: Principal, params: dict[str, Any]) -> Reservation | Rejection:
        """What ``reserve`` would answer now for the same body, reserving nothing.

        The body takes every field a reservation request takes (match, paths, protection, id) and
        passes the same checks in the same order: the request's own validation (Forbidden for
        another tenant), an id held by a reservation that is down or was not restored
        (``exists``), the scheduler's verdict, then the tenant's same traffic (``overlap:<id>``).
        The admin may leave the tenant out: then the network alone answers (no quota, no overlap)
        and the answer belongs to no tenant (the API shows ``"tenant": null``).
        """
        req = self._desk.request_for(principal, params, tenant_optional=True)
        if isinstance(req, Rejection):
            return self._hinted(req, params)
        network_only = principal.is_admin and params.get("tenant") is None
        with self._lock:
            req = self._desk.scoped(principal, req)
            # these mirror ReservationDesk.reserve (one precheck shared by the desk's reserve and
            # what_if would keep them in step by construction: reservations.py is the place)
            if req.id is not None and self._failover.down_reservation(req.id) is not None:
                return Rejection("exists", f"id {params['id']} belongs to a reservation that is down after a "
                                           "failure; delete it first")
            if req.id is not None and req.id in self._desk.unrestored_ids():
                return Rejection("exists", f"id {params['id']} belongs to a stored reservation that could not be "
                                           "restored; delete it first")
            verdict = self._desk.what_if(principal, params)
            if isinstance(verdict, Reservation) and not network_only:
                overlap = self._desk._same_traffic(req)   # the desk's own check, as reserve makes it
                if overlap is not None:
                    return tenant_view(principal, overlap)
        return tenant_view(principal, self._hinted(verdict, params))

    def install_warnings(self, res: Reservation) -> list[dict[str, str]]:
        """Why a reservation would install nothing on the switches (empty: it installs its entries).

        The data plane's own translation (``controller.dataplane.translation.reservation_flows``)
        is asked for the reservation's entries under this controller's host plan; it finds none
        when the tenant has no host at an end, or the match's ``ip_src``/``ip_dst`` names no host of
        the tenant there (e.g. another tenant's host). Such a reservation holds its slots but no
        packet can use it: the API answers it with a ``warnings`` entry
        ``{"code": "installs_nothing", "detail": ...}`` rather than only a log line.
        """
        if res.status is not None:      # down or unrestored: not on the switches, its status says why
            return []
        ends = tuple((p[0], p[-1]) for p in res.all_paths())
        m = res.match or {}
        # what decides it: the tenant's hosts at the ends, the addresses matched, the protocol fields
        # present (port values and DSCP within its range change which packets, not whether any)
        key = (res.tenant, ends, str(m.get("ip_src")), str(m.get("ip_dst")), str(m.get("ip_proto")),
               m.get("udp_dst") is not None, m.get("tcp_dst") is not None,
               m.get("ip_dscp") is None or (isinstance(m.get("ip_dscp"), int) and 0 <= m["ip_dscp"] < 64))
        why = self._install_checks.get(key)
        if why is None:             # the host plan never changes: one translation per distinct key
            probe = dataclasses.replace(res, id="-")       # the translation only reads it
            try:
                why = "" if reservation_flows(self.host_plan, probe) else "no entry to install"
            except (TranslationError, KeyError, ValueError) as e:
                why = str(e).removeprefix("reservation -: ") or type(e).__name__
            if len(self._install_checks) < 100_000:
                self._install_checks[key] = why
        if not why:
            return []
        return [{"code": "installs_nothing",
                 "detail": f"installs nothing on the switches ({why}): its slots are held but no packet can use "
                           "them"}]

    def _hinted(self, result: Any, body: Any) -> Any:
        """``result``, or for an unknown node name (``invalid:src|dst|paths``) the same rejection
        with "did you mean ...?" when a node of the topology is close (another case, a typo)."""
        if not isinstance(result, Rejection) or result.reason not in ("invalid:src", "invalid:dst", "invalid:paths") \
                or not isinstance(body, dict):
            return result
        field = result.reason.split(":", 1)[1]
        given = body.get(field)
        paths = given if field == "paths" and isinstance(given, list) else []
        names = [given] if field != "paths" else [n for p in paths if isinstance(p, list) for n in p]
        for name in names:
            if isinstance(name, str) and not self.topology.has_node(name):
                hint = suggestion(name, self.topology.nodes)
                if hint:
                    return Rejection(result.reason, f"{result.detail} ({hint})")
                break
        return result

    # ----- bulk and gang admission (controller.batch) ---------------------------------------
    def reserve_batch(self, principal: Principal, bodies: list[Any], *, atomic: bool) -> batch.BatchOutcome:
        """Admit many requests as one change (``controller.batch.reserve_batch``): in order, one
        store transaction; ``atomic``: all or none. Unknown node names get their "did you mean"."""
        out = batch.reserve_batch(self._desk, principal, bodies, atomic=atomic)
        out.rejected = [(i, self._hinted(rej, bodies[i])) for i, rej in out.rejected]
        if out.blocked is not None:
            out.blocked = (out.blocked[0], self._hinted(out.blocked[1], bodies[out.blocked[0]]))
        out.admitted, out.rejected = tenant_view(principal, out.admitted), tenant_view(principal, out.rejected)
        out.blocked = tenant_view(principal, out.blocked)
        return out

    def release_many(self, principal: Principal, ids: list[str]) -> list[Reservation]:
        """Delete many reservations all or none (``controller.batch.release_many``)."""
        return tenant_view(principal, batch.release_many(self._desk, principal, ids))

    def unrestored(self) -> list[Reservation]:
        """Stored reservations that could not be put back on their slots at start-up."""
        return self._desk.unrestored()

    def reservations_by_tenant(self) -> dict[int, int]:
        with self._lock:
            return {t.id: self.tenants.usage(t.id).reservations for t in self.tenants}

    # ----- read-only views --------------------------------------------------------------------
    def schedule_dict(self, principal: Principal | None = None) -> dict[str, Any]:
        """The Schedule JSON contract; a tenant sees only its own reservations."""
        with self._lock:
            return schedule_view(self.scheduler, principal)

    def topology_dict(self) -> dict[str, Any]:
        """Native topology JSON plus the host plan, the LLDP link check and each link's state."""
        return topology_view(self.topology, self.host_plan, self.link_check(), self._failover.links_down())

    def topology_for(self, principal: Principal) -> dict[str, Any]:
        """``topology_dict`` as ``principal`` may see it (GET /v1/topology): a tenant sees only its
        own hosts (other tenants' host names, addresses and ports are theirs); the admin sees all."""
        d = self.topology_dict()
        if not principal.is_admin:
            d["hosts"] = [h for h in d.get("hosts", []) if h.get("tenant") == principal.tenant]
        return d

    def events(self, principal: Principal, since: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """Audit entries after ``since`` (admin: all; a tenant: those about itself)."""
        tenant = None if principal.is_admin else principal.tenant
        return tenant_view(principal, [e.to_dict() for e in self.store.list_audit(since, tenant=tenant, limit=limit)])

    def health(self) -> dict[str, Any]:
        unrestored = len(self._desk.unrestored_ids())
        with self._lock:
            out = health_view(switches_connected=len(self._switches),
                              reservations=len(self.scheduler.reservations), tenants=len(self.tenants),
                              unrestored=unrestored, down=len(self._failover.down_reservations()),
                              link_check=dict(self._link_check), uptime_s=round(time.time() - self.started, 3))
        if self.cluster_status is not None:
            out["cluster"] = self.cluster_status()
        return out

    def metrics_text(self) -> str:
        """The Prometheus exposition (``controller.metrics``)."""
        return self.metrics.render()

    def _metrics_state(self) -> State:
        """The state the scrape-time series show, read together under the lock."""
        unrestored = len(self._desk.unrestored_ids())
        cluster = self.cluster_status() if self.cluster_status is not None else None   # outside the lock
        with self._lock:
            usage = {t.id: self.tenants.usage(t.id) for t in self.tenants}
            down, stats, n_down = self._failover.stats()
            return State(reservations_by_tenant={t: u.reservations for t, u in usage.items()},
                         tenant_reserved_bps={t: u.bps for t, u in usage.items()},
                         tenant_quota={t.id: (t.quota_bps, t.max_reservations) for t in self.tenants},
                         link_share=self.scheduler.link_share(),
                         links=[(l.src, l.dst) for l in self.topology.links()], links_down=frozenset(down),
                         switches_connected=len(self._switches), switches_expected=len(self.topology.nodes),
                         failover=stats, reservations_down=n_down, reservations_unrestored=unrestored,
                         link_check=dict(self._link_check), cluster=cluster)

    # ----- the data plane's host (controller.seams.DataPlaneHost) --------------------------------------
    def add_listener(self, listener: ReservationListener) -> None:
        """Register a listener of committed changes (``controller.seams.ReservationListener``).

        It is called after the change is committed, outside the service lock, in commit order,
        with copies of the reservations; an exception in a listener is logged, never raised.
        """
        self._notifier.add(listener)

    def remove_listener(self, listener: ReservationListener) -> None:
        self._notifier.remove(listener)

    def observe_install(self, op: str, reservation_id: str, seconds: float, ok: bool) -> None:
        """The OpenFlow shim reports how long installing/removing a reservation's flows took."""
        self.metrics.installed(op, seconds, ok)

    def link_reserved_bps(self) -> dict[Link, int]:
        """Reserved bit/s per directed link (cheap: no reservation is copied), for the shim's
        best-effort meters after each change."""
        with self._lock:
            return self.scheduler.reserved_bps()

    def reservations_snapshot(self) -> list[Reservation]:
        """Copies of every admitted reservation (e.g. to program a switch that just connected)."""
        with self._lock:
            return [detached(r) for r in self.scheduler.reservations.values()]

    def switch_connected(self, dpid: int) -> None:
        with self._lock:
            self._switches.add(int(dpid))
        self._audit_switch("system", "switch_connected", {"dpid": int(dpid)}, "ok")

    def switch_disconnected(self, dpid: int) -> None:
        with self._lock:
            self._switches.discard(int(dpid))
        self._audit_switch("system", "switch_disconnected", {"dpid": int(dpid)}, "ok")

    def switch_refused(self, dpid: int | None, address: str, reason: str, detail: str) -> None:
        """A connection claiming ``dpid`` was refused as that switch (``controller.switchauth``), or
        one whose TLS handshake failed before it could claim any (``dpid`` None, reason
        ``tls_handshake``): a security event, audited (action ``switch_refused``, status
        ``refused``) and counted."""
        self.metrics.switch_refused(reason)
        self._audit_switch("security", "switch_refused",
                           {"dpid": None if dpid is None else int(dpid), "address": str(address),
                            "reason": reason, "detail": detail}, "refused")

    def switch_replaced(self, dpid: int, address: str, old_address: str) -> None:
        """A connection whose certificate names ``dpid`` replaced the live one (audited)."""
        self._audit_switch("security", "switch_replaced",
                           {"dpid": int(dpid), "address": str(address), "old_address": str(old_address)}, "ok")

    def _audit_switch(self, actor: str, action: str, request: dict[str, Any], status: str) -> None:
        """Audit a switch connection event; a cluster member that follows writes nothing (its store
        refuses every write; the shim has logged the event and the metrics counted it): only the
        leader's own connections are in the shared audit log."""
        if not self.writable:
            log.info("not audited (this member follows): %s %s %s", actor, action, request)
            return
        try:
            self.store.append_audit(actor, action, request, None, status)
        except StoreError as e:     # e.g. leadership lost, or etcd going away while switches do
            log.warning("not audited (%s): %s %s %s", e, actor, action, request)

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

    # ----- link failures (the os-ken shim reports them; controller.failover handles them) ----------
    def failed_links(self) -> set[Link]:
        """Directed links currently marked failed (both directions of every link reported down)."""
        with self._lock:
            return set(self.scheduler.failed_links)

    def links_down(self) -> list[list[str]]:
        return sorted(sorted(l) for l in self._failover.links_down())

    def link_down(self, u: str, v: str, *, detected_at: float | None = None,
                  actor: str = "system") -> dict[str, Any]:
        """A physical link failed: re-place every reservation on it (see ``Failover.link_down``);
        the listeners have reprogrammed the switches when this returns."""
        return self._failover.link_down(u, v, detected_at=detected_at, actor=actor)

    def link_up(self, u: str, v: str, *, detected_at: float | None = None,
                actor: str = "system") -> dict[str, Any]:
        """A reported-down link works again: re-admit the down reservations and re-protect degraded
        ones (see ``Failover.link_up``)."""
        return self._failover.link_up(u, v, detected_at=detected_at, actor=actor)
