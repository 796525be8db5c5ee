"""Run one ``dnctl`` emulation verb inside a fresh VM guest, its output streamed, its reports kept.

Why: ``--vm on`` (or ``auto`` on a host whose kernel lacks the openvswitch module, netem or taprio)
must give the same verb, the same report files and the same exit code as a run on a host that has
them. So the verb runs whole in the guest (``dnctl VERB ... --vm off``): controller, emulation,
talkers, captures and analysis together on the guest's kernel, where the kernel datapath, netem
propagation and taprio gates exist. The controller runs in the guest too: its OpenFlow channel
and REST API then stay on the guest's loopback (no virtual NIC, no host port to forward), and the
emulation's timing noise is measured where the packets are.

How the guest runs the project: the repository is shared read-only and bind-mounted at the same
path as on the host, so the project's own virtualenv (``.venv``, built by ``make setup`` with
``--system-site-packages`` from Debian's Python 3.11, the guest's Python) runs there unchanged and
finds Mininet in the guest's Debian packages. The verb's ``--out`` folder is the guest's ``/out``
share: every file it writes lands in the host's folder as it is written. Start-up timeouts are
longer in the guest (``tools.emulation.patience``); nothing else changes.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Callable

from tools.emulation.progress import Progress, progress
from tools.vm.guest import Guest, GuestError, GuestTimeout
from tools.vm.image import REPO, ImageError, ensure_image

__all__ = ["VmRunError", "guest_script", "run_verb_in_vm", "venv_python_version"]

#: the Python the guest has (Debian bookworm): the venv shared in must be of this version
GUEST_PYTHON = "3.11"

log = progress("vm")


class VmRunError(RuntimeError):
    """The verb could not be run in a VM (no image, no usable venv, the guest died); one line."""


def venv_python_version(repo: Path = REPO) -> str | None:
    """The Python version of the project's virtualenv (``pyvenv.cfg``), None without one."""
    try:
        for line in (repo / ".venv" / "pyvenv.cfg").read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() in ("version", "version_info"):
                return value.strip()
    except OSError:
        return None
    return None


def guest_script(verb_argv: list[str], *, repo: Path = REPO, cwd: Path | None = None) -> str:
    """The bash the guest runs: the repository at its host path, kernel modules, OVS, then the verb.

    >>> print(guest_script(["verify", "scenario", "--out", "/out"], repo=Path("/src/detnet")))
    ... # doctest: +NORMALIZE_WHITESPACE
    set -e
    mkdir -p /src/detnet && mount --bind /repo /src/detnet
    modprobe -a openvswitch sch_netem sch_taprio veth
    /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random >/dev/null
    cd /src/detnet
    exec /src/detnet/.venv/bin/dnctl verify scenario --out /out --vm off
    """
    here = cwd if cwd is not None and (cwd == repo or repo in cwd.parents) else repo
    argv = [str(repo / ".venv" / "bin" / "dnctl"), *verb_argv, "--vm", "off"]
    return "\n".join([
        "set -e",
        f"mkdir -p {shlex.quote(str(repo))} && mount --bind /repo {shlex.quote(str(repo))}",
        "modprobe -a openvswitch sch_netem sch_taprio veth",
        "/usr/share/openvswitch/scripts/ovs-ctl start --system-id=random >/dev/null",
        f"cd {shlex.quote(str(here))}",
        "exec " + " ".join(shlex.quote(a) for a in argv),
    ])


def run_verb_in_vm(verb_argv: list[str], out_dir: str | Path, *, out_option: bool = True, timeout: float = 3600.0,
                   say: Progress = log, write: Callable[[str, str], None] | None = None) -> int:
    """Run ``dnctl VERB_ARGV`` in a fresh guest, the guest's ``/out`` share being ``out_dir`` on the
    host (and the verb's ``--out`` when ``out_option``: a verb without one writes nothing there);
    its stdout/stderr go to ours as it runs; returns its exit code.

    ``verb_argv`` must not name ``--out`` or ``--vm`` (they are added). ``VmRunError`` when the VM
    cannot run it (its message says why).
    """
    version = venv_python_version()
    if version is None:
        raise VmRunError(f"no virtualenv at {REPO / '.venv'} to run in the VM: run `make setup` first")
    if not version.startswith(GUEST_PYTHON + "."):
        raise VmRunError(f"the VM runs the project's virtualenv from the share, and its Python is {version}; "
                         f"the guest has Python {GUEST_PYTHON} (Debian bookworm): make the venv with python"
                         f"{GUEST_PYTHON}, or use --vm off")
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    script = guest_script([*verb_argv, *(["--out", "/out"] if out_option else [])], cwd=Path.cwd().resolve())
    emit = write or _write
    try:
        image = ensure_image()
        with Guest(image, out_dir=out, say=say) as g:
            say(f"running `dnctl {' '.join(verb_argv)}` in the guest (kernel {image.kernel_release}; "
                f"reports in {out})")
            res = g.run(script, timeout=timeout, stream=emit)
            say(f"guest: boot {g.boot_seconds:.1f} s, verb {res.seconds:.1f} s, exit {res.returncode}")
            return res.returncode
    except GuestTimeout as e:
        raise VmRunError(f"the verb ran past {timeout:g} s in the VM and was stopped") from e
    except (ImageError, GuestError) as e:
        raise VmRunError(str(e)) from None


def _write(name: str, text: str) -> None:
    stream = sys.stdout if name == "stdout" else sys.stderr
    stream.write(text)
    stream.flush()
