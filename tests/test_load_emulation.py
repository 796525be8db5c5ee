"""4,096 reservations of 128 tenants through the REST API on the 40-switch emulation (issue 7, item 5).

The full size fits in CI (about 80 s on a 2-core machine with the userspace datapath: 6 s to
start 40 switches and 256 hosts, ~30 s of POSTs, ~25 s of DELETEs). The scenario is
``tools.runs.bench_rest.run_rest_bench`` (also behind ``dnctl bench rest``): each tenant POSTs its own
reservations with its own token, 8 clients at once; then every switch's reservation entries and
meters are compared with the translation of the admitted reservations, everything is DELETEd,
and every switch's flow and meter tables must equal the snapshot taken before the load.
"""

from __future__ import annotations

import json

import pytest

from tools.runs import bench_rest
pytestmark = pytest.mark.emulation

RESERVATIONS, TENANTS = 4096, 128


def test_4096_reservations_128_tenants_installed_then_released_to_baseline(tmp_path):
    from tools.emulation import ovs
    missing = ovs.probe().missing_for_emulation()
    if missing:
        pytest.skip("machine lacks: " + ", ".join(missing))
    r = bench_rest.run_rest_bench(bench_rest.BenchOptions(
        topology="fntf40", reservations=RESERVATIONS, tenants=TENANTS, hosts_per_tenant=2, concurrency=8,
        emulate=True, seed=1, verbose=False, keep_log=str(tmp_path)))
    print("\n" + bench_rest.text_report(r))
    (tmp_path / "result.json").write_text(json.dumps(r, indent=1))

    assert r["hosts"] == 2 * TENANTS and r["switches"] == 40
    # every request answered: admitted or refused with a network reason, never an error
    assert r["errors"] == {}, r["errors"]
    assert r["admitted"] + r["rejected"] == RESERVATIONS
    assert set(r["rejected_by_reason"]) <= {"capacity", "latency", "jitter", "no_path"}, r["rejected_by_reason"]
    assert r["admitted"] >= RESERVATIONS // 2, "the workload is light: most requests must fit"
    # all admitted ones installed: exactly the translation's entries and meters on every switch
    assert r["reservations_held"] == r["admitted"]
    assert r["installed_match"], r["install_mismatches"]
    assert r["entries_found"] == r["entries_expected"] >= 2 * r["admitted"]
    assert r["install_failures"] == 0 and r["install_samples"] == r["admitted"]
    # all released, every flow and meter table back to its baseline
    assert r["deleted"] == r["admitted"] and r["delete_errors"] == {}
    assert r["reservations_left"] == 0
    assert r["tables_back_to_baseline"], r["baseline_diff"]
