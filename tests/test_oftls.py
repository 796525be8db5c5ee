"""``controller.oftls.SerializedTls``: one TLS connection read and written by two threads at once, as os-ken does.

A real mutual-TLS pair on loopback (``tools.emulation.pki``): the server side wrapped in
``SerializedTls``, one thread sending 4 MiB while another receives 4 MiB from the peer, both
byte-exact; ``settimeout`` leaves it non-blocking; the peer's certificate is still readable (the
shim's switch admission reads it); ``peer_went_away`` tells a closed connection from a refusal.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import threading

from controller.oftls import SerializedTls, handshake_detail, peer_went_away
from tools.emulation.pki import Pki

SIZE = 4 * 1024 * 1024


def _pair(tmp_path):
    pki = Pki.create(tmp_path, switch_dpids=[7])
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki.controller.cert, pki.controller.key)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(pki.ca_cert)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(pki.ca_cert)
    client_ctx.load_cert_chain(pki.switches.cert, pki.switches.key)
    client_ctx.check_hostname = False
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    out: dict = {}
    t = threading.Thread(target=lambda: out.update(client=client_ctx.wrap_socket(
        socket.create_connection(("127.0.0.1", port)))))
    t.start()
    raw, _ = listener.accept()
    server = server_ctx.wrap_socket(raw, server_side=True)
    t.join(10)
    listener.close()
    return server, out["client"]


def _recv_exactly(recv, n):
    h, got = hashlib.sha256(), 0
    while got < n:
        chunk = recv(65536)
        assert chunk, "the connection closed early"
        h.update(chunk)
        got += len(chunk)
    return h.hexdigest()


def test_two_threads_send_and_receive_at_once_byte_exact(tmp_path):
    server, client = _pair(tmp_path)
    tls = SerializedTls(server)
    tls.settimeout(5.0)                                  # os-ken's call: the socket stays non-blocking
    assert server.gettimeout() == 0.0
    assert tls.getpeercert()["subjectAltName"] == (("URI", "dpid:0000000000000007"),)
    down, up = os.urandom(SIZE), os.urandom(SIZE)
    got: dict = {}
    threads = [threading.Thread(target=lambda: tls.sendall(down)),                               # os-ken's writer
               threading.Thread(target=lambda: got.update(server=_recv_exactly(tls.recv, SIZE))),  # its reader
               threading.Thread(target=lambda: client.sendall(up)),
               threading.Thread(target=lambda: got.update(client=_recv_exactly(client.recv, SIZE)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a side is stuck"
    assert got == {"server": hashlib.sha256(up).hexdigest(), "client": hashlib.sha256(down).hexdigest()}
    client.close()
    assert tls.recv(10) == b""                           # the peer closed: EOF, as os-ken expects
    tls.close()


def test_a_peer_going_away_is_not_a_refusal():
    assert peer_went_away(ssl.SSLEOFError()) and peer_went_away(ConnectionResetError())
    assert not peer_went_away(TimeoutError()) and not peer_went_away(ssl.SSLError(1, "x"))
    assert handshake_detail(TimeoutError()) == "no TLS handshake within the deadline"
