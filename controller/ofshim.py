"""The os-ken application: the thin OpenFlow side of the controller (with the launcher, the only
module that imports os_ken).

Every decision is made by the pure core (``controller.dataplane.programs`` over the translation);
this module hands it events and runs the program it gets back through ``controller.ofchannel``
(phase by phase, a barrier after each, errors collected). It talks to the service only through
``controller.seams.DataPlaneHost`` and is its ``ReservationListener``:

- a switch that connects is **resynchronised** on its own (its meters, groups and flow table
  are read and ``programs.resync`` brings them to the desired state; other switches are not
  touched), then reported to ``service.switch_connected``;
- ``reservations_added``/``reservations_removed`` (called by the service after commit, from the
  REST thread) run ``programs.install``/``programs.remove`` on the connected switches of the
  paths and wait (bounded) for every barrier reply: the time from the call to the last reply is
  the "POST to entries on every switch" figure, logged as ``install_ms=`` and kept in
  ``DetnetShim.install_times``;
- ``reservations_changed`` (a link event moved reservations) runs ``programs.reroute``:
  make-before-break, only the entries that differ;
- port status (link down, port down, port deleted) of an inter-switch port is turned into
  ``service.link_down``/``link_up`` (one worker thread, in order; a link is up when both its ports
  are), which re-places the reservations and calls back here; then ``programs.best_effort_update``
  moves best-effort forwarding around the failed links where it changes;
- ARP requests from host ports are answered from the host plan (``controller.dataplane.arp``);
- LLDP probes go out of every inter-switch port every ``lldp_interval`` seconds; the links seen
  are compared with the topology and reported to ``service.set_link_check``; a link whose LLDP
  stays silent past ``lldp_timeout`` (``controller.linkwatch``) while both its switches are
  programmed and both its ports up is taken down (``actor="lldp_timeout"``) through the same
  worker as port status, and brought up when seen again in both directions.

Who is a switch (``controller.switchauth``): once a connection has said its dpid (features and
port description done), it is admitted only if the dpid is in the topology, not held by another
live connection and, over TLS with ``require_cert_dpid``, named by its client certificate;
otherwise it is closed and reported to ``service.switch_refused`` (audit + metric). Replies,
errors, port status and packet-ins count only from the connection that holds its dpid, so a
refused connection that speaks before it is closed changes nothing.

The launcher calls ``configure(service, ...)`` before os-ken instantiates the app.
"""

from __future__ import annotations

import logging
import queue
import struct
import threading
import time
from collections import deque
from typing import Any, Callable, Sequence

from os_ken.base import app_manager  # must come before os_ken.controller.* (circular import)
from os_ken.controller import ofp_event
from os_ken.controller.handler import (CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER,
                                       set_ev_cls)
from os_ken.ofproto import ofproto_v1_3

from controller import linkwatch, switchauth
from controller.core.model import Reservation
from controller.dataplane import programs, translation
from controller.dataplane.arp import arp_answer
from controller.dataplane.frames import lldp_frame, parse_lldp
from controller.dataplane.programs import Program
from controller.dataplane.resync import SwitchState
from controller.dataplane.specs import ETH_TYPE_ARP, ETH_TYPE_LLDP, FlowSpec
from controller.ofchannel import Channel, Gone, packet_out
from controller.seams import DataPlaneHost

LOG = logging.getLogger("detnet.ofshim")

_CONFIG: dict[str, Any] = {}


LLDP_TIMEOUT_FLOOR = 3.0   # s: the default LLDP timeout is max(3.5 x interval, this)


def configure(service: DataPlaneHost, *, rate_scale: float = 1.0, lldp_interval: float = 2.0,
              barrier_timeout: float = 5.0, queue_id: int | None = None,
              lldp_timeout: float | None = None, tls: bool = False, require_cert_dpid: bool = True) -> None:
    """Hand the service and the data-plane options to the app os-ken is about to instantiate.
    ``lldp_timeout``: seconds of LLDP silence that take a link down (default
    ``max(3.5 * lldp_interval, LLDP_TIMEOUT_FLOOR)``). ``tls``: os-ken listens with TLS and a
    required client certificate; ``require_cert_dpid``: that certificate must name the dpid
    (``controller.switchauth``)."""
    if lldp_timeout is None:
        lldp_timeout = linkwatch.lldp_timeout(float(lldp_interval), floor=LLDP_TIMEOUT_FLOOR)
    _CONFIG.clear()
    _CONFIG.update(service=service, rate_scale=float(rate_scale), lldp_interval=float(lldp_interval),
                   barrier_timeout=float(barrier_timeout), queue_id=queue_id, instance=None,
                   lldp_timeout=float(lldp_timeout), tls=bool(tls), require_cert_dpid=bool(require_cert_dpid))


