"""``/healthz`` and ``/metrics``: liveness and the Prometheus text (no token needed)."""

# no `from __future__ import annotations`: FastAPI reads the handlers' real types

from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from controller.api.errors import responses
from controller.api.guards import Service
from controller.metrics import CONTENT_TYPE

router = APIRouter(tags=["status"])


@router.get("/healthz", responses=responses(413), summary="Liveness and a few counts")
def healthz(service: Service) -> dict[str, Any]:
    return service.health()


@router.get("/metrics", responses=responses(413), summary="Prometheus text exposition",
            response_class=PlainTextResponse)
def metrics(service: Service) -> PlainTextResponse:
    return PlainTextResponse(service.metrics_text(), media_type=CONTENT_TYPE)
