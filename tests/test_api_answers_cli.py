"""Issue 12, wrong answers on the command line and in the files (items 2, 7, 8 and 9 of the CLI).

- 2: ``dnctl schedule`` refuses a requests file whose entry gives ``frame_bytes`` and
  ``bandwidth_bps`` together (exit 2, both named, nothing written);
- 7: ``dnctl paths`` takes what ``dnctl reserve`` takes (``--via``, ``--protect``, ``--match-*``,
  ``--id``) and gives the POST's verdict;
- 8: ``dnctl reserve`` shows the API's ``warnings`` (a reservation that installs nothing);
- 9: ``dnctl paths`` without a rate names ``--bandwidth`` (exit 2, nothing sent); a duration
  without a unit (``--max-latency 30``) is refused; an unknown city or topology name suggests the
  one meant ("did you mean 'Beijing'?").
"""

from __future__ import annotations

import json

import pytest

from apihelpers import beijing_line, dnctl_runner, serve

ADMIN = "admin-token-for-the-answer-cli-tests-0123"
NOWHERE = "http://127.0.0.1:9"        # nothing listens: a request would fail with exit 1, not 2


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    from controller.api import create_app
    from controller.service import ControllerService
    from topologies.hosts import HostPlan

    topo = beijing_line("answers-cli")
    plan = HostPlan.build(topo, [(1, "Beijing"), (1, "Jinan")])
    db = tmp_path_factory.mktemp("answers") / "controller.db"
    service = ControllerService(topo, db_path=str(db), admin_token=ADMIN, store_synchronous="OFF", host_plan=plan)
    service.create_tenant("one")
    try:
        with serve(create_app(service), log_level="warning") as (host, port):
            yield f"http://{host}:{port}"
    finally:
        service.close()


@pytest.fixture
def dnctl(monkeypatch, capsys):
    return dnctl_runner(monkeypatch, capsys, ADMIN, NOWHERE)

# ----- 2: the requests file of `dnctl schedule` -------------------------------------------------------------
def test_schedule_refuses_a_request_with_both_rates_naming_both(dnctl, tmp_path):
    reqs = tmp_path / "requests.json"
    out = tmp_path / "schedule.json"
    entry = {"tenant": 1, "src": "Beijing", "dst": "Tianjin", "max_latency_ns": 10**8}
    reqs.write_text(json.dumps([{**entry, "bandwidth_bps": 10**6},
                                {**entry, "bandwidth_bps": 10**9, "frame_bytes": 100, "match": {"udp_dst": 2}}]))
    code, stdout, err = dnctl("schedule", "--topology", "fntf40", "--requests", reqs, "--out", out)
    assert code == 2 and err.count("\n") == 1, err
    assert "entry #1" in err and "frame_bytes" in err and "bandwidth_bps" in err
    assert not out.exists()


# ----- 9: dnctl paths without a rate, durations without a unit ---------------------------------------------------
def test_paths_without_a_rate_names_the_option_and_sends_nothing(dnctl):
    code, out, err = dnctl("paths", "Beijing", "Jinan", "--max-latency", "30ms")
    assert code == 2 and "--bandwidth" in err and "frame_bytes" not in err and err.count("\n") == 1
    code, out, err = dnctl("paths", "Beijing", "Jinan", "--frame-bytes", "1500", "--max-latency", "30ms")
    assert code == 2 and "--period" in err


@pytest.mark.parametrize("verb", [["paths", "Beijing", "Jinan"], ["reserve", "--src", "Beijing", "--dst", "Jinan"]])
@pytest.mark.parametrize("option, value", [("--max-latency", "30"), ("--max-jitter", "10"), ("--period", "1000")])
def test_a_duration_without_a_unit_is_refused(dnctl, verb, option, value):
    argv = {"--max-latency": "30ms", "--bandwidth": "1G"}
    if option == "--period":
        argv = {"--max-latency": "30ms", "--frame-bytes": "1500"}
    argv[option] = value
    code, out, err = dnctl(*verb, *[x for kv in argv.items() for x in kv])
    assert code == 2 and err.count("\n") == 1, err
    assert option in err and "unit" in err and f"{value}ms" in err


