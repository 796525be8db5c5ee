"""The live view's server side (issue 15): ``/ui`` and its files, ``/v1/events/stream``.

- ``/ui`` and its two files are served by the controller with a Content-Security-Policy that lets
  the page call this controller only, name no outside URL, need no token, and nothing else under
  ``controller/ui/`` (nor any other path) is served;
- ``/ui?live=0`` is the page with its event stream switched off (checked in the browser tests);
- ``/v1/events/stream`` needs a token like ``/v1/events``, starts with ``ready`` (the ``next`` seq:
  the end of the log by default, or ``since``), then sends each audit entry the caller may see as an
  ``audit`` event (a tenant: its own, exactly what ``/v1/events`` gives it) and a ``links`` event
  when a link goes down or up or the LLDP check changes, and ends after ``max_s``.
"""

from __future__ import annotations

import json
import re
import threading
import time

import httpx
import pytest

from apihelpers import beijing_line, serve
from controller.api import create_app
from controller.api.routers.ui import CSP, UI_DIR
from controller.service import ControllerService
from topologies.hosts import HostPlan

ADMIN = "admin-token-for-ui-tests-0123456789"
AH = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
def world(tmp_path):
    topo = beijing_line("line")
    service = ControllerService(topo, db_path=str(tmp_path / "ui.db"), admin_token=ADMIN, store_synchronous="OFF",
                                host_plan=HostPlan.build(topo, []))
    with serve(create_app(service, rate_limit_per_s=0), log_level="warning") as (host, port):
        with httpx.Client(base_url=f"http://{host}:{port}", timeout=10) as client:
            yield service, client
    service.close()


def tenant(client: httpx.Client, name: str) -> tuple[int, dict[str, str]]:
    t = client.post("/v1/tenants", json={"name": name}, headers=AH).json()
    return t["id"], {"Authorization": f"Bearer {t['token']}"}


def reserve(client, headers, udp: int, **extra) -> dict:
    body = {"src": "Beijing", "dst": "Jinan", "bandwidth_bps": 10**7, "max_latency_ns": 30_000_000,
            "match": {"udp_dst": udp}, **extra}
    r = client.post("/v1/reservations", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def stream(client, headers, **params) -> list[tuple[str, dict]]:
    """Every (event, data) of one stream until it ends (give ``max_s``)."""
    r = client.get("/v1/events/stream", params=params, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    out = []
    for block in r.text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if fields:
            out.append((fields["event"], json.loads(fields["data"])))
    return out


# ----- the page ----------------------------------------------------------------------------------------
def test_page_and_its_files_are_served_offline_without_a_token(world):
    _, client = world
    page = client.get("/ui")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CSP
    assert "connect-src 'self'" in CSP and "default-src 'none'" in CSP
    html = page.text
    assert 'data-live="1"' in html and "__" not in html        # the placeholders are filled in
    assert float(re.search(r'data-be-headroom="([0-9.]+)"', html).group(1)) <= 1
    files = re.findall(r'(?:src|href)="(/[^"]+)"', html)
    assert sorted(files) == ["/ui/app.js", "/ui/style.css"]
    for f, kind in (("/ui/app.js", "text/javascript"), ("/ui/style.css", "text/css")):
        r = client.get(f)
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind) and len(r.content) > 1000
        assert r.headers["content-security-policy"] == CSP
    # no outside URL anywhere: the only http(s) string is the SVG namespace, an identifier never fetched
    for name in ("index.html", "app.js", "style.css"):
        text = (UI_DIR / name).read_text()
        assert set(re.findall(r"https?://[^\s\"'`)]+", text)) <= {"http://www.w3.org/2000/svg"}, name
        assert "@import" not in text and "url(" not in text, name


def test_live_zero_switches_the_stream_off_and_other_values_are_refused(world):
    _, client = world
    assert 'data-live="0"' in client.get("/ui", params={"live": 0}).text
    bad = client.get("/ui", params={"live": 2})
    assert bad.status_code == 422 and bad.json()["error"] == "invalid"


@pytest.mark.parametrize("path", ["/ui/index.html", "/ui/nope.js", "/ui/..%2Fapi%2Fapp.py", "/ui/%2E%2E"])
def test_nothing_else_is_served(world, path):
    _, client = world
    r = client.get(path)
    assert r.status_code == 404 and r.json()["error"] == "not_found"


# ----- the event stream -------------------------------------------------------------------------------------
def test_stream_needs_a_token(world):
    _, client = world
    r = client.get("/v1/events/stream")
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    r = client.get("/v1/events/stream", params={"max_s": 0})
    assert r.status_code == 401            # authentication comes before validation
    assert client.get("/v1/events/stream", params={"max_s": 0}, headers=AH).status_code == 422
    assert client.get("/v1/events/stream", params={"sinse": 1}, headers=AH).json()["field"] == "sinse"


def test_stream_replays_since_and_a_tenant_sees_what_events_gives_it(world):
    _, client = world
    t1, h1 = tenant(client, "one")
    _, h2 = tenant(client, "two")
    mine = reserve(client, h1, 5000)
    reserve(client, h2, 5001)
    everything = stream(client, AH, since=0, max_s=0.5)
    assert everything[0] == ("ready", {"next": 0, "links_down": [], "lldp_missing": [], "lldp_checked": False})
    admin_events = [d for e, d in everything if e == "audit"]
    assert admin_events == client.get("/v1/events", headers=AH).json()["events"]
    assert {e["action"] for e in admin_events} >= {"start", "create_tenant", "reserve"}
    own = [d for e, d in stream(client, h1, since=0, max_s=0.5) if e == "audit"]
    assert own == client.get("/v1/events", headers=h1).json()["events"]
    assert own and {e["tenant"] for e in own} == {t1}
    assert [e["request"].get("id") or e["outcome"]["id"] for e in own if e["action"] == "reserve"] == [mine["id"]]


def test_stream_starts_at_the_end_of_the_log_and_sends_what_comes_after(world):
    _, client = world
    _, h1 = tenant(client, "one")
    last = client.get("/v1/events", headers=AH).json()["next"]
    later: list = []

    def act():
        time.sleep(0.4)
        later.append(reserve(client, h1, 5000))

    worker = threading.Thread(target=act)
    worker.start()
    events = stream(client, AH, max_s=1.5)
    worker.join()
    assert events[0][0] == "ready" and events[0][1]["next"] == last
    audit = [d for e, d in events if e == "audit"]
    assert [(e["action"], e["status"]) for e in audit] == [("reserve", "ok")]
    assert audit[0]["seq"] > last


def test_stream_sends_link_state_when_a_link_goes_down_and_when_lldp_misses_one(world):
    service, client = world

    def act():
        time.sleep(0.4)
        service.link_down("Beijing", "Tianjin")       # what the OpenFlow shim calls on a port-down
        time.sleep(0.4)
        service.set_link_check({"expected": 2, "seen": 1, "missing": [["Tianjin", "Jinan"]], "unexpected": []})

    worker = threading.Thread(target=act)
    worker.start()
    events = stream(client, AH, max_s=1.8)
    worker.join()
    links = [d for e, d in events if e == "links"]
    assert links[0] == {"links_down": [["Beijing", "Tianjin"]], "lldp_missing": [], "lldp_checked": False}
    assert links[-1] == {"links_down": [["Beijing", "Tianjin"]], "lldp_missing": [["Tianjin", "Jinan"]],
                         "lldp_checked": True}
    assert "link_down" in [d["action"] for e, d in events if e == "audit"]
