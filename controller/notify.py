"""The ordered queue of committed changes and the listeners it is delivered to.

The service queues a change right after its store commit (under its lock, or in the group
commit's ``committed`` callback: ``controller.store.Store.submit``), and delivers the queue after
releasing its lock (``flush``), so listeners hear every change exactly once, in commit order,
with copies of the reservations, and never under the service lock. Consecutive entries of
one kind go to a listener as one batch: the reservations one link event moved, a batch POST's
members, or POSTs that committed while the previous delivery was still programming switches (so
the data plane sends one program per batch, not one per reservation). An exception in a listener
is logged, never raised: a broken listener must not break the API.

Listeners implement ``controller.seams.ReservationListener`` (all three methods).
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from controller.core.model import Reservation
from controller.seams import ReservationListener

log = logging.getLogger("detnet.controller")


class Notifier:
    """Listeners and the changes queued for them. Thread-safe."""

    def __init__(self) -> None:
        self._listeners: list[ReservationListener] = []
        self._lock = threading.Lock()                   # guards the listener list
        #: guards the queue and the counters below; waiters for a delivery wait on it
        self._cond = threading.Condition(threading.Lock())
        self._pending: deque[tuple[str, Reservation | tuple[Reservation, Reservation]]] = deque()
        self._queued = 0            # changes ever queued
        self._delivered = 0         # changes ever delivered (to every listener)
        self._deliverer: int | None = None     # the thread delivering (one at a time: commit order)

    # ----- listeners -----------------------------------------------------------------------
    def add(self, listener: ReservationListener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def remove(self, listener: ReservationListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    # ----- queueing (the caller has committed the change, in commit order) -------------------------
    def added(self, res: Reservation) -> None:
        self._queue("added", res)

    def removed(self, res: Reservation) -> None:
        self._queue("removed", res)

    def changed(self, old: Reservation, new: Reservation) -> None:
        self._queue("changed", (old, new))

    def _queue(self, kind: str, item: Reservation | tuple[Reservation, Reservation]) -> None:
        with self._cond:
            self._pending.append((kind, item))
            self._queued += 1

    # ----- delivery (outside the service lock) ----------------------------------------------------
    def flush(self) -> None:
        """Deliver every change queued so far, in order, to every listener; return once they are
        delivered (by this thread or by the one delivering when it was called).

        One thread delivers at a time: it takes everything queued when it starts (consecutive
        changes of one kind as one call, so a group of POSTs is one program), delivers it, and
        hands over; a caller whose changes another thread delivered returns then, without waiting
        for the changes queued after its own (its answer does not wait for other requests' programs)."""
        me = threading.get_ident()
        with self._cond:
            if self._deliverer == me:       # called from a listener this thread is running:
                self._deliver_locked(list(self._pending))      # its changes go now, as they always did
                return
            target = self._queued
            while self._delivered < target:
                if self._deliverer is not None:
                    self._cond.wait()
                    continue
                self._deliver_locked(list(self._pending))

    def _deliver_locked(self, batch: list[tuple[str, Reservation | tuple[Reservation, Reservation]]]) -> None:
        """Deliver ``batch`` (taken off the queue) with ``_cond`` released meanwhile; the caller holds it."""
        self._pending.clear()
        outer, self._deliverer = self._deliverer, threading.get_ident()
        self._cond.release()
        try:
            self._deliver(batch)
        finally:
            self._cond.acquire()
            self._deliverer = outer
            self._delivered += len(batch)
            self._cond.notify_all()

    def _deliver(self, items: list[tuple[str, Reservation | tuple[Reservation, Reservation]]]) -> None:
        """Call the listeners for ``items`` in order, consecutive changes of one kind together."""
        i = 0
        while i < len(items):
            kind = items[i][0]
            j = i
            while j < len(items) and items[j][0] == kind:
                j += 1
            batch = [item for _, item in items[i:j]]
            i = j
            with self._lock:
                listeners = list(self._listeners)
            for listener in listeners:
                try:
                    if kind == "changed":
                        listener.reservations_changed(batch)
                    elif kind == "added":
                        listener.reservations_added(batch)
                    else:
                        listener.reservations_removed(batch)
                except Exception:  # noqa: BLE001 - a broken listener must not break the API
                    log.exception("listener %r failed on %s", listener, kind)
