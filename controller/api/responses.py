"""Response models of the REST API v1: what every 2xx answer holds, field by field, with units.

The routes declare them (``response_model=``) so that ``/openapi.json`` describes each answer and
the interactive docs (``/docs``, ``/redoc``) show them. Units are in the names and descriptions:
``_ns`` nanoseconds, ``_bps`` bits per second, ``_bytes`` bytes, ``_s`` seconds.

Declaring a model must never change an answer (the REST contract: add fields, never rename or drop
one), so:

- they are pydantic-validated ``TypedDict``s, not ``BaseModel``s: an answer stays the service's
  dict, key order included, and a key the answer does not have stays absent (``absent(...)``:
  not required, never ``null`` unless its type says so); validating a 4,096-reservation batch
  answer this way costs about a quarter of what building model instances does;
- every one allows extra keys (``allow``): a field the service adds later passes through unchanged
  instead of being filtered out (``tests/test_openapi_responses.py`` fails until it is described
  here);
- numbers that may be integers or fractions (coordinates, km, seconds) are ``Number``, so an
  integer stays an integer.

Error bodies (4xx) are ``controller.api.errors.ErrorBody``, declared per route with
``controller.api.errors.responses``.
"""

# no `from __future__ import annotations`: pydantic and FastAPI read the real types

from typing import Annotated, Any, Literal, Union

from pydantic import ConfigDict, Field, WithJsonSchema, with_config
from typing_extensions import NotRequired, TypedDict     # pydantic needs these on Python < 3.12

#: an integer or a fraction, kept as given (``float`` would turn 150 into 150.0)
Number = Annotated[Union[int, float], WithJsonSchema({"type": "number"})]

#: every response model lets unknown keys through
allow = with_config(ConfigDict(extra="allow"))


def described(tp: Any, description: str) -> Any:
    """A key every answer of the model has."""
    return Annotated[tp, Field(description=description)]


def absent(tp: Any, description: str) -> Any:
    """A key some answers do not have (left out, not ``null``)."""
    return NotRequired[Annotated[tp, Field(description=description)]]


# ----- reservations ---------------------------------------------------------------------------------
@allow
class SlotsCompact(TypedDict):
    """A hop's slots in the compact form (``?slots=compact``): runs within one period, repeated."""

    period_slots: described(int, "slots per period of the reservation (period_ns / slot_ns)")
    repeat: described(int, "how many periods fill the cycle")
    runs: described(list[list[int]], "[first, count] runs of consecutive slot indices within one period; slot "
                                     "k*period_slots + first + i for 0 <= i < count, 0 <= k < repeat")


@allow
class TxOffsetsCompact(TypedDict):
    """``tx_offsets_ns`` in the compact form (``?slots=compact``)."""

    period_ns: described(int, "period of the reservation, ns")
    repeat: described(int, "how many periods fill the cycle")
    offsets_ns: described(list[int], "transmit offsets within one period, ns; offset k*period_ns + o for "
                                     "0 <= k < repeat")


@allow
class Hop(TypedDict):
    """One directed link of a path and the slots held on it."""

    src: described(str, "node the hop leaves")
    dst: described(str, "node the hop reaches")
    slots: absent(list[int], "slot indices held on this link in the current cycle, every occurrence "
                             "(0 <= slot < cycle_ns / slot_ns); absent in the compact form")
    slots_compact: absent(SlotsCompact, "the same slots as runs (only with ?slots=compact)")


@allow
class Match(TypedDict):
    """Extra match fields of the reservation's flow (only those given)."""

    ip_src: absent(str, "IPv4 source address or network (a.b.c.d[/n])")
    ip_dst: absent(str, "IPv4 destination address or network (a.b.c.d[/n])")
    ip_proto: absent(int, "IP protocol number (6 TCP, 17 UDP)")
    udp_dst: absent(int, "UDP destination port")
    tcp_dst: absent(int, "TCP destination port")
    ip_dscp: absent(int, "DSCP value (0-63)")


@allow
class ReservationWarning(TypedDict):
    """Something the caller should know about an admitted reservation."""

    code: described(str, "machine code: installs_nothing (its slots are held but no packet can use them)")
    detail: described(str, "one human-readable line")


