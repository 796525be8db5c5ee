"""A fake OpenFlow 1.3 switch (and a network of them) that runs the data plane's programs.

Faucet's ``clib/fakeoftable.py`` is the model: the changes a program carries
(``controller.dataplane.programs``) are applied to tables 0 -> 1 -> 2, meters and groups, and a
frame can be asked "where do you go": in port, Ethernet addresses, VLAN tags (outermost first),
EtherType, IPv4 addresses, protocol, DSCP and L4 port in; out ports with the tags the frame
carries there out, plus the entries it hit on the way (so a test can tell a reservation's entries
from best effort).

OpenFlow semantics kept because the programs depend on them:

- an add replaces an entry with the same table, priority and match; a strict delete removes that
  one entry; a non-strict delete removes every entry whose cookie the mask selects;
- an entry that names a meter or a group that does not exist is rejected (``FakeSwitchError``):
  a program must create a meter or group before the entries that use it;
- deleting a meter or a group removes every entry that uses it;
- ``eth_type`` is the type after the outermost VLAN tag (Open vSwitch's default vlan-limit of 1:
  a double-tagged frame has ``eth_type`` 0x8100), and IPv4 fields match only IPv4 frames;
- a table miss without a table-miss entry drops the frame.
"""

from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable

from controller.dataplane.programs import (Change, FlowAdd, FlowDelete, FlowDeleteStrict, GroupAdd,
                                           GroupDelete, GroupModify, MeterAdd, MeterDelete, MeterModify,
                                           Phase, Program)
from controller.dataplane.resync import SwitchState
from controller.dataplane.specs import (ETH_TYPE_IPV4, ETH_TYPE_VLAN, OFPP_CONTROLLER, OFPVID_NONE,
                                        OFPVID_PRESENT, FlowSpec, GroupSpec, MeterSpec, cookie_selects,
                                        normalize_match)
from controller.core.model import Hop, Reservation
from controller.dataplane import programs
from topologies.hosts import HostPlan
from topologies.model import Topology

CONTROLLER = "controller"
MAX_HOPS = 64


class FakeSwitchError(Exception):
    """A change a real switch would reject (an OpenFlow error)."""


@dataclass(frozen=True)
class Frame:
    """A frame as a switch sees it. ``vlans``: (vid, pcp) tags, outermost first; ``eth_type`` is
    the type after the tags."""

    eth_src: str
    eth_dst: str
    eth_type: int = ETH_TYPE_IPV4
    vlans: tuple[tuple[int, int], ...] = ()
    ipv4_src: str | None = None
    ipv4_dst: str | None = None
    ip_proto: int | None = None
    ip_dscp: int | None = None
    udp_dst: int | None = None
    tcp_dst: int | None = None

    def field(self, name: str) -> Any:
        """The value of an OXM field in this frame, None when the frame has no such field."""
        if name == "vlan_vid":
            return OFPVID_PRESENT | self.vlans[0][0] if self.vlans else OFPVID_NONE
        if name == "eth_type":
            return ETH_TYPE_VLAN if len(self.vlans) > 1 else self.eth_type
        if name in ("eth_src", "eth_dst"):
            return (self.eth_src if name == "eth_src" else self.eth_dst).lower()
        ip = {"ipv4_src": self.ipv4_src, "ipv4_dst": self.ipv4_dst, "ip_proto": self.ip_proto,
              "ip_dscp": self.ip_dscp, "udp_dst": self.udp_dst, "tcp_dst": self.tcp_dst}
        if name not in ip:
            raise KeyError(f"fake switch does not know match field {name}")
        return ip[name] if self.field("eth_type") == ETH_TYPE_IPV4 else None


@dataclass(frozen=True)
class Hit:
    """One entry a frame hit: where, which table, which cookie."""

    dpid: int
    table_id: int
    cookie: int


@dataclass(frozen=True)
class Out:
    """A copy of the frame leaving ``port`` (``CONTROLLER`` for packet-in) as ``frame``."""

    port: int | str
    frame: Frame
    hits: tuple[Hit, ...]


def _field_matches(name: str, want: Any, frame: Frame, in_port: int) -> bool:
    have = in_port if name == "in_port" else frame.field(name)
    if have is None:
        return False
    if isinstance(want, (tuple, list)):
        value, mask = want
        if name.startswith("ipv4"):
            m = int(ipaddress.IPv4Address(mask))
            return int(ipaddress.IPv4Address(have)) & m == int(ipaddress.IPv4Address(value)) & m
        if isinstance(value, int):
            return have & mask == value & mask
        raise ValueError(f"fake switch: masked {name} not supported")
    if name.startswith("ipv4"):
        return ipaddress.IPv4Address(have) == ipaddress.IPv4Address(want)
    if isinstance(want, str):
        return have == want.lower()
    return have == want


