"""A schedule's gate control lists as IEEE 802.1Qcw YANG instance data (RFC 7951 JSON), per port and bridge.

What a TSN bridge loads over NETCONF or RESTCONF: for every egress port of a schedule, the
``gate-parameter-table`` that ``ieee802-dot1q-sched-bridge`` (IEEE Std 802.1Qcw-2023, revision
2023-10-26) adds to ``/if:interfaces/if:interface/dot1q:bridge-port``, built from the port's gate
control list (``schedules.gcl``, the same function the text, JSON and taprio outputs use):

- ``admin-control-list``: one ``gate-control-entry`` per run of equal gate states, operation
  ``ieee802-dot1q-sched:set-gate-states``, ``time-interval-value`` in ns, ``gate-states-value`` with
  traffic class 7 as the most significant bit (the GCL's own encoding: ``0x80`` reserved windows,
  ``0x7f`` best effort). Adjacent windows of two reservations have the same gates and are one
  entry (a bridge's list is short; the timeline is the same). The intervals sum to the cycle.
- ``admin-cycle-time``: the cycle as a rational number of seconds (``cycle_ns / 10**9`` reduced);
  ``admin-base-time``: PTP seconds and nanoseconds (default 0: cycles aligned to the PTP epoch,
  as taprio's ``base-time 0`` on CLOCK_TAI); ``admin-cycle-time-extension`` 0; ``gate-enabled``
  and ``config-change`` true (the bridge copies the admin values to the operational ones).
- ``admin-gate-states``: best effort only (``0x7f`` with class 7 reserved): until the list runs,
  reserved frames wait.
- ``supported-list-max``, ``supported-cycle-max``, ``supported-interval-max``: the module's ``must``
  rules compare the list with them, so a document without them does not validate. Written as what
  the port *needs* (its entry count, its cycle, its longest interval) unless the bridge's own
  figures are given (``supported_list_max`` ...): then a port that needs more is a ``YangError``
  naming it. A bridge that holds them read-only ignores or refuses them: leave them out of the
  edit there (``capabilities=False``).

No guard band is written, unlike the taprio output (docs/gates.md): an 802.1Qbv bridge does not
start a frame its gate would close on before it ends (802.1Q 8.6.8.4), which is the guard band.

The interfaces are named like the taprio devices (``schedules.taprio.device_names``: ``U-V`` cut to
15 characters) unless the caller maps ports to the bridge's real names. Modules, their revisions
and notices: ``schedules/yang_modules/`` (``NOTICE``; ``yang-library.json`` lists them for
validators such as yangson). Pure: builds dicts, reads and runs nothing.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Mapping

from controller.core.scheduler import Scheduler
from schedules.gcl import GCL, GCLError, gate_control_list
from schedules.schedule_json import schedule_to_dict
from schedules.taprio import device_names

__all__ = ["BRIDGE", "IMPLEMENTED", "INTERFACES", "MODULES", "MODULE_DIR", "OPERATION", "SCHED_BRIDGE", "YangError",
           "bridge_instance", "gate_parameter_table", "port_gcls", "port_timeline", "schedule_instances",
           "yanglint_argv"]

#: the vendored modules (name -> revision) the instance data is written against
MODULES = {"ieee802-dot1q-sched-bridge": "2023-10-26", "ieee802-dot1q-sched": "2023-10-22",
           "ieee802-dot1q-bridge": "2023-10-26", "ieee802-dot1q-types": "2023-10-26",
           "ieee802-types": "2023-10-22", "ietf-interfaces": "2018-02-20", "ietf-yang-types": "2013-07-15",
           "iana-if-type": "2023-01-26"}
#: where they are (name@revision.yang, the NOTICE, yang-library.json)
MODULE_DIR = Path(__file__).resolve().with_name("yang_modules")
#: the modules a validator loads as implemented: the data's top (interfaces), the identities it names
#: (iana-if-type, ieee802-dot1q-sched) and the augments on the way (bridge-port, gate-parameter-table)
IMPLEMENTED = ("ietf-interfaces", "iana-if-type", "ieee802-dot1q-bridge", "ieee802-dot1q-sched",
               "ieee802-dot1q-sched-bridge")
SCHED_BRIDGE, BRIDGE, INTERFACES = "ieee802-dot1q-sched-bridge", "ieee802-dot1q-bridge", "ietf-interfaces"
#: the one operation used: set the gates (no frame preemption: set-and-hold/release-mac are not needed)
OPERATION = "ieee802-dot1q-sched:set-gate-states"
#: ``ianaif:ethernetCsmacd``: the interface type of an Ethernet bridge port
ETHERNET = "iana-if-type:ethernetCsmacd"
UINT32_MAX = 2**32 - 1
#: every traffic class's gate open; before the list runs, all but the reserved class are
ALL_GATES = 0xFF


class YangError(ValueError):
    """The schedule cannot be written as 802.1Qcw instance data (one line naming the port)."""


def _runs(gcl: GCL) -> list[tuple[int, int]]:
    """``(gate_states, duration_ns)`` of the port's list, adjacent equal states merged."""
    out: list[list[int]] = []
    for e in gcl.entries:
        if out and out[-1][0] == e.gate_states:
            out[-1][1] += e.duration_ns
        else:
            out.append([e.gate_states, e.duration_ns])
    return [(s, d) for s, d in out]


