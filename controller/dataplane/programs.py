"""Programs: every data-plane event as one pure function from state to an ordered list of phases.

A **program** is a list of **phases**; a phase is a list of per-switch **changes** (flow add,
flow delete by cookie mask or strict match, meter add/modify/delete, group add/modify/delete).
The os-ken shim runs a program phase by phase: it sends a phase's changes in order, then a barrier
to every switch the phase touched. When the phase ``wait``s, the shim waits for every one of those
barrier replies before it starts the next phase (order *across* switches: make-before-break);
otherwise the barrier only orders the switch's own changes (a meter before the entries that use
it) and the next phase follows at once. The shim always waits for the last phase's barriers (and
the earlier ones) before it reports the program done.

The events (Faucet's ``valve.py`` is the model: the core returns what to send and never sends):

- ``install``: a reservation's meter and group (+ best-effort meters resized), then its entries;
- ``remove``: its entries (one cookie-masked delete per switch), then its meter and group
  (+ best-effort meters resized);
- ``reroute``: reservations moved by a link event, make-before-break: new downstream entries and
  new groups, **wait**; the ingress entries and modified groups, **wait**; stale entries deleted,
  then stale groups, and the best-effort meters of the links concerned;
- ``resync``: one switch's dumped state brought to the desired state: meters and groups added or
  modified, then entries deleted and added, then stale meters and groups deleted;
- ``best_effort_update``: best-effort routes recomputed around failed links, sent only where
  they differ from what each switch was last given.

Nothing here reads a clock or a socket; the callers pass the state in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence, Union

from controller.core.model import Reservation
from controller.dataplane import specs
from controller.dataplane import translation as tr
from controller.dataplane.resync import (SwitchState, group_resync_plan, meter_resync_plan,
                                         resync_plan)
from controller.dataplane.specs import (COOKIE_MASK_RESERVATION, TABLE_BEST_EFFORT, FlowSpec, GroupSpec,
                                        MeterSpec, reservation_cookie, reservation_group_id,
                                        reservation_meter_id)
from topologies.hosts import HostPlan

Link = tuple[str, str]


# ---------------------------------------------------------------------------------------------
# changes
@dataclass
class FlowAdd:
    """Add ``flow`` (replacing an entry with the same table, priority and match)."""

    flow: FlowSpec
    note: str = ""

    @property
    def dpid(self) -> int:
        return self.flow.dpid

    def describe(self) -> str:
        return f"flow add cookie={self.flow.cookie:#x}" + (f" ({self.note})" if self.note else "")


@dataclass
class FlowDelete:
    """Delete every entry, in every table, whose cookie ``cookie_mask`` selects (non-strict)."""

    dpid: int
    cookie: int
    cookie_mask: int
    note: str = ""

    def describe(self) -> str:
        return f"flow delete cookie={self.cookie:#x}/{self.cookie_mask:#x}" + (f" ({self.note})" if self.note else "")


@dataclass
class FlowDeleteStrict:
    """Delete the one entry with this table, priority and match."""

    dpid: int
    table_id: int
    priority: int
    match: dict[str, Any]
    note: str = ""
    #: the entry's cookie where known (a resync deleting what it dumped): whose entry it is
    cookie: int | None = None

    def describe(self) -> str:
        return f"flow delete table={self.table_id} priority={self.priority}" + (f" ({self.note})" if self.note else "")


@dataclass
class MeterAdd:
    meter: MeterSpec
    note: str = ""

    @property
    def dpid(self) -> int:
        return self.meter.dpid

    def describe(self) -> str:
        return f"meter add {self.meter.meter_id}" + (f" ({self.note})" if self.note else "")


@dataclass
class MeterModify:
    meter: MeterSpec

    @property
    def dpid(self) -> int:
        return self.meter.dpid

    def describe(self) -> str:
        return f"meter modify {self.meter.meter_id}"


@dataclass
class MeterDelete:
    dpid: int
    meter_id: int

    def describe(self) -> str:
        return f"meter delete {self.meter_id}"


@dataclass
class GroupAdd:
    group: GroupSpec
    note: str = ""

    @property
    def dpid(self) -> int:
        return self.group.dpid

    def describe(self) -> str:
        return f"group add {self.group.group_id}" + (f" ({self.note})" if self.note else "")


@dataclass
class GroupModify:
    group: GroupSpec

    @property
    def dpid(self) -> int:
        return self.group.dpid

    def describe(self) -> str:
        return f"group modify {self.group.group_id}"


@dataclass
class GroupDelete:
    dpid: int
    group_id: int

    def describe(self) -> str:
        return f"group delete {self.group_id}"


Change = Union[FlowAdd, FlowDelete, FlowDeleteStrict, MeterAdd, MeterModify, MeterDelete,
               GroupAdd, GroupModify, GroupDelete]


@dataclass
class Phase:
    """Changes sent together; a barrier on every switch they touch follows. ``wait``: the next
    phase starts only after every one of those barriers was answered."""

    changes: list[Change] = field(default_factory=list)
    wait: bool = False

    def switches(self) -> list[int]:
        """The dpids this phase touches, in first-change order."""
        return list(dict.fromkeys(c.dpid for c in self.changes))


@dataclass
class Program:
    """Ordered phases; empty phases are dropped on construction."""

    phases: list[Phase] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.phases = [p for p in self.phases if p.changes]

    def __bool__(self) -> bool:
        return bool(self.phases)

    def changes(self) -> list[Change]:
        return [c for p in self.phases for c in p.changes]

    def switches(self) -> list[int]:
        """Every dpid the program touches, in first-change order."""
        return list(dict.fromkeys(c.dpid for c in self.changes()))

    def restricted_to(self, dpids: Iterable[int]) -> "Program":
        """The same program without the changes of other switches (those not connected: a
        switch that connects later is resynchronised instead)."""
        keep = set(dpids)
        return Program([Phase([c for c in p.changes if c.dpid in keep], p.wait) for p in self.phases])


# ---------------------------------------------------------------------------------------------
# helpers
def path_switches(plan: HostPlan, res: Reservation) -> list[int]:
    """The dpids of every switch on the reservation's paths (primary first), each once."""
    return [plan.dpid(n) for n in dict.fromkeys(n for p in res.all_paths() for n in p)]


