"""Emulated training: a job's sites train for real on the Mininet backbone, with and without reservations.

``dnctl training run JOB --emulate`` and ``dnctl demo`` use this module. One run:

1. **stack** (``Stack``, a ``tools.emulation.stack.NetworkStack``): the controller (``dnctl controller``
   as a child process: temporary state file, free ports, an admin token) and the controller-attached
   fntf40 emulation (``tools.emulation.network.Emulation``), rates scaled by ``scale``;
2. **tenants**: the training tenant (id 1: one host per site city) and interference tenants (one per
   ring hop: a host at the hop's sending city and one at its receiving city), created over REST;
3. **interference**: each interference tenant floods UDP (``iperf3 -u``) from the hop's sending
   city to its receiving city. Best-effort forwarding takes the same shortest path as the
   reservation, so the flood shares every link of the training flow; its default rate is 0.8x
   the path's narrowest link (scaled): flood + training ask for 1.3x the link, saturating it;
4. **deterministic run**: the plan's flows are reserved (site i -> site i+1 at the job's channel
   rate) plus a small reverse reservation per flow for its TCP ACKs (5% of the channel: the data
   is TCP, and an ACK stuck behind a flood stalls the sender as surely as lost data would); then
   one ``tools.runs.train_agent`` per site runs the iterations;
5. **best-effort run**: the reservations are deleted, the same interference keeps running, the
   same agents run the same job again;
6. **baseline**: one site runs the same compute pauses with no WAN exchange (measured, in a site
   host while the interference runs, so it carries the same scheduling noise).

Links (``links``): "priority" (default): every inter-switch link is an HTB at its scaled
capacity with two classes, reserved frames (the controller marks them PCP 7 in the network's VLAN
tag at the ingress) served strictly first, best effort in the rest (``priority_tc_batch``); the
controller's meters keep each reservation at its rate and best effort at 90% of what the
reservations leave. "fifo": the emulation's own HTB, one FIFO for both classes (reserved frames
wait behind queued best effort). "none": no shaping, the meters alone (docs/emulation.md,
"Links, queues and policing").

Scaling: ``scale`` multiplies every rate (link capacities, reservations, the job's channel) and the
bytes the agents move, and leaves times alone. The controller schedules that miniature itself
(``tools.emulation.miniature``: capacities x scale, a slot that fits its frames, meters unscaled)
and reservations are requested at the emulated rates, so its bounds and offsets are the emulated
network's. An emulated iteration therefore lasts as
long as the modelled one (minus propagation: this machine's emulation has no netem delay), and
the analytic model's estimate is directly comparable.

Gates (``gates``: "auto", "on", "off"): 802.1Qbv ``taprio`` on every port that carries a reservation,
its gate control list the controller's schedule (``tools.emulation.gates.GateKeeper``), where the
kernel has taprio ("auto"; in the project's TCG guest only when asked, docs/gates.md). The
deterministic run starts only once every reserved port is gated and reads back equal to the
schedule; after that run (and the demo's verification) the ports are read back once more, and
``result["gates"]`` is the keeper's report from then (or ``enabled: false`` and why).

Each training host shapes its own egress to 95% of the scaled channel (``tc tbf``), in both runs:
a site's WAN rate is the job's channel either way; the talker (here TCP) staying under its
reserved rate is what DetNet asks of a talker. Iteration time is the ring's: the maximum over
sites of each iteration's time; the first iteration (TCP slow start on fresh connections) is
reported but left out of the statistics.

Everything started here is stopped on success, failure and Ctrl-C (processes in the hosts first,
then the emulation, then the controller).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from controller.dataplane.routing import best_effort_path as _be_path
from controller.dataplane.translation import RESERVED_PCP
from schedules import training_plan
from schedules.training import JobError, load_job
from schedules.training_model import collective_shape, estimate
from tools.client import ApiError
from tools.emulation import ovs
from tools.emulation.controller_proc import ControllerProcessError
from tools.emulation.gates import GatesNotInPlace
from tools.emulation.miniature import scaled_bps
from tools.emulation.network import EmulationError, write_plan
from tools.emulation.patience import patience
from tools.emulation.progress import Progress, quiet
from tools.emulation.stack import GATE_MODES, NetworkStack
from tools.runs.scales import DEFAULT_SCALE
from topologies.emulated import host_intf_name, switch_intf_name
from topologies.hosts import HostPlan
from topologies.loaders import load_topology
from topologies.model import TopologyError

#: the repository (the working directory of the processes started in hosts)
REPO = Path(__file__).resolve().parents[2]
#: interference rate (auto) as a multiple of the narrowest link of the flow's path: below the
#: best-effort meters (90% of a free link) so best-effort TCP keeps a little room in the best-effort run
INTERFERENCE_FACTOR = 0.8
#: training hosts shape their egress to this share of the scaled channel
SHAPE_SHARE = 0.95
#: reverse (ACK) reservations, as a share of the channel
ACK_SHARE = 0.05
#: iterations left out of the statistics (TCP slow start on fresh connections)
WARMUP = 1
TRAINING_TENANT = 1
AGENT_PORT = 5301
FLOOD_PORT0 = 5201



class RunError(RuntimeError):
    """The emulated run could not be done; one line saying why."""


# ----- the plan of the run (pure) -------------------------------------------------------------

@dataclass
class Interference:
    """One interference flow: tenant, sending and receiving city, emulated rate (bit/s)."""

    tenant: int
    src: str
    dst: str
    rate_bps: float
    port: int
    shared_links: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "src": self.src, "dst": self.dst, "rate_bps": round(self.rate_bps),
                "port": self.port, "shared_links": [list(l) for l in self.shared_links]}


@dataclass
class RunPlan:
    """Who is where: the host plan, the job's flows, the interference flows and the tenants."""

    job: Any
    topology: Any
    hosts: Any                      # topologies.hosts.HostPlan
    flows: list[Any]                # schedules.training_plan.PlannedFlow
    interference: list[Interference]
    tenants: int
    scale: float
    topology_spec: str = "fntf40"   # what the controller is given (name or file)

    @property
    def site_hosts(self) -> list[Any]:
        return [self.host(TRAINING_TENANT, s) for s in self.job.sites]

    def host(self, tenant: int, city: str) -> Any:
        for h in self.hosts.host_ports(city):
            if h.tenant == tenant:
                return h
        raise KeyError(f"no host of tenant {tenant} at {city}")

    def reference_host(self, city: str) -> Any:
        """The training tenant's second host at ``city`` (``make_plan(reference_hosts=True)``), or None."""
        mine = [h for h in self.hosts.host_ports(city) if h.tenant == TRAINING_TENANT]
        return mine[1] if len(mine) > 1 else None

    @property
    def volume_bytes(self) -> int:
        """Bytes one site sends per iteration in the emulation (the job's volume x scale)."""
        return max(1, int(collective_shape(self.job)[0] * self.scale))

    @property
    def channel_bps(self) -> float:
        """The job's channel rate in the emulation."""
        return self.job.channel_bps * self.scale

    def reservation_requests(self, acks: bool = True) -> list[dict[str, Any]]:
        """The plan's requests at the emulated rates (model rate x ``scale``: the controller schedules
        the miniature, ``tools.emulation.miniature``) with host matches, plus one reverse request per
        flow for its ACKs (unless that direction is a flow already)."""
        reqs = self._model_requests(acks)
        for r in reqs:
            r["bandwidth_bps"] = scaled_bps(r["bandwidth_bps"], self.scale, r["period_ns"])
        return reqs

    def _model_requests(self, acks: bool) -> list[dict[str, Any]]:
        reqs = []
        forward = {(f.request["src"], f.request["dst"]) for f in self.flows}
        for f in self.flows:
            r = dict(f.request)
            s, d = self.host(TRAINING_TENANT, r["src"]), self.host(TRAINING_TENANT, r["dst"])
            r["match"] = {"ip_src": s.ip, "ip_dst": d.ip}
            reqs.append(r)
            if acks and (r["dst"], r["src"]) not in forward:
                prop = training_plan.shortest_propagation_ns(self.topology, r["dst"], r["src"])
                reqs.append({"id": f"{r['id']}-ack", "tenant": TRAINING_TENANT, "src": r["dst"], "dst": r["src"],
                             "bandwidth_bps": max(1_000_000, int(r["bandwidth_bps"] * ACK_SHARE)),
                             "period_ns": r["period_ns"], "max_latency_ns": training_plan.default_max_latency_ns(prop),
                             "match": {"ip_src": d.ip, "ip_dst": s.ip}})
        return reqs

    def to_dict(self) -> dict[str, Any]:
        return {"job": self.job.name, "topology": self.topology.name, "scale": self.scale,
                "tenants": self.tenants, "hosts": len(self.hosts.hosts),
                "site_hosts": {h.switch: {"name": h.name, "ip": h.ip} for h in self.site_hosts},
                "volume_bytes_per_site": self.volume_bytes, "channel_bps": round(self.channel_bps),
                "flows": [f.to_dict() for f in self.flows],
                "interference": [i.to_dict() for i in self.interference]}


