"""Unit tests of the REST load benchmark's pure parts (no controller, no Mininet): the workload,
the expected-entries check and the baseline comparison; and `dnctl bench rest` usage errors."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from controller.dataplane import specs
from controller.dataplane import translation as tr
from controller.core.model import Hop, Reservation
from tools.runs import bench_rest as br
from tools.runs.isolation import spread_plan
from topologies.loaders import load_topology

DNCTL = str(Path(sys.executable).with_name("dnctl"))


@pytest.fixture(scope="module")
def plan():
    return spread_plan(load_topology("fntf40"), 16, 2)


def test_workload_is_seeded_and_uses_each_tenants_cities(plan):
    w = br.rest_workload(plan, 200, 16, seed=4)
    assert [i.body for i in w] == [i.body for i in br.rest_workload(plan, 200, 16, seed=4)]
    assert [i.body for i in w] != [i.body for i in br.rest_workload(plan, 200, 16, seed=5)]
    assert len({i.id for i in w}) == 200
    for i in w:
        cities = {h.switch for h in plan.hosts_of(i.tenant)}
        assert i.body["src"] in cities and i.body["dst"] in cities and i.body["src"] != i.body["dst"]
        assert ("bandwidth_bps" in i.body) != ("frame_bytes" in i.body)
        assert i.body["max_latency_ns"] > 5_000_000
    assert Counter(i.tenant for i in w) == {t: 200 // 16 + (t <= 200 % 16) for t in range(1, 17)}
    # no two reservations of a tenant share a match (their entries would overwrite each other)
    keys = [(i.tenant, i.body["match"]["udp_dst"]) for i in w]
    assert len(keys) == len(set(keys))
    bulk = sum("bandwidth_bps" in i.body for i in w)
    assert 0 < bulk < 60


def test_workload_needs_two_cities_per_tenant():
    one = spread_plan(load_topology("fntf40"), 4, 1)
    with pytest.raises(ValueError, match="fewer than two cities"):
        br.rest_workload(one, 10, 4)


def test_percentile():
    assert br.percentile([], 50) is None
    assert br.percentile([3.0], 99) == 3.0
    assert br.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert br.percentile(list(range(101)), 99) == 99


def _res(plan, rid: str, tenant: int) -> Reservation:
    a, b = sorted({h.switch for h in plan.hosts_of(tenant)})
    import networkx as nx
    path = nx.shortest_path(plan.topology.graph, a, b)
    return Reservation(id=rid, tenant=tenant, src=a, dst=b, period_ns=10**6, frame_bytes=500, bandwidth_bps=4_000_000,
                       max_latency_ns=10**8, latency_bound_ns=10**6, jitter_bound_ns=1000, path=path,
                       hops=[Hop(u, v, [i]) for i, (u, v) in enumerate(zip(path, path[1:]))], tx_offsets_ns=[0],
                       match={"udp_dst": 20000 + int(rid[1:])})


def _line(cookie: int) -> str:
    return f"cookie={cookie:#x}, table=1, priority=1000,ip actions=drop"


def test_verify_installed_counts_per_switch_and_meters(plan):
    rs = [_res(plan, "r1", 3), _res(plan, "r2", 5)]
    snap = {plan.switch_name(n): {"flows": [], "meters": []} for n in plan.topology.nodes}
    for r in rs:
        flows, meters = tr.reservation_flows(plan, r)
        for f in flows:
            snap[plan.switch_name(plan.node_of_dpid(f.dpid))]["flows"].append(_line(f.cookie))
        for m in meters:
            snap[plan.switch_name(plan.node_of_dpid(m.dpid))]["meters"].append(
                f"meter={m.meter_id} kbps burst bands= type=drop rate={m.rate_kbps} burst_size={m.burst_kb}")
    base = plan.switch_name(plan.topology.nodes[0])
    snap[base]["flows"].append(_line(specs.make_cookie(specs.KIND_BASE)))            # baseline entries are ignored
    snap[base]["meters"].append("meter=3 kbps burst bands= type=drop rate=10 burst_size=1")
    ok = br.verify_installed(plan, rs, snap)
    assert ok["ok"] and ok["entries_expected"] == ok["entries_found"] == len(rs[0].path) + len(rs[1].path)

    ingress = plan.switch_name(rs[0].path[1])          # a transit switch of r1 loses its entry
    victim = next(l for l in snap[ingress]["flows"] if "0x3" in l[:12])
    snap[ingress]["flows"].remove(victim)
    snap[ingress]["flows"].append(_line(specs.make_cookie(specs.KIND_RESERVATION, 9, 1234)))   # and gains a stale one
    bad = br.verify_installed(plan, rs, snap)
    assert not bad["ok"] and bad["mismatches"][ingress]["entries_missing"] == 1
    assert bad["mismatches"][ingress]["entries_extra"] == 1
    # a reservation meter missing on the ingress is noticed too
    first = plan.switch_name(rs[1].path[0])
    snap[first]["meters"] = [m for m in snap[first]["meters"] if not m.startswith(f"meter={specs.reservation_meter_id('r2')} ")]
    assert br.verify_installed(plan, rs, snap)["mismatches"][first]["meters_missing"] == 1


def test_snapshot_diff_ignores_order_and_counts_differences():
    before = {"s1": {"flows": ["a", "b", "b"], "meters": ["m1"]}, "s2": {"flows": ["x"], "meters": []}}
    same = {"s1": {"flows": ["b", "a", "b"], "meters": ["m1"]}, "s2": {"flows": ["x"], "meters": []}}
    assert br.snapshot_diff(before, same) == {}
    changed = {"s1": {"flows": ["a", "b", "c"], "meters": []}, "s2": {"flows": ["x"], "meters": []}}
    assert br.snapshot_diff(before, changed) == {"s1": {"flows_missing": 1, "flows_extra": 1,
                                                        "meters_missing": 1, "meters_extra": 0}}


def test_parsers():
    log = ("x INFO detnet.ofshim: reservation t1-r0 installed on 5 switches (5 flows, 1 meter): install_ms=3.25 \n"
           "x INFO detnet.ofshim: reservation t1-r0 removed on 5 switches: install_ms=1.50 \n"
           "x INFO detnet.ofshim: reservations t2-r0,t2-r1 installed on 7 switches (9 flows, 2 meters): "
           "install_ms=4.00 \n")
    assert br.install_times_from_log(log) == {"installed": {"t1-r0": 3.25, "t2-r0": 4.0, "t2-r1": 4.0},
                                              "removed": {"t1-r0": 1.5}}
    text = "# TYPE a counter\ndetnet_flow_install_seconds_count 42\ndetnet_x{a=\"1\"} 3\n"
    assert br.metric_value(text, "detnet_flow_install_seconds_count") == 42
    assert br.metric_value(text, "nope") is None
    cookies = br.cookies_of([_line(specs.make_cookie(specs.KIND_RESERVATION, 2, 7)), _line(specs.make_cookie(specs.KIND_BASE)),
                             "no cookie here actions=drop"], specs.KIND_RESERVATION)
    assert cookies == Counter({specs.make_cookie(specs.KIND_RESERVATION, 2, 7): 1})
    mem = br.proc_memory_mb(__import__("os").getpid())
    assert mem["VmRSS"] > 0 and mem["VmHWM"] >= mem["VmRSS"]


@pytest.mark.parametrize("args,msg", [
    (["--hosts-per-tenant", "1", "--no-emulate"], "at least 2"),
    (["--topology", "no-such-topology"], "unknown topology"),
    (["--reservations", "0"], "must be at least 1"),
    (["--link-scale", "0", "--no-emulate"], "link-scale"),
])
def test_cli_usage_errors_exit_2(args, msg):
    r = subprocess.run([DNCTL, "bench", "rest", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert msg in r.stderr and "Traceback" not in r.stderr


def test_cli_no_emulate_small_run_json():
    """Controller only (no switches): the REST path end to end, one JSON object with the figures."""
    import json
    r = subprocess.run([DNCTL, "bench", "rest", "--no-emulate", "--reservations", "40", "--tenants", "4",
                        "--concurrency", "4", "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-500:]
    d = json.loads(r.stdout)
    for key in ("reservations_per_s", "post_p50_ms", "post_p99_ms", "install_p50_ms", "install_p99_ms",
                "controller_rss_mb", "admitted", "rejected", "tables_back_to_baseline", "total_s", "hosts",
                "emulation_start_s"):
        assert key in d, key
    assert d["admitted"] + d["rejected"] == 40 and d["errors"] == {}
    assert d["deleted"] == d["admitted"] and d["reservations_left"] == 0
    assert d["hosts"] == 8 and d["controller_rss_mb"] > 0 and d["reservations_per_s"] > 0
    assert d["tables_back_to_baseline"] is None and d["install_p50_ms"] is None and d["emulation_start_s"] is None
