"""``HttpMetricsMiddleware``: every REST answer counted by route template, method and status, and timed.

Pure ASGI and outermost (``create_app`` adds it last), so it also sees the answers of the body
limit (413) and of the error handlers. It calls ``record(route, method, status, seconds)``
(``controller.metrics.Metrics.http_answer``) once per answer. Labels stay bounded whatever the
clients send: ``route`` is the matched route's path template (``/v1/reservations/{reservation_id}``;
Starlette leaves the route in the ASGI scope), or ``unmatched`` when no route has the path (a raw
path would give one series per reservation id or scanner probe); ``method`` is one of
``KNOWN_METHODS`` or ``other``. A request whose client went away before any answer is not counted;
one whose handler raised is counted as the 500 the server answers.
"""

from __future__ import annotations

import time
from typing import Any, Callable

__all__ = ["HttpMetricsMiddleware", "KNOWN_METHODS", "UNMATCHED"]

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

#: The route label of a request no route matched (404s of unknown paths).
UNMATCHED = "unmatched"


def route_label(scope: dict[str, Any]) -> str:
    """The matched route's path template, or ``UNMATCHED``."""
    return getattr(scope.get("route"), "path", None) or UNMATCHED


def method_label(scope: dict[str, Any]) -> str:
    method = scope.get("method", "")
    return method if method in KNOWN_METHODS else "other"


class HttpMetricsMiddleware:
    """Count and time every HTTP answer (see the module docstring)."""

    def __init__(self, app, record: Callable[[str, str, int, float], None]):
        self.app, self.record = app, record

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status: int | None = None

        async def send_seen(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_seen)
        except Exception:
            status = 500 if status is None else status
            raise
        finally:
            if status is not None:
                self.record(route_label(scope), method_label(scope), status, time.perf_counter() - t0)
