"""The REST API's error answers: always JSON ``{"error": CODE, "detail": TEXT}``.

``field`` is added on 422 and ``reason`` on 409. Handlers raise ``ApiError``; the OpenAPI
document lists, per route, the error statuses it can give (``responses``), each with an
``ErrorBody``. ``controller.api.handlers`` turns every other exception into such a body.
"""

# no `from __future__ import annotations`: FastAPI and pydantic read the real types

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from controller.core.model import Rejection

#: The error code of each HTTP status the API answers with.
STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
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
    index: int | None = Field(None, description="the member that refused a batch or multi-delete (0-based)")


_ERROR_TEXT = {400: "Malformed request (JSON syntax, Content-Length)", 401: "Missing or invalid bearer token",
               403: "Not allowed with this token", 404: "No such resource (or not the caller's)",
               409: "Well formed but rejected (reason says why)", 413: "Request body too large",
               415: "The body is not application/json",
               422: "Invalid field (field names it)", 429: "Rate limited (Retry-After says when to retry)"}

#: Statuses every /v1 route can give: auth, body limit, rate limit; admin routes add 403.
AUTHED = (401, 413, 429)
ADMIN = (*AUTHED, 403)


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses (all carry an ErrorBody)."""
    return {c: {"model": ErrorBody, "description": _ERROR_TEXT[c]} for c in codes}


def rejection_error(rej: Rejection) -> ApiError:
    """A scheduler rejection as an answer: 422 naming the field for bad input, else 409 with the reason."""
    if rej.code == "invalid":
        field = rej.reason.split(":", 1)[1] if ":" in rej.reason else "request"
        return ApiError(422, "invalid", f"{field}: {rej.detail}", field=field)
    return ApiError(409, "rejected", rej.detail, reason=rej.reason)


def unauthorized(detail: str) -> ApiError:
    return ApiError(401, "unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})
