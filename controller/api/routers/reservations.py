"""``/v1/reservations``: request (201 or 409 with the reason), list, read and release reservations.

``POST`` takes an optional ``Idempotency-Key`` header (``controller.idempotency``): a repeat of a
keyed request gets the first answer again, with ``Idempotent-Replayed: true``, and admits nothing.
"""

# no `from __future__ import annotations`: FastAPI reads the handlers' real types

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from controller import idempotency

from controller.api.bodies import MatchBody, ReservationBody, _int
from controller.api.errors import AUTHED, ApiError, rejection_error, responses
from controller.api.guards import Service, Who
from controller.api.responses import Reservation as ReservationAnswer
from controller.api.responses import ReservationList
from controller.core.model import Rejection, Reservation
from controller.auth import Principal
from controller.listing import BadCursor, compact, decode_cursor, encode_cursor
from controller.service import ControllerService
from controller.views import tenant_view

router = APIRouter(tags=["reservations"])

ReservationId = Annotated[str, Path(max_length=256)]
IdempotencyKey = Annotated[str | None, Header(
    alias=idempotency.HEADER, description="1-200 printable ASCII characters, e.g. a uuid4: a repeat with the "
    "same key and body answers the first answer again (Idempotent-Replayed: true) and admits nothing; the "
    "same key with another body is a 422 idempotency_key_reused. Scoped to the caller's token; kept 24 h")]
#: the largest page ``?limit=`` may ask for
MAX_PAGE = 10_000


class ReservationPatch(BaseModel):
    """PATCH /v1/reservations/{id}: the fields to change (at least one). Rate: ``bandwidth_bps``
    or ``frame_bytes`` (never both), each with ``period_ns`` or the current period; ``period_ns``
    alone keeps the bytes per period. ``match``, ``protection``, ``max_jitter_ns``: null removes."""

    model_config = ConfigDict(extra="forbid")
    bandwidth_bps: _int(0, 10**13, gt=True) | None = None
    frame_bytes: _int(0, 10**9, gt=True) | None = None
    period_ns: _int(1_000, 10**10) | None = None
    max_latency_ns: _int(0, 10**12, gt=True) | None = None
    max_jitter_ns: _int(0, 10**12, gt=True) | None = None
    match: MatchBody | None = None
    protection: Literal["disjoint"] | None = Field(None, description='"disjoint" or null (one path)')


def reservation_body(service: ControllerService, res: Reservation) -> dict[str, Any]:
    """A reservation as the API shows it: the Schedule JSON entry plus the current cycle and slot,
    and ``warnings`` (a list, empty when all is well): an admitted reservation that no packet can
    use (no host of its tenant at an end, a match naming another tenant's host) says so."""
    d = res.to_dict()
    d["cycle_ns"] = service.scheduler.cycle_ns
    d["slot_ns"] = service.scheduler.slot_ns
    d["warnings"] = service.install_warnings(res)
    return d


def keyed_attempt(key: str | None, who: Principal, endpoint: str, body: Any,
                  render: Any) -> idempotency.Attempt | None:
    """The request's ``Attempt`` for its ``Idempotency-Key`` header (None without one); a bad key
    is a 422 naming the header."""
    if key is None:
        return None
    why = idempotency.check_key(key)
    if why is not None:
        raise ApiError(422, "invalid", f"{idempotency.HEADER}: {why}", field=idempotency.HEADER)
    return idempotency.Attempt(who.actor, key, idempotency.fingerprint(endpoint, body), render)


def keyed_answer(status: int, body: Any, *, replayed: bool) -> JSONResponse:
    """A keyed request's answer (the recorded one): ``Location`` for a 201 with an ``id``."""
    headers = {idempotency.REPLAYED_HEADER: "true"} if replayed else {}
    if status == 201 and isinstance(body, dict) and isinstance(body.get("id"), str):
        headers["Location"] = f"/v1/reservations/{body['id']}"
    return JSONResponse(body, status_code=status, headers=headers)


@router.post("/v1/reservations", status_code=201, responses=responses(*AUTHED, 400, 403, 409, 415, 422),
             response_model=ReservationAnswer,
             summary="Request a deterministic path: 201 with the reservation, 409 with the reason")
