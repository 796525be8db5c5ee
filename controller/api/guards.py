"""What every request passes before a route handler runs: body limit, rate limit, authentication.

- ``BodyLimitMiddleware`` (pure ASGI, just inside ``http_metrics``, which counts its answers): 413
  for a body above the limit, on the Content-Length or on the streamed bytes, whichever shows it
  first;
- ``RateLimiter``: a token bucket per principal (or, before authentication, per client address):
  429 with ``Retry-After`` when it is empty;
- ``principal`` / ``admin``: the bearer token (``Authorization`` header only, never logged or
  echoed) to a ``Principal``, 401 without one; 403 for an admin route with a tenant's token; a
  query parameter the route does not declare is a 422 naming it (an admin's ``?tennant=3`` would
  otherwise list every tenant's reservations).

Route handlers take ``Who`` (any principal), ``Admin`` and ``Service`` (the ``ControllerService``
of the app) as parameters.
"""

# no `from __future__ import annotations`: FastAPI must see the real types of the aliases below

import json
import math
import threading
import time
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from controller.api.errors import ApiError, error_body, unauthorized
from controller.auth import Principal
from controller.service import ControllerService

#: Where the principal dependency leaves the caller in the ASGI scope (None: no valid token).
PRINCIPAL_KEY = "detnet.principal"


# ----- rate limiting ----------------------------------------------------------------------------
class RateLimiter:
    """Token buckets by key: ``rate`` tokens per second, at most ``burst``; rate 0 disables it."""

    def __init__(self, rate: float, burst: int, *, max_keys: int = 10_000, clock=time.monotonic):
        self.rate, self.burst, self.max_keys, self.clock = float(rate), max(1, int(burst)), max_keys, clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> float:
        """0.0 if the request may go on (one token taken), else the seconds until a token is back."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._store(key, tokens - 1.0, now)
                return 0.0
            self._store(key, tokens, now)
            return (1.0 - tokens) / self.rate

    def _store(self, key: str, tokens: float, now: float) -> None:
        if key not in self._buckets and len(self._buckets) >= self.max_keys:
            # forget the buckets that have refilled completely (they hold no information)
            full = [k for k, (t, l) in self._buckets.items() if t + (now - l) * self.rate >= self.burst]
            for k in full or list(self._buckets)[: self.max_keys // 10 or 1]:
                del self._buckets[k]
        self._buckets[key] = (tokens, now)


def charge(request: Request, who: Principal | None) -> ApiError | None:
    """Take one token from the caller's bucket (its principal, else its address); the 429 if empty."""
    key = who.actor if who is not None else f"addr:{request.client.host if request.client else '-'}"
    wait = request.app.state.limiter.allow(key)
    if wait > 0:
        # Retry-After is whole seconds (RFC 9110): the detail says the same number, never "0.00 s"
        seconds = max(1, math.ceil(wait))
        return ApiError(429, "rate_limited", f"too many requests; retry in {seconds} s",
                        headers={"Retry-After": str(seconds)})
    return None


# ----- body size limit (pure ASGI, just inside the HTTP metrics) ------------------------------------
#: Routes whose bodies may be larger than ``max_body_bytes`` (the larger of the two applies): a batch
#: of 4,096 reservation requests (about 100-400 bytes each) must fit.
ROUTE_MAX_BODY_BYTES: dict[str, int] = {"/v1/reservations/batch": 8 * 1024 * 1024,
                                        "/v1/reservations/delete": 1024 * 1024}


class BodyLimitMiddleware:
    """413 for bodies above ``max_bytes`` (declared or streamed). (Answers are counted by
    ``controller.api.http_metrics``, the outermost middleware, 413s included.)"""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, int(max_bytes)

    async def _answer(self, send, status: int, code: str, detail: str) -> None:
        body = json.dumps(error_body(code, detail)).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = max(self.max_bytes, ROUTE_MAX_BODY_BYTES.get(scope.get("path", ""), 0))
        too_large = f"request body above {limit} bytes"
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    return await self._answer(send, 400, "bad_request", "invalid Content-Length header")
                if declared > limit:
                    return await self._answer(send, 413, "too_large", too_large)
        chunks, total = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":      # client went away
                return
            part = message.get("body", b"")
            total += len(part)
            if total > limit:
                return await self._answer(send, 413, "too_large", too_large)
            chunks.append(part)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


# ----- the dependencies of every /v1 route -------------------------------------------------------------
bearer = HTTPBearer(auto_error=False, description="admin token or a tenant's token")


def service_of(request: Request) -> ControllerService:
    """The service the app serves."""
    return request.app.state.service


def unknown_query_params(request: Request) -> list[str]:
    """Query parameters the matched route does not declare (sorted)."""
    route = request.scope.get("route")
    if route is None or not request.query_params:
        return []
    declared: set[str] = set()
    todo = [route.dependant]
    while todo:   # the route's own parameters and those of its dependencies
        d = todo.pop()
        declared.update(p.alias for p in d.query_params)
        todo.extend(d.dependencies)
    return sorted(set(request.query_params) - declared)


def principal(request: Request,
              creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
    """The caller: authenticated, charged one rate token, its query parameters all declared."""
    token = creds.credentials if creds is not None else None
    who = service_of(request).authenticate(token) if token else None
    limited = charge(request, who)
    if limited is not None:
        raise limited
    request.scope[PRINCIPAL_KEY] = who
    if who is None:
        raise unauthorized("missing bearer token" if token is None else "invalid bearer token")
    unknown = unknown_query_params(request)
    if unknown:   # e.g. an admin's ?tennant=3 would otherwise list every tenant's reservations
        raise ApiError(422, "invalid", f"{unknown[0]}: unknown query parameter", field=unknown[0])
    return who


def admin(who: Annotated[Principal, Depends(principal)]) -> Principal:
    """The caller, who must hold the admin token (403 otherwise)."""
    if not who.is_admin:
        raise ApiError(403, "forbidden", "this route needs the admin token")
    return who


Who = Annotated[Principal, Depends(principal)]
Admin = Annotated[Principal, Depends(admin)]
Service = Annotated[ControllerService, Depends(service_of)]


class HstsMiddleware:
    """Every answer carries ``Strict-Transport-Security`` (added where the API is served over HTTPS:
    a browser that once reached it that way never falls back to plain HTTP, for a year)."""

    HEADER = (b"strict-transport-security", b"max-age=31536000")

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_hsts(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.HEADER]}
            await send(message)

        await self.app(scope, receive, send_with_hsts)
