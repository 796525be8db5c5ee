"""``/v1/events``: the audit and event log after a sequence number (a tenant sees its own)."""

# no `from __future__ import annotations`: FastAPI reads the handlers' real types

from typing import Annotated, Any

from fastapi import APIRouter, Query

from controller.api.errors import AUTHED, responses
from controller.api.guards import Service, Who
from controller.api.responses import Events

router = APIRouter(tags=["status"])


@router.get("/v1/events", responses=responses(*AUTHED, 422), response_model=Events,
            summary="Audit log entries after `since` (a tenant: its own)")
def events(who: Who, service: Service, since: Annotated[int, Query(ge=0, le=2**62)] = 0,
           limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> dict[str, Any]:
    items = service.events(who, since, limit)
    return {"events": items, "next": items[-1]["seq"] if items else since}
