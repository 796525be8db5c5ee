"""OpenFlow MASTER/SLAVE roles for a cluster of controllers (issue 14): ``controller.ofroles`` and
the role side of ``controller.ofshim``.

Three tiers:

- the pure role logic: generation ids compared by their wrapped 64-bit difference, the id a
  follower sends with ``SLAVE``, what an error means for the role, the role state and its gate;
- what Open vSwitch does, which the shim relies on: two hand-written OpenFlow 1.3 controllers
  (plain sockets, os-ken's parser) on one userspace bridge. The newer ``MASTER`` demotes the
  older to ``SLAVE``, whose flow-mods and packet-outs are refused (``OFPBRC_IS_SLAVE``) and not
  applied; an older generation id is refused (``OFPRRFC_STALE``), for ``MASTER`` and ``SLAVE``
  alike; a ``NOCHANGE`` request tells the switch's current id;
- the real ``DetnetShim`` on switches of a small model of those rules (``RoleBridge``, one per
  dpid, one ``RoleConn`` per controller connection, replies handed to the shim's own handlers):
  a follower writes nothing, ``set_role(True, g)`` sends ``MASTER(g)`` before any write and then
  resynchronises, a newer leader deposes the older (``on_deposed`` called once), a demotion
  stops every write, ``ha=False`` sends no role request at all.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import threading
import time
import types
import uuid

import pytest

from controller import ofroles
from controller.ofroles import FOLLOWER, LEADER, STANDALONE, RoleState

# ----------------------------------------------------------------------------------- pure logic


def test_constants_are_openflow_1_3s():
    from os_ken.ofproto import ofproto_v1_3 as o
    assert (ofroles.OFPCR_ROLE_NOCHANGE, ofroles.OFPCR_ROLE_EQUAL, ofroles.OFPCR_ROLE_MASTER,
            ofroles.OFPCR_ROLE_SLAVE) == (o.OFPCR_ROLE_NOCHANGE, o.OFPCR_ROLE_EQUAL, o.OFPCR_ROLE_MASTER,
                                          o.OFPCR_ROLE_SLAVE)
    assert (ofroles.OFPET_BAD_REQUEST, ofroles.OFPBRC_IS_SLAVE) == (o.OFPET_BAD_REQUEST, o.OFPBRC_IS_SLAVE)
    assert (ofroles.OFPET_ROLE_REQUEST_FAILED, ofroles.OFPRRFC_STALE) == (o.OFPET_ROLE_REQUEST_FAILED,
                                                                        o.OFPRRFC_STALE)


def test_generation_ids_compare_by_wrapped_difference():
    assert ofroles.is_stale(5, 6) and not ofroles.is_stale(6, 6) and not ofroles.is_stale(7, 6)
    assert ofroles.is_stale(0, 6)                       # SLAVE with 0 after MASTER 6: stale on OVS too
    assert not ofroles.is_stale(3, 2 ** 64 - 5)         # wrapped past the top: newer
    assert ofroles.is_stale(2 ** 64 - 5, 3)
    assert ofroles.is_stale(2 ** 63 + 6, 6) and not ofroles.is_stale(2 ** 63 + 5, 6)   # half the ring
    assert ofroles.newer(5, 6) == 6 and ofroles.newer(6, 5) == 6 and ofroles.newer(4, 4) == 4
    for bad in (-1, 2 ** 64 - 1, 2 ** 64, 1.5, "3", True, None):
        with pytest.raises(ValueError):
            ofroles.check_generation(bad)
    assert ofroles.check_generation(0) == 0 and ofroles.check_generation(2 ** 64 - 2) == 2 ** 64 - 2


def test_slave_generation_is_never_older_than_the_switchs():
    assert ofroles.slave_generation(None, 4) == 4
    assert ofroles.slave_generation(ofroles.UNDEFINED, 4) == 4     # no id set on the switch yet
    assert ofroles.slave_generation(9, 4) == 9                     # a newer leader claimed: follow its id
    assert ofroles.slave_generation(3, 4) == 4                     # we know a newer term than the switch


def test_errors_classified_for_the_role():
    c = ofroles.classify
    M, S = ofroles.OFPCR_ROLE_MASTER, ofroles.OFPCR_ROLE_SLAVE
    assert c(11, 0, request_role=M, role=LEADER).kind == "deposed"
    assert c(11, 0, request_role=M, role=FOLLOWER).kind == "deposed"     # while claiming
    assert c(11, 0, request_role=S, role=FOLLOWER).kind == "stale_slave"
    assert c(11, 2, request_role=M, role=LEADER).kind == "role_failed"   # OFPRRFC_BAD_ROLE
    assert c(1, 1, request_role=S, role=FOLLOWER).kind == "role_failed"  # any error to a role request
    assert c(1, 10, request_role=None, role=LEADER).kind == "deposed"    # a write refused: someone else leads
    assert c(1, 10, request_role=None, role=FOLLOWER).kind == "is_slave"
    assert c(1, 10, request_role=None, role=STANDALONE).kind == "is_slave"
    assert c(12, 1, request_role=None, role=LEADER) is None              # a meter-mod error: not a role matter
    assert c(11, 0, request_role=None, role=LEADER) is None              # not answering a role request


def test_role_state_transitions():
    alone = RoleState(ha=False)
    assert alone.role == (STANDALONE, 0) and alone.may_write()
    with pytest.raises(RuntimeError):
        alone.claim(3)
    with pytest.raises(RuntimeError):
        alone.follow()

    s = RoleState(ha=True)
    assert s.role == (FOLLOWER, 0) and not s.may_write() and not s.claiming()
    t = s.claim(5)
    assert s.claiming() and not s.may_write() and s.role == (FOLLOWER, 5)   # no writes before the replies
    assert s.lead(t) and s.role == (LEADER, 5) and s.may_write()
    assert not s.depose(4)                          # an old term's refusal deposes nothing
    assert s.depose(5) and s.role == (FOLLOWER, 5) and not s.may_write()
    assert not s.depose(5)                          # reported once
    # a claim overtaken by a demotion does not become leadership
    t = s.claim(7)
    assert s.follow(9) == FOLLOWER and not s.lead(t) and s.role == (FOLLOWER, 9)
    t1 = s.claim(10)
    t2 = s.claim(11)
    assert not s.lead(t1) and s.lead(t2) and s.role == (LEADER, 11)
    assert s.follow(3) == LEADER and s.role == (FOLLOWER, 11)   # an older term learnt keeps the newer


def test_role_gate_holds_a_demotion_until_the_send_under_way_is_done():
    s = RoleState(ha=True)
    s.lead(s.claim(1))
    inside, release, order = threading.Event(), threading.Event(), []

    def sender():
        with s.gate() as may:
            order.append(("send", may))
            inside.set()
            release.wait(5)

    th = threading.Thread(target=sender)
    th.start()
    assert inside.wait(5)
    demoter = threading.Thread(target=lambda: order.append(("demoted", s.follow())))
    demoter.start()
    time.sleep(0.2)
    assert order == [("send", True)]                 # the demotion waits for the send under way
    release.set()
    th.join(5), demoter.join(5)
    assert order == [("send", True), ("demoted", LEADER)]
    with s.gate() as may:
        assert not may                               # and every later send sees it


# ----------------------------------------------------------------------------------- Open vSwitch

def _of():
    from os_ken.ofproto import ofproto_v1_3 as o, ofproto_v1_3_parser as p
    return o, p


class HandController:
    """One OpenFlow 1.3 controller by hand: a listening socket the bridge connects to."""

    def __init__(self) -> None:
        o, p = _of()
        self.o, self.p = o, p
        self.dp = types.SimpleNamespace(ofproto=o, ofproto_parser=p, id=None)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.sock: socket.socket | None = None
        self.xid = 1000

    def accept(self, timeout: float = 30) -> None:
        self.listener.settimeout(timeout)
        self.sock, _ = self.listener.accept()
        self.sock.settimeout(10)
        self.sock.sendall(struct.pack("!BBHI", 4, self.o.OFPT_HELLO, 8, 1))
        self._until(lambda m: m.msg_type == self.o.OFPT_HELLO)

    def _recv(self):
        from os_ken.ofproto import ofproto_parser
        buf = b""
        while len(buf) < 8:
            chunk = self.sock.recv(8 - len(buf))
            assert chunk, "the switch closed the connection"
            buf += chunk
        version, msg_type, length, xid = struct.unpack("!BBHI", buf)
        while len(buf) < length:
            chunk = self.sock.recv(length - len(buf))
            assert chunk, "the switch closed the connection"
            buf += chunk
        return ofproto_parser.msg(self.dp, version, msg_type, length, xid, buf)

    def _until(self, pred):
        while True:
            m = self._recv()
            if m.msg_type == self.o.OFPT_ECHO_REQUEST:
                r = self.p.OFPEchoReply(self.dp)
                r.set_xid(m.xid)
                r.serialize()
                self.sock.sendall(r.buf)
            elif pred(m):
                return m

    def ask(self, msg) -> list:
        """Send ``msg`` and a barrier; every answer to ``msg`` (replies, errors) before the barrier's."""
        sent = []
        for m in (msg, self.p.OFPBarrierRequest(self.dp)):
            self.xid += 1
            m.set_xid(self.xid)
            m.serialize()
            self.sock.sendall(m.buf)
            sent.append(self.xid)
        out = []
        while True:
            m = self._until(lambda m: m.xid in sent)
            if m.xid == sent[1]:
                return out
            out.append(m)

    def role(self, role: int, generation: int) -> tuple:
        """A role request: ("reply", role, generation id) or ("error", type, code)."""
        (m,) = self.ask(self.p.OFPRoleRequest(self.dp, role, generation))
        if m.msg_type == self.o.OFPT_ERROR:
            return ("error", m.type, m.code)
        return ("reply", m.role, m.generation_id)

    def flow(self, priority: int) -> list[tuple[int, int]]:
        """Add a flow (cookie 0x77, in_port=1, drop); the errors it got as (type, code)."""
        m = self.p.OFPFlowMod(self.dp, cookie=0x77, table_id=0, command=self.o.OFPFC_ADD, priority=priority,
                              match=self.p.OFPMatch(in_port=1), instructions=[])
        return [(e.type, e.code) for e in self.ask(m) if e.msg_type == self.o.OFPT_ERROR]

    def close(self) -> None:
        for s in (self.sock, self.listener):
            if s is not None:
                s.close()