def best_effort_path(topology: Any, src: str, dst: str) -> list[str]:
    """The path best-effort frames take: the data plane's best-effort routing (``controller.dataplane.routing``)."""
    return _be_path(topology.graph, src, dst)


def make_plan(job: Any, topology: Any, *, scale: float = DEFAULT_SCALE, tenants: int | None = None,
              interference: str | float | None = "auto", extra_hosts: bool = True,
              reference_hosts: bool = False) -> RunPlan:
    """Host plan and flows of an emulated run.

    Tenant 1 trains (a host per site). Each ring hop gets an interference tenant (2, 3, ...; with
    fewer tenants they are shared round-robin) with hosts at the hop's two cities. Further tenants
    (up to ``tenants``) get one host each, spread over the cities, so the controller and the
    isolation audit see them. ``interference``: 'auto' (0.8x the narrowest link of the path),
    'off'/None, or a model-unit rate in bit/s (scaled like every rate). ``reference_hosts``: a
    second training host at every site, attached last (``RunPlan.reference_host``), the source of
    the reference flow that measures the platform's noise floor (docs/verification.md).
    """
    training_plan.check_sites(job, topology)
    flows = training_plan.plan(job, topology, tenant=TRAINING_TENANT)
    hops = [(f.request["src"], f.request["dst"]) for f in flows]
    if tenants is None:
        tenants = 1 + len(hops)
    if tenants < 1:
        raise RunError("tenants must be at least 1")
    if interference not in (None, "off") and tenants < 2:
        raise RunError("interference needs at least 2 tenants (the training tenant is one)")
    attach: list[tuple[int, str]] = [(TRAINING_TENANT, s) for s in job.sites]
    inter: list[Interference] = []
    if interference not in (None, "off"):
        itenants = list(range(2, min(tenants, 1 + len(hops)) + 1))
        for i, (src, dst) in enumerate(hops):
            t = itenants[i % len(itenants)]
            path = best_effort_path(topology, src, dst)
            links = list(zip(path, path[1:]))
            if interference == "auto":
                rate = INTERFERENCE_FACTOR * min(topology.capacity_bps(a, b) for a, b in links) * scale
            else:
                rate = float(interference) * scale
            inter.append(Interference(t, src, dst, rate, FLOOD_PORT0 + i, links))
            for city in (src, dst):
                if (t, city) not in attach:
                    attach.append((t, city))
    used = {t for t, _ in attach}
    if extra_hosts:
        cities = list(topology.nodes)
        k = 0
        for t in range(2, tenants + 1):
            if t not in used:
                attach.append((t, cities[k % len(cities)]))
                k += 7   # spread over the map
    if reference_hosts:
        attach += [(TRAINING_TENANT, s) for s in job.sites]
    hosts = HostPlan.build(topology, attach)
    return RunPlan(job, topology, hosts, flows, inter, tenants, scale)


