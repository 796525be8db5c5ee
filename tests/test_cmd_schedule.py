"""``dnctl schedule``: build a Schedule JSON from REQUESTS.json, exit codes, nothing written on error, gcl action."""

import json

import pytest

from schedules.requests_file import RequestsFileError, parse_requests
from tools.cli.main import main
from topologies.model import Topology


@pytest.fixture
def topo_file(tmp_path):
    t = Topology("tri")
    for n in ("x", "y", "z"):
        t.add_node(n)
    t.add_link("x", "y", 100, capacity_bps=10_000_000_000)
    t.add_link("y", "z", 200, capacity_bps=10_000_000_000)
    t.add_link("x", "z", 250, capacity_bps=10_000_000_000)
    p = tmp_path / "tri.json"
    p.write_text(t.to_json())
    return p


GOOD = [
    {"tenant": 1, "src": "x", "dst": "z", "period_ns": 1_000_000, "frame_bytes": 12_000, "max_latency_ns": 5_000_000,
     "id": "job-1"},
    {"tenant": 2, "src": "z", "dst": "y", "bandwidth_bps": 1_000_000_000, "max_latency_ns": 5_000_000},
    {"tenant": 1, "src": "x", "dst": "y", "period_ns": 1_000_000, "frame_bytes": 1500, "max_latency_ns": 10},
    {"tenant": 3, "src": "y", "dst": "x", "period_ns": 1_000_000, "frame_bytes": 10**8, "max_latency_ns": 900_000_000},
]


def _run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_builds_schedule_and_summarises(tmp_path, topo_file, capsys):
    req = tmp_path / "req.json"
    req.write_text(json.dumps(GOOD))
    out = tmp_path / "sched.json"
    code, stdout, _ = _run(["schedule", "--topology", str(topo_file), "--requests", str(req), "--out", str(out),
                            "--json"], capsys)
    assert code == 0
    summary = json.loads(stdout)
    assert summary["requests"] == 4 and summary["admitted"] == 2 and summary["rejected"] == 2
    assert summary["rejections_by_reason"] == {"latency": 1, "capacity": 1}
    assert [r["index"] for r in summary["rejections"]] == [2, 3]
    sched = json.loads(out.read_text())
    assert sched["version"] == 1 and sched["slot_ns"] == 1000
    ids = {r["id"] for r in sched["reservations"]}
    assert "job-1" in ids and len(ids) == 2 and set(summary["reservations"]) == ids

    code, stdout, _ = _run(["schedule", "--topology", str(topo_file), "--requests", str(req), "--out", str(out),
                            "--slot-ns", "500"], capsys)
    assert code == 0 and "admitted 2 of 4" in stdout and "latency 1" in stdout
    assert json.loads(out.read_text())["slot_ns"] == 500

    # gcl action on the file just written
    res = next(r for r in sched["reservations"] if r["id"] == "job-1")
    u, v = res["path"][0], res["path"][1]
    code, stdout, _ = _run(["schedule", "gcl", str(out), "--link", u, v, "--json"], capsys)
    assert code == 0
    g = json.loads(stdout)
    assert sum(e["duration_ns"] for e in g["entries"]) == g["cycle_ns"]
    assert any(e.get("reservation") == "job-1" for e in g["entries"])
    code, stdout, _ = _run(["schedule", "gcl", str(out), "--link", u, v], capsys)
    assert code == 0 and f"{u} -> {v}" in stdout and "job-1" in stdout


@pytest.mark.parametrize("content, needle", [
    ("{not json", "not JSON"),
    (json.dumps({"a": 1}), "JSON list"),
    (json.dumps([GOOD[0], {**GOOD[1], "frame_bytes": -5}]), "entry #1: field 'frame_bytes'"),
    (json.dumps([GOOD[0], GOOD[1], {**GOOD[0], "colour": "red", "id": "other"}]), "entry #2: field 'colour'"),
    (json.dumps([{**GOOD[0], "dst": "nowhere"}]), "entry #0: field 'dst'"),
    (json.dumps([GOOD[0], GOOD[0]]), "entry #1: field 'id'"),
    (json.dumps([{**GOOD[1], "tenant": 0}]), "entry #0: field 'tenant'"),
    (json.dumps([{k: v for k, v in GOOD[0].items() if k != "max_latency_ns"}]), "entry #0: field 'max_latency_ns'"),
])
def test_malformed_requests_exit_2_and_write_nothing(tmp_path, topo_file, capsys, content, needle):
    req = tmp_path / "req.json"
    req.write_text(content)
    out = tmp_path / "sched.json"
    code, stdout, err = _run(["schedule", "--topology", str(topo_file), "--requests", str(req), "--out", str(out)],
                             capsys)
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1
    assert sorted(tmp_path.iterdir()) == sorted([req, topo_file])  # nothing written, not even a temp file
    assert stdout == ""


def test_usage_errors_exit_2(tmp_path, topo_file, capsys):
    req = tmp_path / "req.json"
    req.write_text(json.dumps(GOOD))
    code, _, err = _run(["schedule", "--topology", str(topo_file), "--requests", str(req)], capsys)
    assert code == 2 and "--out" in err
    code, _, err = _run(["schedule", "--topology", str(tmp_path / "none.json"), "--requests", str(req),
                         "--out", str(tmp_path / "o.json")], capsys)
    assert code == 2 and not (tmp_path / "o.json").exists()
    code, _, err = _run(["schedule", "--topology", str(topo_file), "--requests", str(tmp_path / "missing.json"),
                         "--out", str(tmp_path / "o.json")], capsys)
    assert code == 2 and "no such file" in err
    code, _, err = _run(["schedule", "gcl", str(tmp_path / "missing.json"), "--link", "x", "y"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_gcl_unknown_link_exit_2(tmp_path, topo_file, capsys):
    req = tmp_path / "req.json"
    req.write_text(json.dumps(GOOD[:1]))
    out = tmp_path / "s.json"
    assert _run(["schedule", "--topology", str(topo_file), "--requests", str(req), "--out", str(out)], capsys)[0] == 0
    code, _, err = _run(["schedule", "gcl", str(out), "--link", "x", "q"], capsys)
    assert code == 2 and "x->q" in err


def test_parse_requests_keeps_order_and_ids():
    reqs = parse_requests(GOOD)
    assert [r.src for r in reqs] == ["x", "z", "x", "y"] and reqs[0].id == "job-1" and reqs[1].id is None
    with pytest.raises(RequestsFileError, match="entry #0"):
        parse_requests([42])
