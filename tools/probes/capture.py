"""Packet capture with kernel receive timestamps, in nanoseconds, via tcpdump.

``capture_command`` builds the tcpdump argv (so the emulation can run it inside a Mininet host
with ``host.popen``); ``Capture`` runs it locally, waits until tcpdump is listening, and stops it
cleanly with SIGINT so the pcap is complete. Files are ordinary nanosecond pcaps
(magic a1b23c4d), readable by tshark, scapy and ``tools.probes.analyzer``.

Timestamps: ``--time-stamp-precision=nano`` asks libpcap for ns timestamps; the timestamp type is
the kernel's receive time (``host``; ``adapter_unsynced`` is used when the interface offers it,
i.e. NIC hardware stamps, which veth/OVS ports do not).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

#: bytes kept per frame: headers + probe header + the reservation id, not the padding
DEFAULT_SNAPLEN = 256


class CaptureError(RuntimeError):
    """tcpdump is missing, refused the interface, or failed to start."""


def timestamp_types(iface: str) -> list[str]:
    """Timestamp types tcpdump offers on ``iface`` (``tcpdump -J``); [] when unknown."""
    exe = shutil.which("tcpdump")
    if not exe:
        return []
    p = subprocess.run([exe, "-J", "-i", iface], capture_output=True, text=True)
    return re.findall(r"^\s+(\S+) \(", p.stdout + p.stderr, re.M)


def capture_command(iface: str, out: str, bpf: str | None = "udp", snaplen: int = DEFAULT_SNAPLEN,
                    tstype: str | None = None, buffer_kib: int = 16384, count: int | None = None) -> list[str]:
    """tcpdump argv writing a nanosecond pcap of ``iface`` to ``out``."""
    cmd = ["tcpdump", "-i", iface, "-w", out, "-n", "-U", "-s", str(snaplen), "-B", str(buffer_kib),
           "--time-stamp-precision=nano", "--immediate-mode", "-Z", "root"]
    if tstype:
        cmd += ["-j", tstype]
    if count:
        cmd += ["-c", str(count)]
    if bpf:
        cmd.append(bpf)
    return cmd


@dataclass
class CaptureResult:
    """What tcpdump said when it stopped."""

    path: str
    iface: str
    received: int | None = None
    dropped_by_kernel: int | None = None
    dropped_by_interface: int | None = None
    duration_s: float = 0.0
    tstype: str = "host"
    command: list[str] = field(default_factory=list)
    stderr: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "stderr"}


def parse_stats(stderr: str) -> dict[str, int | None]:
    """Counters from tcpdump's exit lines (captured / received by filter / dropped by kernel)."""
    def grab(pat: str) -> int | None:
        m = re.search(r"(\d+) packets? " + pat, stderr)
        return int(m.group(1)) if m else None

    return {"received": grab("captured"), "dropped_by_kernel": grab("dropped by kernel"),
            "dropped_by_interface": grab("dropped by interface")}


class Capture:
    """A running tcpdump: ``start()`` waits until it listens, ``stop()`` sends SIGINT and reports."""

    def __init__(self, iface: str, out: str, bpf: str | None = "udp", snaplen: int = DEFAULT_SNAPLEN,
                 tstype: str | None = None, count: int | None = None):
        if not shutil.which("tcpdump"):
            raise CaptureError("tcpdump not found (apt-get install tcpdump)")
        if tstype is None:
            tstype = "adapter_unsynced" if "adapter_unsynced" in timestamp_types(iface) else None
        self.tstype = tstype or "host"
        self.cmd = capture_command(iface, out, bpf, snaplen, tstype, count=count)
        self.iface, self.out = iface, out
        self.proc: subprocess.Popen | None = None
        self.t0 = 0.0

    def start(self, timeout: float = 5.0) -> "Capture":
        d = os.path.dirname(os.path.abspath(self.out))
        os.makedirs(d, exist_ok=True)
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.t0 = time.monotonic()
        # tcpdump prints "listening on ..." to stderr once the capture is open; the pcap header is
        # written at the same time, so wait for the file instead of reading the pipe (no deadlock)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise CaptureError(f"tcpdump exited: {err.strip().splitlines()[-1] if err.strip() else self.proc.returncode}")
            if os.path.exists(self.out) and os.path.getsize(self.out) >= 24:
                time.sleep(0.05)
                return self
            time.sleep(0.02)
        self.stop()
        raise CaptureError(f"tcpdump did not start capturing on {self.iface} within {timeout:g} s")

    def stop(self) -> CaptureResult:
        assert self.proc is not None, "capture not started"
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        stats = parse_stats(err or "")
        return CaptureResult(self.out, self.iface, duration_s=round(time.monotonic() - self.t0, 3),
                             tstype=self.tstype, command=self.cmd, stderr=err or "", **stats)

    def __enter__(self) -> "Capture":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.result = self.stop()


def capture(iface: str, out: str, duration: float, bpf: str | None = "udp", snaplen: int = DEFAULT_SNAPLEN,
            tstype: str | None = None, count: int | None = None) -> CaptureResult:
    """Capture ``iface`` into ``out`` for ``duration`` seconds (or until ``count`` frames)."""
    c = Capture(iface, out, bpf, snaplen, tstype, count).start()
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline and c.proc is not None and c.proc.poll() is None:
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
    return c.stop()
