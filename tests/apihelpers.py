"""Helpers shared by the REST API tests (imported as ``apihelpers``: pytest puts tests/ on the path).

- ``beijing_line(name)``: Beijing - Tianjin - Jinan over 1 Gb/s links, small enough to fill in a test.
- ``serve(app, **config)``: run an ASGI app under uvicorn on a free 127.0.0.1 port in a thread
  (pre-bound socket, so no port race); yields ``(host, port)`` and stops the server on exit.
- ``live_controller(topology, db_path, admin_token, **service_kw)``: a ``ControllerService`` over a
  fresh database served by the real REST app; yields its URL, closes it on exit.
- ``dnctl_runner(monkeypatch, capsys, token, url=None)``: ``run(*argv, token=..., url=...)`` runs
  ``dnctl`` in-process with that URL and token in its environment (nothing else of the caller's)
  and returns ``(exit code, stdout, stderr)``; argparse's usage errors come back as exit 2.
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
def live_controller(topology: Topology, db_path, admin_token: str, **service_kw):
    from controller.api import create_app
    from controller.service import ControllerService

    service = ControllerService(topology, db_path=str(db_path), admin_token=admin_token, store_synchronous="OFF",
                                **service_kw)
    try:
        with serve(create_app(service), log_level="warning") as (host, port):
            yield f"http://{host}:{port}"
    finally:
        service.close()


def dnctl_runner(monkeypatch, capsys, token: str | None, url: str | None = None):
    from tools.cli.main import main

    for var in ("DNCTL_URL", "DNCTL_TOKEN", "DNCTL_ADMIN_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    default_token, default_url = token, url

    def run(*argv, token=default_token, url=default_url):
        for var, value in (("DNCTL_TOKEN", token), ("DNCTL_URL", url)):
            if value is None:
                monkeypatch.delenv(var, raising=False)
            else:
                monkeypatch.setenv(var, value)
        capsys.readouterr()
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:          # argparse's own usage errors
            code = e.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


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
