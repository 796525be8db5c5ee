"""Training jobs: the parser, the planner and the analytic model against hand-computed values."""

import math

import pytest

from schedules.training import JobError, job_from_dict, list_jobs, load_job
from schedules.training_model import estimate
from schedules.training_plan import plan, site_pairs
from topologies.model import Topology

GOOD = {
    "name": "t", "sites": ["A", "B", "C", "D"], "parameters": 175e9, "bytes_per_element": 2,
    "wan_compression": 0.0625, "forward_s": 5.2, "backward_s": 10.48, "overlap": 0.95,
    "collective": "ring", "channel_bps": 50e9, "iterations": 500000,
}


def square() -> Topology:
    t = Topology("square")
    for n in "ABCD":
        t.add_node(n)
    for a, b, km in (("A", "B", 1000), ("B", "C", 800), ("C", "D", 800), ("D", "A", 2000), ("A", "C", 1500)):
        t.add_link(a, b, km)
    return t


def test_shipped_jobs_load_and_include_a_hundreds_of_billions_job():
    names = list_jobs()
    assert "gpt-175b-4dc" in names
    big = load_job("gpt-175b-4dc")
    assert big.parameters >= 100e9 and big.k >= 2
    for n in names:
        assert load_job(n).name == n


@pytest.mark.parametrize("change, message", [
    ({"sites": ["A"]}, "at least two"),
    ({"sites": ["A", "A"]}, "twice"),
    ({"overlap": 1.5}, "overlap"),
    ({"collective": "butterfly"}, "collective"),
    ({"parameters": -1}, "parameters"),
    ({"parameters": "many"}, "parameters"),
    ({"iterations": 2.5}, "whole number"),
    ({"colour": "red"}, "unknown field 'colour'"),
])
def test_bad_jobs_are_rejected_with_the_field_named(change, message):
    with pytest.raises(JobError, match=message):
        job_from_dict({**GOOD, **change}, "job.json")


def test_missing_field_is_named():
    data = dict(GOOD)
    del data["backward_s"]
    with pytest.raises(JobError, match="missing field 'backward_s'"):
        job_from_dict(data, "job.json")


def test_broken_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(JobError, match="bad.json: not valid JSON"):
        load_job(bad)
    yml = tmp_path / "bad.yaml"
    yml.write_text("name: [unclosed")
    with pytest.raises(JobError, match="bad.yaml: not valid YAML"):
        load_job(yml)
    with pytest.raises(JobError, match="no such file"):
        load_job(tmp_path / "missing.json")


def test_yaml_job_loads(tmp_path):
    import yaml

    p = tmp_path / "job.yaml"
    p.write_text(yaml.safe_dump(GOOD))
    assert load_job(p).sites == GOOD["sites"]


def test_ring_and_tree_pairs():
    ring = job_from_dict(GOOD)
    assert site_pairs(ring) == [("A", "B"), ("B", "C"), ("C", "D"), ("D", "A")]
    tree = job_from_dict({**GOOD, "collective": "hierarchical"})
    # binary tree rooted at A: B and C are A's children, D is B's child; one flow each way
    assert sorted(site_pairs(tree)) == sorted([("B", "A"), ("A", "B"), ("C", "A"), ("A", "C"),
                                               ("D", "B"), ("B", "D")])


def test_plan_gives_one_request_per_ring_hop_with_its_volume():
    job = job_from_dict(GOOD)
    flows = plan(job, square(), tenant=7)
    assert [(f.request["src"], f.request["dst"]) for f in flows] == site_pairs(job)
    volume = 2 * 3 / 4 * 175e9 * 2 * 0.0625
    for f in flows:
        assert f.request["tenant"] == 7 and f.request["bandwidth_bps"] == 50_000_000_000
        assert f.bytes_per_iteration == pytest.approx(volume)
        assert f.window_start_s == pytest.approx(5.2)
    # D->A: direct link of 2000 km (10 ms) vs D-C-A 800+1500 km: the direct one is shorter
    assert flows[3].propagation_ns == 10_000_000
    assert flows[3].request["max_latency_ns"] == 2 * 10_000_000 + 5_000_000


