"""The REST API v1 (FastAPI) over a ControllerService. See docs/rest-api.md for the routes.

Guarantees the handlers below keep:
- every error is JSON ``{"error": CODE, "detail": TEXT}`` (+ ``field`` on 422, ``reason`` on 409),
  including FastAPI's own validation errors, unknown routes and wrong methods; bad input never
  yields a 500 (the catch-all handler answers 500 JSON only for genuine bugs, and logs them);
- request bodies are bounded (64 KiB by default: 413 on the Content-Length or on the streamed
  bytes, whichever shows it first) and validated by pydantic models that forbid unknown fields;
- each principal (or, before authentication, each client address) has a token bucket: 429 with
  ``Retry-After`` when it is empty;
- tokens are read from the ``Authorization`` header only and never logged or echoed.
"""

# no `from __future__ import annotations`: FastAPI must see the real types of the local aliases below

import ipaddress
import json
import logging
import math
import threading
import time
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from controller.auth import Principal, parse_bearer
from controller.core.model import Rejection, Reservation
from controller.metrics import CONTENT_TYPE
from controller.service import Conflict, ControllerService, Forbidden, Invalid, NotFound, ServiceError

log = logging.getLogger("detnet.api")

API_VERSION = "1"
DEFAULT_MAX_BODY_BYTES = 64 * 1024

_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 406: "not_acceptable", 409: "rejected", 413: "too_large",
                 415: "unsupported_media_type", 422: "invalid", 429: "rate_limited", 500: "internal",
                 503: "unavailable"}


class ApiError(Exception):
    """An error answer: status, code, one-line detail, optional extra fields and headers."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers, self.extra = status, code, detail, headers, extra


def error_body(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "detail": detail, **extra}


class ErrorBody(BaseModel):
    """Every error answer (documented in the OpenAPI spec for each status a route can give)."""

    model_config = ConfigDict(extra="allow")
    error: str = Field(description="machine code: bad_request, unauthorized, forbidden, not_found, rejected, ...")
    detail: str = Field(description="one human-readable line")
    field: str | None = Field(None, description="the offending field (422)")
    reason: str | None = Field(None, description="machine reason of a rejection (409)")


_ERROR_TEXT = {400: "Malformed request (JSON syntax, Content-Length)", 401: "Missing or invalid bearer token",
               403: "Not allowed with this token", 404: "No such resource (or not the caller's)",
               409: "Well formed but rejected (reason says why)", 413: "Request body too large",
               415: "The body is not application/json",
               422: "Invalid field (field names it)", 429: "Rate limited (Retry-After says when to retry)"}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses (all carry an ErrorBody)."""
    return {c: {"model": ErrorBody, "description": _ERROR_TEXT[c]} for c in codes}


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


# ----- body size limit and status counting (pure ASGI, outermost) ------------------------------------
class BodyLimitMiddleware:
    """413 for bodies above ``max_bytes`` (declared or streamed); counts every answer by status."""

    def __init__(self, app, max_bytes: int, on_status=None):
        self.app, self.max_bytes, self.on_status = app, int(max_bytes), on_status

    async def _answer(self, send, status: int, code: str, detail: str) -> None:
        body = json.dumps(error_body(code, detail)).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
        if self.on_status:
            self.on_status(status)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_large = f"request body above {self.max_bytes} bytes"
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    return await self._answer(send, 400, "bad_request", "invalid Content-Length header")
                if declared > self.max_bytes:
                    return await self._answer(send, 413, "too_large", too_large)
        chunks, total = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":      # client went away
                return
            part = message.get("body", b"")
            total += len(part)
            if total > self.max_bytes:
                return await self._answer(send, 413, "too_large", too_large)
            chunks.append(part)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def counting_send(message):
            if message["type"] == "http.response.start" and self.on_status:
                self.on_status(int(message["status"]))
            await send(message)

        await self.app(scope, replay, counting_send)