class FakeSwitch:
    """One switch: tables of ``FlowSpec`` by key, meters, groups."""

    def __init__(self, dpid: int) -> None:
        self.dpid = dpid
        self.flows: dict[tuple, FlowSpec] = {}
        self.meters: dict[int, MeterSpec] = {}
        self.groups: dict[int, GroupSpec] = {}

    # ------------------------------------------------------------------ changes
    def apply(self, c: Change) -> None:
        if c.dpid != self.dpid:
            raise ValueError(f"change for dpid {c.dpid} applied to {self.dpid}")
        if isinstance(c, FlowAdd):
            f = c.flow
            if f.meter_id is not None and f.meter_id not in self.meters:
                raise FakeSwitchError(f"dpid {self.dpid}: entry uses unknown meter {f.meter_id}")
            for a in f.actions():
                if a["type"] == "group" and a["group_id"] not in self.groups:
                    raise FakeSwitchError(f"dpid {self.dpid}: entry uses unknown group {a['group_id']}")
            self.flows[f.key()] = f
        elif isinstance(c, FlowDelete):
            self.flows = {k: f for k, f in self.flows.items() if not cookie_selects(f.cookie, c.cookie, c.cookie_mask)}
        elif isinstance(c, FlowDeleteStrict):
            self.flows.pop((c.table_id, c.priority, normalize_match(c.match)), None)
        elif isinstance(c, MeterAdd):
            if c.meter.meter_id in self.meters:
                raise FakeSwitchError(f"dpid {self.dpid}: meter {c.meter.meter_id} exists")
            self.meters[c.meter.meter_id] = c.meter
        elif isinstance(c, MeterModify):
            if c.meter.meter_id not in self.meters:
                raise FakeSwitchError(f"dpid {self.dpid}: unknown meter {c.meter.meter_id}")
            self.meters[c.meter.meter_id] = c.meter
        elif isinstance(c, MeterDelete):
            self.meters.pop(c.meter_id, None)
            self.flows = {k: f for k, f in self.flows.items() if f.meter_id != c.meter_id}
        elif isinstance(c, GroupAdd):
            if c.group.group_id in self.groups:
                raise FakeSwitchError(f"dpid {self.dpid}: group {c.group.group_id} exists")
            self.groups[c.group.group_id] = c.group
        elif isinstance(c, GroupModify):
            if c.group.group_id not in self.groups:
                raise FakeSwitchError(f"dpid {self.dpid}: unknown group {c.group.group_id}")
            self.groups[c.group.group_id] = c.group
        elif isinstance(c, GroupDelete):
            self.groups.pop(c.group_id, None)
            self.flows = {k: f for k, f in self.flows.items()
                          if not any(a["type"] == "group" and a["group_id"] == c.group_id for a in f.actions())}
        else:
            raise TypeError(f"unknown change {c!r}")

    def dump(self) -> SwitchState:
        """The switch's state as the shim's dumps give it (what ``programs.resync`` reads)."""
        return SwitchState(
            flows=[{"table_id": f.table_id, "priority": f.priority, "match": dict(f.match), "cookie": f.cookie}
                   for f in self.flows.values()],
            meters=[{"meter_id": m.meter_id, "rate_kbps": m.rate_kbps, "burst_kb": m.burst_kb}
                    for m in self.meters.values()],
            groups=[{"group_id": g.group_id, "buckets": [list(b) for b in g.bucket_ports()]}
                    for g in self.groups.values()])

    def state(self) -> tuple:
        """A comparable picture: entries (key, cookie), meters (id, rate, burst), groups (id, ports)."""
        return (sorted((repr(k), f.cookie) for k, f in self.flows.items()),
                sorted((m.meter_id, m.rate_kbps, m.burst_kb) for m in self.meters.values()),
                sorted((g.group_id, g.bucket_ports()) for g in self.groups.values()))

    # ------------------------------------------------------------------ forwarding
    def _lookup(self, table: int, frame: Frame, in_port: int) -> FlowSpec | None:
        best = None
        for f in self.flows.values():
            if f.table_id != table:
                continue
            if all(_field_matches(k, v, frame, in_port) for k, v in f.match.items()):
                if best is None or f.priority > best.priority:
                    best = f
        return best

    def process(self, frame: Frame, in_port: int) -> list[Out]:
        """Every copy of ``frame`` (arriving on ``in_port``) that leaves the switch."""
        outs: list[Out] = []
        hits: list[Hit] = []
        table: int | None = 0
        while table is not None:
            f = self._lookup(table, frame, in_port)
            if f is None:
                break
            hits.append(Hit(self.dpid, table, f.cookie))
            table = None
            for ins in f.instructions:
                if ins["type"] == "apply":
                    frame = self._actions(ins["actions"], frame, in_port, outs, tuple(hits))
                elif ins["type"] == "goto":
                    if ins["table"] <= f.table_id:
                        raise FakeSwitchError("goto must go forward")
                    table = ins["table"]
        return outs

    def _actions(self, actions: list[dict[str, Any]], frame: Frame, in_port: int, outs: list[Out],
                 hits: tuple[Hit, ...]) -> Frame:
        for a in actions:
            t = a["type"]
            if t == "push_vlan":
                frame = replace(frame, vlans=((0, 0),) + frame.vlans)
            elif t == "pop_vlan":
                frame = replace(frame, vlans=frame.vlans[1:])
            elif t == "set_vlan":
                frame = replace(frame, vlans=((a["vid"], frame.vlans[0][1]),) + frame.vlans[1:])
            elif t == "set_vlan_pcp":
                frame = replace(frame, vlans=((frame.vlans[0][0], a["pcp"]),) + frame.vlans[1:])
            elif t == "set_queue":
                pass
            elif t == "output":
                port = a["port"]
                outs.append(Out(CONTROLLER if port == OFPP_CONTROLLER else port, frame, hits))
            elif t == "group":
                for bucket in self.groups[a["group_id"]].buckets:
                    self._actions(bucket, frame, in_port, outs, hits)
            else:
                raise ValueError(f"fake switch: unknown action {t}")
        return frame


