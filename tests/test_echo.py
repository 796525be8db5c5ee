"""tools/emulation/echo.py (with network.echo_command / parse_echo, what ``Emulation.ping`` runs): a
probe whose reply comes late is counted as answered, a probe never answered as lost, on a real
veth pair.

The echo replies come from a small responder in the far namespace (the kernel's own replies are
turned off there), so one reply can be held for a second, or never sent: what a VM's pause or a
closed gate does to a probe. The same run shows why the tool exists: iputils ``ping -c N -W T``
stops two round trips after its last probe and calls the late last reply lost.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from controller.dataplane import frames
from tools.emulation import echo
from tools.emulation.network import echo_command, parse_echo, parse_ping

A, B = "echotest-a", "echotest-b"
IP_A, IP_B = "10.216.0.1", "10.216.0.2"
MAC_A, MAC_B = "02:00:0a:d8:00:01", "02:00:0a:d8:00:02"

RESPONDER = r'''
"""Answer ICMP echo requests on one interface; hold the replies to some sequence numbers."""
import socket, sys, time
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether

dev, hold = sys.argv[1], {int(k): float(v) for k, v in (x.split(":") for x in sys.argv[2].split(",") if x)}
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind((dev, 0))
s.settimeout(0.01)
due = []                                  # (when, frame)
print("ready", flush=True)
while True:
    now = time.monotonic()
    for when, frame in [d for d in due if d[0] <= now]:
        s.send(frame)
        due.remove((when, frame))
    try:
        data = s.recv(2048)
    except socket.timeout:
        continue
    p = Ether(data)
    if ICMP not in p or p[ICMP].type != 8:
        continue
    reply = Ether(src=p.dst, dst=p.src) / IP(src=p[IP].dst, dst=p[IP].src) / \
        ICMP(type=0, id=p[ICMP].id, seq=p[ICMP].seq) / p[ICMP].payload
    wait = hold.get(p[ICMP].seq, 0.0)
    if wait >= 0:                         # a negative hold: never answered
        due.append((time.monotonic() + wait, bytes(reply)))
'''


@pytest.fixture
def pair(tmp_path: Path):
    """Two scratch namespaces joined by a veth with static neighbours; the far end answers pings from
    the responder, not the kernel. Removed afterwards, on failure too."""
    if os.geteuid() != 0:
        pytest.skip("machine lacks root: namespaces need it")
    script = tmp_path / "responder.py"
    script.write_text(RESPONDER)
    setup = (f"ip netns add {A} && ip netns add {B} && "
             f"ip -n {A} link add ea address {MAC_A} type veth peer name eb address {MAC_B} netns {B} && "
             f"ip -n {A} addr add {IP_A}/24 dev ea && ip -n {B} addr add {IP_B}/24 dev eb && "
             f"ip -n {A} neigh add {IP_B} lladdr {MAC_B} dev ea nud permanent && "
             f"ip -n {B} neigh add {IP_A} lladdr {MAC_A} dev eb nud permanent && "
             f"ip netns exec {B} sysctl -qw net.ipv4.icmp_echo_ignore_all=1 && "
             f"ip -n {A} link set ea up && ip -n {B} link set eb up")
    procs: list[subprocess.Popen] = []

    def responder(hold: str) -> None:
        for p in procs:
            p.kill()
            p.wait()
        procs.clear()
        p = subprocess.Popen(["ip", "netns", "exec", B, sys.executable, str(script), "eb", hold],
                             stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
        procs.append(p)
        assert p.stdout.readline().strip() == "ready"

    try:
        res = subprocess.run(setup, shell=True, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        yield responder
    finally:
        for p in procs:
            p.kill()
            p.wait()
        subprocess.run(f"ip netns del {A}; ip netns del {B}", shell=True, capture_output=True)
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert A not in left and B not in left


def _ping(command: str) -> tuple[str, float]:
    t0 = time.monotonic()
    out = subprocess.run(f"ip netns exec {A} {command}", shell=True, capture_output=True, text=True).stdout
    return out, time.monotonic() - t0


def test_a_late_last_reply_is_answered_not_lost(pair):
    pair("3:1.0")                                   # the reply to the last probe comes 1 s late
    out, _ = _ping(f"ping -n -c 3 -i 0.2 -W 3 {IP_B}")
    plain = parse_ping("a", "b", out)
    assert (plain.sent, plain.received) == (3, 2), out   # iputils gave up on it: why echo.py exists

    out, took = _ping(echo_command(IP_B, 3, 0.2, 3.0))
    r = parse_echo("a", "b", out)
    assert (r.sent, r.received, r.missing, r.ok) == (3, 3, [], True), out
    assert r.rtts_ms is not None and r.rtts_ms[2] >= 1000 > max(r.rtts_ms[:2]), r.rtts_ms
    assert took < 3 * 0.2 + 3.0                      # it returns once every probe is answered


def test_a_middle_reply_overtaken_by_later_ones_is_answered(pair):
    pair("2:1.5")                                   # probe 2 answered after probe 3, well after
    out, _ = _ping(echo_command(IP_B, 3, 0.2, 3.0))
    r = parse_echo("a", "b", out)
    assert (r.received, r.missing) == (3, []), out
    assert r.rtts_ms is not None and r.rtts_ms[1] >= 1500, r.rtts_ms


def test_a_probe_never_answered_is_lost(pair):
    pair("2:-1")                                     # the second probe is never answered
    out, took = _ping(echo_command(IP_B, 3, 0.2, 1.0))
    r = parse_echo("a", "b", out)
    assert (r.sent, r.received, r.missing, r.ok) == (3, 2, [2], False), out
    assert r.loss_pct == pytest.approx(100 / 3)
    assert took >= 0.4 + 1.0                         # it waited the whole wait after the last probe


def test_no_route_is_every_probe_lost_with_the_reason(pair):
    out, took = _ping(echo_command("10.217.0.9", 2, 0.1, 0.3))
    r = parse_echo("a", "b", out)
    assert (r.sent, r.received, r.missing, r.ok) == (2, 0, [1, 2], False), out
    assert "unreachable" in json.loads(out)["error"].lower(), out


def test_the_packets_are_real_icmp_and_bad_arguments_are_one_line():
    from scapy.layers.inet import ICMP, IP

    raw = echo.request(0x1234, 7)
    assert raw == frames.icmp_echo(0x1234, 7, echo.PAYLOAD)       # the twin it writes again (echo.py's doc)
    for data in (b"", b"\x01", raw, raw + b"\xff"):
        assert echo.checksum(data) == frames.inet_checksum(data)
    parsed = ICMP(raw)
    assert (parsed.type, parsed.id, parsed.seq, len(raw)) == (8, 0x1234, 7, 64)
    assert parsed.chksum == ICMP(bytes(ICMP(type=8, id=0x1234, seq=7) / echo.PAYLOAD)).chksum
    reply = bytes(IP(src="10.0.0.2", dst="10.0.0.1") / ICMP(type=0, id=0x1234, seq=7) / echo.PAYLOAD)
    assert echo.reply_seq(reply, 0x1234) == 7 and echo.reply_seq(reply, 0x1235) is None
    res = subprocess.run([sys.executable, "-S", str(echo.__file__), "10.0.0.1", "three", "0.2", "1"],
                         capture_output=True, text=True)
    assert (res.returncode, res.stdout, res.stderr) == (2, "", echo.USAGE + "\n")


def test_parse_echo_reads_the_last_json_line_and_counts_nothing_sent_without_one():
    out = 'noise\n{"dst": "10.0.0.2", "sent": 3, "rtt_ms": {"3": 1200.0, "1": 0.5}, "error": null}\n'
    r = parse_echo("a", "b", out)
    assert (r.sent, r.received, r.missing, r.rtts_ms) == (3, 2, [2], [0.5, 1200.0])
    assert (r.rtt_min_ms, r.rtt_max_ms, r.rtt_avg_ms) == (0.5, 1200.0, 600.25)
    assert parse_echo("a", "b", "bash: python3: command not found").ok is False
