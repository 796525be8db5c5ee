"""The service's refusals: typed errors the REST API maps to status codes (pure: no HTTP here).

``ServiceError.code`` is the API error code; ``controller.api`` turns ``NotFound`` into 404,
``Forbidden`` into 403, ``Invalid`` into 422 (with ``field``) and ``Conflict`` into 409 (with the
machine-readable ``reason``).
"""

from __future__ import annotations

from controller.auth import Principal


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


def require_admin(principal: Principal | None) -> None:
    """Forbidden unless ``principal`` is the admin (None: an in-process caller, trusted)."""
    if principal is not None and not principal.is_admin:
        raise Forbidden("this operation needs the admin token")
