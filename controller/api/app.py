"""``create_app``: the FastAPI application serving REST API v1 for a ``ControllerService``.

It holds the service and the rate limiter in ``app.state``, wraps everything in the HTTP metrics
(outermost: answers by route, method and status for ``/metrics``) and the body limit, installs the
error handlers and includes one router per resource. See docs/rest-api.md for the routes.
"""

# no `from __future__ import annotations`: FastAPI reads the real types

import asyncio
import threading
import time

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.routing import Route

from controller.api.guards import BodyLimitMiddleware, RateLimiter
from controller.api.handlers import install_handlers
from controller.api.http_metrics import HttpMetricsMiddleware
from controller.api.routers import batch, events, network, paths, reservations, standards, status, tenants, ui
from controller.service import ControllerService

API_VERSION = "1"
#: a path no route has: matching it walks every route of every router (``warm_routes``)
WARM_PATH = "/v1/__warm_routes__"
DEFAULT_MAX_BODY_BYTES = 64 * 1024
#: where /docs and /redoc load their JS, CSS and icon from
DOCS_ASSETS = "/docs-assets"


def create_app(service: ControllerService, *, rate_limit_per_s: float = 50.0, rate_limit_burst: int = 100,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> FastAPI:
    """The FastAPI application serving REST API v1 for ``service``."""
    # no trailing-slash redirects: they answered 307 with an empty body and a Location built from the
    # client's Host header, before authentication (e.g. /v1/reservations/ID/ -> /v1/reservations/ID)
    # /docs (Swagger UI) and /redoc work offline: their JS and CSS come from the fastapi-offline
    # package, served under DOCS_ASSETS by the controller itself (no CDN); no token needed, as for
    # /openapi.json; the validator badge, which would call validator.swagger.io, is off
    app = FastAPIOffline(title="detnet controller", version=API_VERSION, redirect_slashes=False,
                         description="Deterministic wide-area networking: tenants, reservations, schedule.",
                         static_url=DOCS_ASSETS, swagger_ui_parameters={"validatorUrl": None})
    app.state.service = service
    app.state.limiter = RateLimiter(rate_limit_per_s, rate_limit_burst)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(HttpMetricsMiddleware, record=service.metrics.http_answer)   # outermost: sees the 413s
    install_handlers(app)
    routers = [module.router for module in (status, network, standards, tenants, reservations, batch, paths, events,
                                            ui)]
    for router in routers:
        app.include_router(router)
    # every route, for the ``Allow`` header of a 405: FastAPI's own (openapi.json, docs) and ours
    # (``app.routes`` lists an included router as one entry, not its routes)
    app.state.routes = ([route for route in app.routes if isinstance(route, Route)]
                        + [route for router in routers for route in router.routes])
    return app


def warm_routes(app: FastAPI) -> float:
    """Make FastAPI build every route's request and response handling now; returns the seconds it took.

    FastAPI (0.12x and later) prepares an included router's routes (their pydantic models and
    dependencies) the first time a request is matched against that router, on the server's event
    loop: 0.1 s on a quiet machine, up to 0.7 s on a loaded one, during which no request is
    answered. A cluster member that followed had only ever answered reads and redirects, so the
    first write it served after taking over paid that cost inside the failover. One request for a
    path no route has (``WARM_PATH``, straight to the router: no middleware, no metrics) walks every
    route of every router; the launcher runs it before the server starts. It runs on its own thread
    with its own event loop, so it works whether or not the caller is inside one."""
    scope = {"type": "http", "method": "GET", "path": WARM_PATH, "raw_path": WARM_PATH.encode(), "root_path": "",
             "query_string": b"", "headers": [], "http_version": "1.1", "scheme": "http",
             "server": ("127.0.0.1", 0), "client": ("127.0.0.1", 0)}

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        pass

    t0 = time.perf_counter()
    worker = threading.Thread(target=asyncio.run, args=(app.router(scope, receive, send),), name="detnet-warm-routes")
    worker.start()
    worker.join()
    return time.perf_counter() - t0