# ----- statistics (pure) --------------------------------------------------------------------

def ring_iterations(per_rank: dict[int, list[dict[str, Any]]]) -> list[float]:
    """The ring's iteration times: per iteration, the slowest site's (they are synchronous)."""
    if not per_rank:
        return []
    n = min(len(v) for v in per_rank.values())
    return [max(per_rank[r][i]["iteration_s"] for r in per_rank) for i in range(n)]


def summarize(times: list[float], baseline_s: float | None = None, warmup: int = WARMUP) -> dict[str, Any]:
    """mean, p50, p99, max, min, spread (p99/mean), efficiency (baseline/mean) over ``times[warmup:]``."""
    kept = np.asarray(times[warmup:] if len(times) > warmup else times, dtype=float)
    if not len(kept):
        return {"iterations": 0}
    mean = float(kept.mean())
    out = {"iterations": int(len(kept)), "warmup": min(warmup, len(times)), "mean_s": mean,
           "p50_s": float(np.percentile(kept, 50)), "p99_s": float(np.percentile(kept, 99)),
           "min_s": float(kept.min()), "max_s": float(kept.max()), "std_s": float(kept.std()),
           "spread": float(np.percentile(kept, 99)) / mean, "iterations_s": [round(t, 6) for t in times]}
    if baseline_s:
        out["efficiency"] = baseline_s / mean
    return out


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    out = []
    with contextlib.suppress(FileNotFoundError):
        for line in Path(path).read_text().splitlines():
            line = line.strip()
            if line:
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
    return out


# ----- links: HTB with a priority class for reserved frames ---------------------------------------

LINK_MODES = {"priority": "htb, reserved (PCP 7) served first", "fifo": "htb, one FIFO for both classes",
              "none": "unshaped, meters only"}


