"""End to end on real Open vSwitch: `dnctl controller` programs a small Mininet.

Four switches in a ring (A-B-C short, C-D-A long), tenants 1 and 2 with a host at A and at C
each. Checks: switches connect and get their baseline, LLDP sees every link, a reservation made
over REST appears (flows on every switch of its path, meter on the ingress), same-tenant hosts
ping (ARP answered by the controller), other tenants' hosts are unreachable even with a spoofed
ARP entry or a forged VLAN tag, a controller restart resyncs without changing anything, DELETE
removes exactly the reservation's entries and meter, SIGTERM stops the controller within 2 s.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from controller.dataplane import specs
from controller.dataplane import translation as tr
from topologies.hosts import HostPlan
from emuhelpers import missing_features as _missing, ofctl as _ofctl, ring4, wait_for as _wait

ADMIN = "test-admin-token-0123456789abcdef"
DNCTL = str(Path(sys.executable).with_name("dnctl"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _flows(switch: str, cookie: int | None = None, mask: int | None = None) -> list[str]:
    args = ["dump-flows", switch] + ([f"cookie={cookie:#x}/{mask:#x}"] if cookie is not None else [])
    return [l for l in _ofctl(*args).splitlines() if "cookie=" in l]


def _meter_ids(switch: str) -> set[int]:
    return {int(m) for m in re.findall(r"meter=(\d+)", _ofctl("dump-meters", switch))}


class _Controller:
    def __init__(self, tmp: Path, topo_file: Path, plan_file: Path):
        self.tmp, self.topo_file, self.plan_file = tmp, topo_file, plan_file
        self.of_port, self.api_port = _free_port(), _free_port()
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.proc: subprocess.Popen | None = None
        self.log = tmp / "controller.log"

    def start(self) -> None:
        env = dict(os.environ, DNCTL_ADMIN_TOKEN=ADMIN)
        self.proc = subprocess.Popen(
            [DNCTL, "controller", "--topology", str(self.topo_file), "--hosts", str(self.plan_file),
             "--db", str(self.tmp / "state.db"), "--of-host", "127.0.0.1", "--of-port", str(self.of_port),
             "--api-port", str(self.api_port), "--link-scale", "0.001", "--lldp-interval", "0.5", "--of-plain"],
            env=env, stdout=subprocess.DEVNULL, stderr=open(self.log, "a"))

    def stop(self, timeout: float = 2.0) -> float:
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout)
        return time.monotonic() - t0

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def log_text(self) -> str:
        return self.log.read_text()


def test_every_spec_serialises_to_openflow13():
    """The shim turns every baseline, reservation and meter spec into a valid OpenFlow 1.3 message."""
    from os_ken.base import app_manager  # noqa: F401 - import order os-ken needs
    from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser

    from controller.core.model import Hop, Reservation
    from controller import ofchannel

    class FakeDatapath:
        ofproto, ofproto_parser, id = ofproto_v1_3, ofproto_v1_3_parser, 1

    topo = ring4("ofring")
    plan = HostPlan.build(topo, [(1, "A"), (1, "C"), (2, "A"), (2, "C")])
    res = Reservation(id="r1", tenant=1, src="A", dst="C", period_ns=10**6, frame_bytes=1500,
                      bandwidth_bps=12_000_000, max_latency_ns=10**7, latency_bound_ns=10**6, jitter_bound_ns=10**3,
                      path=["A", "B", "C"], hops=[Hop("A", "B", [0]), Hop("B", "C", [1])], tx_offsets_ns=[0],
                      match={"udp_dst": 5000, "ip_dscp": 46})
    dp = FakeDatapath()
    n = 0
    for node in topo.nodes:
        flows, meters = tr.desired_state(plan, node, [res], rate_scale=0.001, queue_id=1)
        for f in flows:
            msg = ofchannel.flow_mod(dp, f)
            msg.serialize()
            assert msg.cookie == f.cookie and len(msg.buf) >= 56
            n += 1
        for m in meters:
            msg = ofchannel.meter_mod(dp, m, ofproto_v1_3.OFPMC_ADD)
            msg.serialize()
            assert msg.bands[0].rate == m.rate_kbps
    assert n > 40


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_controller_stops_on_signal_within_2s(tmp_path, sig):
    """No switches needed: the process starts, serves /healthz, and exits 0 within 2 s of the signal."""
    import httpx
    topo = ring4("ofring")
    plan = HostPlan.build(topo, [(1, "A"), (1, "C")])
    (tmp_path / "t.json").write_text(topo.to_json())
    (tmp_path / "p.json").write_text(json.dumps(plan.to_dict()))
    ctl = _Controller(tmp_path, tmp_path / "t.json", tmp_path / "p.json")
    ctl.start()
    try:
        with httpx.Client(base_url=ctl.url, timeout=5) as api:
            _wait(lambda: _ok(api, "/healthz"), 15, "the REST API")
            assert api.get("/healthz").json()["switches_connected"] == 0
        t0 = time.monotonic()
        ctl.proc.send_signal(sig)
        ctl.proc.wait(2.0)
        assert time.monotonic() - t0 < 2.0 and ctl.proc.returncode == 0
        assert "controller stopped" in ctl.log_text()
        with socket.socket() as s:   # both ports are free again
            s.bind(("127.0.0.1", ctl.of_port))
    finally:
        ctl.kill()


@pytest.mark.parametrize("args,msg", [
    ([], "no topology"),
    (["--topology", "no-such-topology"], "unknown topology"),
    (["--topology", "fntf40", "--of-port", "0"], "not a TCP port"),
    (["--topology", "fntf40", "--of-port", "7000", "--api-port", "7000"], "both 7000"),
    (["--topology", "fntf40", "--link-scale", "-1"], "link scale"),
    (["--topology", "fntf40", "--hosts", "/nonexistent/plan.json"], "cannot read host plan"),
    (["--topology", "fntf40", "--bogus"], "unrecognized arguments"),
    (["--topology", "fntf40"], "OpenFlow needs TLS: give --pki DIR"),
    (["--topology", "fntf40", "--pki", "/nonexistent"], "--pki /nonexistent: not a folder"),
    (["--topology", "fntf40", "--pki", "/tmp", "--of-plain"], "--pki and --of-plain together"),
    (["--topology", "fntf40", "--of-plain", "--api-cert", "/etc/hostname"], "HTTPS needs both"),
    (["--topology", "fntf40", "--of-plain", "--api-cert", "/nope.pem", "--api-key", "/nope.key"],
     "--api-cert /nope.pem: cannot read"),
])
def test_bad_arguments_exit_2_with_one_line(args, msg):
    r = subprocess.run([DNCTL, "controller", *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.emulation
def test_controller_programs_switches_and_isolates_tenants(tmp_path):
    missing = _missing()
    if missing:
        pytest.skip("machine lacks: " + ", ".join(missing))
    import httpx

    from tools.emulation.network import Emulation, emulation_lock, write_plan
    from topologies.mininet_topo import host_intf_name

    topo = ring4("ofring")
    plan = HostPlan.build(topo, [(1, "A"), (1, "C"), (2, "A"), (2, "C")])
    topo_file, plan_file = tmp_path / "ofring.json", tmp_path / "plan.json"
    topo_file.write_text(topo.to_json())
    write_plan(plan, plan_file)
    ctl = _Controller(tmp_path, topo_file, plan_file)
    H = {"Authorization": f"Bearer {ADMIN}"}
    sw = {n: plan.switch_name(n) for n in topo.nodes}

    with emulation_lock():
        ctl.start()
        try:
            with httpx.Client(base_url=ctl.url, headers=H, timeout=10) as api:
                _wait(lambda: _ok(api, "/healthz"), 15, "the REST API")
                with Emulation(topo, plan, controller=("127.0.0.1", ctl.of_port), verbose=False) as emu:
                    _wait(lambda: api.get("/healthz").json()["switches_connected"] == 4, 20, "4 switches synced")
                    for n in topo.nodes:    # baseline present: drop-by-default in every table
                        assert sum("priority=0" in l for l in _flows(sw[n])) == 3, n
                    report = _wait(lambda: (lambda r: r if r.get("seen") == r.get("expected") else None)(
                        api.get("/v1/topology").json().get("link_check", {})), 10, "LLDP to see every link")
                    assert report["expected"] == 8 and not report["missing"] and not report["unexpected"]

                    for name in ("blue", "red"):
                        r = api.post("/v1/tenants", json={"name": name})
                        assert r.status_code == 201, r.text
                    assert [t["id"] for t in api.get("/v1/tenants").json()["tenants"]] == [1, 2]

                    a1, c1 = plan.host("t1h1"), plan.host("t1h3")
                    a2, c2 = plan.host("t2h1"), plan.host("t2h3")
                    # same tenant: ARP answered by the controller, best effort forwards
                    assert emu.ping("t1h1", "t1h3", count=2).ok
                    assert emu.ping("t2h3", "t2h1", count=2).ok

                    before = {n: len(_flows(sw[n])) for n in topo.nodes}
                    t_post = time.perf_counter()
                    r = api.post("/v1/reservations", json={"tenant": 1, "src": "A", "dst": "C",
                                                           "bandwidth_bps": 1_000_000_000,
                                                           "max_latency_ns": 50_000_000})
                    t_post = time.perf_counter() - t_post
                    assert r.status_code == 201, r.text
                    res = r.json()
                    assert res["path"] == ["A", "B", "C"]
                    cookie = specs.reservation_cookie(1, res["id"])
                    meter = specs.reservation_meter_id(res["id"])
                    # entries are on the switches when the 201 returns (the shim waits for barriers)
                    for n in res["path"]:
                        mine = _flows(sw[n], cookie, specs.COOKIE_MASK_RESERVATION)
                        assert len(mine) == 1, (n, mine)
                        assert "nw_src=" + a1.ip in mine[0] and "nw_dst=" + c1.ip in mine[0]
                    assert f"meter:{meter}" in _flows(sw["A"], cookie, specs.COOKIE_MASK_RESERVATION)[0]
                    assert "pop_vlan" in _flows(sw["C"], cookie, specs.COOKIE_MASK_RESERVATION)[0]
                    assert meter in _meter_ids(sw["A"]) and meter not in _meter_ids(sw["B"])
                    assert not _flows(sw["D"], cookie, specs.COOKIE_MASK_RESERVATION)
                    install_ms = [float(x) for x in re.findall(r"installed on 3 switches.*install_ms=([\d.]+)",
                                                               ctl.log_text())]
                    assert install_ms, "no install_ms line in the controller log"
                    print(f"\nPOST -> entries on all 3 switches of the path: {install_ms[-1]:.2f} ms "
                          f"(listener call to last barrier reply); whole POST round trip {1000 * t_post:.1f} ms")
                    # reserved traffic is carried by the reservation entries (their counters move)
                    assert emu.ping("t1h1", "t1h3", count=3, interval_s=0.1).ok
                    # (OVS refreshes flow counters about twice a second: wait for them)
                    _wait(lambda: int(re.search(r"n_packets=(\d+)", _flows(sw["B"], cookie,
                                                specs.COOKIE_MASK_RESERVATION)[0]).group(1)) >= 3,
                          5, "the reservation entry on B to count the pings")

                    # isolation: a spoofed ARP entry and route towards the other tenant's host ...
                    h1, intf = emu.net.get("t1h1"), host_intf_name(a1)
                    rx = lambda h: _ip_in_receives(emu.net.get(h.name).cmd("cat /proc/net/snmp"))  # noqa: E731
                    rx_before = {h.name: rx(h) for h in (a2, c2)}
                    h1.cmd(f"ip route add {c2.ip}/32 dev {intf}; ip neigh replace {c2.ip} lladdr {c2.mac} dev {intf}")
                    out = h1.cmd(f"ping -n -c 2 -i 0.2 -W 1 {c2.ip}")
                    assert " 0% packet loss" not in out and "100% packet loss" in out, out
                    # ... and frames carrying the other tenant's VLAN tag are dropped at the port
                    drop_rule = a1.port
                    tagged_before = _tagged_drops(sw["A"], drop_rule)
                    send = ("from scapy.all import Ether, Dot1Q, IP, ICMP, sendp; "
                            f"sendp([Ether(src='{a1.mac}', dst=d)/Dot1Q(vlan=2)/IP(src='{a1.ip}', dst=ip)/ICMP() "
                            f"for d, ip in (('{c2.mac}', '{c2.ip}'), ('{a2.mac}', '{a2.ip}'))] * 3, "
                            f"iface='{intf}', verbose=False)")
                    h1.cmd(f"{sys.executable} -c \"{send}\"")
                    _wait(lambda: _tagged_drops(sw["A"], drop_rule) >= tagged_before + 6, 5,
                          "the tagged-drop entry to count the forged frames")
                    assert {h.name: rx(h) for h in (a2, c2)} == rx_before

                    # restart: the switches reconnect and resync changes nothing
                    assert ctl.stop() < 2.0
                    mark = len(ctl.log_text())
                    ctl.start()
                    _wait(lambda: _ok(api, "/healthz") and api.get("/healthz").json()["switches_connected"] == 4,
                          20, "4 switches after restart")
                    synced = re.findall(r"synced in [\d.]+ ms: flows \+(\d+) -(\d+), meters \+(\d+) ~(\d+) -(\d+)",
                                        ctl.log_text()[mark:])
                    assert len(synced) == 4 and all(s == ("0", "0", "0", "0", "0") for s in synced), synced
                    assert len(_flows(sw["A"], cookie, specs.COOKIE_MASK_RESERVATION)) == 1

                    # DELETE removes exactly the reservation's entries and its meter
                    assert api.delete(f"/v1/reservations/{res['id']}").status_code == 204
                    for n in topo.nodes:
                        assert not _flows(sw[n], cookie, specs.COOKIE_MASK_RESERVATION)
                        assert len(_flows(sw[n])) == before[n], n
                    assert meter not in _meter_ids(sw["A"])
                    assert emu.ping("t1h1", "t1h3", count=2).ok

                    took = ctl.stop()
                    assert ctl.proc.returncode == 0 and took < 2.0
                    c0_pids = [c.pid for c in emu.net.controllers]
                # the c0 node's shell (Mininet's RemoteController.stop() leaves it) is gone too
                assert len(c0_pids) == 1 and emu.leftovers()["pids"] == []
                assert not os.path.exists(f"/proc/{c0_pids[0]}") or \
                    "Z" in open(f"/proc/{c0_pids[0]}/stat").read().split(") ", 1)[1][:1]
        finally:
            ctl.kill()


def _ok(api, path: str) -> bool:
    try:
        return api.get(path).status_code == 200
    except Exception:  # noqa: BLE001 - not up yet
        return False


def _ip_in_receives(snmp: str) -> int:
    """IP datagrams a host received (``Ip: InReceives`` of its namespace's /proc/net/snmp): ARP,
    which the controller legitimately sends to every host, is not counted."""
    rows = [l.split() for l in snmp.splitlines() if l.startswith("Ip:")]
    return int(rows[1][rows[0].index("InReceives")])


def _tagged_drops(switch: str, port: int) -> int:
    """Packets counted by the table-0 'tagged frame on host port ``port``' drop entry."""
    for l in _flows(switch):
        if (re.search(rf"\bin_port={port}\b", l) and "vlan_tci=0x1000/0x1000" in l
                and "priority=900" in l and "table=0" in l):
            return int(re.search(r"n_packets=(\d+)", l).group(1))
    raise AssertionError(f"no tagged-drop entry for port {port} on {switch}")
