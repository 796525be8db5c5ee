"""Helpers shared by the REST API tests (imported as ``apihelpers``: pytest puts tests/ on the path).

- ``beijing_line(name)``: Beijing - Tianjin - Jinan over 1 Gb/s links, small enough to fill in a test.
- ``serve(app, **config)``: run an ASGI app under uvicorn on a free 127.0.0.1 port in a thread
  (pre-bound socket, so no port race); yields ``(host, port)`` and stops the server on exit.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import uvicorn

from topologies.model import Topology


def beijing_line(name: str) -> Topology:
    t = Topology(name)
    t.add_node("Beijing", 39.9, 116.4)
    t.add_node("Tianjin", 39.1, 117.2)
    t.add_node("Jinan", 36.7, 117.0)
    t.add_link("Beijing", "Tianjin", km=150, capacity_bps=10**9)
    t.add_link("Tianjin", "Jinan", km=330, capacity_bps=10**9)
    return t


@contextmanager
def serve(app, **config):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", **config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.01)
    try:
        yield sock.getsockname()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
