"""Listing at scale (pure): opaque cursors and the compact slot form of a reservation.

``GET /v1/reservations`` pages by id (keyset): the cursor is the last id of a page, base64url
encoded so that clients treat it as opaque. The compact form (``?slots=compact``) replaces each
hop's expanded ``slots`` list (every index in the cycle: a 74 Gb/s flow spells out thousands) by
``slots_compact``: the runs of consecutive slots within the reservation's period and how many
times the period repeats in the cycle, and ``tx_offsets_ns`` by ``tx_offsets_compact`` likewise::

    "hops": [{"src": "A", "dst": "B",
              "slots_compact": {"period_slots": P, "repeat": R, "runs": [[first, count], ...]}}]
    "tx_offsets_compact": {"period_ns": p, "repeat": R, "offsets_ns": [o, ...]}   # o in [0, p)

Expanded again: slot ``k*P + first + i`` for every run, ``0 <= i < count``, ``0 <= k < R``; tx
offset ``k*p + o``. ``expand_slots`` / ``expand_offsets`` do exactly that (the tests hold them to
the expanded answer).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any


class BadCursor(ValueError):
    """A cursor this controller did not hand out."""


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        text = raw.decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadCursor("not a cursor of this listing (pass next_cursor back as given)") from None
    if not text or len(text) > 256 or encode_cursor(text) != cursor:
        raise BadCursor("not a cursor of this listing (pass next_cursor back as given)")
    return text


def slot_runs(slots: list[int], period_slots: int) -> list[list[int]]:
    """The residues of ``slots`` modulo the period as ``[first, count]`` runs, ascending."""
    residues = sorted({int(s) % period_slots for s in slots})
    runs: list[list[int]] = []
    for r in residues:
        if runs and runs[-1][0] + runs[-1][1] == r:
            runs[-1][1] += 1
        else:
            runs.append([r, 1])
    return runs


def _compact_hops(hops: list[dict[str, Any]], period_slots: int, repeat: int) -> list[dict[str, Any]]:
    out = []
    for h in hops:
        slots = list(h.get("slots") or [])
        c = {"period_slots": period_slots, "repeat": repeat, "runs": slot_runs(slots, period_slots)}
        if expand_slots(c) != sorted(int(s) for s in slots):
            out.append(dict(h))          # not periodic in this cycle (never expected): kept expanded
        else:
            out.append({**{k: v for k, v in h.items() if k != "slots"}, "slots_compact": c})
    return out


def compact(d: dict[str, Any]) -> dict[str, Any]:
    """A reservation's API dict in the compact form (a part that would not expand back to exactly
    the same list is left expanded: the compact form is never a wrong answer)."""
    period_ns, slot_ns = d.get("period_ns"), d.get("slot_ns")
    if not period_ns or not slot_ns or period_ns % slot_ns:
        return d
    out = dict(d)
    period_slots = period_ns // slot_ns
    # how many periods the lists spell out (a down or unrestored reservation's are in the cycle of
    # their time, so count from the lists themselves rather than from cycle_ns)
    span = max([max((int(s) for s in h.get("slots") or []), default=0) for h in d.get("hops") or []], default=0)
    repeat = span // period_slots + 1
    out["hops"] = _compact_hops(list(d.get("hops") or []), period_slots, repeat)
    if d.get("protection_hops"):
        out["protection_hops"] = _compact_hops(list(d["protection_hops"]), period_slots, repeat)
    offsets = [int(o) for o in d.get("tx_offsets_ns") or []]
    if offsets:
        c = {"period_ns": period_ns, "repeat": repeat, "offsets_ns": sorted({o % period_ns for o in offsets})}
        if expand_offsets(c) == sorted(offsets):
            out.pop("tx_offsets_ns")
            out["tx_offsets_compact"] = c
    return out


def expand_slots(c: dict[str, Any]) -> list[int]:
    p = c["period_slots"]
    return sorted(k * p + first + i for k in range(c["repeat"]) for first, count in c["runs"] for i in range(count))


def expand_offsets(c: dict[str, Any]) -> list[int]:
    return sorted(k * c["period_ns"] + o for k in range(c["repeat"]) for o in c["offsets_ns"])
