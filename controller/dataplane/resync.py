"""Resynchronising one switch: its dumped state against the desired state, as differences (pure).

A switch that (re)connects is read (flows, meters, groups, as ``SwitchState``) and compared with
what the translation says it should hold; ``controller.dataplane.programs.resync`` orders the
differences into a program. Entries are compared by identity (table, priority, normalised
match) and content (the cookie, whose low byte digests the actions); meters by rate and burst;
groups by the output ports of their buckets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controller.dataplane.specs import FlowSpec, GroupSpec, MeterSpec, normalize_match


@dataclass
class SwitchState:
    """What a switch holds, as its dumps say.

    ``flows``: dicts with ``table_id``, ``priority``, ``match`` (field -> value or (value, mask))
    and ``cookie``; ``meters``: dicts with ``meter_id``, ``rate_kbps``, ``burst_kb``; ``groups``:
    dicts with ``group_id`` and ``buckets`` (output ports per bucket, as ``GroupSpec.bucket_ports``).
    """

    flows: list[dict[str, Any]] = field(default_factory=list)
    meters: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)


def resync_plan(desired: list[FlowSpec], actual: list[dict[str, Any]]) -> tuple[list[FlowSpec], list[dict[str, Any]]]:
    """What to send to make a switch's flow table equal ``desired``.

    An entry is the same when table, priority and match agree; it is up to date when its cookie
    agrees too. Returns (entries to add, which replace outdated ones in place; actual entries to
    delete).
    """
    have = {(a["table_id"], a["priority"], normalize_match(a.get("match") or {})): a for a in actual}
    want = {f.key(): f for f in desired}
    to_add = [f for k, f in want.items() if k not in have or int(have[k].get("cookie", 0)) != f.cookie]
    to_delete = [a for k, a in have.items() if k not in want]
    return to_add, to_delete


def meter_resync_plan(desired: list[MeterSpec], actual: list[dict[str, Any]]
                      ) -> tuple[list[MeterSpec], list[MeterSpec], list[int]]:
    """(meters to add, meters to modify, meter ids to delete)."""
    have = {int(a["meter_id"]): a for a in actual}
    want = {m.meter_id: m for m in desired}
    add = [m for i, m in want.items() if i not in have]
    modify = [m for i, m in want.items() if i in have
              and (int(have[i]["rate_kbps"]), int(have[i]["burst_kb"])) != (m.rate_kbps, m.burst_kb)]
    delete = sorted(i for i in have if i not in want)
    return add, modify, delete


def group_resync_plan(desired: list[GroupSpec], actual: list[dict[str, Any]]
                      ) -> tuple[list[GroupSpec], list[GroupSpec], list[int]]:
    """(groups to add, groups to modify, group ids to delete)."""
    have = {int(a["group_id"]): a for a in actual}
    want = {g.group_id: g for g in desired}
    add = [g for i, g in want.items() if i not in have]
    modify = [g for i, g in want.items() if i in have
              and tuple(tuple(b) for b in have[i]["buckets"]) != g.bucket_ports()]
    delete = sorted(i for i in have if i not in want)
    return add, modify, delete
