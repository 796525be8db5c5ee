"""A throw-away PKI for the emulation: a CA, the controller's certificate and switch certificates.

Why: the emulation runs OpenFlow over TLS with client certificates, as a real deployment should
(docs/security.md), so every run needs a CA and certificates; made fresh in the run's temporary
folder, they are thrown away with it. Made with ``cryptography`` (ECDSA P-256: a handshake costs
far less than with RSA, which matters at 40 switches connecting at once)::

    pki = Pki.create(tmpdir, switch_dpids=[1, 2, 3])
    pki.controller      # Credential(key, cert): --of-key, --of-cert; pki.ca_cert: --of-ca
    pki.switches        # Credential: ovs-vsctl set-ssl KEY CERT CA (one per ovs-vswitchd)

A switch certificate names the dpids it may claim as subjectAltName URIs ``dpid:`` + 16 hex
digits (``controller.switchauth``). Open vSwitch has one key and certificate per ``ovs-vswitchd``
(``set-ssl`` is global), so the emulation's switches share one certificate naming all of them;
``issue_switch`` makes one for any set of dpids (a rogue's, in the tests). Private keys are
written with mode 0600 (created so, never chmod-ed after), certificates 0644.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from controller.switchauth import dpid_name

__all__ = ["Credential", "Pki", "write_private"]

VALID_DAYS = 30          # throw-away: long enough for any run, short enough to be worthless later


@dataclass(frozen=True)
class Credential:
    """A private key file and its certificate file (PEM)."""

    key: Path
    cert: Path


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file created with mode 0600 (an existing file is replaced)."""
    path = Path(path)
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "detnet emulation"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class Pki:
    """A CA in ``folder`` (``ca.key``, ``ca.crt``) that issues the controller's and switches' certificates."""

    def __init__(self, folder: Path, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate):
        self.folder = Path(folder)
        self._ca_key, self._ca = ca_key, ca_cert
        self.ca_cert = self.folder / "ca.crt"
        self.controller: Credential | None = None
        self.switches: Credential | None = None

    @classmethod
    def create(cls, folder: str | os.PathLike, *, switch_dpids: Iterable[int] = (),
               controller_hosts: Iterable[str] = ("127.0.0.1", "localhost")) -> "Pki":
        """A new CA in ``folder`` (created if missing), the controller's certificate (for
        ``controller_hosts``) and, when ``switch_dpids`` is not empty, one switch certificate naming
        them all (``switches``)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        key = _key()
        now = dt.datetime.now(dt.timezone.utc)
        name = _name("detnet throw-away CA")
        ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=VALID_DAYS))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                           data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                           crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
              .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
              .sign(key, hashes.SHA256()))
        pki = cls(folder, key, ca)
        write_private(folder / "ca.key", _pem_key(key))
        pki.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        pki.controller = pki.issue("controller", _hosts(controller_hosts), server=True)
        dpids = list(switch_dpids)
        if dpids:
            pki.switches = pki.issue_switch("switches", dpids)
        return pki

    def issue_switch(self, stem: str, dpids: Iterable[int]) -> Credential:
        """A client certificate naming ``dpids`` (SAN URIs ``dpid:...``), as ``STEM.key``/``STEM.crt``."""
        names = [x509.UniformResourceIdentifier(dpid_name(d)) for d in dpids]
        if not names:
            raise ValueError("a switch certificate names at least one dpid")
        return self.issue(stem, names, server=False)

    def issue(self, stem: str, alt_names: list[x509.GeneralName], *, server: bool) -> Credential:
        """A certificate signed by this CA for ``alt_names`` (server or client use), as ``STEM.key``
        (mode 0600) and ``STEM.crt`` in the folder."""
        key = _key()
        now = dt.datetime.now(dt.timezone.utc)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        cert = (x509.CertificateBuilder().subject_name(_name(f"detnet {stem}")).issuer_name(self._ca.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=VALID_DAYS))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()),
                               critical=False)
                .sign(self._ca_key, hashes.SHA256()))
        cred = Credential(self.folder / f"{stem}.key", self.folder / f"{stem}.crt")
        write_private(cred.key, _pem_key(key))
        cred.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cred


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _hosts(hosts: Iterable[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for h in hosts:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            out.append(x509.DNSName(h))
    return out
