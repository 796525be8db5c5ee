"""Shared fixtures for emulation tests (mark those tests ``@pytest.mark.emulation``).

- ``emulation_machine``: skips, naming the missing machine feature ('not root', 'Open vSwitch not
  installed', 'mininet not importable'), when this machine cannot run an emulation; else returns
  the probed ``tools.emulation.ovs.Capabilities``.
- ``emu_lock``: holds the machine-wide lock ``/tmp/detnet-emu.lock`` (fcntl.flock, via
  ``tools.emulation.network.emulation_lock``, re-entrant in-process) for the whole test, so teammates'
  emulations never collide with ours.

Nothing here is autouse: tests that do not ask for these fixtures are unaffected.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def emulation_machine():
    from tools.emulation import ovs
    caps = ovs.probe()
    missing = caps.missing_for_emulation()
    if missing:
        pytest.skip("machine lacks: " + ", ".join(missing))
    return caps


@pytest.fixture
def emu_lock(emulation_machine):
    from tools.emulation.network import emulation_lock
    with emulation_lock():
        yield
