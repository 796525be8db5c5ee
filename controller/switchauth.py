"""Who may be a switch: the admission of an OpenFlow connection that claims a datapath id (pure).

Why: on a wide-area backbone the switch channel crosses the network it controls, so anybody who
reaches the OpenFlow port could say "I am dpid 7", receive that switch's flow tables (tenants'
addresses and VLANs) and answer in its place. TLS with a CA proves the peer holds a certificate
the operator issued; this module decides whether that certificate, and the connection's claim,
make it *the* switch of the dpid it claims. The os-ken shim calls ``admit`` once a connection has
said its dpid (features reply) and closes the connection when the verdict is a refusal; the
service records the refusal as a security event (audit entry, ``detnet_switch_refusals_total``).

The rules, in order (the first that fails names the refusal):

1. ``unknown_dpid``: the dpid is not a switch of the topology's host plan;
2. ``certificate_dpid``: over TLS with ``require_cert_dpid``, the certificate does not name the
   dpid (``cert_dpids``: a subjectAltName URI ``dpid:0000000000000001``, or the same text as a
   Common Name). A certificate may name several dpids: Open vSwitch has one key and certificate
   per ``ovs-vswitchd`` (``ovs-vsctl set-ssl``), so a host running several bridges presents one
   certificate naming all of them;
3. ``duplicate_dpid``: another connection holds the dpid, and this one cannot prove it is the
   switch: on plain TCP, or over TLS when the certificate need not name the dpid. The live
   connection wins: a rogue cannot take over a switch's state by connecting second.

   Over TLS with a certificate that names the dpid, the new connection *replaces* the live one
   (``Verdict.replaces``; the shim closes the old connection, resynchronises the switch on the new
   one and audits ``switch_replaced``): only the holder of the switch's private key can present
   it, and a switch whose old connection lingers (a crashed host, no FIN; a TLS session broken
   under load, which os-ken's receive loop retries forever) must be able to come back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

__all__ = ["REASONS", "Verdict", "admit", "cert_dpids", "dpid_name", "parse_dpid_name"]

#: refusal reasons, as the audit log and the metric label name them
REASONS = ("unknown_dpid", "certificate_dpid", "duplicate_dpid")

_DPID_RE = re.compile(r"^dpid:([0-9a-fA-F]{16})$")


def dpid_name(dpid: int) -> str:
    """The text a certificate carries for ``dpid``: ``dpid:`` and 16 hex digits."""
    if not 0 <= int(dpid) < 1 << 64:
        raise ValueError(f"dpid {dpid} is not a 64-bit datapath id")
    return f"dpid:{int(dpid):016x}"


def parse_dpid_name(text: str) -> int | None:
    """The dpid ``text`` names (``dpid:`` and exactly 16 hex digits), else None."""
    m = _DPID_RE.match(text.strip())
    return int(m.group(1), 16) if m else None


def cert_dpids(peercert: dict[str, Any] | None) -> frozenset[int]:
    """The dpids a peer certificate names, from ``ssl.SSLSocket.getpeercert()``'s dict: every
    subjectAltName URI and every subject Common Name of the form ``dpid:XXXXXXXXXXXXXXXX``."""
    if not peercert:
        return frozenset()
    names: list[str] = [v for kind, v in peercert.get("subjectAltName", ()) if kind == "URI"]
    for rdn in peercert.get("subject", ()):
        names += [v for k, v in rdn if k == "commonName"]
    return frozenset(d for d in map(parse_dpid_name, names) if d is not None)


@dataclass(frozen=True)
class Verdict:
    """``ok`` or the refusal ``reason`` (one of ``REASONS``) with a one-line ``detail``;
    ``replaces``: admitted in place of the live connection of the same dpid."""

    ok: bool
    reason: str = ""
    detail: str = ""
    replaces: bool = False


def admit(dpid: int, *, known: Iterable[int], connected: Iterable[int], tls: bool,
          certificate: frozenset[int] | None = None, require_cert_dpid: bool = True) -> Verdict:
    """May this connection, claiming ``dpid``, be that switch? ``known``: the topology's dpids;
    ``connected``: dpids held by other live connections; ``tls``: the connection is TLS with a
    verified client certificate naming ``certificate`` (``cert_dpids``)."""
    if dpid not in set(known):
        return Verdict(False, "unknown_dpid", f"dpid {dpid_name(dpid)} is not a switch of the topology")
    if tls and require_cert_dpid and dpid not in (certificate or frozenset()):
        named = ", ".join(dpid_name(d) for d in sorted(certificate or ())) or "no dpid"
        return Verdict(False, "certificate_dpid", f"certificate names {named}, not {dpid_name(dpid)}")
    if dpid in set(connected):
        if tls and require_cert_dpid:      # the certificate names the dpid (rule 2 passed)
            return Verdict(True, "", f"{dpid_name(dpid)} reconnected with its certificate", replaces=True)
        return Verdict(False, "duplicate_dpid", f"{dpid_name(dpid)} is already connected")
    return Verdict(True)