def _sh(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, timeout=20, check=True).stdout


@pytest.fixture
def two_controllers_one_bridge():
    from emuhelpers import missing_features
    missing = [m for m in missing_features() if m != "mininet not importable"]   # plain OVS is enough
    if missing:
        pytest.skip("machine lacks: " + ", ".join(missing))
    from tools.emulation import ovs
    from tools.emulation.network import emulation_lock
    bridge = "dnrole" + uuid.uuid4().hex[:6]
    c1, c2 = HandController(), HandController()
    with emulation_lock():
        ovs.ensure_ovs_running()
        try:
            _sh("ovs-vsctl", "add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev",
                "protocols=OpenFlow13", "fail_mode=secure")
            _sh("ovs-vsctl", "set-controller", bridge, f"tcp:127.0.0.1:{c1.port}", f"tcp:127.0.0.1:{c2.port}")
            c1.accept()
            c2.accept()
            yield bridge, c1, c2
        finally:
            c1.close()
            c2.close()
            subprocess.run(["ovs-vsctl", "--if-exists", "del-br", bridge], capture_output=True, timeout=20)


def _flows(bridge: str) -> list[str]:
    return [l for l in _sh("ovs-ofctl", "-O", "OpenFlow13", "dump-flows", bridge).splitlines() if "cookie=" in l]


