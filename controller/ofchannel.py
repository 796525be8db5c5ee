"""The OpenFlow request/reply channel of the shim, and pure specs -> OpenFlow 1.3 messages.

Why not os-ken's own ``os_ken.app.ofctl.api.send_msg``: it sends one message and waits for its
own barrier (one round trip per flow mod, where a reservation is tens of them in one batch), it
waits without a timeout, and it waits on an eventlet event, while our callers are native threads
(the REST thread, the resync and link workers) that must not block os-ken's hub. This channel
sends any number of messages, puts one barrier behind them, waits on ``threading.Event``s with a
deadline, collects multipart replies and remembers what each xid was for the error log.

A program's phase goes to each switch as one write: its messages and the barrier behind them are
serialised and joined into one buffer, handed to ``datapath.send`` once (os-ken's send queue and
send thread then move one buffer, not one per message: a batch of 4,096 reservations is about
27,000 flow and meter mods). The switch reads a stream of messages either way; the order on each
switch is the program's. Flow and meter mods are packed by ``controller.dataplane.wire`` (os-ken's
match classes cost more than everything else of a program's sending); groups by os-ken.

No os-ken import: messages are built through ``datapath.ofproto_parser`` and the shim's event
handlers hand replies and errors in (``reply``, ``error``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from controller.dataplane import wire
from controller.dataplane.programs import (Change, FlowAdd, FlowDelete, FlowDeleteStrict, GroupAdd,
                                           GroupDelete, GroupModify, MeterAdd, MeterDelete, MeterModify,
                                           Program)
from controller.dataplane.specs import ETH_TYPE_VLAN, OFPVID_PRESENT, FlowSpec, GroupSpec, MeterSpec

LOG = logging.getLogger("detnet.ofshim")

_SENT_KEEP = 50000   # xids remembered for error messages (the oldest half is dropped beyond)


class Gone(Exception):
    """The switch disconnected (or stopped answering) while we waited for it."""


class Waiter:
    """Collects the reply (or replies, for multipart) to one request."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.replies: list[Any] = []
        self.failed = False

    def fail(self) -> None:
        self.failed = True
        self.done.set()


