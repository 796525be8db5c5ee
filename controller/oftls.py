"""The OpenFlow TLS listener with a handshake deadline, and every failed handshake reported.

os-ken serves OpenFlow over TLS with ``os_ken.lib.hub.StreamServer``: it accepts a connection,
wraps it with the server's ``SSLContext`` (client certificate required, signed by the CA) and
hands it to the datapath. A failed handshake (no certificate, one from another CA, not TLS at all)
escapes as an uncaught exception in the connection's thread: logged without the peer's address,
never audited, never counted. And a peer that connects and says nothing holds its thread for
ever, since the handshake has no deadline.

``install(on_refused, handshake_timeout)`` puts ``AuditedStreamServer`` in the place of the
``StreamServer`` that ``os_ken.controller.controller`` imported (it builds its listener from that
name when its OpenFlow controller starts). It is
the same listener, with the same context settings, plus a deadline on the handshake; each failure
closes the socket and calls ``on_refused(address, detail)``, except a peer that closed or reset
the connection itself (``peer_went_away``: an INFO line, no event). A connection that passes is
handed to os-ken as ``SerializedTls``: one OpenSSL call at a time from os-ken's two threads. Call it before os-ken starts its
OpenFlow controller. The launcher reports each failure as the security event
``switch_refused``, reason ``tls_handshake`` (audit log, ``/v1/events``, metric).
"""

from __future__ import annotations

import contextlib
import logging
import select
import ssl
import threading
from typing import Any, Callable

from os_ken.base import app_manager  # noqa: F401 - before os_ken.controller.* (circular import otherwise)
from os_ken.controller import controller as of_controller
from os_ken.lib import hub

__all__ = ["AuditedStreamServer", "SerializedTls", "install", "handshake_detail", "peer_went_away"]

_LOG = logging.getLogger("detnet.oftls")

#: seconds a peer has to complete the TLS handshake after connecting
HANDSHAKE_TIMEOUT_S = 10.0


def peer_went_away(err: BaseException) -> bool:
    """Whether a failed handshake is the peer closing or resetting the connection, not a refusal:
    Open vSwitch does that when it reconfigures a bridge mid-connect (seen in CI at every
    emulation start). No certificate was judged, so it is no security event (nor would a real
    switch's reconnect be); a peer that stays silent is (the deadline)."""
    return isinstance(err, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionError, EOFError))


def handshake_detail(err: BaseException) -> str:
    """One short line saying why a handshake failed (OpenSSL's reason where there is one)."""
    if isinstance(err, TimeoutError):
        return "no TLS handshake within the deadline"
    if isinstance(err, ssl.SSLError):
        return str(err.reason or err.strerror or err).lower().replace("_", " ")
    if isinstance(err, (ConnectionError, EOFError)):
        return "the peer closed the connection during the TLS handshake"
    return (getattr(err, "strerror", None) or str(err) or type(err).__name__).lower()


class SerializedTls:
    """One TLS connection used by os-ken's two threads per switch, one OpenSSL call at a time.

    os-ken reads a datapath's socket in one thread (``_recv_loop``) and writes it in another
    (``_send_loop``). On plain TCP that is fine; on an ``ssl.SSLSocket`` both threads would drive
    the same OpenSSL connection at once, which OpenSSL does not allow. Under load (4,096
    reservations onto 40 switches in CI) sessions broke and Open vSwitch reconnected mid-program.
    Here the socket is non-blocking and every ``recv``/``send`` runs under one lock; a thread that
    must wait for the network waits in ``select`` without the lock. os-ken's ``settimeout`` is
    ignored (the socket stays non-blocking; ``recv`` never times out, as with os-ken's default)."""

    WAIT_S = 0.5      # longest select wait: bounds the delay of data OpenSSL buffered during a send

    def __init__(self, tls: ssl.SSLSocket):
        self._tls = tls
        self._lock = threading.Lock()
        tls.setblocking(False)

    def recv(self, n: int) -> bytes:
        while True:
            with self._lock:
                try:
                    return self._tls.recv(n)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
            select.select([self._tls], [], [], self.WAIT_S)

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            with self._lock:
                try:
                    sent = self._tls.send(view)
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    sent = 0
            if sent:
                view = view[sent:]
            else:
                select.select([], [self._tls], [], self.WAIT_S)

    def settimeout(self, _timeout: Any) -> None:
        """Kept non-blocking (see the class doc)."""

    def __getattr__(self, name: str) -> Any:     # close, shutdown, setsockopt, getpeercert, fileno...
        return getattr(self._tls, name)


class AuditedStreamServer(hub.StreamServer):
    """``hub.StreamServer`` whose TLS handshakes have a deadline and whose failures are reported."""

    #: set by ``install``
    on_refused: Callable[[Any, str], None] = staticmethod(lambda address, detail: None)
    handshake_timeout: float = HANDSHAKE_TIMEOUT_S

    def __init__(self, listen_info: Any, handle: Any = None, backlog: Any = None, spawn: str = "default",
                 **ssl_args: Any):
        super().__init__(listen_info, handle, backlog, spawn)      # the plain listener
        if not ssl_args:
            return
        # the context as os-ken's StreamServer builds it from the same arguments
        ctx: ssl.SSLContext = ssl_args.pop("ssl_ctx")
        ctx.load_cert_chain(ssl_args.pop("certfile"), ssl_args.pop("keyfile"))
        if "cert_reqs" in ssl_args:
            ctx.verify_mode = ssl_args.pop("cert_reqs")
        if "ca_certs" in ssl_args:
            ctx.load_verify_locations(ssl_args.pop("ca_certs"))
        if ssl_args.get("ciphers"):
            ctx.set_ciphers(ssl_args.pop("ciphers"))
        ssl_args.pop("ciphers", None)
        ssl_args.setdefault("server_side", True)
        self._ctx, self._wrap_args, self._datapath = ctx, ssl_args, handle
        self.handle = self._handshake_then_handle

    def _handshake_then_handle(self, sock: Any, address: Any) -> None:
        try:
            sock.settimeout(self.handshake_timeout)
            tls = self._ctx.wrap_socket(sock, **self._wrap_args)
            tls.settimeout(None)        # the datapath sets its own (os-ken's socket_timeout)
        except (ssl.SSLError, OSError, EOFError) as e:
            with contextlib.suppress(OSError):
                sock.close()
            if peer_went_away(e):
                _LOG.info("OpenFlow connection from %s closed by the peer during the TLS handshake", address)
            else:
                type(self).on_refused(address, handshake_detail(e))
            return
        self._datapath(SerializedTls(tls), address)


def install(on_refused: Callable[[Any, str], None], handshake_timeout: float = HANDSHAKE_TIMEOUT_S) -> None:
    """Make os-ken listen with ``AuditedStreamServer``, reporting failed handshakes to ``on_refused``."""
    AuditedStreamServer.on_refused = staticmethod(on_refused)
    AuditedStreamServer.handshake_timeout = float(handshake_timeout)
    of_controller.StreamServer = AuditedStreamServer