@pytest.mark.emulation
def test_ovs_newer_master_demotes_the_older_and_refuses_its_writes_and_stale_claims(two_controllers_one_bridge):
    bridge, c1, c2 = two_controllers_one_bridge
    o = c1.o
    # a new connection is EQUAL and the bridge has no generation id yet (2**64-1 in the reply)
    assert c1.role(o.OFPCR_ROLE_NOCHANGE, 0) == ("reply", o.OFPCR_ROLE_EQUAL, ofroles.UNDEFINED)
    # (a) controller 1 MASTER with 5, then controller 2 MASTER with 6: controller 1 is SLAVE now
    assert c1.role(o.OFPCR_ROLE_MASTER, 5) == ("reply", o.OFPCR_ROLE_MASTER, 5)
    assert c2.role(o.OFPCR_ROLE_MASTER, 6) == ("reply", o.OFPCR_ROLE_MASTER, 6)
    assert c1.role(o.OFPCR_ROLE_NOCHANGE, 0) == ("reply", o.OFPCR_ROLE_SLAVE, 6)
    assert c1.flow(111) == [(o.OFPET_BAD_REQUEST, o.OFPBRC_IS_SLAVE)]
    assert not _flows(bridge)
    out = c1.ask(c1.p.OFPPacketOut(c1.dp, buffer_id=o.OFP_NO_BUFFER, in_port=o.OFPP_CONTROLLER,
                                   actions=[c1.p.OFPActionOutput(1, 0)], data=b"\x01" * 60))
    assert [(e.type, e.code) for e in out] == [(o.OFPET_BAD_REQUEST, o.OFPBRC_IS_SLAVE)]   # no LLDP from a slave
    # reads stay allowed to a slave
    (stats,) = c1.ask(c1.p.OFPFlowStatsRequest(c1.dp, 0, o.OFPTT_ALL, o.OFPP_ANY, o.OFPG_ANY, 0, 0,
                                               c1.p.OFPMatch()))
    assert stats.msg_type == o.OFPT_MULTIPART_REPLY
    # (b) controller 1 asks MASTER with 5 again: stale. SLAVE with 0 is stale too (OVS checks the id
    # of a SLAVE request), SLAVE with the bridge's current id is accepted
    stale = ("error", o.OFPET_ROLE_REQUEST_FAILED, o.OFPRRFC_STALE)
    assert c1.role(o.OFPCR_ROLE_MASTER, 5) == stale
    assert c1.role(o.OFPCR_ROLE_SLAVE, 0) == stale
    assert c1.role(o.OFPCR_ROLE_SLAVE, 6) == ("reply", o.OFPCR_ROLE_SLAVE, 6)
    assert c2.role(o.OFPCR_ROLE_NOCHANGE, 0) == ("reply", o.OFPCR_ROLE_MASTER, 6)   # the leader unmoved
    # (c) controller 2's flow-mods are accepted
    assert c2.flow(222) == []
    flows = _flows(bridge)
    assert len(flows) == 1 and "priority=222" in flows[0] and "cookie=0x77" in flows[0]


