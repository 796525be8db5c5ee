"""``/v1/reservations/batch`` (bulk and gang admission) and ``/v1/reservations/delete`` (many ids).

A batch is a list of request bodies, each exactly a ``POST /v1/reservations`` body, admitted in
order as one change (``controller.batch``): ``atomic`` (the default) admits all or none and a
refusal is one 409 (or 422, 403) naming the first member that blocked (``index``, ``reason``);
otherwise 201 lists the admitted reservations and the rejections with their index and reason.

``Idempotency-Key`` as on ``POST /v1/reservations``: a 201 answer is recorded with the batch's
own store transaction; a repeat answers it again (``Idempotent-Replayed: true``).
"""

# no `from __future__ import annotations`: FastAPI reads the handlers' real types

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from controller.api.bodies import ReservationBody
from controller.api.errors import AUTHED, ApiError, responses
from controller.api.guards import Service, Who
from controller.api.handlers import field_of
from controller.api.responses import BatchAnswer, Deleted
from controller import idempotency
from controller.api.routers.reservations import IdempotencyKey, keyed_answer, keyed_attempt, reservation_body
from controller.views import tenant_view
from controller.batch import BatchMemberError
from controller.core.model import Rejection
from controller.errors import Conflict, Invalid

router = APIRouter(tags=["reservations"])

#: the most members one batch (or one multi-delete) may have
MAX_BATCH = 4096


class BatchBody(BaseModel):
    """POST /v1/reservations/batch."""

    model_config = ConfigDict(extra="forbid")
    atomic: bool = Field(True, strict=True, description="all or none (default); false: admit what fits")
    reservations: list[dict[str, Any]] = Field(..., min_length=1, max_length=MAX_BATCH,
                                                description="request bodies, each as in POST /v1/reservations")


class DeleteManyBody(BaseModel):
    """POST /v1/reservations/delete."""

    model_config = ConfigDict(extra="forbid")
    ids: list[Annotated[str, StringConstraints(min_length=1, max_length=256)]] = Field(
        ..., min_length=1, max_length=MAX_BATCH, description="reservation ids, all deleted or none")


def _member(item: dict[str, Any]) -> dict[str, Any] | Rejection:
    """One member checked as the single POST's body is (a 422 there is an ``invalid:<field>`` here)."""
    try:
        return ReservationBody.model_validate(item).model_dump(exclude_unset=True)
    except ValidationError as e:
        first = e.errors()[0]
        field = field_of(("body",) + tuple(first.get("loc", ())))
        msg = "unknown field" if first.get("type") == "extra_forbidden" else str(first.get("msg", "invalid value"))
        return Rejection(f"invalid:{field}", msg)


def _refusal(index: int, rej: Rejection) -> dict[str, Any]:
    """A refused member as the rejections list (and the atomic refusal) shows it: the single POST's
    error body plus ``index``."""
    if rej.code == "invalid":
        field = rej.reason.split(":", 1)[1] if ":" in rej.reason else "request"
        return {"index": index, "error": "invalid", "detail": f"{field}: {rej.detail}", "field": field,
                "reason": rej.reason}
    return {"index": index, "error": "rejected", "detail": rej.detail, "reason": rej.reason}


def _member_error(e: BatchMemberError) -> ApiError:
    extra: dict[str, Any] = {"index": e.index}
    if isinstance(e.error, Invalid):
        extra["field"] = e.error.field
    if isinstance(e.error, Conflict):
        extra["reason"] = e.error.reason
    status = {"forbidden": 403, "not_found": 404, "invalid": 422, "rejected": 409}.get(e.error.code, 400)
    return ApiError(status, e.error.code, f"member {e.index}: {e.error.detail}", **extra)


@router.post("/v1/reservations/batch", status_code=201, responses=responses(*AUTHED, 400, 403, 409, 415, 422),
             response_model=BatchAnswer,
             summary="Admit many reservations as one change: atomic (all or none) or each on its own")
def create_batch(body: BatchBody, who: Who, service: Service, idempotency_key: IdempotencyKey = None) -> Any:
    members = [_member(item) for item in body.reservations]

    def render(admitted: list[Any], rejected: list[Any]) -> dict[str, Any]:
        """The 201 answer (as below) of a keyed batch, recorded with it."""
        answer: dict[str, Any] = {"atomic": body.atomic, "reservations": [
            reservation_body(service, tenant_view(who, r)) for r in admitted]}
        if not body.atomic:
            answer["rejections"] = [_refusal(i, tenant_view(who, service._hinted(rej, members[i])))
                                    for i, rej in rejected]
        return answer

    attempt = keyed_attempt(idempotency_key, who, "POST /v1/reservations/batch", body.model_dump(), render)
    try:
        with idempotency.attempt(attempt):
            out = service.reserve_batch(who, members, atomic=body.atomic)
    except BatchMemberError as e:
        raise _member_error(e) from None
    except idempotency.Replayed as e:
        return keyed_answer(e.status, e.body, replayed=True)
    except idempotency.KeyReused as e:
        raise ApiError(422, e.code, e.detail, field=e.field) from None
    if attempt is not None and attempt.answer is not None and out.blocked is None:
        return keyed_answer(*attempt.answer, replayed=False)
    if out.blocked is not None:
        index, rej = out.blocked
        refusal = _refusal(index, rej)
        if rej.code == "invalid":
            field = f"reservations.{index}.{refusal['field']}"
            raise ApiError(422, "invalid", f"member {index}: {refusal['detail']}", field=field, index=index)
        raise ApiError(409, "rejected", f"member {index}: {rej.detail}; nothing was admitted",
                       reason=rej.reason, index=index)
    answer: dict[str, Any] = {"atomic": body.atomic,
                              "reservations": [reservation_body(service, r) for r in out.admitted]}
    if not body.atomic:
        answer["rejections"] = [_refusal(i, rej) for i, rej in out.rejected]
    return answer


@router.post("/v1/reservations/delete", responses=responses(*AUTHED, 400, 404, 415, 422),
             response_model=Deleted,
             summary="Release many reservations: all of them, or none (404/422 naming the first bad id)")
def delete_many(body: DeleteManyBody, who: Who, service: Service) -> dict[str, Any]:
    try:
        released = service.release_many(who, list(body.ids))
    except BatchMemberError as e:
        raise _member_error(e) from None
    return {"deleted": [r.id for r in released]}
