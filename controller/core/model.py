"""Value types of the scheduling core: requests, reservations, rejections, tenants.

Pure data with validation; no networkx, no os-ken. ``Reservation.to_dict`` is exactly one entry
of the Schedule JSON contract's ``reservations`` list (``schedules/schedule_json.py``), plus extra fields.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

#: Bytes carried per frame on the wire when a reservation's bytes per period are split into frames.
MTU_BYTES = 1500
#: Default period of bulk flows given only as a bandwidth: 1 ms.
DEFAULT_BULK_PERIOD_NS = 1_000_000
#: Values of ``Request.protection`` (None: one path).
PROTECTION_MODES = (None, "disjoint")
#: Fields of a reservation's ``match`` and the integer range of each integer one.
MATCH_FIELDS: dict[str, tuple[int, int] | None] = {
    "ip_src": None, "ip_dst": None, "ip_proto": (0, 255), "udp_dst": (0, 65535), "tcp_dst": (0, 65535),
    "ip_dscp": (0, 63)}
IP_PROTO_TCP, IP_PROTO_UDP = 6, 17
_MATCH_RANGE_TEXT = {"ip_proto": "an IP protocol", "udp_dst": "a port", "tcp_dst": "a port", "ip_dscp": "DSCP"}


class InvalidRequest(ValueError):
    """A request field is invalid. ``field`` names it; the scheduler's reason is ``invalid:<field>``."""

    def __init__(self, field_name: str, detail: str):
        super().__init__(f"invalid {field_name}: {detail}")
        self.field = field_name
        self.detail = detail


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate_match(match: Any) -> dict[str, Any]:
    """Check a reservation's ``match`` and return it as a plain dict: the one validation of it.

    The REST API (through ``Request.from_dict``), ``dnctl reserve``/``dnctl paths`` and the
    requests file of ``dnctl schedule`` all call this, so they accept and refuse the same matches.
    Known fields only (``MATCH_FIELDS``); ``ip_src``/``ip_dst`` an IPv4 address or network
    ``a.b.c.d[/n]``; integers in range; and only what the data plane can express: ``udp_dst`` needs
    ``ip_proto`` 17 (or none: it implies 17), ``tcp_dst`` needs 6, and the two exclude each other.
    Raises ``InvalidRequest`` whose field is ``match.<name>``.
    """
    if match is None:
        return {}
    if not isinstance(match, dict):
        raise InvalidRequest("match", "must be an object")
    for name, value in match.items():
        if name not in MATCH_FIELDS:
            raise InvalidRequest(f"match.{name}", "unknown field (known: " + ", ".join(MATCH_FIELDS) + ")")
        if value is None:
            continue
        bounds = MATCH_FIELDS[name]
        if bounds is None:
            try:
                if not isinstance(value, str) or len(value) > 18:
                    raise ValueError(value)
                ipaddress.IPv4Network(value, strict=False)
            except ValueError:
                raise InvalidRequest(f"match.{name}", "not an IPv4 address or network a.b.c.d[/n]") from None
        elif not _is_int(value) or not bounds[0] <= value <= bounds[1]:
            raise InvalidRequest(f"match.{name}",
                                 f"{_MATCH_RANGE_TEXT[name]} is {bounds[0]}-{bounds[1]} (an integer)")
    out = {k: v for k, v in match.items() if v is not None}
    proto = out.get("ip_proto")
    if "udp_dst" in out and "tcp_dst" in out:
        raise InvalidRequest("match.tcp_dst", "udp_dst and tcp_dst exclude each other (a packet is UDP or TCP)")
    if "udp_dst" in out and proto not in (None, IP_PROTO_UDP):
        raise InvalidRequest("match.udp_dst", f"needs ip_proto {IP_PROTO_UDP} (UDP), not {proto}")
    if "tcp_dst" in out and proto not in (None, IP_PROTO_TCP):
        raise InvalidRequest("match.tcp_dst", f"needs ip_proto {IP_PROTO_TCP} (TCP), not {proto}")
    return out


