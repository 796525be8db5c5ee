"""Tenants as the service manages them: create, change, list, with their quotas and usage.

Admin only. Each change is decided and written (the row and its audit entry, one transaction)
under the service lock; a refusal is audited too. A new tenant gets the next id above the highest
(ids double as VLAN ids, 1..4094; a freed gap is reused only at the top) and a token, returned
once: only its hash is kept (``controller.credentials``).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import replace
from typing import Any, Callable

from controller import audit
from controller.auth import Principal, generate_token, hash_token
from controller.core.model import Tenant
from controller.core.tenants import TenantBook, TenantLimitError
from controller.credentials import Credentials
from controller.errors import Conflict, Forbidden, Invalid, NotFound, ServiceError, require_admin
from controller.store import Store, StoredTenant

log = logging.getLogger("detnet.controller")

#: Tenant ids double as VLAN ids, hence 1..4094 (see topologies/hosts.py).
MAX_TENANT_ID = 4094
MAX_NAME_CHARS = 64
MAX_QUOTA_BPS = 10**15
MAX_RESERVATIONS_QUOTA = 10**7
#: The settings key of the deleted tenants' ids (a JSON list).
DELETED_TENANTS_KEY = "deleted_tenant_ids"
#: Fields a tenant update may change.
TENANT_FIELDS = ("name", "quota_bps", "max_reservations")


def check_tenant_fields(fields: dict[str, Any]) -> None:
    """Invalid (naming the field) unless name and quotas are in range."""
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


class TenantDesk:
    """Tenant administration over the TenantBook, the store and the credentials.

    ``lock`` is the service lock (shared with reservations: quotas and usage live in the book).
    """

    def __init__(self, *, lock: threading.RLock, store: Store, book: TenantBook, credentials: Credentials):
        self._lock, self._store, self._book, self._credentials = lock, store, book, credentials

    def load(self, stored: list[StoredTenant]) -> None:
        """Put stored tenants back (start-up); a store above the book's limit keeps them all."""
        if len(stored) > self._book.max_tenants:
            log.warning("the store holds %d tenants, above max_tenants %d: keeping them all, adding none",
                        len(stored), self._book.max_tenants)
            self._book.max_tenants = len(stored)
        for st in stored:
            self._book.add(st.tenant)
            self._credentials.set_tenant(st.tenant.id, st.token_hash)

    def view(self, t: Tenant) -> dict[str, Any]:
        """A tenant with its quotas and current usage (lock held)."""
        u = self._book.usage(t.id)
        return {"id": t.id, "name": t.name, "quota_bps": t.quota_bps, "max_reservations": t.max_reservations,
                "reserved_bps": u.bps, "reservations": u.reservations}

    def _deleted_ids(self) -> set[int]:
        """Ids of deleted tenants (a new tenant gets one only when no other id is left: its audit
        entries and cookies must not pass to a stranger)."""
        raw = self._store.get_setting(DELETED_TENANTS_KEY)
        try:
            return {int(i) for i in json.loads(raw)} if raw else set()
        except (ValueError, TypeError):
            return set()

    def _next_id(self) -> int | None:
        used = {t.id for t in self._book}
        fresh = used | self._deleted_ids()
        top = max(fresh, default=0)
        if top < MAX_TENANT_ID:
            return top + 1
        free = next((i for i in range(1, MAX_TENANT_ID + 1) if i not in fresh), None)
        if free is not None:
            return free
        top = max(used, default=0)
        if top < MAX_TENANT_ID:
            return top + 1
        return next((i for i in range(1, MAX_TENANT_ID + 1) if i not in used), None)

    def create(self, name: str, quota_bps: int | None, max_reservations: int | None,
               principal: Principal) -> tuple[Tenant, str]:
        """Add a tenant; returns it and its token (shown once, only its hash is kept)."""
        request = {"name": name, "quota_bps": quota_bps, "max_reservations": max_reservations}
        try:
            require_admin(principal)
            check_tenant_fields(request)
            with self._lock:
                if any(t.name == name for t in self._book):
                    raise Conflict("exists", f"a tenant named {name!r} exists")
                if len(self._book) >= self._book.max_tenants:
                    raise Conflict("tenant_limit", f"the limit of {self._book.max_tenants} tenants is reached")
                tid = self._next_id()
                if tid is None:
                    raise Conflict("tenant_limit", f"every tenant id 1..{MAX_TENANT_ID} is taken")
                tenant = Tenant(tid, name, quota_bps, max_reservations)
                token = generate_token()
                h = hash_token(token)
                try:
                    with self._store.transaction() as tx:
                        tx.save_tenant(tenant, h)
                        tx.append_audit(principal.actor, "create_tenant", request,
                                        {"id": tid, "name": name}, "ok", tid)
                        self._book.add(tenant)
                except TenantLimitError as e:
                    raise Conflict("tenant_limit", str(e)) from None
                self._credentials.set_tenant(tid, h)
        except ServiceError as e:
            audit.refusal(self._store, principal, "create_tenant", request, e, None)
            raise
        log.info("tenant %d (%s) created", tid, name)
        return tenant, token

    def update(self, tenant_id: int, principal: Principal, fields: dict[str, Any]) -> dict[str, Any]:
        """Change a tenant's name, quota_bps or max_reservations (None: unlimited); returns its view."""
        request = {"id": tenant_id, **fields}
        try:
            require_admin(principal)
            bad = sorted(set(fields) - set(TENANT_FIELDS))
            if bad:
                raise Invalid(bad[0], "unknown field")
            check_tenant_fields(fields)
            with self._lock:
                if tenant_id not in self._book:
                    raise NotFound(f"no tenant {tenant_id}")
                if "name" in fields and any(t.name == fields["name"] and t.id != tenant_id for t in self._book):
                    raise Conflict("exists", f"a tenant named {fields['name']!r} exists")
                new = replace(self._book.get(tenant_id), **fields)
                with self._store.transaction() as tx:
                    tx.save_tenant(new)
                    tx.append_audit(principal.actor, "update_tenant", request, {"id": tenant_id}, "ok", tenant_id)
                    self._book.update(tenant_id, **fields)
                return self.view(self._book.get(tenant_id))
        except ServiceError as e:
            audit.refusal(self._store, principal, "update_tenant", request, e, tenant_id)
            raise

    def get(self, tenant_id: int, principal: Principal | None) -> dict[str, Any]:
        require_admin(principal)
        with self._lock:
            if tenant_id not in self._book:
                raise NotFound(f"no tenant {tenant_id}")
            return self.view(self._book.get(tenant_id))

    def list(self, principal: Principal | None) -> list[dict[str, Any]]:
        """Every tenant with its quotas and current usage (reserved_bps, reservations)."""
        require_admin(principal)
        with self._lock:
            return [self.view(t) for t in self._book]

    # ----- day-2: delete, rotate, read one's own ----------------------------------------------
    def delete(self, tenant_id: int, principal: Principal,
               release: Callable[[int, Callable[[Any, list[str]], None]], list[Any]]) -> dict[str, Any]:
        """Delete a tenant (admin): ``release(tenant_id, write_rest)`` releases its reservations in
        the transaction that also deletes its row and writes the audit entry; then its token is
        revoked. Returns ``{"id", "name", "released": [ids]}``. Lock: the service's, held here."""
        request = {"id": tenant_id}
        try:
            require_admin(principal)
            with self._lock:
                if tenant_id not in self._book:
                    raise NotFound(f"no tenant {tenant_id}")
                name = self._book.get(tenant_id).name
                deleted = sorted(self._deleted_ids() | {tenant_id})

                def write_rest(tx: Any, ids: list[str]) -> None:
                    tx.delete_tenant(tenant_id)
                    tx.set_setting(DELETED_TENANTS_KEY, json.dumps(deleted))
                    tx.append_audit(principal.actor, "delete_tenant", request,
                                    {"id": tenant_id, "name": name, "released": ids}, "ok", tenant_id)

                released = release(tenant_id, write_rest)
                self._credentials.remove_tenant(tenant_id)
                self._book.remove(tenant_id)
        except ServiceError as e:
            audit.refusal(self._store, principal, "delete_tenant", request, e, tenant_id)
            raise
        log.info("tenant %d (%s) deleted, %d reservations released", tenant_id, name, len(released))
        return {"id": tenant_id, "name": name, "released": sorted(r.id for r in released)}

    def rotate_token(self, tenant_id: int, principal: Principal) -> dict[str, Any]:
        """A new token for the tenant (the admin, or the tenant itself); the old one stops working
        at once. Returns ``{"id", "token"}`` (shown once; only its hash is kept)."""
        request = {"id": tenant_id}
        try:
            if not principal.is_admin and principal.tenant != tenant_id:
                raise Forbidden("a tenant token may only rotate its own token")
            with self._lock:
                if tenant_id not in self._book:
                    raise NotFound(f"no tenant {tenant_id}")
                token = generate_token()
                h = hash_token(token)
                with self._store.transaction() as tx:
                    tx.save_tenant(self._book.get(tenant_id), h)
                    tx.append_audit(principal.actor, "rotate_token", request, {"id": tenant_id}, "ok", tenant_id)
                self._credentials.set_tenant(tenant_id, h)
        except ServiceError as e:
            audit.refusal(self._store, principal, "rotate_token", request, e, tenant_id)
            raise
        log.info("tenant %d: token rotated by %s", tenant_id, principal.actor)
        return {"id": tenant_id, "token": token}

    def me(self, principal: Principal) -> dict[str, Any]:
        """The calling tenant's quotas and usage, with what is left (``null``: unlimited)."""
        if principal.is_admin:
            raise Forbidden("the admin token is no tenant: GET /v1/tenants lists every tenant")
        with self._lock:
            if principal.tenant not in self._book:
                raise NotFound(f"no tenant {principal.tenant}")
            v = self.view(self._book.get(principal.tenant))
        v["available_bps"] = None if v["quota_bps"] is None else max(0, v["quota_bps"] - v["reserved_bps"])
        v["reservations_left"] = (None if v["max_reservations"] is None
                                  else max(0, v["max_reservations"] - v["reservations"]))
        return v
