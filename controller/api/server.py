"""The HTTP server of the REST API: uvicorn, answering even unparseable requests with JSON.

uvicorn's HTTP/1.1 parser (h11) refuses a request whose framing it cannot read (``Content-Length:
abc``, two lengths, a malformed request line) before the application sees it, with a plain-text
``400 Invalid HTTP request received.``. ``JsonErrorH11Protocol`` sends the API's error shape
instead (``{"error": "bad_request", "detail": ...}``, ``application/json``), so every answer of the
controller is JSON. ``server_config(app, ...)`` is ``uvicorn.Config`` with that protocol: what the
launcher (and any test that runs the app over real HTTP) should start.
"""

from __future__ import annotations

import json
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from controller.api.errors import error_body

__all__ = ["JsonErrorH11Protocol", "server_config"]

#: The detail of a request refused by the HTTP parser (h11 does not say which header was wrong).
MALFORMED = ("malformed HTTP request: the request line or a header (e.g. Content-Length, Transfer-Encoding) "
             "could not be parsed")


class JsonErrorH11Protocol(H11Protocol):
    """uvicorn's h11 protocol whose parser-level 400 is a JSON error body."""

    def send_400_response(self, msg: str) -> None:
        body = json.dumps(error_body("bad_request", MALFORMED)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        try:
            self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers,
                                                             reason=b"Bad Request")))
            self.transport.write(self.conn.send(h11.Data(data=body)))
            self.transport.write(self.conn.send(h11.EndOfMessage()))
        except h11.LocalProtocolError:      # the connection cannot send a response any more
            pass
        self.transport.close()


def server_config(app: Any, **kw: Any) -> uvicorn.Config:
    """``uvicorn.Config(app, **kw)`` serving HTTP/1.1 with ``JsonErrorH11Protocol``."""
    kw.setdefault("http", JsonErrorH11Protocol)
    return uvicorn.Config(app, **kw)