@dataclass
class Delivery:
    """A copy of a sent frame that reached a host port (``host`` is its name), with every entry
    it hit on the way."""

    host: str
    frame: Frame
    hits: tuple[Hit, ...]
    switches: tuple[int, ...]


@dataclass
class Trace:
    """Where one sent frame went: host deliveries, packet-ins, and copies dropped by a miss."""

    delivered: list[Delivery] = field(default_factory=list)
    to_controller: list[int] = field(default_factory=list)


class FakeNetwork:
    """Fake switches wired as ``plan`` says: inter-switch ports to each other, host ports to hosts."""

    def __init__(self, plan: HostPlan) -> None:
        self.plan = plan
        self.switches = {plan.dpid(n): FakeSwitch(plan.dpid(n)) for n in plan.topology.nodes}
        self._peer = {(plan.dpid(u), p): (plan.dpid(v), plan.port(v, u)) for (u, v), p in plan.link_ports().items()}
        self._host = {(plan.dpid(h.switch), h.port): h for h in plan.hosts}

    def apply(self, changes: Iterable[Change]) -> None:
        for c in changes:
            self.switches[c.dpid].apply(c)

    def run(self, program: Program) -> None:
        """Every phase of ``program``, in order."""
        for phase in program.phases:
            self.apply(phase.changes)

    def state(self) -> dict[int, tuple]:
        return {d: s.state() for d, s in self.switches.items()}

    def send(self, host: str, frame: Frame) -> Trace:
        """``frame`` sent by ``host`` into its switch port; follows every copy to hosts."""
        h = self.plan.host(host)
        trace = Trace()
        todo = [(self.plan.dpid(h.switch), h.port, frame, (), ())]
        steps = 0
        while todo:
            dpid, port, fr, hits, path = todo.pop()
            steps += 1
            if steps > MAX_HOPS * 16:
                raise FakeSwitchError("forwarding loop")
            for out in self.switches[dpid].process(fr, port):
                all_hits = hits + out.hits
                if out.port == CONTROLLER:
                    trace.to_controller.append(dpid)
                elif (dpid, out.port) in self._peer:
                    nxt, nport = self._peer[(dpid, out.port)]
                    if len(path) > MAX_HOPS:
                        raise FakeSwitchError("forwarding loop")
                    todo.append((nxt, nport, out.frame, all_hits, path + (dpid,)))
                elif (dpid, out.port) in self._host:
                    trace.delivered.append(Delivery(self._host[(dpid, out.port)].name, out.frame, all_hits,
                                                    path + (dpid,)))
        return trace


