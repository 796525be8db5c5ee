"""A port's 802.1Qbv gate control list as a Linux ``taprio`` qdisc, and the installed one read back.

``taprio_config(gcl, dev=..., link_bps=...)`` turns the GCL of one egress port (``schedules.gcl``)
into a :class:`TaprioConfig`; ``.command()`` is the argv of ``tc qdisc replace ... taprio``;
``parse_taprio_show`` reads what ``tc qdisc show dev DEV`` prints back and ``compare`` lists the
differences between the two, one line each (empty: the kernel holds the schedule asked for).
See docs/gates.md.

The mapping (two traffic classes are all the GCL distinguishes):

- ``num_tc 2``: tc 0 carries best effort, tc 1 the reservations. Priority ``gcl.reserved_tc`` (7:
  the PCP / skb priority of reserved frames) maps to tc 1, every other priority to tc 0;
  ``queues 1@0 1@1`` gives each class one TX queue (the device needs two: ``numtxqueues 2``).
- Gate masks: 0x2 (only tc 1 open) in reserved windows, 0x1 (only tc 0) elsewhere, 0x0 (all closed)
  in the guard bands. Adjacent entries with the same mask merge (two reservations back to back are
  one 0x2 entry). Intervals are integers in ns and sum exactly to the cycle.
- **Guard band**: a gate only decides when a frame may *start*; a best-effort frame started just
  before a reserved window would still be on the wire when the window opens and delay the reserved
  frame by up to one max-size frame. So the best-effort gate closes ``guard_band_bytes`` at
  ``link_bps`` (ceil to ns) before every reserved window: that much time is carved from the end of
  the best-effort entry before the window and becomes a 0x0 entry (when the cycle starts with best
  effort before a window, the best effort that ends the cycle is the same run, carved on from its
  end). A best-effort run shorter than the guard band closes entirely, and so does an open piece
  that would be shorter than a minimum Ethernet frame (60 bytes at ``link_bps``): Linux refuses
  intervals shorter than that (checked against the device's speed). Software taprio also holds
  back a frame that would not end before its entry closes, but it times frames at the speed the
  *device* reports (a veth says 10 Gb/s where the emulation shapes 100 Mb/s), at dequeue rather
  than on the wire (the driver's TX ring still holds it); the closed entry holds regardless.
- **Software mode** (no ``flags``): the kernel's qdisc opens and closes the gates with hrtimers on
  any multi-queue device (veth included), so the same command works in the emulation, the VM and a
  host without a TSN NIC; ``flags 0x2`` (full offload) would need a NIC such as i225/i210 and gives
  the same read-back.

**Launch time** (``etf_delta_ns``): a talker that sends with ``SO_TXTIME`` at its reservation's
``tx_offsets_ns`` gets an ``etf`` child on the reserved class's queue (``parent 100:2``; taprio then
has ``handle 100:``), which releases each frame ``delta`` ns before its launch time. Only the ports a
talker sends on (``talker_ports``: the first link of a path) can use it: etf drops frames without a
launch time, as forwarded frames are. The Schedule JSON does not say which talkers use launch time,
so the caller does. Without it the commands are unchanged.

Limits, each a one-line ``TaprioError`` naming the port:

- **entries**: the kernel takes any number (``parse_sched_list`` has no bound; the netlink nest's
  16-bit length caps it near 2340), but ``tc`` builds the request in 1024 bytes (iproute2's
  ``q_taprio.c`` passes ``1024`` as the bound of every attribute, 6.1 and upstream alike): header,
  kind, options, clock id and priority map take 152 bytes, ``base-time`` 12 more when it is not 0,
  each entry 28. So 31 entries (30 with a base time). Past that ``tc`` prints ``addattr_l ERROR``
  and sends a cut request whose last entry has no interval: on a device without taprio it **exits
  0** and the kernel holds 31 entries and a broken one (gate mask 0, interval 0); replacing a
  running taprio, the kernel refuses it (exit 2, the old schedule stays). Measured in the Debian
  6.1 guest, pinned by tests/test_vm_taprio_schedule.py. ``tc_entry_limit(base_time_ns)``.
- **intervals**: at least 1 ns (and 60 bytes at ``link_bps``, above), at most 2**32 - 1 (u32);
- **cycle**: at most 2**31 - 1 ns (the kernel's "'cycle_time' is too big" when it sums the
  intervals itself; measured: 2147483647 taken, 2147483648 refused); base time 0..2**63 - 1.

Pure: builds data and text, runs nothing (no os-ken, no Mininet).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any, Iterable, NamedTuple

from schedules.gcl import GCL

__all__ = ["CYCLE_MAX_NS", "INTERVAL_MAX_NS", "MASK_BEST_EFFORT", "MASK_CLOSED", "MASK_RESERVED", "SchedEntry",
           "TaprioConfig", "TaprioError", "compare", "device_name", "device_names", "parse_taprio_show",
           "taprio_config", "talker_ports", "tc_entry_limit"]

#: gate masks: bit i = traffic class i open
MASK_CLOSED, MASK_BEST_EFFORT, MASK_RESERVED = 0x0, 0x1, 0x2
NUM_TC = 2
#: taprio's priority map has one traffic class per skb priority 0..15 (TC_PRIO_MAX + 1)
PRIO_SLOTS = 16
#: u32 interval; the kernel's cap on a cycle it sums itself (INT_MAX)
INTERVAL_MAX_NS = 2**32 - 1
CYCLE_MAX_NS = 2**31 - 1
S64_MAX = 2**63 - 1
#: the shortest Ethernet frame without FCS (ETH_ZLEN): the kernel's floor for an interval
ETH_ZLEN = 60
#: iproute2's q_taprio.c: the request bound, what precedes the entries, base-time, one entry (bytes)
TC_REQUEST_BYTES, TC_FIXED_BYTES, TC_BASE_TIME_BYTES, TC_ENTRY_BYTES = 1024, 152, 12, 28
#: the taprio qdisc's handle when it has an etf child (the child's parent is a class of it); etf's delta: s32
TAPRIO_HANDLE = "100:"
ETF_DELTA_MAX_NS = 2**31 - 1
#: Linux interface names: at most 15 characters (IFNAMSIZ - 1), no '/', ':' or white space
IFNAME_MAX = 15
_BAD_IFNAME = re.compile(r"[\s/:]")


class TaprioError(ValueError):
    """The GCL cannot be a taprio schedule, or ``tc`` output is not one; the message is one line."""


class SchedEntry(NamedTuple):
    """One ``sched-entry``: command (``S``: set gates), gate mask, interval in ns."""

    cmd: str
    mask: int
    interval_ns: int


def tc_entry_limit(base_time_ns: int = 0) -> int:
    """How many ``sched-entry`` one ``tc`` command carries whole (31; 30 with a non-zero base time)."""
    fixed = TC_FIXED_BYTES + (TC_BASE_TIME_BYTES if base_time_ns else 0)
    return (TC_REQUEST_BYTES - fixed) // TC_ENTRY_BYTES


def _ceil_ns(nbytes: int, bps: int) -> int:
    return -(-nbytes * 8 * 10**9 // bps)


def device_name(src: str, dst: str) -> str:
    """A Linux interface name for the egress port ``src -> dst``: ``src-dst``, white space, '/' and ':'
    replaced by '_', cut to 15 characters."""
    return _BAD_IFNAME.sub("_", f"{src}-{dst}")[:IFNAME_MAX]


def device_names(links: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """``device_name`` of every port, in order; a name an earlier port already has ends in _2, _3, ...
    (cut shorter to stay within 15 characters)."""
    out: dict[tuple[str, str], str] = {}
    used: set[str] = set()
    for u, v in links:
        name = base = device_name(u, v)
        k = 1
        while name in used:
            k += 1
            name = f"{base[:IFNAME_MAX - len(str(k)) - 1]}_{k}"
        used.add(name)
        out[(u, v)] = name
    return out


def talker_ports(schedule: dict[str, Any]) -> set[tuple[str, str]]:
    """The ports a talker sends on: the first link of every reservation's path (and protection path)
    in a Schedule JSON. A reservation's frames leave there at its ``tx_offsets_ns``, the launch times a
    talker with ``SO_TXTIME`` gives them, so these are the ports an etf child can serve."""
    out: set[tuple[str, str]] = set()
    for r in schedule.get("reservations") or []:
        for key in ("path", "protection_path"):
            p = r.get(key) or []
            if len(p) > 1:
                out.add((str(p[0]), str(p[1])))
    return out


def _check_dev(dev: str) -> None:
    if not dev or len(dev) > IFNAME_MAX or _BAD_IFNAME.search(dev) or dev in (".", ".."):
        raise TaprioError(f"device {dev!r} is not a Linux interface name (1-{IFNAME_MAX} characters, "
                          f"no '/', ':' or white space)")


@dataclass(frozen=True)
class TaprioConfig:
    """A taprio qdisc for the egress port ``src -> dst`` on device ``dev`` (see the module doc)."""

    src: str
    dst: str
    dev: str
    entries: tuple[SchedEntry, ...]
    reserved_prio: int = 7
    base_time_ns: int = 0
    clockid: str = "CLOCK_TAI"
    link_bps: int = 0
    guard_band_ns: int = 0
    #: the etf child's delta on the reserved queue (a talker with launch times), None: no etf
    etf_delta_ns: int | None = None

    @property
    def num_tc(self) -> int:
        return NUM_TC

    @property
    def prio_map(self) -> tuple[int, ...]:
        """Traffic class of each skb priority 0..15: 1 for ``reserved_prio``, else 0."""
        return tuple(1 if p == self.reserved_prio else 0 for p in range(PRIO_SLOTS))

    @property
    def queues(self) -> tuple[tuple[int, int], ...]:
        """``(count, offset)`` of each traffic class: one queue each."""
        return ((1, 0), (1, 1))

    @property
    def cycle_ns(self) -> int:
        return sum(e.interval_ns for e in self.entries)

    def command(self, netns: str | None = None) -> list[str]:
        """argv of ``tc [-n NETNS] qdisc replace dev DEV root taprio ...`` (software mode)."""
        argv = ["tc"] + (["-n", netns] if netns else []) + [
            "qdisc", "replace", "dev", self.dev, "root",
            *(["handle", TAPRIO_HANDLE] if self.etf_delta_ns is not None else []), "taprio", "num_tc", str(NUM_TC),
            "map", *map(str, self.prio_map), "queues", *(f"{c}@{o}" for c, o in self.queues),
            "base-time", str(self.base_time_ns)]
        for e in self.entries:
            argv += ["sched-entry", e.cmd, f"{e.mask:#x}", str(e.interval_ns)]
        return argv + ["clockid", self.clockid]

    def shell(self, netns: str | None = None) -> str:
        """``command()`` quoted for a shell."""
        return shlex.join(self.command(netns))

    @property
    def etf_parent(self) -> str:
        """The class of the reserved traffic class's TX queue under taprio (queue 1: ``100:2``)."""
        return f"{TAPRIO_HANDLE}{self.queues[1][1] + 1}"

    def etf_command(self, netns: str | None = None) -> list[str] | None:
        """argv of ``tc qdisc replace dev DEV parent 100:2 etf clockid CLOCK_TAI delta N`` (the reserved
        queue releases each frame ``delta`` before its launch time, in software mode), or None without etf."""
        if self.etf_delta_ns is None:
            return None
        return ["tc"] + (["-n", netns] if netns else []) + [
            "qdisc", "replace", "dev", self.dev, "parent", self.etf_parent, "etf", "clockid", self.clockid,
            "delta", str(self.etf_delta_ns)]

    def commands(self, netns: str | None = None) -> list[list[str]]:
        """Every argv to run, in order: the taprio qdisc, then its etf child if any."""
        etf = self.etf_command(netns)
        return [self.command(netns)] + ([etf] if etf else [])

    def to_dict(self) -> dict[str, Any]:
        return {"src": self.src, "dst": self.dst, "dev": self.dev, "num_tc": NUM_TC, "map": list(self.prio_map),
                "queues": [f"{c}@{o}" for c, o in self.queues], "base_time_ns": self.base_time_ns,
                "clockid": self.clockid, "cycle_ns": self.cycle_ns, "link_bps": self.link_bps,
                "guard_band_ns": self.guard_band_ns, "reserved_prio": self.reserved_prio,
                **({"etf": {"parent": self.etf_parent, "clockid": self.clockid, "delta_ns": self.etf_delta_ns}}
                   if self.etf_delta_ns is not None else {}),
                "entries": [{"cmd": e.cmd, "gatemask": e.mask, "interval_ns": e.interval_ns}
                            for e in self.entries]}