@allow
class ScheduleEntry(TypedDict):
    """A reservation as the Schedule JSON contract holds it."""

    id: described(str, "reservation id: given in the request, or r<N> generated (never reused)")
    tenant: described(int, "tenant id (1-4094, also the tenant's VLAN id)")
    src: described(str, "source node")
    dst: described(str, "destination node")
    period_ns: described(int, "period of the flow, ns: frame_bytes are sent once per period")
    frame_bytes: described(int, "bytes sent per period, bytes")
    bandwidth_bps: described(int, "reserved rate, bit/s (frame_bytes * 8 per period)")
    max_latency_ns: described(int, "requested end-to-end latency bound, ns")
    latency_bound_ns: described(int, "guaranteed latency, ns: from the talker's transmit offset to the last bit "
                                     "at the listener")
    jitter_bound_ns: described(int, "guaranteed jitter (delay variation), ns")
    path: described(list[str], "nodes of the primary path, source to destination")
    hops: described(list[Hop], "the path's directed links with the slots held on each")
    tx_offsets_ns: absent(list[int], "times the talker sends, ns from the start of the cycle (one per period); "
                                     "absent in the compact form")
    max_jitter_ns: absent(int, "requested jitter bound, ns (only when requested)")
    match: absent(Match, "extra match fields of the flow (only when given)")
    protection: absent(str, '"disjoint" when protection was requested')
    protection_path: absent(Union[list[str], None], "nodes of the link-disjoint protection path (with "
                                                    "protection; null when degraded to one path)")
    protection_hops: absent(Union[list[Hop], None], "the protection path's links and slots (with protection)")
    protection_latency_bound_ns: absent(Union[int, None], "guaranteed latency on the protection path, ns (with "
                                                          "protection)")
    status: absent(str, '"down" (a link failure left it without a path) or "unrestored" (not put back at start); '
                        "absent while it is on the network")
    status_reason: absent(Union[str, None], "why it is down or unrestored (with status)")


@allow
class Reservation(ScheduleEntry):
    """A reservation as the API answers it: the Schedule JSON entry, the current cycle and slot, warnings."""

    cycle_ns: described(int, "current cycle (the hyperperiod of the reservations' periods), ns; slot indices and "
                              "tx offsets are within it")
    slot_ns: described(int, "duration of one slot, ns")
    warnings: described(list[ReservationWarning], "empty when all is well; installs_nothing when no packet can "
                                                  "use it")
    tx_offsets_compact: absent(TxOffsetsCompact, "tx_offsets_ns as runs (only with ?slots=compact)")


@allow
class ReservationList(TypedDict):
    """``GET /v1/reservations``."""

    reservations: described(list[Reservation], "the reservations, ordered by id")
    next_cursor: absent(Union[str, None], "paged listings only (limit or cursor given): pass it back as cursor for "
                                          "the next page; null on the last page")


# the answer has always begun with "admissible": the functional form puts it first
WhatIfAdmissible = allow(TypedDict("WhatIfAdmissible", {
    "admissible": described(Literal[True], "true: the POST would admit it now"),
    **{k: v for k, v in Reservation.__annotations__.items() if k != "id"},
    "tenant": described(Union[int, None], "tenant id; null when the admin asked about the network alone"),
}))
WhatIfAdmissible.__doc__ = "A what-if that would be admitted: the reservation the POST would give, without its id."


@allow
class WhatIfRefused(TypedDict):
    """A what-if that would be refused (the POST's 409)."""

    admissible: described(Literal[False], "false: the POST would refuse it now")
    reason: described(str, "machine reason, as the POST's 409: no_path, capacity:<u>-<v>, latency:<best bound ns>, "
                           "quota, exists, overlap:<id>, ...")
    detail: described(str, "one human-readable line")


#: ``GET/POST /v1/paths``
WhatIf = Union[WhatIfAdmissible, WhatIfRefused]


@allow
class BatchRejection(TypedDict):
    """A member of a non-atomic batch that was refused."""

    index: described(int, "position of the member in the request's reservations (0-based)")
    error: described(str, "rejected (not admissible) or invalid (bad input)")
    detail: described(str, "one human-readable line")
    field: absent(str, "the offending field (invalid only)")
    reason: described(str, "machine reason, as a single POST gives it (invalid:<field> for bad input)")


@allow
class BatchAnswer(TypedDict):
    """``POST /v1/reservations/batch`` (201)."""

    atomic: described(bool, "as requested: true, all or none")
    reservations: described(list[Reservation], "the admitted reservations, in request order")
    rejections: absent(list[BatchRejection], "atomic false only: the refused members and why")


