"""What the VM tests share: skip naming what the machine lacks to run a guest, boot one (saying
which image and how long), print a figure.

(Imported by the test modules as ``vmhelpers``, like ``emuhelpers``: tests/ is on sys.path.)
"""

from __future__ import annotations

import os
import shutil
import time
from contextlib import contextmanager
from typing import Iterator

import pytest

from tools.vm.guest import QEMU, Guest
from tools.vm.image import cached_image, ensure_image, missing_host_tools

__all__ = ["booted_guest", "say", "skip_unless_a_guest_can_run"]


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


@contextmanager
def booted_guest(request) -> Iterator[Guest]:
    """``with booted_guest(request) as g:`` a guest of the image (built now if needed, or skipped as
    ``skip_unless_a_guest_can_run`` says), with the image and boot figures printed; torn down on exit."""
    skip_unless_a_guest_can_run()
    t0 = time.monotonic()
    img = ensure_image()
    got = time.monotonic() - t0
    say(request, f"vm: image {img.key} (kernel {img.kernel_release}; built in "
                 f"{img.manifest['build_seconds']:.0f} s, {'now' if got > 30 else 'cached'})")
    with Guest(img) as g:
        say(request, f"vm: guest booted in {g.boot_seconds:.1f} s (guest uptime at ready "
                     f"{g.guest_uptime_at_ready:.1f} s)")
        yield g
