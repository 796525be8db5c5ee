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

Roles in a cluster of controllers (``configure(..., ha=True)``; ``controller.ofroles`` holds the
state and the generation-id arithmetic): the shim starts as a **follower**: each switch is asked
for its current generation id and told ``SLAVE`` with it (Open vSwitch refuses a ``SLAVE`` with an
older id as stale), and nothing that writes goes out: no resync, no reservation or best-effort
programs, no packet-outs, no link events (the service would re-place reservations), no
``switch_connected``/``switch_disconnected`` reports (audited store writes: the leader's).
``set_role(True, g)`` claims ``MASTER`` with generation id ``g`` on every switch, waits for the
replies, then resynchronises each switch that confirmed and behaves as a standalone shim (a
switch connecting later gets ``MASTER`` before its resync); ``set_role(False, g)`` closes the
write gate first (every datapath the programs use is wrapped so that each message passes it)
and then sends ``SLAVE``. A ``MASTER`` refused as stale, or a write refused because this
controller is a slave while it leads, means another controller leads with a newer generation
id: the shim stops writing, logs ``deposed: ...`` and calls ``on_deposed(reason)`` once.
With ``ha=False`` (the default) none of this happens: no role request is ever sent.

The launcher calls ``configure(service, ...)`` before os-ken instantiates the app.
"""

from __future__ import annotations

import logging
import queue
import struct
import threading
import time
from collections import deque
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from os_ken.base import app_manager  # must come before os_ken.controller.* (circular import)
from os_ken.controller import ofp_event
from os_ken.controller.handler import (CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER,
                                       set_ev_cls)
from os_ken.ofproto import ofproto_v1_3

from controller import linkwatch, ofroles, switchauth
from controller.core.model import Reservation
from controller.dataplane import programs, specs, translation
from controller.dataplane.arp import arp_answer
from controller.dataplane.frames import lldp_frame, parse_lldp
from controller.dataplane.programs import Program
from controller.dataplane.resync import SwitchState
from controller.dataplane.specs import ETH_TYPE_ARP, ETH_TYPE_LLDP, FlowSpec
from controller.ofchannel import Channel, Gone, Waiter, packet_out
from controller.seams import DataPlaneHost

LOG = logging.getLogger("detnet.ofshim")

_CONFIG: dict[str, Any] = {}


LLDP_TIMEOUT_FLOOR = 3.0   # s: the default LLDP timeout is max(3.5 x interval, this)
DUMP_PAUSE_S = 0.01        # s: between two switches' dumps of a takeover (``_dump_many``)
GIVE_WAY_S = 0.2           # s: longest a takeover's dump waits between two pieces for changes in progress
DUMP_RESERVATION_BITS = 3  # a takeover dumps reservation entries in 2 ** this pieces (``specs.cookie_partition``)


def configure(service: DataPlaneHost, *, rate_scale: float = 1.0, lldp_interval: float = 2.0,
              barrier_timeout: float = 5.0, queue_id: int | None = None,
              lldp_timeout: float | None = None, tls: bool = False, require_cert_dpid: bool = True,
              ha: bool = False, on_deposed: Callable[[str], Any] | None = None) -> None:
    """Hand the service and the data-plane options to the app os-ken is about to instantiate.
    ``lldp_timeout``: seconds of LLDP silence that take a link down (default
    ``max(3.5 * lldp_interval, LLDP_TIMEOUT_FLOOR)``). ``tls``: os-ken listens with TLS and a
    required client certificate; ``require_cert_dpid``: that certificate must name the dpid
    (``controller.switchauth``). ``ha``: one of a cluster of controllers: start as a follower
    (OpenFlow ``SLAVE``, no writes) until ``DetnetShim.set_role(True, generation_id)``;
    ``on_deposed(reason)``: called once (from its own thread) when a switch says another
    controller leads with a newer generation id."""
    if lldp_timeout is None:
        lldp_timeout = linkwatch.lldp_timeout(float(lldp_interval), floor=LLDP_TIMEOUT_FLOOR)
    _CONFIG.clear()
    _CONFIG.update(service=service, rate_scale=float(rate_scale), lldp_interval=float(lldp_interval),
                   barrier_timeout=float(barrier_timeout), queue_id=queue_id, instance=None,
                   lldp_timeout=float(lldp_timeout), tls=bool(tls), require_cert_dpid=bool(require_cert_dpid),
                   ha=bool(ha), on_deposed=on_deposed)


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
        self.roles = ofroles.RoleState(_CONFIG.get("ha", False))
        self._on_deposed: Callable[[str], Any] | None = _CONFIG.get("on_deposed")
        self._role_lock = threading.Lock()     # serialises role claims (not demotions: the gate is first)
        self.role_errors: dict[str, int] = {"is_slave": 0, "stale_master": 0, "stale_slave": 0, "role_failed": 0}

        self._dps: dict[int, Any] = {}          # dpid -> datapath (connected)
        self._ready: set[int] = set()           # dpids resynchronised and programmable
        self._prog_lock = threading.RLock()     # serialises resyncs and reservation changes
        #: while a takeover resync plans outside the lock: ids of reservations programmed meanwhile
        self._touched: set[str] | None = None
        self._pending_lock = threading.Lock()
        self._pending_changes = 0               # reservation changes being programmed now
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
        return {d: self._w(dp) for d, dp in self._dps.items() if d in self._ready}

    def _w(self, dp: Any) -> Any:
        """``dp`` for writing: itself standalone, behind the role gate in a cluster."""
        return _Gated(dp, self.roles) if self.roles.ha else dp

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
            threading.Thread(target=self._connect_ha if self.roles.ha else self._resync, args=(dp,),
                             name=f"detnet-resync-{dp.id}", daemon=True).start()
        elif ev.state == DEAD_DISPATCHER and self._dps.get(dp.id) is dp:
            del self._dps[dp.id]
            reported = dp.id in self._ready or not self.roles.ha
            self._ready.discard(dp.id)
            self._ready_since.pop(dp.id, None)
            self.channel.drop(dp.id)
            LOG.info("switch %s (dpid %d) disconnected", self._node(dp.id), dp.id)
            if reported:
                _safely(self.service.switch_disconnected, dp.id)
            self._report_links()

    def _dump(self, dp: Any, pace: Callable[[], None] | None = None) -> SwitchState:
        """The switch's meters, flows and groups, as ``resync`` compares them.

        ``pace``: ask for the flows in pieces (``specs.cookie_partition``: every cookie in exactly
        one) and call ``pace`` between two requests. A takeover dumps this way so that a reservation
        installed meanwhile waits for one piece, not for the whole table: os-ken parses a reply in
        Python before the barrier answer that follows it on the connection."""
        p, o = dp.ofproto_parser, dp.ofproto
        ch = self.channel
        pieces = specs.cookie_partition(DUMP_RESERVATION_BITS) if pace is not None else [(0, 0)]
        flows = []
        for cookie, mask in pieces:
            flows += [{"table_id": s.table_id, "priority": s.priority, "cookie": s.cookie, "match": dict(s.match.items())}
                      for s in ch.multipart(dp, p.OFPFlowStatsRequest(dp, 0, o.OFPTT_ALL, o.OFPP_ANY, o.OFPG_ANY,
                                                                      cookie, mask, p.OFPMatch()))]
            if pace is not None:
                pace()
        meters = [{"meter_id": m.meter_id, "rate_kbps": m.bands[0].rate if m.bands else 0,
                   "burst_kb": m.bands[0].burst_size if m.bands else 0}
                  for m in ch.multipart(dp, p.OFPMeterConfigStatsRequest(dp, 0, o.OFPM_ALL))]
        if pace is not None:
            pace()
        groups = [{"group_id": g.group_id,
                   "buckets": [[a.port for a in b.actions if isinstance(a, p.OFPActionOutput)] for b in g.buckets]}
                  for g in ch.multipart(dp, p.OFPGroupDescStatsRequest(dp, 0))]
        return SwitchState(meters=meters, flows=flows, groups=groups)

    def _resync(self, dp: Any) -> None:
        """Bring one switch to the desired state, then report it connected (``_resync_many``)."""
        self._resync_many([dp])

    def _resync_many(self, dps: Sequence[Any]) -> None:
        """Bring switches to the desired state as one program (``programs.resync_many``), then report
        each connected.

        Under the programming lock, so no reservation change interleaves: the switches are dumped in
        parallel (one thread each: their replies come on their own connections), each reservation is
        translated once for all of them, and one merged program runs with one barrier per phase on
        each switch. A switch that connects is resynchronised this way alone; a new leader's switches
        together, when links changed during its ``_takeover_resync``."""
        t0 = time.perf_counter()
        done: list[tuple[Any, str, Program]] = []
        ok = True
        try:
            with self._prog_lock:
                live = [dp for dp in dps if self._dps.get(dp.id) is dp]
                if not live or not self.roles.may_write():
                    return
                failed = _safely(self.service.failed_links) or set()
                snapshot = self.service.reservations_snapshot()
                dumps = self._dump_many(live)
                t_dump = time.perf_counter()
                live = [dp for dp in live if dp.id in dumps]
                nodes = {dp.id: self.plan.node_of_dpid(dp.id) for dp in live}
                progs = self._plan_resync({nodes[d]: state for d, state in dumps.items()}, snapshot, failed)
                t_plan = time.perf_counter()
                ok = self.channel.run({dp.id: self._w(dp) for dp in live}, programs.merged(progs.values()))
                if not self.roles.may_write():
                    LOG.warning("resync of %s cut short: no longer leader", ",".join(nodes.values()))
                    return
                for dp in live:
                    self._note_best_effort_sent(dp.id, nodes[dp.id], failed)
                    self._ready.add(dp.id)
                    self._ready_since[dp.id] = time.monotonic()
                    done.append((dp, nodes[dp.id], progs[nodes[dp.id]]))
            t1 = time.perf_counter()
            for dp, node, program in done:
                LOG.info("switch %s (dpid %d) synced in %.1f ms: %s%s (%d switches together: dump %.1f, plan %.1f, "
                         "program %.1f ms)", node, dp.id, 1000 * (t1 - t0), _counts(program),
                         "" if ok else " (no barrier reply)", len(done),
                         1000 * (t_dump - t0), 1000 * (t_plan - t_dump), 1000 * (t1 - t_plan))
        except Exception:  # noqa: BLE001
            LOG.exception("resync of %s failed", ",".join(self._node(dp.id) for dp in dps))
        for dp in dps:
            if self._dps.get(dp.id) is dp and (dp.id in self._ready or not done):
                _safely(self.service.switch_connected, dp.id)
        self._report_links()

    def _takeover_resync(self, dps: Sequence[Any]) -> None:
        """Resynchronise the switches a new leader just became MASTER of, writes going on meanwhile.

        The switches hold what the last leader programmed for the same state (all but the writes it
        had in flight), so they are programmable at once: a new reservation is installed while
        the resync dumps and plans, outside the programming lock (0.5-1 s with 700 reservations on
        six switches, which a first write waited for). Then, under the lock, each plan is
        ``programs.rebased`` (the changes of reservations programmed meanwhile dropped, the
        best-effort meters planned afresh) and run as one program. Should the failed links change
        meanwhile, the plan is made again under the lock (``_resync_many``)."""
        t0 = time.perf_counter()
        with self._prog_lock:
            live = [dp for dp in dps if self._dps.get(dp.id) is dp]
            if not live or not self.roles.may_write():
                return
            failed = set(_safely(self.service.failed_links) or set())
            snapshot = self.service.reservations_snapshot()
            self._touched = set()
            for dp in live:
                self._ready.add(dp.id)
                self._ready_since[dp.id] = time.monotonic()
        try:
            dumps = self._dump_many(live, parallel=False)
            t_dump = time.perf_counter()
            nodes = {dp.id: self.plan.node_of_dpid(dp.id) for dp in live if dp.id in dumps}
            progs = self._plan_resync({nodes[d]: state for d, state in dumps.items()}, snapshot, failed)
            t_plan = time.perf_counter()
            with self._prog_lock:
                touched, self._touched = self._touched or set(), None
                if not self.roles.may_write():
                    return
                if set(_safely(self.service.failed_links) or set()) != failed:
                    LOG.info("links failed or came back during the takeover resync: planning it again")
                    for dp in live:
                        self._ready.discard(dp.id)
                    self._resync_many(live)
                    return
                now = self.service.reservations_snapshot() if touched else snapshot
                run = {d: programs.rebased(progs[nodes[d]], self.plan, nodes[d], dumps[d], touched, now,
                                           rate_scale=self.rate_scale) for d in nodes}
                ok = self.channel.run({dp.id: self._w(dp) for dp in live if dp.id in nodes},
                                      programs.merged(run.values()))
                for d, node in nodes.items():
                    self._note_best_effort_sent(d, node, failed)
            t1 = time.perf_counter()
            for d, node in nodes.items():
                LOG.info("switch %s (dpid %d) synced in %.1f ms: %s%s (taking over %d switches, writes going on: "
                         "dump %.1f, plan %.1f, program %.1f ms; %d reservations programmed meanwhile)", node, d,
                         1000 * (t1 - t0), _counts(run[d]), "" if ok else " (no barrier reply)", len(nodes),
                         1000 * (t_dump - t0), 1000 * (t_plan - t_dump), 1000 * (t1 - t_plan), len(touched))
        except Exception:  # noqa: BLE001
            LOG.exception("takeover resync of %s failed", ",".join(self._node(dp.id) for dp in live))
        finally:
            with self._prog_lock:
                self._touched = None
        for dp in live:
            if self._dps.get(dp.id) is dp:
                _safely(self.service.switch_connected, dp.id)
        self._report_links()

    def _plan_resync(self, actual: dict[str, SwitchState], snapshot: Sequence[Reservation],
                     failed: set[Any]) -> dict[str, Program]:
        """``programs.resync_many`` with this shim's rates and queue; untranslatable reservations logged."""
        return programs.resync_many(
            self.plan, actual, snapshot, rate_scale=self.rate_scale, queue_id=self.queue_id, failed=failed,
            on_error=lambda r, e: LOG.warning("reservation %s not installable: %s", r.id, e))

    def _note_best_effort_sent(self, dpid: int, node: str, failed: set[Any]) -> None:
        """A resync left switch ``dpid`` with the best-effort entries around ``failed`` links."""
        self._be_sent[dpid] = programs.best_effort_entries(self.plan, node, rate_scale=self.rate_scale, failed=failed)

    def _note_touched(self, reservations: Sequence[Reservation]) -> None:
        """Remember reservations programmed while a takeover resync plans (caller holds the lock)."""
        if self._touched is not None:
            self._touched.update(r.id for r in reservations)

    def _dump_many(self, dps: Sequence[Any], *, parallel: bool = True) -> dict[int, SwitchState]:
        """``_dump`` of each switch; a switch that went away meanwhile is left out.

        ``parallel``: one thread per switch (the switches build their answers at once). Otherwise
        one after the other, each in pieces, giving way to reservation changes in progress between
        two (``_dump(pace=...)``): os-ken parses every reply in Python, and six dumps parsed at
        once took the interpreter from the REST threads (a takeover's first write waited 0.75 s
        behind them while it had nothing to wait for)."""
        out: dict[int, SwitchState] = {}

        def one(dp: Any) -> None:
            try:
                out[dp.id] = self._dump(dp, None if parallel else self._give_way)
            except Gone:
                LOG.warning("switch %s (dpid %d) went away during resync", self._node(dp.id), dp.id)

        if len(dps) == 1 or not parallel:
            for i, dp in enumerate(dps):
                if i:
                    time.sleep(DUMP_PAUSE_S)
                    self._give_way()
                one(dp)
            return out
        workers = [threading.Thread(target=one, args=(dp,), name=f"detnet-dump-{dp.id}", daemon=True) for dp in dps]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        return out

    # ----------------------------------------------------------------- reservations (ReservationListener)
    def reservations_added(self, added: Sequence[Reservation]) -> None:
        """``_install``, counted as a change in progress (a takeover's paced dump gives way to it)."""
        with self._change_pending():
            self._install(added)

    def reservations_removed(self, removed: Sequence[Reservation]) -> None:
        """``_remove``, counted as a change in progress."""
        with self._change_pending():
            self._remove(removed)

    def reservations_changed(self, pairs: Sequence[tuple[Reservation, Reservation]]) -> None:
        """``_reprogram``, counted as a change in progress."""
        with self._change_pending():
            self._reprogram(pairs)

    @contextmanager
    def _change_pending(self) -> Iterator[None]:
        with self._pending_lock:
            self._pending_changes += 1
        try:
            yield
        finally:
            with self._pending_lock:
                self._pending_changes -= 1

    def _give_way(self) -> None:
        """Between two pieces of a takeover's dump: wait (at most ``GIVE_WAY_S``) while reservation
        changes are being programmed, so their barriers are not queued behind a long dump reply on
        the same connection."""
        deadline = time.monotonic() + GIVE_WAY_S
        while self._pending_changes and time.monotonic() < deadline:
            time.sleep(0.002)

    def _install(self, added: Sequence[Reservation]) -> None:
        """Install reservations committed together (``programs.install_many``: one program, so one
        message run and one barrier per phase on each switch) on every connected switch of their
        paths; wait for the barriers. Nothing on a follower."""
        if not self.roles.may_write():
            return
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
            self._note_touched(done)
            ok, n, missing = self._run_on_paths(done, program)
        self._record("install", done, t0, ok, n, missing, f"{flows} flows, {len(done)} meters")

    def _remove(self, removed: Sequence[Reservation]) -> None:
        """Delete reservations' entries (one cookie-masked delete per reservation and switch) and
        their meters, as one program. Nothing on a follower."""
        if not self.roles.may_write():
            return
        t0 = time.perf_counter()
        program = programs.remove_many(self.plan, removed, self.service.link_reserved_bps(),
                                       rate_scale=self.rate_scale)
        with self._prog_lock:
            self._note_touched(removed)
            ok, n, missing = self._run_on_paths(removed, program)
        self._record("remove", removed, t0, ok, n, missing, "")

    def _reprogram(self, pairs: Sequence[tuple[Reservation, Reservation]]) -> None:
        """Reprogram reservations a link event moved (``programs.reroute``: make-before-break).
        Nothing on a follower."""
        if not self.roles.may_write():
            return
        t0 = time.perf_counter()
        plan = programs.reroute(self.plan, pairs, self.service.link_reserved_bps(),
                                rate_scale=self.rate_scale, queue_id=self.queue_id)
        for old, e in plan.unplaceable:
            LOG.warning("reservation %s: new placement not installable (%s): removing it", old.id, e)
            self._remove([old])
        with self._prog_lock:
            self._note_touched([new for _, new in pairs])
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
        if self.roles.may_write():   # a follower only notes it: the service's link handling writes
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

    # ----------------------------------------------------------------- roles (configure(..., ha=True))
    @property
    def role(self) -> tuple[str, int]:
        """(``"leader"`` | ``"follower"`` | ``"standalone"``, generation id), for health output."""
        return self.roles.role

    def set_role(self, leader: bool, generation_id: int) -> dict[str, Any]:
        """Lead with ``generation_id`` (``leader=True``) or follow (thread-safe, any thread; blocks
        for the role replies, bounded by the barrier timeout, and for the resyncs).

        Leading: ``MASTER`` with ``generation_id`` to every connected switch, then each switch that
        confirmed is resynchronised as on connect (``programs.resync``: nothing changes where the
        previous leader programmed the same state) and programmed from then on. Following:
        writes stop before anything is sent, then ``SLAVE`` (``generation_id``: the newest term
        known; the switch's own is used when newer). Returns ``{"role", "generation_id",
        "switches", "confirmed", "refused"}`` (refused: node names that answered with an error or
        not at all); ``RuntimeError`` unless configured with ``ha=True``; ``ValueError`` on a
        generation id outside 64 bits."""
        generation_id = ofroles.check_generation(generation_id)
        if not leader:
            before = self.roles.follow(generation_id)
            self._stop_programming()
            with self._role_lock:
                dps = dict(self._dps)
                confirmed = self._claim_slave(dps)
            LOG.info("role: follower (was %s), SLAVE on %d/%d switches", before, len(confirmed), len(dps))
            return self._role_summary(dps, confirmed)
        token = self.roles.claim(generation_id)
        with self._role_lock:
            dps = dict(self._dps)
            confirmed = self._claim_master(dps, generation_id)
            if not self.roles.lead(token):
                LOG.warning("role: the claim with generation id %d was overtaken (demoted or deposed meanwhile)",
                            generation_id)
                return self._role_summary(dps, set())
        LOG.info("role: leader with generation id %d, MASTER on %d/%d switches", generation_id, len(confirmed),
                 len(dps))
        self._takeover_resync([dps[d] for d in sorted(confirmed)])
        return self._role_summary(dps, confirmed)

    def _role_summary(self, dps: dict[int, Any], confirmed: set[int]) -> dict[str, Any]:
        role, generation = self.roles.role
        return {"role": role, "generation_id": generation, "switches": len(dps), "confirmed": len(confirmed),
                "refused": sorted(self._node(d) for d in dps if d not in confirmed)}

    def _stop_programming(self) -> None:
        """No switch is programmable any more (LLDP probes and link checks stop with it)."""
        self._ready.clear()
        self._ready_since.clear()

    def _connect_ha(self, dp: Any) -> None:
        """A switch connected to a controller of a cluster: ``MASTER`` then resync while leading,
        else ``SLAVE`` and nothing more."""
        with self._role_lock:
            if self._dps.get(dp.id) is not dp:
                return
            if not self.roles.claiming():
                self._claim_slave({dp.id: dp})
                return
            confirmed = self._claim_master({dp.id: dp}, self.roles.generation)
        if confirmed and self.roles.may_write():
            self._resync(dp)

    def _role_requests(self, asks: dict[int, tuple[Any, int, int]]) -> dict[int, Any]:
        """Send ``ROLE_REQUEST(role, generation)`` to each ``dpid: (dp, role, generation)`` and wait
        (one deadline for all); the ``ROLE_REPLY`` of each switch that answered without error (an
        error is handed to the waiter as its answer: ``_error``)."""
        waits: dict[int, tuple[tuple[int, int], Waiter]] = {}
        for dpid, (dp, role, generation) in asks.items():
            w = Waiter()
            req = dp.ofproto_parser.OFPRoleRequest(dp, role, generation)
            xid = self.channel.send(dp, req, f"{_ROLE_WHAT} {_ROLE_NAMES[role]} generation {generation}", w)
            waits[dpid] = ((dpid, xid), w)
        if waits:
            self.channel.collect(dict(waits.values()))
        return {d: w.replies[-1] for d, (_, w) in waits.items()
                if w.done.is_set() and not w.failed and w.replies and hasattr(w.replies[-1], "role")}

    def _claim_master(self, dps: dict[int, Any], generation: int) -> set[int]:
        """``MASTER`` with ``generation`` on ``dps``; the dpids that confirmed."""
        replies = self._role_requests({d: (dp, ofroles.OFPCR_ROLE_MASTER, generation) for d, dp in dps.items()})
        confirmed = {d for d, r in replies.items() if r.role == ofroles.OFPCR_ROLE_MASTER}
        for d in dps:
            if d not in confirmed:
                LOG.error("switch %s (dpid %d) did not confirm MASTER with generation id %d: not programmed "
                          "until it reconnects or the role is set again", self._node(d), d, generation)
        return confirmed

    def _claim_slave(self, dps: dict[int, Any], attempts: int = 3) -> set[int]:
        """``SLAVE`` on ``dps`` with a generation id no switch refuses: each switch's current one
        (asked with ``NOCHANGE``) or the newest known, whichever is newer; a switch that refuses
        it as stale (a newer leader claimed in between) is asked again. The dpids that confirmed."""
        confirmed: set[int] = set()
        todo = dict(dps)
        for _ in range(attempts):
            if not todo:
                break
            current = self._role_requests({d: (dp, ofroles.OFPCR_ROLE_NOCHANGE, 0) for d, dp in todo.items()})
            known = self.roles.generation
            replies = self._role_requests({d: (todo[d], ofroles.OFPCR_ROLE_SLAVE,
                                               ofroles.slave_generation(r.generation_id, known))
                                           for d, r in current.items()})
            ok = {d for d, r in replies.items() if r.role == ofroles.OFPCR_ROLE_SLAVE}
            confirmed |= ok
            todo = {d: dp for d, dp in todo.items() if d not in ok and self._dps.get(d) is dp}
        for d in todo:
            LOG.error("switch %s (dpid %d) did not confirm SLAVE", self._node(d), d)
        return confirmed

    def _role_error(self, dp: Any, what: str, kind: str) -> None:
        """An OpenFlow error that concerns the role (``ofroles.classify``); runs on os-ken's loop."""
        node = self._node(dp.id)
        if kind == "stale_slave":
            self.role_errors["stale_slave"] += 1
            LOG.info("switch %s refused %s as stale (a newer leader claimed meanwhile): asking again", node, what)
        elif kind == "role_failed":
            self.role_errors["role_failed"] += 1
            LOG.error("switch %s refused %s", node, what)
        elif kind == "is_slave":
            self.role_errors["is_slave"] += 1
            LOG.warning("switch %s refused %s: this controller is SLAVE there (%d refused so far)", node, what,
                        self.role_errors["is_slave"])
        else:   # deposed
            generation = self.roles.generation
            if what.startswith(_ROLE_WHAT):
                self.role_errors["stale_master"] += 1
                generation = int(what.rsplit(" ", 1)[1])
                reason = f"switch {node} refused MASTER with generation id {generation} (stale)"
            else:
                self.role_errors["is_slave"] += 1
                reason = (f"switch {node} refused {what}: this controller is SLAVE there (another controller "
                          f"claimed MASTER with a generation id newer than {generation})")
            if self.roles.depose(generation):
                self._stop_programming()
                LOG.warning("deposed: %s", reason, extra={"fields": {"event": "deposed", "generation_id": generation}})
                threading.Thread(target=self._after_deposed, args=(reason,), name="detnet-deposed",
                                 daemon=True).start()
            else:
                LOG.info("switch %s: %s", node, reason)

    def _after_deposed(self, reason: str) -> None:
        """Off os-ken's loop: ``SLAVE`` everywhere (at the newer leader's generation id, which
        the switches tell), then tell whoever hooked ``on_deposed``."""
        try:
            with self._role_lock:
                self._claim_slave(dict(self._dps))
        finally:
            if self._on_deposed is not None:
                _safely(self._on_deposed, reason)

    # ----------------------------------------------------------------- replies and errors
    @set_ev_cls(ofp_event.EventOFPRoleReply, MAIN_DISPATCHER)
    def _role_reply(self, ev: Any) -> None:
        if self._holds(ev.msg.datapath):
            self.channel.reply(ev.msg, True)

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
        if self.roles.ha:
            verdict = ofroles.classify(msg.type, msg.code, request_role=_asked_role(what), role=self.roles.role[0])
            if verdict is not None:
                self._role_error(msg.datapath, what, verdict.kind)
                if what.startswith(_ROLE_WHAT):
                    self.channel.reply(msg, True)  # a role request's answer (the claim waits for it)
                else:
                    self.channel.error(msg)        # a write refused: its program's wait reports it
                return
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
                self.channel.send(self._w(dp), packet_out(dp, in_port, reply), "packet-out")
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
                        self.channel.send(self._w(dp), packet_out(dp, port, lldp_frame(dpid, port)), "packet-out")
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


_ROLE_WHAT = "role request"
_ROLE_NAMES = {ofroles.OFPCR_ROLE_NOCHANGE: "NOCHANGE", ofroles.OFPCR_ROLE_EQUAL: "EQUAL",
               ofroles.OFPCR_ROLE_MASTER: "MASTER", ofroles.OFPCR_ROLE_SLAVE: "SLAVE"}
_ROLE_NUMBERS = {v: k for k, v in _ROLE_NAMES.items()}


def _asked_role(what: str) -> int | None:
    """The role a request asked for, from what ``Channel`` remembers of it (None: not a role request)."""
    if not what.startswith(_ROLE_WHAT + " "):
        return None
    return _ROLE_NUMBERS.get(what.split()[2])


class _Gated:
    """A datapath whose messages go out only while this controller may write
    (``RoleState.gate``: checked and sent under one lock, so a demotion stops the next message, or
    the next joined phase of a program: ``send``)."""

    __slots__ = ("_dp", "_roles")

    def __init__(self, dp: Any, roles: ofroles.RoleState) -> None:
        self._dp, self._roles = dp, roles

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dp, name)

    def send_msg(self, msg: Any) -> bool:
        with self._roles.gate() as may:
            if not may:
                LOG.debug("dpid %s: %s not sent: follower", self._dp.id, type(msg).__name__)
                return False
            return self._dp.send_msg(msg)

    def send(self, buf: bytes) -> bool:
        """Serialised messages (a program phase joined by ``ofchannel.Channel.send_phase``), all or
        none: the gate is checked once."""
        with self._roles.gate() as may:
            if not may:
                LOG.debug("dpid %s: %d bytes of messages not sent: follower", self._dp.id, len(buf))
                return False
            return self._dp.send(buf)


def _counts(program: Program) -> str:
    """'flows +a -d, meters +a ~m -d, groups +a ~m -d' of a resync program, for the log."""
    n: dict[str, int] = {}
    for c in program.changes():
        n[type(c).__name__] = n.get(type(c).__name__, 0) + 1
    return (f"flows +{n.get('FlowAdd', 0)} -{n.get('FlowDeleteStrict', 0)}, meters +{n.get('MeterAdd', 0)} "
            f"~{n.get('MeterModify', 0)} -{n.get('MeterDelete', 0)}, groups +{n.get('GroupAdd', 0)} "
            f"~{n.get('GroupModify', 0)} -{n.get('GroupDelete', 0)}")