def _be_meter_changes(plan: HostPlan, links: Iterable[Link], link_bps: dict[Link, int],
                      rate_scale: float) -> list[Change]:
    return [MeterModify(m) for m in tr.best_effort_meters_of_links(plan, links, link_bps, rate_scale=rate_scale)]


def _strict_delete(f: FlowSpec, note: str) -> FlowDeleteStrict:
    return FlowDeleteStrict(f.dpid, f.table_id, f.priority, dict(f.match), note)


# ---------------------------------------------------------------------------------------------
# events
def install(plan: HostPlan, res: Reservation, link_bps: dict[Link, int], *, rate_scale: float = 1.0,
            queue_id: int | None = None) -> Program:
    """Install a committed reservation: its meter and replication group and the best-effort meters
    of the ports it now shares (``link_bps``: reserved bit/s per link, the reservation included),
    then its entries on every switch of its paths.

    Raises ``translation.TranslationError`` when the reservation cannot be expressed as entries."""
    program, skipped = install_many(plan, [res], link_bps, rate_scale=rate_scale, queue_id=queue_id)
    if skipped:
        raise skipped[0][1]
    return program


def remove(plan: HostPlan, res: Reservation, link_bps: dict[Link, int], *, rate_scale: float = 1.0) -> Program:
    """Remove a reservation: its entries on every switch of its paths (one cookie-masked delete
    each), then its meter and group on the ingress switch and the best-effort meters of the ports
    it freed (``link_bps`` without it)."""
    return remove_many(plan, [res], link_bps, rate_scale=rate_scale)


