"""The Schedule JSON contract: export a Scheduler's state, validate and import it back.

Shape (the project's design contract, a **contract**: fields are only ever added)::

    {"version": 1, "cycle_ns": int, "slot_ns": int, "topology": str,
     "links": [{"src", "dst", "capacity_bps", "propagation_ns"}],      # every directed link
     "reservations": [Reservation.to_dict(), ...]}                     # slots in [0, cycle_ns/slot_ns)

``load_schedule`` refuses a document that does not fit the topology it is loaded against (a
different link set, capacity or delay), or that is inconsistent in itself (slot out of range, two
reservations holding one slot on one link, hops that do not follow the path; a protected
reservation's ``protection_hops`` count as held slots like its ``hops``), with one line that names
the problem; then it rebuilds a Scheduler with ``restore`` so the exact slots are held again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from controller.core.model import Reservation
from controller.core.scheduler import Scheduler

SCHEDULE_VERSION = 1


class SchedulePayloadError(ValueError):
    """A Schedule JSON document is invalid or does not fit the topology; the message is one line."""


def schedule_to_dict(scheduler) -> dict[str, Any]:
    """The Schedule JSON of a scheduler: cycle, slot, every directed link, every reservation."""
    topo = scheduler.topology
    links = []
    for u, v in topo.directed_links():
        links.append({"src": u, "dst": v, "capacity_bps": int(topo.capacity_bps(u, v)),
                      "propagation_ns": int(topo.propagation_ns(u, v))})
    reservations = sorted(scheduler.reservations.values(), key=lambda r: r.id)
    return {
        "version": SCHEDULE_VERSION,
        "cycle_ns": int(scheduler.cycle_ns),
        "slot_ns": int(scheduler.slot_ns),
        "topology": topo.name,
        "links": links,
        "reservations": [r.to_dict() for r in reservations],
    }


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate_schedule(data: Any, topology) -> tuple[int, int, list[Reservation]]:
    """Check a decoded Schedule JSON document against ``topology``.

    Returns ``(cycle_ns, slot_ns, reservations)``; raises SchedulePayloadError naming the first problem.
    """
    if not isinstance(data, dict):
        raise SchedulePayloadError("schedule: expected a JSON object")
    if data.get("version") != SCHEDULE_VERSION:
        raise SchedulePayloadError(f"schedule: unsupported version {data.get('version')!r} (expected {SCHEDULE_VERSION})")
    cycle_ns, slot_ns = data.get("cycle_ns"), data.get("slot_ns")
    if not _int(slot_ns) or slot_ns <= 0:
        raise SchedulePayloadError(f"schedule: slot_ns must be a positive integer, got {slot_ns!r}")
    if not _int(cycle_ns) or cycle_ns <= 0 or cycle_ns % slot_ns:
        raise SchedulePayloadError(f"schedule: cycle_ns must be a positive multiple of slot_ns, got {cycle_ns!r}")
    n_slots = cycle_ns // slot_ns

    links = data.get("links")
    if not isinstance(links, list):
        raise SchedulePayloadError("schedule: 'links' must be a list")
    seen: set[tuple[str, str]] = set()
    for i, l in enumerate(links):
        if not isinstance(l, dict) or not isinstance(l.get("src"), str) or not isinstance(l.get("dst"), str):
            raise SchedulePayloadError(f"schedule: link #{i} needs 'src' and 'dst' node names")
        key = (l["src"], l["dst"])
        if key in seen:
            raise SchedulePayloadError(f"schedule: link {key[0]}->{key[1]} appears twice")
        seen.add(key)
        if not topology.graph.has_edge(*key):
            raise SchedulePayloadError(f"schedule: link {key[0]}->{key[1]} is not in topology {topology.name}")
        for attr in ("capacity_bps", "propagation_ns"):
            want = topology.graph.edges[key][attr]
            if l.get(attr) != want:
                raise SchedulePayloadError(f"schedule: link {key[0]}->{key[1]} has {attr} {l.get(attr)!r}, "
                                           f"topology {topology.name} has {want}")
    missing = [e for e in topology.directed_links() if e not in seen]
    if missing:
        raise SchedulePayloadError(f"schedule: link {missing[0][0]}->{missing[0][1]} of topology {topology.name} "
                                   f"is missing ({len(missing)} links missing)")

    raw = data.get("reservations")
    if not isinstance(raw, list):
        raise SchedulePayloadError("schedule: 'reservations' must be a list")
    owner: dict[tuple[str, str, int], str] = {}
    out: list[Reservation] = []
    ids: set[str] = set()
    for i, d in enumerate(raw):
        if not isinstance(d, dict):
            raise SchedulePayloadError(f"schedule: reservation #{i} is not an object")
        try:
            r = Reservation.from_dict(d)
        except KeyError as e:
            raise SchedulePayloadError(f"schedule: reservation #{i} has no {e.args[0]!r}") from None
        except (TypeError, ValueError, AttributeError) as e:
            raise SchedulePayloadError(f"schedule: reservation #{i} has a malformed field ({e})") from None
        where = f"schedule: reservation {r.id!r}"
        if r.id in ids:
            raise SchedulePayloadError(f"{where} appears twice")
        ids.add(r.id)
        paths = [("", r.path, r.hops)]
        if r.protection_path or r.protection_hops:
            paths.append(("protection ", r.protection_path or [], r.protection_hops or []))
        for kind, path, hops in paths:
            if len(path) < 2 or path[0] != r.src or path[-1] != r.dst:
                raise SchedulePayloadError(f"{where}: {kind}path must run from src {r.src!r} to dst {r.dst!r}")
            if [(h.src, h.dst) for h in hops] != list(zip(path, path[1:])):
                raise SchedulePayloadError(f"{where}: {kind}hops do not follow the {kind}path")
        if r.period_ns <= 0 or cycle_ns % r.period_ns:
            raise SchedulePayloadError(f"{where}: period_ns {r.period_ns} does not divide cycle_ns {cycle_ns}")
        for _, _, hops in paths:
            for h in hops:
                if not topology.graph.has_edge(h.src, h.dst):
                    raise SchedulePayloadError(f"{where}: hop {h.src}->{h.dst} is not a link of topology "
                                               f"{topology.name}")
                if not h.slots:
                    raise SchedulePayloadError(f"{where}: hop {h.src}->{h.dst} holds no slot")
                for s in h.slots:
                    if not 0 <= s < n_slots:
                        raise SchedulePayloadError(f"{where}: slot {s} on {h.src}->{h.dst} is out of range "
                                                   f"0..{n_slots - 1}")
                    key = (h.src, h.dst, s)
                    if key in owner:
                        other = owner[key]
                        raise SchedulePayloadError(
                            f"{where}: slot {s} on {h.src}->{h.dst} overlaps reservation {other!r}"
                            if other != r.id else f"{where}: slot {s} on {h.src}->{h.dst} is listed twice")
                    owner[key] = r.id
        out.append(r)
    return cycle_ns, slot_ns, out


def load_schedule(data: Any, topology, **scheduler_kwargs):
    """Validate a Schedule JSON document and rebuild a Scheduler holding exactly its reservations.

    The scheduler is made with the file's ``slot_ns`` and a base cycle of the file's ``cycle_ns``
    (so slot indices keep their meaning); other keyword arguments go to ``Scheduler``.
    """
    cycle_ns, slot_ns, reservations = validate_schedule(data, topology)
    kwargs = dict(scheduler_kwargs)
    if kwargs.get("slot_ns", slot_ns) != slot_ns:
        raise SchedulePayloadError(f"schedule: slot_ns {slot_ns} differs from the requested {kwargs['slot_ns']}")
    kwargs["slot_ns"] = slot_ns
    kwargs["base_cycle_ns"] = cycle_ns
    kwargs["max_cycle_ns"] = max(int(kwargs.get("max_cycle_ns", 0) or 0), cycle_ns, 100_000_000)
    sched = Scheduler(topology, **kwargs)
    for r in reservations:
        try:
            sched.restore(r)
        except ValueError as e:
            raise SchedulePayloadError(f"schedule: reservation {r.id!r} cannot be restored: {e}") from None
    if sched.cycle_ns != cycle_ns:
        raise SchedulePayloadError(f"schedule: rebuilt cycle {sched.cycle_ns} ns differs from the file's {cycle_ns} ns")
    return sched


def read_schedule_file(path: str | Path) -> dict[str, Any]:
    """Read a Schedule JSON file (no topology check); SchedulePayloadError on unreadable or non-JSON."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SchedulePayloadError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SchedulePayloadError(f"{p}: cannot read: {e}") from None
    except json.JSONDecodeError as e:
        raise SchedulePayloadError(f"{p}: not JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    if not isinstance(data, dict):
        raise SchedulePayloadError(f"{p}: expected a Schedule JSON object")
    return data


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON to ``path`` via a temporary file and rename, so a reader never sees half a file."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    tmp.replace(p)
