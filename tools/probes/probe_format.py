"""The probe payload carried in UDP by the talker, and the send plan derived from a reservation.

Payload layout (network byte order, 48 bytes of fixed header, then the reservation id, then
zero padding up to the datagram size)::

    off size field
      0   4  magic            0x444E5052 ("DNPR")
      4   1  version          1
      5   1  flags            bit 0: sent late (pacing error above the talker's tolerance)
      6   2  header_len       48 + len(reservation id)
      8   4  flow_id          flow_id_of(reservation id): first 4 bytes of blake2b(id)
     12   8  seq              0, 1, 2, ... per flow (one per datagram)
     20   8  tx_ns            CLOCK_REALTIME ns just before sendto()
     28   8  intended_ns      CLOCK_REALTIME ns the schedule asked for (cycle start + offset)
     36   4  tx_offset_ns     the reservation's tx offset (within the cycle) this datagram belongs to
     40   2  frag_index       datagram index within this period's frame_bytes (0-based)
     42   2  frag_count       datagrams per period instance
     44   4  cycle_index      (intended_ns - epoch) // cycle_ns, modulo 2**32
     48   n  reservation id   UTF-8, n = header_len - 48 (at most 64)

Why CLOCK_REALTIME: a listener on the same machine (Mininet hosts share the kernel clock) gets
one-way latency as (kernel receive timestamp - tx_ns) with no clock synchronisation. On separate
machines the figure is only as good as their PTP/NTP sync.

The send plan (``send_plan``) turns a reservation and the schedule's ``cycle_ns``/``slot_ns`` into
"which datagrams, of which size, at which offsets of the cycle". It lives here because it defines
what ``intended_ns``/``tx_offset_ns`` mean, and both the talker and the analyzer need it.

Cycle epoch: cycle ``k`` starts at ``epoch_ns + k * cycle_ns`` of CLOCK_REALTIME, with
``epoch_ns`` from the schedule metadata (default 0: cycles aligned to multiples of ``cycle_ns``
since the Unix epoch), so every talker on the machine agrees on slot boundaries without talking.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping

from controller.dataplane.frames import IPV4, UDP, Layout

MAGIC = 0x444E5052
VERSION = 1
#: the fixed probe header (the table above), declared once: ``pack``/``unpack`` here, the analyzer's
#: vectorised reader and its synthetic writer take their dtypes and offsets from it
PROBE_HEADER = Layout("probe", [("magic", "I"), ("version", "B"), ("flags", "B"), ("header_len", "H"),
                                ("flow_id", "I"), ("seq", "Q"), ("tx_ns", "Q"), ("intended_ns", "Q"),
                                ("tx_offset_ns", "I"), ("frag_index", "H"), ("frag_count", "H"),
                                ("cycle_index", "I")],
                      magic=MAGIC, version=VERSION)
FIXED_LEN = PROBE_HEADER.size  # 48
MAX_ID_LEN = 64
FLAG_LATE = 0x01

#: IPv4 (20) + UDP (8) header bytes added to the payload on the wire (Ethernet 14 not counted).
IP_UDP_OVERHEAD = IPV4.size + UDP.size
#: Largest IPv4 packet the talker sends (the reservation's bytes per period are split into these).
MTU_BYTES = 1500
#: Default UDP destination port of probes.
DEFAULT_PORT = 47000

assert FIXED_LEN == 48 and IP_UDP_OVERHEAD == 28


class ProbeFormatError(ValueError):
    """Bytes that are not a probe payload (bad magic, version or length)."""


def flow_id_of(reservation_id: str) -> int:
    """32-bit flow id of a reservation id: the first 4 bytes of its blake2b digest, big-endian."""
    return int.from_bytes(hashlib.blake2b(reservation_id.encode(), digest_size=4).digest(), "big")


@dataclass(frozen=True)
class Probe:
    """One decoded probe header."""

    flow_id: int
    seq: int
    tx_ns: int
    intended_ns: int
    tx_offset_ns: int
    frag_index: int = 0
    frag_count: int = 1
    cycle_index: int = 0
    reservation_id: str = ""
    flags: int = 0
    version: int = VERSION

    @property
    def header_len(self) -> int:
        return FIXED_LEN + len(self.reservation_id.encode())


def header_len(reservation_id: str) -> int:
    """Bytes of probe header for this reservation id (the smallest payload a probe can have)."""
    return FIXED_LEN + len(reservation_id.encode())


def pack(p: Probe, size: int | None = None) -> bytes:
    """Encode ``p``; pad with zeros to ``size`` bytes when given (never truncates the header)."""
    rid = p.reservation_id.encode()
    if len(rid) > MAX_ID_LEN:
        raise ProbeFormatError(f"reservation id longer than {MAX_ID_LEN} bytes")
    hl = FIXED_LEN + len(rid)
    head = PROBE_HEADER.pack(version=p.version, flags=p.flags, header_len=hl, flow_id=p.flow_id & 0xFFFFFFFF,
                             seq=p.seq, tx_ns=p.tx_ns, intended_ns=p.intended_ns,
                             tx_offset_ns=p.tx_offset_ns & 0xFFFFFFFF, frag_index=p.frag_index,
                             frag_count=p.frag_count, cycle_index=p.cycle_index & 0xFFFFFFFF) + rid
    if size is not None and size > hl:
        head += bytes(size - hl)
    return head


def unpack(data: bytes | memoryview) -> Probe:
    """Decode a probe payload; ProbeFormatError if it is not one."""
    if len(data) < FIXED_LEN:
        raise ProbeFormatError(f"payload of {len(data)} bytes is shorter than a probe header")
    h = PROBE_HEADER.unpack(data)
    if h["magic"] != MAGIC:
        raise ProbeFormatError(f"bad magic 0x{h['magic']:08x}")
    if h["version"] != VERSION:
        raise ProbeFormatError(f"unsupported probe version {h['version']}")
    hl = h["header_len"]
    if not FIXED_LEN <= hl <= FIXED_LEN + MAX_ID_LEN or hl > len(data):
        raise ProbeFormatError(f"bad header length {hl}")
    rid = bytes(data[FIXED_LEN:hl]).decode("utf-8", "replace")
    return Probe(h["flow_id"], h["seq"], h["tx_ns"], h["intended_ns"], h["tx_offset_ns"], h["frag_index"],
                 h["frag_count"], h["cycle_index"], rid, h["flags"], h["version"])


# ---------------------------------------------------------------------------------------------
# send plan


@dataclass(frozen=True)
class Instance:
    """One period instance within the cycle: its tx offset and slot window on the first hop."""

    offset_ns: int
    window_ns: int


@dataclass(frozen=True)
class SendPlan:
    """What the talker sends every cycle.

    ``payload_sizes``: UDP payload bytes of the datagrams of one instance (IP size = +28);
    ``instances``: the tx offsets within the cycle with their slot windows.
    """

    reservation_id: str
    flow_id: int
    cycle_ns: int
    slot_ns: int
    epoch_ns: int
    period_ns: int
    instances: tuple[Instance, ...]
    payload_sizes: tuple[int, ...]

    @property
    def datagrams_per_cycle(self) -> int:
        return len(self.instances) * len(self.payload_sizes)

    @property
    def ip_bytes_per_instance(self) -> int:
        return sum(s + IP_UDP_OVERHEAD for s in self.payload_sizes)

    @property
    def rate_bps(self) -> float:
        """Bits/s of IP packets this plan sends."""
        return self.ip_bytes_per_instance * len(self.instances) * 8e9 / self.cycle_ns

    def intended_offsets(self) -> list[tuple[int, int, int]]:
        """(offset in cycle, instance tx offset, fragment index) of every datagram of a cycle.

        The datagrams of an instance are spread evenly over its slot window.
        """
        out = []
        n = len(self.payload_sizes)
        for inst in self.instances:
            for i in range(n):
                out.append((inst.offset_ns + i * inst.window_ns // n, inst.offset_ns, i))
        return out


def split_bytes(ip_bytes: int, reservation_id: str, mtu: int = MTU_BYTES) -> list[int]:
    """UDP payload sizes carrying ``ip_bytes`` of IP packets per period in datagrams of <= ``mtu``.

    Each datagram carries at least a probe header, so tiny frames are rounded up (and said so by
    the talker's byte count, never hidden).
    """
    smallest = header_len(reservation_id)
    sizes = []
    left = max(int(ip_bytes), smallest + IP_UDP_OVERHEAD)
    while left > 0:
        ip = min(left, mtu)
        if left - ip and left - ip < smallest + IP_UDP_OVERHEAD:
            ip = left - (smallest + IP_UDP_OVERHEAD)  # leave room for a last datagram with a header
        sizes.append(max(ip - IP_UDP_OVERHEAD, smallest))
        left -= ip
    return sizes


def _get(d: Any, name: str, default: Any = None) -> Any:
    if isinstance(d, Mapping):
        return d.get(name, default)
    return getattr(d, name, default)


def instances_of(reservation: Mapping[str, Any], cycle_ns: int, slot_ns: int) -> list[Instance]:
    """The reservation's period instances in one cycle, with their first-hop slot windows.

    ``tx_offsets_ns`` normally lists one offset per period in the cycle; a single offset with a
    period shorter than the cycle is repeated every period. The window of an instance is the run
    of consecutive first-hop slots starting at the offset's slot (one slot if none is listed).
    """
    period = int(_get(reservation, "period_ns") or cycle_ns)
    offsets = sorted(int(o) for o in (_get(reservation, "tx_offsets_ns") or [0]))
    per_cycle = max(1, cycle_ns // period) if period <= cycle_ns else 1
    if len(offsets) == 1 and per_cycle > 1:
        offsets = [offsets[0] + k * period for k in range(per_cycle) if offsets[0] + k * period < cycle_ns]
    hops = _get(reservation, "hops") or []
    first = set()
    if hops:
        h0 = hops[0]
        first = {int(s) for s in _get(h0, "slots", [])}
    out = []
    for o in offsets:
        s = o // slot_ns if slot_ns else 0
        n = 0
        while s + n in first:
            n += 1
        out.append(Instance(o, max(1, n) * slot_ns))
    return out


def send_plan(reservation: Mapping[str, Any], schedule_meta: Mapping[str, Any],
              bytes_per_period: int | None = None, mtu: int = MTU_BYTES) -> SendPlan:
    """The talker's per-cycle plan for ``reservation`` under ``schedule_meta`` (cycle_ns, slot_ns).

    ``bytes_per_period`` (IP bytes) overrides the reservation's ``frame_bytes`` (used by the
    deliberately misbehaving ``--rate``).
    """
    rid = str(_get(reservation, "id"))
    cycle_ns = int(_get(schedule_meta, "cycle_ns") or _get(reservation, "cycle_ns") or _get(reservation, "period_ns"))
    slot_ns = int(_get(schedule_meta, "slot_ns") or _get(reservation, "slot_ns") or cycle_ns)
    if cycle_ns <= 0 or slot_ns <= 0:
        raise ValueError("cycle_ns and slot_ns must be positive")
    epoch = int(_get(schedule_meta, "epoch_ns", 0) or 0)
    period = int(_get(reservation, "period_ns") or cycle_ns)
    fb = int(bytes_per_period if bytes_per_period is not None else _get(reservation, "frame_bytes"))
    return SendPlan(rid, flow_id_of(rid), cycle_ns, slot_ns, epoch, period,
                    tuple(instances_of(reservation, cycle_ns, slot_ns)), tuple(split_bytes(fb, rid, mtu)))
