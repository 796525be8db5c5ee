"""What the service hands out: detached copies of reservations and the read-only documents
(the Schedule JSON contract, the topology with hosts and link state, ``/healthz``), and ids as a
tenant sees them (``shown_id``, ``tenant_view``). Pure: data in, data out.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Iterable

from controller.auth import Principal
from controller.core.model import Hop, Rejection, Reservation
from controller.core.scheduler import Scheduler
from schedules.schedule_json import schedule_to_dict
from topologies.hosts import HostPlan
from topologies.model import Topology


def detached(res: Reservation) -> Reservation:
    """A deep copy of a reservation: what leaves the service lock (answers, listeners). Its lists
    and dicts are new (their items are immutable: strings and ints), so nothing the scheduler
    changes later reaches it (a JSON round trip did the same at several times the cost: it
    was a fifth of a batch's time)."""
    return replace(res, path=list(res.path), hops=[Hop(h.src, h.dst, list(h.slots)) for h in res.hops],
                   tx_offsets_ns=list(res.tx_offsets_ns), match=dict(res.match or {}),
                   protection_path=list(res.protection_path) if res.protection_path else None,
                   protection_hops=([Hop(h.src, h.dst, list(h.slots)) for h in res.protection_hops]
                                    if res.protection_hops else None))


def shown_id(principal: Principal | None, rid: str) -> str:
    """A reservation id as ``principal`` sees it: a tenant sees the ids it chose as it chose them
    (``ID@TENANT``, the form an id it chose while another tenant held it is kept under, is shown
    as ``ID``); the admin sees the ids as stored (``controller.reservations`` scopes ids)."""
    if principal is None or principal.is_admin:
        return rid
    return rid.removesuffix(f"@{principal.tenant}")


def tenant_view(principal: Principal | None, value: Any) -> Any:
    """``value`` (a Reservation, Rejection, or JSON-like data) with every id in it as ``principal``
    sees it (``shown_id``; in texts and reasons too, e.g. ``overlap:ID``). A tenant's answers
    only hold its own reservations' ids, so stripping its own qualifier is the whole mapping."""
    if principal is None or principal.is_admin:
        return value
    suffix = re.compile(rf"(?<=[A-Za-z0-9._-])@{principal.tenant}(?![0-9])")

    def strip(v: Any) -> Any:
        if isinstance(v, str):
            return suffix.sub("", v) if "@" in v else v
        if isinstance(v, dict):
            return {strip(k): strip(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return type(v)(strip(x) for x in v)
        if isinstance(v, Reservation):
            if "@" not in v.id:
                return v
            copy = detached(v)
            copy.id = shown_id(principal, v.id)
            return copy
        if isinstance(v, Rejection):
            return Rejection(strip(v.reason), strip(v.detail))
        return v

    return strip(value)


def schedule_view(scheduler: Scheduler, principal: Principal | None = None) -> dict[str, Any]:
    """The Schedule JSON contract; a tenant sees only its own reservations (the caller holds the lock)."""
    d = schedule_to_dict(scheduler)
    if principal is not None and not principal.is_admin:
        d["reservations"] = tenant_view(principal, [r for r in d["reservations"]
                                                    if r.get("tenant") == principal.tenant])
    return d


def health_view(*, switches_connected: int, reservations: int, tenants: int, unrestored: int, down: int,
                link_check: dict[str, Any], uptime_s: float) -> dict[str, Any]:
    """The ``/healthz`` document: ``status`` is ``ok``, or ``degraded`` with one line per reason in
    ``reasons`` (stored reservations not on the network, links LLDP has not seen). Liveness either
    way: the answer is 200 whenever the process serves it."""
    reasons: list[str] = []
    if unrestored:
        reasons.append(f"{unrestored} stored reservation(s) unrestored at start (see GET /v1/reservations, "
                       "status 'unrestored')")
    if down:
        reasons.append(f"{down} reservation(s) down after link failures")
    expected, missing = int(link_check.get("expected") or 0), len(link_check.get("missing") or [])
    if link_check.get("checked") and expected and missing:
        reasons.append(f"LLDP: none of the {expected} topology links seen" if missing >= expected
                       else f"LLDP: {missing} of {expected} topology links not seen")
    return {"status": "degraded" if reasons else "ok", "reasons": reasons,
            "switches_connected": switches_connected, "reservations": reservations, "tenants": tenants,
            "unrestored": unrestored, "down": down, "uptime_s": uptime_s}


def topology_view(topology: Topology, host_plan: HostPlan, link_check: dict[str, Any],
                  links_down: Iterable[frozenset[str]]) -> dict[str, Any]:
    """Native topology JSON plus the host plan, the LLDP link check and each link's state."""
    down = set(links_down)
    d = topology.to_dict()
    d["hosts"] = host_plan.to_dict()["hosts"]
    d["link_check"] = link_check
    for link in d.get("links", []):
        link["state"] = "down" if frozenset((link["src"], link["dst"])) in down else "up"
    d["links_down"] = sorted(sorted(l) for l in down)
    return d