def _merge(entries: list[list[int]]) -> list[list[int]]:
    out: list[list[int]] = []
    for mask, ns in entries:
        if out and out[-1][0] == mask:
            out[-1][1] += ns
        else:
            out.append([mask, ns])
    return out


def _carve_guard_bands(timeline: list[list[int]], guard_ns: int, min_ns: int) -> list[list[int]]:
    """Close ``guard_ns`` of the best-effort run before every reserved entry (module doc).

    ``timeline`` alternates masks (merged). A run is one best-effort entry, or the last and the first
    entry together when the cycle starts with best effort before a window (the run wraps the cycle).
    A run shorter than the guard band closes whole; an open piece shorter than ``min_ns`` closes too,
    and a closed piece shorter than that (what is left of the guard band for the cycle's end when the
    run wraps) grows to ``min_ns``: the kernel takes no interval below a minimum frame.
    """
    n = len(timeline)
    closed = [0] * n
    for i, (mask, _) in enumerate(timeline):
        if mask != MASK_BEST_EFFORT or timeline[(i + 1) % n][0] != MASK_RESERVED:
            continue
        run = [i, n - 1] if i == 0 and n > 2 and timeline[-1][0] == MASK_BEST_EFFORT else [i]
        total = sum(timeline[j][1] for j in run)
        take = min(total, guard_ns)
        if total - take < min_ns:
            take = total
        for j in run:                          # from the window backwards
            closed[j] = min(take, timeline[j][1])
            take -= closed[j]
            if 0 < closed[j] < min_ns:         # the guard band's last ns, wrapped to the cycle's end
                closed[j] = min(min_ns, timeline[j][1])
            if 0 < timeline[j][1] - closed[j] < min_ns:
                closed[j] = timeline[j][1]
    out: list[list[int]] = []
    for (mask, ns), c in zip(timeline, closed):
        if ns > c:
            out.append([mask, ns - c])
        if c:
            out.append([MASK_CLOSED, c])
    return out


