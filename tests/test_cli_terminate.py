"""SIGTERM stops a dnctl verb the way Ctrl-C does: what it started is torn down (here a
controller subprocess and its temporary folder), the exit status is 143 and one line says why."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

DNCTL = str(Path(sys.executable).with_name("dnctl"))


def test_sigterm_tears_down_what_the_verb_started(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    p = subprocess.Popen([DNCTL, "bench", "rest", "--no-emulate", "--reservations", "50000", "--tenants", "8",
                          "--no-batch"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob("detnet-ctl-*/*")) and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.2)
        started = list(tmp_path.glob("detnet-ctl-*"))
        assert started, "the verb never started its controller"
        time.sleep(2.0)                              # well inside the run: the controller is up
        assert p.poll() is None
        p.send_signal(signal.SIGTERM)
        _out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 143, err[-500:]
    assert err.strip().splitlines()[-1] == "dnctl: terminated"
    assert not any(d.exists() for d in started), "the controller's temporary folder was left behind"
