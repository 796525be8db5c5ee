"""tools.emulation.netemcal: the lateness of one netem delay, measured across a real delayed veth
pair where this machine has netem (the VM's long-haul ping test uses it), and a one-line error
with nothing left behind where it has not (this host)."""

from __future__ import annotations

import os
import subprocess

import pytest

from tools.emulation import netemcal
from topologies.machine import qdisc_works


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def test_a_round_trip_crosses_both_ends_delays_once():
    assert netemcal.lateness_from(10.0, 5.0) == 0.0
    assert netemcal.lateness_from(11.0, 5.0) == pytest.approx(0.5)
    assert netemcal.lateness_from(9.0, 5.0) == 0.0       # faster than asked is no lateness


def test_measures_where_netem_works_and_says_why_not_where_it_does_not():
    if os.geteuid() != 0:
        pytest.skip("machine lacks root: namespaces and qdiscs need it")
    before = _namespaces()
    if qdisc_works("netem delay 1ms"):
        cal = netemcal.measure(delay_ms=2.0, count=10)
        assert cal.pings == 10
        assert cal.rtt_min_ms >= 2 * 2.0             # both delays were really applied
        assert cal.late_ms == netemcal.lateness_from(cal.rtt_min_ms, 2.0) >= 0
        assert cal.late_avg_ms == netemcal.lateness_from(cal.rtt_avg_ms, 2.0) >= cal.late_ms
    else:
        with pytest.raises(RuntimeError, match="cannot make the netem calibration link") as e:
            netemcal.measure()
        assert "\n" not in str(e.value)
    assert _namespaces() == before                  # nothing left behind either way
