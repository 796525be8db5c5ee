"""OpenFlow controller roles for a cluster of controllers: the role state and generation ids (pure).

Several ``dnctl controller`` processes connect to every switch; the one that won the election
(its term: the leader key's etcd ``create_revision``) claims ``MASTER`` with the term as the
OpenFlow *generation id*, the others are ``SLAVE``. The switch then refuses writes from a slave
(``OFPET_BAD_REQUEST``/``OFPBRC_IS_SLAVE``) and a ``MASTER`` or ``SLAVE`` claim whose generation
id is older than the newest it has seen (``OFPET_ROLE_REQUEST_FAILED``/``OFPRRFC_STALE``): a
deposed leader that has not noticed yet cannot program anything.

What this module holds, with no os-ken import (``controller.ofshim`` sends the messages):

- generation-id arithmetic as the OpenFlow 1.3 role rules and Open vSwitch do it: ids are
  64-bit and compared by the sign of their wrapped difference (``is_stale``);
  ``UNDEFINED`` (2**64 - 1) is what a role reply carries before any controller set one;
- ``slave_generation``: the id a follower sends with ``SLAVE``. Open vSwitch checks the id of a
  ``SLAVE`` request too (``SLAVE`` with 0 after someone claimed ``MASTER`` with 5 is refused as
  stale, and the connection keeps its role, ``EQUAL`` for a new one, which may write), so a
  follower first asks the switch's current id (a ``NOCHANGE`` request) and sends the newer of
  that one and the newest term it knows;
- ``classify``: what an OpenFlow error means for the role (deposed, stale slave claim, a write
  refused to a slave);
- ``RoleState``: standalone (no cluster: today's single controller), follower, or leader with
  its generation id; whether writes may go out (``gate``: held while a message is sent, so a
  demotion stops every later write at once); a claim that a demotion overtook does not become
  leadership; a deposition is reported once per leadership (or claim).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

__all__ = ["GENERATION_MAX", "UNDEFINED", "OFPCR_ROLE_NOCHANGE", "OFPCR_ROLE_EQUAL", "OFPCR_ROLE_MASTER",
           "OFPCR_ROLE_SLAVE", "OFPET_BAD_REQUEST", "OFPBRC_IS_SLAVE", "OFPET_ROLE_REQUEST_FAILED",
           "OFPRRFC_STALE", "check_generation", "is_stale", "newer", "slave_generation", "classify",
           "RoleError", "RoleState", "STANDALONE", "FOLLOWER", "LEADER"]

# OpenFlow 1.3 numbers (ofp_controller_role, ofp_error_type and codes); tests/test_of_roles.py
# checks them against os-ken's ofproto_v1_3.
OFPCR_ROLE_NOCHANGE, OFPCR_ROLE_EQUAL, OFPCR_ROLE_MASTER, OFPCR_ROLE_SLAVE = 0, 1, 2, 3
OFPET_BAD_REQUEST, OFPBRC_IS_SLAVE = 1, 10
OFPET_ROLE_REQUEST_FAILED, OFPRRFC_STALE = 11, 0

GENERATION_MAX = 2 ** 64 - 1
UNDEFINED = GENERATION_MAX   # a role reply's generation id when none was ever set (Open vSwitch)
_HALF = 2 ** 63

STANDALONE, FOLLOWER, LEADER = "standalone", "follower", "leader"


def check_generation(generation: int) -> int:
    """``generation`` as a 64-bit OpenFlow generation id; ``ValueError`` outside 0..2**64-2
    (2**64-1 reads as "undefined" in a role reply, and Open vSwitch refuses it as stale once any
    smaller id was set)."""
    if isinstance(generation, bool) or not isinstance(generation, int):
        raise ValueError(f"generation id must be an integer, not {generation!r}")
    if not 0 <= generation < GENERATION_MAX:
        raise ValueError(f"generation id {generation} outside 0..{GENERATION_MAX - 1}")
    return generation


def is_stale(generation: int, cached: int) -> bool:
    """Whether a switch that saw ``cached`` refuses ``generation``: the wrapped difference
    ``generation - cached``, read as a signed 64-bit number, is negative.

    >>> is_stale(5, 6), is_stale(6, 6), is_stale(7, 6), is_stale(0, 2**64 - 1)
    (True, False, False, False)
    """
    return (generation - cached) % (2 ** 64) >= _HALF


def newer(a: int, b: int) -> int:
    """The newer of two generation ids (``a`` when neither is stale against the other)."""
    return b if is_stale(a, b) else a


def slave_generation(switch_generation: int | None, known: int) -> int:
    """The generation id to send with ``SLAVE``: the switch's current one (from a ``NOCHANGE``
    reply; None or ``UNDEFINED`` when it has none) or ``known`` (the newest term this controller
    saw), whichever is newer, so the switch never refuses it as stale."""
    if switch_generation is None or switch_generation == UNDEFINED:
        return known
    return newer(known, switch_generation)


@dataclass(frozen=True)
class RoleError:
    """What an OpenFlow error means for the controller's role.

    ``kind``: ``"deposed"`` (a ``MASTER`` claim refused as stale, or a write refused because this
    controller is a slave while it believes it leads: another controller claimed ``MASTER`` with a
    newer generation id), ``"stale_slave"`` (a ``SLAVE`` claim refused as stale: ask the switch's
    id and claim again), ``"is_slave"`` (a write refused to a follower: it should not have been
    sent), ``"role_failed"`` (any other error answering a role request)."""

    kind: str


def classify(err_type: int, err_code: int, *, request_role: int | None, role: str) -> RoleError | None:
    """The meaning of the error ``(err_type, err_code)`` answering a request: ``request_role`` is
    the role it asked for when it was a role request (else None); ``role``: this controller's
    role when the error arrived. None: not a role matter (the ordinary error handling applies)."""
    if request_role is not None:
        stale = (err_type, err_code) == (OFPET_ROLE_REQUEST_FAILED, OFPRRFC_STALE)
        if stale and request_role == OFPCR_ROLE_MASTER:
            return RoleError("deposed")
        if stale and request_role == OFPCR_ROLE_SLAVE:
            return RoleError("stale_slave")
        return RoleError("role_failed")
    if (err_type, err_code) == (OFPET_BAD_REQUEST, OFPBRC_IS_SLAVE):
        return RoleError("deposed" if role == LEADER else "is_slave")
    return None


class RoleState:
    """This controller's role (thread-safe).

    ``ha=False``: ``standalone`` for ever, writes always allowed, every change refused. ``ha=True``:
    starts ``follower``; ``claim(g)`` starts a claim (still no writes), ``lead(token)`` makes it
    leadership if nothing demoted it meanwhile, ``follow()`` and ``depose(g)`` demote at once.
    """

    def __init__(self, ha: bool) -> None:
        self.ha = bool(ha)
        self._lock = threading.RLock()
        self._role = FOLLOWER if self.ha else STANDALONE
        self._generation = 0
        self._claiming: int | None = None   # epoch of the claim under way
        self._epoch = 0                      # bumped by every change of role

    @property
    def role(self) -> tuple[str, int]:
        """(``"leader"`` | ``"follower"`` | ``"standalone"``, generation id)."""
        with self._lock:
            return self._role, self._generation

    @property
    def generation(self) -> int:
        with self._lock:
            return self._generation

    def may_write(self) -> bool:
        with self._lock:
            return self._role != FOLLOWER

    @contextmanager
    def gate(self) -> Iterator[bool]:
        """Hold the state while one message is sent: yields whether writes may go out; a demotion
        waits for the send under way and every later one sees it."""
        with self._lock:
            yield self._role != FOLLOWER

    def claim(self, generation: int) -> int:
        """Start claiming leadership with ``generation``: still a follower (no writes) until
        ``lead``; returns the token ``lead`` takes."""
        generation = check_generation(generation)
        self._require_ha()
        with self._lock:
            self._epoch += 1
            self._role, self._generation, self._claiming = FOLLOWER, generation, self._epoch
            return self._epoch

    def lead(self, token: int) -> bool:
        """The claim ``token`` succeeded: lead (writes allowed). False when a ``follow``,
        ``depose`` or newer ``claim`` came since (the claim is void)."""
        with self._lock:
            if self._claiming != token or self._epoch != token:
                return False
            self._role, self._claiming = LEADER, None
            return True

    def claiming(self) -> bool:
        """Whether a claim is under way or leadership held (a switch that connects now gets
        ``MASTER``)."""
        with self._lock:
            return self._role == LEADER or self._claiming is not None

    def follow(self, generation: int | None = None) -> str:
        """Stop writing at once; returns the role before. ``generation``: a newer term learnt (kept
        if newer than the current one)."""
        self._require_ha()
        with self._lock:
            before = self._role
            self._epoch += 1
            self._role, self._claiming = FOLLOWER, None
            if generation is not None:
                self._generation = newer(check_generation(generation), self._generation)
            return before

    def depose(self, generation: int) -> bool:
        """A switch refused this controller's ``MASTER`` with ``generation`` (or a write, as a slave):
        stop writing. True when it led or claimed with this generation id (the caller reports it
        then): once per leadership or claim, since it follows from then on; False for a repeat
        or an old term."""
        with self._lock:
            if generation != self._generation or (self._role != LEADER and self._claiming is None):
                return False
            self._epoch += 1
            self._role, self._claiming = FOLLOWER, None
            return True

    def _require_ha(self) -> None:
        if not self.ha:
            raise RuntimeError("roles need configure(..., ha=True): this controller runs standalone")
