"""What the VM tests share: skip naming what the machine lacks to run a guest, print a figure.

(Imported by the test modules as ``vmhelpers``, like ``emuhelpers``: tests/ is on sys.path.)
"""

from __future__ import annotations

import os
import shutil

import pytest

from tools.vm.guest import QEMU
from tools.vm.image import cached_image, missing_host_tools

__all__ = ["say", "skip_unless_a_guest_can_run"]


def skip_unless_a_guest_can_run() -> None:
    """Skip (naming the missing machine feature) when no guest can be booted here: no qemu, or no
    cached image and nothing to build one with (root and the image tools)."""
    if shutil.which(QEMU) is None:
        pytest.skip(f"machine lacks: {QEMU} (apt-get install qemu-system-x86)")
    if cached_image() is None:
        missing = ([] if os.geteuid() == 0 else ["root (to build the VM image)"]) + missing_host_tools()
        if missing:
            pytest.skip("machine lacks: " + ", ".join(missing))


def say(request, line: str) -> None:
    """Print a figure in the test output (also under -q and output capture)."""
    plugins = request.config.pluginmanager
    with plugins.getplugin("capturemanager").global_and_fixture_disabled():
        plugins.getplugin("terminalreporter").write_line(line)