# ----- request bodies --------------------------------------------------------------------------------
def _int(lo: int, hi: int, *, gt: bool = False):
    return Annotated[int, Field(strict=True, gt=lo, le=hi) if gt else Field(strict=True, ge=lo, le=hi)]


NodeName = Annotated[str, Field(min_length=1, max_length=128)]


class MatchBody(BaseModel):
    """Extra match fields of a reservation's flow (carried to the data plane)."""

    model_config = ConfigDict(extra="forbid")
    ip_src: str | None = Field(None, max_length=18, description="IPv4 address or network (a.b.c.d[/n])")
    ip_dst: str | None = Field(None, max_length=18, description="IPv4 address or network (a.b.c.d[/n])")
    ip_proto: _int(0, 255) | None = None
    udp_dst: _int(0, 65535) | None = None
    tcp_dst: _int(0, 65535) | None = None
    ip_dscp: _int(0, 63) | None = None

    @field_validator("ip_src", "ip_dst")
    @classmethod
    def _ipv4(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            ipaddress.IPv4Network(v, strict=False)
        except ValueError:
            raise ValueError("must be an IPv4 address or network a.b.c.d[/n]") from None
        return v


class ReservationBody(BaseModel):
    """POST /v1/reservations. Give frame_bytes (+ period_ns) or bandwidth_bps."""

    model_config = ConfigDict(extra="forbid")
    tenant: _int(1, 4094) | None = Field(None, description="required with the admin token; a tenant's own id or omitted")
    src: NodeName
    dst: NodeName
    max_latency_ns: _int(0, 10**12, gt=True)
    period_ns: _int(1_000, 10**10) | None = None
    frame_bytes: _int(0, 10**9, gt=True) | None = None
    bandwidth_bps: _int(0, 10**13, gt=True) | None = None
    max_jitter_ns: _int(0, 10**12, gt=True) | None = None
    paths: Annotated[list[Annotated[list[NodeName], Field(min_length=2, max_length=256)]],
                     Field(min_length=1, max_length=16)] | None = None
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")] | None = None
    match: MatchBody | None = None
    protection: Literal["disjoint"] | None = Field(
        None, description='"disjoint": a second, link-disjoint path with its own slots; frames are replicated '
                          "at the ingress switch and duplicates eliminated at the listener")


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=64)]
    quota_bps: _int(0, 10**15) | None = None
    max_reservations: _int(0, 10**7) | None = None


class TenantPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    quota_bps: _int(0, 10**15) | None = None
    max_reservations: _int(0, 10**7) | None = None


def _field_of(loc: tuple | list) -> str:
    """Pydantic's error location without the source (body/query/path) or union branch names."""
    parts = [str(p) for p in loc[1:] if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))]
    return ".".join(parts) if parts else str(loc[0]) if loc else "request"


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return "transfer-encoding" in request.headers or (length is not None and length.strip() not in ("", "0"))


