"""Pcap analyzer: checks captured probes against their reservations (pure: numpy only).

``analyze(pcap_paths, reservations, schedule_meta)`` reads receiver-side captures, finds the
probe datagrams (``tools.probes.probe_format``) and, per reservation, counts loss, duplicates and
reordering, measures one-way latency (kernel receive timestamp minus the tx timestamp carried in
the payload), jitter, the achieved rate and slot conformance, and turns each figure into a
PASS/FAIL check against the reservation's bounds. Every check is defined in docs/verification.md.

Measured vs modeled latency: the emulation has no netem, so emulated links add ~no propagation.
The report keeps ``measured`` (from packets) and ``modeled_propagation_ns`` (sum of the schedule
links' ``propagation_ns`` along the path) apart; ``combined_ns`` (measured + modeled
propagation) is reported only when propagation was not emulated, and is labelled as such.

Speed: records are walked with ``struct.unpack_from`` (one call per packet), then all header
fields are sliced out with numpy fancy indexing (no per-packet dissection) at the offsets of the
layouts declared once in ``controller.dataplane.frames`` and ``probe_format.PROBE_HEADER``. ``python -m
tools.probes.analyzer --bench 1000000`` writes a synthetic pcap and prints packets/s.

Verdicts without fudge: a latency, jitter, tx-slot or arrival check allows the bound the
controller computed plus the platform's noise floor measured in the same run
(``Thresholds.noise_floor_ns``, from a reference flow: ``noise_floor``) and nothing else; a check
whose noise floor exceeds its bound is ``not_checkable`` (never a pass). Every check carries
``status`` (``pass``/``fail``/``not_checkable``) beside its ``pass`` boolean; a flow passes when no
check fails and lists what it could not check (``not_checkable``). The rate check wants what the
schedule promises in each window (``promised_window_bps``).

``count_leaks`` is the isolation audit's hook: given per-host-port captures and each port's
tenant, it counts frames whose source (MAC, else IPv4 address) belongs to another tenant.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import struct
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from controller.dataplane.frames import (ARP, ETH_TYPE_ARP, ETH_TYPE_IPV4, ETH_TYPE_IPV6, ETHERNET, IP_PROTO_UDP,
                                         IPV4, UDP, VLAN_TAG, VLAN_TPIDS, ether, ipv4, udp)
from tools.probes.probe_format import (DEFAULT_PORT, FIXED_LEN, IP_UDP_OVERHEAD, MAGIC, PROBE_HEADER, Probe,
                                       flow_id_of, instances_of, pack, send_plan, split_bytes)

# ---------------------------------------------------------------------------------------------
# reading pcap / pcapng

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = (101, 12, 14, 228)
LINKTYPE_SLL = 113
LINKTYPE_SLL2 = 276
_PAD = 256  # zero bytes appended so fancy indexing never runs off the buffer


class PcapError(ValueError):
    """A file that is not a readable pcap/pcapng capture."""


@dataclass
class Frames:
    """All records of one capture file: the raw bytes and, per record, where and when."""

    path: str
    buf: np.ndarray        # uint8 view of the whole file (+ padding)
    ts_ns: np.ndarray      # int64 receive timestamps (ns since the Unix epoch)
    off: np.ndarray        # int64 offset of the link-layer frame in buf
    caplen: np.ndarray     # int64 captured bytes
    origlen: np.ndarray    # int64 bytes on the wire
    linktype: np.ndarray   # int32 per record
    ts_resolution_ns: float = 1.0

    def __len__(self) -> int:
        return len(self.ts_ns)


def read_frames(path: str) -> Frames:
    """Read a classic pcap (usec or nsec) or pcapng file into ``Frames``."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 24 and raw[:4] != b"\x0a\x0d\x0d\x0a":
        raise PcapError(f"{path}: not a pcap file (too short)")
    magic = raw[:4]
    data = raw + bytes(_PAD)
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        return _read_classic(path, data, len(raw))
    if magic == b"\x0a\x0d\x0d\x0a":
        return _read_ng(path, data, len(raw))
    raise PcapError(f"{path}: not a pcap or pcapng file (magic {magic.hex()})")


