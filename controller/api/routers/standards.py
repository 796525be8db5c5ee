"""``/v1/schedule/gcl``: the running schedule's gate control lists in the standards' forms (admin).

``GET /v1/schedule/gcl?format=json|yang|taprio[&src=U&dst=V]`` answers, for every egress port (or
the one ``src -> dst``), what ``dnctl schedule gcl`` prints offline from a Schedule JSON file, built
from the same Schedule JSON ``GET /v1/schedule`` answers and by the same functions
(``schedules.gcl.gate_control_list`` through ``schedules.yang.port_gcls``, ``schedules.yang``,
``schedules.taprio``), so the two never
disagree: ``json`` the 802.1Qbv lists, ``yang`` IEEE 802.1Qcw instance data per bridge (RFC 7951),
``taprio`` the ``tc`` argv per port (a port that does not fit one ``tc`` command carries an
``error`` line instead). Admin only: a port's list shows every tenant's windows. docs/standards.md.
"""

# no `from __future__ import annotations`: FastAPI reads the handlers' real types

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from typing_extensions import TypedDict     # pydantic needs it on Python < 3.12

from controller.api.errors import ADMIN, ApiError, responses
from controller.api.guards import Admin, Service
from controller.api.responses import absent, allow, described
from schedules.gcl import GCLError
from schedules.taprio import TaprioError, device_names, taprio_config, talker_ports
from schedules.yang import MODULES, YangError, bridge_instance, port_gcls

router = APIRouter(tags=["network"])


# ----- response models (as in controller/api/responses.py: TypedDicts, extra keys pass) ---------------------
@allow
class GateEntry(TypedDict):
    """One entry of a port's 802.1Qbv gate control list."""

    start_ns: described(int, "start within the cycle, ns")
    duration_ns: described(int, "how long the gates hold these states, ns")
    gate_states: described(int, "bit i = traffic class i open (0x80: only class 7, reserved; 0x7f: best effort)")
    gates: described(str, "the same as 802.1Qbv tools print it: class 7 first, o open, C closed")
    state: described(str, "reserved or best_effort")
    reservation: absent(str, "the reservation of a reserved entry")


@allow
class PortGCL(TypedDict):
    """The gate control list of the egress port src -> dst."""

    src: described(str, "node the port leaves")
    dst: described(str, "node the port reaches")
    cycle_ns: described(int, "cycle, ns (the entries sum to it)")
    slot_ns: described(int, "slot, ns")
    reserved_tc: described(int, "traffic class of the reservations")
    reserved_ns: described(int, "time per cycle the reserved gate is open, ns (/ cycle_ns = the port's "
                                "detnet_link_reserved_share in /metrics)")
    entries: described(list[GateEntry], "the entries in time order, from 0")


@allow
class TaprioPort(TypedDict):
    """A port as Linux taprio (docs/gates.md)."""

    src: described(str, "node the port leaves")
    dst: described(str, "node the port reaches")
    dev: described(str, "the device named in the commands (a placeholder: src-dst cut to 15 characters)")
    commands: absent(list[list[str]], "argv to run in order: tc qdisc replace ... taprio, then its etf child "
                                      "if any")
    error: absent(str, "why this port has no commands (e.g. more entries than one tc command carries)")


@allow
class GateControlLists(TypedDict):
    """``GET /v1/schedule/gcl``: the lists of every port (or one) in the format asked for."""

    format: described(str, "json, yang or taprio")
    cycle_ns: described(int, "cycle of the schedule, ns")
    slot_ns: described(int, "slot of the schedule, ns")
    gcls: absent(list[PortGCL], "format json: one list per port, in the schedule's link order")
    bridges: absent(dict[str, dict[str, Any]], "format yang: bridge (node) -> its RFC 7951 instance data "
                                               "(ietf-interfaces with ieee802-dot1q-sched-bridge gate tables)")
    modules: absent(dict[str, str], "format yang: the YANG modules and revisions the data is written against")
    ports: absent(list[TaprioPort], "format taprio: one entry per port")


@router.get("/v1/schedule/gcl", responses=responses(*ADMIN, 404, 409, 422), response_model=GateControlLists,
            summary="Gate control lists of every port (or one): 802.1Qbv lists, 802.1Qcw YANG, tc taprio (admin)")
def gate_control_lists(
        who: Admin, service: Service,
        format: Annotated[Literal["json", "yang", "taprio"], Query(description="json: the lists; yang: IEEE "
                          "802.1Qcw instance data per bridge (RFC 7951); taprio: tc argv per port")] = "json",
        src: Annotated[str | None, Query(min_length=1, max_length=128, description="one port: its node")] = None,
        dst: Annotated[str | None, Query(min_length=1, max_length=128, description="one port: its neighbour")] = None,
        base_time_ns: Annotated[int, Query(ge=0, le=2**63 - 1, description="yang, taprio: base time, ns of "
                                           "TAI/PTP time (0: cycles aligned to the epoch)")] = 0,
        guard_band_bytes: Annotated[int, Query(ge=0, le=10**6, description="taprio: bytes closed before each "
                                               "reserved window at the link's rate")] = 1522,
        etf_delta_ns: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="taprio: talkers use launch "
                                                  "time; etf child with this delta on the ports they send "
                                                  "on")] = None) -> dict[str, Any]:
    if (src is None) != (dst is None):
        field = "dst" if dst is None else "src"
        raise ApiError(422, "invalid", f"{field}: src and dst go together (one port)", field=field)
    schedule = service.schedule_dict(who)
    links = [(l["src"], l["dst"]) for l in schedule["links"]]
    if src is not None:
        if (src, dst) not in set(links):
            raise ApiError(404, "not_found", f"no link {src}->{dst} in the schedule")
        links = [(src, dst)]
    try:
        gcls = port_gcls(schedule, links)
    except GCLError as e:                      # the controller's own schedule: never bad input
        raise RuntimeError(f"schedule: {e}") from e
    names = device_names(links)
    out: dict[str, Any] = {"format": format, "cycle_ns": schedule["cycle_ns"], "slot_ns": schedule["slot_ns"]}
    if format == "json":
        out["gcls"] = [g.to_dict() for g in gcls]
    elif format == "yang":
        by_bridge: dict[str, list] = {}
        for g in gcls:
            by_bridge.setdefault(g.src, []).append(g)
        try:
            out["bridges"] = {b: bridge_instance(gs, names, base_time_ns=base_time_ns)
                              for b, gs in by_bridge.items()}
        except YangError as e:              # a port the module's types cannot hold
            raise ApiError(409, "rejected", str(e), reason="yang") from None
        out["modules"] = dict(MODULES)
    else:
        capacity = {(l["src"], l["dst"]): l["capacity_bps"] for l in schedule["links"]}
        talkers = talker_ports(schedule) if etf_delta_ns is not None else set()
        ports = []
        for g in gcls:
            port: dict[str, Any] = {"src": g.src, "dst": g.dst, "dev": names[(g.src, g.dst)]}
            try:
                cfg = taprio_config(g, dev=port["dev"], link_bps=capacity[(g.src, g.dst)],
                                    guard_band_bytes=guard_band_bytes, base_time_ns=base_time_ns,
                                    etf_delta_ns=etf_delta_ns if (g.src, g.dst) in talkers else None)
            except TaprioError as e:
                port["error"] = str(e)
            else:
                port["commands"] = cfg.commands()
            ports.append(port)
        out["ports"] = ports
    return out