def priority_tc_batch(topology: Any, plan: Any, scale: float, *, delay_scale: float | None = None,
                      classifier: str = "u32") -> str:
    """``tc -batch`` input: each inter-switch port (root namespace) gets an HTB at the link's
    capacity x ``scale`` with class 5:10 (prio 0, rate = ceil = capacity) for frames whose VLAN
    tag carries PCP 7 (``controller.dataplane.translation.RESERVED_PCP``, set by the reservation's ingress
    entry) and class 5:20 (prio 1, borrows up to capacity) for everything else.

    ``delay_scale`` (where netem works): each class then holds a netem with the link's propagation
    x ``delay_scale``, as ``topologies.emulated.tc_batch`` puts under its HTB (this HTB replaces
    that one, so without it the links would lose their propagation).

    ``classifier``: ``u32`` reads the tag's TCI 4 bytes before the network header, which is where
    userspace Open vSwitch's frames carry it on veths (AF_PACKET, tag inline; verified here, and
    this host kernel has no flower classifier). ``flower`` (``vlan_prio``) for the kernel datapath:
    it hands tc the tag as metadata (accelerated VLAN), which u32 at -4 cannot see; flower reads both.
    """
    if classifier not in ("u32", "flower"):
        raise ValueError(f"classifier {classifier!r}: expected u32 or flower")
    lines = []
    pcp = (RESERVED_PCP & 7) << 13
    for (u, v), port in plan.link_ports().items():
        dev = switch_intf_name(plan.switch_name(u), port)
        kbit = max(8, int(topology.capacity_bps(u, v) * scale) // 1000)
        lines += [f"qdisc add dev {dev} root handle 5: htb default 20",
                  f"class add dev {dev} parent 5: classid 5:1 htb rate {kbit}kbit ceil {kbit}kbit burst 15k",
                  f"class add dev {dev} parent 5:1 classid 5:10 htb rate {kbit}kbit ceil {kbit}kbit prio 0 "
                  "burst 15k quantum 1600",
                  f"class add dev {dev} parent 5:1 classid 5:20 htb rate 8kbit ceil {kbit}kbit prio 1 "
                  "burst 15k quantum 1600"]
        if classifier == "u32":
            lines.append(f"filter add dev {dev} parent 5: prio 1 protocol all u32 match u16 {pcp:#06x} 0xe000 "
                         "at -4 classid 5:10")
        else:
            lines.append(f"filter add dev {dev} parent 5: prio 1 protocol 802.1q flower vlan_prio "
                         f"{RESERVED_PCP & 7} classid 5:10")
        prop = int(topology.propagation_ns(u, v))
        if delay_scale is not None and prop > 0:
            us = max(1, round(prop * delay_scale / 1000))
            limit = max(1000, math.ceil(2 * kbit * 1000 * us / 1e6 / (1500 * 8)))
            for cls in (10, 20):
                lines.append(f"qdisc add dev {dev} parent 5:{cls} handle {cls}: netem delay {us}us limit {limit}")
    return "".join(l + "\n" for l in lines)


def apply_priority_links(emu: Any, scale: float) -> None:
    """Shape every inter-switch link of the running emulation ``emu`` with ``priority_tc_batch``
    (replacing whatever root qdisc the emulation put there, and keeping its propagation where
    netem emulates it); RunError when tc refuses."""
    topology, plan = emu.topology, emu.plan
    old = "".join(f"qdisc del dev {switch_intf_name(plan.switch_name(u), port)} root\n"
                  for (u, _v), port in plan.link_ports().items())
    subprocess.run(["tc", "-force", "-batch", "-"], input=old, capture_output=True, text=True, timeout=120)
    batch = priority_tc_batch(topology, plan, scale, delay_scale=emu.delay_scale if emu.delayed else None,
                              classifier="flower" if emu.datapath == "kernel" else "u32")
    res = subprocess.run(["tc", "-force", "-batch", "-"], input=batch, capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise RunError("cannot shape the links with a priority class: "
                       + (res.stderr.strip().splitlines() or ["tc failed"])[-1][:200])


# ----- the running stack ------------------------------------------------------------------------

class Stack(NetworkStack):
    """The run's ``NetworkStack``: the controller and the controller-attached emulation of the run's
    plan, its links shaped as ``links`` says, an admin REST client (``api``), and the processes in
    its hosts (``popen``) with their logs in ``workdir/logs``.

    ``with Stack(plan, workdir) as st:`` brings everything up; leaving the block (normally, on an
    exception or on Ctrl-C) stops host processes, the emulation and the controller, in that order.
    """

    def __init__(self, run: RunPlan, workdir: str | Path, progress: Progress = quiet,
                 lldp_interval: float = 2.0, links: str = "priority", delay_scale: float = 1.0,
                 gates: str = "auto"):
        if links not in LINK_MODES:
            raise RunError(f"links {links!r}: expected one of {', '.join(LINK_MODES)}")
        self.run, self.workdir, self.links = run, Path(workdir), links
        self.api: Any = None
        # "priority" shapes the links itself after the start; "fifo" is the emulation's own HTB
        super().__init__(run.topology, run.hosts, link_scale=run.scale, shape_links=links == "fifo",
                         controller_topology=run.topology_spec, hosts_file=self.workdir / "hosts.json",
                         db=self.workdir / "controller.db", log_dir=self.workdir, lldp_interval=lldp_interval,
                         start_timeout=30.0, connect_timeout=90.0, verbose=False, progress=progress,
                         miniature=True, periods_ns=tuple(int(f.request["period_ns"]) for f in run.flows),
                         delay_scale=delay_scale, gates=GATE_MODES[gates])

    # -- lifecycle --
    def start(self) -> "Stack":
        self.workdir.mkdir(parents=True, exist_ok=True)
        write_plan(self.run.hosts, self.workdir / "hosts.json")
        for old in ("controller.db", "controller.log"):
            (self.workdir / old).unlink(missing_ok=True)
        try:
            super().start()
        except (EmulationError, ControllerProcessError) as e:
            raise RunError(f"{str(e).splitlines()[0]} (see {self.workdir / 'controller.log'})") from None
        if self.links == "priority":
            apply_priority_links(self.emu, self.run.scale)
        self.api = self.ctl.client(timeout=30)
        self.progress(f"emulation: up, {len(self.run.topology.nodes)} switches connected in "
                      f"{self.timings['emulation_s']:.1f} s (datapath {self.emu.datapath}, links x{self.run.scale:g}: "
                      f"{LINK_MODES[self.links]}" + (f"; {self.tx_buffer.describe()}" if self.tx_buffer else "")
                      + (f"; ovs-vswitchd on {ovs.allocator(self.tx_buffer.pid)}"
                         if self.tx_buffer and self.tx_buffer.pid else "")
                      + (f"; {self.emu.veth_order.describe()}" if self.emu.veth_order else "") + ")")
        return self

    def stop(self) -> None:
        """Close the REST client, then the ``NetworkStack`` tear-down. Idempotent."""
        if self.api is not None:
            api, self.api = self.api, None
            with contextlib.suppress(Exception):
                api.close()
        super().stop()

    # -- processes in hosts --
    def node(self, host: Any) -> Any:
        return self.emu.net.get(host.name)

    def popen(self, host: Any, argv: list[str], log_name: str, tag: str) -> subprocess.Popen:
        """Start ``argv`` inside ``host``'s namespace (kept under ``tag`` in ``procs``); stdout+stderr to
        ``workdir/logs/log_name``."""
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        with open(logs / log_name, "w") as f:
            p = self.node(host).popen(argv, stdout=f, stderr=subprocess.STDOUT, cwd=str(REPO),
                                      env=dict(os.environ, PYTHONUNBUFFERED="1"))
        return self.procs.add(p, tag)

    def sh(self, host: Any, cmd: str) -> str:
        return self.node(host).cmd(cmd)


# ----- phases -----------------------------------------------------------------------------------

def api_retry(call: Callable[..., Any], *args: Any, tries: int = 50) -> Any:
    """``call(*args)``, retried while the controller answers 429 (its per-principal rate limit)."""
    for i in range(tries):
        try:
            return call(*args)
        except ApiError as e:
            if e.status != 429 or i == tries - 1:
                raise
            time.sleep(0.1 + 0.05 * i)


def create_tenants(st: Stack) -> list[dict[str, Any]]:
    """Tenants 1..N over REST (ids must come out as the host plan numbered them)."""
    out = []
    have = {t["id"] for t in api_retry(st.api.get, "/v1/tenants").get("tenants", [])}
    for t in range(1, st.run.tenants + 1):
        if t in have:
            continue
        name = "training" if t == TRAINING_TENANT else f"tenant-{t}"
        r = api_retry(st.api.post, "/v1/tenants", {"name": name, "quota_bps": None, "max_reservations": None})
        if int(r["id"]) != t:
            raise RunError(f"controller gave tenant {name} id {r['id']}, the host plan expects {t}")
        out.append({k: r[k] for k in ("id", "name")})
    return out


def shape_sites(st: Stack) -> None:
    """Every training host shapes its egress to SHAPE_SHARE of the scaled channel (tbf)."""
    rate = int(st.run.channel_bps * SHAPE_SHARE)
    for h in st.run.site_hosts:
        out = st.sh(h, f"tc qdisc replace dev {host_intf_name(h)} root tbf rate {rate}bit burst 3028 "
                       f"latency 400ms && echo TC-OK")
        if "TC-OK" not in out:
            raise RunError(f"cannot shape {h.name}'s egress: {out.strip()[-200:]}")


def start_interference(st: Stack) -> list[dict[str, Any]]:
    """iperf3 servers at the receiving hosts, UDP floods from the sending hosts (until stopped)."""
    started = []
    for i, it in enumerate(st.run.interference):
        src, dst = st.run.host(it.tenant, it.src), st.run.host(it.tenant, it.dst)
        st.popen(dst, ["iperf3", "-s", "-p", str(it.port)], f"iperf3-server-{i}.log", "flood")
        started.append((i, it, src, dst))
    time.sleep(0.5)
    for i, it, src, dst in started:
        st.popen(src, ["iperf3", "-c", dst.ip, "-u", "-b", str(int(it.rate_bps)), "-l", "1400", "-t", "0",
                       "-p", str(it.port), "-i", "0"], f"iperf3-flood-{i}.log", "flood")
    time.sleep(1.0)
    dead = [p for p in st.procs.tagged("flood") if p.poll() is not None]
    if dead:
        raise RunError(f"{len(dead)} interference process(es) exited at once; see {st.workdir / 'logs'}")
    return [it.to_dict() for it in st.run.interference]


def reserve(st: Stack, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """POST every request; raise RunError on the first rejection."""
    made = []
    for r in requests:
        try:
            made.append(api_retry(st.api.post, "/v1/reservations", r))
        except ApiError as e:
            raise RunError(f"reservation {r['id']} ({r['src']} -> {r['dst']}) not admitted: {e}") from None
    return made


def wait_gated(st: Stack, reservations: list[dict[str, Any]], progress: Progress = quiet,
               timeout_s: float = 60.0) -> None:
    """With gates on, wait until every port the ``reservations`` cross is gated and reads back equal to
    the schedule (``GateKeeper.wait_gated``; ``timeout_s`` stretched in the VM); RunError if not."""
    if st.gates is None:
        return
    links = {f"{u}->{v}" for r in reservations for u, v in zip(r["path"], r["path"][1:])}
    try:
        s = st.gates.wait_gated(links, patience(timeout_s))
    except GatesNotInPlace as e:
        raise RunError(str(e)) from None
    progress(f"gates: {s['ports_gated']} ports gated (taprio), read back equal to the schedule")


def release(st: Stack, reservations: list[dict[str, Any]]) -> None:
    for r in reservations:
        api_retry(st.api.delete, f"/v1/reservations/{r['id']}")


def run_agents(st: Stack, label: str, iterations: int, timeout_s: float | None = None) -> dict[str, Any]:
    """One train_agent per site; wait for all; the ring's iteration times."""
    job, run = st.run.job, st.run
    hosts = run.site_hosts
    peers = ",".join(f"{h.ip}:{AGENT_PORT}" for h in hosts)
    outdir = st.workdir / label
    outdir.mkdir(exist_ok=True)
    procs = []
    for rank, h in enumerate(hosts):
        out = outdir / f"rank{rank}.jsonl"
        with contextlib.suppress(FileNotFoundError):
            out.unlink()
        argv = [sys.executable, "-m", "tools.runs.train_agent", "--rank", str(rank), "--peers", peers,
                "--volume-bytes", str(run.volume_bytes), "--forward-s", repr(job.forward_s),
                "--backward-s", repr(job.backward_s), "--overlap", repr(job.overlap),
                "--iterations", str(iterations), "--timeout", "120", "--out", str(out)]
        procs.append((rank, st.popen(h, argv, f"{label}-rank{rank}.log", "agent"), out))
    if timeout_s is None:
        timeout_s = 60 + iterations * (job.compute_s + 30)
    deadline = time.monotonic() + timeout_s
    try:
        for rank, p, _ in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise RunError(f"{label} run: site {rank} did not finish within {timeout_s:.0f} s") from None
    finally:
        st.procs.stop_all("agent")
    per_rank = {rank: read_jsonl(out) for rank, _, out in procs}
    bad = [rank for rank, p, _ in procs if p.returncode != 0 or not per_rank[rank]]
    if bad:
        log = st.workdir / "logs" / f"{label}-rank{bad[0]}.log"
        tail = log.read_text().strip().splitlines()[-1:] if log.exists() else []
        raise RunError(f"{label} run: site {bad[0]} failed ({tail[0][-200:] if tail else 'no output'})")
    return {"per_rank": per_rank, "iterations": ring_iterations(per_rank)}


BASELINE_CODE = r"""
import json, sys, threading, time
fwd, bwd, n = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    t0 = time.perf_counter()
    time.sleep(fwd)
    b = threading.Thread(target=time.sleep, args=(bwd,)); b.start(); b.join()
    print(json.dumps({"iteration": i, "iteration_s": time.perf_counter() - t0}), flush=True)
"""


def run_baseline(st: Stack, iterations: int) -> dict[str, Any]:
    """Single-site baseline: the agent's compute pauses, no WAN exchange, in a site host."""
    job = st.run.job
    h = st.run.site_hosts[0]
    out = st.workdir / "baseline.jsonl"
    p = st.node(h).popen([sys.executable, "-c", BASELINE_CODE, repr(job.forward_s), repr(job.backward_s),
                          str(iterations)], stdout=open(out, "w"), stderr=subprocess.DEVNULL)
    st.procs.add(p, "baseline")
    try:
        p.wait(30 + iterations * job.compute_s * 2)
    finally:
        st.procs.stop_all("baseline")
    times = [r["iteration_s"] for r in read_jsonl(out)]
    if not times:
        raise RunError("baseline run produced no iterations")
    return {"iterations": times, "mean_s": float(np.mean(times)), "nominal_s": job.compute_s}


# ----- the whole run ------------------------------------------------------------------------------

@dataclass
class RunOptions:
    job: str
    topology: str = "fntf40"
    scale: float = DEFAULT_SCALE
    network: str = "both"                  # deterministic | best-effort | both
    interference: str | float | None = "auto"
    iterations: int | None = None
    out: str | None = None
    tenants: int | None = None
    links: str = "priority"                # priority | fifo | none (module doc)
    reference_hosts: bool = False          # a second training host per site (the demo's noise floor)
    delay_scale: float = 1.0               # propagation factor where netem emulates it
    gates: str = "auto"                    # 802.1Qbv gates: auto | on | off (module doc)


def model_estimates(job: Any, topology: Any, interference_bps: float) -> dict[str, Any]:
    """The analytic model's estimate for both networks (same numbers as ``dnctl training estimate``)."""
    det_delay, be_delay, _ = training_plan.hop_delays(job, topology)
    return {"deterministic": estimate(job, det_delay, network="deterministic",
                                      interference_bps=interference_bps).to_dict(),
            "best-effort": estimate(job, be_delay, network="best-effort",
                                    interference_bps=interference_bps).to_dict()}


def as_run_estimate(job: Any, run: RunPlan, reservations: list[dict[str, Any]], slot_ns: int | None
                    ) -> dict[str, Any] | None:
    """The model's deterministic estimate for the network that actually ran: each ring round waits
    the largest latency bound the controller computed for the ring's reservations (the miniature's:
    its store-and-forward at the emulated rates, and propagation only where the links carry it)
    plus one slot of jitter. ``model_estimates`` uses the full-size network's bounds instead; this
    one is what the measured deterministic run is compared with. None without reservations."""
    ring = {f.request["id"] for f in run.flows}
    bounds = [r["latency_bound_ns"] for r in reservations if r.get("id") in ring and r.get("latency_bound_ns")]
    if not bounds:
        return None
    jitter_s = (slot_ns or job.period_ns) / 1e9
    return estimate(job, max(bounds) / 1e9, network="deterministic", jitter_s=jitter_s).to_dict()


def model_interference_bps(run: RunPlan) -> float:
    """The interference the model's best-effort channel sees, in model units: the part of the
    flood beyond the free share of the narrowest shared link (capacity - the job's channel),
    worst over the flows; the flood fills the idle part of the link first."""
    worst = 0.0
    for i in run.interference:
        cap = min(run.topology.capacity_bps(a, b) for a, b in i.shared_links)
        worst = max(worst, i.rate_bps / run.scale - (cap - run.job.channel_bps))
    return max(0.0, worst)


def execute(opts: RunOptions, progress: Progress = quiet, hooks: dict[str, Callable] | None = None
            ) -> dict[str, Any]:
    """Do one emulated run (see the module doc); returns the result dict. ``hooks``: optional
    callables ``after_deterministic(st, reservations)`` and ``before_teardown(st)`` (the demo's
    verification and isolation checks), whose return values land in the result under their names."""
    hooks = hooks or {}
    try:
        job = load_job(opts.job)
        topo = load_topology(opts.topology)
    except (JobError, TopologyError) as e:
        raise RunError(str(e)) from None
    if not 0 < opts.scale <= 1:
        raise RunError(f"scale {opts.scale} must be in (0, 1]")
    iterations = opts.iterations or job.iterations
    if iterations < 2:
        raise RunError("iterations must be at least 2 (the first is a warm-up)")
    if opts.gates not in GATE_MODES:
        raise RunError(f"gates {opts.gates!r}: expected one of {', '.join(GATE_MODES)}")
    run = make_plan(job, topo, scale=opts.scale, tenants=opts.tenants, interference=opts.interference,
                    reference_hosts=opts.reference_hosts)
    run.topology_spec = opts.topology
    workdir = Path(opts.out) if opts.out else Path(tempfile.mkdtemp(prefix="detnet-training-"))
    workdir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"job": job.to_dict(), "run": run.to_dict(), "iterations": iterations,
                              "warmup": WARMUP, "workdir": str(workdir)}
    t_start = time.monotonic()
    with Stack(run, workdir, progress, links=opts.links, delay_scale=opts.delay_scale, gates=opts.gates) as st:
        result["timings"] = {}
        progress(f"tenants: creating {run.tenants} tenant(s) over REST")
        result["tenants_created"] = len(create_tenants(st))
        shape_sites(st)
        if run.interference:
            progress(f"interference: {len(run.interference)} UDP flood(s) at "
                     f"{', '.join(f'{i.rate_bps / 1e6:.1f}' for i in run.interference)} Mb/s along the ring hops")
            result["interference"] = start_interference(st)
        else:
            result["interference"] = []
        nets = ["deterministic", "best-effort"] if opts.network == "both" else [opts.network]
        runs: dict[str, Any] = {}
        if "deterministic" in nets:
            reqs = run.reservation_requests()
            progress(f"reservations: {len(reqs)} ({len(run.flows)} ring flows at "
                     f"{job.channel_bps / 1e9:g} Gb/s model = {run.channel_bps / 1e6:.2f} Mb/s emulated, "
                     f"+ ACK reservations)")
            made = reserve(st, reqs)
            result["reservations"] = made
            wait_gated(st, made, progress)
            time.sleep(1.0)
            progress(f"deterministic run: {iterations} iterations with interference")
            t0 = time.monotonic()
            runs["deterministic"] = run_agents(st, "deterministic", iterations)
            result["timings"]["deterministic_s"] = time.monotonic() - t0
            if "after_deterministic" in hooks:
                result["after_deterministic"] = hooks["after_deterministic"](st, made)
            if st.gates is not None:
                st.gates.check()    # the gates the reserved traffic crossed, read back once more
            result["gates"] = st.gates_report
            progress(f"reservations: releasing {len(made)}")
            release(st, made)
            time.sleep(1.0)
        if "best-effort" in nets:
            progress(f"best-effort run: {iterations} iterations, same interference, no reservations")
            t0 = time.monotonic()
            runs["best-effort"] = run_agents(st, "best-effort", iterations)
            result["timings"]["best_effort_s"] = time.monotonic() - t0
        progress(f"baseline: single site, compute only, {iterations} iterations")
        base = run_baseline(st, iterations)
        if "before_teardown" in hooks:
            result["before_teardown"] = hooks["before_teardown"](st)
        result["emulation"] = st.emu.summary() if st.emu else {}
        result["platform"] = st.platform
        result["timings"].update({k: round(v, 3) for k, v in st.timings.items()})
        progress("teardown: stopping host processes, emulation and controller")
    baseline_s = base["mean_s"]
    result["baseline"] = base
    result["baseline_s"] = baseline_s
    for net, r in runs.items():
        s = summarize(r["iterations"], baseline_s)
        s["per_rank_s"] = {str(k): [round(x["iteration_s"], 6) for x in v] for k, v in r["per_rank"].items()}
        result[net.replace("-", "_")] = s
    result["model"] = model_estimates(job, topo, model_interference_bps(run))
    as_run = as_run_estimate(job, run, result.get("reservations") or [], (result.get("platform") or {}).get("slot_ns"))
    if as_run is not None:
        result["model"]["as_run"] = as_run
    result["targets"] = targets(result)
    result["timings"]["total_s"] = round(time.monotonic() - t_start, 3)
    with open(workdir / "run.json", "w") as f:
        json.dump(result, f, indent=1)
    return result


def targets(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, evaluated on the measured figures (reported, not asserted)."""
    det, be = result.get("deterministic"), result.get("best_effort")
    out: dict[str, Any] = {}
    if det and det.get("iterations"):
        out["deterministic_within_5pct"] = det["mean_s"] <= 1.05 * result["baseline_s"]
        out["deterministic_spread_below_1.05"] = det["spread"] < 1.05
    if det and be and det.get("iterations") and be.get("iterations"):
        out["best_effort_slower"] = be["mean_s"] > det["mean_s"] * 1.05
    as_run = (result.get("model") or {}).get("as_run")
    if det and det.get("iterations") and as_run:
        out["deterministic_within_3_points_of_model"] = abs(det["efficiency"] - as_run["efficiency"]) <= 0.03
    return out


def table(result: dict[str, Any]) -> str:
    """The facility-style table: iteration time and efficiency, measured beside the model."""
    rows = []
    m = result.get("model", {})
    hdr = f"{'network':16}{'measured mean':>15}{'p99':>10}{'p99/mean':>10}{'efficiency':>12}   " \
          f"{'model':>10}{'model eff.':>12}"
    rows.append(hdr)
    rows.append(f"{'single site':16}{result['baseline_s']:>13.3f} s{'':>10}{'':>10}{100.0:>11.1f}%   "
                f"{result['job']['forward_s'] + result['job']['backward_s']:>8.3f} s{100.0:>11.1f}%")
    for key, name in (("deterministic", "deterministic"), ("best_effort", "best effort")):
        s = result.get(key)
        if not s or not s.get("iterations"):
            continue
        est = m.get(key.replace("_", "-"), {})
        rows.append(f"{name:16}{s['mean_s']:>13.3f} s{s['p99_s']:>8.3f} s{s['spread']:>10.3f}"
                    f"{100 * s['efficiency']:>11.1f}%   {est.get('iteration_s', float('nan')):>8.3f} s"
                    f"{100 * est.get('efficiency', float('nan')):>11.1f}%")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - thin debugging entry
    import argparse
    p = argparse.ArgumentParser(prog="python -m tools.runs.training_run")
    p.add_argument("job")
    p.add_argument("--scale", type=float, default=DEFAULT_SCALE)
    p.add_argument("--iterations", type=int)
    p.add_argument("--network", default="both")
    p.add_argument("--out")
    a = p.parse_args(argv)
    r = execute(RunOptions(a.job, scale=a.scale, iterations=a.iterations, network=a.network, out=a.out),
                progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(table(r))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
