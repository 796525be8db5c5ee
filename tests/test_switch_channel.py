"""The OpenFlow channel of a real ``dnctl controller``: TLS with client certificates, and who may be a switch.

No Open vSwitch here (``tests/test_tls_emulation.py`` has it): the switches are ``ofrogue.OfPeer``,
hand-built OpenFlow 1.3 over a socket, so these run anywhere. A three-switch line; the controller
started as the emulation starts it (``ControllerProcess``: throw-away CA, ``--of-key/--of-cert/--of-ca``).

- a TLS client without a certificate, or with one from another CA, and a plain-TCP client never
  get an OpenFlow FEATURES_REQUEST: the handshake is refused, and each refusal is a security
  event (``switch_refused``, reason ``tls_handshake``, no dpid: none was said) with the peer's
  address, counted in ``detnet_switch_refusals_total{reason="tls_handshake"}``;
- a switch with a certificate naming its dpid is resynchronised and counted as connected;
- a rogue with a valid certificate for another dpid, and one claiming a dpid outside the
  topology, are each closed, audited (``switch_refused``) and counted
  (``detnet_switch_refusals_total{reason}``); the genuine switch stays connected and gets no
  message because of them;
- a connection whose certificate names the live dpid (the switch reconnecting while its old
  connection lingers) replaces the old one: the old is closed, the new resynchronised, the
  replacement audited (``switch_replaced``);
- with ``--of-plain`` (no certificates at all) a second connection claiming a live dpid and one
  claiming an unknown dpid are refused the same way.
"""

from __future__ import annotations

import re

import httpx
import pytest

from apihelpers import beijing_line
from emuhelpers import wait_for
from ofrogue import OfPeer
from tools.emulation.controller_proc import ControllerProcess
from tools.emulation.pki import Pki
from topologies.hosts import HostPlan


def _refusals(ctl: ControllerProcess) -> list[dict]:
    events = ctl.client().get("/v1/events", {"since": 0})["events"]
    return [e for e in events if e["action"] == "switch_refused"]


def _metric(ctl: ControllerProcess, reason: str) -> float:
    text = httpx.get(f"{ctl.url}/metrics", headers={"Authorization": f"Bearer {ctl.admin_token}"},
                     timeout=10, trust_env=False).text
    m = re.search(r'^detnet_switch_refusals_total\{reason="%s"\} ([0-9.e+]+)$' % reason, text, re.M)
    return float(m.group(1)) if m else 0.0


@pytest.fixture(scope="module")
def line():
    topo = beijing_line("tlsline")
    plan = HostPlan.build(topo, [(1, "Beijing"), (1, "Jinan")])
    return topo, plan