@allow
class Deleted(TypedDict):
    """``POST /v1/reservations/delete``."""

    deleted: described(list[str], "ids of the released reservations, in the order given")


# ----- tenants ----------------------------------------------------------------------------------------
@allow
class Tenant(TypedDict):
    """A tenant with its quotas and current usage."""

    id: described(int, "tenant id (1-4094, also its VLAN id)")
    name: described(str, "tenant name")
    quota_bps: described(Union[int, None], "most bandwidth its reservations may hold, bit/s; null: unlimited")
    max_reservations: described(Union[int, None], "most reservations it may hold; null: unlimited")
    reserved_bps: described(int, "bandwidth its reservations hold now, bit/s")
    reservations: described(int, "reservations it holds now")


@allow
class TenantList(TypedDict):
    """``GET /v1/tenants``."""

    tenants: described(list[Tenant], "every tenant, by id")


@allow
class TenantCreated(TypedDict):
    """``POST /v1/tenants`` (201): the new tenant and its token (shown once)."""

    id: described(int, "tenant id (1-4094, also its VLAN id)")
    name: described(str, "tenant name")
    quota_bps: described(Union[int, None], "most bandwidth its reservations may hold, bit/s; null: unlimited")
    max_reservations: described(Union[int, None], "most reservations it may hold; null: unlimited")
    token: described(str, "the tenant's bearer token: shown once, only its hash is kept")


@allow
class TenantMe(Tenant):
    """``GET /v1/tenants/me``: the calling tenant, with what is left."""

    available_bps: described(Union[int, None], "bandwidth it may still reserve, bit/s; null: unlimited")
    reservations_left: described(Union[int, None], "reservations it may still make; null: unlimited")


@allow
class TenantDeleted(TypedDict):
    """``DELETE /v1/tenants/{id}``."""

    id: described(int, "the deleted tenant's id")
    name: described(str, "the deleted tenant's name")
    released: described(list[str], "ids of its reservations released with it")


@allow
class TokenRotated(TypedDict):
    """``POST /v1/tenants/{id}/token``."""

    id: described(int, "tenant id")
    token: described(str, "the new bearer token: shown once; the old one no longer works")


# ----- network ------------------------------------------------------------------------------------------
@allow
class Node(TypedDict):
    """A node (switch site) of the topology."""

    name: described(str, "node name")
    lat: described(Union[Number, None], "latitude, degrees (null: unknown)")
    lon: described(Union[Number, None], "longitude, degrees (null: unknown)")
    role: described(str, "free-form role (may be empty)")


@allow
class TopologyLink(TypedDict):
    """A physical link of the topology (both directions)."""

    src: described(str, "one end")
    dst: described(str, "the other end")
    km: described(Number, "length, km")
    capacity_bps: described(int, "capacity of each direction, bit/s")
    propagation_ns: described(int, "propagation delay, ns")
    state: described(str, '"up", or "down" after a reported failure')


@allow
class Host(TypedDict):
    """A tenant host attached to a switch (the host plan)."""

    name: described(str, "host name")
    tenant: described(int, "tenant id the host belongs to")
    switch: described(str, "node the host is attached to")
    dpid: described(int, "OpenFlow datapath id of that switch")
    port: described(int, "switch port of the host")
    mac: described(str, "MAC address")
    ip: described(str, "IPv4 address")
    prefix_len: described(int, "IPv4 prefix length, bits")


@allow
class LinkCheck(TypedDict):
    """The LLDP check of the topology's links against what the switches see."""

    expected: described(int, "directed links the topology has")
    seen: described(int, "of those, how many LLDP saw")
    missing: described(list[list[str]], "[u, v] links of the topology LLDP did not see")
    unexpected: described(list[list[str]], "[u, v] links LLDP saw that the topology lacks")
    checked: described(bool, "false until the switches have reported")
    missing_ports: absent(list[list[list[int]]], "the missing links as [[dpid, port], [dpid, port]] (once checked)")
    unexpected_ports: absent(list[list[list[int]]], "the unexpected links as [[dpid, port], [dpid, port]] (once "
                                                    "checked)")
    ok: absent(bool, "true when nothing is missing or unexpected (once checked)")


@allow
class Topology(TypedDict):
    """``GET /v1/topology``: the native topology JSON, the host plan and the link state."""

    name: described(str, "topology name")
    version: described(int, "version of the topology JSON format")
    nodes: described(list[Node], "the nodes")
    links: described(list[TopologyLink], "the physical links")
    hosts: described(list[Host], "the host plan (a tenant token: its own hosts only)")
    link_check: described(LinkCheck, "LLDP check of the links")
    links_down: described(list[list[str]], "[u, v] links currently reported down")