def taprio_config(gcl: GCL, *, dev: str, link_bps: int, guard_band_bytes: int = 1522, base_time_ns: int = 0,
                  clockid: str = "CLOCK_TAI", etf_delta_ns: int | None = None) -> TaprioConfig:
    """The taprio schedule of ``gcl``'s port on device ``dev`` (mapping and limits: module doc).

    ``link_bps`` is the port's rate (the schedule's ``capacity_bps`` of the link): it turns
    ``guard_band_bytes`` (default 1522: a max-size tagged frame; 0: no guard band) into time.
    Raises TaprioError (one line naming the port) when the schedule does not fit taprio or ``tc``.
    """
    port = f"{gcl.src}->{gcl.dst}"
    _check_dev(dev)
    if isinstance(link_bps, bool) or not isinstance(link_bps, int) or link_bps <= 0:
        raise TaprioError(f"port {port}: link_bps must be a positive integer, got {link_bps!r}")
    if guard_band_bytes < 0:
        raise TaprioError(f"port {port}: guard_band_bytes must be 0 or more, got {guard_band_bytes}")
    if not 0 <= base_time_ns <= S64_MAX:
        raise TaprioError(f"port {port}: base time {base_time_ns} ns is outside 0..2**63-1")
    if etf_delta_ns is not None and (isinstance(etf_delta_ns, bool) or not isinstance(etf_delta_ns, int)
                                     or not 1 <= etf_delta_ns <= ETF_DELTA_MAX_NS):
        raise TaprioError(f"port {port}: etf delta must be 1..{ETF_DELTA_MAX_NS} ns, got {etf_delta_ns!r}")
    guard_ns = _ceil_ns(guard_band_bytes, link_bps) if guard_band_bytes else 0
    min_ns = _ceil_ns(ETH_ZLEN, link_bps)

    timeline = _merge([[MASK_RESERVED if e.state == "reserved" else MASK_BEST_EFFORT, e.duration_ns]
                       for e in gcl.entries])
    if guard_ns and len(timeline) > 1:
        timeline = _merge(_carve_guard_bands(timeline, guard_ns, min_ns))

    entries = tuple(SchedEntry("S", mask, ns) for mask, ns in timeline)
    limit = tc_entry_limit(base_time_ns)
    if len(entries) > limit:
        raise TaprioError(f"port {port}: needs {len(entries)} taprio entries, tc installs at most {limit} "
                          f"(more are cut silently)")
    for i, e in enumerate(entries):
        if not 1 <= e.interval_ns <= INTERVAL_MAX_NS:
            raise TaprioError(f"port {port}: entry {i}: interval {e.interval_ns} ns is outside 1..{INTERVAL_MAX_NS}")
        if e.interval_ns < min_ns:
            raise TaprioError(f"port {port}: entry {i}: interval {e.interval_ns} ns is shorter than a minimum "
                              f"frame ({ETH_ZLEN} bytes = {min_ns} ns at {link_bps} b/s); the kernel refuses it")
    cycle = sum(e.interval_ns for e in entries)
    if cycle != gcl.cycle_ns:
        raise TaprioError(f"port {port}: entries sum to {cycle} ns, not the cycle {gcl.cycle_ns} ns")
    if cycle > CYCLE_MAX_NS:
        raise TaprioError(f"port {port}: cycle {cycle} ns is longer than taprio takes ({CYCLE_MAX_NS} ns)")
    return TaprioConfig(gcl.src, gcl.dst, dev, entries, reserved_prio=gcl.reserved_tc, base_time_ns=base_time_ns,
                        clockid=clockid, link_bps=link_bps, guard_band_ns=guard_ns, etf_delta_ns=etf_delta_ns)


