"""What the audit log keeps of admissions and refusals (the rows themselves live in the store).

Every refused request is audited with the error it got: ``{"error", "detail"}`` plus ``field``
(invalid input) or ``reason`` (a rejection), and a status of ``invalid``, ``rejected`` or the
error code. Admitted reservations are summarised without their slot lists (they can be long).
"""

from __future__ import annotations

from typing import Any

from controller.auth import Principal
from controller.core.model import Rejection, Reservation
from controller.errors import Conflict, Invalid, ServiceError
from controller.store import Store


def summary(res: Reservation) -> dict[str, Any]:
    """What the audit log keeps of an admitted reservation (no slot lists: they can be long)."""
    return {"id": res.id, "tenant": res.tenant, "path": list(res.path), "period_ns": res.period_ns,
            "frame_bytes": res.frame_bytes, "bandwidth_bps": res.bandwidth_bps,
            "latency_bound_ns": res.latency_bound_ns, "jitter_bound_ns": res.jitter_bound_ns}


def rejection_status(rej: Rejection) -> str:
    """The audit status of a scheduler rejection: ``invalid`` for bad input, else ``rejected``."""
    return "invalid" if rej.code == "invalid" else "rejected"


def refusal(store: Store, principal: Principal, action: str, request: Any, err: ServiceError,
            tenant: int | None) -> None:
    """Audit a request the service refused with ``err``."""
    outcome: dict[str, Any] = {"error": err.code, "detail": err.detail}
    if isinstance(err, Invalid):
        outcome["field"] = err.field
    if isinstance(err, Conflict):
        outcome["reason"] = err.reason
    status = {"invalid": "invalid", "rejected": "rejected"}.get(err.code, err.code)
    store.append_audit(principal.actor, action, request, outcome, status, tenant)


def input_refusal(store: Store, principal: Principal, action: str, request: Any, code: str, detail: str,
                  field: str | None = None) -> None:
    """Audit a request refused before it reached the service (e.g. by the API's body validation)."""
    outcome: dict[str, Any] = {"error": code, "detail": detail}
    if field is not None:
        outcome["field"] = field
    store.append_audit(principal.actor, action, request, outcome,
                       "invalid" if code in ("invalid", "bad_request") else code, principal.tenant)
