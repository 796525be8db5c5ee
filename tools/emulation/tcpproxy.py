"""A loopback TCP relay that can be cut: how the chaos scenarios partition one controller from etcd.

Every controller of an emulated cluster reaches each etcd member through its own ``TcpRelay``
(``NetworkStack(cluster=N, etcd_proxies=True)``). ``cut()`` turns the relay into a black hole, as
a partition does: connections already open stop carrying bytes in both directions and new ones
are accepted but never answered, so the controller's calls time out (they are not refused: a
refusal would tell the controller more than a real partition does). ``heal()`` closes the
stalled connections and forwards again.

Threads, not asyncio: a relay carries a few HTTP/1.1 connections of one controller.
"""

from __future__ import annotations

import contextlib
import socket
import threading

__all__ = ["TcpRelay"]


class TcpRelay:
    """Listen on ``127.0.0.1:port`` (a free one) and relay to ``target`` (``HOST:PORT``)."""

    def __init__(self, target: str):
        host, _, port = target.rpartition(":")
        self.target = (host, int(port))
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._cut = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept, name=f"relay-{self.port}", daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cut(self) -> None:
        """From now on nothing passes, either way (connections stay open, silent)."""
        self._cut.set()

    def heal(self) -> None:
        """Close the connections the cut stalled and relay again."""
        self._drop_all()
        self._cut.clear()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._drop_all()
        self._thread.join(timeout=2)

    def _drop_all(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, set()
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def _keep(self, *socks: socket.socket) -> None:
        with self._lock:
            self._socks.update(socks)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut.is_set():
                self._keep(client)              # accepted, never answered
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
                upstream.settimeout(None)
            except OSError:
                with contextlib.suppress(OSError):
                    client.close()
                continue
            self._keep(client, upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                while self._cut.is_set():        # a partition: hold the bytes, never deliver them
                    if self._closed.wait(0.05) or src.fileno() < 0:
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