# ----- 7: dnctl paths takes what reserve takes ----------------------------------------------------------------
def test_paths_takes_via_protect_match_and_id_and_agrees_with_reserve(dnctl, url):
    common = ["--bandwidth", "10M", "--max-latency", "30ms", "--tenant", "1", "--match-udp-dst", "4000"]
    code, out, err = dnctl("paths", "Beijing", "Jinan", *common, "--via", "Tianjin", "--id", "w-1", "--json", url=url)
    assert code == 0, err
    what_if = json.loads(out)
    assert what_if["admissible"] is True and what_if["match"] == {"udp_dst": 4000}
    code, out, err = dnctl("reserve", "--src", "Beijing", "--dst", "Jinan", *common, "--via", "Tianjin",
                           "--id", "w-1", "--json", url=url)
    assert code == 0, err
    got = json.loads(out)
    assert got["id"] == "w-1" and got["path"] == what_if["path"] and got["hops"] == what_if["hops"]
    # the same traffic again: both refuse it with the same reason
    code, out, err = dnctl("paths", "Beijing", "Jinan", *common, "--json", url=url)
    assert code == 1 and json.loads(out)["reason"] == "overlap:w-1"
    code, out, err = dnctl("reserve", "--src", "Beijing", "--dst", "Jinan", *common, url=url)
    assert code == 1 and "overlap:w-1" in err
    # protection on a line: no second path, in both
    code, out, err = dnctl("paths", "Beijing", "Jinan", "--bandwidth", "10M", "--max-latency", "30ms", "--tenant",
                           "1", "--match-udp-dst", "4001", "--protect", "--json", url=url)
    assert code == 1 and json.loads(out)["reason"] == "no_disjoint_path"
    code, out, err = dnctl("reserve", "--src", "Beijing", "--dst", "Jinan", "--bandwidth", "10M", "--max-latency",
                           "30ms", "--tenant", "1", "--match-udp-dst", "4001", "--protect", url=url)
    assert code == 1 and "no_disjoint_path" in err
    # an inconsistent match is refused locally by both, by the same rule
    for verb in (["paths", "Beijing", "Jinan"], ["reserve", "--src", "Beijing", "--dst", "Jinan"]):
        code, out, err = dnctl(*verb, "--bandwidth", "1M", "--max-latency", "30ms", "--match-ip-proto", "tcp",
                               "--match-udp-dst", "53")
        assert code == 2 and "--match-udp-dst" in err, err


# ----- 8: warnings reach the terminal -------------------------------------------------------------------------------
def test_reserve_shows_that_a_reservation_installs_nothing(dnctl, url):
    code, out, err = dnctl("reserve", "--tenant", "1", "--src", "Beijing", "--dst", "Tianjin", "--bandwidth", "1M",
                           "--max-latency", "30ms", "--match-udp-dst", "4100", url=url)
    assert code == 0, err
    assert "warning" in err and "installs nothing" in err and "Tianjin" in err
    code, out, err = dnctl("reserve", "--tenant", "1", "--src", "Beijing", "--dst", "Jinan", "--bandwidth", "1M",
                           "--max-latency", "30ms", "--match-udp-dst", "4101", url=url)
    assert code == 0 and "warning" not in err


# ----- 9: did you mean ----------------------------------------------------------------------------------------------
def test_unknown_names_suggest_the_one_meant(dnctl, tmp_path):
    from schedules.requests_file import RequestsFileError, parse_requests
    from topologies.loaders import load_topology, suggestion
    from topologies.model import TopologyError

    assert suggestion("beijing", ["Beijing", "Tianjin"]) == "did you mean 'Beijing'?"
    assert suggestion("Tianjn", ["Beijing", "Tianjin"]) == "did you mean 'Tianjin'?"
    assert suggestion("Urumqi", ["Beijing", "Tianjin"]) == ""
    topo = beijing_line("dym")
    entry = {"tenant": 1, "src": "beijing", "dst": "Tianjin", "bandwidth_bps": 10**6, "max_latency_ns": 10**8}
    with pytest.raises(RequestsFileError) as e:
        parse_requests([entry], topology=topo)
    assert "did you mean 'Beijing'?" in str(e.value)
    with pytest.raises(TopologyError) as e:
        load_topology("fntf4")
    assert "did you mean 'fntf40'?" in str(e.value)
    sched = tmp_path / "s.json"
    reqs = tmp_path / "r.json"
    reqs.write_text(json.dumps([{**entry, "src": "Beijing"}]))
    assert dnctl("schedule", "--topology", "fntf40", "--requests", reqs, "--out", sched)[0] == 0
    code, out, err = dnctl("schedule", "gcl", sched, "--link", "beijing", "Tianjin")
    assert code == 2 and "did you mean 'Beijing'?" in err
