"""Link failover: re-place what a failed link carried, and re-admit what it left down.

Called by the service facade on ``link_down``/``link_up`` (the os-ken shim reports port status and
LLDP silence). Every reservation on the failed link is re-placed by ``Scheduler.repair`` (same id,
tenant and bounds; a protected one keeps its surviving path) and persisted, atomically per
reservation (the scheduler change is undone when the store write fails). One that no longer fits
anywhere is taken off the network but kept in the store with ``status: "down"`` and the reason,
audited as ``reservation_down`` and held here until it is re-admitted or deleted. On link up the
down reservations and degraded protected ones are tried again; the others stay where they are
(moving a working flow back would only risk loss).

A reservation taken off the network settles the scheduler's cycle (it shrinks to the hyperperiod
of what is left), as a release does.

Listeners get ``reservations_changed`` for the moved ones (one batch per event), ``removed`` for
those gone down and ``added`` for those re-admitted, before ``link_down``/``link_up`` returns.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from controller.audit import summary
from controller.core.model import Rejection, Reservation
from controller.core.scheduler import Scheduler
from controller.errors import NotFound
from controller.notify import Notifier
from controller.store import Store
from controller.views import detached
from topologies.model import Topology

log = logging.getLogger("detnet.controller")


class Failover:
    """Link state, the reservations a failure left down, and the failure counters.

    ``lock`` is the service lock: every method that changes state takes it, and delivery to the
    listeners happens after it is released.
    """

    def __init__(self, *, lock: threading.RLock, topology: Topology, scheduler: Scheduler, store: Store,
                 notifier: Notifier):
        self._lock, self._topology, self._scheduler = lock, topology, scheduler
        self._store, self._notifier = store, notifier
        #: physical links (frozenset of the two nodes) reported down
        self._links_down: set[frozenset[str]] = set()
        #: reservations a failure left without a path (status "down"), by id; stored, not scheduled
        self._down: dict[str, Reservation] = {}
        self._stats: dict[str, Any] = {"down_events": 0, "up_events": 0, "rerouted": 0, "went_down": 0,
                                       "last_reprogram_s": None, "last_affected": 0}

    # ----- the down reservations (lock held by the caller) ---------------------------------------
    def hold_down(self, res: Reservation) -> None:
        """Keep a stored down reservation (start-up)."""
        self._down[res.id] = res

    def down_reservation(self, reservation_id: str) -> Reservation | None:
        return self._down.get(reservation_id)

    def down_reservations(self) -> list[Reservation]:
        return list(self._down.values())

    def forget_down(self, reservation_id: str) -> None:
        """Its row was deleted."""
        self._down.pop(reservation_id, None)

    # ----- state read by views and metrics --------------------------------------------------------
    def links_down(self) -> set[frozenset[str]]:
        with self._lock:
            return set(self._links_down)

    def stats(self) -> tuple[set[frozenset[str]], dict[str, Any], int]:
        """Links down, counters and the number of down reservations, read together."""
        with self._lock:
            return set(self._links_down), dict(self._stats), len(self._down)

    # ----- events ---------------------------------------------------------------------------------
    def _check_link(self, u: str, v: str) -> None:
        if not (self._topology.graph.has_edge(u, v) and self._topology.graph.has_edge(v, u)):
            raise NotFound(f"no link {u}-{v}")

    def link_down(self, u: str, v: str, *, detected_at: float | None = None,
                  actor: str = "system") -> dict[str, Any]:
        """Handle a physical link failure (both directions): re-place every reservation on it.

        Returns (and audits as ``link_down``) a summary: ``reservations_affected``, ``rerouted``
        (ids, new paths), ``down`` (ids and reasons), ``scheduling_s`` and ``reprogrammed_s``: from
        ``detected_at`` (``time.perf_counter()`` of the port-status report; default: this call) to
        the listeners returning, i.e. every affected reservation reprogrammed when the listener is
        the OpenFlow shim (it waits for barrier replies). Idempotent: a link already down is a no-op.
        """
        t0 = time.perf_counter() if detected_at is None else detected_at
        self._check_link(u, v)
        key = frozenset((u, v))
        with self._lock:
            if key in self._links_down:
                return {"link": [u, v], "already_down": True, "reservations_affected": 0}
            self._links_down.add(key)
            self._stats["down_events"] += 1
            self._scheduler.fail_link(u, v)
            self._scheduler.fail_link(v, u)
            affected = self._scheduler.affected_by({(u, v), (v, u)})
            result = self._repair_all(affected, actor, "link_down", [u, v])
        return self._finish("link_down", [u, v], result, t0, actor)

    def link_up(self, u: str, v: str, *, detected_at: float | None = None, actor: str = "system") -> dict[str, Any]:
        """A reported-down link works again: mark it usable, re-admit reservations that are down and
        re-protect degraded protected ones (others stay where they are: moving a working flow back
        would only risk loss). Audited as ``link_up``."""
        t0 = time.perf_counter() if detected_at is None else detected_at
        self._check_link(u, v)
        key = frozenset((u, v))
        with self._lock:
            if key not in self._links_down:
                return {"link": [u, v], "already_up": True, "reservations_affected": 0}
            self._links_down.discard(key)
            self._stats["up_events"] += 1
            self._scheduler.restore_link(u, v)
            self._scheduler.restore_link(v, u)
            degraded = sorted(r.id for r in self._scheduler.reservations.values()
                              if r.protection == "disjoint" and not r.protection_path)
            result = self._repair_all(degraded, actor, "link_up", [u, v])
            result["readmitted"] = self._readmit_down(actor)
        return self._finish("link_up", [u, v], result, t0, actor)

    def _repair_all(self, ids: list[str], actor: str, cause: str, link: list[str]) -> dict[str, Any]:
        """Repair each reservation (atomic per reservation); persist and queue notifications. Lock held."""
        t0 = time.perf_counter()
        rerouted, down = [], []
        for rid in ids:
            old = self._scheduler.reservations.get(rid)
            if old is None:
                continue
            old = detached(old)
            result = self._scheduler.repair(rid)
            if result is None:
                continue
            if isinstance(result, Rejection):
                self._scheduler.release(rid)
                self._scheduler.settle_cycle()
                dead = detached(old)
                dead.status, dead.status_reason = "down", f"{cause} {link[0]}-{link[1]}: {result.reason}"
                try:
                    with self._store.transaction() as tx:
                        tx.save_reservation(dead)
                        tx.append_audit(actor, "reservation_down", {"id": rid, "link": link},
                                        {"reason": result.reason, "detail": result.detail, "path": old.path},
                                        "error", old.tenant)
                except BaseException:
                    self._scheduler.restore(old)
                    raise
                self._down[rid] = dead
                self._stats["went_down"] += 1
                down.append({"id": rid, "reason": result.reason})
                self._notifier.removed(detached(old))
                log.warning("reservation %s is down after %s %s-%s: %s", rid, cause, link[0], link[1], result.reason)
                continue
            try:
                with self._store.transaction() as tx:
                    tx.save_reservation(result)
                    tx.append_audit(actor, "reroute", {"id": rid, "cause": cause, "link": link},
                                    {"old_path": old.path, "path": result.path,
                                     "old_protection_path": old.protection_path,
                                     "protection_path": result.protection_path,
                                     "latency_bound_ns": result.latency_bound_ns}, "ok", result.tenant)
            except BaseException:
                self._scheduler.release(rid)
                self._scheduler.restore(old)
                raise
            self._stats["rerouted"] += 1
            rerouted.append({"id": rid, "path": result.path, "protection_path": result.protection_path})
            self._notifier.changed(old, detached(result))
        return {"reservations_affected": len(ids), "rerouted": rerouted, "down": down,
                "scheduling_s": round(time.perf_counter() - t0, 6)}

    def _readmit_down(self, actor: str) -> list[str]:
        """Try every down reservation again (same id, tenant, bounds). Lock held."""
        back = []
        for rid, dead in list(self._down.items()):
            res = self._scheduler.admit(self._scheduler.request_of(dead))
            if isinstance(res, Rejection):
                continue
            try:
                with self._store.transaction() as tx:
                    tx.save_reservation(res)
                    tx.append_audit(actor, "reservation_up", {"id": rid}, summary(res), "ok", res.tenant)
            except BaseException:
                self._scheduler.release(rid)
                self._scheduler.settle_cycle()
                raise
            del self._down[rid]
            back.append(rid)
            self._notifier.added(detached(res))
        return back

    def _finish(self, action: str, link: list[str], result: dict[str, Any], t0: float,
                actor: str) -> dict[str, Any]:
        """Notify listeners (they reprogram the switches), then time, count and audit the event."""
        self._notifier.flush()
        result = {"link": link, **result, "reprogrammed_s": round(time.perf_counter() - t0, 6)}
        with self._lock:
            self._stats["last_reprogram_s"] = result["reprogrammed_s"]
            self._stats["last_affected"] = result["reservations_affected"]
        self._store.append_audit(actor, action, {"link": link}, result,
                                 "ok" if not result.get("down") else "degraded")
        log.info("%s %s-%s: %d reservations affected, %d rerouted, %d down, reprogrammed in %.1f ms", action,
                 link[0], link[1], result["reservations_affected"], len(result["rerouted"]),
                 len(result["down"]), 1000 * result["reprogrammed_s"])
        return result
