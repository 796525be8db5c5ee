"""The REST API v1 (FastAPI) over a ControllerService. See docs/rest-api.md for the routes.

Guarantees kept by its parts:
- every error is JSON ``{"error": CODE, "detail": TEXT}`` (+ ``field`` on 422, ``reason`` on 409),
  including FastAPI's own validation errors, unknown routes and wrong methods; bad input never
  yields a 500 (``handlers``: 500 JSON only for genuine bugs, logged);
- request bodies are bounded (64 KiB by default: 413 on the Content-Length or on the streamed
  bytes, whichever shows it first) and validated by pydantic models that forbid unknown fields
  (``guards``, ``bodies``);
- each principal (or, before authentication, each client address) has a token bucket: 429 with
  ``Retry-After`` when it is empty (``guards``);
- tokens are read from the ``Authorization`` header only and never logged or echoed.

Rooms: ``app`` (``create_app``), ``guards`` (body limit, rate limit, authentication), ``handlers``
(exception handlers), ``errors`` (error bodies and ``ApiError``), ``bodies`` (request models),
``routers/`` (one per resource: status, network, tenants, reservations, paths, events).
"""

from controller.api.app import API_VERSION, DEFAULT_MAX_BODY_BYTES, create_app, warm_routes
from controller.api.errors import ApiError
from controller.api.guards import BodyLimitMiddleware, RateLimiter
from controller.api.server import server_config

__all__ = ["API_VERSION", "DEFAULT_MAX_BODY_BYTES", "ApiError", "BodyLimitMiddleware", "RateLimiter", "create_app",
           "server_config", "warm_routes"]