@dataclass
class Request:
    """A reservation request (what a tenant asks for).

    Exactly one of ``frame_bytes`` (bytes sent once per period, with ``period_ns``) and
    ``bandwidth_bps`` (a bulk rate, turned into bytes per period of ``period_ns``, default 1 ms) is
    given: both together are refused (``InvalidRequest`` naming both), since one of them would be
    ignored or contradict the other.
    """

    tenant: int
    src: str
    dst: str
    max_latency_ns: int
    period_ns: int | None = None
    frame_bytes: int | None = None
    bandwidth_bps: int | None = None
    max_jitter_ns: int | None = None
    paths: list[list[str]] | None = None
    id: str | None = None
    #: Extra match fields for the data plane (ip/port/dscp), carried through untouched.
    match: dict[str, Any] = field(default_factory=dict)
    #: Service protection: None, or "disjoint" (two link-disjoint paths, frames replicated at the
    #: ingress switch, duplicates eliminated at the listener).
    protection: str | None = None

    @classmethod
    def from_dict(cls, d: Any) -> "Request":
        """Build a request from a JSON object; raise InvalidRequest naming the first bad field."""
        if not isinstance(d, dict):
            raise InvalidRequest("request", "must be a JSON object")
        known = {"tenant", "src", "dst", "max_latency_ns", "period_ns", "frame_bytes", "bandwidth_bps",
                 "max_jitter_ns", "paths", "id", "match", "protection"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InvalidRequest(unknown[0], "unknown field")
        req = cls(
            tenant=d.get("tenant", 0),
            src=d.get("src"),
            dst=d.get("dst"),
            max_latency_ns=d.get("max_latency_ns"),
            period_ns=d.get("period_ns"),
            frame_bytes=d.get("frame_bytes"),
            bandwidth_bps=d.get("bandwidth_bps"),
            max_jitter_ns=d.get("max_jitter_ns"),
            paths=d.get("paths"),
            id=d.get("id"),
            match=d.get("match") or {},
            protection=d.get("protection"),
        )
        req.validate()
        return req

    def validate(self) -> None:
        """Check types and ranges (not topology membership: the scheduler does that); ``match`` is
        normalised on the way (``validate_match``)."""
        if not _is_int(self.tenant) or self.tenant < 0:
            raise InvalidRequest("tenant", "must be a non-negative integer")
        for name in ("src", "dst"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v:
                raise InvalidRequest(name, "must be a node name")
        if self.src == self.dst:
            raise InvalidRequest("dst", "must differ from src")
        if not _is_int(self.max_latency_ns) or not 0 < self.max_latency_ns <= 10**12:
            raise InvalidRequest("max_latency_ns", "must be an integer in (0, 1e12]")
        for name in ("period_ns", "frame_bytes", "bandwidth_bps", "max_jitter_ns"):
            v = getattr(self, name)
            if v is not None and (not _is_int(v) or v <= 0):
                raise InvalidRequest(name, "must be a positive integer")
        if self.frame_bytes is None and self.bandwidth_bps is None:
            raise InvalidRequest("frame_bytes", "give frame_bytes or bandwidth_bps")
        if self.frame_bytes is not None and self.bandwidth_bps is not None:
            raise InvalidRequest("bandwidth_bps", f"frame_bytes ({self.frame_bytes}) and bandwidth_bps "
                                                  f"({self.bandwidth_bps}) exclude each other: give frame_bytes "
                                                  "with period_ns (bytes per period) or bandwidth_bps (a rate), "
                                                  "not both")
        if self.period_ns is None and self.frame_bytes is not None:
            raise InvalidRequest("period_ns", "required with frame_bytes")
        if self.period_ns is not None and not 1_000 <= self.period_ns <= 10**10:
            raise InvalidRequest("period_ns", "must be between 1 us and 10 s")
        if self.bandwidth_bps is not None and self.bandwidth_bps > 10**13:
            raise InvalidRequest("bandwidth_bps", "above 10 Tb/s")
        if self.frame_bytes is not None and self.frame_bytes > 10**9:
            raise InvalidRequest("frame_bytes", "above 1 GB per period")
        if self.id is not None and not valid_id(self.id):
            raise InvalidRequest("id", "must be 1-64 characters of letters, digits, '-', '_' or '.'")
        if self.paths is not None:
            if (not isinstance(self.paths, list) or not self.paths
                    or not all(isinstance(p, list) and len(p) >= 2 and all(isinstance(n, str) for n in p)
                               for p in self.paths)):
                raise InvalidRequest("paths", "must be a non-empty list of node-name lists")
        self.match = validate_match(self.match)   # normalised: fields given as null are left out
        if self.protection not in PROTECTION_MODES:
            raise InvalidRequest("protection", "must be null or \"disjoint\"")

    def effective_period_ns(self) -> int:
        """The period the reservation will use (bulk flows default to 1 ms)."""
        return self.period_ns if self.period_ns is not None else DEFAULT_BULK_PERIOD_NS

    def effective_frame_bytes(self) -> int:
        """Bytes per period: ``frame_bytes``, or ``ceil(bandwidth_bps * period / 8e9)``."""
        if self.frame_bytes is not None:
            return self.frame_bytes
        assert self.bandwidth_bps is not None
        return max(1, -(-self.bandwidth_bps * self.effective_period_ns() // 8_000_000_000))

    def effective_bandwidth_bps(self) -> int:
        """Reserved rate: bytes per period times 8 over the period."""
        return self.effective_frame_bytes() * 8 * 1_000_000_000 // self.effective_period_ns()


@dataclass
class Hop:
    """The slots a reservation holds on one directed link, as indices into the cycle."""

    src: str
    dst: str
    slots: list[int]

    def to_dict(self) -> dict[str, Any]:
        return {"src": self.src, "dst": self.dst, "slots": list(self.slots)}


@dataclass
class Reservation:
    """An admitted request: its path, its slots on every hop, its talker offsets and its bounds."""

    id: str
    tenant: int
    src: str
    dst: str
    period_ns: int
    frame_bytes: int
    bandwidth_bps: int
    max_latency_ns: int
    latency_bound_ns: int
    jitter_bound_ns: int
    path: list[str]
    hops: list[Hop]
    tx_offsets_ns: list[int]
    max_jitter_ns: int | None = None
    match: dict[str, Any] = field(default_factory=dict)
    #: "disjoint" when the request asked for protection (see Request.protection).
    protection: str | None = None
    #: The second, link-disjoint path of a protected reservation and its slots (None when the
    #: reservation is unprotected, or protected but degraded to one path after a failure).
    protection_path: list[str] | None = None
    protection_hops: list[Hop] | None = None
    protection_latency_bound_ns: int | None = None
    #: None while the reservation is carried; "down" when a failure left it without a path
    #: (``status_reason`` says why). Kept in the store so the tenant sees what happened.
    status: str | None = None
    status_reason: str | None = None

    def all_paths(self) -> list[list[str]]:
        """The primary path, then the protection path if any."""
        return [list(self.path)] + ([list(self.protection_path)] if self.protection_path else [])

    def links(self) -> set[tuple[str, str]]:
        """Every directed link the reservation holds slots on (both paths)."""
        return {(a, b) for p in self.all_paths() for a, b in zip(p, p[1:])}

    def to_dict(self) -> dict[str, Any]:
        """One entry of the Schedule JSON contract (plus jitter_bound_ns, max_jitter_ns, match and,
        when set, the protection and status fields)."""
        d = {
            "id": self.id, "tenant": self.tenant, "src": self.src, "dst": self.dst,
            "period_ns": self.period_ns, "frame_bytes": self.frame_bytes, "bandwidth_bps": self.bandwidth_bps,
            "max_latency_ns": self.max_latency_ns, "latency_bound_ns": self.latency_bound_ns,
            "jitter_bound_ns": self.jitter_bound_ns,
            "path": list(self.path), "hops": [h.to_dict() for h in self.hops],
            "tx_offsets_ns": list(self.tx_offsets_ns),
        }
        if self.max_jitter_ns is not None:
            d["max_jitter_ns"] = self.max_jitter_ns
        if self.match:
            d["match"] = dict(self.match)
        if self.protection is not None:
            d["protection"] = self.protection
            d["protection_path"] = list(self.protection_path) if self.protection_path else None
            d["protection_hops"] = [h.to_dict() for h in self.protection_hops] if self.protection_hops else None
            d["protection_latency_bound_ns"] = self.protection_latency_bound_ns
        if self.status is not None:
            d["status"] = self.status
            d["status_reason"] = self.status_reason
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Reservation":
        """Inverse of ``to_dict`` (used by the schedule importer and the store)."""
        return cls(
            id=str(d["id"]), tenant=int(d["tenant"]), src=d["src"], dst=d["dst"],
            period_ns=int(d["period_ns"]), frame_bytes=int(d["frame_bytes"]),
            bandwidth_bps=int(d["bandwidth_bps"]), max_latency_ns=int(d["max_latency_ns"]),
            latency_bound_ns=int(d["latency_bound_ns"]),
            jitter_bound_ns=int(d.get("jitter_bound_ns", 0)),
            path=list(d["path"]),
            hops=[Hop(h["src"], h["dst"], [int(s) for s in h["slots"]]) for h in d["hops"]],
            tx_offsets_ns=[int(t) for t in d["tx_offsets_ns"]],
            max_jitter_ns=d.get("max_jitter_ns"),
            match=dict(d.get("match") or {}),
            protection=d.get("protection"),
            protection_path=list(d["protection_path"]) if d.get("protection_path") else None,
            protection_hops=([Hop(h["src"], h["dst"], [int(s) for s in h["slots"]]) for h in d["protection_hops"]]
                             if d.get("protection_hops") else None),
            protection_latency_bound_ns=(int(d["protection_latency_bound_ns"])
                                         if d.get("protection_latency_bound_ns") is not None else None),
            status=d.get("status"),
            status_reason=d.get("status_reason"),
        )


def valid_id(rid: Any) -> bool:
    """A reservation id: 1-64 letters, digits, ``-_.``, optionally followed by ``@<tenant>``, the
    qualifier the controller adds to an id a tenant chose while another tenant held it (ids are
    scoped per tenant: ``controller.reservations``). Clients may not send the qualified form (the
    API refuses ``@``); the rule accepts it so that a stored qualified id is a valid request id."""
    if not isinstance(rid, str):
        return False
    base, at, tenant = rid.partition("@")
    return (0 < len(base) <= 64 and all(c.isalnum() or c in "-_." for c in base)
            and (not at or (tenant.isdigit() and tenant.isascii() and not tenant.startswith("0")
                            and len(tenant) <= 4)))


@dataclass(frozen=True)
class Rejection:
    """Why a request was not admitted.

    ``reason`` is machine-readable: ``no_path``, ``capacity:<u>-<v>``, ``latency:<bound_ns>``,
    ``jitter:<bound_ns>``, ``quota``, ``invalid:<field>``, ``exists``. ``detail`` is one human line.
    """

    reason: str
    detail: str

    @property
    def code(self) -> str:
        """The reason's kind without its argument (``capacity``, ``latency``, ...)."""
        return self.reason.split(":", 1)[0]


@dataclass
class Tenant:
    """A tenant and its quotas (None means unlimited)."""

    id: int
    name: str
    quota_bps: int | None = None
    max_reservations: int | None = None