@pytest.mark.emulation
def test_ovs_a_new_connection_slave_at_0_stays_equal_and_may_write(two_controllers_one_bridge):
    """Why the shim asks the bridge's id before SLAVE: a follower whose SLAVE with 0 is refused as
    stale keeps the EQUAL role of a new connection, and EQUAL may write."""
    bridge, c1, c2 = two_controllers_one_bridge
    o = c1.o
    assert c2.role(o.OFPCR_ROLE_MASTER, 6) == ("reply", o.OFPCR_ROLE_MASTER, 6)
    assert c1.role(o.OFPCR_ROLE_SLAVE, 0) == ("error", o.OFPET_ROLE_REQUEST_FAILED, o.OFPRRFC_STALE)
    assert c1.role(o.OFPCR_ROLE_NOCHANGE, 0) == ("reply", o.OFPCR_ROLE_EQUAL, 6)
    assert c1.flow(333) == [] and any("priority=333" in l for l in _flows(bridge))


# ----------------------------------------------------------------------------------- the shim

MAIN, DEAD = "main", "dead"   # os-ken's dispatcher names, as the shim's handlers compare them


class RoleBridge:
    """One switch as Open vSwitch treats roles (measured above): one generation id for all its
    controllers, checked for MASTER and SLAVE requests by wrapped difference; a new MASTER makes
    the other masters SLAVE; writes from a SLAVE refused with OFPBRC_IS_SLAVE; NOCHANGE tells the
    role and the id (2**64-1 when none)."""

    def __init__(self, dpid: int) -> None:
        self.dpid = dpid
        self.generation: int | None = None
        self.conns: list[RoleConn] = []
        self.lock = threading.RLock()
        self.applied: list[tuple[str, str]] = []    # (controller, message type) of the writes applied


