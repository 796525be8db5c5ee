"""``/v1/paths``: what-if admission (would this request fit now?). Reserves nothing."""

# no `from __future__ import annotations`: FastAPI reads the handlers' real types

from typing import Annotated, Any

from fastapi import APIRouter, Query

from controller.api.errors import AUTHED, rejection_error, responses
from controller.api.guards import Service, Who
from controller.api.routers.reservations import reservation_body
from controller.core.model import Rejection

router = APIRouter(tags=["reservations"])


@router.get("/v1/paths", responses=responses(*AUTHED, 403, 422),
            summary="What-if: would this request be admitted? Reserves nothing")
def paths(who: Who, service: Service,
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
    d = reservation_body(service, result)
    d.pop("id", None)
    return {"admissible": True, **d}
