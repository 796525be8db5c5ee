"""``/healthz`` and ``/metrics``: liveness and the Prometheus text (no token needed)."""

# no `from __future__ import annotations`: FastAPI reads the handlers' real types

from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from controller.api.errors import responses
from controller.api.guards import Service
from controller.api.responses import METRICS_RESPONSES, Health
from controller.metrics import CONTENT_TYPE

router = APIRouter(tags=["status"])


@router.get("/healthz", responses=responses(413), summary="Liveness and a few counts", response_model=Health)
def healthz(service: Service) -> dict[str, Any]:
    return service.health()


@router.get("/metrics", responses=METRICS_RESPONSES, summary="Prometheus text exposition",
            response_class=PlainTextResponse)
def metrics(service: Service) -> PlainTextResponse:
    return PlainTextResponse(service.metrics_text(), media_type=CONTENT_TYPE)
