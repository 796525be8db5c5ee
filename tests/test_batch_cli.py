"""dnctl's batch verbs against a live server: ``reserve --file`` (atomic / --no-atomic) and
``training reserve JOB`` (the job's plan as one atomic batch); exit codes and --json."""

from __future__ import annotations

import json

import pytest

from apihelpers import dnctl_runner, live_controller
from tools.client import ApiClient, ApiError
from topologies.loaders import load_topology

ADMIN = "admin-token-for-the-batch-cli-tests-0123"


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    with live_controller(load_topology("fntf40"), tmp_path_factory.mktemp("batchcli") / "controller.db", ADMIN) as u:
        yield u

@pytest.fixture
def dnctl(url, monkeypatch, capsys):
    return dnctl_runner(monkeypatch, capsys, ADMIN, url)

@pytest.fixture(scope="module")
def tenant_token(url):
    with ApiClient(url, ADMIN) as api:
        return api.post("/v1/tenants", {"name": "batch-cli"})["token"]


def write(tmp_path, name, requests):
    p = tmp_path / name
    p.write_text(json.dumps(requests))
    return p


def req(port, **kw):
    d = {"src": "Beijing", "dst": "Tianjin", "bandwidth_bps": 10**9, "max_latency_ns": 50_000_000,
         "match": {"udp_dst": port}}
    d.update(kw)
    return d


def count(dnctl, token):
    code, out, _ = dnctl("reservations", "--json", token=token)
    assert code == 0
    return len(json.loads(out)["reservations"])


def test_reserve_file_atomic_and_not(dnctl, url, tmp_path, tenant_token):
    before = count(dnctl, tenant_token)
    ok = write(tmp_path, "ok.json", [req(100), req(101)])
    code, out, err = dnctl("reserve", "--file", ok, token=tenant_token)
    assert code == 0, err
    assert out.startswith("admitted 2 of 2 (atomic)")
    # atomic refusal: one line naming the member, exit 1, nothing admitted
    bad = write(tmp_path, "bad.json", [req(102), req(103, max_latency_ns=1000)])
    code, out, err = dnctl("reserve", "--file", bad, token=tenant_token)
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1 and "member 1" in err, err
    assert count(dnctl, tenant_token) == before + 2
    # not atomic: the admitted, the refused with index and reason; exit 1 since some were refused
    code, out, err = dnctl("reserve", "--file", bad, "--no-atomic", "--json", token=tenant_token)
    assert code == 1, err
    answer = json.loads(out)
    assert len(answer["reservations"]) == 1 and answer["rejections"][0]["index"] == 1
    assert answer["rejections"][0]["reason"].startswith("latency")
    ids = [r["id"] for r in answer["reservations"]]
    assert count(dnctl, tenant_token) == before + 3
    # the client library's multi-delete
    with ApiClient(url, tenant_token) as api:
        with pytest.raises(ApiError) as e:
            api.release_many(ids + ["no-such-id"])
        assert e.value.status == 404 and e.value.index == len(ids)
        assert api.release_many(ids) == ids


def test_reserve_file_usage_errors_exit_2(dnctl, tmp_path, tenant_token):
    code, _, err = dnctl("reserve", "--file", tmp_path / "missing.json", token=tenant_token)
    assert code == 2 and "no such file" in err
    broken = write(tmp_path, "broken.json", [req(1, bandwidth_bps="fast")])
    code, _, err = dnctl("reserve", "--file", broken, token=tenant_token)
    assert code == 2 and "entry #0" in err and "bandwidth_bps" in err
    ok = write(tmp_path, "ok2.json", [req(1)])
    code, _, err = dnctl("reserve", "--file", ok, "--src", "Beijing", token=tenant_token)
    assert code == 2 and "--file excludes --src" in err
    code, _, err = dnctl("reserve", "--src", "Beijing", token=tenant_token)
    assert code == 2 and "required" in err
    code, _, err = dnctl("reserve", "--file", write(tmp_path, "empty.json", []), token=tenant_token)
    assert code == 2


def test_training_reserve_sends_the_plan_as_one_atomic_batch(dnctl, tenant_token):
    before = count(dnctl, tenant_token)
    code, out, err = dnctl("training", "reserve", "demo-emulated", "--json", token=tenant_token)
    assert code == 0, err
    answer = json.loads(out)
    assert answer["atomic"] is True
    assert [r["id"] for r in answer["reservations"]] == [f"demo-emulated-{i}" for i in range(len(answer["reservations"]))]
    assert count(dnctl, tenant_token) == before + len(answer["reservations"])
    # again: the ids exist, so the first flow blocks, nothing more is admitted
    code, out, err = dnctl("training", "reserve", "demo-emulated", token=tenant_token)
    assert code == 1 and "exists" in err and "member 0" in err
    assert count(dnctl, tenant_token) == before + len(answer["reservations"])
    code, _, err = dnctl("training", "reserve", "no-such-job", token=tenant_token)
    assert code == 2


def test_reservations_delete_many_is_all_or_none(dnctl, tmp_path, tenant_token):
    code, out, err = dnctl("reserve", "--file", write(tmp_path, "three.json", [req(300), req(301), req(302)]),
                           "--json", token=tenant_token)
    assert code == 0, err
    ids = [r["id"] for r in json.loads(out)["reservations"]]
    before = count(dnctl, tenant_token)
    code, out, err = dnctl("reservations", "delete", *ids, "no-such-id", token=tenant_token)
    assert code == 1 and "member 3" in err and "no-such-id" in err and len(err.strip().splitlines()) == 1
    assert count(dnctl, tenant_token) == before
    code, _, err = dnctl("reservations", "delete", ids[0], ids[0], token=tenant_token)
    assert code == 2 and "twice" in err
    code, out, err = dnctl("reservations", "delete", *ids[:2], "--json", token=tenant_token)
    assert code == 0 and json.loads(out) == {"deleted": ids[:2]}
    code, out, err = dnctl("reservations", "delete", ids[2], token=tenant_token)
    assert code == 0 and out.strip() == f"reservation {ids[2]} deleted"
    assert count(dnctl, tenant_token) == before - 3
