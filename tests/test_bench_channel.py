"""``dnctl bench channel`` on a small emulation: both channels come up, every reservation's install is measured.

Figures are not asserted (they are a benchmark's); what is: the run brings up plain TCP and then
TLS, every switch connects on each, each reservation made is installed and counted in the
install figures, and the controller's log for the TLS run says it listened with client
certificates required.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from apihelpers import beijing_line
from emuhelpers import missing_features
from tools.emulation.controller_proc import DNCTL

pytestmark = pytest.mark.emulation


def test_bench_channel_measures_plain_and_tls_on_every_switch(tmp_path):
    missing = missing_features()
    if missing:
        pytest.skip("machine lacks: " + ", ".join(missing))
    topo = tmp_path / "line.json"
    topo.write_text(beijing_line("chanline").to_json())
    r = subprocess.run([DNCTL, "bench", "channel", "--topology", str(topo), "--reservations", "6", "--json"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert [run["channel"] for run in out["runs"]] == ["plain", "tls"]
    for run in out["runs"]:
        assert run["switches"] == 3 and run["reservations"] == 6 and run["admitted"] + run["rejected"] == 6
        assert run["admitted"] >= 1
        assert run["connect_s"] > 0 and run["controller_cpu_s"] > 0
        assert run["programs"] >= 1 and run["install_ms_p50"] > 0 and run["post_ms_p50"] > 0
    assert set(out["median"]) == {"plain", "tls"}