def _rational(ns: int) -> dict[str, int]:
    f = Fraction(ns, 10**9)
    if f.numerator > UINT32_MAX or f.denominator > UINT32_MAX:
        raise ValueError(f"{ns} ns is not a uint32 rational number of seconds")
    return {"numerator": f.numerator, "denominator": f.denominator}


def gate_parameter_table(gcl: GCL, *, base_time_ns: int = 0, capabilities: bool = True,
                         supported_list_max: int | None = None, supported_interval_max: int | None = None,
                         supported_cycle_max_ns: int | None = None) -> dict[str, Any]:
    """The ``gate-parameter-table`` of ``gcl``'s port, RFC 7951 JSON members (module doc).

    Raises YangError naming the port when an interval or the cycle does not fit the module's types,
    or the port needs more than a given ``supported_*`` figure of the bridge.
    """
    port = f"{gcl.src}->{gcl.dst}"
    if isinstance(base_time_ns, bool) or not isinstance(base_time_ns, int) or base_time_ns < 0:
        raise YangError(f"port {port}: base time must be a non-negative integer of ns, got {base_time_ns!r}")
    runs = _runs(gcl)
    longest = max(d for _, d in runs)
    if longest > UINT32_MAX:
        raise YangError(f"port {port}: interval {longest} ns does not fit time-interval-value (uint32 ns)")
    try:
        cycle = _rational(gcl.cycle_ns)
    except ValueError as e:
        raise YangError(f"port {port}: cycle {e}") from None
    for name, have, need in (("supported-list-max", supported_list_max, len(runs)),
                             ("supported-interval-max", supported_interval_max, longest),
                             ("supported-cycle-max", supported_cycle_max_ns, gcl.cycle_ns)):
        if have is not None and need > have:
            raise YangError(f"port {port}: needs {name} {need}, the bridge supports {have}")
    table: dict[str, Any] = {
        "gate-enabled": True,
        "admin-gate-states": ALL_GATES & ~(1 << gcl.reserved_tc),
        "admin-control-list": {"gate-control-entry": [
            {"index": i, "operation-name": OPERATION, "time-interval-value": d, "gate-states-value": s}
            for i, (s, d) in enumerate(runs)]},
        "admin-cycle-time": cycle,
        "admin-cycle-time-extension": 0,
        "admin-base-time": {"seconds": str(base_time_ns // 10**9), "nanoseconds": base_time_ns % 10**9},
        "config-change": True,
    }
    if capabilities:
        table["supported-list-max"] = supported_list_max if supported_list_max is not None else len(runs)
        table["supported-cycle-max"] = _rational(supported_cycle_max_ns if supported_cycle_max_ns is not None
                                                 else gcl.cycle_ns)
        table["supported-interval-max"] = (supported_interval_max if supported_interval_max is not None
                                           else longest)
    return table


def _interface(name: str, gcl: GCL, table: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "description": f"detnet egress port {gcl.src} -> {gcl.dst}", "type": ETHERNET,
            f"{BRIDGE}:bridge-port": {f"{SCHED_BRIDGE}:gate-parameter-table": table}}


def bridge_instance(gcls: Iterable[GCL], names: Mapping[tuple[str, str], str] | None = None,
                    **table_options: Any) -> dict[str, Any]:
    """One RFC 7951 document holding the gate tables of ``gcls`` (normally the egress ports of one bridge).

    ``names`` maps ``(src, dst)`` to the interface name (default: ``device_names``); ``table_options``
    go to ``gate_parameter_table``.
    """
    gcls = list(gcls)
    names = names or device_names([(g.src, g.dst) for g in gcls])
    interfaces = [_interface(names[(g.src, g.dst)], g, gate_parameter_table(g, **table_options)) for g in gcls]
    return {f"{INTERFACES}:interfaces": {"interface": interfaces}}


def schedule_instances(schedule: Any, *, reserved_tc: int = 7, links: Iterable[tuple[str, str]] | None = None,
                       names: Mapping[tuple[str, str], str] | None = None,
                       **table_options: Any) -> dict[str, dict[str, Any]]:
    """Bridge name -> its RFC 7951 document, for every egress port of a schedule (or of ``links``).

    ``schedule`` is a Schedule JSON dict or a Scheduler (as ``gate_control_list`` takes). The bridges
    come in the order of the schedule's links; a port is on the bridge it leaves (its ``src``).
    Raises GCLError (bad schedule or link) or YangError.
    """
    gcls = port_gcls(schedule, links, reserved_tc=reserved_tc)
    names = names or device_names([(g.src, g.dst) for g in gcls])
    by_bridge: dict[str, list[GCL]] = {}
    for g in gcls:
        by_bridge.setdefault(g.src, []).append(g)
    return {b: bridge_instance(g, names, **table_options) for b, g in by_bridge.items()}


def port_gcls(schedule: Any, links: Iterable[tuple[str, str]] | None = None, *,
              reserved_tc: int = 7) -> list[GCL]:
    """``gate_control_list`` of every port of ``links`` (default: the schedule's links, in order).

    The same lists as one ``gate_control_list`` call per port, without each call reading every
    reservation: the reservations are indexed by link once (a 4,096-reservation fntf40 schedule:
    184 ports in about a second instead of several). Raises GCLError.
    """
    if isinstance(schedule, Scheduler):
        schedule = schedule_to_dict(schedule)          # once, not once per port
    if links is None:
        try:
            links = [(str(l["src"]), str(l["dst"])) for l in schedule["links"]]
        except (KeyError, TypeError):
            raise GCLError("not a Schedule JSON object (needs cycle_ns, slot_ns, links, reservations)") from None
    links = list(links)
    if not links:
        raise GCLError("the schedule has no links")
    by_link = _reservations_by_link(schedule)
    return [gate_control_list(_on_link(schedule, by_link, u, v), u, v, reserved_tc=reserved_tc) for u, v in links]


def _reservations_by_link(schedule: Any) -> dict[tuple[Any, Any], list[Any]]:
    """The reservations holding slots on each directed link (either path), each listed once per link."""
    out: dict[tuple[Any, Any], list[Any]] = {}
    try:
        reservations = list(schedule.get("reservations") or [])
    except (AttributeError, TypeError):
        raise GCLError("not a Schedule JSON object (needs cycle_ns, slot_ns, links, reservations)") from None
    for r in reservations:
        try:
            hops = list(r.get("hops") or []) + list(r.get("protection_hops") or [])
            for link in {(h.get("src"), h.get("dst")) for h in hops}:
                out.setdefault(link, []).append(r)
        except (AttributeError, TypeError):
            raise GCLError("not a Schedule JSON object (a reservation or hop is not an object)") from None
    return out


def _on_link(schedule: Mapping[str, Any], by_link: Mapping[tuple[Any, Any], list[Any]], u: str,
             v: str) -> dict[str, Any]:
    """The schedule with only the reservations that cross ``u -> v``: the same GCL for that port
    (``gate_control_list`` reads only that link's hops), without reading every reservation per port."""
    return {**schedule, "reservations": by_link.get((u, v), [])}


def yanglint_argv(*files: str | Path, fmt: str | None = None) -> list[str]:
    """argv of ``yanglint`` (libyang 2) checking config instance data ``files`` against the vendored
    modules: exit 0 when valid; ``fmt="xml"`` also prints them in the XML encoding (for NETCONF)."""
    mods = [str(MODULE_DIR / f"{m}@{MODULES[m]}.yang") for m in IMPLEMENTED]
    return ["yanglint", "-p", str(MODULE_DIR), "-t", "config", *(["-f", fmt] if fmt else []), *mods,
            *map(str, files)]


def port_timeline(table: Mapping[str, Any]) -> list[tuple[int, int, int]]:
    """``(start_ns, duration_ns, gate_states)`` of a ``gate-parameter-table``'s admin list, in index
    order (to compare a bridge's list, read back over NETCONF, with a GCL)."""
    entries = sorted(table["admin-control-list"]["gate-control-entry"], key=lambda e: int(e["index"]))
    out, t = [], 0
    for e in entries:
        out.append((t, int(e["time-interval-value"]), int(e["gate-states-value"])))
        t += int(e["time-interval-value"])
    return out
