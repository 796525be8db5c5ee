"""The Prometheus binaries the observability tests run (Debian's ``prometheus`` package, which
``make setup`` installs: it is the project's dependency, so a missing one fails, never skips)."""

from __future__ import annotations

import shutil

import pytest


def prometheus_tool(name: str) -> str:
    """The path of ``prometheus`` or ``promtool``; a clear failure when it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: it comes with Debian's 'prometheus' package, which `make setup` "
                    "installs (tools/setup.sh)")
    return path
