"""``controller.notify.Notifier``: committed changes reach listeners in commit order, consecutive
changes of one kind in one call (so the data plane programs a batch as one program)."""

from __future__ import annotations

import threading

from controller.notify import Notifier
from controller.seams import NullListener, ReservationListener
from fakeswitch import reservation


class Calls:
    """Records every call with the ids it carried."""

    def __init__(self):
        self.calls = []

    def reservations_added(self, added):
        self.calls.append(("added", [r.id for r in added]))

    def reservations_removed(self, removed):
        self.calls.append(("removed", [r.id for r in removed]))

    def reservations_changed(self, pairs):
        self.calls.append(("changed", [new.id for _, new in pairs]))


R = {i: reservation(f"r{i}", ["A", "B"]) for i in range(6)}


def test_consecutive_changes_of_a_kind_are_one_call_in_commit_order():
    n, rec = Notifier(), Calls()
    assert isinstance(rec, ReservationListener)
    n.add(rec)
    for i in (0, 1, 2):
        n.added(R[i])
    n.removed(R[1])
    n.changed(R[0], R[0])
    n.changed(R[2], R[2])
    n.added(R[3])
    n.removed(R[0])
    n.removed(R[3])
    n.flush()
    assert rec.calls == [("added", ["r0", "r1", "r2"]), ("removed", ["r1"]), ("changed", ["r0", "r2"]),
                         ("added", ["r3"]), ("removed", ["r0", "r3"])]
    n.flush()
    assert len(rec.calls) == 5                                  # each change delivered once


def test_a_broken_listener_does_not_stop_the_others():
    class Broken(NullListener):
        def reservation_added(self, res):
            raise RuntimeError("boom")

    n, rec = Notifier(), Calls()
    n.add(Broken())
    n.add(rec)
    n.added(R[0])
    n.flush()
    assert rec.calls == [("added", ["r0"])]


def test_null_listener_hands_batch_members_to_the_single_hooks_in_order():
    seen = []

    class One(NullListener):
        def reservation_added(self, res):
            seen.append(("+", res.id))

        def reservation_removed(self, res):
            seen.append(("-", res.id))

    n = Notifier()
    n.add(One())
    n.added(R[4])
    n.added(R[5])
    n.removed(R[4])
    n.flush()
    assert seen == [("+", "r4"), ("+", "r5"), ("-", "r4")]


def test_changes_queued_while_a_delivery_runs_go_out_with_it_as_one_batch():
    """POSTs that commit while the data plane is busy programming are delivered together."""
    gate, busy = threading.Event(), threading.Event()

    class Slow(Calls):
        def reservations_added(self, added):
            super().reservations_added(added)
            if len(self.calls) == 1:
                busy.set()
                gate.wait(5)

    n, rec = Notifier(), Slow()
    n.add(rec)
    n.added(R[0])
    t = threading.Thread(target=n.flush)
    t.start()
    assert busy.wait(5)
    n.added(R[1])
    n.added(R[2])
    gate.set()
    t.join(5)
    n.flush()
    assert rec.calls == [("added", ["r0"]), ("added", ["r1", "r2"])]
