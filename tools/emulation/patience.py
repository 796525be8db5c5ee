"""How long to wait, on this platform, for what takes longer on a slow one.

Inside the VM (``DETNET_IN_VM=1``, set by the guest's agent, ``tools/vm/recipe/agent``) every
instruction is emulated by qemu's TCG: importing the controller's libraries alone takes 20-60 s
there, against about 2 s on the host. Start-up and connection timeouts are multiplied by
``VM_FACTOR`` there; nothing else (no verdict, no measured figure) is scaled by it.
"""

from __future__ import annotations

import os

__all__ = ["VM_FACTOR", "in_vm", "patience"]

#: how much longer start-ups take in the TCG guest than on the host (measured: controller start
#: 2 s on the host, 20-60 s in the guest)
VM_FACTOR = 8.0


def in_vm() -> bool:
    """True inside the project's VM guest (its agent exports ``DETNET_IN_VM=1``)."""
    return os.environ.get("DETNET_IN_VM") == "1"


def patience(seconds: float) -> float:
    """``seconds`` to wait for a start-up or a connection here: x ``VM_FACTOR`` in the VM.

    >>> patience(20.0) == (20.0 * VM_FACTOR if in_vm() else 20.0)
    True
    """
    return seconds * VM_FACTOR if in_vm() else seconds