def install_many(plan: HostPlan, reservations: Sequence[Reservation], link_bps: dict[Link, int], *,
                 rate_scale: float = 1.0, queue_id: int | None = None
                 ) -> tuple[Program, list[tuple[Reservation, tr.TranslationError]]]:
    """Install reservations committed together (a batch, or POSTs that committed while the data
    plane was busy) as one program: every meter, group and best-effort meter first, then every
    entry, so each switch gets one message run and one barrier per phase however many
    reservations cross it. Each reservation's phases keep their order, as in ``install``; a
    best-effort meter that several of them share is written once, at its final rate (``link_bps``
    has them all). Returns the program and the reservations that cannot be expressed as entries
    (with why): the others are installed without them."""
    first: list[Change] = []
    flows: list[Change] = []
    links: dict[Link, None] = {}
    skipped: list[tuple[Reservation, tr.TranslationError]] = []
    for res in reservations:
        try:
            res_flows, meters = tr.reservation_flows(plan, res, rate_scale=rate_scale, queue_id=queue_id)
            groups = tr.reservation_groups(plan, res)
        except tr.TranslationError as e:
            skipped.append((res, e))
            continue
        for dpid in path_switches(plan, res):
            first += [MeterAdd(m, res.id) for m in meters if m.dpid == dpid]
            first += [GroupAdd(g, res.id) for g in groups if g.dpid == dpid]
        flows += [FlowAdd(f, res.id) for f in res_flows]
        links.update(dict.fromkeys(res.links()))
    first += _be_meter_changes(plan, links, link_bps, rate_scale)
    return Program([Phase(first), Phase(flows)]), skipped


def remove_many(plan: HostPlan, reservations: Sequence[Reservation], link_bps: dict[Link, int], *,
                rate_scale: float = 1.0) -> Program:
    """Remove reservations released together as one program: every entry (one cookie-masked delete
    per reservation and switch), then their meters and groups and, once per port, the best-effort
    meters of the ports they freed (``link_bps`` without any of them)."""
    deletes: list[Change] = []
    second: list[Change] = []
    links: dict[Link, None] = {}
    for res in reservations:
        cookie = reservation_cookie(res.tenant, res.id)
        deletes += [FlowDelete(d, cookie, COOKIE_MASK_RESERVATION, res.id) for d in path_switches(plan, res)]
        ingress = plan.dpid(res.path[0])
        second.append(MeterDelete(ingress, reservation_meter_id(res.id)))
        if res.protection_path:
            second.append(GroupDelete(ingress, reservation_group_id(res.id)))
        links.update(dict.fromkeys(res.links()))
    second += _be_meter_changes(plan, links, link_bps, rate_scale)
    return Program([Phase(deletes), Phase(second)])


@dataclass
class Reroute:
    """What ``reroute`` returns: the program, and the reservations whose new placement cannot be
    expressed as entries (``(old, error)``: the caller removes them with ``remove``)."""

    program: Program
    unplaceable: list[tuple[Reservation, tr.TranslationError]]
    reservations: int   # how many (old, new) pairs the program carries


def reroute(plan: HostPlan, pairs: Sequence[tuple[Reservation, Reservation]], link_bps: dict[Link, int], *,
            rate_scale: float = 1.0, queue_id: int | None = None) -> Reroute:
    """Reprogram reservations a link event moved (``(old, new)`` pairs with the same ids): only the
    entries that differ, make-before-break.

    1. new and changed entries on every switch but the ingress, and new groups (nothing sends
       into them yet) -- wait;
    2. the ingress entries (they now send along the new path), modified groups and a changed
       meter (a PATCH of the rate; a new meter is added in 1.) -- wait;
    3. stale entries deleted;
    4. stale groups deleted (after the entries that used them), best-effort meters of the links
       of both placements resized from ``link_bps``.
    """
    downstream: list[Change] = []
    ingress_phase: list[Change] = []
    stale: list[Change] = []
    stale_groups: list[Change] = []
    links: set[Link] = set()
    unplaceable: list[tuple[Reservation, tr.TranslationError]] = []
    n = 0
    for old, new in pairs:
        try:
            new_flows, new_meters = tr.reservation_flows(plan, new, rate_scale=rate_scale, queue_id=queue_id)
            new_groups = tr.reservation_groups(plan, new)
        except tr.TranslationError as e:
            unplaceable.append((old, e))
            continue
        try:
            old_flows, old_meters = tr.reservation_flows(plan, old, rate_scale=rate_scale, queue_id=queue_id)
            old_groups = tr.reservation_groups(plan, old)
        except tr.TranslationError:
            old_flows, old_meters, old_groups = [], [], []
        n += 1
        links |= old.links() | new.links()
        ingress = plan.dpid(new.path[0])
        have = {(f.dpid, f.key()): f for f in old_flows}
        want = {(f.dpid, f.key()): f for f in new_flows}
        for k, f in want.items():
            if k not in have or have[k].cookie != f.cookie:
                (ingress_phase if f.dpid == ingress else downstream).append(FlowAdd(f, f"reroute {new.id}"))
        stale += [_strict_delete(f, f"reroute {new.id}") for k, f in have.items() if k not in want]
        # a modified rate (PATCH): the reservation's meter is added (new ingress) before, or
        # changed with, the ingress entries that use it
        om = {(m.dpid, m.meter_id): m for m in old_meters}
        for m in new_meters:
            if (m.dpid, m.meter_id) not in om:
                downstream.append(MeterAdd(m, f"reroute {new.id}"))
            elif om[(m.dpid, m.meter_id)] != m:
                ingress_phase.insert(0, MeterModify(m))
        stale_groups += [MeterDelete(m.dpid, m.meter_id) for k, m in om.items()
                         if k not in {(x.dpid, x.meter_id) for x in new_meters}]
        og = {g.group_id: g for g in old_groups}
        ng = {g.group_id: g for g in new_groups}
        for g in new_groups:
            if g.group_id not in og:
                downstream.append(GroupAdd(g, f"reroute {new.id}"))
            elif og[g.group_id].bucket_ports() != g.bucket_ports():
                ingress_phase.append(GroupModify(g))
        stale_groups += [GroupDelete(g.dpid, g.group_id) for g in old_groups if g.group_id not in ng]
    be = _be_meter_changes(plan, links, link_bps, rate_scale) if n else []
    program = Program([Phase(_groups_first(downstream), wait=True), Phase(ingress_phase, wait=True),
                       Phase(stale), Phase(stale_groups + be)])
    return Reroute(program, unplaceable, n)


