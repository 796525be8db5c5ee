"""``controller.switchauth``: which OpenFlow connection may be the switch of the dpid it claims.

Pure rules, checked one at a time and in their order (unknown dpid, then certificate, then a live
holder), and the dpids read out of a certificate as Python's ``ssl`` reports it.
"""

from __future__ import annotations

import pytest

from controller.switchauth import REASONS, admit, cert_dpids, dpid_name, parse_dpid_name

KNOWN = {1, 2, 3}


def peer(*, uris=(), cn=None, dns=()):
    """A ``getpeercert()`` dict as ``ssl`` returns it for a verified client."""
    subject = [(("organizationName", "x"),)] + ([(("commonName", cn),)] if cn else [])
    return {"subject": tuple(subject), "subjectAltName": tuple([("URI", u) for u in uris] + [("DNS", d) for d in dns])}


def test_dpid_names_round_trip_and_reject_near_misses():
    assert dpid_name(1) == "dpid:0000000000000001"
    assert dpid_name(0xFFFF_FFFF_FFFF_FFFF) == "dpid:ffffffffffffffff"
    for d in (0, 1, 0xABCDEF, (1 << 64) - 1):
        assert parse_dpid_name(dpid_name(d)) == d
    for bad in ("dpid:1", "dpid:00000000000000001", "DPID:0000000000000001x", "0000000000000001", "dpid:"
                "000000000000000g"):
        assert parse_dpid_name(bad) is None
    with pytest.raises(ValueError):
        dpid_name(1 << 64)


def test_cert_dpids_reads_uris_and_common_names_only():
    assert cert_dpids(None) == frozenset() and cert_dpids({}) == frozenset()
    assert cert_dpids(peer(uris=["dpid:0000000000000002", "dpid:0000000000000003", "https://x"])) == {2, 3}
    assert cert_dpids(peer(cn="dpid:0000000000000001")) == {1}
    # a DNS name that looks like a dpid is not a dpid claim
    assert cert_dpids(peer(dns=["dpid:0000000000000001"])) == frozenset()


def test_plain_tcp_admits_a_known_free_dpid_and_refuses_unknown_and_duplicate():
    assert admit(1, known=KNOWN, connected=[], tls=False).ok
    v = admit(9, known=KNOWN, connected=[], tls=False)
    assert (v.ok, v.reason) == (False, "unknown_dpid") and "dpid:0000000000000009" in v.detail
    v = admit(2, known=KNOWN, connected=[2], tls=False)
    assert (v.ok, v.reason) == (False, "duplicate_dpid")


def test_tls_needs_the_certificate_to_name_the_dpid_unless_told_otherwise():
    assert admit(2, known=KNOWN, connected=[], tls=True, certificate=frozenset({1, 2})).ok
    v = admit(3, known=KNOWN, connected=[], tls=True, certificate=frozenset({1, 2}))
    assert (v.ok, v.reason) == (False, "certificate_dpid")
    assert "dpid:0000000000000001, dpid:0000000000000002" in v.detail and v.detail.endswith("dpid:0000000000000003")
    v = admit(3, known=KNOWN, connected=[], tls=True, certificate=frozenset())
    assert (v.ok, v.reason, "no dpid" in v.detail) == (False, "certificate_dpid", True)
    assert admit(3, known=KNOWN, connected=[], tls=True, certificate=frozenset(), require_cert_dpid=False).ok


def test_rules_apply_in_order_and_a_valid_certificate_does_not_take_over_a_live_dpid():
    # unknown first, even with a certificate naming it
    assert admit(9, known=KNOWN, connected=[9], tls=True, certificate=frozenset({9})).reason == "unknown_dpid"
    # then the certificate, before the live holder
    assert admit(1, known=KNOWN, connected=[1], tls=True, certificate=frozenset({2})).reason == "certificate_dpid"
    # a certificate naming a connected dpid proves the switch: it replaces the live connection
    v = admit(1, known=KNOWN, connected=[1], tls=True, certificate=frozenset({1}))
    assert (v.ok, v.replaces) == (True, True)
    assert not admit(1, known=KNOWN, connected=[], tls=True, certificate=frozenset({1})).replaces
    # without that proof (plain TCP, or certificates that need not name the dpid) the live one wins
    assert admit(1, known=KNOWN, connected=[1], tls=False).reason == "duplicate_dpid"
    v = admit(1, known=KNOWN, connected=[1], tls=True, certificate=frozenset({1}), require_cert_dpid=False)
    assert (v.ok, v.reason, v.replaces) == (False, "duplicate_dpid", False)
    assert {admit(d, known=KNOWN, connected=[1], tls=True, certificate=frozenset({2})).reason
            for d in (9, 3, 1)} <= set(REASONS)
