"""Where an emulation dropped frames: every drop counter the host keeps, read before and after.

A reserved frame the analyzer counts as lost left its talker and never reached the receiver's
capture. On this host it can only have been dropped by one of a few places, and each keeps a
counter:

- a packet socket whose receive buffer was full (``ss --packet``: ``skmem ... d<drops>``): the
  userspace switch reads every port through one, as does each capture;
- Open vSwitch: a datapath port's RX/TX ``dropped`` and ``errors`` and the datapath's lost upcalls
  (``ovs-appctl dpctl/show -s``),
  a meter band (``ovs-ofctl meter-stats``) and the datapath's drop coverage counters
  (``ovs-appctl coverage/show``: ``datapath_drop_*``, ``drop_action_*``, ...);
- a queueing discipline of a switch port (the priority HTB, netem, taprio: ``tc -s qdisc``);
- a veth end (``ip -s link``: RX/TX ``dropped``): where a veth's receive ring (docs/emulation.md,
  ``tools.emulation.vethorder``) was full;
- the kernel's per-CPU input backlog (``/proc/net/softnet_stat``, second column).

Not every counter is a lost data frame: a best-effort meter's band drops are its job, and
``coverage:datapath_drop_userspace_action_error`` of the userspace datapath rose with the frames
it hands to the controller (LLDP, ARP) in every run measured here, lost data frame or not.

``snapshot()`` reads them all (switch side: the root network namespace; host side: each Mininet
host's namespace through its shell's pid), ``grown()`` keeps the counters that rose. A report that
counts a lost reserved frame can then say where frames were dropped meanwhile, instead of
leaving it to guesswork. Parsers are pure and tested on captured text.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Iterable, Mapping

#: coverage counters whose rise means a frame was dropped or not delivered
_COVERAGE_DROP = re.compile(r"drop|_error|_fail|lost")
_SKMEM_DROPS = re.compile(r"skmem:\([^)]*\bd(\d+)\)")
_SS_PROCESS = re.compile(r'users:\(\("([^"]+)",pid=(\d+),fd=(\d+)\)')
_METER_BAND = re.compile(r"meter:(\d+) .*?bands:\s*\n\s*0:\s*packet_count:(\d+)", re.S)
_COVERAGE_LINE = re.compile(r"^(\w+)\s+.*total:\s*(\d+)\s*$")


def _run(cmd: list[str], timeout: float = 10.0) -> str:
    """``cmd``'s stdout, or '' when it is missing or failed (a counter we cannot read is absent)."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, errors="replace")
    except (OSError, subprocess.SubprocessError):
        return ""
    return r.stdout if r.returncode == 0 else ""


def parse_packet_sockets(text: str, prefix: str) -> dict[str, int]:
    """Drops of each packet socket in ``ss -0 -a -m -p -n`` output: ``<prefix>:<process>:fd<fd>``.

    ``ss`` prints a socket's line and its ``skmem`` either on one line or on the next; both are read.
    """
    out: dict[str, int] = {}
    owner = None
    for line in text.splitlines():
        m = _SS_PROCESS.search(line)
        if m:
            owner = f"{m.group(1)}:pid{m.group(2)}:fd{m.group(3)}"
        elif line.startswith(("p_raw", "p_dgr")):
            owner = None
        d = _SKMEM_DROPS.search(line)
        if d and owner:
            out[f"{prefix}:{owner}"] = int(d.group(1))
    return out


def parse_dpctl(text: str) -> dict[str, int]:
    """``ovs-appctl dpctl/show -s``: each datapath port's drop and error counters as
    ``ovs:<port>:<counter>`` and each datapath's lost upcalls as ``ovs:<datapath>:lost``. Read
    live from the datapath (the database's Interface statistics lag by up to 5 s)."""
    out: dict[str, int] = {}
    dp = port = None
    for line in text.splitlines():
        stripped = line.strip()
        if line and not line[0].isspace() and line.rstrip().endswith(":"):
            dp, port = line.rstrip()[:-1], None
        elif stripped.startswith("lookups:") and dp:
            m = re.search(r"lost:(\d+)", stripped)
            if m:
                out[f"ovs:{dp}:lost"] = int(m.group(1))
        elif stripped.startswith("port "):
            m = re.match(r"port \d+: (\S+)", stripped)
            port = m.group(1) if m else None
        elif port and stripped.startswith(("RX packets:", "TX packets:")):
            side = "rx" if stripped.startswith("RX") else "tx"
            for key in ("errors", "dropped"):
                m = re.search(rf"\b{key}:(\d+)", stripped)
                if m:
                    out[f"ovs:{port}:{side}_{key}"] = int(m.group(1))
    return out


