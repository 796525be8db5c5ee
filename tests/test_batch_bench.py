"""``dnctl bench rest`` with the batch phase: one batch and one multi-delete beside the one-by-one path."""

from __future__ import annotations

import json
import subprocess
import sys

from tools.runs.bench_rest import text_report

DNCTL = [sys.executable, "-m", "tools.cli.main"]


def test_bench_rest_no_emulate_prints_batch_beside_one_by_one():
    r = subprocess.run(DNCTL + ["bench", "rest", "--no-emulate", "--reservations", "40", "--tenants", "4",
                                "--concurrency", "4", "--json"], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-500:]
    d = json.loads(r.stdout)
    assert d["batch_admitted"] + d["batch_rejected"] == 40 and d["batch_admitted"] > 0
    assert d["batch_deleted"] == d["batch_admitted"] and d["batch_delete_errors"] == {}
    assert d["batch_installed_match"] is None and d["batch_tables_back_to_baseline"] is None
    report = text_report(d)
    assert "one by one" in report and "one batch" in report and "reservations/s" in report
    print("\n" + report)
