"""``/ui``: the operator's live view, and ``/v1/events/stream``, the event log as server-sent events.

The page (``controller/ui/``: ``index.html``, ``app.js``, ``style.css``; plain SVG, no framework,
no CDN) is served by the controller itself, so it works on a network with no way out. It needs no
token to load, like ``/docs``; everything it shows comes from the ``/v1/`` routes with the token
the operator gives (``/ui#token=TOKEN`` or the token field): the admin sees everything, a tenant
its own. The answer carries a Content-Security-Policy that lets the page talk to this controller
only.

``GET /v1/events/stream`` is ``GET /v1/events`` kept open (same token, same view: a tenant sees
the entries about itself): ``text/event-stream`` with one ``audit`` event per audit entry, a
``links`` event whenever the set of links down or the LLDP link check changes (link state is
network-wide, as in ``/v1/topology``), and a ``ready`` event first, carrying the ``next`` sequence
number, after which the page loads its snapshot (nothing committed after ``ready`` is missed). It
polls the store every ``POLL_S`` (the audit log is SQLite; a poll is one indexed query) and ends
after ``MAX_STREAM_S`` so a server shutdown never waits on it; the page then reconnects with
``since``. It is left out of ``/openapi.json``, whose answers are JSON documents the tests check.

``GET /ui?live=0`` loads the page without the stream: it shows the state at load time and
changes only on reload or on the operator's own actions (the browser tests use it to show that the
live test depends on the stream).
"""

# no `from __future__ import annotations`: FastAPI reads the handlers' real types

import asyncio
import json
import time
from pathlib import Path
from typing import Annotated, Any, AsyncIterator

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from controller.api.errors import ApiError
from controller.api.guards import Service, Who
from controller.auth import Principal
from controller.dataplane.translation import BE_HEADROOM
from controller.service import ControllerService

router = APIRouter(include_in_schema=False)

#: the page's files, shipped as package data of ``controller``
UI_DIR = Path(__file__).resolve().parents[2] / "ui"
ASSETS = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
#: the page may load and call this controller only (no CDN, no outside request of any kind)
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache",
                "Referrer-Policy": "no-referrer"}
#: seconds between two looks at the audit log, and after which a stream ends (the page reconnects)
POLL_S = 0.2
MAX_STREAM_S = 300.0
#: a comment line this often keeps proxies from closing a quiet stream
KEEPALIVE_S = 15.0


@router.get("/ui")
def page(live: Annotated[int, Query(ge=0, le=1)] = 1) -> HTMLResponse:
    """The live view; ``live=0`` leaves the event stream off."""
    html = (UI_DIR / "index.html").read_text(encoding="utf-8")
    html = html.replace("__LIVE__", str(live)).replace("__BE_HEADROOM__", repr(float(BE_HEADROOM)))
    return HTMLResponse(html, headers=PAGE_HEADERS)


@router.get("/ui/{name}")
def asset(name: str) -> Response:
    """One of the page's files (a fixed list: nothing else under the folder is served)."""
    if name not in ASSETS:
        raise ApiError(404, "not_found", f"no such file: /ui/{name}")
    return Response((UI_DIR / name).read_bytes(), media_type=ASSETS[name], headers=PAGE_HEADERS)


def _sse(event: str, data: Any, seq: int | None = None) -> str:
    """One server-sent event: ``id`` (the audit seq, when there is one), ``event``, ``data`` (JSON)."""
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _end_of_log(service: ControllerService, who: Principal) -> int:
    """The seq after which new entries will come (the last one ``who`` sees, or 0)."""
    since = 0
    while True:
        page = service.events(who, since, 10_000)
        if not page:
            return since
        since = page[-1]["seq"]


def _link_state(service: ControllerService) -> dict[str, Any]:
    check = service.link_check()
    return {"links_down": service.links_down(), "lldp_missing": sorted(check.get("missing") or []),
            "lldp_checked": bool(check.get("checked"))}


async def _stream(request: Request, service: ControllerService, who: Principal, since: int | None,
                  max_s: float) -> AsyncIterator[str]:
    if since is None:
        since = await run_in_threadpool(_end_of_log, service, who)
    links = await run_in_threadpool(_link_state, service)
    yield _sse("ready", {"next": since, **links})
    started = last_sent = time.monotonic()
    while time.monotonic() - started < max_s and not await request.is_disconnected():
        items = await run_in_threadpool(service.events, who, since, 1000)
        sent = bool(items)
        for item in items:
            yield _sse("audit", item, item["seq"])
            since = item["seq"]
        now_links = await run_in_threadpool(_link_state, service)
        if now_links != links:
            links, sent = now_links, True
            yield _sse("links", links)
        if not sent and time.monotonic() - last_sent > KEEPALIVE_S:
            sent = True
            yield ": keepalive\n\n"
        if sent:
            last_sent = time.monotonic()
        if len(items) < 1000:
            await asyncio.sleep(POLL_S)


@router.get("/v1/events/stream")
def events_stream(request: Request, who: Who, service: Service,
                  since: Annotated[int | None, Query(ge=0, le=2**62)] = None,
                  max_s: Annotated[float, Query(gt=0, le=MAX_STREAM_S)] = MAX_STREAM_S) -> StreamingResponse:
    """The audit log after ``since`` (default: from now on) as server-sent events."""
    return StreamingResponse(_stream(request, service, who, since, max_s), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
