"""Request bodies of the REST API: pydantic models that forbid unknown fields.

Ranges here are the API's first line (422 naming the field); the service checks again what only
it can (node names, quotas, the tenant a token may act for).
"""

# no `from __future__ import annotations`: pydantic must see the real types of the local aliases below

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from controller.core.model import MATCH_FIELDS


def _int(lo: int, hi: int, *, gt: bool = False):
    return Annotated[int, Field(strict=True, gt=lo, le=hi) if gt else Field(strict=True, ge=lo, le=hi)]


NodeName = Annotated[str, Field(min_length=1, max_length=128)]


def _match_int(name: str):
    lo, hi = MATCH_FIELDS[name]
    return _int(lo, hi)


class MatchBody(BaseModel):
    """Extra match fields of a reservation's flow (carried to the data plane).

    Types and ranges here (from ``controller.core.model.MATCH_FIELDS``) describe the body in the
    OpenAPI document; the rule itself (IPv4 syntax, ``udp_dst`` needs ip_proto 17 or none,
    ``tcp_dst`` 6, not both) is ``controller.core.model.validate_match``, the one the CLI and the
    requests file use too: its refusals are 422s naming ``match.<field>``.
    """

    model_config = ConfigDict(extra="forbid")
    ip_src: str | None = Field(None, max_length=18, description="IPv4 address or network (a.b.c.d[/n])")
    ip_dst: str | None = Field(None, max_length=18, description="IPv4 address or network (a.b.c.d[/n])")
    ip_proto: _match_int("ip_proto") | None = Field(None, description="IP protocol (6 TCP, 17 UDP, ...)")
    udp_dst: _match_int("udp_dst") | None = Field(None, description="UDP destination port (implies ip_proto 17)")
    tcp_dst: _match_int("tcp_dst") | None = Field(None, description="TCP destination port (implies ip_proto 6)")
    ip_dscp: _match_int("ip_dscp") | None = None


class ReservationBody(BaseModel):
    """POST /v1/reservations (and POST /v1/paths, the what-if). Give frame_bytes with period_ns, or
    bandwidth_bps (optionally with period_ns): both rates together are a 422 naming both."""

    model_config = ConfigDict(extra="forbid")
    tenant: _int(1, 4094) | None = Field(None, description="required with the admin token; a tenant's own id or omitted")
    src: NodeName
    dst: NodeName
    max_latency_ns: _int(0, 10**12, gt=True)
    period_ns: _int(1_000, 10**10) | None = None
    frame_bytes: _int(0, 10**9, gt=True) | None = None
    bandwidth_bps: _int(0, 10**13, gt=True) | None = None
    max_jitter_ns: _int(0, 10**12, gt=True) | None = None
    paths: Annotated[list[Annotated[list[NodeName], Field(min_length=2, max_length=256)]],
                     Field(min_length=1, max_length=16)] | None = None
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")] | None = None
    match: MatchBody | None = None
    protection: Literal["disjoint"] | None = Field(
        None, description='"disjoint": a second, link-disjoint path with its own slots; frames are replicated '
                          "at the ingress switch and duplicates eliminated at the listener")


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=64)]
    quota_bps: _int(0, 10**15) | None = None
    max_reservations: _int(0, 10**7) | None = None


class TenantPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    quota_bps: _int(0, 10**15) | None = None
    max_reservations: _int(0, 10**7) | None = None