def instance() -> "DetnetShim | None":
    """The running app (None before os-ken instantiated it)."""
    return _CONFIG.get("instance")


def _safely(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """Call a service method; a failure is logged, never allowed to kill an OpenFlow thread."""
    try:
        return fn(*args, **kw)
    except Exception:  # noqa: BLE001
        LOG.exception("service call %r failed", fn)
        return None


class DetnetShim(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "service" not in _CONFIG:
            raise RuntimeError("controller.ofshim.configure(service) must run before os-ken starts the app")
        self.service: DataPlaneHost = _CONFIG["service"]
        self.plan = self.service.host_plan
        self.rate_scale = _CONFIG["rate_scale"]
        self.lldp_interval = _CONFIG["lldp_interval"]
        self.lldp_timeout = _CONFIG["lldp_timeout"]
        self.queue_id = _CONFIG["queue_id"]
        self.tls = _CONFIG.get("tls", False)
        self.require_cert_dpid = _CONFIG.get("require_cert_dpid", True)
        self.channel = Channel(_CONFIG["barrier_timeout"])
        self.install_times: deque[tuple[str, str, float]] = deque(maxlen=10000)  # (op, res id, seconds)
        self.link_events: deque[dict[str, Any]] = deque(maxlen=1000)

        self._dps: dict[int, Any] = {}          # dpid -> datapath (connected)
        self._ready: set[int] = set()           # dpids resynchronised and programmable
        self._prog_lock = threading.RLock()     # serialises resyncs and reservation changes
        self._be_sent: dict[int, dict[tuple, FlowSpec]] = {}   # dpid -> best-effort entries sent
        self._seen_links: dict[linkwatch.Directed, float] = {}
        self._expected_links = linkwatch.expected_links(self.plan)
        self._phys_links = linkwatch.physical_links(self._expected_links)
        self._lldp_down: set[linkwatch.Physical] = set()      # links LLDP silence took down
        self._ready_since: dict[int, float] = {}              # dpid -> monotonic time programmed
        self._port_since: dict[tuple[int, int], float] = {}   # (dpid, port) -> monotonic time up
        self._port_down: dict[tuple[int, int], bool] = {}     # (dpid, port) -> reported down
        self._probes_since = time.monotonic()                 # LLDP loop (re)started on time
        self._last_report: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._lldp_thread = threading.Thread(target=self._lldp_loop, name="detnet-lldp", daemon=True)
        self._link_queue: queue.Queue = queue.Queue()
        self._link_thread = threading.Thread(target=self._link_worker, name="detnet-links", daemon=True)
        _CONFIG["instance"] = self
        self.service.add_listener(self)

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> Any:
        t = super().start()
        self._lldp_thread.start()
        self._link_thread.start()
        self._report_links()
        return t

    def close(self) -> None:
        """Stop probing, fail pending waits and close every switch connection."""
        self._stop.set()
        self.channel.close()
        for dp in list(self._dps.values()):
            try:
                dp.close()
            except Exception:  # noqa: BLE001 - closing anyway
                pass

    def _node(self, dpid: int) -> str:
        try:
            return self.plan.node_of_dpid(dpid)
        except KeyError:
            return f"dpid:{dpid}"

    def _holds(self, dp: Any) -> bool:
        """Whether ``dp`` is the admitted connection of its dpid (not a refused or stale one)."""
        return dp.id is not None and self._dps.get(dp.id) is dp

    def _admit(self, dp: Any) -> bool:
        """``controller.switchauth.admit`` for a connection that said its dpid; a refusal closes it
        and is reported as a security event."""
        peer = None
        if self.tls:
            try:
                peer = dp.socket.getpeercert()
            except (AttributeError, ValueError, OSError):
                peer = None
        known = {self.plan.dpid(n) for n in self.plan.topology.nodes}
        verdict = switchauth.admit(dp.id, known=known, connected=[d for d in self._dps if self._dps[d] is not dp],
                                   tls=self.tls, certificate=switchauth.cert_dpids(peer),
                                   require_cert_dpid=self.require_cert_dpid)
        if verdict.ok and verdict.replaces:
            old = self._dps.pop(dp.id)
            self._ready.discard(dp.id)
            self._ready_since.pop(dp.id, None)
            self.channel.drop(dp.id)
            LOG.warning("security: switch dpid %d reconnected from %s with a certificate naming it: it replaces "
                        "the connection from %s", dp.id, dp.address[0], old.address[0],
                        extra={"fields": {"event": "switch_replaced", "dpid": dp.id}})
            _safely(self.service.switch_replaced, dp.id, f"{dp.address[0]}:{dp.address[1]}",
                    f"{old.address[0]}:{old.address[1]}")
            try:
                old.close()
            except Exception:  # noqa: BLE001 - replacing anyway
                pass
            return True
        if verdict.ok:
            return True
        address = f"{dp.address[0]}:{dp.address[1]}" if isinstance(dp.address, tuple) else str(dp.address)
        LOG.warning("security: refused switch connection from %s claiming dpid %d: %s (%s)", address, dp.id,
                    verdict.reason, verdict.detail,
                    extra={"fields": {"event": "switch_refused", "dpid": dp.id, "address": address,
                                      "reason": verdict.reason}})
        _safely(self.service.switch_refused, dp.id, address, verdict.reason, verdict.detail)
        try:
            dp.close()
        except Exception:  # noqa: BLE001 - refusing anyway
            pass
        return False

    def _ready_dps(self) -> dict[int, Any]:
        return {d: dp for d, dp in self._dps.items() if d in self._ready}

    # ----------------------------------------------------------------- switch state
    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def _state_change(self, ev: Any) -> None:
        dp = ev.datapath
        if dp.id is None:
            return
        if ev.state == MAIN_DISPATCHER:
            if not self._admit(dp):
                return
            node = self.plan.node_of_dpid(dp.id)
            self._dps[dp.id] = dp
            LOG.info("switch %s (dpid %d) connected from %s", node, dp.id, dp.address[0])
            threading.Thread(target=self._resync, args=(dp,), name=f"detnet-resync-{dp.id}", daemon=True).start()
        elif ev.state == DEAD_DISPATCHER and self._dps.get(dp.id) is dp:
            del self._dps[dp.id]
            self._ready.discard(dp.id)
            self._ready_since.pop(dp.id, None)
            self.channel.drop(dp.id)
            LOG.info("switch %s (dpid %d) disconnected", self._node(dp.id), dp.id)
            _safely(self.service.switch_disconnected, dp.id)
            self._report_links()

    def _dump(self, dp: Any) -> SwitchState:
        """The switch's meters, flows and groups, as ``resync`` compares them."""
        p, o = dp.ofproto_parser, dp.ofproto
        ch = self.channel
        return SwitchState(
            meters=[{"meter_id": m.meter_id, "rate_kbps": m.bands[0].rate if m.bands else 0,
                     "burst_kb": m.bands[0].burst_size if m.bands else 0}
                    for m in ch.multipart(dp, p.OFPMeterConfigStatsRequest(dp, 0, o.OFPM_ALL))],
            flows=[{"table_id": s.table_id, "priority": s.priority, "cookie": s.cookie, "match": dict(s.match.items())}
                   for s in ch.multipart(dp, p.OFPFlowStatsRequest(dp, 0, o.OFPTT_ALL, o.OFPP_ANY, o.OFPG_ANY,
                                                                   0, 0, p.OFPMatch()))],
            groups=[{"group_id": g.group_id,
                     "buckets": [[a.port for a in b.actions if isinstance(a, p.OFPActionOutput)] for b in g.buckets]}
                    for g in ch.multipart(dp, p.OFPGroupDescStatsRequest(dp, 0))])

    def _resync(self, dp: Any) -> None:
        """Bring one switch to the desired state (``programs.resync``), then report it connected."""
        t0 = time.perf_counter()
        node = self.plan.node_of_dpid(dp.id)
        try:
            with self._prog_lock:
                if self._dps.get(dp.id) is not dp:
                    return
                failed = _safely(self.service.failed_links) or set()
                program = programs.resync(
                    self.plan, node, self.service.reservations_snapshot(), self._dump(dp),
                    rate_scale=self.rate_scale, queue_id=self.queue_id, failed=failed,
                    on_error=lambda r, e: LOG.warning("reservation %s not installable: %s", r.id, e))
                ok = self.channel.run({dp.id: dp}, program)
                self._be_sent[dp.id] = programs.best_effort_entries(self.plan, node, rate_scale=self.rate_scale,
                                                                    failed=failed)
                self._ready.add(dp.id)
                self._ready_since[dp.id] = time.monotonic()
            LOG.info("switch %s (dpid %d) synced in %.1f ms: %s%s", node, dp.id, 1000 * (time.perf_counter() - t0),
                     _counts(program), "" if ok else " (no barrier reply)")
        except Gone:
            LOG.warning("switch %s (dpid %d) went away during resync", node, dp.id)
            return
        except Exception:  # noqa: BLE001
            LOG.exception("resync of switch %s (dpid %d) failed", node, dp.id)
        if self._dps.get(dp.id) is dp:
            _safely(self.service.switch_connected, dp.id)
            self._report_links()

    # ----------------------------------------------------------------- reservations (ReservationListener)
    def reservations_added(self, added: Sequence[Reservation]) -> None:
        """Install reservations committed together (``programs.install_many``: one program, so one
        message run and one barrier per phase on each switch) on every connected switch of their
        paths; wait for the barriers."""
        t0 = time.perf_counter()
        program, skipped = programs.install_many(self.plan, added, self.service.link_reserved_bps(),
                                                 rate_scale=self.rate_scale, queue_id=self.queue_id)
        for res, e in skipped:
            LOG.warning("reservation %s: nothing installed: %s", res.id, e)
        done = [r for r in added if r.id not in {s.id for s, _ in skipped}]
        if not done:
            return
        flows = sum(isinstance(c, programs.FlowAdd) for c in program.changes())
        with self._prog_lock:
            ok, n, missing = self._run_on_paths(done, program)
        self._record("install", done, t0, ok, n, missing, f"{flows} flows, {len(done)} meters")

    def reservations_removed(self, removed: Sequence[Reservation]) -> None:
        """Delete reservations' entries (one cookie-masked delete per reservation and switch) and
        their meters, as one program."""
        t0 = time.perf_counter()
        program = programs.remove_many(self.plan, removed, self.service.link_reserved_bps(),
                                       rate_scale=self.rate_scale)
        with self._prog_lock:
            ok, n, missing = self._run_on_paths(removed, program)
        self._record("remove", removed, t0, ok, n, missing, "")

    def reservations_changed(self, pairs: Sequence[tuple[Reservation, Reservation]]) -> None:
        """Reprogram reservations a link event moved (``programs.reroute``: make-before-break)."""
        t0 = time.perf_counter()
        plan = programs.reroute(self.plan, pairs, self.service.link_reserved_bps(),
                                rate_scale=self.rate_scale, queue_id=self.queue_id)
        for old, e in plan.unplaceable:
            LOG.warning("reservation %s: new placement not installable (%s): removing it", old.id, e)
            self.reservations_removed([old])
        with self._prog_lock:
            dps = self._ready_dps()
            ok = self.channel.run(dps, plan.program)
            n = len(set(plan.program.switches()) & set(dps))
        dt = time.perf_counter() - t0
        LOG.info("%d reservations reprogrammed on %d switches: reprogram_ms=%.2f%s", len(pairs), n,
                 1000 * dt, "" if ok else " (barrier missing or error)")
        for _, new in pairs:
            self.install_times.append(("reroute", new.id, dt))
            _safely(self.service.observe_install, "reroute", new.id, dt, ok)

    def _run_on_paths(self, reservations: Sequence[Reservation], program: Program) -> tuple[bool, int, list[str]]:
        """Run ``program`` on the programmable switches; (ok, switches of the paths reached,
        path switches not connected: those get the entries from their resync)."""
        dps = self._ready_dps()
        on_path = list(dict.fromkeys(d for r in reservations for d in programs.path_switches(self.plan, r)))
        missing = [self.plan.node_of_dpid(d) for d in on_path if d not in dps]
        return self.channel.run(dps, program), len(on_path) - len(missing), missing

    def _record(self, op: str, reservations: Sequence[Reservation], t0: float, ok: bool, n: int,
                missing: list[str], what: str) -> None:
        """Log one line for the program and report its time for each reservation it carried."""
        dt = time.perf_counter() - t0
        ids = [r.id for r in reservations]
        who = f"reservation {ids[0]}" if len(ids) == 1 else f"reservations {','.join(ids)}"
        LOG.info("%s %s on %d switches%s: install_ms=%.2f %s%s", who,
                 "installed" if op == "install" else "removed", n, f" ({what})" if what else "", 1000 * dt,
                 "" if ok else "(barrier missing or error) ",
                 f"not connected: {','.join(missing)} (done at reconnect)" if missing else "")
        for rid in ids:
            self.install_times.append((op, rid, dt))
            _safely(self.service.observe_install, op, rid, dt, ok)

    # ----------------------------------------------------------------- links failing
    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def _port_status(self, ev: Any) -> None:
        """An inter-switch port went down or up: queue the link event (handled off the event loop,
        which must stay free to deliver the barrier replies the handling waits for)."""
        t0 = time.perf_counter()
        msg = ev.msg
        dp, desc = msg.datapath, msg.desc
        o = dp.ofproto
        if not self._holds(dp):
            return
        try:
            node = self.plan.node_of_dpid(dp.id)
        except KeyError:
            return
        nbr = translation.inter_switch_ports(self.plan, node).get(desc.port_no)
        if nbr is None:
            return
        down = (msg.reason == o.OFPPR_DELETE or bool(desc.state & o.OFPPS_LINK_DOWN)
                or bool(desc.config & o.OFPPC_PORT_DOWN))
        key = (dp.id, desc.port_no)
        if self._port_down.get(key, False) == down:
            return
        self._port_down[key] = down
        if not down:
            self._port_since[key] = time.monotonic()
        LOG.info("port status: %s port %d (to %s) %s", node, desc.port_no, nbr, "DOWN" if down else "up")
        self._link_queue.put((node, nbr, t0, "system"))

    def _link_is_down(self, u: str, v: str) -> bool:
        """A physical link is down while either of its ports is reported down or LLDP declared it
        silent."""
        a, b = (self.plan.dpid(u), self.plan.port(u, v)), (self.plan.dpid(v), self.plan.port(v, u))
        return (self._port_down.get(a, False) or self._port_down.get(b, False)
                or linkwatch.physical((a, b)) in self._lldp_down)

    def _link_worker(self) -> None:
        while not self._stop.is_set():
            try:
                u, v, t0, actor = self._link_queue.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                down = self._link_is_down(u, v)
                handle = self.service.link_down if down else self.service.link_up
                summary = handle(u, v, detected_at=t0, actor=actor)
                t1 = time.perf_counter()
                changed = self._update_best_effort()
                summary = dict(summary, best_effort_switches=changed,
                               best_effort_s=round(time.perf_counter() - t1, 6))
                self.link_events.append(summary)
                LOG.info("link %s-%s %s handled: %s", u, v, "down" if down else "up",
                         {k: summary.get(k) for k in ("reservations_affected", "reprogrammed_s",
                                                       "best_effort_switches", "best_effort_s")})
            except Exception:  # noqa: BLE001 - keep handling later events
                LOG.exception("link event %s-%s failed", u, v)

    def _update_best_effort(self) -> int:
        """Best-effort forwarding around the failed links, where it changes; how many switches."""
        failed = _safely(self.service.failed_links) or set()
        with self._prog_lock:
            dps = self._ready_dps()
            program, sent = programs.best_effort_update(
                self.plan, {d: self._be_sent.get(d, {}) for d in dps}, failed, rate_scale=self.rate_scale)
            if program:
                self.channel.run(dps, program)
            self._be_sent.update(sent)
        return len(sent)

    # ----------------------------------------------------------------- replies and errors
    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def _barrier_reply(self, ev: Any) -> None:
        if self._holds(ev.msg.datapath):
            self.channel.reply(ev.msg, True)

    @set_ev_cls([ofp_event.EventOFPFlowStatsReply, ofp_event.EventOFPMeterConfigStatsReply,
                 ofp_event.EventOFPGroupDescStatsReply], MAIN_DISPATCHER)
    def _stats_reply(self, ev: Any) -> None:
        if not self._holds(ev.msg.datapath):
            return
        self.channel.reply(ev.msg, not (ev.msg.flags & ev.msg.datapath.ofproto.OFPMPF_REPLY_MORE))

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _error(self, ev: Any) -> None:
        msg = ev.msg
        o = msg.datapath.ofproto
        if not self._holds(msg.datapath):
            LOG.debug("OpenFlow error from a connection that holds no dpid: ignored")
            return
        what = self.channel.what(msg.datapath.id, msg.xid)
        if what.startswith("meter add") and (msg.type, msg.code) == (o.OFPET_METER_MOD_FAILED,
                                                                     o.OFPMMFC_METER_EXISTS):
            # a resync that ran between commit and this call already installed the same meter
            LOG.debug("switch %s: %s: meter already there", self._node(msg.datapath.id), what)
            return
        self.channel.error(msg)
        LOG.error("switch %s (dpid %s) rejected %s: OpenFlow error type=%d code=%d", self._node(msg.datapath.id),
                  msg.datapath.id, what, msg.type, msg.code)

    # ----------------------------------------------------------------- packet-in: ARP, LLDP
    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev: Any) -> None:
        msg = ev.msg
        dp = msg.datapath
        data = bytes(msg.data)
        if len(data) < 14 or not self._holds(dp):
            return
        in_port = msg.match["in_port"]
        (eth_type,) = struct.unpack("!H", data[12:14])
        if eth_type == ETH_TYPE_LLDP:
            src = parse_lldp(data)
            if src is not None:
                link = (src, (dp.id, in_port))
                new = link not in self._seen_links
                self._seen_links[link] = time.monotonic()
                if new:
                    LOG.debug("LLDP: link %s:%d -> %s:%d seen", self._node(src[0]), src[1], self._node(dp.id), in_port)
                    self._report_links()
        elif eth_type == ETH_TYPE_ARP:
            reply = arp_answer(self.plan, dp.id, in_port, data)
            if reply is not None:
                self.channel.send(dp, packet_out(dp, in_port, reply), "packet-out")
                LOG.debug("ARP: answered on %s port %d", self._node(dp.id), in_port)

    def _lldp_loop(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.lldp_interval):
            now = time.monotonic()
            if now - last > 2 * self.lldp_interval:   # this loop stalled: probes were not sent,
                self._probes_since = now             # so silence until now is not the links' fault
            last = now
            for dpid in list(self._ready):
                dp = self._dps.get(dpid)
                if dp is None:
                    continue
                try:
                    for port in translation.inter_switch_ports(self.plan, self.plan.node_of_dpid(dpid)):
                        self.channel.send(dp, packet_out(dp, port, lldp_frame(dpid, port)), "packet-out")
                except Exception:  # noqa: BLE001
                    LOG.exception("LLDP probe on dpid %d failed", dpid)
            horizon = time.monotonic() - 3 * self.lldp_interval - 1
            stale = [k for k, t in self._seen_links.items() if t < horizon]
            for k in stale:
                self._seen_links.pop(k, None)
            if stale:
                self._report_links()
            try:
                self._check_liveness(time.monotonic())
            except Exception:  # noqa: BLE001 - keep probing
                LOG.exception("LLDP liveness check failed")

    def _check_liveness(self, now: float) -> None:
        """Queue link events for links LLDP silence takes down or a fresh sighting brings back."""
        watch = linkwatch.watch_since(self._phys_links, self._ready_since, self._port_down, self._port_since,
                                      self._probes_since)
        verdict = linkwatch.evaluate(self._phys_links, dict(self._seen_links), watch, now,
                                     self.lldp_timeout, self._lldp_down)
        t0 = time.perf_counter()
        for link, down in [(l, True) for l in verdict.down] + [(l, False) for l in verdict.up]:
            (a, b) = link
            u, v = self.plan.node_of_dpid(a[0]), self.plan.node_of_dpid(b[0])
            (self._lldp_down.add if down else self._lldp_down.discard)(link)
            LOG.warning("LLDP: link %s-%s %s", u, v,
                        f"silent for over {self.lldp_timeout:g} s: down" if down else "seen again: up")
            self._link_queue.put((u, v, t0, "lldp_timeout"))

    def link_report(self) -> dict[str, Any]:
        return linkwatch.compare_links(self._expected_links, set(self._seen_links), self.plan)

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
            _safely(self.service.set_link_check, report)


def _counts(program: Program) -> str:
    """'flows +a -d, meters +a ~m -d, groups +a ~m -d' of a resync program, for the log."""
    n: dict[str, int] = {}
    for c in program.changes():
        n[type(c).__name__] = n.get(type(c).__name__, 0) + 1
    return (f"flows +{n.get('FlowAdd', 0)} -{n.get('FlowDeleteStrict', 0)}, meters +{n.get('MeterAdd', 0)} "
            f"~{n.get('MeterModify', 0)} -{n.get('MeterDelete', 0)}, groups +{n.get('GroupAdd', 0)} "
            f"~{n.get('GroupModify', 0)} -{n.get('GroupDelete', 0)}")
