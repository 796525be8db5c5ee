"""tools.emulation.txbuffer: finding ovs-vswitchd's transmit socket in ``ss`` output, and setting
another process's socket send buffer from outside (pidfd_getfd + SO_SNDBUFFORCE) and back, on a
real process of this machine holding the same kind of socket."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tools.emulation import txbuffer

SS = """Netid State  Recv-Q Send-Q Local Address:Port Peer Address:PortProcess
p_raw UNCONN 0      0             [0]:s1-eth2          *     users:(("ovs-vswitchd",pid=15615,fd=44)) skmem:(r0,rb212992,t0,tb212992,f0,w0,o0,bl0,d0)
p_raw UNCONN 0      0                [0]:*                *     users:(("ovs-vswitchd",pid=15615,fd=69)) skmem:(r0,rb212992,t0,tb212992,f0,w0,o0,bl0,d0)
"""

_HOLDER = r"""
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)      # what OVS transmits through
print(s.fileno(), flush=True)
for line in sys.stdin:                                      # each line: report the send buffer
    print(s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF), flush=True)
"""


def test_finds_the_unbound_socket_not_a_ports():
    assert txbuffer.find_tx_socket(SS) == (15615, 69, 212992)
    assert txbuffer.find_tx_socket(SS.splitlines()[1]) is None


def test_sets_and_restores_another_processs_send_buffer():
    if os.geteuid() != 0:
        pytest.skip("machine lacks root: AF_PACKET sockets and SO_SNDBUFFORCE need it")
    if not hasattr(os, "pidfd_open"):
        pytest.skip("machine lacks pidfd_open (Linux 5.3 / Python 3.9)")
    p = subprocess.Popen([sys.executable, "-c", _HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def sndbuf() -> int:
        p.stdin.write("?\n")
        p.stdin.flush()
        return int(p.stdout.readline())

    try:
        fd = int(p.stdout.readline())
        before = sndbuf()
        after = txbuffer._set_sndbuf(p.pid, fd, txbuffer.TX_BUFFER_BYTES)
        assert after == txbuffer.TX_BUFFER_BYTES == sndbuf() > before
        txbuffer._set_sndbuf(p.pid, fd, before)
        assert sndbuf() == before
    finally:
        p.kill()
        p.wait()


def test_widen_says_why_it_did_nothing_without_a_daemon(monkeypatch):
    monkeypatch.setattr(txbuffer, "PIDFILES", ("/nonexistent/ovs-vswitchd.pid",))
    w = txbuffer.widen(wait_s=0)
    assert w.pid is None and w.reason == "no ovs-vswitchd pid file"
    txbuffer.restore(w)     # nothing to restore


def test_describe_says_what_changed_or_why_not():
    assert txbuffer.Widened(1, 69, 212992, 16777216).describe() == "OVS transmit buffer 212992 -> 16777216 B"
    assert txbuffer.Widened(reason="no ovs-vswitchd pid file").describe() == \
        "OVS transmit buffer ? B (no ovs-vswitchd pid file)"
