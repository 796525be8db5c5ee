"""``tools.emulation.pki``: the throw-away CA and certificates the emulation's TLS runs on.

Checked with Python's own ``ssl`` (OpenSSL) rather than by reading our own output back: a
mutual-TLS handshake between the controller's credential and a switch credential succeeds, the
server sees the dpids the switch certificate names (``controller.switchauth.cert_dpids``), and a
client certificate from another CA or none at all fails the handshake. Private keys are 0600.
"""

from __future__ import annotations

import socket
import ssl
import stat
import threading

import pytest
from cryptography import x509

from controller.switchauth import cert_dpids
from tools.emulation.pki import Pki, write_private


def _server_ctx(pki: Pki) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.controller.cert, pki.controller.key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(pki.ca_cert)
    return ctx


def _client_ctx(ca, cred=None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    if cred is not None:
        ctx.load_cert_chain(cred.cert, cred.key)
    return ctx


def _handshake(server_ctx, client_ctx):
    """(server's view of the peer certificate or the server's error, client's error or None)."""
    a, b = socket.socketpair()
    out: dict = {}

    def serve():
        try:
            with server_ctx.wrap_socket(a, server_side=True) as s:
                out["peer"] = s.getpeercert()
                s.recv(1)
        except (ssl.SSLError, OSError) as e:
            out["server_error"] = e

    t = threading.Thread(target=serve)
    t.start()
    client_error = None
    try:
        with client_ctx.wrap_socket(b, server_hostname="127.0.0.1") as c:
            c.sendall(b"x")
            c.recv(1)
    except (ssl.SSLError, OSError) as e:
        client_error = e
    t.join(5)
    return out, client_error


def test_keys_are_0600_and_certificates_name_what_they_should(tmp_path):
    pki = Pki.create(tmp_path / "pki", switch_dpids=[1, 0xA])
    for key in (tmp_path / "pki" / "ca.key", pki.controller.key, pki.switches.key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    cert = x509.load_pem_x509_certificate(pki.switches.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["dpid:0000000000000001",
                                                                       "dpid:000000000000000a"]
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    assert cert.issuer == ca.subject and ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # write_private replaces a file that was world-readable by one that is not
    loose = tmp_path / "loose.key"
    loose.write_text("old")
    loose.chmod(0o644)
    write_private(loose, b"new")
    assert loose.read_bytes() == b"new" and stat.S_IMODE(loose.stat().st_mode) == 0o600


def test_mutual_tls_handshake_and_the_dpids_the_server_sees(tmp_path):
    pki = Pki.create(tmp_path, switch_dpids=[1, 2])
    out, err = _handshake(_server_ctx(pki), _client_ctx(pki.ca_cert, pki.switches))
    assert err is None and "server_error" not in out
    assert cert_dpids(out["peer"]) == {1, 2}
    rogue = pki.issue_switch("rogue", [7])
    out, err = _handshake(_server_ctx(pki), _client_ctx(pki.ca_cert, rogue))
    assert err is None and cert_dpids(out["peer"]) == {7}


@pytest.mark.parametrize("who", ["no certificate", "another CA"])
def test_a_client_without_a_certificate_of_this_ca_fails_the_handshake(tmp_path, who):
    pki = Pki.create(tmp_path / "real", switch_dpids=[1])
    cred = None if who == "no certificate" else Pki.create(tmp_path / "other", switch_dpids=[1]).switches
    out, err = _handshake(_server_ctx(pki), _client_ctx(pki.ca_cert, cred))
    assert "peer" not in out and isinstance(out.get("server_error"), ssl.SSLError)
