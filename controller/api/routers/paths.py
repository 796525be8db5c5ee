"""``/v1/paths``: what-if admission (would this request fit now?). Reserves nothing.

``POST /v1/paths`` takes exactly the body of ``POST /v1/reservations``; ``GET /v1/paths`` takes
the same fields as query parameters (``paths`` repeated, nodes comma-separated; the match as
``match.udp_dst`` etc.). Both answer what the POST would: the same checks in the same order
(``ControllerService.what_if``), so a what-if that says admissible is not refused by the POST that
follows it (unless the network changed in between).
"""

# no `from __future__ import annotations`: FastAPI reads the handlers' real types

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from controller.api.bodies import ReservationBody
from controller.api.errors import AUTHED, rejection_error, responses
from controller.api.guards import Service, Who
from controller.api.responses import WhatIf
from controller.api.routers.reservations import reservation_body
from controller.auth import Principal
from controller.core.model import MATCH_FIELDS, Rejection
from controller.service import ControllerService

router = APIRouter(tags=["reservations"])

_SUMMARY = "What-if: would this request be admitted? Reserves nothing"


def _int_query(name: str):
    lo, hi = MATCH_FIELDS[name]
    return Annotated[int | None, Query(alias=f"match.{name}", ge=lo, le=hi)]


def what_if_answer(service: ControllerService, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
    """The what-if's answer to a reservation body: ``{"admissible": true, <the reservation but its
    id>, "warnings": [...]}`` or ``{"admissible": false, "reason", "detail"}``; invalid input is a
    422 as for the POST."""
    result = service.what_if(who, body)
    if isinstance(result, Rejection):
        if result.code == "invalid":
            raise rejection_error(result)
        return {"admissible": False, "reason": result.reason, "detail": result.detail}
    d = reservation_body(service, result)
    d.pop("id", None)
    if who.is_admin and body.get("tenant") is None:
        d["tenant"] = None              # the network alone answered: no tenant's hosts to check
        d["warnings"] = []
    return {"admissible": True, **d}


@router.get("/v1/paths", responses=responses(*AUTHED, 403, 422), summary=_SUMMARY, response_model=WhatIf)
def paths(who: Who, service: Service,
          src: Annotated[str, Query(min_length=1, max_length=128)],
          dst: Annotated[str, Query(min_length=1, max_length=128)],
          max_latency_ns: Annotated[int, Query(gt=0, le=10**12)],
          bandwidth_bps: Annotated[int | None, Query(gt=0, le=10**13)] = None,
          frame_bytes: Annotated[int | None, Query(gt=0, le=10**9)] = None,
          period_ns: Annotated[int | None, Query(ge=1_000, le=10**10)] = None,
          max_jitter_ns: Annotated[int | None, Query(gt=0, le=10**12)] = None,
          tenant: Annotated[int | None, Query(ge=1, le=4094)] = None,
          id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9._-]{1,64}$")] = None,
          protection: Annotated[Literal["disjoint"] | None, Query()] = None,
          paths: Annotated[list[str] | None,
                           Query(max_length=16, description="a candidate path, nodes comma-separated; repeat "
                                                            "for more")] = None,
          match_ip_src: Annotated[str | None, Query(alias="match.ip_src", max_length=18)] = None,
          match_ip_dst: Annotated[str | None, Query(alias="match.ip_dst", max_length=18)] = None,
          match_ip_proto: _int_query("ip_proto") = None,
          match_udp_dst: _int_query("udp_dst") = None,
          match_tcp_dst: _int_query("tcp_dst") = None,
          match_ip_dscp: _int_query("ip_dscp") = None) -> dict[str, Any]:
    match = {k: v for k, v in dict(ip_src=match_ip_src, ip_dst=match_ip_dst, ip_proto=match_ip_proto,
                                   udp_dst=match_udp_dst, tcp_dst=match_tcp_dst, ip_dscp=match_ip_dscp).items()
             if v is not None}
    hints = [[n.strip() for n in p.split(",")] for p in paths] if paths else None
    body = {k: v for k, v in dict(src=src, dst=dst, max_latency_ns=max_latency_ns, bandwidth_bps=bandwidth_bps,
                                  frame_bytes=frame_bytes, period_ns=period_ns, max_jitter_ns=max_jitter_ns,
                                  tenant=tenant, id=id, protection=protection, paths=hints,
                                  match=match or None).items() if v is not None}
    return what_if_answer(service, who, body)


@router.post("/v1/paths", responses=responses(*AUTHED, 400, 403, 415, 422), summary=_SUMMARY + " (the POST body)",
             response_model=WhatIf)
def paths_body(body: ReservationBody, who: Who, service: Service) -> dict[str, Any]:
    return what_if_answer(service, who, body.model_dump(exclude_unset=True))