class Channel:
    """Send, barrier, multipart and errors over connected datapaths (thread-safe)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._locks: dict[int, threading.Lock] = {}
        self._waiters: dict[tuple[int, int], Waiter] = {}
        #: what each request was: its name, or the program change (named when a switch refuses it)
        self._sent: dict[tuple[int, int], str | Change] = {}
        self._errors: dict[tuple[int, int], str] = {}

    # ------------------------------------------------------------------ sending
    def send(self, dp: Any, msg: Any, what: str, waiter: Waiter | None = None) -> int:
        """Send ``msg`` (``what`` names it in error logs); ``waiter`` collects its replies."""
        lock = self._locks.setdefault(dp.id, threading.Lock())
        with lock:
            dp.set_xid(msg)
            key = (dp.id, msg.xid)
            self._sent[key] = what
            self._forget_oldest()
            if waiter is not None:
                self._waiters[key] = waiter
            if not dp.send_msg(msg) and waiter is not None:
                waiter.fail()
        return msg.xid

    def send_phase(self, dp: Any, changes: list[Change]) -> tuple[tuple[int, int], Waiter]:
        """Send ``changes`` (one switch's part of a phase, in order) and a barrier behind them as one
        write (packed by ``change_bytes``, joined); returns the barrier's key and the waiter its reply sets."""
        barrier = dp.ofproto_parser.OFPBarrierRequest(dp)
        w = Waiter()
        parts: list[bytes] = []
        lock = self._locks.setdefault(dp.id, threading.Lock())
        with lock:
            for c in changes:
                xid = _next_xid(dp)
                self._sent[(dp.id, xid)] = c           # described only if the switch refuses it
                parts.append(change_bytes(dp, c, xid))
            dp.set_xid(barrier)
            barrier.serialize()
            parts.append(barrier.buf)
            key = (dp.id, barrier.xid)
            self._sent[key] = "barrier"
            self._forget_oldest()
            self._waiters[key] = w
            if not dp.send(b"".join(parts)):
                w.fail()
        return key, w

    def barrier(self, dp: Any) -> tuple[tuple[int, int], Waiter]:
        """Send a barrier; returns its key and the waiter its reply sets."""
        w = Waiter()
        return (dp.id, self.send(dp, dp.ofproto_parser.OFPBarrierRequest(dp), "barrier", w)), w

    def wait(self, waits: dict[tuple[int, int], Waiter]) -> bool:
        """Wait (up to the timeout in all) for every barrier in ``waits``; False on a timeout, a
        lost switch or an error reported by one of their switches since the last wait."""
        deadline = time.monotonic() + self.timeout
        ok = True
        for w in waits.values():
            if not w.done.wait(max(0.0, deadline - time.monotonic())) or w.failed:
                ok = False
        for key in waits:
            self._waiters.pop(key, None)
        return ok and not self._pop_errors({k[0] for k in waits})

    def collect(self, waits: dict[tuple[int, int], Waiter]) -> None:
        """Wait (up to the timeout in all) for the replies of ``waits`` and forget them; unlike
        ``wait``, errors other requests got meanwhile stay for the wait of their own program."""
        deadline = time.monotonic() + self.timeout
        for w in waits.values():
            w.done.wait(max(0.0, deadline - time.monotonic()))
        for key in waits:
            self._waiters.pop(key, None)

    def barriers(self, dps: list[Any]) -> bool:
        """A barrier to each switch, and wait for every reply."""
        return self.wait(dict(self.barrier(dp) for dp in dps))

    def multipart(self, dp: Any, req: Any) -> list[Any]:
        """Send a multipart request and return the bodies of all its replies; raises ``Gone``."""
        w = Waiter()
        self.send(dp, req, type(req).__name__, w)
        answered = w.done.wait(self.timeout) and not w.failed
        self._waiters.pop((dp.id, req.xid), None)
        if not answered:
            raise Gone()
        return [b for r in w.replies for b in r.body]

    def run(self, dps: dict[int, Any], program: Program) -> bool:
        """Run ``program`` on the datapaths ``dps`` (changes of other switches are skipped): each
        phase's changes in order, a barrier on each switch it touched, a wait where the phase says
        so and at the end. True when every barrier was answered and no switch reported an error."""
        ok = True
        pending: dict[tuple[int, int], Waiter] = {}
        program = program.restricted_to(dps)
        for phase in program.phases:
            per_switch: dict[int, list[Change]] = {}
            for c in phase.changes:
                per_switch.setdefault(c.dpid, []).append(c)
            pending.update(self.send_phase(dps[d], changes) for d, changes in per_switch.items())
            if phase.wait:
                ok = self.wait(pending) and ok
                pending = {}
        return (self.wait(pending) if pending else True) and ok

    # ------------------------------------------------------------------ replies
    def reply(self, msg: Any, final: bool) -> None:
        """A reply (barrier, or one part of a multipart) arrived."""
        w = self._waiters.get((msg.datapath.id, msg.xid))
        if w is None:
            return
        w.replies.append(msg)
        if final:
            w.done.set()

    def error(self, msg: Any) -> str:
        """A switch rejected a request: remember it, fail its waiter; returns what it was."""
        key = (msg.datapath.id, msg.xid)
        what = self.what(*key)
        self._errors[key] = what
        w = self._waiters.get(key)
        if w is not None:
            w.fail()
        return what

    def what(self, dpid: int, xid: int) -> str:
        """What the request ``xid`` to switch ``dpid`` was ("?" when forgotten)."""
        sent = self._sent.get((dpid, xid), "?")
        return sent if isinstance(sent, str) else sent.describe()

    def _forget_oldest(self) -> None:
        """Keep the names of the last ``_SENT_KEEP`` requests at most (drop the oldest half)."""
        if len(self._sent) > _SENT_KEEP:
            for k in list(self._sent)[:_SENT_KEEP // 2]:
                self._sent.pop(k, None)

    def drop(self, dpid: int) -> None:
        """The switch went away: fail everything waiting for it."""
        for key, w in list(self._waiters.items()):
            if key[0] == dpid:
                w.fail()

    def close(self) -> None:
        for w in list(self._waiters.values()):
            w.fail()

    def _pop_errors(self, dpids: set[int]) -> bool:
        found = False
        for key in list(self._errors):
            if key[0] in dpids:
                self._errors.pop(key)
                found = True
        return found


# ---------------------------------------------------------------------------------------------
# spec -> message
def _action(p: Any, a: dict[str, Any]) -> Any:
    t = a["type"]
    if t == "output":
        return p.OFPActionOutput(a["port"], a.get("max_len", 0))
    if t == "push_vlan":
        return p.OFPActionPushVlan(a.get("ethertype", ETH_TYPE_VLAN))
    if t == "pop_vlan":
        return p.OFPActionPopVlan()
    if t == "set_vlan":
        return p.OFPActionSetField(vlan_vid=OFPVID_PRESENT | a["vid"])
    if t == "set_vlan_pcp":
        return p.OFPActionSetField(vlan_pcp=a["pcp"])
    if t == "set_queue":
        return p.OFPActionSetQueue(a["queue_id"])
    if t == "group":
        return p.OFPActionGroup(a["group_id"])
    raise ValueError(f"unknown action {t}")


def flow_mod(dp: Any, f: FlowSpec) -> Any:
    """OFPFC_ADD of ``f`` (replaces an entry with the same table, priority and match)."""
    p, o = dp.ofproto_parser, dp.ofproto
    ins = []
    for i in f.instructions:
        if i["type"] == "meter":
            ins.append(p.OFPInstructionMeter(i["meter_id"], o.OFPIT_METER))
        elif i["type"] == "goto":
            ins.append(p.OFPInstructionGotoTable(i["table"]))
        elif i["type"] == "apply":
            ins.append(p.OFPInstructionActions(o.OFPIT_APPLY_ACTIONS, [_action(p, a) for a in i["actions"]]))
        else:
            raise ValueError(f"unknown instruction {i['type']}")
    return p.OFPFlowMod(dp, cookie=f.cookie, table_id=f.table_id, command=o.OFPFC_ADD, priority=f.priority,
                        match=p.OFPMatch(**f.match), instructions=ins)


def group_mod(dp: Any, g: GroupSpec, command: int) -> Any:
    p, o = dp.ofproto_parser, dp.ofproto
    if g.type != "all":
        raise ValueError(f"unsupported group type {g.type}")
    buckets = [p.OFPBucket(actions=[p.OFPActionOutput(a["port"], 0) for a in b if a["type"] == "output"])
               for b in g.buckets]
    return p.OFPGroupMod(dp, command, o.OFPGT_ALL, g.group_id, buckets)


def meter_mod(dp: Any, m: MeterSpec, command: int) -> Any:
    p, o = dp.ofproto_parser, dp.ofproto
    return p.OFPMeterMod(dp, command, o.OFPMF_KBPS | o.OFPMF_BURST | o.OFPMF_STATS, m.meter_id,
                         [p.OFPMeterBandDrop(rate=m.rate_kbps, burst_size=m.burst_kb)])


def change_message(dp: Any, c: Change) -> Any:
    """The OpenFlow message of one change of a program."""
    p, o = dp.ofproto_parser, dp.ofproto
    if isinstance(c, FlowAdd):
        return flow_mod(dp, c.flow)
    if isinstance(c, FlowDelete):
        return p.OFPFlowMod(dp, cookie=c.cookie, cookie_mask=c.cookie_mask, table_id=o.OFPTT_ALL,
                            command=o.OFPFC_DELETE, out_port=o.OFPP_ANY, out_group=o.OFPG_ANY, match=p.OFPMatch())
    if isinstance(c, FlowDeleteStrict):
        return p.OFPFlowMod(dp, table_id=c.table_id, priority=c.priority, command=o.OFPFC_DELETE_STRICT,
                            out_port=o.OFPP_ANY, out_group=o.OFPG_ANY, match=p.OFPMatch(**c.match))
    if isinstance(c, MeterAdd):
        return meter_mod(dp, c.meter, o.OFPMC_ADD)
    if isinstance(c, MeterModify):
        return meter_mod(dp, c.meter, o.OFPMC_MODIFY)
    if isinstance(c, MeterDelete):
        return p.OFPMeterMod(dp, o.OFPMC_DELETE, 0, c.meter_id)
    if isinstance(c, GroupAdd):
        return group_mod(dp, c.group, o.OFPGC_ADD)
    if isinstance(c, GroupModify):
        return group_mod(dp, c.group, o.OFPGC_MODIFY)
    if isinstance(c, GroupDelete):
        return p.OFPGroupMod(dp, o.OFPGC_DELETE, o.OFPGT_ALL, c.group_id, [])
    raise ValueError(f"unknown change {c!r}")


class _Numbered:
    """Takes the xid ``datapath.set_xid`` gives a message that is packed as bytes afterwards."""

    __slots__ = ("xid",)

    def set_xid(self, xid: int) -> None:
        self.xid = xid


def _next_xid(dp: Any) -> int:
    """The datapath's next xid (its own counter, which os-ken's echo requests share)."""
    n = _Numbered()
    dp.set_xid(n)
    return n.xid


def change_bytes(dp: Any, c: Change, xid: int) -> bytes:
    """One change of a program as OpenFlow 1.3 bytes with ``xid``: the same bytes as
    ``change_message``'s serialisation (``tests/test_wire.py``), flow and meter mods packed by
    ``wire``."""
    if isinstance(c, FlowAdd):
        return wire.flow_add(xid, c.flow)
    if isinstance(c, FlowDelete):
        return wire.flow_delete(xid, c.cookie, c.cookie_mask)
    if isinstance(c, FlowDeleteStrict):
        return wire.flow_delete_strict(xid, c.table_id, c.priority, c.match)
    if isinstance(c, MeterAdd):
        return wire.meter_mod(xid, c.meter, wire.OFPMC_ADD)
    if isinstance(c, MeterModify):
        return wire.meter_mod(xid, c.meter, wire.OFPMC_MODIFY)
    if isinstance(c, MeterDelete):
        return wire.meter_delete(xid, c.meter_id)
    msg = change_message(dp, c)
    msg.set_xid(xid)
    msg.serialize()
    return bytes(msg.buf)


def packet_out(dp: Any, port: int, data: bytes) -> Any:
    p, o = dp.ofproto_parser, dp.ofproto
    return p.OFPPacketOut(dp, buffer_id=o.OFP_NO_BUFFER, in_port=o.OFPP_CONTROLLER,
                          actions=[p.OFPActionOutput(port, 0)], data=data)
