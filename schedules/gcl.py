"""IEEE 802.1Qbv-style gate control lists, one per directed link (egress port), from a schedule.

A gate control list (GCL) is a cyclic list of entries; each entry holds a set of gate states
(one bit per traffic class, 1 = open) for a duration. Here traffic class ``reserved_tc``
(default 7, the highest) carries the deterministic reservations and the other classes carry
best effort:

- during a reservation's slots only the reserved class's gate is open (``state == "reserved"``),
- in every other slot the reserved gate is closed and the best-effort gates are open
  (``state == "best_effort"``), so best effort can never delay a reserved frame.

A reservation's slots on a link are those of its path (``hops``) and, for a protected
reservation, of its second path (``protection_hops``): the replicated frames cross that link too,
so its gate opens for them as for any other (as ``/metrics``, TSNKit's GCL.csv and the slot tables
count them).

Consecutive slots of the *same* reservation merge into one entry; adjacent windows of two
different reservations stay separate entries (a port may map them to different queues, as the
TSNKit export does). Entries start at 0, never wrap the cycle, and their durations sum exactly to
``cycle_ns``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controller.core.scheduler import Scheduler
from schedules.schedule_json import schedule_to_dict
from topologies.loaders import suggestion

#: Traffic class whose gate is open in reserved windows (802.1Q's highest priority).
RESERVED_TC = 7
NUM_TC = 8


class GCLError(ValueError):
    """The schedule has no such link, or is not a schedule; the message is one line."""


@dataclass(frozen=True)
class GateEntry:
    """One GCL entry: gates ``gate_states`` (bit i = traffic class i open) for ``duration_ns``."""

    start_ns: int
    duration_ns: int
    gate_states: int
    state: str  # "reserved" or "best_effort"
    reservation: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"start_ns": self.start_ns, "duration_ns": self.duration_ns,
                             "gate_states": self.gate_states, "gates": gate_string(self.gate_states),
                             "state": self.state}
        if self.reservation is not None:
            d["reservation"] = self.reservation
        return d


@dataclass
class GCL:
    """The gate control list of the egress port of directed link ``src -> dst``."""

    src: str
    dst: str
    cycle_ns: int
    slot_ns: int
    reserved_tc: int = RESERVED_TC
    entries: list[GateEntry] = field(default_factory=list)

    @property
    def reserved_ns(self) -> int:
        """Time per cycle the reserved gate is open."""
        return sum(e.duration_ns for e in self.entries if e.state == "reserved")

    def reserved_windows(self) -> list[tuple[int, int, str]]:
        """``(start_ns, end_ns, reservation_id)`` of every reserved entry."""
        return [(e.start_ns, e.start_ns + e.duration_ns, e.reservation or "") for e in self.entries
                if e.state == "reserved"]

    def to_dict(self) -> dict[str, Any]:
        return {"src": self.src, "dst": self.dst, "cycle_ns": self.cycle_ns, "slot_ns": self.slot_ns,
                "reserved_tc": self.reserved_tc, "reserved_ns": self.reserved_ns,
                "entries": [e.to_dict() for e in self.entries]}

    def render(self) -> str:
        """A human table: one line per entry, gates shown as 802.1Qbv does (traffic class 7..0, o/C)."""
        share = 100.0 * self.reserved_ns / self.cycle_ns if self.cycle_ns else 0.0
        lines = [f"GCL {self.src} -> {self.dst}: cycle {self.cycle_ns} ns, slot {self.slot_ns} ns, "
                 f"{len(self.entries)} entries, reserved {share:.2f}% (traffic class {self.reserved_tc})",
                 f"{'#':>5}  {'start_ns':>12}  {'duration_ns':>12}  gates 7..0  {'state':<11}  reservation"]
        for i, e in enumerate(self.entries):
            lines.append(f"{i:>5}  {e.start_ns:>12}  {e.duration_ns:>12}  {gate_string(e.gate_states):<10}  "
                         f"{e.state:<11}  {e.reservation or '-'}")
        return "\n".join(lines)


def gate_string(states: int) -> str:
    """Gate states as 802.1Qbv tools print them: traffic class 7 first, 'o' open, 'C' closed."""
    return "".join("o" if states >> tc & 1 else "C" for tc in range(NUM_TC - 1, -1, -1))


def _as_schedule_dict(schedule: Any) -> dict[str, Any]:
    if isinstance(schedule, dict):
        return schedule
    if isinstance(schedule, Scheduler):
        return schedule_to_dict(schedule)
    raise GCLError("expected a Schedule JSON object or a Scheduler")


def gate_control_list(schedule: Any, u: str, v: str, *, reserved_tc: int = RESERVED_TC) -> GCL:
    """The GCL of directed link ``u -> v`` of a schedule (Schedule JSON dict or Scheduler).

    Raises GCLError when the link is not in the schedule's ``links``.
    """
    if not 0 <= reserved_tc < NUM_TC:
        raise GCLError(f"reserved traffic class must be 0..{NUM_TC - 1}")
    sched = _as_schedule_dict(schedule)
    try:
        cycle_ns, slot_ns = int(sched["cycle_ns"]), int(sched["slot_ns"])
        links = {(str(l["src"]), str(l["dst"])) for l in sched.get("links", [])}
        reservations = sched.get("reservations", [])
    except (KeyError, TypeError, ValueError):
        raise GCLError("not a Schedule JSON object (needs cycle_ns, slot_ns, links, reservations)") from None
    if slot_ns <= 0 or cycle_ns <= 0 or cycle_ns % slot_ns:
        raise GCLError(f"cycle_ns {cycle_ns} is not a positive multiple of slot_ns {slot_ns}")
    if (u, v) not in links:
        nodes = sorted({n for link in links for n in link})
        if u not in nodes or v not in nodes:
            hint = suggestion(u if u not in nodes else v, nodes)
        else:
            hint = "links from {} go to {}".format(u, ", ".join(sorted(b for a, b in links if a == u)))
        raise GCLError(f"link {u}->{v} is not in the schedule{f' ({hint})' if hint else ''}")
    n_slots = cycle_ns // slot_ns

    owner: dict[int, str] = {}
    for r in reservations:
        for h in list(r.get("hops") or []) + list(r.get("protection_hops") or []):
            if (h.get("src"), h.get("dst")) == (u, v):
                for s in h.get("slots", []):
                    s = int(s)
                    if not 0 <= s < n_slots:
                        raise GCLError(f"reservation {r.get('id')}: slot {s} outside the cycle (0..{n_slots - 1})")
                    if s in owner and owner[s] != r.get("id"):
                        raise GCLError(f"link {u}->{v}: slot {s} held by both {owner[s]} and {r.get('id')}")
                    owner[s] = str(r.get("id"))

    reserved_gates = 1 << reserved_tc
    be_gates = ((1 << NUM_TC) - 1) & ~reserved_gates
    gcl = GCL(u, v, cycle_ns, slot_ns, reserved_tc)
    # Walk the owned slots in order; runs of one owner (or of nobody) become one entry each.
    start = 0
    for s in sorted(owner):
        if s > start:
            gcl.entries.append(GateEntry(start * slot_ns, (s - start) * slot_ns, be_gates, "best_effort"))
            start = s
        last = gcl.entries[-1] if gcl.entries else None
        if (last is not None and last.state == "reserved" and last.reservation == owner[s]
                and last.start_ns + last.duration_ns == s * slot_ns):
            gcl.entries[-1] = GateEntry(last.start_ns, last.duration_ns + slot_ns, reserved_gates, "reserved",
                                        owner[s])
        else:
            gcl.entries.append(GateEntry(s * slot_ns, slot_ns, reserved_gates, "reserved", owner[s]))
        start = s + 1
    if start < n_slots or not gcl.entries:
        gcl.entries.append(GateEntry(start * slot_ns, (n_slots - start) * slot_ns, be_gates, "best_effort"))
    return gcl
