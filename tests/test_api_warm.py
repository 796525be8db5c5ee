"""``warm_routes``: every route is prepared before the server answers its first request.

FastAPI prepares an included router's routes (pydantic models of bodies and answers) the first time
a request is matched against that router. A cluster member that only ever redirected writes paid
that on the first write it served after taking over (0.1-0.7 s, measured in the leader-kill chaos
scenario). These tests count the models FastAPI builds: some while warming, none afterwards.
"""

import fastapi.routing
import pytest
from fastapi.testclient import TestClient

from controller.api import create_app, warm_routes
from tests.test_api import ADMIN, make_service


@pytest.fixture
def model_fields(monkeypatch):
    """How many route models FastAPI has built since the fixture started."""
    built = []
    real = fastapi.routing.create_model_field

    def counting(*a, **kw):
        built.append(kw.get("name") or (a[0] if a else None))
        return real(*a, **kw)

    monkeypatch.setattr(fastapi.routing, "create_model_field", counting)
    return built


def test_warm_routes_prepares_every_route_so_a_first_write_builds_nothing(tmp_path, model_fields):
    app = create_app(make_service(tmp_path / "s.db"))
    warm_routes(app)
    assert model_fields, "warming built no route model: FastAPI prepares routes elsewhere now"
    model_fields.clear()
    client = TestClient(app, raise_server_exceptions=False)
    auth = {"Authorization": f"Bearer {ADMIN}"}
    assert client.post("/v1/tenants", json={"name": "t"}, headers=auth).status_code == 201
    assert client.get("/v1/reservations", headers=auth).status_code == 200
    assert client.post("/v1/reservations/batch", json={"reservations": []}, headers=auth).status_code in (200, 201, 422)
    assert model_fields == []


def test_without_warming_the_first_request_builds_the_models(tmp_path, model_fields):
    """The cost warm_routes moves is real: an unwarmed app builds models on its first request."""
    client = TestClient(create_app(make_service(tmp_path / "s.db")), raise_server_exceptions=False)
    client.get("/v1/reservations", headers={"Authorization": f"Bearer {ADMIN}"})
    assert model_fields


def test_warm_routes_works_inside_a_running_event_loop(tmp_path):
    """The launcher calls it from plain code; a caller inside an event loop must not break it."""
    import asyncio

    app = create_app(make_service(tmp_path / "s.db"))

    async def inside() -> float:
        return warm_routes(app)

    assert asyncio.run(inside()) >= 0
    client = TestClient(app, raise_server_exceptions=False)
    assert client.get("/healthz").status_code == 200