def create_reservation(body: ReservationBody, who: Who, service: Service, response: Response,
                       idempotency_key: IdempotencyKey = None) -> Any:
    request = body.model_dump(exclude_unset=True)
    attempt = keyed_attempt(idempotency_key, who, "POST /v1/reservations", request,
                            lambda res: reservation_body(service, tenant_view(who, res)))
    try:
        with idempotency.attempt(attempt):
            result = service.reserve(who, request)
    except idempotency.Replayed as e:
        return keyed_answer(e.status, e.body, replayed=True)
    except idempotency.KeyReused as e:
        raise ApiError(422, e.code, e.detail, field=e.field) from None
    if isinstance(result, Rejection):
        raise rejection_error(result)
    if attempt is not None and attempt.answer is not None:     # the answer recorded with the reservation
        return keyed_answer(*attempt.answer, replayed=False)
    response.headers["Location"] = f"/v1/reservations/{result.id}"
    return reservation_body(service, result)


@router.get("/v1/reservations", responses=responses(*AUTHED, 403, 422),
            response_model=ReservationList,
            summary="The caller's reservations (admin: all, or ?tenant=N; a tenant naming another: 403); "
                    "filters, cursor pages and the compact slot form on request")
def list_reservations(
        who: Who, service: Service,
        tenant: Annotated[int | None, Query(ge=1, le=4094, description="admin: this tenant's only")] = None,
        src: Annotated[str | None, Query(min_length=1, max_length=128, description="source node")] = None,
        dst: Annotated[str | None, Query(min_length=1, max_length=128, description="destination node")] = None,
        status: Annotated[Literal["active", "down", "unrestored"] | None,
                          Query(description="active (on the network), down or unrestored")] = None,
        limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE,
                                           description="page size (absent: every reservation, one page)")] = None,
        cursor: Annotated[str | None, Query(max_length=400, description="next_cursor of the previous page")] = None,
        slots: Annotated[Literal["expanded", "compact"], Query(
            description="expanded (default, the contract's slot lists) or compact (runs within the period, "
                        "see docs/rest-api.md)")] = "expanded") -> dict[str, Any]:
    try:
        after = decode_cursor(cursor) if cursor is not None else None
    except BadCursor as e:
        raise ApiError(422, "invalid", f"cursor: {e}", field="cursor") from None
    page, last = service.list_reservations_page(who, tenant=tenant, src=src, dst=dst, status=status,
                                                after=after, limit=limit)
    items = [reservation_body(service, r) for r in page]
    if slots == "compact":
        items = [compact(d) for d in items]
    answer: dict[str, Any] = {"reservations": items}
    if limit is not None or cursor is not None:     # a paged listing; the unpaged answer is as it always was
        answer["next_cursor"] = encode_cursor(last) if last is not None else None
    return answer


@router.get("/v1/reservations/{reservation_id}", responses=responses(*AUTHED, 404, 422), summary="One reservation",
            response_model=ReservationAnswer)
def get_reservation(reservation_id: ReservationId, who: Who, service: Service) -> dict[str, Any]:
    return reservation_body(service, service.get_reservation(who, reservation_id))


@router.patch("/v1/reservations/{reservation_id}", responses=responses(*AUTHED, 400, 404, 409, 415, 422),
              response_model=ReservationAnswer,
              summary="Change a reservation's rate, bounds, match or protection: same id, make-before-break")
def patch_reservation(reservation_id: ReservationId, body: ReservationPatch, who: Who,
                      service: Service) -> dict[str, Any]:
    patch = body.model_dump(exclude_unset=True)
    if patch.get("max_latency_ns", 0) is None:
        raise ApiError(422, "invalid", "max_latency_ns: must not be null", field="max_latency_ns")
    for key in ("bandwidth_bps", "frame_bytes", "period_ns"):
        if key in patch and patch[key] is None:
            raise ApiError(422, "invalid", f"{key}: must not be null", field=key)
    if "match" in patch and patch["match"] is not None:
        patch["match"] = {k: v for k, v in patch["match"].items() if v is not None}
    result = service.modify_reservation(who, reservation_id, patch)
    if isinstance(result, Rejection):
        raise rejection_error(result)
    return reservation_body(service, result)


@router.delete("/v1/reservations/{reservation_id}", status_code=204, responses=responses(*AUTHED, 404, 422),
               response_class=Response, summary="Release a reservation")
def delete_reservation(reservation_id: ReservationId, who: Who, service: Service) -> Response:
    service.release(who, reservation_id)
    return Response(status_code=204)