def _groups_first(changes: list[Change]) -> list[Change]:
    """Group adds before flow adds (an entry may send into a new group on the same switch)."""
    return [c for c in changes if isinstance(c, GroupAdd)] + [c for c in changes if not isinstance(c, GroupAdd)]


def resync(plan: HostPlan, node: str, reservations: Iterable[Reservation], actual: SwitchState, *,
           rate_scale: float = 1.0, queue_id: int | None = None, failed: Iterable[Link] | None = None,
           on_error: Callable[[Reservation, tr.TranslationError], None] | None = None) -> Program:
    """Bring switch ``node`` from ``actual`` to its desired state (baseline around ``failed``
    links, plus every reservation crossing it): meters and groups added or modified first, then
    stale entries deleted and missing or outdated ones added, then stale meters and groups
    deleted. ``on_error(res, exc)`` is told of reservations that cannot be translated (skipped)."""
    return resync_many(plan, {node: actual}, reservations, rate_scale=rate_scale, queue_id=queue_id,
                       failed=failed, on_error=on_error)[node]


def resync_many(plan: HostPlan, actual: dict[str, SwitchState], reservations: Iterable[Reservation], *,
                rate_scale: float = 1.0, queue_id: int | None = None, failed: Iterable[Link] | None = None,
                on_error: Callable[[Reservation, tr.TranslationError], None] | None = None) -> dict[str, Program]:
    """``resync`` of every switch in ``actual`` (node -> its dumped state), each reservation
    translated once (``translation.desired_states``). The programs have the same three phases, so
    ``merged`` runs them as one: one message run and one barrier per phase on each switch."""
    desired = tr.desired_states(plan, actual, reservations, rate_scale=rate_scale, queue_id=queue_id,
                                on_error=on_error, failed=failed)
    out = {}
    for node, state in actual.items():
        flows, meters, groups = desired[node]
        dpid = plan.dpid(node)
        m_add, m_mod, m_del = meter_resync_plan(meters, state.meters)
        g_add, g_mod, g_del = group_resync_plan(groups, state.groups)
        f_add, f_del = resync_plan(flows, state.flows)
        out[node] = Program([
            Phase([MeterAdd(m) for m in m_add] + [MeterModify(m) for m in m_mod]
                  + [GroupAdd(g) for g in g_add] + [GroupModify(g) for g in g_mod]),
            Phase([FlowDeleteStrict(dpid, a["table_id"], a["priority"], dict(a.get("match") or {}),
                                    f"cookie={int(a.get('cookie', 0)):#x}", int(a.get("cookie", 0))) for a in f_del]
                  + [FlowAdd(f) for f in f_add]),
            Phase([MeterDelete(dpid, i) for i in m_del] + [GroupDelete(dpid, i) for i in g_del]),
        ])
    return out


