"""Boot the image under qemu, run commands in the guest, get their output and files back.

Why: the kernel features the emulation needs (openvswitch module, netem, taprio) exist in Debian's
stock kernel but not in this host's; a guest running that kernel gives them to the emulation::

    with Guest(ensure_image()) as g:
        r = g.run("modprobe openvswitch sch_netem sch_taprio && lsmod", timeout=60)
        print(r.returncode, r.stdout, g.boot_seconds)

How (see ``recipe/agent``): qemu-system-x86_64 under TCG (``-accel tcg,thread=multi -cpu max``;
KVM does not work on these hosts), the root disk with ``snapshot=on`` so the image is never
modified, and three 9p shares: the repository read-only at ``/repo`` (the guest's python3 runs the
project from it), a control spool at ``/ctl`` and an output folder at ``/out`` (``$DETNET_OUT`` in
the guest; ``Guest.out_dir`` on the host) through which captures and reports come back. The agent
(PID 1 in the guest) runs one command at a time from files the host drops into the spool and
answers with ``N.out``/``N.err``/``N.rc``; a command runs under ``timeout`` in the guest, and the
host gives up on a guest that does not answer 30 s after that.

Tear-down on every exit path (``Managed``: normal exit, exceptions, Ctrl-C, a failed boot): ask the
agent to power off, then terminate and kill qemu; qemu also gets ``PR_SET_PDEATHSIG`` so it dies
with the Python process that started it even if that one is killed. The temporary folder (spool,
console log, and the output folder unless the caller gave one) is removed. While a guest runs it
holds the machine-wide emulation lock, so VM runs never overlap emulation tests on a small machine.
Only a SIGKILL of the Python process leaves its temp folder behind; the next guest removes it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tools.emulation.lifecycle import Managed
from tools.emulation.network import emulation_lock
from tools.emulation.progress import Progress, progress
from tools.vm.image import REPO, Image

__all__ = ["Guest", "GuestError", "GuestResult", "GuestTimeout", "QEMU"]

QEMU = "qemu-system-x86_64"
#: the host waits this long past a command's own timeout before declaring the guest hung
GRACE_S = 30.0
#: prefix of a guest's temporary folder (spool, console log, default output folder)
TMP_PREFIX = "detnet-vm-"
_PR_SET_PDEATHSIG = 1

log = progress("vm")


class GuestError(RuntimeError):
    """The guest failed to boot, died, or stopped answering; one line (plus the console's tail)."""


class GuestTimeout(GuestError):
    """A command ran past its timeout and was killed in the guest (the guest stays usable)."""

    def __init__(self, msg: str, result: "GuestResult"):
        super().__init__(msg)
        self.result = result


@dataclass(frozen=True)
class GuestResult:
    """What a command in the guest returned."""

    command: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def _die_with_parent() -> None:
    """In the qemu child before exec: get SIGKILL when the process that started it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Guest(Managed):
    """A booted guest of ``image`` (see the module docstring); use it as a context manager."""

    def __init__(self, image: Image, *, repo: Path = REPO, out_dir: Path | None = None,
                 memory: str = "2G", cpus: int = 2, boot_timeout: float = 180.0,
                 lock: bool = True, say: Progress = log):
        self.image = image
        self.repo = Path(repo)
        self._given_out = Path(out_dir) if out_dir else None
        self.memory, self.cpus, self.boot_timeout = memory, cpus, boot_timeout
        self._lock, self._say = lock, say
        self._stack: contextlib.ExitStack | None = None
        self._tmp: Path | None = None
        self._proc: subprocess.Popen | None = None
        self._n = 0
        self.out_dir: Path | None = None
        self.boot_seconds: float | None = None    # qemu start to agent ready (host clock)
        self.guest_uptime_at_ready: float | None = None

    # ----- paths -----
    @property
    def ctl(self) -> Path:
        assert self._tmp is not None, "guest not started"
        return self._tmp / "ctl"

    @property
    def console_log(self) -> Path:
        assert self._tmp is not None, "guest not started"
        return self._tmp / "console.log"

    def qemu_command(self) -> list[str]:
        """The qemu command line (TCG, snapshot root, three 9p shares, no network, serial to a file)."""
        img = self.image
        cmd = [QEMU, "-name", "detnet-vm", "-accel", "tcg,thread=multi",
               "-cpu", "max", "-smp", str(self.cpus), "-m", self.memory,
               "-display", "none", "-monitor", "none", "-serial", f"file:{self.console_log}",
               "-no-reboot", "-nic", "none", "-device", "virtio-rng-pci",
               "-kernel", str(img.kernel), "-initrd", str(img.initrd),
               "-append", "console=ttyS0 panic=-1 quiet loglevel=3",
               "-drive", f"file={img.root},if=virtio,format=raw,snapshot=on"]
        shares = [("ctl", self.ctl, False), ("out", self.out_dir, False), ("repo", self.repo, True)]
        for tag, path, ro in shares:
            cmd += ["-virtfs", f"local,path={path},mount_tag={tag},security_model=none"
                    + (",readonly=on" if ro else "")]
        return cmd

    # ----- lifecycle -----
    def start(self) -> "Guest":
        if shutil.which(QEMU) is None:
            raise GuestError(f"{QEMU} not found (install qemu-system-x86)")
        self._stack = contextlib.ExitStack()
        if self._lock:
            self._stack.enter_context(emulation_lock())
        _remove_orphans()
        self._tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX))
        (self._tmp / "pid").write_text(f"{os.getpid()}\n")
        self.ctl.mkdir()
        if self._given_out:
            self._given_out.mkdir(parents=True, exist_ok=True)
            self.out_dir = self._given_out
        else:
            self.out_dir = self._tmp / "out"
            self.out_dir.mkdir()
        self._say(f"booting Debian {self.image.kernel_release} under qemu (TCG, {self.cpus} CPUs, "
                  f"{self.memory})")
        t0 = time.monotonic()
        with open(self._tmp / "qemu.log", "wb") as qlog:   # qemu's own messages (not the console)
            self._proc = subprocess.Popen(self.qemu_command(), stdin=subprocess.DEVNULL, stdout=qlog,
                                          stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        ready = self.ctl / "ready"
        while not ready.exists():
            if self._proc.poll() is not None:
                raise GuestError(f"qemu exited (code {self._proc.returncode}) before the guest was ready"
                                 + self._console_tail())
            if time.monotonic() - t0 > self.boot_timeout:
                raise GuestError(f"the guest was not ready within {self.boot_timeout:g} s"
                                 + self._console_tail())
            time.sleep(0.1)
        self.boot_seconds = time.monotonic() - t0
        with contextlib.suppress(ValueError, OSError, IndexError):
            self.guest_uptime_at_ready = float(ready.read_text().split()[0])
        self._say(f"guest ready in {self.boot_seconds:.1f} s")
        return self

    def stop(self) -> None:
        """Power the guest off (kill qemu if it does not go), remove the temp folder, drop the lock."""
        proc, self._proc = self._proc, None
        try:
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(OSError):
                    (self.ctl / "poweroff").touch()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.terminate()
                    try:
                        proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
        finally:
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._tmp = None
            if self._stack is not None:
                self._stack.close()
                self._stack = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # ----- commands -----
    def run(self, command: str, timeout: float = 600.0, check: bool = False,
            stream: Callable[[str, str], None] | None = None) -> GuestResult:
        """Run ``command`` (bash) in the guest, in ``/repo``; its exit code, stdout and stderr.

        The guest kills it after ``timeout`` seconds (``GuestTimeout``, the guest stays usable).
        ``check=True`` raises ``GuestError`` on a non-zero exit. ``GuestError`` too when the guest
        died or stopped answering (it is then torn down). ``stream(name, text)`` gets the command's
        output while it runs (``name`` 'stdout' or 'stderr', ``text`` what was added since the last
        call; whole lines only, the rest when the command ends): progress of long work.
        """
        if not self.running:
            raise GuestError("the guest is not running")
        n, self._n = self._n, self._n + 1
        base = self.ctl / str(n)
        (self.ctl / f"{n}.timeout").write_text(f"{int(max(1, round(timeout)))}\n")
        tmp = self.ctl / f"{n}.sh.tmp"
        tmp.write_text(command + "\n")
        t0 = time.monotonic()
        tmp.rename(self.ctl / f"{n}.sh")
        rc_file = self.ctl / f"{n}.rc"
        tails = {"stdout": _Tail(base.with_suffix(".out")), "stderr": _Tail(base.with_suffix(".err"))}
        while not rc_file.exists():
            if stream is not None:
                for name, tail in tails.items():
                    text = tail.lines()
                    if text:
                        stream(name, text)
            if self._proc is None or self._proc.poll() is not None:
                tail = self._console_tail()
                self.stop()
                raise GuestError(f"the guest died while running: {_short(command)}" + tail)
            if time.monotonic() - t0 > timeout + GRACE_S:
                tail = self._console_tail()
                self.stop()
                raise GuestError(f"the guest stopped answering ({timeout + GRACE_S:g} s) while running: "
                                 f"{_short(command)}" + tail)
            time.sleep(0.05)
        seconds = time.monotonic() - t0
        if stream is not None:
            for name, tail in tails.items():
                text = tail.lines(final=True)
                if text:
                    stream(name, text)
        result = GuestResult(command, int(rc_file.read_text().strip() or -1),
                             _read(base.with_suffix(".out")), _read(base.with_suffix(".err")), seconds)
        if result.returncode in (124, 137) and seconds >= timeout - 1:
            raise GuestTimeout(f"timed out after {timeout:g} s in the guest: {_short(command)}", result)
        if check and result.returncode != 0:
            raise GuestError(f"exit {result.returncode} in the guest: {_short(command)}: "
                             f"{_last_line(result.stderr or result.stdout)}")
        return result

    def _console_tail(self, lines: int = 8) -> str:
        """The last lines of qemu's own messages and of the guest's console, for error messages."""
        if self._tmp is None:
            return ""
        out = ""
        for what, name in (("qemu", "qemu.log"), ("console", "console.log")):
            tail = [line.rstrip() for line in _read(self._tmp / name).splitlines() if line.strip()][-lines:]
            out += f"; {what}: " + " | ".join(tail) if tail else ""
        return out


class _Tail:
    """What was appended to a file (on the 9p spool) since the last look, in whole lines."""

    def __init__(self, path: Path):
        self.path, self.offset = path, 0

    def lines(self, final: bool = False) -> str:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return ""
        if not final:
            data = data[: data.rfind(b"\n") + 1]
        self.offset += len(data)
        return data.decode(errors="replace")


def _remove_orphans() -> None:
    """Remove temp folders of guests whose Python process is gone (it was SIGKILLed: its qemu died
    with it through PR_SET_PDEATHSIG, but nothing could remove the folder)."""
    for folder in Path(tempfile.gettempdir()).glob(TMP_PREFIX + "*"):
        try:
            pid = int((folder / "pid").read_text())
        except (OSError, ValueError):
            continue
        if not Path(f"/proc/{pid}").exists():
            shutil.rmtree(folder, ignore_errors=True)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _short(command: str, width: int = 80) -> str:
    one = " ".join(command.split())
    return one if len(one) <= width else one[: width - 3] + "..."


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"
