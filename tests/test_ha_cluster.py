"""Three ``dnctl controller --store etcd://`` processes on a 3-member etcd, no switches: one leads,
the others answer writes with 307; the client library follows it and, across a SIGKILL of the
leader, retries with the same Idempotency-Key so nothing is booked twice; a cut-off leader stops
writing. Plus the launcher's one-line refusals of cluster options and the relay that cuts."""

import signal
import socket
import threading
import time
import uuid

import pytest

from controller.launcher import LaunchError, LaunchOptions, resolve
from test_ids_and_restart import ADMIN, square
from tests.etcdhelpers import etcd_cluster
from tools.client import ApiClient
from tools.emulation.controller_proc import ControllerProcess
from tools.emulation.tcpproxy import TcpRelay


def role(c):
    h = c.healthz() if c.running else None
    return (h or {}).get("cluster", {}).get("role")


def wait_leader(ctls, timeout=15.0, but=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for c in ctls:
            if c is not but and role(c) == "leader":
                return c
        time.sleep(0.02)
    raise AssertionError("no leader within %.0f s" % timeout)


@pytest.fixture()
def trio():
    with etcd_cluster(3) as etcd:
        ctls = [ControllerProcess(square(), admin_token=ADMIN, tls=False, store=etcd.url) for _ in range(3)]
        try:
            for c in ctls:
                c.start()
            yield etcd, ctls
        finally:
            for c in ctls:
                c.stop()


def body(port):
    return {"tenant": 1, "src": "A", "dst": "C", "bandwidth_bps": 10**8, "max_latency_ns": 20_000_000,
            "match": {"udp_dst": port}}


def test_a_follower_redirects_writes_serves_reads_and_a_killed_leader_is_replaced(trio):
    etcd, ctls = trio
    lead = wait_leader(ctls)
    followers = [c for c in ctls if c is not lead]
    assert [role(c) for c in followers] == ["follower", "follower"]
    health = followers[0].healthz()["cluster"]
    assert health["leader"] == lead.url and health["etcd"] == "ok" and health["term"] == 0
    assert lead.healthz()["cluster"]["term"] > 0
    with ApiClient(followers[0].url, ADMIN, retry_s=15) as api:     # every write through a follower
        api.post("/v1/tenants", {"name": "alpha"})
        first = api.reserve(body(5000))
        # the follower serves the read itself, once it has reloaded the leader's write
        end = time.monotonic() + 5
        while first["id"] not in {r["id"] for r in api.get("/v1/reservations")["reservations"]}:
            assert time.monotonic() < end, "the follower never showed the leader's write"
            time.sleep(0.05)
        # a POST whose first try dies with the leader is retried with its key, through the follower
        key = uuid.uuid4().hex
        t_kill = time.monotonic()
        lead.proc.send_signal(signal.SIGKILL)
        lead.proc.wait(5)
        second = api.reserve(body(5001), idempotency_key=key)
        took = time.monotonic() - t_kill
        again = api.reserve(body(5001), idempotency_key=key)         # a client retrying once more
        assert again["id"] == second["id"]
        new = wait_leader(ctls, but=lead)
        assert new.healthz()["cluster"]["term"] > 0 and new is not lead
        end = time.monotonic() + 5      # a follower's reads lag the leader by up to its reload interval
        while sorted(r["match"]["udp_dst"] for r in api.get("/v1/reservations")["reservations"]) != [5000, 5001]:
            assert time.monotonic() < end, api.get("/v1/reservations")["reservations"]   # nothing lost, nothing twice
            time.sleep(0.1)
        print(f"kill -> first write admitted by the new leader: {took:.3f} s")
    # the killed member comes back as a follower of the new leader, with the same state
    lead.start()
    end = time.monotonic() + 10
    while role(lead) != "follower" or lead.healthz()["reservations"] != 2:
        assert time.monotonic() < end, lead.healthz()
        time.sleep(0.05)


def test_a_leader_cut_from_etcd_stops_writing_and_another_takes_over():
    with etcd_cluster(3) as etcd:
        relays = {}
        ctls = []
        for _ in range(3):
            rs = [TcpRelay(e) for e in etcd.endpoints]
            c = ControllerProcess(square(), admin_token=ADMIN, tls=False,
                                  store="etcd://" + ",".join(r.endpoint for r in rs))
            relays[id(c)] = rs
            ctls.append(c)
        try:
            for c in ctls:
                c.start()
            lead = wait_leader(ctls)
            with ApiClient(lead.url, ADMIN) as api:
                api.post("/v1/tenants", {"name": "alpha"})
            for r in relays[id(lead)]:
                r.cut()
            t0 = time.monotonic()
            new = wait_leader(ctls, timeout=20, but=lead)
            took = time.monotonic() - t0
            # the lease (2 s) decides: the cut-off leader's REST port still answers
            assert took > 1.0, took
            end = time.monotonic() + 20      # it follows, and says etcd does not answer (its calls time out)
            while (lead.healthz() or {}).get("cluster", {}) != {**lead.healthz()["cluster"], "role": "follower",
                                                                "etcd": "unreachable", "term": 0}:
                assert time.monotonic() < end, lead.healthz()
                time.sleep(0.1)
            # a write sent to the former leader is not admitted there: it redirects to the new one
            with ApiClient(new.url, ADMIN) as api:
                api.reserve(body(5000))
                n = len(api.get("/v1/reservations")["reservations"])
            assert n == 1
        finally:
            for c in ctls:
                c.stop()
            for rs in relays.values():
                for r in rs:
                    r.close()


def test_cluster_options_are_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = dict(topology="fntf40", of_plain=True)
    for opts, msg in (
            (dict(store="etcd://127.0.0.1:2379", db=str(tmp_path / "x.db")), "--store and --db"),
            (dict(store="http://127.0.0.1:2379"), "expected etcd://HOST:PORT"),
            (dict(store="etcd://127.0.0.1:2379", lease_ttl=1), "--lease-ttl 1"),
            (dict(store="etcd://127.0.0.1:2379", advertise_url="ftp://x"), "--advertise-url ftp://x"),
            (dict(lease_ttl=5), "belong to a cluster")):
        with pytest.raises(LaunchError) as e:
            resolve(LaunchOptions(**base, **opts))
        assert msg in str(e.value) and "\n" not in str(e.value) and e.value.code == 2
    r = resolve(LaunchOptions(**base, store="etcd://127.0.0.1:2379,127.0.0.2:2380", advertise_url="http://h:1/"))
    assert r.etcd == ["127.0.0.1:2379", "127.0.0.2:2380"] and r.advertise_url == "http://h:1" and r.lease_ttl == 2


def test_a_cut_relay_is_silent_both_ways_and_heals():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)

    def echo():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=lambda c=conn: [c.sendall(d) for d in iter(lambda: c.recv(100), b"")],
                             daemon=True).start()

    threading.Thread(target=echo, daemon=True).start()
    relay = TcpRelay(f"127.0.0.1:{server.getsockname()[1]}")
    try:
        a = socket.create_connection(("127.0.0.1", relay.port), timeout=2)
        a.sendall(b"hello")
        assert a.recv(100) == b"hello"
        relay.cut()
        a.sendall(b"lost")
        a.settimeout(0.5)
        with pytest.raises(socket.timeout):
            a.recv(100)
        b = socket.create_connection(("127.0.0.1", relay.port), timeout=2)     # accepted, never answered
        b.settimeout(0.5)
        b.sendall(b"x")
        with pytest.raises(socket.timeout):
            b.recv(100)
        relay.heal()
        c = socket.create_connection(("127.0.0.1", relay.port), timeout=2)
        c.sendall(b"back")
        assert c.recv(100) == b"back"
        for s in (a, b, c):
            s.close()
    finally:
        relay.close()
        server.close()
