"""tools.emulation.vethorder on a real veth pair of this machine (one end in a scratch namespace):
both ends go to ring (NAPI) mode, frames then arrive through the ring, and TCP segments are still
delivered one frame each (GRO on, but nothing merged), which is what a switch port must see."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from tools.emulation import vethorder

# In the namespace: a TCP sink on 10.213.0.2:5999 and a packet socket on the veth end counting the
# frames it receives and the largest; prints "frames largest" when the sender has closed.
_RECEIVER = r"""
import socket, sys, threading
tap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
tap.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)   # SO_RCVBUFFORCE: room for every frame of the stream
tap.bind((sys.argv[1], 0x0800))                   # protocol 0 here would receive nothing
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("10.213.0.2", 5999))
srv.listen()
closed = threading.Event()
def sink():
    c, _ = srv.accept()
    while c.recv(1 << 20):
        pass
    closed.set()
threading.Thread(target=sink, daemon=True).start()
print("listening", flush=True)
frames = largest = 0
tap.settimeout(0.5)
while True:
    try:
        n = len(tap.recv(1 << 17))
    except socket.timeout:
        if closed.is_set():
            break
        continue
    frames, largest = frames + 1, max(largest, n)
print(frames, largest, flush=True)
"""


@pytest.fixture
def veth_pair():
    """(root end, namespace end, namespace name) of a fresh veth pair with 10.213.0.1/2; removed after."""
    if os.geteuid() != 0:
        pytest.skip("machine lacks root: creating namespaces and veths needs it")
    if not shutil.which("ethtool"):
        pytest.skip("machine lacks ethtool")
    tag = os.getpid() % 100000
    ns, a, b = f"dnvo{tag}", f"dnvoa{tag}", f"dnvob{tag}"
    script = (f"ip netns add {ns} && ip link add {a} type veth peer name {b} && ip link set {b} netns {ns} && "
              f"ip addr add 10.213.0.1/24 dev {a} && ip link set {a} up && "
              f"ip -n {ns} addr add 10.213.0.2/24 dev {b} && ip -n {ns} link set {b} up && "
              f"ip -n {ns} link set lo up")
    try:
        res = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, res.stderr
        yield a, b, ns
    finally:
        subprocess.run(["ip", "link", "del", a], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def test_both_ends_deliver_through_their_ring_and_tcp_is_not_merged(veth_pair):
    a, b, ns = veth_pair
    parked = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "60"])   # a pid in the namespace
    rx = None
    try:
        time.sleep(0.2)
        done = vethorder.configure([a], [(parked.pid, b)])
        assert done.failed == [], done.describe()
        assert done.ends == [a, f"{b}@{parked.pid}"]
        before = vethorder.ring_frames(b, parked.pid)

        rx = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", _RECEIVER, b],
                              stdout=subprocess.PIPE, text=True)
        assert rx.stdout.readline().strip() == "listening"
        with socket.create_connection(("10.213.0.2", 5999), timeout=5) as s:
            s.sendall(b"x" * 4_000_000)
        frames, largest = map(int, rx.stdout.readline().split())
        # the namespace end received the TCP stream through its ring, one MTU-sized frame per segment
        assert frames >= 4_000_000 // 1500, (frames, largest, vethorder.ring_frames(b, parked.pid) - before)
        assert vethorder.ring_frames(b, parked.pid) - before >= frames
        assert largest <= 1514, f"GRO merged segments into a {largest}-byte frame"
        # and the root end (the ACKs came back to it) through its own
        assert vethorder.ring_frames(a) >= 1
    finally:
        for proc in (rx, parked):
            if proc is not None:
                proc.kill()
                proc.wait()


def test_an_end_that_cannot_is_reported_not_hidden():
    if os.geteuid() != 0:
        pytest.skip("machine lacks root")
    done = vethorder.configure(["dnvo-missing0"], [])
    assert done.ends == [] and done.failed == ["dnvo-missing0"]
    assert "could not" in done.describe() and "dnvo-missing0" in done.describe()
    assert vethorder.ring_frames("dnvo-missing0") is None