def test_tls_channel_admits_certified_switches_and_refuses_impersonators(line, tmp_path):
    topo, plan = line
    bj, tj = plan.dpid("Beijing"), plan.dpid("Tianjin")
    with ControllerProcess(topo, plan, log_dir=tmp_path, start_timeout=60) as ctl:
        pki, addr = ctl.pki, ("127.0.0.1", ctl.of_port)
        ca = pki.ca_cert
        # 1. no certificate, another CA's certificate, plain TCP: no OpenFlow at all
        other = Pki.create(tmp_path / "other", switch_dpids=[bj]).switches
        for tls in ((ca, None, None), (ca, other.key, other.cert), None):
            p = OfPeer(addr, bj, tls).start()
            assert p.wait_closed(10), f"{tls}: the controller kept the connection open"
            assert not p.features_sent.is_set(), f"{tls}: got as far as the features exchange"
        # 2. the genuine switch: certificate naming its dpid
        genuine_cred = pki.issue_switch("beijing", [bj])
        genuine = OfPeer(addr, bj, (ca, genuine_cred.key, genuine_cred.cert)).start()
        ctl.wait_switches(1, 30)
        wait_for(lambda: genuine.flow_mods > 0, 10, "the genuine switch's resync entries")
        flow_mods = genuine.flow_mods
        # 3. rogues: another dpid's certificate, the live dpid's own, a dpid outside the topology
        cases = [("certificate_dpid", bj, pki.issue_switch("tianjin", [tj])),
                 ("unknown_dpid", 0xBAD, pki.issue_switch("bad", [0xBAD]))]
        for reason, claim, cred in cases:
            rogue = OfPeer(addr, claim, (ca, cred.key, cred.cert)).start()
            assert rogue.features_sent.wait(10), f"{reason}: TLS should have let it say its dpid"
            assert rogue.wait_closed(10), f"{reason}: the rogue was not disconnected"
            assert rogue.flow_mods == 0, f"{reason}: the rogue was sent flow entries"
        refused = _refusals(ctl)
        handshakes = [e for e in refused if e["request"]["reason"] == "tls_handshake"]
        assert [(e["request"]["dpid"], e["request"]["address"].split(":")[0], e["status"], e["actor"])
                for e in handshakes] == [(None, "127.0.0.1", "refused", "security")] * 3
        details = [e["request"]["detail"] for e in handshakes]
        assert "certificate" in details[0] and "certificate" in details[1], details   # no cert, unknown CA
        assert _metric(ctl, "tls_handshake") == 3.0
        refused = [e for e in refused if e not in handshakes]
        assert [(e["request"]["reason"], e["request"]["dpid"], e["status"], e["actor"]) for e in refused] == \
            [(r, d, "refused", "security") for r, d, _ in cases]
        for reason, _, _ in cases:
            assert _metric(ctl, reason) == 1.0
        # the genuine switch is still the one connected, and nothing was sent to it meanwhile
        assert not genuine.closed.is_set() and ctl.healthz()["switches_connected"] == 1
        assert genuine.flow_mods == flow_mods
        # 4. the same switch again, with its certificate: it replaces the live connection
        again = OfPeer(addr, bj, (ca, genuine_cred.key, genuine_cred.cert)).start()
        assert genuine.wait_closed(10), "the old connection was kept"
        wait_for(lambda: again.flow_mods > 0, 10, "the resync on the new connection")
        assert not again.closed.is_set() and ctl.healthz()["switches_connected"] == 1
        events = ctl.client().get("/v1/events", {"since": 0})["events"]
        assert [e["request"]["dpid"] for e in events if e["action"] == "switch_replaced"] == [bj]
        assert not [e for e in events if e["action"] == "switch_disconnected"]
        again.close()
        log = ctl.log_path.read_text()
    assert "over TLS (client certificates required)" in log and "plain TCP" not in log
    assert log.count("security: refused switch connection") == 2
    assert log.count("TLS handshake failed") == 3


def test_plain_channel_warns_and_still_refuses_duplicate_and_unknown_dpids(line, tmp_path):
    topo, plan = line
    bj = plan.dpid("Beijing")
    with ControllerProcess(topo, plan, log_dir=tmp_path, start_timeout=60, tls=False) as ctl:
        addr = ("127.0.0.1", ctl.of_port)
        genuine = OfPeer(addr, bj).start()
        ctl.wait_switches(1, 30)
        for reason, claim in (("duplicate_dpid", bj), ("unknown_dpid", 0xBAD)):
            rogue = OfPeer(addr, claim).start()
            assert rogue.features_sent.wait(10) and rogue.wait_closed(10), reason
            assert _metric(ctl, reason) == 1.0
        assert [e["request"]["reason"] for e in _refusals(ctl)] == ["duplicate_dpid", "unknown_dpid"]
        assert not genuine.closed.is_set() and ctl.healthz()["switches_connected"] == 1
        genuine.close()
        log = ctl.log_path.read_text()
    assert re.search(r"WARNING .*OpenFlow over plain TCP on 127\.0\.0\.1:\d+ \(--of-plain\): any host", log)
