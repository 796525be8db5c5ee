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
- ``reservations_changed`` (a link event moved reservations) reprograms only the entries that
  differ, make-before-break: new entries on the downstream switches first (barrier), then the
  ingress entry / replication group, then the stale entries are deleted (barrier);
- port status (OFPPortStatus: link down, port down, port deleted) of an inter-switch port is
  turned into ``service.link_down``/``link_up`` (one worker thread, in order; a link is up when
  both its ports are), which re-places the reservations and calls back here; then best-effort
  forwarding is recomputed around the failed links on the switches whose entries change;
- protected reservations get a group of type ALL on their ingress switch (add/modify/delete,
  and compared at resync like meters);
- ARP requests from host ports are answered from the host plan (same tenant only);
- LLDP probes go out of every inter-switch port every ``lldp_interval`` seconds; the links seen
  are compared with the topology and reported to ``service.set_link_check``; a link whose LLDP
  stays silent past ``lldp_timeout`` (``controller.linkwatch``) while both its switches are
  programmed and both its ports up is taken down (``actor="lldp_timeout"``) through the same
  worker as port status, and brought up when seen again in both directions.

The launcher calls ``configure(service, ...)`` before os-ken instantiates the app.
"""

from __future__ import annotations

import logging
import queue
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

from controller import linkwatch
from controller import openflow as of

LOG = logging.getLogger("detnet.ofshim")

_CONFIG: dict[str, Any] = {}


LLDP_TIMEOUT_FLOOR = 3.0   # s: the default LLDP timeout is max(3.5 x interval, this)


def configure(service: Any, *, rate_scale: float = 1.0, lldp_interval: float = 2.0,
              barrier_timeout: float = 5.0, queue_id: int | None = None,
              lldp_timeout: float | None = None) -> None:
    """Hand the service and the data-plane options to the app os-ken is about to instantiate.
    ``lldp_timeout``: seconds of LLDP silence that take a link down (default
    ``max(3.5 * lldp_interval, LLDP_TIMEOUT_FLOOR)``)."""
    if lldp_timeout is None:
        lldp_timeout = linkwatch.lldp_timeout(float(lldp_interval), floor=LLDP_TIMEOUT_FLOOR)
    _CONFIG.clear()
    _CONFIG.update(service=service, rate_scale=float(rate_scale), lldp_interval=float(lldp_interval),
                   barrier_timeout=float(barrier_timeout), queue_id=queue_id, instance=None,
                   lldp_timeout=float(lldp_timeout))


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
        self.lldp_timeout = _CONFIG.get("lldp_timeout") or linkwatch.lldp_timeout(
            self.lldp_interval, floor=LLDP_TIMEOUT_FLOOR)
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
        self._phys_links = linkwatch.physical_links(self._expected_links)
        self._lldp_down: set[linkwatch.Physical] = set()      # links LLDP silence took down
        self._ready_since: dict[int, float] = {}              # dpid -> monotonic time programmed
        self._port_since: dict[tuple[int, int], float] = {}   # (dpid, port) -> monotonic time up
        self._probes_since = time.monotonic()                 # LLDP loop (re)started on time
        self._last_report: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._lldp_thread = threading.Thread(target=self._lldp_loop, name="detnet-lldp", daemon=True)
        self._port_down: dict[tuple[int, int], bool] = {}     # (dpid, port) -> reported down
        self._link_queue: queue.Queue = queue.Queue()
        self._link_thread = threading.Thread(target=self._link_worker, name="detnet-links", daemon=True)
        self._be_cache: dict[int, dict[tuple, of.FlowSpec]] = {}   # dpid -> best-effort entries sent
        self.link_events: deque[dict[str, Any]] = deque(maxlen=1000)
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
            self._ready_since.pop(dp.id, None)
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
                    on_error=lambda r, e: LOG.warning("reservation %s not installable: %s", r.id, e),
                    failed=self._failed())
                groups = of.desired_groups(self.plan, node, reservations)
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
                have_groups = [
                    {"group_id": g.group_id,
                     "buckets": [[a.port for a in b.actions if hasattr(a, "port")] for b in g.buckets]}
                    for g in self._multipart(dp, p.OFPGroupDescStatsRequest(dp, 0))]
                m_add, m_mod, m_del = of.meter_resync_plan(meters, have_meters)
                g_add, g_mod, g_del = of.group_resync_plan(groups, have_groups)
                f_add, f_del = of.resync_plan(flows, have_flows)
                for m in m_add:
                    self._send(dp, self._meter_mod(dp, m, o.OFPMC_ADD), f"meter add {m.meter_id}")
                for m in m_mod:
                    self._send(dp, self._meter_mod(dp, m, o.OFPMC_MODIFY), f"meter modify {m.meter_id}")
                for g in g_add:
                    self._send(dp, self._group_mod(dp, g, o.OFPGC_ADD), f"group add {g.group_id}")
                for g in g_mod:
                    self._send(dp, self._group_mod(dp, g, o.OFPGC_MODIFY), f"group modify {g.group_id}")
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
                for gid in g_del:
                    self._send(dp, p.OFPGroupMod(dp, o.OFPGC_DELETE, o.OFPGT_ALL, gid, []), f"group delete {gid}")
                ok = self._barriers([dp])
                self._be_cache[dp.id] = {f.key(): f for f in flows if f.table_id == of.TABLE_BEST_EFFORT}
                self._ready.add(dp.id)
                self._ready_since[dp.id] = time.monotonic()
            LOG.info("switch %s (dpid %d) synced in %.1f ms: flows +%d -%d, meters +%d ~%d -%d, "
                     "groups +%d ~%d -%d%s", node, dp.id,
                     1000 * (time.perf_counter() - t0), len(f_add), len(f_del), len(m_add), len(m_mod),
                     len(m_del), len(g_add), len(g_mod), len(g_del), "" if ok else " (no barrier reply)")
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
            groups = of.reservation_groups(self.plan, res)
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
                for g in groups:
                    if g.dpid == dpid:
                        self._send(dp, self._group_mod(dp, g, o.OFPGC_ADD), f"group add {g.group_id} ({res.id})")
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
                    if getattr(res, "protection_path", None):
                        gid = of.reservation_group_id(res.id)
                        self._send(dp, p.OFPGroupMod(dp, o.OFPGC_DELETE, o.OFPGT_ALL, gid, []), f"group delete {gid}")
                for m in be.get(dpid, []):
                    self._send(dp, self._meter_mod(dp, m, o.OFPMC_MODIFY), f"meter modify {m.meter_id}")
            ok = self._barriers(list(dps.values()))
        self._record("remove", res, t0, ok, len(dps), missing, "")

    def reservation_changed(self, old: Any, new: Any) -> None:
        self.reservations_changed([(old, new)])

    def reservations_changed(self, pairs: list[tuple[Any, Any]]) -> None:
        """Reprogram reservations a link event moved (same ids): only entries that differ, on the
        switches concerned, make-before-break, two barrier rounds for the whole batch."""
        t0 = time.perf_counter()
        adds: dict[int, list[of.FlowSpec]] = {}          # dpid -> entries to add (non-ingress first)
        ingress_adds: dict[int, list[of.FlowSpec]] = {}
        dels: dict[int, list[of.FlowSpec]] = {}
        g_add: dict[int, list[of.GroupSpec]] = {}
        g_mod: dict[int, list[of.GroupSpec]] = {}
        g_del: dict[int, list[int]] = {}
        touched: dict[str, set[int]] = {}
        for old, new in pairs:
            try:
                new_flows, _ = of.reservation_flows(self.plan, new, rate_scale=self.rate_scale, queue_id=self.queue_id)
                new_groups = of.reservation_groups(self.plan, new)
            except of.TranslationError as e:
                LOG.warning("reservation %s: new placement not installable (%s): removing it", new.id, e)
                self.reservation_removed(old)
                continue
            try:
                old_flows, _ = of.reservation_flows(self.plan, old, rate_scale=self.rate_scale, queue_id=self.queue_id)
                old_groups = of.reservation_groups(self.plan, old)
            except of.TranslationError:
                old_flows, old_groups = [], []
            ingress = self.plan.dpid(new.path[0])
            have = {(f.dpid, f.key()): f for f in old_flows}
            want = {(f.dpid, f.key()): f for f in new_flows}
            ids = touched.setdefault(new.id, set())
            for k, f in want.items():
                if k not in have or have[k].cookie != f.cookie:
                    (ingress_adds if f.dpid == ingress else adds).setdefault(f.dpid, []).append(f)
                    ids.add(f.dpid)
            for k, f in have.items():
                if k not in want:
                    dels.setdefault(f.dpid, []).append(f)
                    ids.add(f.dpid)
            og = {g.group_id: g for g in old_groups}
            for g in new_groups:
                if g.group_id not in og:
                    g_add.setdefault(g.dpid, []).append(g)
                    ids.add(g.dpid)
                elif og[g.group_id].bucket_ports() != g.bucket_ports():
                    g_mod.setdefault(g.dpid, []).append(g)
                    ids.add(g.dpid)
            for g in old_groups:
                if g.group_id not in {x.group_id for x in new_groups}:
                    g_del.setdefault(g.dpid, []).append(g.group_id)
                    ids.add(g.dpid)
        with self._prog_lock:
            ready = {d: self._dps[d] for d in set(adds) | set(ingress_adds) | set(dels) | set(g_add) | set(g_mod)
                     | set(g_del) if d in self._ready and d in self._dps}
            # phase 1: downstream entries and new groups (nothing sends into them yet)
            phase1 = []
            for dpid, dp in ready.items():
                o = dp.ofproto
                for g in g_add.get(dpid, []):
                    self._send(dp, self._group_mod(dp, g, o.OFPGC_ADD), f"group add {g.group_id}")
                for f in adds.get(dpid, []):
                    self._send(dp, self._flow_mod(dp, f), "flow add (reroute)")
                if g_add.get(dpid) or adds.get(dpid):
                    phase1.append(dp)
            ok = self._barriers(phase1) if phase1 else True
            # phase 2: switch the ingress (entry or group buckets), then delete what is stale
            for dpid, dp in ready.items():
                p, o = dp.ofproto_parser, dp.ofproto
                for g in g_mod.get(dpid, []):
                    self._send(dp, self._group_mod(dp, g, o.OFPGC_MODIFY), f"group modify {g.group_id}")
                for f in ingress_adds.get(dpid, []):
                    self._send(dp, self._flow_mod(dp, f), "flow add (reroute ingress)")
                for f in dels.get(dpid, []):
                    self._send(dp, p.OFPFlowMod(dp, table_id=f.table_id, priority=f.priority,
                                                command=o.OFPFC_DELETE_STRICT, out_port=o.OFPP_ANY,
                                                out_group=o.OFPG_ANY, match=p.OFPMatch(**f.match)),
                               "flow delete (reroute)")
                if g_del.get(dpid):
                    self._send(dp, p.OFPBarrierRequest(dp), "barrier")
                for gid in g_del.get(dpid, []):
                    self._send(dp, p.OFPGroupMod(dp, o.OFPGC_DELETE, o.OFPGT_ALL, gid, []), f"group delete {gid}")
            # best-effort meters of the ports whose reserved share changed
            try:
                current = list(self.service.reservations_snapshot())
            except Exception:  # noqa: BLE001
                current = []
            links = {(a, b) for old, new in pairs for r in (old, new) for p_ in of._paths_of(r)
                     for a, b in zip(p_, p_[1:])}
            for dpid, meters in self._be_meters(links, current).items():
                dp = self._dps.get(dpid)
                if dp is None or dpid not in self._ready:
                    continue
                for m in meters:
                    self._send(dp, self._meter_mod(dp, m, dp.ofproto.OFPMC_MODIFY), f"meter modify {m.meter_id}")
                ready.setdefault(dpid, dp)
            ok = self._barriers(list(ready.values())) and ok
        dt = time.perf_counter() - t0
        LOG.info("%d reservations reprogrammed on %d switches: reprogram_ms=%.2f%s", len(pairs), len(ready),
                 1000 * dt, "" if ok else " (barrier missing or error)")
        for old, new in pairs:
            self.install_times.append(("reroute", new.id, dt))
            hook = getattr(self.service, "observe_install", None)
            if hook is not None:
                try:
                    hook("reroute", new.id, dt, ok)
                except Exception:  # noqa: BLE001
                    LOG.exception("service.observe_install failed")

    # ----------------------------------------------------------------- links failing
    def _failed(self) -> set[tuple[str, str]]:
        fn = getattr(self.service, "failed_links", None)
        try:
            return set(fn()) if fn is not None else set()
        except Exception:  # noqa: BLE001
            LOG.exception("service.failed_links failed")
            return set()

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def _port_status(self, ev: Any) -> None:
        """An inter-switch port went down or up: queue the link event (handled off the event loop,
        which must stay free to deliver the barrier replies the handling waits for)."""
        t0 = time.perf_counter()
        msg = ev.msg
        dp, desc = msg.datapath, msg.desc
        o = dp.ofproto
        try:
            node = self.plan.node_of_dpid(dp.id)
        except KeyError:
            return
        nbr = of.inter_switch_ports(self.plan, node).get(desc.port_no)
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
        self._link_queue.put((node, nbr, t0))

    def _link_is_down(self, u: str, v: str) -> bool:
        """A physical link is down while either of its ports is reported down or LLDP declared it
        silent."""
        a, b = (self.plan.dpid(u), self.plan.port(u, v)), (self.plan.dpid(v), self.plan.port(v, u))
        return (self._port_down.get(a, False) or self._port_down.get(b, False)
                or linkwatch.physical((a, b)) in self._lldp_down)

    def _link_worker(self) -> None:
        while not self._stop.is_set():
            try:
                u, v, t0, *cause = self._link_queue.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                down = self._link_is_down(u, v)
                fn = getattr(self.service, "link_down" if down else "link_up", None)
                if fn is None:
                    continue
                summary = fn(u, v, detected_at=t0, **({"actor": cause[0]} if cause else {}))
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
        """Recompute best-effort forwarding around the failed links; send only what changed."""
        failed = self._failed()
        n = 0
        with self._prog_lock:
            sent = []
            for dpid in list(self._ready):
                dp = self._dps.get(dpid)
                if dp is None:
                    continue
                node = self.plan.node_of_dpid(dpid)
                flows, _ = of.baseline(self.plan, node, rate_scale=self.rate_scale, failed=failed)
                want = {f.key(): f for f in flows if f.table_id == of.TABLE_BEST_EFFORT}
                have = self._be_cache.get(dpid, {})
                add = [f for k, f in want.items() if k not in have or have[k].cookie != f.cookie]
                gone = [f for k, f in have.items() if k not in want]
                if not add and not gone:
                    continue
                p, o = dp.ofproto_parser, dp.ofproto
                for f in add:
                    self._send(dp, self._flow_mod(dp, f), "best-effort update")
                for f in gone:
                    self._send(dp, p.OFPFlowMod(dp, table_id=f.table_id, priority=f.priority,
                                                command=o.OFPFC_DELETE_STRICT, out_port=o.OFPP_ANY,
                                                out_group=o.OFPG_ANY, match=p.OFPMatch(**f.match)),
                               "best-effort delete")
                self._be_cache[dpid] = want
                sent.append(dp)
                n += 1
            if sent:
                self._barriers(sent)
        return n

    def _path_dps(self, res: Any) -> tuple[dict[int, Any], list[str]]:
        dps, missing = {}, []
        for node in dict.fromkeys(n for p in of._paths_of(res) for n in p):
            dpid = self.plan.dpid(node)
            if dpid in self._ready and dpid in self._dps:
                dps[dpid] = self._dps[dpid]
            else:
                missing.append(node)
        return dps, missing

    def _best_effort_updates(self, res: Any) -> dict[int, list[of.MeterSpec]]:
        """New best-effort meters for the path's switches, from the reservations now committed.

        Uses the service's per-link reserved bit/s (O(links)) when it has them: copying every
        reservation on each change made installing N reservations O(N^2) (about 0.1 s per POST
        at 4,000 reservations). The shares are the same numbers ``of.reserved_share_by_port``
        computes for a resync."""
        links = {(a, b) for p in of._paths_of(res) for a, b in zip(p, p[1:])}
        link_bps = getattr(self.service, "link_reserved_bps", None)
        if link_bps is None:
            try:
                current = list(self.service.reservations_snapshot())
            except Exception:  # noqa: BLE001
                LOG.exception("reservations_snapshot failed")
                return {}
            return self._be_meters(links, current)
        try:
            used = link_bps()
        except Exception:  # noqa: BLE001
            LOG.exception("link_reserved_bps failed")
            return {}
        topo = self.plan.topology
        out: dict[int, list[of.MeterSpec]] = {}
        for a, b in sorted(links):
            shares = {self.plan.port(u, v): min(1.0, bw / topo.capacity_bps(u, v))
                      for (u, v), bw in used.items() if u == a and bw}
            port = self.plan.port(a, b)
            out.setdefault(self.plan.dpid(a), []).extend(
                m for m in of.best_effort_meters(self.plan, a, shares, rate_scale=self.rate_scale)
                if m.meter_id == of.be_meter_id(port))
        return out

    def _be_meters(self, links: set[tuple[str, str]], current: list[Any]) -> dict[int, list[of.MeterSpec]]:
        """Best-effort meters of the ports of ``links``, sized by the reservations ``current``."""
        out: dict[int, list[of.MeterSpec]] = {}
        shares_of: dict[str, dict[int, float]] = {}
        for a, b in sorted(links):
            if a not in shares_of:
                shares_of[a] = of.reserved_share_by_port(self.plan, a, current)
            shares = shares_of[a]
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

    @set_ev_cls([ofp_event.EventOFPFlowStatsReply, ofp_event.EventOFPMeterConfigStatsReply,
                 ofp_event.EventOFPGroupDescStatsReply], MAIN_DISPATCHER)
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
                    elif t == "set_vlan_pcp":
                        acts.append(p.OFPActionSetField(vlan_pcp=a["pcp"]))
                    elif t == "set_queue":
                        acts.append(p.OFPActionSetQueue(a["queue_id"]))
                    elif t == "group":
                        acts.append(p.OFPActionGroup(a["group_id"]))
                    else:
                        raise ValueError(f"unknown action {t}")
                ins.append(p.OFPInstructionActions(o.OFPIT_APPLY_ACTIONS, acts))
            else:
                raise ValueError(f"unknown instruction {i['type']}")
        return p.OFPFlowMod(dp, cookie=f.cookie, table_id=f.table_id, command=o.OFPFC_ADD, priority=f.priority,
                            match=p.OFPMatch(**f.match), instructions=ins)

    @staticmethod
    def _group_mod(dp: Any, g: of.GroupSpec, command: int) -> Any:
        p, o = dp.ofproto_parser, dp.ofproto
        if g.type != "all":
            raise ValueError(f"unsupported group type {g.type}")
        buckets = [p.OFPBucket(actions=[p.OFPActionOutput(a["port"], 0) for a in b if a["type"] == "output"])
                   for b in g.buckets]
        return p.OFPGroupMod(dp, command, o.OFPGT_ALL, g.group_id, buckets)

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
            try:
                self._check_liveness()
            except Exception:  # noqa: BLE001 - keep probing
                LOG.exception("LLDP liveness check failed")

    def _check_liveness(self) -> None:
        """Queue link events for links LLDP silence takes down or a fresh sighting brings back."""
        now = time.monotonic()
        watch: dict[linkwatch.Physical, float] = {}
        for link in self._phys_links:
            (a, b) = link
            if (a[0] not in self._ready_since or b[0] not in self._ready_since
                    or self._port_down.get(a, False) or self._port_down.get(b, False)):
                continue                                # switch/port events own this link
            watch[link] = max(self._ready_since[a[0]], self._ready_since[b[0]], self._probes_since,
                              self._port_since.get(a, 0.0), self._port_since.get(b, 0.0))
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
