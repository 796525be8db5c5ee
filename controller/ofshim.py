"""The os-ken application: the only module that imports os_ken.

It turns the pure specs of ``controller.openflow`` into OpenFlow 1.3 messages and keeps every
switch in step with the service:

- a switch that connects is **resynchronised** on its own (its meters and flow table are read,
  stale entries deleted, missing ones added; other switches are not touched), then reported to
  ``service.switch_connected``;
- ``reservation_added``/``reservation_removed`` (called by the service after commit, from the
  REST thread) send the meter and flow mods to the switches of the path, then a barrier, and
  wait (bounded) for every barrier reply: the time from the call to the last reply is the
  "POST to entries on every switch" figure, logged as ``install_ms=`` and kept in
  ``DetnetShim.install_times``;
- ARP requests from host ports are answered from the host plan (same tenant only);
- LLDP probes go out of every inter-switch port every ``lldp_interval`` seconds; the links seen
  are compared with the topology and reported to ``service.set_link_check``.

The launcher calls ``configure(service, ...)`` before os-ken instantiates the app.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections import deque
from typing import Any

from os_ken.base import app_manager  # must come before os_ken.controller.* (circular import)
from os_ken.controller import ofp_event
from os_ken.controller.handler import (CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER,
                                       set_ev_cls)
from os_ken.ofproto import ofproto_v1_3

from controller import openflow as of

LOG = logging.getLogger("detnet.ofshim")

_CONFIG: dict[str, Any] = {}


def configure(service: Any, *, rate_scale: float = 1.0, lldp_interval: float = 2.0,
              barrier_timeout: float = 5.0, queue_id: int | None = None) -> None:
    """Hand the service and the data-plane options to the app os-ken is about to instantiate."""
    _CONFIG.clear()
    _CONFIG.update(service=service, rate_scale=float(rate_scale), lldp_interval=float(lldp_interval),
                   barrier_timeout=float(barrier_timeout), queue_id=queue_id, instance=None)


def instance() -> "DetnetShim | None":
    """The running app (None before os-ken instantiated it)."""
    return _CONFIG.get("instance")


class _Waiter:
    """Collects the reply (or replies, for multipart) to one request."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.replies: list[Any] = []
        self.failed = False