# --- reading back ------------------------------------------------------------------------------

_SCHEDULE_KEYS = ("base-time", "cycle-time", "cycle-time-extension")


def _schedule(tokens: list[str], i: int) -> tuple[dict[str, Any], int]:
    """One schedule at tokens[i] == 'base-time': its three times and the entries that follow."""
    sched: dict[str, Any] = {}
    for key in _SCHEDULE_KEYS:
        if i + 1 >= len(tokens) or tokens[i] != key:
            raise TaprioError(f"taprio output: expected {key!r} at {' '.join(tokens[i:i + 3])!r}")
        sched[key.replace("-", "_")] = int(tokens[i + 1])
        i += 2
    entries: list[SchedEntry] = []
    while i < len(tokens) and tokens[i] == "index":
        t = tokens[i:i + 8]
        if len(t) < 8 or (t[2], t[4], t[6]) != ("cmd", "gatemask", "interval"):
            raise TaprioError(f"taprio output: malformed entry {' '.join(t)!r}")
        entries.append(SchedEntry(t[3], int(t[5], 16), int(t[7])))
        i += 8
    sched["entries"] = entries
    return sched, i


def parse_taprio_show(text: str) -> dict[str, Any]:
    """The first taprio qdisc of ``tc qdisc show dev DEV`` output (iproute2 6.1 text format).

    Returns ``handle``, ``num_tc``, ``map`` (16 classes), ``queues`` [(count, offset)], ``clockid``
    (``CLOCK_TAI``), ``flags`` (None: software mode), ``base_time``, ``cycle_time``,
    ``cycle_time_extension``, ``entries`` [(cmd, mask, interval)] of the schedule in force, and
    ``admin``: the schedule installed but not yet in force (its base time is in the future; the same
    keys) or None. No operational schedule yet: cycle_time 0 and no entries. ``etf``: the etf child
    under a class of the taprio qdisc (``parent``, ``clockid``, ``delta``, ``offload``,
    ``deadline_mode``, ``skip_sock_check``) or None. Raises TaprioError.
    """
    tokens = text.split()
    try:
        start = next(i for i in range(len(tokens) - 1) if tokens[i] == "qdisc" and tokens[i + 1] == "taprio")
    except StopIteration:
        raise TaprioError("no taprio qdisc in the tc output") from None
    end = next((i for i in range(start + 2, len(tokens)) if tokens[i] == "qdisc"), len(tokens))
    toks = tokens[start:end]
    out: dict[str, Any] = {"handle": toks[2] if len(toks) > 2 else "", "num_tc": None, "map": [], "queues": [],
                           "clockid": None, "flags": None, "admin": None}
    schedules: list[dict[str, Any]] = []
    i = 3
    try:
        while i < len(toks):
            tok = toks[i]
            if tok == "tc":
                out["num_tc"] = int(toks[i + 1])
                i += 2
            elif tok == "map":
                out["map"] = [int(x) for x in toks[i + 1:i + 1 + PRIO_SLOTS]]
                i += 1 + PRIO_SLOTS
            elif tok == "queues":
                i += 1
                while i + 3 < len(toks) and toks[i] == "offset" and toks[i + 2] == "count":
                    out["queues"].append((int(toks[i + 3]), int(toks[i + 1])))
                    i += 4
            elif tok == "clockid":
                name = toks[i + 1]
                out["clockid"] = name if name.startswith("CLOCK_") else f"CLOCK_{name}"
                i += 2
            elif tok == "flags":
                out["flags"] = int(toks[i + 1], 16)
                i += 2
            elif tok == "base-time":
                sched, i = _schedule(toks, i)
                schedules.append(sched)
            else:
                i += 1          # refcnt, txtime delay, max-sdu, fp, ...: not part of the schedule
    except TaprioError:
        raise
    except (IndexError, ValueError):
        raise TaprioError(f"taprio output: cannot read {' '.join(toks[i:i + 4])!r}") from None
    if out["num_tc"] is None or not schedules:
        raise TaprioError("taprio output: no traffic classes or no schedule")
    out.update(schedules[0])
    if len(schedules) > 1:
        out["admin"] = schedules[1]
    out["etf"] = _parse_etf(tokens, out["handle"])
    return out


