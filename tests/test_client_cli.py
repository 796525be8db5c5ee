"""dnctl's controller verbs (tenant, reserve, reservations, paths, schedule export) against a live server.

The server is a real HTTP server on a free 127.0.0.1 port (uvicorn in a thread) running the real
REST app (controller.api over a ControllerService on a three-city line with a temporary SQLite
database), so these tests hold the client to the API's actual contract; every verb goes through ``tools.cli.main.main`` exactly as on the command line.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from apihelpers import beijing_line, dnctl_runner, live_controller
from tools.cli.main import main

ADMIN = "admin-token-for-the-cli-tests-0123456789"


# ----------------------------------------------------------------- the server under test
@pytest.fixture(scope="module")
def url(tmp_path_factory):
    """The real REST app (controller.api) over a ControllerService with a temporary database."""
    with live_controller(beijing_line("cli-test"), tmp_path_factory.mktemp("cli") / "controller.db", ADMIN) as u:
        yield u

@pytest.fixture
def dnctl(url, monkeypatch, capsys):
    """Run ``dnctl ARGS`` in-process against the server; returns (exit code, stdout, stderr)."""
    return dnctl_runner(monkeypatch, capsys, ADMIN, url)

def _new_tenant(dnctl, name, *opts):
    code, out, err = dnctl("tenant", "create", name, *opts, "--json")
    assert code == 0, err
    return json.loads(out)


# ----------------------------------------------------------------- tenants
def test_tenant_create_prints_the_token_once_and_it_works(dnctl):
    code, out, err = dnctl("tenant", "create", "acme", "--quota", "800M", "--max-reservations", "5")
    assert code == 0, err
    m = re.search(r"^token: (\S+)$", out, re.M)
    assert m and "shown only once" in out
    tid = int(re.search(r"^tenant (\d+) 'acme' created", out).group(1))
    assert "quota 800 Mb/s" in out and "max reservations 5" in out
    # the printed token authenticates as that tenant: it may list its own reservations ...
    code, out, err = dnctl("reservations", "list", token=m.group(1))
    assert code == 0, err
    # ... but not manage tenants (admin only): a refusal, exit 1, one line
    code, out, err = dnctl("tenant", "list", token=m.group(1))
    assert code == 1 and err.startswith("dnctl: forbidden") and err.count("\n") == 1
    code, out, _ = dnctl("tenant", "show", tid, "--json")
    t = json.loads(out)
    assert (t["id"], t["name"], t["quota_bps"], t["max_reservations"]) == (tid, "acme", 800 * 10**6, 5)
    assert "token" not in t


def test_tenant_list_set_show(dnctl):
    t = _new_tenant(dnctl, "beta", "--quota", "1.5G")
    assert t["quota_bps"] == 1_500_000_000 and len(t["token"]) >= 16
    code, out, err = dnctl("tenant", "list")
    assert code == 0, err
    assert out.splitlines()[0].split() == ["id", "name", "quota", "reserved", "reservations", "max"]
    row = next(line for line in out.splitlines() if re.match(rf"\s*{t['id']}\s+beta\b", line))
    assert "1.5 Gb/s" in row and "unlimited" in row
    code, out, err = dnctl("tenant", "set", t["id"], "--quota", "unlimited", "--max-reservations", "3")
    assert code == 0, err
    assert re.search(r"^quota\s+unlimited$", out, re.M) and re.search(r"^max reservations\s+3$", out, re.M)
    code, out, _ = dnctl("tenant", "show", t["id"], "--json")
    assert json.loads(out)["quota_bps"] is None and json.loads(out)["max_reservations"] == 3
    code, out, err = dnctl("tenant", "set", t["id"])
    assert code == 2 and "give --quota" in err
    code, out, err = dnctl("tenant", "show", 4000)
    assert code == 1 and err.startswith("dnctl: not found")


# ----------------------------------------------------------------- reservations
def test_reserve_show_list_delete(dnctl):
    t = _new_tenant(dnctl, "gamma")
    code, out, err = dnctl("reserve", "--tenant", t["id"], "--src", "Beijing", "--dst", "Jinan",
                           "--bandwidth", "100M", "--max-latency", "30ms", "--id", "g-1",
                           "--match-udp-dst", 5000, "--json")
    assert code == 0, err
    r = json.loads(out)
    assert (r["id"], r["tenant"], r["src"], r["dst"]) == ("g-1", t["id"], "Beijing", "Jinan")
    assert r["bandwidth_bps"] >= 100 * 10**6 and r["max_latency_ns"] == 30 * 10**6
    assert r["path"] == ["Beijing", "Tianjin", "Jinan"] and r["match"] == {"udp_dst": 5000}

    # human show: path, the bounds as the API gave them, per-hop slot counts, tx offsets
    code, out, err = dnctl("reservations", "show", "g-1")
    assert code == 0, err
    from tools.cli.units import format_ns
    assert "Beijing -> Tianjin -> Jinan  (2 hops)" in out
    assert f"bound {format_ns(r['latency_bound_ns'])} (max 30 ms)" in out
    for h in r["hops"]:
        assert re.search(rf"^\s+{h['src']}->{h['dst']}\s+{len(h['slots'])}\s+{min(h['slots'])}", out, re.M)
    assert f"tx offsets  {format_ns(r['tx_offsets_ns'][0])}" in out

    code, out, err = dnctl("reservations")  # bare verb = list
    assert code == 0, err
    assert re.search(r"^g-1\s+%d\s+Beijing\s+Jinan\s" % t["id"], out, re.M)
    code, out, _ = dnctl("reservations", "list", "--tenant", t["id"], "--json")
    assert [x["id"] for x in json.loads(out)["reservations"]] == ["g-1"]
    code, out, _ = dnctl("reservations", "list", "--tenant", 4000, "--json")
    assert json.loads(out)["reservations"] == []

    code, out, err = dnctl("reservations", "delete", "g-1")
    assert code == 0 and out.strip() == "reservation g-1 deleted"
    code, out, err = dnctl("reservations", "show", "g-1")
    assert code == 1 and err.startswith("dnctl: not found") and "Traceback" not in err


def test_reserve_human_output_and_frame_with_period(dnctl):
    t = _new_tenant(dnctl, "delta")
    code, out, err = dnctl("reserve", "--tenant", t["id"], "--src", "Jinan", "--dst", "Beijing",
                           "--frame-bytes", "1500B", "--period", "100us", "--max-latency", "10ms",
                           "--max-jitter", "20us", "--via", "Tianjin")
    assert code == 0, err
    rid = re.match(r"reservation (\S+) \(tenant %d\) admitted" % t["id"], out).group(1)
    assert "1500 B every 100 us" in out and "Jinan -> Tianjin -> Beijing" in out
    code, js, _ = dnctl("reservations", "show", rid, "--json")
    r = json.loads(js)
    assert (r["frame_bytes"], r["period_ns"], r["max_jitter_ns"]) == (1500, 100_000, 20_000)
    assert dnctl("reservations", "delete", rid)[0] == 0
    # a --via that is not a path of the topology is refused by the API, naming the paths
    code, out, err = dnctl("reserve", "--tenant", t["id"], "--src", "Beijing", "--dst", "Tianjin",
                           "--bandwidth", "1M", "--max-latency", "10ms", "--via", "Jinan")
    assert code == 1 and re.match(r"dnctl: (invalid paths|rejected \(invalid:paths\)): ", err), err


def test_admin_must_name_the_tenant(dnctl):
    code, out, err = dnctl("reserve", "--src", "Beijing", "--dst", "Jinan", "--bandwidth", "1M",
                           "--max-latency", "30ms")
    assert code == 1 and err.startswith("dnctl: invalid tenant: ") and "tenant: tenant" not in err


def test_tenant_token_reserves_for_itself_and_cannot_see_others(dnctl):
    a, b = _new_tenant(dnctl, "t-a"), _new_tenant(dnctl, "t-b")
    code, out, err = dnctl("reserve", "--src", "Beijing", "--dst", "Tianjin", "--bandwidth", "10M",
                           "--max-latency", "5ms", "--json", token=a["token"])
    assert code == 0, err
    r = json.loads(out)
    assert r["tenant"] == a["id"]
    code, out, err = dnctl("reservations", "show", r["id"], token=b["token"])
    assert code == 1 and "not found" in err
    code, out, _ = dnctl("reservations", "--json", token=b["token"])
    assert r["id"] not in [x["id"] for x in json.loads(out)["reservations"]]
    assert dnctl("reservations", "delete", r["id"], token=a["token"])[0] == 0


def test_rejection_is_one_line_with_the_reason_and_exit_1(dnctl):
    t = _new_tenant(dnctl, "epsilon")
    code, out, err = dnctl("reserve", "--tenant", t["id"], "--src", "Beijing", "--dst", "Tianjin",
                           "--bandwidth", "5G", "--max-latency", "30ms")
    assert code == 1 and out == ""
    assert re.fullmatch(r"dnctl: rejected \((capacity:\S+|no_path)\): .+\n", err), err
    # a quota refusal names the quota
    q = _new_tenant(dnctl, "zeta", "--quota", "10M")
    code, out, err = dnctl("reserve", "--tenant", q["id"], "--src", "Beijing", "--dst", "Tianjin",
                           "--bandwidth", "20M", "--max-latency", "30ms")
    assert code == 1 and err.startswith("dnctl: rejected (quota): ")


def test_invalid_request_from_the_api_names_the_field(dnctl):
    code, out, err = dnctl("reserve", "--tenant", 1, "--src", "Beijing", "--dst", "Jinan", "--bandwidth", "1M",
                           "--max-latency", "30ms", "--id", "bad id!")
    assert code == 1 and err.startswith("dnctl: invalid id: ")


@pytest.mark.parametrize("argv, words", [
    (["--bandwidth", "2GB"], "--bandwidth: bandwidth '2GB': give bits per second"),
    (["--bandwidth", "0"], "--bandwidth '0': must be greater than zero"),
    (["--frame-bytes", "1500"], "--frame-bytes needs --period"),
    (["--bandwidth", "1G", "--max-jitter", "soon"], "--max-jitter: duration 'soon'"),
    (["--bandwidth", "1G", "--match-udp-dst", "70000"], "a port is 0-65535"),
    (["--bandwidth", "1G", "--match-ip-dst", "10.0.0.300"], "not an IPv4 address"),
])
def test_local_usage_errors_exit_2_before_any_request(argv, words, monkeypatch, capsys):
    monkeypatch.setenv("DNCTL_URL", "http://127.0.0.1:9")  # nothing there: a request would fail differently
    code = main(["reserve", "--src", "Beijing", "--dst", "Jinan", "--max-latency", "30ms", *argv])
    err = capsys.readouterr().err
    assert code == 2 and words in err and err.count("\n") == 1


# ----------------------------------------------------------------- paths and schedule
def test_paths_what_if(dnctl):
    tid = str(_new_tenant(dnctl, "theta")["id"])
    code, out, err = dnctl("paths", "Beijing", "Jinan", "--bandwidth", "50M", "--max-latency", "30ms",
                           "--tenant", tid)
    assert code == 0, out + err
    assert out.startswith("admissible: Beijing -> Tianjin -> Jinan (2 hops), latency bound ")
    code, before, _ = dnctl("reservations", "--json")
    code, out, err = dnctl("paths", "Beijing", "Jinan", "--bandwidth", "50M", "--max-latency", "30ms",
                           "--tenant", tid, "--json")
    ans = json.loads(out)
    assert code == 0 and ans["admissible"] is True and ans["path"][0] == "Beijing"
    assert json.loads(dnctl("reservations", "--json")[1]) == json.loads(before)  # reserved nothing
    code, out, err = dnctl("paths", "Beijing", "Jinan", "--bandwidth", "50M", "--max-latency", "10us",
                           "--tenant", tid)
    assert code == 1 and out.startswith("not admissible (latency:")
    code, out, err = dnctl("paths", "Beijing", "Jinan", "--bandwidth", "50M", "--max-latency", "10us",
                           "--tenant", tid, "--json")
    assert code == 1 and json.loads(out)["admissible"] is False


def test_schedule_export_to_file_and_stdout(dnctl, url, tmp_path, monkeypatch, capsys):
    import argparse

    from tools.cli.cmd_schedule import schedule_export

    t = _new_tenant(dnctl, "eta")
    code, out, err = dnctl("reserve", "--tenant", t["id"], "--src", "Tianjin", "--dst", "Jinan",
                           "--bandwidth", "20M", "--max-latency", "30ms", "--id", "sched-1")
    assert code == 0, err
    out_file = tmp_path / "schedule.json"
    args = argparse.Namespace(url=url, token=ADMIN, out=str(out_file))
    assert schedule_export(args) == 0
    doc = json.loads(out_file.read_text())
    assert doc["version"] == 1 and "sched-1" in [r["id"] for r in doc["reservations"]]
    assert "written to" in capsys.readouterr().err
    assert schedule_export(argparse.Namespace(url=url, token=ADMIN, out=None)) == 0
    assert json.loads(capsys.readouterr().out) == doc
    assert dnctl("reservations", "delete", "sched-1")[0] == 0


# ----------------------------------------------------------------- auth and connection failures
def test_bad_or_missing_token_is_401_exit_1(dnctl):
    code, out, err = dnctl("reservations", token="not-a-valid-token-at-all")
    assert code == 1 and err.startswith("dnctl: unauthorized") and "--token" in err
    code, out, err = dnctl("tenant", "list", token=None)
    assert code == 1 and err.startswith("dnctl: unauthorized")


def test_unreachable_controller_is_one_line_exit_1(monkeypatch, capsys):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    url = f"http://127.0.0.1:{port}"
    code = main(["reservations", "list", "--url", url, "--token", "x" * 20])
    err = capsys.readouterr().err
    assert code == 1
    assert err == f"dnctl: cannot reach the controller at {url} (is `dnctl controller` running?)\n"


def test_the_installed_entry_point_prints_no_traceback(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    dnctl = Path(sys.executable).with_name("dnctl")
    cmd = [str(dnctl)] if dnctl.exists() else [sys.executable, "-m", "tools.cli.main"]
    p = subprocess.run([*cmd, "paths", "Beijing", "Jinan", "--max-latency", "30ms", "--bandwidth", "1G",
                        "--url", f"http://127.0.0.1:{port}"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "Traceback" not in p.stderr and p.stderr.startswith("dnctl: cannot reach")
    p = subprocess.run([*cmd, "tenant", "list", "--url", "gopher://x"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stderr.strip() == "dnctl: --url 'gopher://x': expected http://HOST:PORT or https://HOST:PORT"


# ----------------------------------------------------------------- answers the live API rarely gives
def _client_answering(handler):
    import httpx

    from tools.client import ApiClient

    return ApiClient("http://controller.test:8080", "t" * 20, transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("status, body, message", [
    (409, {"error": "rejected", "reason": "capacity:Beijing-Tianjin", "detail": "no free slots on Beijing->Tianjin"},
     "rejected (capacity:Beijing-Tianjin): no free slots on Beijing->Tianjin"),
    (422, {"error": "invalid", "field": "max_latency_ns", "detail": "max_latency_ns: must be positive"},
     "invalid max_latency_ns: must be positive"),
    (422, {"detail": [{"loc": ["body", "src"], "msg": "Field required"},
                      {"loc": ["query", "dst"], "msg": "too long"}]},
     "invalid request: src: Field required; dst: too long"),
    (429, {"error": "rate_limited", "detail": "slow down"}, "rate limited: slow down (try again shortly)"),
    (413, {"error": "too_large", "detail": "body above 65536 bytes"}, "request too large: body above 65536 bytes"),
    (502, "<html>\nBad   gateway\n</html>", "controller error (HTTP 502): <html> Bad gateway </html>"),
    (418, {"error": "teapot", "detail": "short and stout"}, "teapot: short and stout"),
])
def test_error_answers_become_one_line(status, body, message):
    import httpx

    from tools.client import ApiError

    def handler(request):
        if isinstance(body, dict):
            return httpx.Response(status, json=body)
        return httpx.Response(status, text=body, headers={"content-type": "text/html"})

    with _client_answering(handler) as api, pytest.raises(ApiError) as e:
        api.get("/v1/reservations")
    assert str(e.value) == message and e.value.code == 1 and e.value.status == status
    if isinstance(body, dict) and "reason" in body:
        assert e.value.reason == body["reason"]


def test_client_sends_the_bearer_token_and_json_and_drops_unset_params():
    import httpx

    seen = {}

    def handler(request):
        seen.update(auth=request.headers.get("authorization"), query=dict(request.url.params),
                    body=json.loads(request.content or b"null"), method=request.method)
        return httpx.Response(201, json={"ok": True})

    with _client_answering(handler) as api:
        assert api.post("/v1/reservations", {"src": "A"}) == {"ok": True}
        assert seen == {"auth": "Bearer " + "t" * 20, "query": {}, "body": {"src": "A"}, "method": "POST"}
        api.get("/v1/paths", params={"src": "A", "tenant": None, "max_latency_ns": 5})
        assert seen["query"] == {"src": "A", "max_latency_ns": "5"}


def test_timeout_is_one_line_exit_1():
    import httpx

    from tools.client import ConnectionFailed

    def handler(request):
        raise httpx.ReadTimeout("timed out", request=request)

    with _client_answering(handler) as api, pytest.raises(ConnectionFailed) as e:
        api.get("/healthz")
    assert e.value.code == 1 and str(e.value) == "the controller at http://controller.test:8080 did not answer within 10 s"


def test_the_client_is_a_library_that_imports_no_cli():
    code = ("import sys, tools.client; "
            "print(sorted(m for m in sys.modules if m in ('argparse', 'tools.cli') or m.startswith('tools.cli.')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_client_errors_are_their_own_with_exit_codes():
    import httpx

    from tools.cli import CliError
    from tools.client import ApiClient, ApiError, BadUrl, ClientError, ConnectionFailed

    for cls in (ApiError, BadUrl, ConnectionFailed):
        assert issubclass(cls, ClientError) and not issubclass(cls, CliError)
    with pytest.raises(BadUrl) as e:
        ApiClient("gopher://x")
    assert e.value.code == 2 and isinstance(e.value, ValueError)
    assert str(e.value) == "'gopher://x': expected http://HOST:PORT or https://HOST:PORT"

    def refuse(request):
        raise httpx.ConnectError("refused", request=request)

    with _client_answering(refuse) as api, pytest.raises(ConnectionFailed) as f:
        api.get("/healthz")
    assert f.value.code == 1 and str(f.value).startswith("cannot reach the controller at http://controller.test:8080")


def test_from_args_reads_options_then_environment(monkeypatch):
    import argparse

    from tools.cli.clientargs import client_from_args
    from tools.client import DEFAULT_URL

    for var in ("DNCTL_URL", "DNCTL_TOKEN", "DNCTL_ADMIN_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    api = client_from_args(argparse.Namespace())
    assert (api.url, api.token) == (DEFAULT_URL, None)
    monkeypatch.setenv("DNCTL_ADMIN_TOKEN", "admin-from-env")
    monkeypatch.setenv("DNCTL_URL", "http://10.0.0.1:9000/")
    api = client_from_args(argparse.Namespace())
    assert (api.url, api.token) == ("http://10.0.0.1:9000", "admin-from-env")
    monkeypatch.setenv("DNCTL_TOKEN", "tenant-from-env")
    assert client_from_args(argparse.Namespace()).token == "tenant-from-env"
    api = client_from_args(argparse.Namespace(url="https://ctl:8443", token="given"))
    assert (api.url, api.token) == ("https://ctl:8443", "given")


def test_events_shows_reservations_and_rejections_and_scopes_tenants(dnctl):
    t = _new_tenant(dnctl, "events-t")
    code, _, err = dnctl("reserve", "--tenant", t["id"], "--src", "Beijing", "--dst", "Jinan",
                         "--bandwidth", "10M", "--max-latency", "30ms", "--id", "ev-1", "--match-udp-dst", 6001)
    assert code == 0, err
    code, out, err = dnctl("events", "--json", "--limit", "10000")
    assert code == 0, err
    entries = [json.loads(line) for line in out.splitlines()]
    mine = [e for e in entries if e["action"] == "reserve" and e["tenant"] == t["id"]]
    assert mine and mine[-1]["status"] == "ok"
    seqs = [e["seq"] for e in entries]
    assert seqs == sorted(seqs)
    # --since skips what was seen; a tenant's token sees only entries about that tenant
    code, out, _ = dnctl("events", "--json", "--since", seqs[-1])
    assert code == 0 and out.strip() == ""
    code, out, _ = dnctl("events", "--json", "--limit", "10000", token=t["token"])
    assert code == 0 and {json.loads(l)["tenant"] for l in out.splitlines()} == {t["id"]}
    code, out, _ = dnctl("events")
    assert code == 0 and "action" in out.splitlines()[0]
    code, _, err = dnctl("events", "--limit", "0")
    assert code == 2 and "--limit" in err


def test_the_client_library_covers_a_reservations_life(url):
    """The public client's everyday calls, end to end against a live controller."""
    from tools.client import ApiClient, ApiError
    admin = ApiClient(url, ADMIN)
    assert admin.health()["status"] in ("ok", "degraded")
    t = admin.create_tenant("lib-user", quota_bps=10**9)
    assert t["token"] and t["quota_bps"] == 10**9
    with ApiClient(url, t["token"]) as me:
        req = {"src": "Beijing", "dst": "Tianjin", "bandwidth_bps": 10**8, "max_latency_ns": 20_000_000}
        w = me.what_if(req)
        assert w["admissible"] is True
        r = me.reserve(req)
        assert r["path"] == w["path"] and r["latency_bound_ns"] <= req["max_latency_ns"]
        assert me.reservation(r["id"])["id"] == r["id"]
        assert [x["id"] for x in me.schedule()["reservations"]] == [r["id"]]
        assert any(n == "Beijing" for n in (x if isinstance(x, str) else x.get("name") for x in me.topology()["nodes"]))
        with pytest.raises(ApiError) as e:
            me.reserve({**req, "bandwidth_bps": 10**12})
        assert e.value.status in (409, 422)
        me.release(r["id"])
        with pytest.raises(ApiError) as e:
            me.reservation(r["id"])
        assert e.value.status == 404
