"""Give userspace Open vSwitch's one transmit socket a buffer that covers its ports' queues.

Why: with the userspace datapath, ``ovs-vswitchd`` sends every frame, on every port of every
bridge, through ONE non-blocking ``AF_PACKET`` socket (``af_packet_sock()`` in OVS's
``lib/netdev-linux.c``). A frame waiting in a port's queueing discipline (the emulation's HTB
classes, netem) is charged to that socket's send buffer until it leaves, and the buffer is the
host's ``net.core.wmem_default`` as it was when the daemon first sent: 208 KiB here. When best
effort queues on a few congested ports fill it, *every* send fails with ``EAGAIN`` and OVS drops
the frame, whatever its port or priority (``ovs-vswitchd.log``: "error sending Ethernet packet on
s32-eth5: Resource temporarily unavailable"): reserved frames were lost that way in the demo (94
and 705 of 3,000 probes in one run) with no per-port counter to show it. A real switch has a
buffer per port; here each port's queue limit (its qdisc), not one shared socket, must be what
drops best effort.

So, for a run on the userspace datapath, ``widen()`` sets that socket's send buffer to
``TX_BUFFER_BYTES`` (16 MiB: more than the queues the runs' congested ports hold) from outside the
daemon: ``pidfd_getfd`` (Linux 5.6) lends us the socket, ``SO_SNDBUFFORCE`` (root) sets it, and
``restore()`` puts the old size back when the run ends. Nothing else of the host changes. The
socket exists once the daemon has sent its first frame (the controller's LLDP does that right
after the switches connect), so ``widen()`` waits for it a little.
"""

from __future__ import annotations

import ctypes
import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

#: the send buffer the transmit socket gets for a run (the kernel stores twice what is asked)
TX_BUFFER_BYTES = 16 * 1024 * 1024
PIDFILES = ("/var/run/openvswitch/ovs-vswitchd.pid", "/run/openvswitch/ovs-vswitchd.pid")
SYS_PIDFD_GETFD = 438          # the same number on every architecture (since Linux 5.6)
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)

#: the daemon's unbound (protocol 0, no interface) packet socket in ``ss -0 -a -m -p -n`` output
_TX_SOCKET = re.compile(r"\[0\]:\*\s+\*\s+users:\(\(\"ovs-vswitchd\",pid=(\d+),fd=(\d+)\)\).*?\btb(\d+)", re.S)


@dataclass
class Widened:
    """What ``widen`` did: the daemon's pid and socket fd, the send buffer before and after
    (bytes, as ``ss`` shows them), or why it did nothing (``reason``)."""
    pid: int | None = None
    fd: int | None = None
    before: int | None = None
    after: int | None = None
    reason: str = ""

    def describe(self) -> str:
        """'OVS transmit buffer 212992 -> 16777216 B', or the size and why it is unchanged."""
        if not self.reason:
            return f"OVS transmit buffer {self.before} -> {self.after} B"
        size = self.after or self.before
        return f"OVS transmit buffer {size if size is not None else '?'} B ({self.reason})"


def find_tx_socket(ss_text: str) -> tuple[int, int, int] | None:
    """(pid, fd, send buffer bytes) of ovs-vswitchd's transmit socket in ``ss -0 -a -m -p -n`` text."""
    m = _TX_SOCKET.search(ss_text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def _ss() -> str:
    try:
        return subprocess.run(["ss", "-0", "-a", "-m", "-p", "-n"], capture_output=True, text=True,
                              timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _daemon_pid() -> int | None:
    for f in PIDFILES:
        try:
            return int(Path(f).read_text().strip())
        except (OSError, ValueError):
            continue
    return None


def _set_sndbuf(pid: int, fd: int, nbytes: int) -> int:
    """Set the send buffer of ``pid``'s socket ``fd`` to ``nbytes`` (as stored); returns what the
    kernel then reports. Raises OSError when the kernel refuses."""
    pidfd = os.pidfd_open(pid)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        mine = libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
        if mine < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"pidfd_getfd: {os.strerror(err)}")
    finally:
        os.close(pidfd)
    s = socket.socket(fileno=mine)
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, max(1, nbytes // 2))   # the kernel doubles it
        return s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    finally:
        s.close()       # our duplicate only: the daemon's fd stays open


def widen(nbytes: int = TX_BUFFER_BYTES, wait_s: float = 10.0) -> Widened:
    """Widen ovs-vswitchd's transmit socket to ``nbytes`` (never narrower than it is); waits up to
    ``wait_s`` for the socket to exist."""
    pid = _daemon_pid()
    if pid is None:
        return Widened(reason="no ovs-vswitchd pid file")
    deadline = time.monotonic() + wait_s
    found = find_tx_socket(_ss())
    while found is None and time.monotonic() < deadline:
        time.sleep(0.2)
        found = find_tx_socket(_ss())
    if found is None:
        return Widened(pid=pid, reason=f"ovs-vswitchd has no transmit socket after {wait_s:g} s")
    pid, fd, before = found
    if before >= nbytes:
        return Widened(pid, fd, before, before, reason="already wide enough")
    try:
        after = _set_sndbuf(pid, fd, nbytes)
    except OSError as e:
        return Widened(pid, fd, before, before, reason=f"not widened: {e}")
    return Widened(pid, fd, before, after)


def restore(w: Widened) -> None:
    """Give the socket its old send buffer back (nothing when ``widen`` changed nothing)."""
    if w.pid is None or w.fd is None or w.before is None or w.after == w.before:
        return
    found = find_tx_socket(_ss())
    if found is None or found[:2] != (w.pid, w.fd):      # the daemon restarted meanwhile
        return
    try:
        _set_sndbuf(w.pid, w.fd, w.before)
    except OSError:
        pass
