"""The typed seams between the controller's service and its data plane (pure: typing only).

Two ``Protocol``s, one per direction, replace the optional ``getattr``/``hasattr`` hooks the two
sides used to probe each other with. Every method listed here is required: a test double
implements the whole protocol (or subclasses a ready-made no-op).

- ``ReservationListener``: what the service tells the data plane, after a change is committed,
  outside the service lock, in commit order, with copies of the reservations.
- ``DataPlaneHost``: what the data plane (the os-ken shim) asks of, and reports to, the service.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

from controller.core.model import Reservation
from topologies.hosts import HostPlan
from topologies.model import Topology

Link = tuple[str, str]


@runtime_checkable
class ReservationListener(Protocol):
    """Receives committed reservation changes (the os-ken shim programs the switches from them)."""

    def reservations_added(self, added: Sequence[Reservation]) -> None:
        """Reservations admitted (or re-admitted), committed one after the other with nothing else
        between them (one POST, a batch, or POSTs that committed while the last delivery ran):
        install their entries, as one program."""

    def reservations_removed(self, removed: Sequence[Reservation]) -> None:
        """Reservations released or gone down, consecutive likewise: remove their entries."""

    def reservations_changed(self, pairs: Sequence[tuple[Reservation, Reservation]]) -> None:
        """Reservations moved by one event (a link failure or recovery), as ``(old, new)`` pairs with
        the same ids: reprogram make-before-break."""


@runtime_checkable
class DataPlaneHost(Protocol):
    """The service as the data plane sees it."""

    topology: Topology
    host_plan: HostPlan

    def add_listener(self, listener: ReservationListener) -> None:
        """Register a listener of committed changes."""

    def reservations_snapshot(self) -> list[Reservation]:
        """Copies of every reservation on the network (to program a switch that connects)."""

    def link_reserved_bps(self) -> dict[Link, int]:
        """Reserved bit/s per directed link (for the best-effort meters)."""

    def failed_links(self) -> set[Link]:
        """Directed links currently marked failed."""

    def switch_connected(self, dpid: int) -> None:
        """A switch was resynchronised and is programmable."""

    def switch_refused(self, dpid: int | None, address: str, reason: str, detail: str) -> None:
        """A connection claiming ``dpid`` was refused as that switch (a security event)."""

    def switch_replaced(self, dpid: int, address: str, old_address: str) -> None:
        """A connection whose certificate names ``dpid`` replaced the live one."""

    def switch_disconnected(self, dpid: int) -> None:
        """A switch's connection closed."""

    def set_link_check(self, report: dict[str, Any]) -> None:
        """The LLDP check: ``{"expected", "seen", "missing", "unexpected"}``."""

    def observe_install(self, op: str, reservation_id: str, seconds: float, ok: bool) -> None:
        """How long installing (``op="install"``) or removing a reservation's entries took."""

    def link_down(self, u: str, v: str, *, detected_at: float | None = None,
                  actor: str = "system") -> dict[str, Any]:
        """A physical link failed: re-place what crossed it (listeners are told before this returns)."""

    def link_up(self, u: str, v: str, *, detected_at: float | None = None,
                actor: str = "system") -> dict[str, Any]:
        """A failed physical link works again."""


class NullListener:
    """A ``ReservationListener`` that does nothing: subclass it for a test double that cares about
    some of the calls only. A subclass may override the per-reservation ``reservation_added`` /
    ``reservation_removed`` instead of the batch calls, which hand it each member in order."""

    def reservations_added(self, added: Sequence[Reservation]) -> None:
        for res in added:
            self.reservation_added(res)

    def reservations_removed(self, removed: Sequence[Reservation]) -> None:
        for res in removed:
            self.reservation_removed(res)

    def reservation_added(self, res: Reservation) -> None:
        pass

    def reservation_removed(self, res: Reservation) -> None:
        pass

    def reservations_changed(self, pairs: Sequence[tuple[Reservation, Reservation]]) -> None:
        pass
