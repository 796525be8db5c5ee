"""The shim's side without a switch: ``ofchannel.Channel.run`` sends a program phase by phase, each
phase one write per switch with its barrier, waits where a phase says so, and reports errors and
silent switches. (That every change of every program becomes the OpenFlow 1.3 bytes os-ken would
send: ``tests/test_wire.py``.)"""

from __future__ import annotations

import threading

from os_ken.base import app_manager  # noqa: F401 - import order os-ken needs
from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser

from controller import ofchannel
from controller.dataplane import programs
from controller.dataplane.programs import FlowAdd, MeterAdd, Phase, Program
from fakeswitch import link_bps, reservation, ring_plan
from ofwire import split

PLAN = ring_plan()
OLD = reservation("r1", ["A", "B", "C"], protection=["A", "D", "C"])


class FakeDatapath:
    """Records what is sent (message kinds, and ``writes``: how many ``send`` calls); answers
    barriers at once (or never, when ``silent``)."""

    ofproto, ofproto_parser = ofproto_v1_3, ofproto_v1_3_parser

    def __init__(self, dpid: int, channel: ofchannel.Channel | None = None, silent: bool = False) -> None:
        self.id = dpid
        self.channel = channel
        self.silent = silent
        self.sent: list[str] = []
        self.writes = 0
        self._xid = 0

    def set_xid(self, msg) -> None:
        self._xid += 1
        msg.set_xid(self._xid)

    def send_msg(self, msg) -> bool:
        msg.serialize()
        return self.send(msg.buf)

    def send(self, buf: bytes) -> bool:
        """Like os-ken's ``Datapath.send``: serialised messages, one write."""
        self.writes += 1
        for kind, xid, _ in split(buf):
            self.sent.append(kind)
            if kind == "OFPBarrierRequest" and not self.silent and self.channel:
                reply = ofproto_v1_3_parser.OFPBarrierReply(self)
                reply.xid = xid
                threading.Thread(target=self.channel.reply, args=(reply, True)).start()
        return True


def test_run_sends_phases_in_order_with_barriers_and_waits():
    ch = ofchannel.Channel(timeout=2.0)
    dps = {d: FakeDatapath(d, ch) for d in (1, 2)}
    prog = programs.reroute(PLAN, [(reservation("x", ["A", "B", "C"]), reservation("x", ["A", "D", "C"]))],
                            link_bps([])).program
    assert ch.run(dps, prog)
    for d, dp in dps.items():
        kinds = dp.sent
        assert kinds[-1] == "OFPBarrierRequest"
        # every phase that touched this switch ends with a barrier before the next phase's messages
        per_phase = [len([c for c in p.changes if c.dpid == d]) for p in prog.phases]
        i = 0
        for n in per_phase:
            if n:
                assert kinds[i + n] == "OFPBarrierRequest" and "OFPBarrierRequest" not in kinds[i:i + n]
                i += n + 1
        assert i == len(kinds)
        # ... and goes out as one write: its messages and the barrier in one buffer
        assert dp.writes == len([n for n in per_phase if n]) > 0
    # switch 3 is not in dps: its changes were skipped
    assert 3 in prog.switches()


def test_a_phase_is_one_write_of_each_message_as_os_ken_serialises_it_alone():
    """``send_phase`` writes once: the bytes os-ken gives each change (numbered in order) and the
    barrier behind them."""
    prog = programs.install(PLAN, OLD, link_bps([OLD]))
    dpid = prog.changes()[0].dpid
    changes = [c for c in prog.changes() if c.dpid == dpid]
    assert len(changes) > 2
    ch = ofchannel.Channel(timeout=2.0)
    alone, together = FakeDatapath(dpid), FakeDatapath(dpid, ch)
    one_by_one = []
    for c in changes + ["barrier"]:
        m = ofproto_v1_3_parser.OFPBarrierRequest(alone) if c == "barrier" else ofchannel.change_message(alone, c)
        alone.set_xid(m)
        m.serialize()
        one_by_one.append(bytes(m.buf))
    raw: list[bytes] = []
    together.send = lambda buf: raw.append(bytes(buf)) or True
    key, _ = ch.send_phase(together, changes)
    assert len(raw) == 1 and raw[0] == b"".join(one_by_one)
    assert [xid for _, xid, _ in split(raw[0])] == list(range(1, len(changes) + 2)) and key == (dpid, len(changes) + 1)


def test_run_reports_a_silent_switch_and_an_error():
    ch = ofchannel.Channel(timeout=0.2)
    meter = programs.install(PLAN, OLD, link_bps([OLD])).phases[0].changes[0]
    assert isinstance(meter, MeterAdd)
    silent = {meter.dpid: FakeDatapath(meter.dpid, ch, silent=True)}
    assert not ch.run(silent, Program([Phase([meter])]))
    dp = FakeDatapath(meter.dpid, ch)
    prog = Program([Phase([meter])])
    assert ch.run({dp.id: dp}, prog)
    err = ofproto_v1_3_parser.OFPErrorMsg(dp)
    err.xid = 1                                         # the meter add: the first message sent
    assert ch.error(err).startswith("meter add")
    flow = next(c for c in programs.install(PLAN, OLD, link_bps([OLD])).changes()
                if isinstance(c, FlowAdd) and c.dpid == dp.id)
    assert not ch.run({dp.id: dp}, Program([Phase([flow])]))     # the error is reported by the next wait
    assert ch.run({dp.id: dp}, Program([Phase([flow])]))         # ... once
