"""``/v1/topology`` and ``/v1/schedule``: the network and its schedule (read only)."""

# no `from __future__ import annotations`: FastAPI reads the handlers' real types

from typing import Any

from fastapi import APIRouter

from controller.api.errors import AUTHED, responses
from controller.api.guards import Service, Who
from controller.api.responses import Schedule, Topology

router = APIRouter(tags=["network"])


@router.get("/v1/topology", responses=responses(*AUTHED), response_model=Topology,
            summary="Topology JSON, host plan (a tenant: its own hosts) and LLDP link check")
def topology(who: Who, service: Service) -> dict[str, Any]:
    return service.topology_for(who)


@router.get("/v1/schedule", responses=responses(*AUTHED), response_model=Schedule,
            summary="The Schedule JSON (a tenant sees its own reservations)")
def schedule(who: Who, service: Service) -> dict[str, Any]:
    return service.schedule_dict(who)