class DetnetShim(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "service" not in _CONFIG:
            raise RuntimeError("controller.ofshim.configure(service) must run before os-ken starts the app")
        self.service = _CONFIG["service"]
        plan = getattr(self.service, "host_plan", None)
        if plan is None:
            from topologies.hosts import HostPlan
            plan = HostPlan(self.service.topology)
        self.plan = plan
        self.rate_scale = _CONFIG["rate_scale"]
        self.lldp_interval = _CONFIG["lldp_interval"]
        self.barrier_timeout = _CONFIG["barrier_timeout"]
        self.queue_id = _CONFIG["queue_id"]
        self.install_times: deque[tuple[str, str, float]] = deque(maxlen=10000)  # (op, res id, seconds)

        self._dps: dict[int, Any] = {}          # dpid -> datapath (connected)
        self._ready: set[int] = set()           # dpids resynchronised and programmable
        self._dp_locks: dict[int, threading.Lock] = {}
        self._prog_lock = threading.RLock()     # serialises resyncs and reservation changes
        self._waiters: dict[tuple[int, int], _Waiter] = {}
        self._sent: dict[tuple[int, int], str] = {}   # (dpid, xid) -> what it was, for error logs
        self._errors: dict[tuple[int, int], str] = {}
        self._seen_links: dict[tuple[of.Endpoint, of.Endpoint], float] = {}
        self._expected_links = of.expected_links(self.plan)
        self._last_report: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._lldp_thread = threading.Thread(target=self._lldp_loop, name="detnet-lldp", daemon=True)
        _CONFIG["instance"] = self
        self.service.add_listener(self)

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> Any:
        t = super().start()
        self._lldp_thread.start()
        self._report_links()
        return t

    def close(self) -> None:
        """Stop probing, fail pending waits and close every switch connection."""
        self._stop.set()
        for w in list(self._waiters.values()):
            w.failed = True
            w.done.set()
        for dp in list(self._dps.values()):
            try:
                dp.close()
            except Exception:  # noqa: BLE001 - closing anyway
                pass

    # ----------------------------------------------------------------- switch state
    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def _state_change(self, ev: Any) -> None:
        dp = ev.datapath
        if dp.id is None:
            return
        if ev.state == MAIN_DISPATCHER:
            try:
                node = self.plan.node_of_dpid(dp.id)
            except KeyError:
                LOG.warning("switch dpid %d is not in topology %s: ignored (fail-secure, no entries)",
                            dp.id, self.plan.topology.name)
                return
            self._dps[dp.id] = dp
            self._dp_locks.setdefault(dp.id, threading.Lock())
            LOG.info("switch %s (dpid %d) connected from %s", node, dp.id, dp.address[0])
            threading.Thread(target=self._resync, args=(dp,), name=f"detnet-resync-{dp.id}", daemon=True).start()
        elif ev.state == DEAD_DISPATCHER and self._dps.get(dp.id) is dp:
            del self._dps[dp.id]
            self._ready.discard(dp.id)
            for key, w in list(self._waiters.items()):
                if key[0] == dp.id:
                    w.failed = True
                    w.done.set()
            LOG.info("switch %s (dpid %d) disconnected", self._node(dp.id), dp.id)
            self._call_service("switch_disconnected", dp.id)
            self._report_links()

    def _node(self, dpid: int) -> str:
        try:
            return self.plan.node_of_dpid(dpid)
        except KeyError:
            return f"dpid:{dpid}"

    def _call_service(self, name: str, *args: Any) -> None:
        fn = getattr(self.service, name, None)
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - a service hook must not kill the OpenFlow loop
            LOG.exception("service.%s failed", name)

    def _resync(self, dp: Any) -> None:
        """Bring one switch to the desired state: meters, then flows, then stale meters."""
        t0 = time.perf_counter()
        node = self.plan.node_of_dpid(dp.id)
        try:
            with self._prog_lock:
                if self._dps.get(dp.id) is not dp:
                    return
                reservations = list(self.service.reservations_snapshot())
                flows, meters = of.desired_state(
                    self.plan, node, reservations, rate_scale=self.rate_scale, queue_id=self.queue_id,
                    on_error=lambda r, e: LOG.warning("reservation %s not installable: %s", r.id, e))
                p, o = dp.ofproto_parser, dp.ofproto
                have_meters = [
                    {"meter_id": m.meter_id, "rate_kbps": m.bands[0].rate if m.bands else 0,
                     "burst_kb": m.bands[0].burst_size if m.bands else 0}
                    for m in self._multipart(dp, p.OFPMeterConfigStatsRequest(dp, 0, o.OFPM_ALL))]
                have_flows = [
                    {"table_id": s.table_id, "priority": s.priority, "cookie": s.cookie,
                     "match": dict(s.match.items())}
                    for s in self._multipart(dp, p.OFPFlowStatsRequest(
                        dp, 0, o.OFPTT_ALL, o.OFPP_ANY, o.OFPG_ANY, 0, 0, p.OFPMatch()))]
                m_add, m_mod, m_del = of.meter_resync_plan(meters, have_meters)
                f_add, f_del = of.resync_plan(flows, have_flows)
                for m in m_add:
                    self._send(dp, self._meter_mod(dp, m, o.OFPMC_ADD), f"meter add {m.meter_id}")
                for m in m_mod:
                    self._send(dp, self._meter_mod(dp, m, o.OFPMC_MODIFY), f"meter modify {m.meter_id}")
                self._send(dp, p.OFPBarrierRequest(dp), "barrier")
                for a in f_del:
                    self._send(dp, p.OFPFlowMod(dp, table_id=a["table_id"], priority=a["priority"],
                                                command=o.OFPFC_DELETE_STRICT, out_port=o.OFPP_ANY,
                                                out_group=o.OFPG_ANY, match=p.OFPMatch(**a["match"])),
                               f"flow delete cookie={a['cookie']:#x}")
                for f in f_add:
                    self._send(dp, self._flow_mod(dp, f), f"flow add cookie={f.cookie:#x}")
                self._send(dp, p.OFPBarrierRequest(dp), "barrier")
                for mid in m_del:
                    self._send(dp, p.OFPMeterMod(dp, o.OFPMC_DELETE, 0, mid), f"meter delete {mid}")
                ok = self._barriers([dp])
                self._ready.add(dp.id)
            LOG.info("switch %s (dpid %d) synced in %.1f ms: flows +%d -%d, meters +%d ~%d -%d%s", node, dp.id,
                     1000 * (time.perf_counter() - t0), len(f_add), len(f_del), len(m_add), len(m_mod),
                     len(m_del), "" if ok else " (no barrier reply)")
        except _Gone:
            LOG.warning("switch %s (dpid %d) went away during resync", node, dp.id)
            return
        except Exception:  # noqa: BLE001
            LOG.exception("resync of switch %s (dpid %d) failed", node, dp.id)
        if self._dps.get(dp.id) is dp:
            self._call_service("switch_connected", dp.id)
            self._report_links()

    # ----------------------------------------------------------------- reservations
    def reservation_added(self, res: Any) -> None:
        """Install a committed reservation on every connected switch of its path; wait for barriers."""
        t0 = time.perf_counter()
        try:
            flows, meters = of.reservation_flows(self.plan, res, rate_scale=self.rate_scale, queue_id=self.queue_id)
        except of.TranslationError as e:
            LOG.warning("reservation %s: nothing installed: %s", res.id, e)
            return
        with self._prog_lock:
            be = self._best_effort_updates(res)
            dps, missing = self._path_dps(res)
            for dpid, dp in dps.items():
                o = dp.ofproto
                for m in meters:
                    if m.dpid == dpid:
                        self._send(dp, self._meter_mod(dp, m, o.OFPMC_ADD), f"meter add {m.meter_id} ({res.id})")
                for m in be.get(dpid, []):
                    self._send(dp, self._meter_mod(dp, m, o.OFPMC_MODIFY), f"meter modify {m.meter_id}")
                self._send(dp, dp.ofproto_parser.OFPBarrierRequest(dp), "barrier")
                for f in flows:
                    if f.dpid == dpid:
                        self._send(dp, self._flow_mod(dp, f), f"flow add {res.id}")
            ok = self._barriers(list(dps.values()))
        self._record("install", res, t0, ok, len(dps), missing, f"{len(flows)} flows, {len(meters)} meter")

    def reservation_removed(self, res: Any) -> None:
        """Delete a reservation's entries (one cookie-masked delete per switch) and its meter."""
        t0 = time.perf_counter()
        cookie = of.reservation_cookie(res.tenant, res.id)
        meter_id = of.reservation_meter_id(res.id)
        with self._prog_lock:
            be = self._best_effort_updates(res)
            dps, missing = self._path_dps(res)
            for dpid, dp in dps.items():
                p, o = dp.ofproto_parser, dp.ofproto
                self._send(dp, p.OFPFlowMod(dp, cookie=cookie, cookie_mask=of.COOKIE_MASK_RESERVATION,
                                            table_id=o.OFPTT_ALL, command=o.OFPFC_DELETE, out_port=o.OFPP_ANY,
                                            out_group=o.OFPG_ANY, match=p.OFPMatch()), f"flow delete {res.id}")
                self._send(dp, p.OFPBarrierRequest(dp), "barrier")
                if dpid == self.plan.dpid(res.path[0]):
                    self._send(dp, p.OFPMeterMod(dp, o.OFPMC_DELETE, 0, meter_id), f"meter delete {meter_id}")
                for m in be.get(dpid, []):
                    self._send(dp, self._meter_mod(dp, m, o.OFPMC_MODIFY), f"meter modify {m.meter_id}")
            ok = self._barriers(list(dps.values()))
        self._record("remove", res, t0, ok, len(dps), missing, "")

    def _path_dps(self, res: Any) -> tuple[dict[int, Any], list[str]]:
        dps, missing = {}, []
        for node in res.path:
            dpid = self.plan.dpid(node)
            if dpid in self._ready and dpid in self._dps:
                dps[dpid] = self._dps[dpid]
            else:
                missing.append(node)
        return dps, missing

    def _best_effort_updates(self, res: Any) -> dict[int, list[of.MeterSpec]]:
        """New best-effort meters for the path's switches, from the reservations now committed."""
        try:
            current = list(self.service.reservations_snapshot())
        except Exception:  # noqa: BLE001
            LOG.exception("reservations_snapshot failed")
            return {}
        out: dict[int, list[of.MeterSpec]] = {}
        for a, b in zip(res.path, res.path[1:]):
            shares = of.reserved_share_by_port(self.plan, a, current)
            port = self.plan.port(a, b)
            out.setdefault(self.plan.dpid(a), []).extend(
                m for m in of.best_effort_meters(self.plan, a, shares, rate_scale=self.rate_scale)
                if m.meter_id == of.be_meter_id(port))
        return out

    def _record(self, op: str, res: Any, t0: float, ok: bool, n: int, missing: list[str], what: str) -> None:
        dt = time.perf_counter() - t0
        self.install_times.append((op, res.id, dt))
        LOG.info("reservation %s %s on %d switches%s: install_ms=%.2f %s%s", res.id,
                 "installed" if op == "install" else "removed", n, f" ({what})" if what else "", 1000 * dt,
                 "" if ok else "(barrier missing or error) ",
                 f"not connected: {','.join(missing)} (done at reconnect)" if missing else "")
        hook = getattr(self.service, "observe_install", None)
        if hook is not None:
            try:
                hook(op, res.id, dt, ok)
            except Exception:  # noqa: BLE001
                LOG.exception("service.observe_install failed")

    # ----------------------------------------------------------------- message plumbing
    def _send(self, dp: Any, msg: Any, what: str, waiter: _Waiter | None = None) -> int:
        lock = self._dp_locks.setdefault(dp.id, threading.Lock())
        with lock:
            dp.set_xid(msg)
            key = (dp.id, msg.xid)
            self._sent[key] = what
            if len(self._sent) > 50000:
                for k in list(self._sent)[:25000]:
                    self._sent.pop(k, None)
            if waiter is not None:
                self._waiters[key] = waiter
            if not dp.send_msg(msg):
                if waiter is not None:
                    waiter.failed = True
                    waiter.done.set()
        return msg.xid

    def _barriers(self, dps: list[Any]) -> bool:
        """Send a final barrier to each switch and wait for all replies; False on timeout/error."""
        waits: dict[tuple[int, int], _Waiter] = {}
        for dp in dps:
            w = _Waiter()
            waits[(dp.id, self._send(dp, dp.ofproto_parser.OFPBarrierRequest(dp), "barrier", w))] = w
        deadline = time.monotonic() + self.barrier_timeout
        ok = True
        for w in waits.values():
            if not w.done.wait(max(0.0, deadline - time.monotonic())) or w.failed:
                ok = False
        for key in waits:
            self._waiters.pop(key, None)
        return ok and not self._pop_errors([dp.id for dp in dps])

    def _pop_errors(self, dpids: list[int]) -> bool:
        found = False
        for key in list(self._errors):
            if key[0] in dpids:
                self._errors.pop(key)
                found = True
        return found

    def _multipart(self, dp: Any, req: Any) -> list[Any]:
        w = _Waiter()
        self._send(dp, req, type(req).__name__, w)
        if not w.done.wait(self.barrier_timeout) or w.failed:
            self._waiters.pop((dp.id, req.xid), None)
            raise _Gone()
        self._waiters.pop((dp.id, req.xid), None)
        return [b for r in w.replies for b in r.body]

    def _reply(self, ev: Any, final: bool) -> None:
        msg = ev.msg
        w = self._waiters.get((msg.datapath.id, msg.xid))
        if w is None:
            return
        w.replies.append(msg)
        if final:
            w.done.set()

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def _barrier_reply(self, ev: Any) -> None:
        self._reply(ev, True)

    @set_ev_cls([ofp_event.EventOFPFlowStatsReply, ofp_event.EventOFPMeterConfigStatsReply], MAIN_DISPATCHER)
    def _stats_reply(self, ev: Any) -> None:
        self._reply(ev, not (ev.msg.flags & ev.msg.datapath.ofproto.OFPMPF_REPLY_MORE))

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _error(self, ev: Any) -> None:
        msg = ev.msg
        key = (msg.datapath.id, msg.xid)
        what = self._sent.get(key, "?")
        o = msg.datapath.ofproto
        if what.startswith("meter add") and (msg.type, msg.code) == (o.OFPET_METER_MOD_FAILED,
                                                                     o.OFPMMFC_METER_EXISTS):
            # a resync that ran between commit and this call already installed the same meter
            LOG.debug("switch %s: %s: meter already there", self._node(msg.datapath.id), what)
            return
        self._errors[key] = what
        LOG.error("switch %s (dpid %s) rejected %s: OpenFlow error type=%d code=%d", self._node(msg.datapath.id),
                  msg.datapath.id, what, msg.type, msg.code)
        w = self._waiters.get(key)
        if w is not None:
            w.failed = True
            w.done.set()

    # ----------------------------------------------------------------- spec -> message
    @staticmethod
    def _flow_mod(dp: Any, f: of.FlowSpec) -> Any:
        p, o = dp.ofproto_parser, dp.ofproto
        ins = []
        for i in f.instructions:
            if i["type"] == "meter":
                ins.append(p.OFPInstructionMeter(i["meter_id"], o.OFPIT_METER))
            elif i["type"] == "goto":
                ins.append(p.OFPInstructionGotoTable(i["table"]))
            elif i["type"] == "apply":
                acts = []
                for a in i["actions"]:
                    t = a["type"]
                    if t == "output":
                        acts.append(p.OFPActionOutput(a["port"], a.get("max_len", 0)))
                    elif t == "push_vlan":
                        acts.append(p.OFPActionPushVlan(a.get("ethertype", of.ETH_TYPE_VLAN)))
                    elif t == "pop_vlan":
                        acts.append(p.OFPActionPopVlan())
                    elif t == "set_vlan":
                        acts.append(p.OFPActionSetField(vlan_vid=of.OFPVID_PRESENT | a["vid"]))
                    elif t == "set_queue":
                        acts.append(p.OFPActionSetQueue(a["queue_id"]))
                    else:
                        raise ValueError(f"unknown action {t}")
                ins.append(p.OFPInstructionActions(o.OFPIT_APPLY_ACTIONS, acts))
            else:
                raise ValueError(f"unknown instruction {i['type']}")
        return p.OFPFlowMod(dp, cookie=f.cookie, table_id=f.table_id, command=o.OFPFC_ADD, priority=f.priority,
                            match=p.OFPMatch(**f.match), instructions=ins)

    @staticmethod
    def _meter_mod(dp: Any, m: of.MeterSpec, command: int) -> Any:
        p, o = dp.ofproto_parser, dp.ofproto
        return p.OFPMeterMod(dp, command, o.OFPMF_KBPS | o.OFPMF_BURST | o.OFPMF_STATS, m.meter_id,
                             [p.OFPMeterBandDrop(rate=m.rate_kbps, burst_size=m.burst_kb)])

    def _packet_out(self, dp: Any, port: int, data: bytes) -> None:
        p, o = dp.ofproto_parser, dp.ofproto
        self._send(dp, p.OFPPacketOut(dp, buffer_id=o.OFP_NO_BUFFER, in_port=o.OFPP_CONTROLLER,
                                      actions=[p.OFPActionOutput(port, 0)], data=data), "packet-out")

    # ----------------------------------------------------------------- packet-in: ARP, LLDP
    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev: Any) -> None:
        msg = ev.msg
        dp = msg.datapath
        data = bytes(msg.data)
        if len(data) < 14 or dp.id not in self._dps:
            return
        in_port = msg.match["in_port"]
        (eth_type,) = struct.unpack("!H", data[12:14])
        if eth_type == of.ETH_TYPE_LLDP:
            src = of.parse_lldp(data)
            if src is not None:
                link = (src, (dp.id, in_port))
                new = link not in self._seen_links
                self._seen_links[link] = time.monotonic()
                if new:
                    LOG.debug("LLDP: link %s:%d -> %s:%d seen", self._node(src[0]), src[1], self._node(dp.id), in_port)
                    self._report_links()
        elif eth_type == of.ETH_TYPE_ARP:
            reply = of.arp_answer(self.plan, dp.id, in_port, data)
            if reply is not None:
                self._packet_out(dp, in_port, reply)
                LOG.debug("ARP: answered on %s port %d", self._node(dp.id), in_port)

    def _lldp_loop(self) -> None:
        while not self._stop.wait(self.lldp_interval):
            for dpid in list(self._ready):
                dp = self._dps.get(dpid)
                if dp is None:
                    continue
                try:
                    for port in of.inter_switch_ports(self.plan, self.plan.node_of_dpid(dpid)):
                        self._packet_out(dp, port, of.lldp_frame(dpid, port))
                except Exception:  # noqa: BLE001
                    LOG.exception("LLDP probe on dpid %d failed", dpid)
            horizon = time.monotonic() - 3 * self.lldp_interval - 1
            stale = [k for k, t in self._seen_links.items() if t < horizon]
            for k in stale:
                self._seen_links.pop(k, None)
            if stale:
                self._report_links()

    def link_report(self) -> dict[str, Any]:
        return of.compare_links(self._expected_links, set(self._seen_links), self.plan)

    def _report_links(self) -> None:
        report = self.link_report()
        if report != self._last_report:
            self._last_report = report
            if report["missing"] and len(report["missing"]) < report["expected"]:
                LOG.debug("link check: %d/%d links seen", report["seen"], report["expected"])
            if report["unexpected"]:
                LOG.warning("link check: unexpected links %s", report["unexpected"])
            if report["ok"]:
                LOG.info("link check: all %d links seen", report["expected"])
            self._call_service("set_link_check", report)


class _Gone(Exception):
    """The switch disconnected (or stopped answering) while we waited for it."""