def frame_between(plan: HostPlan, src: str, dst: str, **kw: Any) -> Frame:
    """An untagged IPv4/UDP frame from host ``src`` to host ``dst`` (fields overridable)."""
    s, d = plan.host(src), plan.host(dst)
    base = dict(eth_src=s.mac, eth_dst=d.mac, ipv4_src=s.ip, ipv4_dst=d.ip, ip_proto=17, udp_dst=5000)
    base.update(kw)
    return Frame(**base)


# ---------------------------------------------------------------------------------------------
# test networks
def ring_plan(tenants: Iterable[int] = (1, 2)) -> HostPlan:
    """A square A-B-C-D-A (A-B-C short, A-D-C long, 1 Gb/s links) plus a stub E off C; each tenant
    has a host at A, C and E, tenant 1 a second host at C."""
    t = Topology("fakering")
    for n in "ABCDE":
        t.add_node(n)
    for a, b, km in (("A", "B", 100), ("B", "C", 100), ("A", "D", 300), ("D", "C", 300), ("C", "E", 50)):
        t.add_link(a, b, km, capacity_bps=10**9)
    attach = [(tn, n) for tn in tenants for n in "ACE"] + [(1, "C")]
    return HostPlan.build(t, attach)


def reservation(rid: str, path: list[str], *, tenant: int = 1, bw: int = 10_000_000,
                protection: list[str] | None = None, match: dict | None = None) -> Reservation:
    """A committed reservation on ``path`` (slots are irrelevant to the data plane)."""
    return Reservation(id=rid, tenant=tenant, src=path[0], dst=path[-1], period_ns=1_000_000,
                       frame_bytes=bw // 8000, bandwidth_bps=bw, max_latency_ns=10**7, latency_bound_ns=10**6,
                       jitter_bound_ns=1000, path=list(path), hops=[Hop(a, b, [0]) for a, b in zip(path, path[1:])],
                       tx_offsets_ns=[0], match=dict(match or {}), protection_path=list(protection) if protection else None)


def link_bps(reservations: Iterable[Reservation]) -> dict[tuple[str, str], int]:
    """Reserved bit/s per directed link, every path of every reservation counted (what the
    service's ``link_reserved_bps`` says)."""
    out: dict[tuple[str, str], int] = {}
    for r in reservations:
        for p in r.all_paths():
            for link in zip(p, p[1:]):
                out[link] = out.get(link, 0) + int(r.bandwidth_bps)
    return out


def programmed(plan: HostPlan, reservations: list[Reservation], *, failed: Iterable[tuple[str, str]] = ()
               ) -> Program:
    """Every switch resynchronised from empty to hold ``reservations`` (the state after connect)."""
    net = FakeNetwork(plan)
    phases: list[Phase] = []
    for node in plan.topology.nodes:
        phases += programs.resync(plan, node, reservations, net.switches[plan.dpid(node)].dump(),
                                  failed=set(failed)).phases
    return Program(phases)


# ---------------------------------------------------------------------------------------------
# checking a program phase by phase
def windows(program: Program) -> list[list[Phase]]:
    """The program cut where the shim waits: inside a window, each switch runs its changes in
    phase order (its barriers) but switches progress independently."""
    out: list[list[Phase]] = [[]]
    for p in program.phases:
        out[-1].append(p)
        if p.wait:
            out.append([])
    return [w for w in out if w]


def intermediate_states(net_factory: Callable[[], FakeNetwork], before: Program, program: Program
                        ) -> Iterable[tuple[str, FakeNetwork]]:
    """Every network state a frame may meet while ``program`` runs after ``before``: for each
    window, every combination of per-switch progress (each switch at any phase boundary of the
    window). Yields (label, network)."""
    done: list[Phase] = []
    for wi, window in enumerate(windows(program)):
        dpids = sorted({c.dpid for p in window for c in p.changes})
        per_switch = {d: [[c for c in p.changes if c.dpid == d] for p in window] for d in dpids}
        steps = {d: [k for k, chunk in enumerate(per_switch[d]) if chunk] for d in dpids}
        for progress in itertools.product(*[range(len(steps[d]) + 1) for d in dpids]):
            net = net_factory()
            net.run(before)
            for p in done:
                net.apply(p.changes)
            for d, n in zip(dpids, progress):
                for k in steps[d][:n]:
                    net.apply(per_switch[d][k])
            yield f"window {wi} progress {dict(zip(dpids, progress))}", net
        done += window
