"""``dnctl bench all``'s REST rows: ``dnctl bench rest`` onto the emulated switches and with the
controller alone, each in its own process, in the one table beside issue 13's targets (a small
ring here; ``make bench`` runs fntf40 with 4,096 requests). Figures are not asserted (they are a
benchmark's); what is: both runs happened and verified what they installed, every target row is
there, and a run that cannot start is one "not run" row with its reason."""

from __future__ import annotations

import pytest

from emuhelpers import missing_features, ring4
from tools.runs import bench_all


@pytest.mark.emulation
def test_rest_rows_onto_the_switches_and_the_controller_alone(tmp_path):
    missing = missing_features()
    if missing:
        pytest.skip("machine lacks: " + ", ".join(missing))
    topo = tmp_path / "benchring.json"
    topo.write_text(ring4("benchring").to_json())
    r = bench_all.run_all(admission=False, startup=False, tsnkit=False, rest_topology=str(topo),
                          rest_reservations=16, rest_tenants=2)
    sw, alone = r["rest"]["switches"], r["rest"]["alone"]
    assert "error" not in sw and "error" not in alone, r["rest"]
    assert sw["emulated"] is True and alone["emulated"] is False
    assert sw["installed_match"] and sw["tables_back_to_baseline"] and sw["batch_installed_match"]
    assert sw["admitted"] > 0 and sw["batch_admitted"] == sw["admitted"]
    assert sw["emulation_timings"]["up_s"] > 0 and sw["emulation_stop_s"] > 0
    assert alone["batch_reservations_per_s"] > 0 and alone["installed_match"] is None
    table = bench_all.text_table(r)
    for row in ("rest onto 4 switches: one by one", ">= 1000 /s", "<= 5 / 20 ms", "rest onto 4 switches: one batch",
                "<= 2 s", "emulation up (4 switches, 4 hosts)", "<= 6 s", "emulation down", "<= 3 s",
                "rest, controller alone (no switch): one batch", ">= 10000 /s"):
        assert row in table, (row, table)


def test_a_rest_run_that_cannot_start_is_one_row_with_its_reason():
    r = bench_all.run_all(admission=False, startup=False, tsnkit=False, rest_topology="no-such-topology",
                          rest_reservations=4, rest_tenants=1)
    for key in ("switches", "alone"):
        assert "no-such-topology" in r["rest"][key]["error"], r["rest"][key]
    table = bench_all.text_table(r)
    assert "rest onto the switches" in table and "rest, controller alone" in table
    assert table.count("not run") == 2 and "Traceback" not in table
