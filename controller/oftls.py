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
closes the socket and calls ``on_refused(address, detail)``. Call it before os-ken starts its
OpenFlow controller. The launcher reports each failure as the security event
``switch_refused``, reason ``tls_handshake`` (audit log, ``/v1/events``, metric).
"""

from __future__ import annotations

import contextlib
import ssl
from typing import Any, Callable

from os_ken.base import app_manager  # noqa: F401 - before os_ken.controller.* (circular import otherwise)
from os_ken.controller import controller as of_controller
from os_ken.lib import hub

__all__ = ["AuditedStreamServer", "install", "handshake_detail"]

#: seconds a peer has to complete the TLS handshake after connecting
HANDSHAKE_TIMEOUT_S = 10.0


def handshake_detail(err: BaseException) -> str:
    """One short line saying why a handshake failed (OpenSSL's reason where there is one)."""
    if isinstance(err, TimeoutError):
        return "no TLS handshake within the deadline"
    if isinstance(err, ssl.SSLError):
        return str(err.reason or err.strerror or err).lower().replace("_", " ")
    if isinstance(err, (ConnectionError, EOFError)):
        return "the peer closed the connection during the TLS handshake"
    return (getattr(err, "strerror", None) or str(err) or type(err).__name__).lower()


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
            type(self).on_refused(address, handshake_detail(e))
            return
        self._datapath(tls, address)


def install(on_refused: Callable[[Any, str], None], handshake_timeout: float = HANDSHAKE_TIMEOUT_S) -> None:
    """Make os-ken listen with ``AuditedStreamServer``, reporting failed handshakes to ``on_refused``."""
    AuditedStreamServer.on_refused = staticmethod(on_refused)
    AuditedStreamServer.handshake_timeout = float(handshake_timeout)
    of_controller.StreamServer = AuditedStreamServer
