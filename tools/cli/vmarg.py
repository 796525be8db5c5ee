"""``--vm auto|on|off`` of the emulation verbs: run the verb here, or whole inside a VM guest.

``off``: here, on this host's kernel (on a kernel without netem or taprio the links carry no
propagation and no gates, and reports say so). ``on``: in a fresh guest with Debian's stock kernel
(``tools.vm.delegate``). ``auto`` (the default): in a guest only when this kernel lacks the
openvswitch module, netem or taprio (``tools.vm.host.wants_vm``). Inside the guest the verb always
runs there (``off``). The guest writes the verb's ``--out`` folder through a share (a temporary
one, removed after, when the verb was given none or has none, as ``emulate up``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile

from tools.cli import CliError
from tools.emulation.patience import in_vm
from tools.emulation.progress import progress
from tools.vm.delegate import VmRunError, run_verb_in_vm
from tools.vm.host import VM_MODES, host_kernel, wants_vm

__all__ = ["add_vm_argument", "run_in_vm_if_asked", "verb_argv"]

VM_HELP = ("where to run: 'on' whole in a VM with Debian's stock kernel (kernel datapath, netem propagation, "
           "taprio gates), 'off' on this host's kernel, 'auto' (default) a VM only when this kernel lacks "
           "the openvswitch module, netem or taprio")

say = progress("vm")


def add_gates_argument(p: argparse.ArgumentParser, when: str) -> None:
    """``--gates auto|on|off`` of a run verb (``tools.emulation.stack.GATE_MODES``); ``when`` says when the
    gated ports are read back."""
    p.add_argument("--gates", choices=("auto", "on", "off"), default="auto",
                   help=f"802.1Qbv gates (tc taprio) on every port carrying reservations, read back equal to the "
                        f"schedule {when}: on (or fail), off, auto (default: where the kernel has taprio, except in "
                        f"the TCG guest of --vm, where they are on only when asked: docs/gates.md)")


def add_vm_argument(p: argparse.ArgumentParser) -> None:
    """Add ``--vm`` to an emulation verb's parser (the verb must have ``--out``)."""
    p.add_argument("--vm", choices=VM_MODES, default="auto", help=VM_HELP)


def verb_argv(argv: list[str]) -> list[str]:
    """``argv`` without its ``--out``/``--vm`` options (the VM run gives its own).

    >>> verb_argv(["verify", "scenario", "--out", "x", "--vm=on", "--tenants", "2", "--out=y"])
    ['verify', 'scenario', '--tenants', '2']
    """
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--out", "--vm"):
            skip = True
        elif not a.startswith(("--out=", "--vm=")):
            out.append(a)
    return out


def run_in_vm_if_asked(args: argparse.Namespace, out_dir: str | None) -> int | None:
    """The verb's exit code when ``args.vm`` sends it into a VM (it ran there), None to run here."""
    if in_vm() or args.vm == "off":
        return None
    if args.vm == "auto":
        kernel = host_kernel()
        if not wants_vm("auto", kernel):
            return None
        say(f"this kernel lacks {', '.join(kernel.missing())}: running in a VM (--vm off runs here without them)")
    argv = verb_argv(getattr(args, "argv", None) or sys.argv[1:])
    has_out = hasattr(args, "out")            # a verb with an --out folder writes it through the share
    try:
        if out_dir:
            return run_verb_in_vm(argv, out_dir, out_option=has_out)
        with tempfile.TemporaryDirectory(prefix="detnet-vm-out-") as tmp:   # the verb keeps nothing
            return run_verb_in_vm(argv, tmp, out_option=has_out)
    except VmRunError as e:
        raise CliError(f"vm: {e}", code=1) from None
