"""Exception handlers of the REST API: every way a request can end badly, as an error body.

The service's refusals (``controller.errors``: 404, 403, 422 with ``field``, 409 with ``reason``),
FastAPI's validation errors (400 malformed JSON, 415 not JSON, 422 naming the field), unknown
routes and wrong methods (404, 405 with the ``Allow`` of every route on the path), a store that
could not take a write (503 ``store_unavailable`` or ``not_leader`` with ``Retry-After``; 413
``too_large`` for a write above etcd's limits; nothing changed either way) and genuine bugs (500,
logged; bad input never yields one). A body or parameter error found before a
handler ran is answered after authentication (401 first), charged to the caller's rate bucket
and, for writes, audited like any other refusal.
"""

# no `from __future__ import annotations`: FastAPI reads the handlers' real types

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from controller.api.errors import STATUS_CODES, ApiError, error_body, unauthorized
from controller.api.guards import PRINCIPAL_KEY, charge
from controller.auth import Principal, parse_bearer
from controller.errors import Conflict, Forbidden, Invalid, NotFound, ServiceError
from controller.etcdstore import NotLeader
from controller.storebase import StoreError

log = logging.getLogger("detnet.api")

#: Audit action of a refused write, by route name (other routes audit under their own name).
ACTIONS = {"create_reservation": "reserve", "patch_tenant": "update_tenant"}
#: Routes that take a body but change nothing (the what-if): a refusal there is not audited.
READ_ONLY = frozenset({"paths_body"})


def field_of(loc: tuple | list) -> str:
    """Pydantic's error location without the source (body/query/path) or union branch names."""
    parts = [str(p) for p in loc[1:] if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))]
    return ".".join(parts) if parts else str(loc[0]) if loc else "request"


def has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return "transfer-encoding" in request.headers or (length is not None and length.strip() not in ("", "0"))


def is_json(content_type: str | None) -> bool:
    """``application/json`` or ``application/*+json``, any parameters."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _answer(err: ApiError) -> JSONResponse:
    return JSONResponse(error_body(err.code, err.detail, **err.extra), status_code=err.status, headers=err.headers)


def _service_answer(exc: ServiceError) -> JSONResponse:
    if isinstance(exc, NotFound):
        return JSONResponse(error_body("not_found", exc.detail), status_code=404)
    if isinstance(exc, Forbidden):
        return JSONResponse(error_body("forbidden", exc.detail), status_code=403)
    if isinstance(exc, Invalid):
        return JSONResponse(error_body("invalid", exc.detail, field=exc.field), status_code=422)
    if isinstance(exc, Conflict):
        return JSONResponse(error_body("rejected", exc.detail, reason=exc.reason), status_code=409)
    return JSONResponse(error_body("bad_request", exc.detail), status_code=400)


def _refused_input(request: Request, status: int, code: str, detail: str, **extra: Any) -> JSONResponse:
    """Answer a body/parameter error FastAPI found before our handler ran.

    Authentication comes first (FastAPI parses the body before it resolves dependencies, so a
    malformed body must not tell an unauthenticated caller anything but 401), and a refused
    write by a known principal is audited like any other.
    """
    if request.url.path.startswith("/v1/"):
        service = request.app.state.service
        who: Principal | None = request.scope.get(PRINCIPAL_KEY)
        if who is None:         # the principal dependency did not run: charge its bucket here
            who = service.authenticate(parse_bearer(request.headers.get("authorization")))
            limited = charge(request, who)
            if limited is not None:
                return _answer(limited)
        if who is None:
            return _answer(unauthorized("missing or invalid bearer token"))
        route = request.scope.get("route")
        name = route.name if isinstance(route, APIRoute) else request.url.path
        if request.method in ("POST", "PATCH", "PUT", "DELETE") and name not in READ_ONLY:
            service.record_refusal(who, ACTIONS.get(name, name), {"method": request.method, "path": request.url.path},
                                   code, detail, field=extra.get("field"))
    return JSONResponse(error_body(code, detail, **extra), status_code=status)


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return _answer(exc)


async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
    return _service_answer(exc)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": ("request",), "msg": "invalid request", "type": ""}
    if first.get("type") == "json_invalid":
        return _refused_input(request, 400, "bad_request", "malformed JSON body")
    loc = tuple(first.get("loc", ()))
    if loc[:1] == ("body",) and has_body(request) and not is_json(request.headers.get("content-type")):
        # FastAPI did not even try to read it as JSON (form, text/plain, no Content-Type: curl -d)
        return _refused_input(request, 415, "unsupported_media_type", "the body must be application/json")
    field = field_of(loc)
    msg = str(first.get("msg", "invalid value"))
    if first.get("type") == "extra_forbidden":
        msg = "unknown field"
    elif first.get("type") == "missing" and field == "body":
        msg = "a JSON object body is required"
    return _refused_input(request, 422, "invalid", f"{field}: {msg}", field=field)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = STATUS_CODES.get(exc.status_code, "error")
    detail = exc.detail if isinstance(exc.detail, str) else code
    if exc.status_code == 400:      # body FastAPI could not parse
        return _refused_input(request, 400, code, detail)
    headers = exc.headers
    if exc.status_code == 405:      # Starlette lists only the first matching route's methods
        allowed: set[str] = set()
        matching = [route for route in request.app.state.routes if route.matches(request.scope)[0] != Match.NONE]
        # a literal path (/v1/reservations/batch, /v1/tenants/me) answers with its own methods, as
        # documented, not those of the parametrised path it also fits (/v1/reservations/{id})
        literal = [route for route in matching if not route.param_convertors]
        for route in literal or matching:
            allowed |= set(route.methods or ())
        if allowed:
            headers = {**(headers or {}), "Allow": ", ".join(sorted(allowed))}
    return JSONResponse(error_body(code, detail), status_code=exc.status_code, headers=headers)


async def _store_error(request: Request, exc: StoreError) -> JSONResponse:
    """The store refused or could not take a write (nothing was changed: the service undoes its
    decision first). A write too large for etcd is the caller's to split (413); a store that is
    away, or a leader that lost its lease meanwhile (``NotLeader``), is worth a retry (503)."""
    detail = " ".join(str(exc).split())[:300]
    log.error("store failure on %s %s: %s", request.method, request.url.path, detail)
    if "too large" in detail or "too many operations" in detail:
        return JSONResponse(error_body("too_large", f"the store refused a write this large ({detail}): send "
                                       "fewer reservations at once"), status_code=413)
    code = "not_leader" if isinstance(exc, NotLeader) else "store_unavailable"
    return JSONResponse(error_body(code, f"nothing was changed: {detail}"), status_code=503,
                        headers={"Retry-After": "1"})


async def _bug(request: Request, exc: Exception) -> JSONResponse:
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body("internal", "internal error (logged on the controller)"), status_code=500)


def install_handlers(app: FastAPI) -> None:
    """Every error answer of ``app`` as ``{"error", "detail"}`` JSON."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(StoreError, _store_error)
    app.add_exception_handler(Exception, _bug)