def _is_json(content_type: str | None) -> bool:
    """``application/json`` or ``application/*+json``, any parameters."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


# ----- the app ----------------------------------------------------------------------------------------
def create_app(service: ControllerService, *, rate_limit_per_s: float = 50.0, rate_limit_burst: int = 100,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> FastAPI:
    """The FastAPI application serving REST API v1 for ``service``."""
    # no trailing-slash redirects: they answered 307 with an empty body and a Location built from the
    # client's Host header, before authentication (e.g. /v1/reservations/ID/ -> /v1/reservations/ID)
    app = FastAPI(title="detnet controller", version=API_VERSION, redirect_slashes=False,
                  description="Deterministic wide-area networking: tenants, reservations, schedule.")
    app.state.service = service
    limiter = RateLimiter(rate_limit_per_s, rate_limit_burst)
    app.state.limiter = limiter
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes, on_status=service.metrics.http_answer)
    bearer = HTTPBearer(auto_error=False, description="admin token or a tenant's token")

    # ----- errors: always {"error","detail"} -----------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return JSONResponse(error_body(exc.code, exc.detail, **exc.extra), status_code=exc.status,
                            headers=exc.headers)

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError):
        if isinstance(exc, NotFound):
            return JSONResponse(error_body("not_found", exc.detail), status_code=404)
        if isinstance(exc, Forbidden):
            return JSONResponse(error_body("forbidden", exc.detail), status_code=403)
        if isinstance(exc, Invalid):
            return JSONResponse(error_body("invalid", exc.detail, field=exc.field), status_code=422)
        if isinstance(exc, Conflict):
            return JSONResponse(error_body("rejected", exc.detail, reason=exc.reason), status_code=409)
        return JSONResponse(error_body("bad_request", exc.detail), status_code=400)

    def rate_limit(request: Request, who: Principal | None) -> ApiError | None:
        """Take one token from the caller's bucket (its principal, else its address); the 429 if empty."""
        key = who.actor if who is not None else f"addr:{request.client.host if request.client else '-'}"
        wait = limiter.allow(key)
        if wait > 0:
            return ApiError(429, "rate_limited", f"too many requests; retry in {wait:.2f} s",
                            headers={"Retry-After": str(max(1, math.ceil(wait)))})
        return None

    def refused_input(request: Request, status: int, code: str, detail: str, **extra: Any) -> JSONResponse:
        """Answer a body/parameter error FastAPI found before our handler ran.

        Authentication comes first (FastAPI parses the body before it resolves dependencies, so a
        malformed body must not tell an unauthenticated caller anything but 401), and a refused
        write by a known principal is audited like any other.
        """
        if request.url.path.startswith("/v1/"):
            who = getattr(request.state, "principal", None)
            if who is None:         # the principal dependency did not run: charge its bucket here
                who = service.authenticate(parse_bearer(request.headers.get("authorization")))
                limited = rate_limit(request, who)
                if limited is not None:
                    return JSONResponse(error_body(limited.code, limited.detail), status_code=429,
                                        headers=limited.headers)
            if who is None:
                return JSONResponse(error_body("unauthorized", "missing or invalid bearer token"), status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
            if request.method in ("POST", "PATCH", "PUT", "DELETE"):
                route = request.scope.get("route")
                name = getattr(route, "name", request.url.path)
                action = {"create_reservation": "reserve", "patch_tenant": "update_tenant"}.get(name, name)
                service.record_refusal(who, action, {"method": request.method, "path": request.url.path},
                                       code, detail, field=extra.get("field"))
        return JSONResponse(error_body(code, detail, **extra), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {"loc": ("request",), "msg": "invalid request", "type": ""}
        if first.get("type") == "json_invalid":
            return refused_input(request, 400, "bad_request", "malformed JSON body")
        loc = tuple(first.get("loc", ()))
        if loc[:1] == ("body",) and _has_body(request) and not _is_json(request.headers.get("content-type")):
            # FastAPI did not even try to read it as JSON (form, text/plain, no Content-Type: curl -d)
            return refused_input(request, 415, "unsupported_media_type", "the body must be application/json")
        field = _field_of(loc)
        msg = str(first.get("msg", "invalid value"))
        if first.get("type") == "extra_forbidden":
            msg = "unknown field"
        elif first.get("type") == "missing" and field == "body":
            msg = "a JSON object body is required"
        return refused_input(request, 422, "invalid", f"{field}: {msg}", field=field)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        code = _STATUS_CODES.get(exc.status_code, "error")
        detail = exc.detail if isinstance(exc.detail, str) else code
        if exc.status_code == 400:      # body FastAPI could not parse
            return refused_input(request, 400, code, detail)
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:      # Starlette lists only the first matching route's methods
            allowed = set()
            for route in app.router.routes:
                if route.matches(request.scope)[0] != Match.NONE:
                    allowed |= set(getattr(route, "methods", None) or ())
            if allowed:
                headers = {**(headers or {}), "Allow": ", ".join(sorted(allowed))}
        return JSONResponse(error_body(code, detail), status_code=exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse(error_body("internal", "internal error (logged on the controller)"), status_code=500)

    # ----- auth ------------------------------------------------------------------------------------
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
        token = creds.credentials if creds is not None else None
        who = service.authenticate(token) if token else None
        limited = rate_limit(request, who)
        if limited is not None:
            raise limited
        request.state.principal = who
        if who is None:
            raise ApiError(401, "unauthorized", "missing bearer token" if token is None else "invalid bearer token",
                           headers={"WWW-Authenticate": "Bearer"})
        unknown = unknown_query_params(request)
        if unknown:   # e.g. an admin's ?tennant=3 would otherwise list every tenant's reservations
            raise ApiError(422, "invalid", f"{unknown[0]}: unknown query parameter", field=unknown[0])
        return who

    def admin(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if not who.is_admin:
            raise ApiError(403, "forbidden", "this route needs the admin token")
        return who

    Who = Annotated[Principal, Depends(principal)]
    Admin = Annotated[Principal, Depends(admin)]

    def reservation_body(res: Reservation) -> dict[str, Any]:
        d = res.to_dict()
        d["cycle_ns"] = service.scheduler.cycle_ns
        d["slot_ns"] = service.scheduler.slot_ns
        return d

    def rejection_error(rej: Rejection) -> ApiError:
        if rej.code == "invalid":
            field = rej.reason.split(":", 1)[1] if ":" in rej.reason else "request"
            return ApiError(422, "invalid", f"{field}: {rej.detail}", field=field)
        return ApiError(409, "rejected", rej.detail, reason=rej.reason)

    # ----- routes ----------------------------------------------------------------------------------
    AUTHED = (401, 413, 429)        # every /v1 route: auth, body limit, rate limit
    ADMIN = (*AUTHED, 403)
    @app.get("/healthz", tags=["status"], responses=_errors(413), summary="Liveness and a few counts")
    def healthz() -> dict[str, Any]:
        return service.health()

    @app.get("/metrics", tags=["status"], responses=_errors(413), summary="Prometheus text exposition", response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(service.metrics_text(), media_type=CONTENT_TYPE)

    @app.get("/v1/topology", tags=["network"], responses=_errors(*AUTHED), summary="Topology JSON, host plan and LLDP link check")
    def topology(who: Who) -> dict[str, Any]:
        return service.topology_dict()

    @app.get("/v1/tenants", tags=["tenants"], responses=_errors(*ADMIN), summary="Every tenant with quotas and usage (admin)")
    def list_tenants(who: Admin) -> dict[str, Any]:
        return {"tenants": service.list_tenants(principal=who)}

    @app.post("/v1/tenants", tags=["tenants"], status_code=201, responses=_errors(*ADMIN, 400, 409, 415, 422),
              summary="Create a tenant; its token is returned once (admin)")
    def create_tenant(body: TenantCreate, who: Admin, response: Response) -> dict[str, Any]:
        tenant, token = service.create_tenant(body.name, body.quota_bps, body.max_reservations, principal=who)
        response.headers["Location"] = f"/v1/tenants/{tenant.id}"
        return {"id": tenant.id, "name": tenant.name, "quota_bps": tenant.quota_bps,
                "max_reservations": tenant.max_reservations, "token": token}

    TenantId = Annotated[int, Path(ge=1, le=4094, description="tenant id")]

    @app.get("/v1/tenants/{tenant_id}", tags=["tenants"], responses=_errors(*ADMIN, 404, 422), summary="One tenant (admin)")
    def get_tenant(tenant_id: TenantId, who: Admin) -> dict[str, Any]:
        return service.get_tenant(tenant_id, principal=who)

    @app.patch("/v1/tenants/{tenant_id}", tags=["tenants"], responses=_errors(*ADMIN, 400, 404, 409, 415, 422), summary="Change a tenant's name or quotas (admin)")
    def patch_tenant(tenant_id: TenantId, body: TenantPatch, who: Admin) -> dict[str, Any]:
        fields = body.model_dump(exclude_unset=True)
        if fields.get("name", "") is None:
            raise ApiError(422, "invalid", "name: must not be null", field="name")
        return service.update_tenant(tenant_id, principal=who, **fields)

    @app.post("/v1/reservations", tags=["reservations"], status_code=201,
              responses=_errors(*AUTHED, 400, 403, 409, 415, 422),
              summary="Request a deterministic path: 201 with the reservation, 409 with the reason")
    def create_reservation(body: ReservationBody, who: Who, response: Response) -> dict[str, Any]:
        result = service.reserve(who, body.model_dump(exclude_unset=True))
        if isinstance(result, Rejection):
            raise rejection_error(result)
        response.headers["Location"] = f"/v1/reservations/{result.id}"
        return reservation_body(result)

    @app.get("/v1/reservations", tags=["reservations"], responses=_errors(*AUTHED, 422), summary="The caller's reservations (admin: all)")
    def list_reservations(who: Who, tenant: Annotated[int | None, Query(ge=1, le=4094)] = None) -> dict[str, Any]:
        return {"reservations": [reservation_body(r) for r in service.list_reservations(who, tenant)]}

    ReservationId = Annotated[str, Path(max_length=256)]

    @app.get("/v1/reservations/{reservation_id}", tags=["reservations"], responses=_errors(*AUTHED, 404, 422), summary="One reservation")
    def get_reservation(reservation_id: ReservationId, who: Who) -> dict[str, Any]:
        return reservation_body(service.get_reservation(who, reservation_id))

    @app.delete("/v1/reservations/{reservation_id}", tags=["reservations"], status_code=204,
                responses=_errors(*AUTHED, 404, 422),
                response_class=Response, summary="Release a reservation")
    def delete_reservation(reservation_id: ReservationId, who: Who) -> Response:
        service.release(who, reservation_id)
        return Response(status_code=204)

    @app.get("/v1/paths", tags=["reservations"], responses=_errors(*AUTHED, 403, 422), summary="What-if: would this request be admitted? Reserves nothing")
    def paths(who: Who,
              src: Annotated[str, Query(min_length=1, max_length=128)],
              dst: Annotated[str, Query(min_length=1, max_length=128)],
              max_latency_ns: Annotated[int, Query(gt=0, le=10**12)],
              bandwidth_bps: Annotated[int | None, Query(gt=0, le=10**13)] = None,
              frame_bytes: Annotated[int | None, Query(gt=0, le=10**9)] = None,
              period_ns: Annotated[int | None, Query(ge=1_000, le=10**10)] = None,
              max_jitter_ns: Annotated[int | None, Query(gt=0, le=10**12)] = None,
              tenant: Annotated[int | None, Query(ge=1, le=4094)] = None) -> dict[str, Any]:
        params = {k: v for k, v in dict(src=src, dst=dst, max_latency_ns=max_latency_ns, bandwidth_bps=bandwidth_bps,
                                        frame_bytes=frame_bytes, period_ns=period_ns, max_jitter_ns=max_jitter_ns,
                                        tenant=tenant).items() if v is not None}
        result = service.what_if(who, params)
        if isinstance(result, Rejection):
            if result.code == "invalid":
                raise rejection_error(result)
            return {"admissible": False, "reason": result.reason, "detail": result.detail}
        d = reservation_body(result)
        d.pop("id", None)
        return {"admissible": True, **d}

    @app.get("/v1/schedule", tags=["network"], responses=_errors(*AUTHED), summary="The Schedule JSON (a tenant sees its own reservations)")
    def schedule(who: Who) -> dict[str, Any]:
        return service.schedule_dict(who)

    @app.get("/v1/events", tags=["status"], responses=_errors(*AUTHED, 422), summary="Audit log entries after `since` (a tenant: its own)")
    def events(who: Who, since: Annotated[int, Query(ge=0, le=2**62)] = 0,
               limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> dict[str, Any]:
        items = service.events(who, since, limit)
        return {"events": items, "next": items[-1]["seq"] if items else since}

    return app
