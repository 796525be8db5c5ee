"""Leader election on etcd: one controller holds the leader key, admits and programs; the others wait.

How: a candidate grants itself a lease of ``ttl`` seconds and puts the leader key with that lease
in a Txn that succeeds only if the key does not exist (``create_revision == 0``); the key's
``create_revision`` then names this leadership (:meth:`Election.guard`, which
``controller.etcdstore.EtcdStore.set_guard`` compares in every write: a write of a former leader
is refused by etcd itself). A thread renews the lease every ``ttl / 3`` seconds and checks the key
is still its own. The election API of etcd's gateway (``/v3/election/campaign``) would do the same
with one long-blocking HTTP request per candidate; the Txn keeps every call short and the code in
one place with the store's.

Losing is immediate and one-way: the first renewal that fails (no member answers before the
lease's deadline, the lease has expired, the key is gone or another's), or the deadline passing on this host's clock
(``ttl`` after the last renewal was sent, whatever the thread is doing), makes ``is_leader`` False
at once and calls ``on_lost(reason)`` once; the lease is then revoked (best effort, within 1 s) so
that another candidate need not wait for it to expire. To lead again a controller campaigns again (and reloads
its state: ``EtcdStore.refresh`` then the loads).

Pure of os-ken; the clock is a parameter (``clock``) so the deadline rule is testable.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from controller.etcdstore import EtcdClient, kvs_of, unb64, compare_create, op_put
from controller.store import StoreError

log = logging.getLogger("detnet.controller")


class Election:
    """One candidate for the leader key ``key`` (see the module doc)."""

    def __init__(self, client: EtcdClient, key: str, identity: str, *, ttl: int = 5,
                 on_lost: Callable[[str], None] | None = None, poll: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        if ttl < 2:
            raise ValueError(f"election ttl {ttl}: at least 2 s (etcd's leases are in whole seconds)")
        self.client, self.key, self.identity, self.ttl = client, key, identity, int(ttl)
        self.on_lost = on_lost
        self.poll = poll if poll is not None else min(0.5, ttl / 10)
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lease = 0
        self.revision = 0           # create_revision of our leader key; 0 when not leading
        self._deadline = 0.0
        self.lost_reason: str | None = None

    # state ---------------------------------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        """True while this candidate leads: elected, not lost, and the lease's deadline not passed."""
        with self._lock:
            return self.revision != 0 and self._clock() < self._deadline

    def guard(self) -> tuple[str, int]:
        """(leader key, create_revision) for ``EtcdStore.set_guard``; ValueError when not leading."""
        with self._lock:
            if self.revision == 0:
                raise ValueError(f"{self.identity}: not the leader")
            return self.key, self.revision

    def leader(self) -> str | None:
        """The identity written in the leader key now (None: nobody leads)."""
        kvs = kvs_of(self.client.range(self.key))
        return unb64(kvs[0]["value"]) if kvs else None

    # campaign ------------------------------------------------------------------------------
    def campaign(self, timeout: float | None = None) -> bool:
        """Wait until this candidate holds the leader key (True) or ``timeout`` seconds pass (False)."""
        end = None if timeout is None else self._clock() + timeout
        while not self._stop.is_set():
            if self._try_once():
                return True
            if end is not None and self._clock() >= end:
                return False
            self._stop.wait(self.poll)
        return False

    def _try_once(self) -> bool:
        lease = self.client.lease_grant(self.ttl)
        answer = self.client.txn([compare_create(self.key, 0)], [op_put(self.key, self.identity, lease)])
        if not answer.get("succeeded"):
            self.client.lease_revoke(lease)
            return False
        sent = self._clock()            # the deadline counts from a renewal sent after the key is ours
        if self.client.lease_keepalive(lease) <= 0:
            return False                # expired while the cluster was busy: the key went with it
        with self._lock:
            self.lease, self.revision = lease, int(answer["header"]["revision"])
            self._deadline = sent + self.ttl
            self.lost_reason = None
        log.info("election %s: %s is the leader (revision %d, lease ttl %d s)",
                 self.key, self.identity, self.revision, self.ttl)
        self._thread = threading.Thread(target=self._keepalive, name=f"election-{self.identity}", daemon=True)
        self._thread.start()
        return True

    # keepalive -----------------------------------------------------------------------------
    def _keepalive(self) -> None:
        period = self.ttl / 3
        while not self._stop.wait(max(0.0, min(period, self._deadline - self._clock() - 0.05))):
            if self.revision == 0:
                return
            if self._clock() >= self._deadline:
                self._lose("the lease's deadline passed before it was renewed")
                return
            sent = self._clock()
            try:                        # a member that does not answer cannot hold us past the deadline
                left = self.client.lease_keepalive(self.lease, within=self._deadline - sent)
                kvs = kvs_of(self.client.range(self.key, within=max(0.05, self._deadline - self._clock())))
            except StoreError as e:
                self._lose(f"the lease could not be renewed: {e}")
                return
            if left <= 0:
                self._lose("the lease expired")
                return
            if not kvs or int(kvs[0]["create_revision"]) != self.revision:
                self._lose("the leader key is gone" if not kvs else "the leader key belongs to another")
                return
            with self._lock:
                if self.revision:
                    self._deadline = sent + left

    def _lose(self, reason: str) -> None:
        with self._lock:
            if self.revision == 0:
                return
            lease, self.revision, self.lease, self._deadline = self.lease, 0, 0, 0.0
            self.lost_reason = reason
        log.warning("election %s: %s lost the leadership: %s", self.key, self.identity, reason)
        if self.on_lost is not None:    # first: the caller stops writing before anything else is tried
            try:
                self.on_lost(reason)
            except Exception:  # noqa: BLE001 - the leadership is gone either way
                log.exception("election: on_lost failed")
        try:
            self.client.lease_revoke(lease, within=1.0)
        except StoreError:
            pass                    # the cluster is away: the lease will expire on its own

    def step_down(self, reason: str) -> None:
        """Stop leading now (``on_lost(reason)`` runs, the lease is revoked) but stay a candidate:
        a later ``campaign`` may win again."""
        self._lose(reason)

    def resign(self) -> None:
        """Stop campaigning and keeping alive; give the key up (revoking the lease) if held."""
        self._stop.set()
        with self._lock:
            lease, self.revision, self.lease, self._deadline = self.lease, 0, 0, 0.0
        if lease:
            try:
                self.client.lease_revoke(lease, within=2.0)
            except StoreError:
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
