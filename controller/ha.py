"""One controller of a cluster on etcd: follow the leader, or lead; hand over in well under a second.

Every member runs the same process (``dnctl controller --store etcd://...``). A ``ClusterMember``
polls etcd every ``poll`` seconds while it follows:

- it reads the leader key (``controller.election``: who leads, under which lease);
- it keeps the state it serves reads from current: when the store's ``state`` revision moved
  (the leader wrote), the service reloads read-only (``ControllerService.reload(writable=False)``),
  at most every ``reload_every`` seconds (0.5: reads on a follower lag the leader by that much);
- when nobody leads, it campaigns once; on winning it guards every store write with its leader
  key (``EtcdStore.set_guard``: etcd refuses a former leader's write), reloads writable and tells
  ``on_role("leader", term)`` (the launcher: the OpenFlow shim claims MASTER with generation id
  ``term``, then resynchronises every switch).

**Why failover is faster than the lease.** etcd's leases last at least about 2 s; a leader killed
with SIGKILL would hold the key that long. A follower therefore also probes the leader's REST
port, every round: when two probes 50 ms apart are both *refused* (a TCP RST: no process listens
there any more; a timeout proves nothing and is ignored), it revokes the dead leader's lease, the key goes with it,
and the first follower to campaign wins. A wrong guess is safe: a leader whose lease was revoked
loses at its next renewal (``ttl/3``) and can write nothing in between, since etcd compares its
key's revision in every Txn and the switches refuse its stale generation id.

A follower cannot write: its store carries a guard no key can satisfy (revision -1), so even a
write that slipped past the REST layer (which answers writes with 307 to the leader:
``controller.api.leader``) is refused by etcd. Losing the lead (``Election.on_lost``) makes the
member a follower at once, before anything else is tried.

Pure of os-ken and of HTTP frameworks; the probe is a parameter (tests pass their own).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any, Callable
from urllib.parse import urlsplit

from controller.election import Election
from controller.etcdstore import EtcdStore, kvs_of, unb64
from controller.storebase import StoreError

log = logging.getLogger("detnet.controller")

#: the guard revision of a follower's store: no key is ever created at revision -1
FOLLOWER_GUARD = -1
#: refused probes in a row that prove the leader's process is gone, and the time between them
REFUSALS_TO_REVOKE = 2
PROBE_GAP_S = 0.05


def port_refuses(url: str, timeout: float = 0.2) -> bool:
    """True when nothing listens at ``url``'s host and port (the connection is refused); False
    when something answers or the probe times out (a slow or unreachable leader is not a dead one)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


