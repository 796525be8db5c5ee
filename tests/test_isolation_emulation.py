"""Isolation audit on real Open vSwitch with the controller (root, OVS, Mininet; marked emulation).

A 4-switch ring, 3 tenants x 2 hosts: every tenant tries every other (ARP, unicast IPv4 to
foreign MACs, spoofed VLAN and QinQ tags, ARP spoofing, broadcast, multicast) while every host
port captures: no frame may leak and every tenant's hosts must reach each other. Negative
control: a deliberately leaking entry (tenant 1's port copied to tenant 3's port on the same
switch) must make the same audit fail with the leak in the right matrix cell.
"""

from __future__ import annotations

import subprocess

import pytest

from emuhelpers import missing_features as _missing, ring4

pytestmark = pytest.mark.emulation


def test_audit_passes_and_catches_a_leaking_entry(tmp_path):
    missing = _missing()
    if missing:
        pytest.skip("machine lacks: " + ", ".join(missing))
    from tools.emulation.stack import controlled_emulation
    from tools.emulation.network import emulation_lock
    from tools.runs.isolation import audit, spread_plan

    topo = ring4("isoring")
    plan = spread_plan(topo, 3, 2)
    assert all(len({h.switch for h in plan.hosts_of(t)}) == 2 for t in plan.tenants())
    with emulation_lock():  # fcntl.flock on /tmp/detnet-emu.lock, held for the whole test
        with controlled_emulation(topo, plan, verbose=False) as (_ctl, emu):
            rep = audit(emu, k=None, workdir=tmp_path / "clean", verbose=False)
            assert rep["leaked_frames"] == 0, rep["leaks"]
            assert rep["reachability"]["all_reachable"], rep["reachability"]["unreachable"]
            assert rep["reachability"]["pairs_tested"] == 6
            assert not rep["captures"]["blind_ports"]
            assert rep["coverage"]["tenant_pairs_probed_directly"] == 6
            # every host sent every targeted kind to the 4 hosts of the other two tenants, twice
            assert rep["coverage"]["frames_sent"]["vlan_spoof_udp"] == 6 * 4 * 2
            assert rep["pass"] is True

            # negative control: copy everything tenant 1 sends at A to tenant 3's port at A
            a1 = next(h for h in plan.hosts_of(1) if h.switch == "A")
            a3 = next(h for h in plan.hosts_of(3) if h.switch == "A")
            sw = plan.switch_name("A")
            subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "add-flow", sw,
                            f"cookie=0xbad,table=0,priority=2000,in_port={a1.port},actions=output:{a3.port}"],
                           check=True, capture_output=True)
            bad = audit(emu, k=None, workdir=tmp_path / "leaky", verbose=False)
            assert bad["pass"] is False
            assert bad["leaked_frames"] > 0
            tenants = bad["leak_matrix"]["tenants"]
            m = bad["leak_matrix"]["frames"]
            assert m[tenants.index(3)][tenants.index(1)] == bad["leaked_frames"]
            assert {(x["receiver_tenant"], x["sender_tenant"]) for x in bad["leaks"]} == {(3, 1)}