def _parse_etf(tokens: list[str], handle: str) -> dict[str, Any] | None:
    """The first etf qdisc whose parent is a class of the taprio ``handle`` (iproute2's q_etf.c prints
    ``qdisc etf H: parent P clockid TAI delta N offload off deadline_mode off skip_sock_check off``)."""
    for i in range(len(tokens) - 4):
        if tokens[i:i + 2] != ["qdisc", "etf"] or tokens[i + 3] != "parent" or \
                not tokens[i + 4].startswith(handle.rstrip(":") + ":"):
            continue
        end = next((j for j in range(i + 2, len(tokens)) if tokens[j] == "qdisc"), len(tokens))
        t = tokens[i:end]
        etf: dict[str, Any] = {"parent": t[4]}
        try:
            for key in ("clockid", "delta", "offload", "deadline_mode", "skip_sock_check"):
                k = t.index(key)
                etf[key] = t[k + 1]
            etf["clockid"] = _clock(etf["clockid"])
            etf["delta"] = int(etf["delta"])
            for key in ("offload", "deadline_mode", "skip_sock_check"):
                etf[key] = etf[key] == "on"
        except (ValueError, IndexError):
            raise TaprioError(f"etf output: cannot read {' '.join(t)!r}") from None
        return etf
    return None


def compare(config: TaprioConfig, shown: dict[str, Any]) -> list[str]:
    """Differences between ``config`` and what ``parse_taprio_show`` read back, one line each (``[]``: equal).

    The schedule compared is the newest one installed: the pending ``admin`` schedule when there is
    one (it takes over at its base time), else the one in force.
    """
    diffs: list[str] = []

    def field(name: str, installed: Any, scheduled: Any) -> None:
        if installed != scheduled:
            diffs.append(f"{name}: {installed} installed, {scheduled} scheduled")

    field("num_tc", shown.get("num_tc"), NUM_TC)
    field("map", " ".join(map(str, shown.get("map", []))), " ".join(map(str, config.prio_map)))
    field("queues", " ".join(f"{c}@{o}" for c, o in shown.get("queues", [])),
          " ".join(f"{c}@{o}" for c, o in config.queues))
    field("clockid", _clock(shown.get("clockid")), _clock(config.clockid))
    if shown.get("flags"):
        diffs.append(f"flags: {shown['flags']:#x} installed, none scheduled (software mode)")
    etf = shown.get("etf")
    if config.etf_delta_ns is None:
        if etf:
            diffs.append(f"etf: on {etf['parent']} installed, none scheduled")
    elif not etf:
        diffs.append(f"etf: none installed, on {config.etf_parent} scheduled")
    else:
        field("handle", shown.get("handle"), TAPRIO_HANDLE)
        field("etf parent", etf["parent"], config.etf_parent)
        field("etf clockid", etf["clockid"], _clock(config.clockid))
        field("etf delta", etf["delta"], config.etf_delta_ns)
        field("etf offload", "on" if etf["offload"] else "off", "off")
    sched = shown.get("admin") or shown
    field("base-time", sched.get("base_time"), config.base_time_ns)
    field("cycle-time", sched.get("cycle_time"), config.cycle_ns)
    got, want = list(sched.get("entries", [])), list(config.entries)
    field("entries", len(got), len(want))
    for k in range(max(len(got), len(want))):
        if k >= len(got):
            diffs.append(f"entry {k}: missing, {_entry_text(want[k])} scheduled")
        elif k >= len(want):
            diffs.append(f"entry {k}: {_entry_text(got[k])} installed, not scheduled")
        else:
            g, w = SchedEntry(*got[k]), want[k]
            if g.cmd != w.cmd:
                diffs.append(f"entry {k}: cmd {g.cmd} installed, {w.cmd} scheduled")
            if g.mask != w.mask:
                diffs.append(f"entry {k}: gatemask {g.mask:#x} installed, {w.mask:#x} scheduled")
            if g.interval_ns != w.interval_ns:
                diffs.append(f"entry {k}: interval {g.interval_ns} installed, {w.interval_ns} scheduled")
    return diffs


def _clock(name: Any) -> Any:
    """``TAI`` and ``CLOCK_TAI`` name one clock (tc takes both and prints the short one)."""
    return f"CLOCK_{name.upper().removeprefix('CLOCK_')}" if isinstance(name, str) else name


def _entry_text(e: Any) -> str:
    e = SchedEntry(*e)
    return f"{e.cmd} {e.mask:#x} {e.interval_ns}"