class ClusterMember:
    """This controller's role in the cluster (see the module doc). Thread-safe."""

    def __init__(self, service: Any, store: EtcdStore, identity: str, *, ttl: int = 2, poll: float = 0.1,
                 on_role: Callable[[str, int], None] | None = None,
                 probe: Callable[[str], bool] = port_refuses, reload_every: float = 0.5):
        self.service, self.store, self.identity = service, store, identity
        self.key = store.prefix + "leader"
        self.poll = float(poll)
        self.on_role = on_role
        self.probe = probe
        self.election = Election(store.client, self.key, identity, ttl=ttl, on_lost=self._lost, poll=poll)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._role = "follower"
        self._term = 0
        self._leader: str | None = None
        self._etcd_ok = True
        #: the ``state`` revision of the read-only view (compared with ``EtcdStore.refresh``) and
        #: the etcd revision the next ``changes_since`` starts after
        self._view = self._since = -1
        self.takeovers = 0
        #: a follower reloads at most this often (s): under a stream of writes a reload per write
        #: would keep a core busy; reads on a follower may lag the leader by this much
        self.reload_every = float(reload_every)
        self._reloaded_at = 0.0
        store.set_guard(self.key, FOLLOWER_GUARD)

    # ----- what the REST layer and /healthz ask ----------------------------------------------------
    @property
    def is_leader(self) -> bool:
        """True while this member leads and its lease holds (checked on every write)."""
        with self._lock:
            leading = self._role == "leader"
        return leading and self.election.is_leader

    @property
    def leader_url(self) -> str | None:
        """The leader's REST URL as last read from etcd (this member's own when it leads)."""
        if self.is_leader:
            return self.identity
        with self._lock:
            return None if self._leader == self.identity else self._leader

    def status(self) -> dict[str, Any]:
        """The ``cluster`` part of ``/healthz`` (a member whose lease ran out says follower at once,
        even before ``_lost`` has run)."""
        leading = self.is_leader
        with self._lock:
            return {"role": "leader" if leading else "follower", "term": self._term if leading else 0,
                    "identity": self.identity, "leader": self.identity if leading else self._leader,
                    "etcd": "ok" if self._etcd_ok else "unreachable",
                    "view_revision": self.store.view_revision if leading else max(self._view, 0),
                    "takeovers": self.takeovers}

    def step_down(self, reason: str) -> None:
        """Stop leading (a switch knows a newer leader: this member's view is stale); follow again."""
        if self.is_leader:
            self.election.step_down(reason)

    # ----- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> None:
        """Follow (and campaign) in a background thread."""
        self._thread = threading.Thread(target=self._run, name="detnet-cluster", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop following; a leader resigns (its lease revoked: the next member need not wait)."""
        self._stop.set()
        with self._lock:
            self._role, self._term, self._leader = "follower", 0, None     # it follows no one now
        self.store.set_guard(self.key, FOLLOWER_GUARD)
        self.election.resign()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    # ----- the loop ---------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.is_leader:
                try:
                    self.step()
                    self._etcd_ok = True
                except StoreError as e:
                    if self._etcd_ok:
                        log.warning("cluster: etcd unreachable: %s", e)
                    self._etcd_ok = False
                except Exception:  # noqa: BLE001 - the loop must go on
                    log.exception("cluster: following failed")
            self._stop.wait(self.poll)

    def step(self) -> None:
        """One follower round: read the leader key, probe a leader that may be dead, keep the
        read-only state current, and campaign when nobody leads."""
        kvs = kvs_of(self.store.client.range(self.key))
        leader = unb64(kvs[0]["value"]) if kvs else None
        with self._lock:
            self._leader = leader
        if leader is not None and leader == self.identity and not self.is_leader:
            # our own key from before a restart: that process is gone, its lease must not hold us
            self._revoke(kvs[0], "this member's key from an earlier run")
            leader = None
        elif leader is not None and self._refused(leader):
            self._revoke(kvs[0], f"its REST port refused {REFUSALS_TO_REVOKE} probes in a row")
            leader = None
        if time.monotonic() - self._reloaded_at >= self.reload_every:
            revision = self.store.refresh()
            if revision != self._view:
                self._since, _ = self._catch_up(revision)
                self._view = revision
                self._reloaded_at = time.monotonic()
        if leader is None and self.election.campaign(timeout=0):
            self._lead()

    def _catch_up(self, revision: int) -> tuple[int, bool]:
        """Make the read-only state current: only what changed since the view when it can
        (``EtcdStore.changes_since``, ``ControllerService.follow``: new and deleted reservations,
        a few ms), else a full reload (tenants or settings changed, a reservation modified).
        Returns where the next call starts (the revision the changes were read at, or
        ``revision``, read before the full reload: what the reload saw is at least that) and
        whether the changes were followed (False: reloaded)."""
        if self._since >= 0:
            changed, ids, others, read_at = self.store.changes_since(self._since)
            if not others and self.service.follow(changed, ids):
                return read_at, True
        self.service.reload(writable=False)
        return revision, False

    def _refused(self, leader: str) -> bool:
        """Whether ``leader``'s REST port refused ``REFUSALS_TO_REVOKE`` probes in a row, taken
        ``PROBE_GAP_S`` apart in this round (a restart of the leader's listener is not a death)."""
        for i in range(REFUSALS_TO_REVOKE):
            if i:
                time.sleep(PROBE_GAP_S)
            if not self.probe(leader):
                return False
        return True

    def _revoke(self, kv: dict[str, Any], why: str) -> None:
        lease = int(kv.get("lease") or 0)
        log.warning("cluster: leader %s is gone (%s): revoking its lease", unb64(kv["value"]), why)
        if lease:
            self.store.client.lease_revoke(lease, within=1.0)

    def _lead(self) -> None:
        t0 = time.monotonic()
        try:
            key, term = self.election.guard()
        except ValueError:
            return                      # lost again already
        self.store.set_guard(key, term)
        revision = self.store.refresh()
        note = {"role": "leader", "term": term, "identity": self.identity}
        if revision == self._view:
            how = "view current"
        else:
            # what the last leader wrote since this member's last round: its changes when they can
            # be followed (a few ms), else a read-only reload (0.5 s per 1,000 reservations), then
            # promoted like a current view. Nobody else writes now: the last leader's key is gone,
            # so etcd refuses its guarded Txns, and ours are guarded by the key just won.
            self._since, followed = self._catch_up(revision)
            how = "caught up on its changes" if followed else "state reloaded"
        self.service.promote(note)
        self._view = revision
        with self._lock:
            if not self.election.is_leader:
                self.service.writable = False
                return                  # lost while reloading: _lost has run or will
            self._role, self._term, self._leader = "leader", term, self.identity
            self.takeovers += 1
        log.info("cluster: %s leads (term %d); %s in %.0f ms", self.identity, term, how,
                 1000 * (time.monotonic() - t0), extra={"fields": {"event": "leader", "term": term}})
        if self.on_role is not None:
            self.on_role("leader", term)

    def _lost(self, reason: str) -> None:
        """``Election.on_lost``: stop writing at once, then tell the shim."""
        self.store.set_guard(self.key, FOLLOWER_GUARD)
        self.service.writable = False
        with self._lock:
            self._role, self._term, self._leader = "follower", 0, None
        self._view = self._since = -1   # reload read-only at the next round
        log.warning("cluster: %s follows again: %s", self.identity, reason,
                    extra={"fields": {"event": "follower", "reason": reason}})
        if self.on_role is not None:
            self.on_role("follower", 0)
