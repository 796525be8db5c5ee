"""Issue 12, day-2 verbs of dnctl and the client library against a live server (uvicorn in a
thread over the real app): ``reservations modify``, ``reservations list`` pages and filters,
``tenant me``, ``tenant rotate-token``, ``tenant delete``; ``ApiClient.iter_reservations``."""

from __future__ import annotations

import json

import pytest

from apihelpers import beijing_line, dnctl_runner, live_controller
from tools.client import ApiClient, ApiError

ADMIN = "admin-token-for-the-day2-cli-tests-0123"


@pytest.fixture
def url(tmp_path):
    with live_controller(beijing_line("day2-cli"), tmp_path / "c.db", ADMIN) as u:
        yield u

@pytest.fixture
def dnctl(url, monkeypatch, capsys):
    return dnctl_runner(monkeypatch, capsys, ADMIN, url)

def tenant(dnctl, name):
    code, out, err = dnctl("tenant", "create", name, "--quota", "1G", "--json")
    assert code == 0, err
    return json.loads(out)


def reserve(dnctl, t, rid, port, bw="100M"):
    code, out, err = dnctl("reserve", "--tenant", t["id"], "--src", "Beijing", "--dst", "Jinan", "--bandwidth", bw,
                           "--max-latency", "30ms", "--id", rid, "--match-udp-dst", port, "--json")
    assert code == 0, err
    return json.loads(out)


def test_reservations_modify(dnctl):
    t = tenant(dnctl, "m")
    reserve(dnctl, t, "m-1", 5000)
    code, out, err = dnctl("reservations", "modify", "m-1", "--bandwidth", "200M", "--max-latency", "25ms",
                           "--match-udp-dst", 6000, "--json")
    assert code == 0, err
    r = json.loads(out)
    assert (r["id"], r["bandwidth_bps"], r["max_latency_ns"], r["match"]) == ("m-1", 2 * 10**8, 25 * 10**6,
                                                                              {"udp_dst": 6000})
    code, out, err = dnctl("reservations", "modify", "m-1", "--frame-bytes", "1500", "--period", "1ms")
    assert code == 0 and "reservation m-1 (tenant" in out and "modified" in out, err
    # refused: one line, exit 1, nothing changed
    code, out, err = dnctl("reservations", "modify", "m-1", "--bandwidth", "5G")
    assert code == 1 and len(err.strip().splitlines()) == 1
    code, out, _ = dnctl("reservations", "show", "m-1", "--json")
    assert json.loads(out)["frame_bytes"] == 1500
    # usage errors: exit 2, nothing sent
    for argv in (["--max-latency", "30"], [], ["--no-match", "--match-udp-dst", "1"],
                 ["--bandwidth", "1G", "--frame-bytes", "10"], ["--match-tcp-dst", "80", "--match-ip-proto", "udp"]):
        code, out, err = dnctl("reservations", "modify", "m-1", *argv)
        assert code == 2, (argv, err)
    code, out, err = dnctl("reservations", "modify", "m-1", "--protect")    # a line: no disjoint path
    assert code == 1 and "no_disjoint_path" in err
    code, out, err = dnctl("reservations", "modify", "m-1", "--no-match", "--json")
    assert code == 0, err
    assert "match" not in json.loads(out) or not json.loads(out)["match"]


def test_reservations_list_pages_and_filters(dnctl, url):
    t = tenant(dnctl, "p")
    for i in range(5):
        reserve(dnctl, t, f"p-{i}", 7000 + i, bw="10M")
    code, out, err = dnctl("reservations", "list", "--limit", 2)
    assert code == 0 and "--cursor" in err
    cursor = err.split("--cursor", 1)[1].strip()
    code, out, err = dnctl("reservations", "list", "--limit", 2, "--cursor", cursor, "--json")
    assert [r["id"] for r in json.loads(out)["reservations"]] == ["p-2", "p-3"]
    code, out, err = dnctl("reservations", "list", "--status", "down", "--json")
    assert json.loads(out)["reservations"] == []
    code, out, err = dnctl("reservations", "list", "--src", "Jinan", "--json")
    assert json.loads(out)["reservations"] == []
    code, out, err = dnctl("reservations", "list", "--compact", "--json")
    assert all("slots_compact" in h for r in json.loads(out)["reservations"] for h in r["hops"])
    with ApiClient(url, ADMIN) as api:
        assert [r["id"] for r in api.iter_reservations(page_size=2)] == [f"p-{i}" for i in range(5)]
        assert [r["id"] for r in api.iter_reservations(page_size=3, dst="Jinan", tenant=t["id"])] == \
            [f"p-{i}" for i in range(5)]


def test_tenant_me_rotate_and_delete(dnctl, url):
    t = tenant(dnctl, "r")
    reserve(dnctl, t, "r-1", 5000)
    code, out, err = dnctl("tenant", "me", "--json", token=t["token"])
    assert code == 0, err
    me = json.loads(out)
    assert (me["reserved_bps"], me["reservations"], me["available_bps"]) == (10**8, 1, 9 * 10**8)
    code, out, err = dnctl("tenant", "me", token=t["token"])
    assert code == 0 and "available" in out
    code, out, err = dnctl("tenant", "rotate-token", t["id"], "--json", token=t["token"])
    assert code == 0, err
    new = json.loads(out)["token"]
    code, out, err = dnctl("tenant", "me", token=t["token"])
    assert code == 1 and ("401" in err or "token" in err.lower()), err
    with ApiClient(url, new) as api:
        assert api.my_tenant()["id"] == t["id"]
        with pytest.raises(ApiError) as e:
            api.delete_tenant(t["id"])
        assert e.value.status == 403
    code, out, err = dnctl("tenant", "delete", t["id"])
    assert code == 2 and "--yes" in err
    code, out, err = dnctl("tenant", "delete", t["id"], "--yes")
    assert code == 0 and "r-1" in out, err
    code, out, err = dnctl("reservations", "list", "--json")
    assert json.loads(out)["reservations"] == []
    with ApiClient(url, new) as api, pytest.raises(ApiError) as e:
        api.my_tenant()
    assert e.value.status == 401