def rebased(program: Program, plan: HostPlan, node: str, actual: SwitchState, touched: Iterable[str],
            reservations: Iterable[Reservation], *, rate_scale: float = 1.0) -> Program:
    """A resync ``program`` of ``node``, planned on an earlier snapshot of the reservations and the
    switch's dump ``actual``, made right for now (``reservations``: the current ones), when the
    reservations ``touched`` (ids) were installed, removed or moved by their own programs meanwhile.

    Those programs are newer than the plan, so every change of a touched reservation's entries,
    meter or group is dropped (the plan would delete a new reservation the dump caught, or re-add
    one removed since). The port meters (best effort, sized by what the reservations leave of each
    port, and the ARP policers) are planned again from ``reservations`` against the dump. Nothing
    touched: ``program`` itself."""
    ids = set(touched)
    if not ids:
        return program
    numbers = {specs.reservation_number(i) for i in ids}
    meters = {specs.reservation_meter_id(i) for i in ids}
    groups = {specs.reservation_group_id(i) for i in ids}

    def theirs(c: Change) -> bool:
        cookie = (c.flow.cookie if isinstance(c, FlowAdd) else c.cookie if isinstance(c, FlowDeleteStrict)
                  else None)
        if cookie is not None:
            parts = specs.parse_cookie(cookie)
            return parts["kind"] == specs.KIND_RESERVATION and parts["number"] in numbers
        if isinstance(c, (MeterAdd, MeterModify)):
            return c.meter.meter_id in meters or c.meter.meter_id < specs.RES_METER_BASE
        if isinstance(c, MeterDelete):
            return c.meter_id in meters
        if isinstance(c, (GroupAdd, GroupModify)):
            return c.group.group_id in groups
        if isinstance(c, GroupDelete):
            return c.group_id in groups
        return False

    be_meters = tr.port_meters(plan, node, tr.reserved_share_by_port(plan, node, reservations),
                               rate_scale=rate_scale)
    add, modify, _ = meter_resync_plan(be_meters, [m for m in actual.meters
                                                   if int(m["meter_id"]) < specs.RES_METER_BASE])
    return Program([Phase([MeterAdd(m) for m in add] + [MeterModify(m) for m in modify])]
                   + [Phase([c for c in ph.changes if not theirs(c)], ph.wait) for ph in program.phases])


def merged(programs: Iterable[Program]) -> Program:
    """Programs of different switches as one: their n-th phases together (each switch's changes
    keep their order; a phase waits when one of its parts did)."""
    phases: list[Phase] = []
    for program in programs:
        for i, phase in enumerate(program.phases):
            if i == len(phases):
                phases.append(Phase([], phase.wait))
            phases[i].changes += phase.changes
            phases[i].wait = phases[i].wait or phase.wait
    return Program(phases)


def best_effort_entries(plan: HostPlan, node: str, *, rate_scale: float = 1.0,
                        failed: Iterable[Link] | None = None) -> dict[tuple, FlowSpec]:
    """The best-effort table (table 2) of ``node`` around the ``failed`` links, by entry key."""
    flows, _ = tr.baseline(plan, node, rate_scale=rate_scale, failed=failed)
    return {f.key(): f for f in flows if f.table_id == TABLE_BEST_EFFORT}


def best_effort_update(plan: HostPlan, sent: dict[int, dict[tuple, FlowSpec]], failed: Iterable[Link], *,
                       rate_scale: float = 1.0) -> tuple[Program, dict[int, dict[tuple, FlowSpec]]]:
    """Best-effort forwarding recomputed around the ``failed`` links for the switches in ``sent``
    (dpid -> the best-effort entries that switch was last given): one phase with the entries that
    differ (added or replaced, stale ones deleted), and the new ``sent`` of the switches changed."""
    failed = set(failed)
    changes: list[Change] = []
    now_sent: dict[int, dict[tuple, FlowSpec]] = {}
    for dpid, have in sent.items():
        want = best_effort_entries(plan, plan.node_of_dpid(dpid), rate_scale=rate_scale, failed=failed)
        add = [FlowAdd(f, "best-effort update") for k, f in want.items() if k not in have or have[k].cookie != f.cookie]
        gone = [_strict_delete(f, "best-effort delete") for k, f in have.items() if k not in want]
        if add or gone:
            changes += add + gone
            now_sent[dpid] = want
    return Program([Phase(changes)]), now_sent
