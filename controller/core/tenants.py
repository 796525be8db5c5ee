"""Tenants and their usage: who may reserve, and how much they already hold.

A ``TenantBook`` keeps the tenants (``Tenant`` value objects: id, name, quota_bps,
max_reservations) and, per tenant, the reserved bandwidth and number of reservations. The
scheduler asks ``check`` before admitting and calls ``charge``/``credit`` when a reservation is
placed or released. The facility runs up to 128 tenant systems at once, so the default limit is
128; it is a setting (``max_tenants``), and nothing else in the book depends on it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterator

from .model import Tenant


class TenantLimitError(ValueError):
    """Adding a tenant would exceed ``max_tenants``."""


@dataclass
class Usage:
    """What a tenant currently holds."""

    bps: int = 0
    reservations: int = 0


class TenantBook:
    """The tenants, their quotas and their current usage."""

    def __init__(self, max_tenants: int = 128):
        if max_tenants < 1:
            raise ValueError("max_tenants must be at least 1")
        self.max_tenants = max_tenants
        self._tenants: dict[int, Tenant] = {}
        self._usage: dict[int, Usage] = {}

    # ----- tenants ----------------------------------------------------------
    def add(self, tenant: Tenant) -> Tenant:
        """Add a tenant; ValueError if the id is taken or invalid, TenantLimitError beyond the limit."""
        _check(tenant)
        if tenant.id in self._tenants:
            raise ValueError(f"tenant {tenant.id} already exists")
        if len(self._tenants) >= self.max_tenants:
            raise TenantLimitError(f"cannot add tenant {tenant.id}: the limit of {self.max_tenants} tenants "
                                   "is reached (raise max_tenants to allow more)")
        self._tenants[tenant.id] = tenant
        self._usage[tenant.id] = Usage()
        return tenant

    def get(self, tenant_id: int) -> Tenant:
        """The tenant; KeyError if unknown."""
        return self._tenants[tenant_id]

    def update(self, tenant_id: int, **fields) -> Tenant:
        """Change name/quota_bps/max_reservations; KeyError if unknown, ValueError on a bad field.

        Lowering a quota below current usage is allowed: it blocks new admissions only.
        """
        old = self._tenants[tenant_id]
        bad = set(fields) - {"name", "quota_bps", "max_reservations"}
        if bad:
            raise ValueError(f"cannot update tenant field {sorted(bad)[0]!r}")
        new = replace(old, **fields)
        _check(new)
        self._tenants[tenant_id] = new
        return new

    def remove(self, tenant_id: int) -> Tenant:
        """Remove a tenant that holds no reservations; KeyError if unknown, ValueError if it holds some."""
        t = self._tenants[tenant_id]
        u = self._usage[tenant_id]
        if u.reservations:
            raise ValueError(f"tenant {tenant_id} still holds {u.reservations} reservations")
        del self._tenants[tenant_id]
        del self._usage[tenant_id]
        return t

    def __contains__(self, tenant_id: object) -> bool:
        return tenant_id in self._tenants

    def __len__(self) -> int:
        return len(self._tenants)

    def __iter__(self) -> Iterator[Tenant]:
        return iter(sorted(self._tenants.values(), key=lambda t: t.id))

    # ----- usage ------------------------------------------------------------
    def usage(self, tenant_id: int) -> Usage:
        """A copy of the tenant's current usage; KeyError if unknown."""
        u = self._usage[tenant_id]
        return Usage(u.bps, u.reservations)

    def check(self, tenant_id: int, bps: int) -> str | None:
        """None if one more reservation of ``bps`` fits the quotas, else a one-line reason."""
        t = self._tenants[tenant_id]
        u = self._usage[tenant_id]
        if t.max_reservations is not None and u.reservations + 1 > t.max_reservations:
            return f"tenant {tenant_id} already holds {u.reservations} of {t.max_reservations} reservations"
        if t.quota_bps is not None and u.bps + bps > t.quota_bps:
            return (f"tenant {tenant_id} would hold {u.bps + bps} b/s, above its quota of {t.quota_bps} b/s")
        return None

    def charge(self, tenant_id: int, bps: int) -> None:
        u = self._usage[tenant_id]
        u.bps += bps
        u.reservations += 1

    def credit(self, tenant_id: int, bps: int) -> None:
        u = self._usage.get(tenant_id)
        if u is None:
            return
        u.bps = max(0, u.bps - bps)
        u.reservations = max(0, u.reservations - 1)


def _check(t: Tenant) -> None:
    if not isinstance(t.id, int) or isinstance(t.id, bool) or t.id < 1:
        raise ValueError("tenant id must be a positive integer")
    if not isinstance(t.name, str):
        raise ValueError("tenant name must be a string")
    for name in ("quota_bps", "max_reservations"):
        v = getattr(t, name)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            raise ValueError(f"tenant {name} must be a non-negative integer or None")
