"""``HostProcs``: the one keeper of processes started inside an emulation's hosts.

Why: talkers, captures, iperf3 floods and training agents run in the hosts' namespaces; every run
must end them, also on failure and Ctrl-C, and must stop some of them early (a capture after its
talker, the agents after a phase). One keeper with one rule: a process is asked to stop with a
signal (SIGINT by default: tcpdump flushes its pcap, iperf3 prints its report), given a grace
period, then killed. Processes may carry a tag (``"flood"``, ``"capture"``...) to stop a group.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time

__all__ = ["HostProcs"]


class HostProcs:
    """Processes started in hosts, each with a tag; ``stop_all`` ends them (signal, grace, kill)."""

    def __init__(self) -> None:
        self._items: list[tuple[str, subprocess.Popen]] = []

    def add(self, p: subprocess.Popen, tag: str = "") -> subprocess.Popen:
        """Keep ``p`` (under ``tag``); returns it."""
        self._items.append((tag, p))
        return p

    @property
    def procs(self) -> list[subprocess.Popen]:
        """The processes kept, in the order they were added."""
        return [p for _, p in self._items]

    def tagged(self, tag: str) -> list[subprocess.Popen]:
        """The processes kept under ``tag``."""
        return [p for t, p in self._items if t == tag]

    def stop(self, p: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 5.0) -> None:
        """Send ``sig`` to ``p`` if it runs, wait up to ``timeout`` s, then kill it."""
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(5)

    def stop_all(self, tag: str | None = None, grace: float = 3.0) -> None:
        """SIGINT every kept process (of ``tag``, or all) at once, give them ``grace`` s together,
        kill what still runs, and forget them."""
        mine = [(t, p) for t, p in self._items if tag is None or t == tag]
        for _, p in mine:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + grace
        for _, p in mine:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.05, deadline - time.monotonic()))
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(3)
        ids = {id(p) for _, p in mine}
        self._items = [(t, p) for t, p in self._items if id(p) not in ids]