def test_plan_rejects_unknown_site():
    job = job_from_dict({**GOOD, "sites": ["A", "Z"]})
    with pytest.raises(JobError, match="'Z' is not a node"):
        plan(job, square())


def test_deterministic_estimate_matches_hand_computation():
    job = job_from_dict(GOOD)
    e = estimate(job, 0.012, network="deterministic", interference_bps=30e9)
    # V = 2(K-1)/K * G = 1.5 * 175e9 * 2 * 0.0625 B = 32.8125 GB -> 262.5 Gbit at 50 Gb/s = 5.25 s
    assert e.wan_bytes_per_site == pytest.approx(32.8125e9)
    assert e.comm_s == pytest.approx(5.25)
    assert e.late_buckets_s == pytest.approx(0.2625)
    assert e.overflow_s == 0
    assert e.latency_s == pytest.approx(6 * (0.012 + 1e-6))
    assert e.iteration_s == pytest.approx(15.68 + 0.2625 + 0.072006)
    assert e.efficiency == pytest.approx(15.68 / 16.014506)
    # interference cannot take reserved capacity
    assert e.effective_rate_bps == 50e9


def test_best_effort_estimate_with_interference_matches_hand_computation():
    job = job_from_dict(GOOD)
    e = estimate(job, 0.010, network="best-effort", interference_bps=30e9)
    straggler = 1 + 0.1 * math.sqrt(2 * math.log(4))
    comm = 262.5e9 / (20e9 * 0.84) * straggler
    assert e.comm_s == pytest.approx(comm)
    assert e.late_buckets_s == pytest.approx(0.05 * comm)
    assert e.overflow_s == pytest.approx(0.95 * comm - 10.48)
    assert e.latency_s == pytest.approx(6 * (0.010 + 0.005))
    assert e.iteration_s > 20  # the published "over 20 s" with interference
    overloaded = estimate(job, 0.010, network="best-effort", interference_bps=80e9)
    assert overloaded.effective_rate_bps == pytest.approx(0.02 * 50e9 * 0.84)


def test_hierarchical_volume_and_rounds():
    job = job_from_dict({**GOOD, "collective": "hierarchical"})
    e = estimate(job, 0.01)
    assert e.wan_bytes_per_site == pytest.approx(2 * 175e9 * 2 * 0.0625)
    assert e.rounds == 2 * 2  # ceil(log2 4) = 2 levels, up and down


def test_estimate_rejects_bad_network():
    with pytest.raises(ValueError):
        estimate(job_from_dict(GOOD), 0.01, network="magic")


def test_hop_delays_admit_the_plan_into_an_empty_scheduler():
    from schedules.training_plan import hop_delays

    job = job_from_dict(GOOD, "job.json")
    flows = plan(job, square())
    det, be, reservations = hop_delays(job, square())
    assert [r["id"] for r in reservations] == [fl.request["id"] for fl in flows]
    assert be == max(fl.propagation_ns for fl in flows) / 1e9
    assert det == max(r["latency_bound_ns"] for r in reservations) / 1e9 and det > be


def test_hop_delays_name_the_flow_an_empty_network_rejects():
    from schedules.training_plan import NotAdmissible, hop_delays

    job = job_from_dict({**GOOD, "max_latency_ns": 1000}, "job.json")
    with pytest.raises(NotAdmissible, match=r"job t is not admissible on square: t-0 rejected \(latency:") as e:
        hop_delays(job, square())
    assert isinstance(e.value, JobError)


def test_cli_estimate_of_a_job_the_network_cannot_carry_is_one_line_exit_1(tmp_path, capsys):
    import json

    from tools.cli.main import main

    job = tmp_path / "tight.json"
    job.write_text(json.dumps({**GOOD, "name": "tight", "sites": ["Beijing", "Shanghai"], "max_latency_ns": 1000}))
    assert main(["training", "estimate", str(job), "--topology", "fntf40"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dnctl: job tight is not admissible on fntf40: tight-0 rejected (latency:")
    assert len(err.strip().splitlines()) == 1
