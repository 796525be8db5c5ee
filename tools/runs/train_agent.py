"""One data-centre site of an emulated training job: compute pauses and a real ring all-reduce.

Run one agent per site (inside its Mininet host); rank r listens for its ring predecessor and
connects to its successor over TCP. Each iteration:

1. forward: sleep ``forward_s``;
2. backward: sleep ``backward_s`` while the ring all-reduce of the first ``overlap`` share of the
   gradient runs concurrently (buckets are ready during backward);
3. the late ``1 - overlap`` share is all-reduced after backward ends;
4. the iteration ends when this site's all-reduce is complete.

The ring all-reduce is the bandwidth-optimal one: 2(K-1) synchronous steps (reduce-scatter, then
all-gather); in each step a site sends one chunk of ``volume / (2(K-1))`` bytes to its successor
and receives one from its predecessor. Data is real bytes on the wire; the arithmetic is not done
(the network is what we measure). Iteration times are written as JSON lines to ``--out``.

Usage (one per host)::

    python -m tools.runs.train_agent --rank 0 --peers 10.0.1.1,10.0.1.2,10.0.1.3 \\
        --volume-bytes 3750000 --forward-s 0.3 --backward-s 0.6 --overlap 0.95 \\
        --iterations 20 --out /tmp/rank0.jsonl
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time

CHUNK = 1 << 16
_ZEROS = bytes(CHUNK)


def _send_bytes(sock: socket.socket, n: int) -> None:
    view = memoryview(_ZEROS)
    while n > 0:
        k = min(n, CHUNK)
        sock.sendall(view[:k])
        n -= k


def _recv_bytes(sock: socket.socket, n: int, buf: bytearray) -> None:
    view = memoryview(buf)
    while n > 0:
        got = sock.recv_into(view[: min(n, len(buf))])
        if got == 0:
            raise ConnectionError("ring peer closed the connection")
        n -= got


class Ring:
    """TCP connections to the ring successor (send) and from the predecessor (receive)."""

    def __init__(self, rank: int, peers: list[tuple[str, int]], timeout_s: float = 60.0):
        self.rank, self.k = rank, len(peers)
        listener = socket.create_server(("0.0.0.0", peers[rank][1]))
        listener.settimeout(timeout_s)
        succ, port = peers[(rank + 1) % self.k]
        deadline = time.monotonic() + timeout_s
        self.out: socket.socket | None = None
        accepted: list[socket.socket] = []

        def accept() -> None:
            conn, _ = listener.accept()
            accepted.append(conn)

        t = threading.Thread(target=accept, daemon=True)
        t.start()
        while self.out is None:
            try:
                self.out = socket.create_connection((succ, port), timeout=2)
            except OSError:
                if time.monotonic() > deadline:
                    raise ConnectionError(f"rank {rank}: cannot reach successor {succ}:{port}") from None
                time.sleep(0.1)
        t.join(timeout_s)
        listener.close()
        if not accepted:
            raise ConnectionError(f"rank {rank}: predecessor never connected")
        self.inp = accepted[0]
        for s in (self.out, self.inp):
            s.settimeout(timeout_s)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray(CHUNK)

    def barrier(self) -> None:
        """A token around the ring twice: every site has reached this point when it returns."""
        for _ in range(2):
            if self.rank == 0:
                self.out.sendall(b"B")
                _recv_bytes(self.inp, 1, self._buf)
            else:
                _recv_bytes(self.inp, 1, self._buf)
                self.out.sendall(b"B")

    def allreduce(self, volume_bytes: int) -> None:
        """Ring all-reduce moving ``volume_bytes`` out of this site in 2(K-1) synchronous steps."""
        steps = 2 * (self.k - 1)
        chunk = max(1, volume_bytes // steps)
        for _ in range(steps):
            sender = threading.Thread(target=_send_bytes, args=(self.out, chunk))
            sender.start()
            _recv_bytes(self.inp, chunk, self._buf)
            sender.join()

    def close(self) -> None:
        for s in (self.out, self.inp):
            try:
                s.close()
            except OSError:
                pass


def run(args: argparse.Namespace) -> int:
    peers = []
    for item in args.peers.split(","):
        host, _, port = item.partition(":")
        peers.append((host, int(port) if port else args.port))
    if not 0 <= args.rank < len(peers) or len(peers) < 2:
        print("train_agent: --rank must index --peers (at least two)", file=sys.stderr)
        return 2
    ring = Ring(args.rank, peers, args.timeout)
    early = int(args.volume_bytes * args.overlap)
    late = args.volume_bytes - early
    out = open(args.out, "w") if args.out else sys.stdout
    try:
        ring.barrier()
        for it in range(args.iterations):
            t0 = time.perf_counter()
            time.sleep(args.forward_s)
            backward = threading.Thread(target=time.sleep, args=(args.backward_s,))
            backward.start()
            ring.allreduce(early)
            overlapped_done = time.perf_counter() - t0
            backward.join()
            if late:
                ring.allreduce(late)
            t1 = time.perf_counter()
            out.write(json.dumps({"rank": args.rank, "iteration": it, "iteration_s": t1 - t0,
                                  "overlapped_comm_done_s": overlapped_done,
                                  "compute_s": args.forward_s + args.backward_s}) + "\n")
            out.flush()
            ring.barrier()  # iterations start together, as a synchronous data-parallel job's do
    finally:
        ring.close()
        if out is not sys.stdout:
            out.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.runs.train_agent", description=__doc__.split("\n")[0])
    p.add_argument("--rank", type=int, required=True)
    p.add_argument("--peers", required=True, help="comma-separated IP[:PORT] of all sites, in ring order")
    p.add_argument("--port", type=int, default=5301)
    p.add_argument("--volume-bytes", type=int, required=True, help="bytes this site sends per iteration")
    p.add_argument("--forward-s", type=float, required=True)
    p.add_argument("--backward-s", type=float, required=True)
    p.add_argument("--overlap", type=float, default=0.95)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a peer")
    p.add_argument("--out", help="JSON lines file (default stdout)")
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
