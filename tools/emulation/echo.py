"""ICMP echo that waits for the reply to every probe: ``python3 -S echo.py DST COUNT INTERVAL_S WAIT_S``
sends COUNT echo requests to DST, INTERVAL_S apart, and waits up to WAIT_S after the last one until
each is answered; it prints one JSON line ``{"dst", "sent", "rtt_ms": {"SEQ": ms, ...}, "error"}``.

Why not iputils ``ping -c N -W T``: ``-W`` only applies while no reply has come at all; once one has,
ping stops two of its slowest round trips after the last probe (``man ping``). A last reply held up
longer than that (a closed 802.1Qbv gate, a probe train whose phase slips into the next cycle, a
VM's pause) was printed as a lost packet. ``ping -w DEADLINE`` waits, but keeps probing past N and
exits when N replies of any probes came, so a late reply can still be missed. This probe counts
the answer to each of its own probes by sequence number, and a probe is lost only if its reply did
not come within WAIT_S of the last probe.

Standard library only, so it starts fast in an emulated host's shell (``python3 -S``) and in the
VM's guest; needs a raw socket (root), as emulation does. ``tools.emulation.network.parse_echo``
reads its output. Its ``checksum`` and ``request`` are ``controller.dataplane.frames``'
``inet_checksum`` and ``icmp_echo`` written again on purpose: that module imports numpy (0.4 s per
run here, far more in the TCG guest) and needs the project's environment, which ``-S`` leaves out;
``tests/test_echo.py`` checks the two agree byte for byte.
"""

from __future__ import annotations

import json
import os
import select
import socket
import struct
import sys
import time

USAGE = "usage: echo.py DST COUNT INTERVAL_S WAIT_S"
ECHO_REQUEST, ECHO_REPLY = 8, 0
#: Linux's SO_TIMESTAMPNS (asm-generic; Python's socket module does not name it): the kernel stamps
#: each received packet, so a round trip does not include this process's wake-up, as with iputils
SO_TIMESTAMPNS = 35
PAYLOAD = bytes(range(56))          # iputils ping's default size: 84-byte IP packets


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def request(ident: int, seq: int) -> bytes:
    """An ICMP echo request with ``ident`` and ``seq``."""
    head = struct.pack("!BBHHH", ECHO_REQUEST, 0, 0, ident, seq)
    return struct.pack("!BBHHH", ECHO_REQUEST, 0, checksum(head + PAYLOAD), ident, seq) + PAYLOAD


def reply_seq(packet: bytes, ident: int) -> int | None:
    """The sequence number of an echo reply to ``ident`` in a raw IPv4 ``packet``, else None."""
    ihl = (packet[0] & 0x0F) * 4
    if len(packet) < ihl + 8:
        return None
    kind, _code, _sum, rid, seq = struct.unpack("!BBHHH", packet[ihl:ihl + 8])
    return seq if kind == ECHO_REPLY and rid == ident else None


def received_at(ancillary: list[tuple[int, int, bytes]]) -> float:
    """The kernel's receive stamp (CLOCK_REALTIME, s) in a packet's ancillary data; now if absent."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            return sec + nsec / 1e9
    return time.time()


def probe(dst: str, count: int, interval_s: float, wait_s: float) -> dict:
    """Send the probes and collect the round trips (ms) of the answered ones, by sequence number."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    ident = os.getpid() & 0xFFFF
    sent_at: dict[int, float] = {}
    rtt_ms: dict[int, float] = {}
    error = None
    next_send = time.monotonic()
    deadline = None
    try:
        while True:
            now = time.monotonic()
            if len(sent_at) < count and now >= next_send:
                seq = len(sent_at) + 1
                sent_at[seq] = time.time()          # the clock the kernel's receive stamps use
                try:
                    sock.sendto(request(ident, seq), (dst, 0))
                except OSError as e:            # no route, unreachable: the probe is sent and lost
                    error = error or f"{e.strerror or e}"
                next_send += interval_s
                if seq == count:
                    deadline = time.monotonic() + wait_s
                continue
            if len(rtt_ms) == count or (deadline is not None and now >= deadline):
                break
            until = next_send if deadline is None else deadline
            ready, _, _ = select.select([sock], [], [], max(0.0, until - now))
            if not ready:
                continue
            packet, ancillary, _flags, (src, _) = sock.recvmsg(4096, socket.CMSG_SPACE(16))
            got = received_at(ancillary)
            seq = reply_seq(packet, ident)
            if src == dst and seq in sent_at and seq not in rtt_ms:
                rtt_ms[seq] = (got - sent_at[seq]) * 1000.0
    finally:
        sock.close()
    return {"dst": dst, "sent": len(sent_at), "rtt_ms": {str(k): round(v, 3) for k, v in sorted(rtt_ms.items())},
            "error": error}


def main(argv: list[str]) -> int:
    try:
        dst = socket.inet_ntoa(socket.inet_aton(argv[0]))
        count, interval_s, wait_s = int(argv[1]), float(argv[2]), float(argv[3])
        if len(argv) != 4 or count < 1 or interval_s < 0 or wait_s < 0:
            raise ValueError
    except (IndexError, ValueError, OSError):
        print(USAGE, file=sys.stderr)
        return 2
    print(json.dumps(probe(dst, count, interval_s, wait_s)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
