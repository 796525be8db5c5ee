"""On real Open vSwitch: the emulation's switches talk to the controller over mutual TLS, and a
switch cannot be impersonated.

A four-switch ring as ``NetworkStack`` brings it up (throw-away CA, ``ovs-vsctl set-ssl``,
``ssl:`` controller targets). Checks: every bridge's controller target is ``ssl:`` and connected;
a reservation made over REST is on every switch of its path; then, against the live switch A,
a TLS client without a certificate and a rogue with a valid certificate for switch B's dpid
(``ofrogue.OfPeer``) claiming A are both refused, the second audited and counted, and A's flow
table and meters are exactly what they were (no resync, no delete); the ring stays connected.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from controller.dataplane import specs
from emuhelpers import missing_features as _missing, ofctl as _ofctl, ring4, wait_for as _wait
from ofrogue import OfPeer
from topologies.hosts import HostPlan

pytestmark = pytest.mark.emulation


def _table(switch: str) -> list[str]:
    """The switch's entries without their counters (which move with traffic and time)."""
    out = []
    for line in _ofctl("dump-flows", switch).splitlines():
        if "cookie=" in line:
            out.append(re.sub(r"\b(duration|n_packets|n_bytes|idle_age|hard_age)=[^,\s]+,?\s*", "", line).strip())
    return sorted(out)


def _vsctl(*args: str) -> str:
    return subprocess.run(["ovs-vsctl", *args], capture_output=True, text=True, timeout=20, check=True).stdout


def _all_connected(switches) -> bool:
    """Open vSwitch's own view (``is_connected`` of each bridge's controller, which ovs-vswitchd
    writes to its database every few seconds, not at once)."""
    for s in switches:
        uuid = _vsctl("get", "bridge", s, "controller").strip().strip("[]")
        if _vsctl("get", "controller", uuid, "is_connected").strip() != "true":
            return False
    return True


def test_switches_connect_over_tls_and_a_rogue_cannot_take_a_live_dpid(tmp_path):
    missing = _missing()
    if missing:
        pytest.skip("machine lacks: " + ", ".join(missing))
    from tools.emulation.network import emulation_lock
    from tools.emulation.stack import controlled_emulation

    topo = ring4("tlsring")
    plan = HostPlan.build(topo, [(1, "A"), (1, "C")])
    sw = {n: plan.switch_name(n) for n in topo.nodes}
    with emulation_lock():
        with controlled_emulation(topo, plan, verbose=False, log_dir=str(tmp_path)) as (ctl, emu):
            assert emu.summary()["openflow"] == "tls"
            for n in topo.nodes:
                assert _vsctl("get-controller", sw[n]).strip() == f"ssl:127.0.0.1:{ctl.of_port}"
            _wait(lambda: _all_connected(sw.values()), 15, "OVS to report every bridge connected")

            admin = ctl.client()
            admin.post("/v1/tenants", {"name": "blue"})
            res = admin.post("/v1/reservations", {"tenant": 1, "src": "A", "dst": "C", "bandwidth_bps": 10**9,
                                                  "max_latency_ns": 50_000_000})
            cookie = specs.reservation_cookie(1, res["id"])
            for n in res["path"]:
                mine = [l for l in _ofctl("dump-flows", sw[n], f"cookie={cookie:#x}/"
                                          f"{specs.COOKIE_MASK_RESERVATION:#x}").splitlines() if "cookie=" in l]
                assert len(mine) == 1, (n, mine)

            table, meters = _table(sw["A"]), _ofctl("dump-meters", sw["A"])
            addr, ca = ("127.0.0.1", ctl.of_port), ctl.pki.ca_cert
            no_cert = OfPeer(addr, plan.dpid("A"), (ca, None, None)).start()
            assert no_cert.wait_closed(10) and not no_cert.features_sent.is_set()
            b_cred = ctl.pki.issue_switch("rogue-b", [plan.dpid("B")])
            rogue = OfPeer(addr, plan.dpid("A"), (ca, b_cred.key, b_cred.cert)).start()
            assert rogue.features_sent.wait(10) and rogue.wait_closed(10)
            assert rogue.flow_mods == 0

            events = [e for e in admin.get("/v1/events", {"since": 0})["events"] if e["action"] == "switch_refused"]
            assert [(e["request"]["dpid"], e["request"]["reason"]) for e in events] == \
                [(None, "tls_handshake"), (plan.dpid("A"), "certificate_dpid")]   # no certificate, then B's
            assert _table(sw["A"]) == table and _ofctl("dump-meters", sw["A"]) == meters
            assert ctl.healthz()["switches_connected"] == 4
            _wait(lambda: _all_connected(sw.values()), 15, "OVS to report every bridge still connected")
