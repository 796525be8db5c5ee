"""``topologies.mininet_topo.add_flows``: one bundle per switch, and a switch whose write failed
(ovs-vswitchd dropping a management connection under load) is written again, the others not."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from controller.dataplane.specs import FlowSpec
from topologies import mininet_topo

FAKE = """#!/bin/sh
# fake ovs-ofctl: record the switch and its stdin; fail the first N calls for switches named in FAIL
sw="$5"
cat > "$LOG/$sw.$$"
n=$(ls "$LOG" | grep -c "^$sw\\.")
if echo " $FAIL " | grep -q " $sw " && [ "$n" -le "$FAILS" ]; then
  echo "ovs-ofctl: $sw: failed to connect to socket (Broken pipe)" >&2
  exit 1
fi
exit 0
"""


def _flows():
    spec = FlowSpec(dpid=1, table_id=0, priority=10, match={"in_port": 1},
                    instructions=[{"type": "apply", "actions": [{"type": "output", "port": 2}]}])
    return {"s1": [spec], "s2": [spec]}


@pytest.fixture
def fake_ofctl(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "ovs-ofctl"
    exe.write_text(FAKE)
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "log"
    log.mkdir()
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("LOG", str(log))
    return log


def _calls(log: Path, sw: str) -> int:
    return len([p for p in log.iterdir() if p.name.startswith(sw + ".")])


def test_a_dropped_connection_is_retried_for_that_switch_only(fake_ofctl, monkeypatch):
    monkeypatch.setenv("FAIL", "s2")
    monkeypatch.setenv("FAILS", "1")
    mininet_topo.add_flows(_flows())
    assert _calls(fake_ofctl, "s1") == 1
    assert _calls(fake_ofctl, "s2") == 2
    assert all("in_port=1" in p.read_text() for p in fake_ofctl.iterdir())


def test_a_switch_that_keeps_failing_is_named_after_the_last_attempt(fake_ofctl, monkeypatch):
    monkeypatch.setenv("FAIL", "s1")
    monkeypatch.setenv("FAILS", "99")
    with pytest.raises(RuntimeError, match=r"\(3 attempts\): s1: .*Broken pipe"):
        mininet_topo.add_flows(_flows(), attempts=3)
    assert _calls(fake_ofctl, "s1") == 3 and _calls(fake_ofctl, "s2") == 1
