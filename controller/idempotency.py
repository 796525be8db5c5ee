"""``Idempotency-Key`` on ``POST /v1/reservations``: a retried request admits nothing twice.

Why: a client that lost an answer (a timeout, a leader failover, a dropped connection) cannot
know whether its reservation was admitted; sending the same request again with the same key is
safe only when the controller remembers the first outcome. The first request with a key is
decided as usual and its answer (status and JSON body) is recorded **in the same store
transaction** as the reservation it creates (``ReservationDesk.reserve``), so a crash never leaves
one without the other. A repeat with the same key and the same body gets the recorded answer
again (the API adds ``Idempotent-Replayed: true``) and admits nothing; the same key with another
body is refused (``KeyReused``). Keys are scoped per principal (``Principal.actor``: ``admin``,
``tenant:N``): one tenant's key never meets another's. Refusals (409) are not recorded: they
admitted nothing, so answering a retry afresh cannot double-book, and a retry after capacity was
freed may then succeed. Records are kept at least ``TTL_S`` (24 h).

Pure bookkeeping, no HTTP: the API sets the request's ``Attempt`` for the duration of the call
(``attempt``, a context variable: the service's signatures stay as they are) and the desk reads it
(``current``). ``Ledger`` closes the window between a store lookup and the commit: a record this
process decided is answered from memory while in flight (the second request waits for the first
one's commit, ``InFlight``) and for ``RECENT_S`` after it.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from controller.errors import Invalid
from controller.storebase import IDEMPOTENCY_TTL_S

__all__ = ["HEADER", "REPLAYED_HEADER", "TTL_S", "Attempt", "InFlight", "KeyReused", "Ledger", "Replayed",
           "attempt", "check_key", "current", "fingerprint"]

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
#: how long a record is kept at least (seconds)
TTL_S = IDEMPOTENCY_TTL_S
#: how long this process answers a key it committed from memory (longer than any lock wait)
RECENT_S = 600.0
MAX_KEY = 200


def check_key(value: str) -> str | None:
    """Why ``value`` is not a valid key (1-200 printable ASCII characters), or None."""
    if not 1 <= len(value) <= MAX_KEY:
        return f"must be 1-{MAX_KEY} characters (got {len(value)})"
    if any(not 0x20 <= ord(c) <= 0x7E for c in value):
        return "must be printable ASCII"
    return None


def fingerprint(endpoint: str, body: Any) -> str:
    """sha256 hex of the endpoint and the request body as parsed JSON (key order and white space
    do not count; any field's value does)."""
    doc = json.dumps([endpoint, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(doc.encode()).hexdigest()


class KeyReused(Invalid):
    """The key was first used with another request body (the API answers 422
    ``idempotency_key_reused``)."""

    code = "idempotency_key_reused"

    def __init__(self, key: str):
        super().__init__(HEADER, f"{HEADER} {key!r} was used with another request body; "
                                 "use a new key for a new request")


class Replayed(Exception):
    """The key's first answer, to send again: ``status`` and ``body``."""

    def __init__(self, status: int, body: Any):
        super().__init__(f"replayed {status}")
        self.status, self.body = status, body


class InFlight(Exception):
    """A request with this key was decided and its commit is under way: wait for ``ticket``, then ask again."""

    def __init__(self, ticket: Any):
        super().__init__("in flight")
        self.ticket = ticket


@dataclass
class Attempt:
    """One keyed request: who (``scope``), ``key``, the body's ``fingerprint``, and ``render``, which
    turns the admitted reservation into the API's answer body (called under the service lock, so the
    recorded body is the one sent). The desk sets ``answer`` (status, body) when it records one."""

    scope: str
    key: str
    fingerprint: str
    render: Callable[[Any], Any]
    answer: tuple[int, Any] | None = None

    def record(self, status: int, body: Any) -> dict[str, Any]:
        self.answer = (status, body)
        return {"fingerprint": self.fingerprint, "status": status, "body": body, "created": time.time()}


_CURRENT: ContextVar[Attempt | None] = ContextVar("detnet_idempotency_attempt", default=None)


@contextmanager
def attempt(a: Attempt | None) -> Iterator[Attempt | None]:
    """Make ``a`` the current request's attempt for the block (None: an unkeyed request)."""
    token = _CURRENT.set(a)
    try:
        yield a
    finally:
        _CURRENT.reset(token)


def current() -> Attempt | None:
    return _CURRENT.get()


def replay(a: Attempt, record: dict[str, Any] | None) -> None:
    """Raise ``Replayed`` for a record of the same body, ``KeyReused`` for another body; None: no record."""
    if record is None or time.time() - float(record.get("created", 0)) > TTL_S:
        return
    if record.get("fingerprint") != a.fingerprint:
        raise KeyReused(a.key)
    raise Replayed(int(record["status"]), record["body"])


@dataclass
class Ledger:
    """The keys this process decided: in flight (decided, commit under way: their ticket) and
    committed in the last ``RECENT_S`` seconds (their record). The desk looks the store up before
    taking its lock and this ledger under it: a key committed in between is found here."""

    inflight: dict[tuple[str, str], tuple[str, Any]] = field(default_factory=dict)
    recent: "OrderedDict[tuple[str, str], dict[str, Any]]" = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, a: Attempt) -> None:
        """Under the service lock: raise ``InFlight``, ``Replayed`` or ``KeyReused`` for a key this
        process decided; return when it did not."""
        k = (a.scope, a.key)
        with self.lock:
            pending = self.inflight.get(k)
            record = self.recent.get(k)
        if pending is not None:
            if pending[0] != a.fingerprint:
                raise KeyReused(a.key)
            raise InFlight(pending[1])
        replay(a, record)

    def begin(self, a: Attempt) -> None:
        """Before the write is submitted (its commit may run on another thread at once)."""
        with self.lock:
            self.inflight[(a.scope, a.key)] = (a.fingerprint, None)

    def attach(self, a: Attempt, ticket: Any) -> None:
        """The submitted write's ticket (under the service lock, as ``begin``: ``check`` sees both)."""
        k = (a.scope, a.key)
        with self.lock:
            if k in self.inflight:      # else already committed or failed
                self.inflight[k] = (a.fingerprint, ticket)

    def committed(self, a: Attempt, record: dict[str, Any]) -> None:
        k = (a.scope, a.key)
        now = time.time()
        with self.lock:
            self.recent[k] = record
            self.recent.move_to_end(k)
            self.inflight.pop(k, None)
            while self.recent and now - next(iter(self.recent.values()))["created"] > RECENT_S:
                self.recent.popitem(last=False)

    def forget(self, scope: str) -> None:
        """Drop the committed keys of ``scope`` (a deleted tenant)."""
        with self.lock:
            for k in [k for k in self.recent if k[0] == scope]:
                del self.recent[k]

    def failed(self, a: Attempt) -> None:
        with self.lock:
            self.inflight.pop((a.scope, a.key), None)
