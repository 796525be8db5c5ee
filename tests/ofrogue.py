"""A minimal OpenFlow 1.3 switch over a socket, hand-built bytes, for the switch-channel tests.

It says HELLO, answers FEATURES_REQUEST with the dpid it claims, every MULTIPART_REQUEST with an
empty reply of the same kind (port description, flows, meters, groups: "I have nothing"),
BARRIER_REQUEST and ECHO_REQUEST; it counts the FLOW_MODs it gets and notices when the
controller closes the connection. Plain TCP, or TLS with a client certificate (or none).
Enough to be a switch the controller resynchronises, or a rogue claiming another's dpid::

    peer = OfPeer(("127.0.0.1", port), dpid=1, tls=(ca, key, cert)).start()
    peer.wait_closed(5)      # True when the controller hung up on it
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from typing import Any

OFP_VERSION = 4
HELLO, ECHO_REQUEST, ECHO_REPLY, FEATURES_REQUEST, FEATURES_REPLY = 0, 2, 3, 5, 6
FLOW_MOD, MULTIPART_REQUEST, MULTIPART_REPLY, BARRIER_REQUEST, BARRIER_REPLY = 14, 18, 19, 20, 21


def header(msg_type: int, length: int, xid: int) -> bytes:
    return struct.pack("!BBHI", OFP_VERSION, msg_type, length, xid)


def features_reply(xid: int, dpid: int) -> bytes:
    body = struct.pack("!QIBB2xII", dpid, 256, 254, 0, 0x4F, 0)   # n_buffers, n_tables, aux id, caps
    return header(FEATURES_REPLY, 8 + len(body), xid) + body


def empty_multipart_reply(xid: int, mp_type: int) -> bytes:
    return header(MULTIPART_REPLY, 16, xid) + struct.pack("!HH4x", mp_type, 0)


class OfPeer:
    """One OpenFlow connection claiming ``dpid`` (a thread answers the controller until it closes).

    ``tls``: None (plain TCP) or ``(ca, key, cert)``; ``key``/``cert`` None: TLS without a client
    certificate. ``error``: why connecting or the TLS handshake failed (None if it did not).
    """

    def __init__(self, address: tuple[str, int], dpid: int, tls: tuple[Any, Any, Any] | None = None):
        self.address, self.dpid, self.tls = address, dpid, tls
        self.sock: Any = None
        self.error: BaseException | None = None
        self.flow_mods = 0
        self.features_sent = threading.Event()
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "OfPeer":
        raw = socket.create_connection(self.address, timeout=10)
        try:
            if self.tls is not None:
                ca, key, cert = self.tls
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False        # a switch checks the controller's CA, not its name
                ctx.load_verify_locations(str(ca))
                if key is not None:
                    ctx.load_cert_chain(str(cert), str(key))
                self.sock = ctx.wrap_socket(raw)
            else:
                self.sock = raw
            self.sock.sendall(header(HELLO, 8, 1))
        except (OSError, ssl.SSLError) as e:
            self.error = e
            self.closed.set()
            raw.close()
            return self
        self._thread.start()
        return self

    def _recv(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except socket.timeout:
                continue
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def _run(self) -> None:
        try:
            while True:
                version, msg_type, length, xid = struct.unpack("!BBHI", self._recv(8))
                body = self._recv(length - 8) if length > 8 else b""
                if msg_type == FEATURES_REQUEST:
                    self.sock.sendall(features_reply(xid, self.dpid))
                    self.features_sent.set()
                elif msg_type == MULTIPART_REQUEST:
                    self.sock.sendall(empty_multipart_reply(xid, struct.unpack("!H", body[:2])[0]))
                elif msg_type == BARRIER_REQUEST:
                    self.sock.sendall(header(BARRIER_REPLY, 8, xid))
                elif msg_type == ECHO_REQUEST:
                    self.sock.sendall(header(ECHO_REPLY, 8 + len(body), xid) + body)
                elif msg_type == FLOW_MOD:
                    self.flow_mods += 1
        except (EOFError, OSError, ssl.SSLError) as e:
            if self.error is None and not isinstance(e, EOFError):
                self.error = e
        finally:
            self.closed.set()

    def wait_closed(self, timeout: float) -> bool:
        return self.closed.wait(timeout)

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        if self._thread.is_alive():
            self._thread.join(5)
