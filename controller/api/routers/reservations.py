"""``/v1/reservations``: request (201 or 409 with the reason), list, read and release reservations."""

# no `from __future__ import annotations`: FastAPI reads the handlers' real types

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from controller.api.bodies import ReservationBody
from controller.api.errors import AUTHED, rejection_error, responses
from controller.api.guards import Service, Who
from controller.core.model import Rejection, Reservation
from controller.service import ControllerService

router = APIRouter(tags=["reservations"])

ReservationId = Annotated[str, Path(max_length=256)]


def reservation_body(service: ControllerService, res: Reservation) -> dict[str, Any]:
    """A reservation as the API shows it: the Schedule JSON entry plus the current cycle and slot,
    and ``warnings`` (a list, empty when all is well): an admitted reservation that no packet can
    use (no host of its tenant at an end, a match naming another tenant's host) says so."""
    d = res.to_dict()
    d["cycle_ns"] = service.scheduler.cycle_ns
    d["slot_ns"] = service.scheduler.slot_ns
    d["warnings"] = service.install_warnings(res)
    return d


@router.post("/v1/reservations", status_code=201, responses=responses(*AUTHED, 400, 403, 409, 415, 422),
             summary="Request a deterministic path: 201 with the reservation, 409 with the reason")
def create_reservation(body: ReservationBody, who: Who, service: Service, response: Response) -> dict[str, Any]:
    result = service.reserve(who, body.model_dump(exclude_unset=True))
    if isinstance(result, Rejection):
        raise rejection_error(result)
    response.headers["Location"] = f"/v1/reservations/{result.id}"
    return reservation_body(service, result)


@router.get("/v1/reservations", responses=responses(*AUTHED, 403, 422),
            summary="The caller's reservations (admin: all, or ?tenant=N; a tenant naming another: 403)")
def list_reservations(who: Who, service: Service,
                      tenant: Annotated[int | None, Query(ge=1, le=4094)] = None) -> dict[str, Any]:
    return {"reservations": [reservation_body(service, r) for r in service.list_reservations(who, tenant)]}


@router.get("/v1/reservations/{reservation_id}", responses=responses(*AUTHED, 404, 422), summary="One reservation")
def get_reservation(reservation_id: ReservationId, who: Who, service: Service) -> dict[str, Any]:
    return reservation_body(service, service.get_reservation(who, reservation_id))


@router.delete("/v1/reservations/{reservation_id}", status_code=204, responses=responses(*AUTHED, 404, 422),
               response_class=Response, summary="Release a reservation")
def delete_reservation(reservation_id: ReservationId, who: Who, service: Service) -> Response:
    service.release(who, reservation_id)
    return Response(status_code=204)