def parse_meter_stats(text: str, switch: str) -> dict[str, int]:
    """Packets each meter's drop band dropped (``ovs-ofctl -O OpenFlow13 meter-stats``)."""
    return {f"meter:{switch}:{m}": int(n) for m, n in _METER_BAND.findall(text)}


def parse_coverage(text: str) -> dict[str, int]:
    """Totals of ``ovs-appctl coverage/show``'s counters that count drops or failures."""
    out = {}
    for line in text.splitlines():
        m = _COVERAGE_LINE.match(line.strip())
        if m and _COVERAGE_DROP.search(m.group(1)):
            out[f"coverage:{m.group(1)}"] = int(m.group(2))
    return out


def parse_qdiscs(text: str, prefix: str, devices: Iterable[str] | None = None) -> dict[str, int]:
    """Drops of each queueing discipline in ``tc -s -j qdisc show`` output (all, or ``devices``')."""
    if not text.strip():
        return {}
    keep = set(devices) if devices is not None else None
    out = {}
    for q in json.loads(text):
        if keep is not None and q.get("dev") not in keep:
            continue
        out[f"{prefix}:{q.get('dev')}:{q.get('kind')}:{q.get('handle')}"] = int(q.get("drops", 0))
    return out


def parse_links(text: str, prefix: str) -> dict[str, int]:
    """RX and TX drops of each interface in ``ip -s -j link show`` output: ``<prefix>:<dev>:rx|tx``."""
    if not text.strip():
        return {}
    out = {}
    for link in json.loads(text):
        stats = link.get("stats64") or {}
        for way in ("rx", "tx"):
            out[f"{prefix}:{link.get('ifname')}:{way}"] = int((stats.get(way) or {}).get("dropped", 0))
    return out


def parse_softnet(text: str) -> dict[str, int]:
    """Frames each CPU's input backlog dropped (``/proc/net/softnet_stat``, second column, hex)."""
    out = {}
    for cpu, line in enumerate(text.splitlines()):
        cols = line.split()
        if len(cols) >= 2:
            out[f"softnet:cpu{cpu}:dropped"] = int(cols[1], 16)
    return out


def grown(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """The counters that rose between two snapshots, by how much (a counter new in ``after``
    counts from zero)."""
    return {k: v - before.get(k, 0) for k, v in sorted(after.items()) if v > before.get(k, 0)}


def snapshot(switches: Iterable[str], host_pids: Mapping[str, int] | None = None) -> dict[str, int]:
    """Every drop counter of the switches (root namespace) and of the hosts (by their shell's pid)."""
    switches = list(switches)
    counters: dict[str, int] = {}
    counters.update(parse_packet_sockets(_run(["ss", "-0", "-a", "-m", "-p", "-n"]), "socket"))
    counters.update(parse_dpctl(_run(["ovs-appctl", "dpctl/show", "-s"])))
    for sw in switches:
        counters.update(parse_meter_stats(_run(["ovs-ofctl", "-O", "OpenFlow13", "meter-stats", sw]), sw))
    counters.update(parse_coverage(_run(["ovs-appctl", "coverage/show"])))
    counters.update(parse_qdiscs(_run(["tc", "-s", "-j", "qdisc", "show"]), "qdisc"))
    counters.update(parse_links(_run(["ip", "-s", "-j", "link", "show", "type", "veth"]), "link"))
    try:
        with open("/proc/net/softnet_stat") as f:
            counters.update(parse_softnet(f.read()))
    except OSError:
        pass
    for host, pid in (host_pids or {}).items():
        ns = ["nsenter", "-t", str(pid), "-n"]
        counters.update(parse_packet_sockets(_run(ns + ["ss", "-0", "-a", "-m", "-p", "-n"]), f"socket@{host}"))
        counters.update(parse_qdiscs(_run(ns + ["tc", "-s", "-j", "qdisc", "show"]), f"qdisc@{host}"))
        counters.update(parse_links(_run(ns + ["ip", "-s", "-j", "link", "show", "type", "veth"]), f"link@{host}"))
    return counters