class RoleConn:
    """One controller's connection to a ``RoleBridge``: the datapath the shim sees. Answers at once
    through the shim's own handlers; remembers every message the shim sent."""

    WRITES = ("OFPFlowMod", "OFPMeterMod", "OFPGroupMod", "OFPPacketOut")

    def __init__(self, bridge: RoleBridge, shim, name: str) -> None:
        o, p = _of()
        self.ofproto, self.ofproto_parser = o, p
        self.bridge, self.shim, self.name = bridge, shim, name
        self.id = bridge.dpid
        self.address = ("127.0.0.1", 40000 + len(bridge.conns))
        self.role = o.OFPCR_ROLE_EQUAL
        self.sent: list[tuple[str, int | None, int | None]] = []   # (type, role asked, generation)
        self.xid = 0
        bridge.conns.append(self)

    def set_xid(self, msg) -> int:
        self.xid += 1
        msg.set_xid(self.xid)
        return self.xid

    def close(self) -> None:
        pass

    def writes(self) -> list[str]:
        return [t for t, _, _ in self.sent if t in self.WRITES]

    def send_msg(self, msg) -> bool:
        return self._take(type(msg).__name__, msg.xid, getattr(msg, "role", None), getattr(msg, "generation_id", None))

    def send(self, buf: bytes) -> bool:
        """Like os-ken's ``Datapath.send``: serialised messages (a program's phase), one write."""
        from ofwire import split
        for kind, xid, _ in split(buf):
            assert kind != "OFPRoleRequest", "role requests go one by one (send_msg)"
            self._take(kind, xid, None, None)
        return True

    def _take(self, kind: str, xid: int, role: int | None, generation: int | None) -> bool:
        o = self.ofproto
        self.sent.append((kind, role, generation))
        ev = lambda **kw: types.SimpleNamespace(msg=types.SimpleNamespace(datapath=self, xid=xid, **kw))
        with self.bridge.lock:
            if kind == "OFPRoleRequest":
                g, cached = generation, self.bridge.generation
                if role in (o.OFPCR_ROLE_MASTER, o.OFPCR_ROLE_SLAVE):
                    if cached is not None and ((g - cached) & (2 ** 64 - 1)) >> 63:
                        self.shim._error(ev(type=o.OFPET_ROLE_REQUEST_FAILED, code=o.OFPRRFC_STALE))
                        return True
                    self.bridge.generation = g
                if role != o.OFPCR_ROLE_NOCHANGE:
                    if role == o.OFPCR_ROLE_MASTER:
                        for c in self.bridge.conns:
                            if c.role == o.OFPCR_ROLE_MASTER:
                                c.role = o.OFPCR_ROLE_SLAVE
                    self.role = role
                gen = self.bridge.generation
                self.shim._role_reply(ev(role=self.role, generation_id=ofroles.UNDEFINED if gen is None else gen))
            elif kind in self.WRITES:
                if self.role == o.OFPCR_ROLE_SLAVE:
                    self.shim._error(ev(type=o.OFPET_BAD_REQUEST, code=o.OFPBRC_IS_SLAVE))
                else:
                    self.bridge.applied.append((self.name, kind))
            elif kind == "OFPBarrierRequest":
                self.shim._barrier_reply(ev())
            elif kind.endswith("StatsRequest"):
                self.shim._stats_reply(ev(flags=0, body=[]))
        return True


@pytest.fixture
def make_shim(tmp_path):
    """``make_shim(name, ha=True)``: a ``DetnetShim`` over its own controller service (a fresh
    SQLite database, the Beijing line) as os-ken would build it, without os-ken's threads."""
    from apihelpers import beijing_line
    from controller import ofshim
    from controller.service import ControllerService

    from topologies.hosts import HostPlan
    topo = beijing_line("roles")
    plan = HostPlan.build(topo, [(1, "Beijing"), (1, "Jinan")])
    made = []

    def make(name: str, ha: bool = True, barrier_timeout: float = 2.0):
        service = ControllerService(topo, db_path=str(tmp_path / f"{name}.db"), admin_token="t" * 32, host_plan=plan,
                                    store_synchronous="OFF")
        deposed: list[str] = []
        ofshim.configure(service, barrier_timeout=barrier_timeout, ha=ha, on_deposed=deposed.append)
        shim = ofshim.DetnetShim()
        shim.deposed = deposed
        made.append((shim, service))
        return shim

    yield make
    for shim, service in made:
        shim.close()
        service.close()


def _connect(shim, bridge: RoleBridge, name: str) -> RoleConn:
    conn = RoleConn(bridge, shim, name)
    shim._state_change(types.SimpleNamespace(datapath=conn, state=MAIN_DISPATCHER()))
    return conn


def MAIN_DISPATCHER():
    from os_ken.controller.handler import MAIN_DISPATCHER as m
    return m


