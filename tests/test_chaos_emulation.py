"""Link failure and protection end to end on Open vSwitch: `tools.runs.chaos` on the small meshed ring.

With probe traffic flowing A->C over A-B-C, the switch-side interface of A-B is set down:
the controller must get the port status, re-place every reservation on the link and reprogram
the switches; the protected flow (replicated at A over two link-disjoint paths) loses nothing,
the unprotected one is rerouted and flows again. Then ``dnctl chaos --json`` (link cut and
controller SIGKILL/restart) must report pass. Both take the machine-wide emulation lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from emuhelpers import missing_features as _missing

LOCK = "/tmp/detnet-emu.lock"
DNCTL = str(Path(sys.executable).with_name("dnctl"))


@pytest.fixture
def emu_lock():
    missing = _missing()
    if missing:
        pytest.skip("machine lacks: " + ", ".join(missing))
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@pytest.mark.emulation
def test_link_cut_protected_loses_nothing_unprotected_rerouted(emu_lock, tmp_path):
    from tools.runs.chaos import ChaosConfig, run_chaos

    rep = run_chaos(ChaosConfig(reservations=1, traffic=1, restart=False, cut_traffic_s=5.0, out=str(tmp_path),
                                verbose=False))
    lc = rep["link_cut"]
    print(f"\nlink cut: {lc['reservations_affected']} reservations reprogrammed {1000 * lc['reprogrammed_s']:.1f} ms "
          f"after the port status, {1000 * lc['cut_to_reprogrammed_s']:.0f} ms after the cut; lost protected "
          f"{lc['lost_protected']}, unprotected {lc['lost_unprotected']}")
    assert lc["reservations_affected"] == 2 and lc["rerouted"] == 2 and lc["down"] == 0
    assert lc["avoid_cut_link"]
    p, u = lc["flows"]["p0"], lc["flows"]["u0"]
    assert p["sent"] > 1000 and p["lost"] == 0 and lc["lost_protected"] == 0
    assert p["eliminated"] > 0                       # both copies arrived before the cut
    assert lc["received_1s_after_cut"]["u0"] > 0     # the unprotected flow flows again on its new path
    assert u["received"] > 0 and u["lost"] < u["sent"] // 2
    assert lc["protected_reprotected"] == 1          # a third disjoint route exists in chaos6
    assert lc["reprogrammed_s"] < 1.0
    assert rep["controller_restart"]["skipped"]
    # the controller log tells the same story
    text = (tmp_path / "controller.log").read_text()
    assert "port status:" in text and "reprogram_ms=" in text


@pytest.mark.emulation
def test_dnctl_chaos_json_passes(emu_lock, tmp_path):
    r = subprocess.run([DNCTL, "chaos", "--json", "--reservations", "1", "--traffic", "1", "--quiet", "--vm", "off"],
                       capture_output=True, text=True, timeout=240, pass_fds=(emu_lock,))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rep = json.loads(r.stdout)
    assert rep["pass"] is True
    assert rep["platform"]["openflow"] == "tls"      # the switches came back after the restart over TLS
    assert set(rep["link_cut"]) >= {"reservations_affected", "reprogrammed_s", "lost_protected", "lost_unprotected"}
    cr = rep["controller_restart"]
    assert cr["reservations_before"] == cr["reservations_after"] == 2 and cr["lost_packets"] == 0
    assert cr["resync_changes"] == 0