def _read_classic(path: str, data: bytes, n: int) -> Frames:
    le = data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")
    nano = data[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    e = "<" if le else ">"
    linktype = struct.unpack_from(e + "I", data, 20)[0] & 0x0FFFFFFF
    rec = struct.Struct(e + "IIII")
    unpack = rec.unpack_from
    secs, fracs, offs, caps, origs = [], [], [], [], []
    off = 24
    while off + 16 <= n:
        s, fr, incl, orig = unpack(data, off)
        if off + 16 + incl > n:
            break  # truncated last record (capture killed mid-write)
        secs.append(s)
        fracs.append(fr)
        offs.append(off + 16)
        caps.append(incl)
        origs.append(orig)
        off += 16 + incl
    ts = np.array(secs, dtype=np.int64) * 1_000_000_000 + np.array(fracs, dtype=np.int64) * (1 if nano else 1000)
    cnt = len(offs)
    return Frames(path, np.frombuffer(data, dtype=np.uint8), ts, np.array(offs, dtype=np.int64),
                  np.array(caps, dtype=np.int64), np.array(origs, dtype=np.int64),
                  np.full(cnt, linktype, dtype=np.int32), 1.0 if nano else 1000.0)


def _read_ng(path: str, data: bytes, n: int) -> Frames:
    e = "<"
    ifaces: list[tuple[int, float]] = []  # (linktype, ns per tick)
    ts, offs, caps, origs, lts = [], [], [], [], []
    off = 0
    best_res = 1e9
    while off + 12 <= n:
        btype, blen = struct.unpack_from(e + "II", data, off)
        if btype == 0x0A0D0D0A:
            bom = data[off + 8:off + 12]
            e = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            blen = struct.unpack_from(e + "I", data, off + 4)[0]
            ifaces = []
        if blen < 12 or off + blen > n:
            break
        if btype == 1:  # interface description
            lt = struct.unpack_from(e + "H", data, off + 8)[0]
            res_ns = 1000.0
            o = off + 16
            end = off + blen - 4
            while o + 4 <= end:
                code, olen = struct.unpack_from(e + "HH", data, o)
                if code == 0:
                    break
                if code == 9 and olen >= 1:
                    v = data[o + 4]
                    res_ns = 1e9 * (2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v)
                o += 4 + ((olen + 3) & ~3)
            ifaces.append((lt, res_ns))
            best_res = min(best_res, res_ns)
        elif btype == 6:  # enhanced packet
            iid, hi, lo, incl, orig = struct.unpack_from(e + "IIIII", data, off + 8)
            lt, res_ns = ifaces[iid] if iid < len(ifaces) else (LINKTYPE_ETHERNET, 1000.0)
            ticks = (hi << 32) | lo
            ts.append(ticks if res_ns == 1.0 else int(round(ticks * res_ns)))
            offs.append(off + 28)
            caps.append(incl)
            origs.append(orig)
            lts.append(lt)
        off += blen
    return Frames(path, np.frombuffer(data, dtype=np.uint8), np.array(ts, dtype=np.int64),
                  np.array(offs, dtype=np.int64), np.array(caps, dtype=np.int64),
                  np.array(origs, dtype=np.int64), np.array(lts, dtype=np.int32),
                  best_res if best_res < 1e9 else 1000.0)


def _be16(b: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return (b[idx].astype(np.int64) << 8) | b[idx + 1]


def _be32(b: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return ((b[idx].astype(np.int64) << 24) | (b[idx + 1].astype(np.int64) << 16)
            | (b[idx + 2].astype(np.int64) << 8) | b[idx + 3])


def l3_offsets(fr: Frames) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offset of the network header, ethertype, outer VLAN id or -1) of every record."""
    b, off, lt = fr.buf, fr.off, fr.linktype
    l3 = off + ETHERNET.size
    et = _be16(b, off + ETHERNET.offset("type"))
    vlan = np.full(len(off), -1, dtype=np.int64)
    type_len = ETHERNET.width("type")
    for _ in range(2):  # up to two tags (802.1Q, QinQ)
        tagged = (lt == LINKTYPE_ETHERNET) & np.isin(et, VLAN_TPIDS)
        if not tagged.any():
            break
        tag = l3 - type_len  # a tag starts where the ethertype was (its TPID is that ethertype)
        vlan = np.where(tagged & (vlan < 0), _be16(b, tag + VLAN_TAG.offset("tci")) & 0x0FFF, vlan)
        et = np.where(tagged, _be16(b, tag + VLAN_TAG.size), et)
        l3 = np.where(tagged, l3 + VLAN_TAG.size, l3)
    sll = lt == LINKTYPE_SLL
    if sll.any():
        l3 = np.where(sll, off + 16, l3)
        et = np.where(sll, _be16(b, off + 14), et)
    sll2 = lt == LINKTYPE_SLL2
    if sll2.any():
        l3 = np.where(sll2, off + 20, l3)
        et = np.where(sll2, _be16(b, off), et)
    raw = np.isin(lt, LINKTYPE_RAW)
    if raw.any():
        l3 = np.where(raw, off, l3)
        et = np.where(raw, np.where((b[off] >> 4) == 4, ETH_TYPE_IPV4, ETH_TYPE_IPV6), et)
    return l3, et, vlan


_PROBE_DTYPE = PROBE_HEADER.numpy_dtype()
assert _PROBE_DTYPE.itemsize == FIXED_LEN


@dataclass
class Probes:
    """Every probe datagram found in a set of captures (one entry per datagram, capture order)."""

    rx_ns: np.ndarray
    flow: np.ndarray
    seq: np.ndarray
    tx_ns: np.ndarray
    intended_ns: np.ndarray
    offset_ns: np.ndarray
    flags: np.ndarray
    ip_len: np.ndarray
    ids: dict[int, str] = field(default_factory=dict)   # flow id -> reservation id carried
    frames: int = 0                                     # records read in total

    def __len__(self) -> int:
        return len(self.rx_ns)


def extract_probes(fr: Frames) -> Probes:
    """Find the IPv4/UDP datagrams of ``fr`` that carry a probe header and slice their fields."""
    b = fr.buf
    l3, et, _ = l3_offsets(fr)
    end = fr.off + fr.caplen
    ok = (et == ETH_TYPE_IPV4) & (l3 + IPV4.size <= end)
    vi = l3 + IPV4.offset("version_ihl")
    ok &= (b[vi] >> 4) == 4
    ok &= b[l3 + IPV4.offset("proto")] == IP_PROTO_UDP
    ihl = (b[vi] & 0x0F).astype(np.int64) * 4
    pay = l3 + ihl + UDP.size
    ok &= pay + FIXED_LEN <= end
    idx = np.nonzero(ok)[0]
    pay = pay[idx]
    ok2 = _be32(b, pay) == MAGIC
    idx, pay = idx[ok2], pay[ok2]
    block = b[pay[:, None] + np.arange(FIXED_LEN)]
    rec = np.ascontiguousarray(block).view(_PROBE_DTYPE).reshape(-1)
    flow = rec["flow_id"].astype(np.int64)
    ids: dict[int, str] = {}
    uniq, first = np.unique(flow, return_index=True)
    for f, i in zip(uniq.tolist(), first.tolist()):
        hl = int(rec["header_len"][i])
        p = int(pay[i])
        hl = min(hl, FIXED_LEN + 64, int(end[idx[i]] - p))
        ids[f] = bytes(b[p + FIXED_LEN:p + hl]).decode("utf-8", "replace")
    return Probes(rx_ns=fr.ts_ns[idx], flow=flow, seq=rec["seq"].astype(np.int64),
                  tx_ns=rec["tx_ns"].astype(np.int64), intended_ns=rec["intended_ns"].astype(np.int64),
                  offset_ns=rec["tx_offset_ns"].astype(np.int64), flags=rec["flags"].astype(np.int64),
                  ip_len=_be16(b, l3[idx] + IPV4.offset("total_length")), ids=ids, frames=len(fr))


def read_probes(paths: Sequence[str]) -> Probes:
    """``extract_probes`` over several files, concatenated."""
    parts = [extract_probes(read_frames(p)) for p in paths]
    if not parts:
        raise PcapError("no capture files given")
    ids: dict[int, str] = {}
    for p in parts:
        ids.update(p.ids)
    cat = {k: np.concatenate([getattr(p, k) for p in parts])
           for k in ("rx_ns", "flow", "seq", "tx_ns", "intended_ns", "offset_ns", "flags", "ip_len")}
    return Probes(**cat, ids=ids, frames=sum(p.frames for p in parts))


# ---------------------------------------------------------------------------------------------
# analysis


@dataclass
class Thresholds:
    """Tolerances of the checks (defaults are strict; see docs/verification.md)."""

    #: rate check: every full window carries at least this fraction of what the schedule promises in
    #: it (``promised_window_bps``: the periods whose whole arrival spread fits in the window)
    rate_fraction: float = 1.0
    #: sliding window of the rate figure (at least 10 periods)
    rate_window_ns: int = 100_000_000
    #: tx slot check: allowed lateness past the end of the slot window
    tx_tolerance_ns: int = 0
    #: "auto" | "emulated" | "not-emulated": whether links add their modeled propagation
    propagation: str = "auto"
    #: duplicate elimination for every flow (as for protected ones): duplicates are expected
    #: (counted as ``eliminated``), loss and the other figures use the first copy of each seq
    eliminate: bool = False
    #: the platform's timestamp noise floor measured in the same run (``noise_floor``), or None when
    #: not measured (an ideal platform is assumed: no latency check can be ``not_checkable``). A
    #: latency, jitter, tx-slot or arrival check allows its bound + this, nothing else, and is
    #: ``not_checkable`` when this exceeds its bound.
    noise_floor_ns: int | None = None
    #: why the noise floor could not be measured in this run (e.g. its reference flow delivered
    #: nothing), or "" : then every check that allows the noise floor is ``not_checkable``
    noise_floor_missing: str = ""


@dataclass
class Report:
    """The analysis: per-flow figures and checks (``flows``), plus data series for the plots."""

    flows: list[dict[str, Any]]
    files: list[str]
    frames: int
    probe_packets: int
    unknown_flows: list[dict[str, Any]]
    seconds: float
    series: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def passed(self) -> bool:
        return bool(self.flows) and all(f["pass"] for f in self.flows)

    def to_dict(self) -> dict[str, Any]:
        return {"pass": self.passed, "files": self.files, "frames": self.frames,
                "probe_packets": self.probe_packets, "analysis_seconds": round(self.seconds, 4),
                "packets_per_second": round(self.frames / self.seconds) if self.seconds > 0 else None,
                "flows": self.flows, "unknown_flows": self.unknown_flows}


def modeled_propagation_ns(path: Sequence[str], links: Iterable[Mapping[str, Any]] | None) -> int | None:
    """Sum of ``propagation_ns`` of the schedule's links along ``path`` (None when unknown)."""
    if not links or not path:
        return None
    table = {(l["src"], l["dst"]): int(l.get("propagation_ns", 0)) for l in links}
    total = 0
    for u, v in zip(path, path[1:]):
        if (u, v) in table:
            total += table[(u, v)]
        elif (v, u) in table:
            total += table[(v, u)]
        else:
            return None
    return total


def rfc3550_jitter(transit_ns: np.ndarray) -> tuple[float, float]:
    """(final, max) of the RFC 3550 interarrival jitter estimate J += (|D| - J) / 16 (arrival order)."""
    d = np.abs(np.diff(transit_ns.astype(np.float64)))
    j = 0.0
    jmax = 0.0
    for x in d.tolist():
        j += (x - j) / 16.0
        if j > jmax:
            jmax = j
    return j, jmax


def _stats(a: np.ndarray) -> dict[str, float | None]:
    if len(a) == 0:
        return {"min": None, "mean": None, "p50": None, "p99": None, "max": None}
    return {"min": int(a.min()), "mean": float(a.mean()), "p50": float(np.percentile(a, 50)),
            "p99": float(np.percentile(a, 99)), "max": int(a.max())}


def _check(name: str, ok: bool, value: Any, limit: Any, detail: str) -> dict[str, Any]:
    return {"name": name, "pass": bool(ok), "status": "pass" if ok else "fail", "value": value, "limit": limit,
            "detail": detail}


def _bounded(name: str, value: int | None, bound: int, noise: int, detail: str, *, checkable_bound: int | None = None,
             ok: bool | None = None, limit: Any = None, missing: str = "") -> dict[str, Any]:
    """A check against the controller's ``bound`` plus the measured ``noise`` floor, nothing else.

    ``status`` is ``not_checkable`` when the noise floor exceeds the bound (``checkable_bound`` when
    the value is not itself a time: the slot window of ``tx_slot``): the platform cannot tell a
    pass from a fail there, so it is never reported as a pass (``pass`` is False). It is
    ``not_checkable`` too when the noise floor could not be measured (``missing`` says why; the
    report's noise floor is then None). Otherwise ``pass``/``fail`` by ``ok`` (default:
    ``value <= bound + noise``).
    """
    lim = bound + noise if limit is None else limit
    if ok is None:
        ok = value is not None and value <= lim
    if missing:
        status = "not_checkable"
        detail += f"; NOT CHECKABLE: no noise floor ({missing})"
        lim, noise = None, None
    elif noise > (bound if checkable_bound is None else checkable_bound):
        status = "not_checkable"
        detail += f"; NOT CHECKABLE: the noise floor {noise} ns exceeds the bound"
    else:
        status = "pass" if ok else "fail"
    return {"name": name, "pass": status == "pass", "status": status, "value": value, "limit": lim,
            "bound_ns": bound, "noise_floor_ns": noise, "detail": detail}


def promised_window_bps(bandwidth_bps: int, period_ns: int, window_ns: int, spread_ns: int) -> float:
    """The rate the schedule promises in every window of ``window_ns``: a frame of each period arrives
    within ``spread_ns`` (jitter bound + noise floor) of its place, so at least
    ``floor((window - spread) / period)`` periods' bytes arrive in any window.

    >>> promised_window_bps(8_000_000, 1_000_000, 100_000_000, 10_500_000)   # 89 whole periods of 100
    7120000.0
    """
    n = max(0, (window_ns - spread_ns) // period_ns)
    return bandwidth_bps * n * period_ns / window_ns


def noise_floor(p: "Probes", flow_ids: Iterable[int]) -> dict[str, Any]:
    """The platform's timestamp noise floor from the reference flow(s) ``flow_ids`` of ``p``.

    A reference flow crosses as little network as possible (a host to another host on the
    receiver's own switch, docs/verification.md): what its ``receive time - intended send time``
    spreads is what the platform (talker scheduling, stack, software switch, capture timestamps)
    adds to an ideal measurement. ``noise_floor_ns`` = max - min of it: the checks compare a flow's
    max (latency, jitter, the emptiest rate window) with its bound, so the floor is the same
    statistic of the reference, taken at the same time on the same hosts (``p99_spread_ns``, the
    p99 - min, is reported beside it). ``None`` without packets.
    """
    ids = np.array(sorted(set(int(f) for f in flow_ids)), dtype=np.int64)
    sel = np.isin(p.flow, ids)
    d = (p.rx_ns[sel] - p.intended_ns[sel]).astype(np.int64)
    if not len(d):
        return {"noise_floor_ns": None, "packets": 0}
    p99 = float(np.percentile(d, 99))
    return {"noise_floor_ns": int(d.max() - d.min()), "packets": int(len(d)), "min_ns": int(d.min()),
            "p50_ns": float(np.percentile(d, 50)), "p99_ns": p99, "max_ns": int(d.max()),
            "p99_spread_ns": int(round(p99 - int(d.min()))),
            "measured": "max - min of (receive timestamp - intended send time) of the reference flow"}


def thresholds_with_noise(nf: Mapping[str, Any], **kw: Any) -> Thresholds:
    """``Thresholds(**kw)`` allowing the noise floor ``nf`` (a ``noise_floor`` result) measured in the
    same run; when its reference flow delivered nothing the floor is unknown and every check that
    allows it is ``not_checkable``."""
    floor = nf.get("noise_floor_ns")
    if floor is None:
        return Thresholds(**kw, noise_floor_missing="its reference flow delivered no packets")
    return Thresholds(**kw, noise_floor_ns=int(floor))


def analyze_flow(p: Probes, sel: np.ndarray, res: Mapping[str, Any], meta: Mapping[str, Any],
                 sent: int | None, th: Thresholds) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Figures and checks of one reservation from its probes ``p[sel]`` (indices into ``p``)."""
    cycle = int(meta.get("cycle_ns") or res.get("cycle_ns") or res["period_ns"])
    slot = int(meta.get("slot_ns") or res.get("slot_ns") or cycle)
    epoch = int(meta.get("epoch_ns", 0) or 0)
    period = int(res.get("period_ns") or cycle)
    bound = int(res["latency_bound_ns"])
    jbound = int(res.get("jitter_bound_ns") or 0)
    order = sel[np.argsort(p.rx_ns[sel], kind="stable")]
    seq = p.seq[order]
    _, first = np.unique(seq, return_index=True)
    first.sort()
    uo = order[first]                     # first copy of every seq, arrival order
    useq = p.seq[uo]
    n_all = len(order)
    received_seq = len(uo)
    duplicated = n_all - received_seq
    talker_count = sent is not None
    if sent is None:
        sent = int(useq.max()) + 1 if len(useq) else 0
    received = int((useq < sent).sum())
    lost = max(0, sent - received)
    runmax = np.maximum.accumulate(useq) if len(useq) else useq
    reordered = int((useq[1:] < runmax[:-1]).sum()) if len(useq) > 1 else 0
    rx = p.rx_ns[uo]
    tx = p.tx_ns[uo]
    lat = rx - tx
    lst = _stats(lat)
    jitter = int(lat.max() - lat.min()) if len(lat) else None
    rj, rjmax = rfc3550_jitter(lat) if len(lat) > 1 else (0.0, 0.0)
    prop = modeled_propagation_ns(res.get("path") or [], meta.get("links"))
    mode = th.propagation
    if mode == "auto":
        # links emulate their propagation when the median measured latency reaches half the model
        emulated = not (prop and len(lat) and lst["p50"] < 0.5 * prop)
    else:
        emulated = mode == "emulated"
    combined_max = None if emulated or prop is None or not len(lat) else int(lat.max()) + prop
    # slot conformance (actual tx time against the reservation's instances)
    inst = instances_of(res, cycle, slot)
    starts = np.array([i.offset_ns for i in inst], dtype=np.int64)
    windows = np.array([i.window_ns for i in inst], dtype=np.int64)
    x = (tx - epoch) % cycle
    k = np.searchsorted(starts, x, side="right") - 1
    wrap = k < 0
    k = np.where(wrap, len(starts) - 1, k)
    into = np.where(wrap, x + cycle - starts[k], x - starts[k])
    noise = int(th.noise_floor_ns or 0)
    bounded = functools.partial(_bounded, missing=th.noise_floor_missing)
    tx_ok = into < windows[k] + th.tx_tolerance_ns + noise
    inst_start = tx - into
    arr = rx - inst_start
    lo = prop if (emulated and prop) else 0
    arr_ok = (arr >= lo) & (arr <= bound + noise)
    # bytes per instance (catches --rate / --burst misbehaviour): group by instance start
    allowed_inst = sum(s + IP_UDP_OVERHEAD for s in split_bytes(int(res["frame_bytes"]), str(res["id"])))
    if len(uo):
        _, inv = np.unique(inst_start, return_inverse=True)
        per_inst = np.bincount(inv, weights=p.ip_len[uo])
        max_inst = int(per_inst.max())
    else:
        max_inst = 0
    # achieved rate over sliding windows of the receive times
    win = max(th.rate_window_ns, 10 * period)
    ipb = p.ip_len[uo].astype(np.float64)
    total_bytes = float(ipb.sum())
    if len(rx) > 1:
        span = int(rx.max() - rx.min()) + period
        t0 = int(rx.min())
        edges = np.arange(t0, int(rx.max()) + 1, win)
        bins = np.bincount(((rx - t0) // win).astype(np.int64), weights=ipb)
        full = bins[: max(0, len(edges) - 1)] if (rx.max() - t0) >= win else bins[:0]
        rates = bins * 8e9 / win
        full_rates = full * 8e9 / win
        mean_rate = total_bytes * 8e9 / span
    else:
        t0, rates, full_rates, mean_rate = 0, np.zeros(0), np.zeros(0), 0.0
    bw = int(res.get("bandwidth_bps") or 0)
    min_window_bps = float(full_rates.min()) if len(full_rates) else mean_rate
    # protected flows (two disjoint paths, replicated at the ingress) arrive twice by design: the
    # listener keeps the first copy of every seq (DetNet elimination), so duplicates are expected
    eliminate = th.eliminate or bool(res.get("protection_path")) or res.get("protection") == "disjoint"
    checks = [
        _check("loss", lost == 0, lost, 0, f"{lost} of {sent} lost ({'talker count' if talker_count else 'max seq + 1'})"
               + (" after duplicate elimination" if eliminate else "")),
        _check("duplicates", True, duplicated, None, f"{duplicated} duplicates eliminated (protected flow)")
        if eliminate else _check("duplicates", duplicated == 0, duplicated, 0, f"{duplicated} duplicate datagrams"),
        _check("reordering", reordered == 0, reordered, 0, f"{reordered} datagrams arrived after a higher seq"),
        bounded("latency_measured", lst["max"], bound, noise,
                 f"max measured one-way latency {lst['max']} ns vs bound {bound} + noise floor {noise} ns"),
    ]
    if combined_max is not None:
        checks.append(bounded("latency_combined", combined_max, bound, noise,
                               f"measured max + modeled propagation {prop} ns (not emulated) = {combined_max} ns "
                               f"vs bound {bound} + noise floor {noise} ns"))
    if jbound > 0:
        checks.append(bounded("jitter", jitter, jbound, noise,
                               f"max-min latency {jitter} ns vs jitter bound {jbound} + noise floor {noise} ns"))
    n_tx_bad = int((~tx_ok).sum())
    min_slot_window = int(windows.min()) if len(windows) else 0
    checks.append(bounded("tx_slot", n_tx_bad, 0, noise,
                           f"{n_tx_bad} of {len(tx)} sent later than their slot window + {th.tx_tolerance_ns} ns "
                           f"+ noise floor {noise} ns", checkable_bound=min_slot_window, ok=n_tx_bad == 0, limit=0))
    n_arr_bad = int((~arr_ok).sum())
    checks.append(bounded("arrival_window" if emulated else "arrival_window_loose", n_arr_bad, bound, noise,
                           f"{n_arr_bad} of {len(arr)} arrived outside [offset + {lo}, offset + {bound} + "
                           f"{noise}] ns" + ("" if emulated else " (loose: propagation not emulated)"),
                           ok=n_arr_bad == 0, limit=0))
    # grouped by the talker's send time: a talker late by up to the noise floor can put two periods'
    # datagrams into one, so the check needs a noise floor below one period
    checks.append(bounded("instance_bytes", max_inst, period, noise,
                           f"most IP bytes in one period instance {max_inst} vs reserved {allowed_inst}",
                           ok=max_inst <= allowed_inst, limit=allowed_inst))
    if bw:
        promised = promised_window_bps(bw, period, win, jbound + noise)
        need = th.rate_fraction * promised
        # what a window must carry depends on the arrival spread: when the noise floor exceeds the
        # jitter bound that spread is bounded by nothing checkable, so neither is the window
        checks.append(bounded("rate", round(min_window_bps), jbound, noise,
                               f"lowest {win / 1e6:g} ms window {min_window_bps / 1e6:.3f} Mb/s vs "
                               + (f"{th.rate_fraction:g} x " if th.rate_fraction != 1 else "")
                               + f"{promised / 1e6:.3f} Mb/s promised in it (reserved {bw / 1e6:.3f} Mb/s, periods "
                               f"whose arrival spread of jitter bound {jbound} + noise floor {noise} ns fits)",
                               checkable_bound=jbound if jbound > 0 else win, ok=min_window_bps >= need,
                               limit=round(need)))
    flow = {
        "id": str(res["id"]), "tenant": res.get("tenant"), "flow_id": flow_id_of(str(res["id"])),
        "sent": sent, "sent_source": "talker" if talker_count else "max_seq",
        "received": received, "lost": lost, "duplicated": duplicated, "reordered": reordered,
        "eliminated": duplicated if eliminate else 0, "elimination": eliminate,
        "late_flagged": int((p.flags[uo] & 1).sum()),
        "latency_ns": {**lst, "bound_ns": bound, "noise_floor_ns": th.noise_floor_ns, "jitter_ns": jitter, "jitter_bound_ns": jbound or None,
                       "rfc3550_jitter_ns": round(rj, 1), "rfc3550_jitter_max_ns": round(rjmax, 1),
                       "measured": "receive timestamp - payload tx timestamp",
                       "modeled_propagation_ns": prop, "propagation_emulated": emulated,
                       "combined_max_ns": combined_max,
                       "combined_label": None if combined_max is None
                       else "measured max + modeled propagation (links not emulated)"},
        "rate": {"reserved_bps": bw, "mean_bps": round(mean_rate), "min_window_bps": round(min_window_bps),
                 "max_window_bps": round(float(full_rates.max())) if len(full_rates) else round(mean_rate),
                 "window_ns": win, "received_ip_bytes": int(total_bytes)},
        "slots": {"cycle_ns": cycle, "slot_ns": slot, "epoch_ns": epoch,
                  "instances": [[int(a), int(b)] for a, b in zip(starts, windows)],
                  "tx_in_window": int(tx_ok.sum()), "tx_outside": n_tx_bad,
                  "tx_late_max_ns": int(max(0, (into - windows[k]).max())) if len(into) else 0,
                  "arrival_in_window": int(arr_ok.sum()), "arrival_outside": n_arr_bad,
                  "arrival_window_ns": [int(lo), bound], "max_instance_ip_bytes": max_inst,
                  "reserved_instance_ip_bytes": allowed_inst},
        "checks": checks,
    }
    # a not_checkable check is never a pass, and not a fail either: the flow passes when every
    # CHECKABLE check passes; what could not be checked is listed beside the verdict
    flow["not_checkable"] = [c["name"] for c in checks if c["status"] == "not_checkable"]
    flow["pass"] = all(c["status"] != "fail" for c in checks) and received > 0
    flow["verdict"] = ("pass" if flow["pass"] else "fail") + (" (not checkable: " + ", ".join(flow["not_checkable"])
                                                               + ")" if flow["not_checkable"] else "")
    series = {"latency_ns": lat, "arrival_offset_ns": (rx - epoch) % cycle, "tx_offset_ns": x,
              "rate_t_ns": (np.arange(len(rates)) * win).astype(np.int64), "rate_bps": rates,
              "reserved_bps": np.array([bw]), "bound_ns": np.array([bound])}
    return flow, series


def analyze(pcap_paths: Sequence[str], reservations: Sequence[Mapping[str, Any]], schedule_meta: Mapping[str, Any],
            sent_counts: Mapping[str, int] | None = None, thresholds: Thresholds | None = None,
            require: Iterable[str] | None = None) -> Report:
    """Analyze captures against reservations.

    Reservations whose probes appear in the captures are analyzed; those named in ``require`` are
    analyzed even when absent (and then fail with nothing received). ``sent_counts`` maps a
    reservation id to the talker's own count (better than max seq + 1, which misses tail loss).
    """
    t0 = time.perf_counter()
    th = thresholds or Thresholds()
    p = read_probes(list(pcap_paths))
    by_flow = {flow_id_of(str(r["id"])): r for r in reservations}
    required = {flow_id_of(r) for r in (require or [])}
    missing = sorted(set(required) - set(by_flow))
    if missing:
        raise KeyError(f"required reservation not in the given reservations (flow ids {missing})")
    order = np.argsort(p.flow, kind="stable")
    flows_sorted = p.flow[order]
    uniq, starts = np.unique(flows_sorted, return_index=True)
    bounds = dict(zip(uniq.tolist(), zip(starts.tolist(), list(starts[1:].tolist()) + [len(order)])))
    flows, unknown, series = [], [], {}
    for fid in sorted(set(bounds) | required, key=lambda f: str(by_flow[f]["id"]) if f in by_flow else str(f)):
        if fid not in by_flow:
            a, b = bounds[fid]
            unknown.append({"flow_id": fid, "reservation_id": p.ids.get(fid, ""), "packets": b - a})
            continue
        res = by_flow[fid]
        a, b = bounds.get(fid, (0, 0))
        sel = order[a:b]
        sent = (sent_counts or {}).get(str(res["id"]))
        fl, se = analyze_flow(p, sel, res, schedule_meta, sent, th)
        flows.append(fl)
        series[fl["id"]] = se
    return Report(flows, [str(x) for x in pcap_paths], p.frames, len(p), unknown, time.perf_counter() - t0, series)


def merge_reports(reports: Sequence[Report], ignore: Iterable[int] = ()) -> Report:
    """One ``Report`` of several analyses (one per flow, each with its own noise floor); the flow ids
    in ``ignore`` (reference flows) are left out of ``unknown_flows``."""
    skip = set(ignore)
    series: dict[str, dict[str, np.ndarray]] = {}
    for r in reports:
        series.update(r.series)
    return Report([f for r in reports for f in r.flows], sorted({x for r in reports for x in r.files}),
                  sum(r.frames for r in reports), sum(r.probe_packets for r in reports),
                  [u for r in reports for u in r.unknown_flows if u["flow_id"] not in skip],
                  sum(r.seconds for r in reports), series)


# ---------------------------------------------------------------------------------------------
# isolation hook


def _mac_int(mac: str) -> int:
    return int(mac.replace(":", "").replace("-", ""), 16)


def _ip_int(ip: str) -> int:
    a, b, c, d = (int(x) for x in ip.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def count_leaks(captures: Mapping[str, str | Sequence[str]], port_tenant: Mapping[str, int],
                tenant_of_mac: Mapping[str, int] | None = None,
                tenant_of_ip: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Frames captured on a host port whose source belongs to another tenant.

    ``captures``: port (host) name -> pcap path(s) captured on it; ``port_tenant``: its tenant.
    A frame's source tenant is that of its source MAC, else of its IPv4 (or ARP sender)
    address; frames with neither known are ``unattributed`` (LLDP, IPv6 ND of unknown hosts...).
    Returns {"ports": {port: {"frames", "own", "leaked", "leaked_by_tenant", "unattributed"}},
    "leaked": total, "pass": total == 0}.
    """
    macs = {_mac_int(m): t for m, t in (tenant_of_mac or {}).items()}
    ips = {_ip_int(i): t for i, t in (tenant_of_ip or {}).items()}
    out: dict[str, Any] = {"ports": {}, "leaked": 0}
    for port, paths in captures.items():
        if isinstance(paths, str):
            paths = [paths]
        mine = int(port_tenant[port])
        st = {"tenant": mine, "frames": 0, "own": 0, "leaked": 0, "leaked_by_tenant": {}, "unattributed": 0}
        for path in paths:
            fr = read_frames(path)
            if not len(fr):
                continue
            b = fr.buf
            l3, et, _ = l3_offsets(fr)
            eth = fr.linktype == LINKTYPE_ETHERNET
            src_mac = np.zeros(len(fr), dtype=np.int64)
            for i in range(ETHERNET.width("src")):
                src_mac = (src_mac << 8) | b[fr.off + ETHERNET.offset("src") + i].astype(np.int64)
            src_mac = np.where(eth, src_mac, -1)
            src_ip = np.where(et == ETH_TYPE_IPV4, _be32(b, l3 + IPV4.offset("src")),
                              np.where(et == ETH_TYPE_ARP, _be32(b, l3 + ARP.offset("spa")), -1))
            tenant = np.full(len(fr), -1, dtype=np.int64)
            uip = np.unique(src_ip)
            for v in uip.tolist():
                if v in ips:
                    tenant[src_ip == v] = ips[v]
            umac = np.unique(src_mac)
            for v in umac.tolist():
                if v in macs:
                    tenant[src_mac == v] = macs[v]
            st["frames"] += len(fr)
            st["own"] += int((tenant == mine).sum())
            st["unattributed"] += int((tenant < 0).sum())
            leak = (tenant >= 0) & (tenant != mine)
            st["leaked"] += int(leak.sum())
            for t, c in zip(*np.unique(tenant[leak], return_counts=True)):
                st["leaked_by_tenant"][int(t)] = st["leaked_by_tenant"].get(int(t), 0) + int(c)
        out["ports"][port] = st
        out["leaked"] += st["leaked"]
    out["pass"] = out["leaked"] == 0
    return out


# ---------------------------------------------------------------------------------------------
# synthetic captures and the speed benchmark


#: the synthetic capture's addresses (one talker, one listener)
SYNTHETIC_MACS = ("02:00:00:00:00:01", "02:00:00:00:00:02")
SYNTHETIC_IPS = ("10.0.1.1", "10.0.1.2")
SYNTHETIC_SPORT = 40000
#: classic pcap, nanosecond timestamps: the file header, and the record header before each frame
PCAP_NS_MAGIC = 0xA1B23C4D
_PCAP_FILE_HEADER = struct.Struct("<IHHiIII")
_PCAP_RECORD_FIELDS = ("ts_sec", "ts_nsec", "caplen", "origlen")


def write_synthetic_pcap(path: str, n: int, reservation: Mapping[str, Any], schedule_meta: Mapping[str, Any],
                         latency_ns: int = 20_000, start_ns: int = 1_700_000_000 * 10**9,
                         seed: int = 1) -> None:
    """Write ``n`` probe frames of ``reservation`` as a nanosecond pcap, fast (numpy, no scapy).

    Frames follow the send plan exactly, with ``latency_ns`` plus up to 1 us of random noise.
    One frame is built with ``controller.dataplane.frames`` (IPv4 checksum left 0, as a capture
    with checksum offload shows it) and copied into every record; numpy then writes the fields that
    change per frame (pcap timestamps, probe seq/tx/intended/offset) through structured views at
    the layouts' offsets. Used by the benchmark; tests build their captures with scapy instead.
    """
    plan = send_plan(reservation, schedule_meta)
    per = plan.intended_offsets()
    payload_len = max(plan.payload_sizes)  # benchmark plans carry one datagram per instance
    probe = pack(Probe(plan.flow_id, 0, 0, 0, 0, reservation_id=plan.reservation_id), payload_len)
    (src_mac, dst_mac), (src_ip, dst_ip) = SYNTHETIC_MACS, SYNTHETIC_IPS
    template = ether(dst_mac, src_mac, ETH_TYPE_IPV4,
                     ipv4(src_ip, dst_ip, IP_PROTO_UDP, udp(SYNTHETIC_SPORT, DEFAULT_PORT, probe), checksum=False))
    frame_len = len(template)
    rec_head = 4 * len(_PCAP_RECORD_FIELDS)
    rec_len = rec_head + frame_len
    cyc = np.arange(n) // len(per)
    off = np.array([o for o, _, _ in per], dtype=np.int64)[np.arange(n) % len(per)]
    inst = np.array([io for _, io, _ in per], dtype=np.int64)[np.arange(n) % len(per)]
    intended = start_ns + cyc * plan.cycle_ns + off
    rng = np.random.default_rng(seed)
    tx = intended + rng.integers(0, 200, n)
    rx = tx + latency_ns + rng.integers(0, 1000, n)
    rec = np.empty((n, rec_len), dtype=np.uint8)
    rec[:, rec_head:] = np.frombuffer(template, dtype=np.uint8)
    head = rec.view(np.dtype({"names": list(_PCAP_RECORD_FIELDS), "formats": ["<u4"] * len(_PCAP_RECORD_FIELDS),
                              "offsets": list(range(0, rec_head, 4)), "itemsize": rec_len})).reshape(n)
    head["ts_sec"], head["ts_nsec"], head["caplen"], head["origlen"] = rx // 10**9, rx % 10**9, frame_len, frame_len
    body = rec.view(PROBE_HEADER.numpy_dtype(("seq", "tx_ns", "intended_ns", "tx_offset_ns"),
                                             base=rec_len - len(probe), itemsize=rec_len)).reshape(n)
    body["seq"], body["tx_ns"], body["intended_ns"], body["tx_offset_ns"] = np.arange(n), tx, intended, inst
    with open(path, "wb") as f:
        f.write(_PCAP_FILE_HEADER.pack(PCAP_NS_MAGIC, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))
        f.write(rec.tobytes())


def benchmark(n: int = 1_000_000, path: str | None = None) -> dict[str, Any]:
    """Analyzer speed on a synthetic ``n``-packet pcap: {"packets", "seconds", "packets_per_second"}."""
    res = {"id": "bench-1", "tenant": 1, "src": "A", "dst": "B", "period_ns": 100_000, "frame_bytes": 100,
           "bandwidth_bps": 8_000_000, "max_latency_ns": 10_000_000, "latency_bound_ns": 5_000_000,
           "jitter_bound_ns": 10_000, "path": ["A", "B"], "hops": [{"src": "A", "dst": "B", "slots": [0]}],
           "tx_offsets_ns": [0]}
    meta = {"cycle_ns": 100_000, "slot_ns": 1_000, "links": [{"src": "A", "dst": "B", "propagation_ns": 0}]}
    tmp = path or os.path.join(tempfile.mkdtemp(prefix="dn-bench-"), "bench.pcap")
    t_w = time.perf_counter()
    write_synthetic_pcap(tmp, n, res, meta)
    t_w = time.perf_counter() - t_w
    t0 = time.perf_counter()
    rep = analyze([tmp], [res], meta)
    dt = time.perf_counter() - t0
    size = os.path.getsize(tmp)
    if path is None:
        os.unlink(tmp)
    return {"packets": n, "file_bytes": size, "write_seconds": round(t_w, 3), "seconds": round(dt, 3),
            "packets_per_second": round(n / dt), "pass": rep.passed, "received": rep.flows[0]["received"]}


if __name__ == "__main__":  # pragma: no cover - benchmark entry point
    ap = argparse.ArgumentParser(description="analyzer benchmark on a synthetic pcap")
    ap.add_argument("--bench", type=int, default=1_000_000, help="packets (default 1M)")
    ap.add_argument("--keep", help="write the synthetic pcap here and keep it")
    a = ap.parse_args()
    print(json.dumps(benchmark(a.bench, a.keep), indent=1))