def _wait(cond, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _bridges(shim) -> dict[str, RoleBridge]:
    plan = shim.plan
    return {n: RoleBridge(plan.dpid(n)) for n in plan.topology.nodes}


def _reserve(shim) -> None:
    """Admit one reservation Beijing -> Jinan in the shim's service (the service then calls the
    shim's ``reservations_added``)."""
    svc = shim.service
    admin = svc.authenticate("t" * 32)
    tenant, _ = svc.create_tenant(f"blue{len(svc.reservations_snapshot())}", principal=admin)
    res = svc.reserve(admin, {"tenant": tenant.id, "src": "Beijing", "dst": "Jinan", "bandwidth_bps": 10 ** 7,
                              "max_latency_ns": 50_000_000})
    assert hasattr(res, "path"), res


def test_standalone_shim_sends_no_role_request_and_programs_on_connect(make_shim):
    shim = make_shim("solo", ha=False)
    bridges = _bridges(shim)
    conns = {n: _connect(shim, b, "solo") for n, b in bridges.items()}
    _wait(lambda: len(shim.service.switches_connected()) == 3, what="the resyncs")
    assert shim.role == (STANDALONE, 0)
    for c in conns.values():
        assert "OFPRoleRequest" not in [t for t, _, _ in c.sent]
        assert "OFPFlowMod" in c.writes()


def test_follower_writes_nothing_then_leads_with_master_before_any_write(make_shim):
    o, _ = _of()
    shim = make_shim("one")
    bridges = _bridges(shim)
    conns = {n: _connect(shim, b, "one") for n, b in bridges.items()}
    _wait(lambda: all(c.role == o.OFPCR_ROLE_SLAVE for c in conns.values()), what="SLAVE on every switch")
    _reserve(shim)   # the service calls reservations_added: a follower programs nothing
    time.sleep(0.2)
    assert shim.role == (FOLLOWER, 0)
    for c in conns.values():
        assert c.sent == [("OFPRoleRequest", o.OFPCR_ROLE_NOCHANGE, 0), ("OFPRoleRequest", o.OFPCR_ROLE_SLAVE, 0)]
    assert shim.service.switches_connected() == set()   # no switch_connected audit from a follower

    summary = shim.set_role(True, 7)
    assert summary == {"role": LEADER, "generation_id": 7, "switches": 3, "confirmed": 3, "refused": []}
    assert shim.role == (LEADER, 7)
    for n, c in conns.items():
        kinds = [t for t, _, _ in c.sent]
        first_write = min(kinds.index(w) for w in RoleConn.WRITES if w in kinds)
        assert c.sent[2] == ("OFPRoleRequest", o.OFPCR_ROLE_MASTER, 7) and first_write > 2, n
        assert c.role == o.OFPCR_ROLE_MASTER and bridges[n].generation == 7
        assert "OFPFlowMod" in c.writes() and "OFPMeterMod" in c.writes(), n   # resynchronised
    assert shim.service.switches_connected() == {b.dpid for b in bridges.values()}
    # a switch that connects to the leader later gets MASTER with its generation id before anything else
    late = RoleBridge(bridges["Tianjin"].dpid)
    shim._state_change(types.SimpleNamespace(datapath=conns["Tianjin"], state=_dead()))
    again = _connect(shim, late, "one")
    _wait(lambda: "OFPFlowMod" in again.writes(), what="the late switch's resync")
    assert again.sent[0] == ("OFPRoleRequest", o.OFPCR_ROLE_MASTER, 7)


def _dead():
    from os_ken.controller.handler import DEAD_DISPATCHER
    return DEAD_DISPATCHER


def test_newer_leader_deposes_the_older_once_and_it_stops_writing(make_shim):
    o, _ = _of()
    a, b = make_shim("a"), make_shim("b")
    bridges = _bridges(a)
    ca = {n: _connect(a, br, "a") for n, br in bridges.items()}
    cb = {n: _connect(b, br, "b") for n, br in bridges.items()}
    _wait(lambda: all(c.role == o.OFPCR_ROLE_SLAVE for c in [*ca.values(), *cb.values()]), what="followers")
    assert a.set_role(True, 5)["confirmed"] == 3
    assert b.set_role(True, 6)["confirmed"] == 3          # b claims with the newer term
    assert all(c.role == o.OFPCR_ROLE_SLAVE for c in ca.values())
    applied_by_a = [x for br in bridges.values() for x in br.applied if x[0] == "a"]
    _reserve(a)      # a has not heard of the election yet: its writes are refused, it is deposed
    _wait(lambda: a.deposed, what="on_deposed")
    assert a.role == (FOLLOWER, 5) and len(a.deposed) == 1
    assert "refused" in a.deposed[0] and "SLAVE" in a.deposed[0], a.deposed
    assert [x for br in bridges.values() for x in br.applied if x[0] == "a"] == applied_by_a   # nothing applied
    # after the deposition a sends SLAVE with the switches' id (6), which they accept
    _wait(lambda: all(c.sent[-1] == ("OFPRoleRequest", o.OFPCR_ROLE_SLAVE, 6) for c in ca.values()),
          what="SLAVE at generation 6")
    time.sleep(0.2)
    assert len(a.deposed) == 1                             # once, although every switch refused
    # a claims its old term again: MASTER 5 refused as stale, reported once more (it claimed again)
    summary = a.set_role(True, 5)
    assert summary["confirmed"] == 0 and summary["role"] == FOLLOWER
    _wait(lambda: len(a.deposed) == 2, what="the second deposition")
    assert "refused MASTER with generation id 5 (stale)" in a.deposed[1]
    assert a.role_errors["stale_master"] == 3
    assert b.role == (LEADER, 6) and all(c.role == o.OFPCR_ROLE_MASTER for c in cb.values())


def test_demotion_stops_writes_before_slave_goes_out(make_shim):
    o, _ = _of()
    shim = make_shim("d")
    bridges = _bridges(shim)
    conns = {n: _connect(shim, b, "d") for n, b in bridges.items()}
    _wait(lambda: all(c.role == o.OFPCR_ROLE_SLAVE for c in conns.values()), what="followers")
    shim.set_role(True, 3)
    before = {n: len(c.writes()) for n, c in conns.items()}
    under_way = shim._ready_dps()          # what a program running at the demotion holds
    summary = shim.set_role(False, 4)
    assert summary["role"] == FOLLOWER and summary["confirmed"] == 3 and shim.role == (FOLLOWER, 4)
    for c in conns.values():
        assert c.sent[-1] == ("OFPRoleRequest", o.OFPCR_ROLE_SLAVE, 4) and c.role == o.OFPCR_ROLE_SLAVE
    _reserve(shim)
    shim._update_best_effort()
    from controller.ofchannel import packet_out
    for dp in under_way.values():           # its next messages are not sent either
        shim.channel.send(dp, packet_out(dp, 1, b"\x01" * 60), "packet-out")
    time.sleep(0.2)
    assert {n: len(c.writes()) for n, c in conns.items()} == before
    with pytest.raises(ValueError):
        shim.set_role(True, -1)


# ----------------------------------------------------------------------------------- the shim on Open vSwitch

_CHILD = r'''
"""One controller's OpenFlow side: the real shim in os-ken (ha=True), driven over stdin."""
import json, logging, os, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
port, db = int(sys.argv[1]), sys.argv[2]
from apihelpers import beijing_line
from controller.dataplane import specs
from controller.service import ControllerService
from topologies.hosts import HostPlan
topo = beijing_line("roles")
plan = HostPlan.build(topo, [(1, "Beijing"), (1, "Jinan")])
svc = ControllerService(topo, db_path=db, admin_token="t" * 32, host_plan=plan, store_synchronous="OFF")
from os_ken.base import app_manager
from os_ken import cfg as oscfg
import os_ken.controller.controller  # noqa: F401
from controller import ofshim
oscfg.CONF.set_override("ofp_tcp_listen_port", port)
oscfg.CONF.set_override("ofp_listen_host", "127.0.0.1")
say = lambda d: print(json.dumps(d), flush=True)
ofshim.configure(svc, barrier_timeout=5, ha=True, on_deposed=lambda reason: say({"deposed": reason}))
mgr = app_manager.AppManager.get_instance()
mgr.load_apps(["controller.ofshim"])
mgr.instantiate_apps(**mgr.create_contexts())
shim = ofshim.instance()
say({"ready": True})
for line in sys.stdin:
    cmd, *args = line.split()
    if cmd == "lead":
        out = shim.set_role(True, int(args[0]))
    elif cmd == "follow":
        out = shim.set_role(False, int(args[0]))
    elif cmd == "role":
        out = {"role": list(shim.role), "errors": shim.role_errors, "dpids": sorted(shim._dps)}
    elif cmd == "reserve":
        admin = svc.authenticate("t" * 32)
        tenant, _ = svc.create_tenant("blue", principal=admin)
        res = svc.reserve(admin, {"tenant": tenant.id, "src": "Beijing", "dst": "Jinan",
                                  "bandwidth_bps": 10 ** 7, "max_latency_ns": 50_000_000})
        out = {"cookie": specs.reservation_cookie(tenant.id, res.id)}
    else:
        break
    say({"answer": out})
shim.close()
os._exit(0)
'''


class ShimProcess:
    """A child process running the real shim (os-ken, ``ha=True``) over its own service."""

    def __init__(self, tmp_path, name: str) -> None:
        import os
        import queue
        import sys
        from tools.emulation.controller_proc import free_port
        self.port = free_port()
        self.log = tmp_path / f"{name}.log"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(__import__("pathlib").Path(__file__).parent),
                                                             os.getcwd()]))
        self.proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(self.port), str(tmp_path / f"{name}.db")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(self.log, "w"),
                                     text=True, env=env)
        self.lines: queue.Queue = queue.Queue()
        self.deposed: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        assert self._next("ready", 60)

    def _read(self) -> None:
        import json
        for line in self.proc.stdout:
            try:
                d = json.loads(line)
            except ValueError:
                continue
            if "deposed" in d:
                self.deposed.append(d["deposed"])
            else:
                self.lines.put(d)

    def _next(self, key: str, timeout: float):
        import queue
        try:
            d = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no answer from the shim process; its log:\n{self.log.read_text()[-3000:]}")
        return d[key]

    def ask(self, cmd: str, timeout: float = 60):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self._next("answer", timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def _table(bridge: str) -> list[str]:
    import re
    return sorted(re.sub(r"\b(duration|n_packets|n_bytes|idle_age|hard_age)=[^,\s]+,?\s*", "", l).strip()
                  for l in _flows(bridge))


@pytest.mark.emulation
def test_real_shims_on_ovs_follow_lead_and_the_older_leader_is_deposed(tmp_path):
    from emuhelpers import missing_features
    missing = [m for m in missing_features() if m != "mininet not importable"]
    if missing:
        pytest.skip("machine lacks: " + ", ".join(missing))
    from apihelpers import beijing_line
    from controller.dataplane import specs
    from tools.emulation import ovs
    from tools.emulation.network import emulation_lock
    from topologies.hosts import HostPlan

    dpid = HostPlan.build(beijing_line("roles"), [(1, "Beijing"), (1, "Jinan")]).dpid("Beijing")
    bridge = "dnrole" + uuid.uuid4().hex[:6]
    procs: list[ShimProcess] = []
    with emulation_lock():
        ovs.ensure_ovs_running()
        try:
            a = ShimProcess(tmp_path, "a")
            procs.append(a)
            b = ShimProcess(tmp_path, "b")
            procs.append(b)
            _sh("ovs-vsctl", "add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev",
                "protocols=OpenFlow13", "fail_mode=secure", f"other-config:datapath-id={dpid:016x}")
            _sh("ovs-vsctl", "set-controller", bridge, f"tcp:127.0.0.1:{a.port}", f"tcp:127.0.0.1:{b.port}")
            _wait(lambda: all(p.ask("role")["dpids"] == [dpid] for p in procs), 30, "both shims connected")
            time.sleep(1)
            assert a.ask("role")["role"] == [FOLLOWER, 0] and _flows(bridge) == []   # followers write nothing

            assert a.ask("lead 5") == {"role": LEADER, "generation_id": 5, "switches": 1, "confirmed": 1,
                                       "refused": []}
            _wait(lambda: _flows(bridge), 10, "a's resync entries")
            programmed = _table(bridge)
            assert b.ask("lead 6")["confirmed"] == 1
            assert _table(bridge) == programmed        # b found a's entries: nothing to change
            synced = [l for l in b.log.read_text().splitlines() if "synced in" in l]
            assert len(synced) == 1 and "flows +0 -0, meters +0 ~0 -0, groups +0 ~0 -0" in synced[0], synced

            cookie = a.ask("reserve")["cookie"]       # a still believes it leads: its writes are refused
            _wait(lambda: a.deposed, 10, "a deposed")
            assert "this controller is SLAVE there" in a.deposed[0], a.deposed
            assert a.ask("role")["role"] == [FOLLOWER, 5]
            mask = f"cookie={cookie:#x}/{specs.COOKIE_MASK_RESERVATION:#x}"
            assert "cookie=" not in _sh("ovs-ofctl", "-O", "OpenFlow13", "dump-flows", bridge, mask)
            assert _table(bridge) == programmed

            assert b.ask("reserve")["cookie"] == cookie      # the leader's reservation is programmed
            _wait(lambda: "cookie=" in _sh("ovs-ofctl", "-O", "OpenFlow13", "dump-flows", bridge, mask), 10,
                  "b's reservation entry")

            assert a.ask("lead 5")["confirmed"] == 0          # a's old term again: stale
            _wait(lambda: len(a.deposed) == 2, 10, "a deposed again")
            assert "refused MASTER with generation id 5 (stale)" in a.deposed[1]
            assert b.ask("role")["role"] == [LEADER, 6]
            log = a.log.read_text()
            assert "WARNING detnet.ofshim: deposed: switch Beijing refused MASTER with generation id 5 (stale)" in log
            installed = [l for l in log.splitlines() if "reservation r1 installed" in l]   # reported as failed
            assert len(installed) == 1 and "(barrier missing or error)" in installed[0], installed
        finally:
            for p in procs:
                p.stop()
            subprocess.run(["ovs-vsctl", "--if-exists", "del-br", bridge], capture_output=True, timeout=20)
