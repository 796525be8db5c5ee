"""The ordered queue of committed changes and the listeners it is delivered to.

The service queues a change while it holds its lock (right after the store commit), and delivers
the queue after releasing it (``flush``), so listeners hear every change exactly once, in commit
order, with copies of the reservations, and never under the service lock. Consecutive entries of
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
        self._deliver = threading.RLock()               # one delivery at a time, in queue order
        self._pending: deque[tuple[str, Reservation | tuple[Reservation, Reservation]]] = deque()

    # ----- listeners -----------------------------------------------------------------------
    def add(self, listener: ReservationListener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def remove(self, listener: ReservationListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    # ----- queueing (the caller holds the service lock and has committed the change) -------------
    def added(self, res: Reservation) -> None:
        self._pending.append(("added", res))

    def removed(self, res: Reservation) -> None:
        self._pending.append(("removed", res))

    def changed(self, old: Reservation, new: Reservation) -> None:
        self._pending.append(("changed", (old, new)))

    # ----- delivery (outside the service lock) ----------------------------------------------------
    def flush(self) -> None:
        """Deliver every queued change, in order, to every listener."""
        with self._deliver:
            while True:
                try:
                    kind, item = self._pending.popleft()
                except IndexError:
                    return
                batch = [item]
                while self._pending and self._pending[0][0] == kind:
                    batch.append(self._pending.popleft()[1])
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