@allow
class ScheduleLink(TypedDict):
    """A directed link of the Schedule JSON."""

    src: described(str, "node the link leaves")
    dst: described(str, "node the link reaches")
    capacity_bps: described(int, "capacity, bit/s")
    propagation_ns: described(int, "propagation delay, ns")


@allow
class Schedule(TypedDict):
    """``GET /v1/schedule``: the Schedule JSON contract (slots always expanded)."""

    version: described(int, "version of the Schedule JSON contract")
    cycle_ns: described(int, "cycle (hyperperiod), ns")
    slot_ns: described(int, "duration of one slot, ns")
    topology: described(str, "topology name")
    links: described(list[ScheduleLink], "every directed link")
    reservations: described(list[ScheduleEntry], "the reservations by id (a tenant token: its own)")


# ----- status ---------------------------------------------------------------------------------------------
@allow
class ClusterHealth(TypedDict):
    """This controller's place in a cluster on etcd (``--store etcd://``; ``controller.ha``)."""

    role: described(Literal["leader", "follower"], "leader: admits and programs; follower: serves reads, "
                                                   "answers writes with 307 to the leader")
    term: described(int, "the leadership this controller holds (the leader key's etcd revision; the "
                         "OpenFlow generation id); 0 on a follower")
    identity: described(str, "this controller's advertised REST URL")
    leader: described(Union[str, None], "the leader's REST URL (null: none known now)")
    etcd: described(Literal["ok", "unreachable"], "whether the last call to etcd answered")
    view_revision: described(int, "the etcd revision of the state this controller serves (a follower: its "
                                  "last reload; the leader: its last write)")
    takeovers: described(int, "times this process became leader")


@allow
class Health(TypedDict):
    """``GET /healthz`` (200 whenever the process serves)."""

    status: described(str, '"ok", or "degraded" with reasons')
    reasons: described(list[str], "one line per reason for degraded (empty when ok)")
    switches_connected: described(int, "switches connected over OpenFlow")
    reservations: described(int, "reservations on the network")
    tenants: described(int, "tenants")
    unrestored: described(int, "stored reservations not put back at start")
    down: described(int, "reservations down after link failures")
    uptime_s: described(Number, "time since the controller started, s")
    cluster: absent(ClusterHealth, "present when the controller runs in a cluster (--store etcd://)")


@allow
class Event(TypedDict):
    """One audit log entry."""

    seq: described(int, "sequence number (increasing)")
    ts: described(Number, "time, s since the Unix epoch")
    actor: described(str, "admin, tenant:<id> or system")
    tenant: described(Union[int, None], "tenant concerned (null: none)")
    action: described(str, "what was attempted: reserve, release, modify, create_tenant, ...")
    request: described(Any, "the request as received (tokens redacted)")
    outcome: described(Any, "the answer or its reason")
    status: described(str, "ok, or the refusal's error code")


@allow
class Events(TypedDict):
    """``GET /v1/events``."""

    events: described(list[Event], "entries after since, oldest first")
    next: described(int, "the since of the next poll (the last seq, or since when none)")


#: ``GET /metrics`` answers the Prometheus text, not JSON; its 413 is an ``ErrorBody`` in JSON all the same
#: (``errors.responses`` would label it with the route's text/plain media type)
METRICS_RESPONSES: dict[Union[int, str], dict[str, Any]] = {
    200: {"description": "Prometheus text exposition format",
          "content": {"text/plain": {"schema": {"type": "string",
                                                "description": "counters, gauges and histograms, one sample a line "
                                                               "(docs/rest-api.md lists the series)"}}}},
    413: {"description": "Request body too large",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}},
}


__all__ = ["METRICS_RESPONSES", "BatchAnswer", "BatchRejection", "Deleted", "Event", "Events", "Health", "Hop", "Host",
           "LinkCheck", "Match", "Node", "Number", "Reservation", "ReservationList", "ReservationWarning", "Schedule",
           "ScheduleEntry", "ScheduleLink", "SlotsCompact", "Tenant", "TenantCreated", "TenantDeleted", "TenantList",
           "TenantMe", "TokenRotated", "Topology", "TopologyLink", "TxOffsetsCompact", "WhatIf", "WhatIfAdmissible",
           "WhatIfRefused", "absent", "allow", "described"]
