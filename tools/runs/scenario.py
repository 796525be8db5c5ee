"""``dnctl verify scenario``: reserve, talk, interfere, capture, analyze, audit — on a real emulation.

One run (``run_scenario``), everything torn down at the end, also on Ctrl-C, SIGTERM and failure:

1. the controller (child process) and a Mininet emulation of the topology connected to it;
   tenants 1..N with two hosts each in different cities (``tools.runs.isolation.spread_plan``) plus an
   **interference tenant** (N+1) with a host at both ends of every reservation;
2. tenants created and M reservations made over REST (tenant i mod N, between its two hosts,
   alternating direction; each its own UDP port in ``match``);
3. per phase (interference ``off`` and/or ``on``): every talker's flow primed first (``warm_up``),
   tcpdump in every destination host, a slotted talker (``dnctl probe send --rt``, all starting in
   one cycle once every one has started up) in every source host, and, when on, ``iperf3 -u`` best-effort
   floods between the interference tenant's hosts at the same cities (so over the same links,
   as best-effort routing follows the shortest path) at ``interference_factor`` x the first
   link's emulated capacity; then ``tools.probes.analyzer.analyze`` against the schedule;
4. the isolation audit (``tools.runs.isolation.audit``) on the same emulation;
5. OUT/report.json, summary.txt, PNGs and report.html (per phase, with ``tools.probes.report``), plus a
   comparison figure of the phases.

**Emulation scale.** Links run at ``link_scale`` x their capacity (default 1/10,000: 100 Gb/s -> 10 Mb/s;
every link an HTB with reserved frames, PCP 7, served first: ``tools.runs.training_run.priority_tc_batch``)
and the controller schedules that miniature itself (``tools.emulation.miniature``: scaled
capacities, the propagation the links carry, a slot that fits its frames, meters unscaled), so
reservations are requested at the emulated rate (``bandwidth_bps`` x ``link_scale``) and the talkers
send them as they are, at the offsets the controller computed for that network.
**Gates** (``gates``, ``--gates``): 802.1Qbv ``taprio`` on every port carrying reservations, read back
equal to the schedule before the talkers start and again after the phases (``report["gates"]``); a
run whose gates did not read back equal fails. In the VM's TCG guest a miniature slowed until its
slots outlast the guest's timing noise makes the time checks checkable (docs/gates.md).
**Verdicts** (docs/verification.md): each check allows the controller's bound plus the noise floor
measured in the same capture and nothing else: beside every reservation a reference flow
(``reference_reservation``) runs from a host of the same tenant on the receiver's own switch; a
check whose noise floor exceeds its bound is ``not_checkable``. Captures take only what is
addressed to the receiving host (``receiver_filter``). With both phases, ``interference_invariance``
puts each flow's p50/p99/max latency with interference beside the control run without it, and
interference "reduces reserved throughput" when a flow's received rate with interference on is
below ``reduce_threshold`` (0.95) x its rate with it off.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from controller.dataplane.routing import best_effort_path as _be_path
from tools.emulation import droplog
from tools.emulation.controller_proc import DNCTL
from tools.emulation.miniature import scaled_bps
from tools.emulation.patience import in_vm, patience
from tools.emulation.procs import HostProcs
from tools.emulation.progress import progress
from tools.emulation.stack import GATE_MODES, NetworkStack
from tools.probes.analyzer import analyze, merge_reports, noise_floor, read_probes, thresholds_with_noise
from tools.probes.capture import capture_command
from tools.probes.probe_format import flow_id_of
from tools.probes.report import fmt_ns, json_plain, write_all
from tools.runs import allowance
from tools.runs.allowance import emulated_reservation   # re-exported (tests build their flows with it)
from tools.runs.isolation import audit, plot_matrix, spread_plan
from tools.runs.scales import SCENARIO_LINK_SCALE
from tools.runs.training_run import apply_priority_links
from topologies.emulated import host_intf_name
from topologies.hosts import HostPlan
from topologies.loaders import load_topology
from topologies.model import Topology

__all__ = ["SCENARIO_LINK_SCALE", "ScenarioConfig", "run_scenario", "scenario_plan", "reservation_requests",
           "best_effort_path", "emulation_allowance", "emulated_reservation", "interference_flows", "run_phase",
           "text_summary"]

PROBE_PORT_BASE = 47000
#: reservation i's reference flow uses port REF_PORT_BASE + i (inside the captures' port range)
REF_PORT_BASE = 47500
#: IP bytes per period of a reference flow
REF_BYTES = 64
#: periods each talker's flow is sent before the captures start, under the id <id>WARMUP_SUFFIX (``warm_up``)
WARMUP_PERIODS = 3
WARMUP_SUFFIX = "-warmup"
#: seconds the talkers of a phase are given to start up before their common first cycle (x8 in the VM)
TALKER_STARTUP_S = 2.0
#: how long a talker busy-waits before each datagram: 100 us, and 30 ms in the VM's TCG guest, whose
#: timers fire up to ~10 ms late (talkers measured 10 ms late at p99 there with 100 us)
TALKER_SPIN_NS = 100_000
TALKER_SPIN_VM_NS = 30_000_000
IPERF_PORT_BASE = 5201

log = progress("scenario")


@dataclass
class ScenarioConfig:
    topology: str = "fntf40"
    tenants: int = 4
    reservations: int = 4
    interference: str = "both"           # "on" | "off" | "both" (off then on, and compare)
    duration: float = 8.0                 # seconds of talking per phase
    out: str = "scenario-out"
    link_scale: float | None = None       # default: SCENARIO_LINK_SCALE (1/10,000)
    period_ns: int = 20_000_000
    bandwidth_bps: int = 1_000_000_000    # real (unscaled) reserved rate per reservation
    max_latency_ns: int = 60_000_000
    interference_factor: float = 1.3     # flood rate = factor x emulated capacity of the path's bottleneck
    max_flood_bps: float = 130e6          # ... capped: what userspace OVS on 2 cores can still forward
    max_interference_flows: int = 2
    hop_budget_ns: int = 1_000_000
    host_budget_ns: int = 20_000_000
    tx_tolerance_ns: int | None = None    # talker lateness beyond the noise floor (default 0)
    delay_scale: float = 1.0              # propagation factor where netem emulates it
    rate_fraction: float = 1.0
    rate_window_ns: int = 1_000_000_000
    lldp_interval: float = 30.0           # LLDP rounds stall userspace OVS ~15 ms: keep them rare
    reduce_threshold: float = 0.95
    audit_k: int | None = 3
    realtime: bool = True
    #: 802.1Qbv gates on the ports carrying reservations (tools.emulation.gates): "auto" (where the
    #: kernel has taprio, but not in the TCG guest), "on" (or fail), "off"
    gates: str = "auto"
    verbose: bool = True


# ----- pure helpers ---------------------------------------------------------------------------------

def scenario_plan(topology: Topology, tenants: int) -> HostPlan:
    """Tenants 1..N with two hosts each in different cities (interference hosts are added later)."""
    return spread_plan(topology, tenants, 2)


def reservation_requests(plan: HostPlan, tenants: int, m: int, cfg: ScenarioConfig,
                         scale: float, miniature: bool = False) -> list[dict[str, Any]]:
    """M requests: reservation i for tenant i mod N + 1, between its two hosts, alternating direction.

    ``miniature``: at the emulated rate (``bandwidth_bps`` x ``scale``), for a controller that
    schedules the emulated network (``tools.emulation.miniature``); else at the model's rate."""
    reqs = []
    # frame_bytes are IP bytes per period (what the talker sends); the controller's meters add the
    # Ethernet/VLAN header of each datagram themselves (controller.dataplane.translation.reservation_meter)
    bps = scaled_bps(cfg.bandwidth_bps, scale, cfg.period_ns) if miniature else cfg.bandwidth_bps
    frame_bytes = max(1, int(math.ceil(bps * cfg.period_ns / 8e9)))
    for i in range(m):
        t = i % tenants + 1
        a, b = plan.hosts_of(t)[:2]
        src, dst = (a, b) if (i // tenants) % 2 == 0 else (b, a)
        reqs.append({"tenant": t, "src": src.switch, "dst": dst.switch, "period_ns": cfg.period_ns,
                     "frame_bytes": frame_bytes, "max_latency_ns": cfg.max_latency_ns,
                     "match": {"ip_src": src.ip, "ip_dst": dst.ip, "ip_proto": 17, "udp_dst": PROBE_PORT_BASE + i},
                     "_src_host": src.name, "_dst_host": dst.name})
    return reqs


def best_effort_path(topology: Topology, src: str, dst: str) -> list[str]:
    """The path best effort takes: the data plane's best-effort routing (``controller.dataplane.routing``)."""
    return _be_path(topology.graph, src, dst)


def emulation_allowance(res: dict[str, Any], topology: Topology, scale: float, cfg: ScenarioConfig) -> dict[str, int]:
    """The emulation allowance (``tools.runs.allowance``) of ``res`` with this scenario's budgets, for
    a controller that schedules the full-rate network. Not part of any verdict of this scenario:
    its controller schedules the miniature, and checks allow only the measured noise floor."""
    caps = {(u, v): topology.capacity_bps(u, v) for u, v in topology.directed_links()}
    return allowance.emulation_allowance(res, caps, scale, hop_budget_ns=cfg.hop_budget_ns,
                                         host_budget_ns=cfg.host_budget_ns)


def compact_flow(f: dict[str, Any]) -> dict[str, Any]:
    """The per-flow summary of report.json (the contract: id, sent, received, lost, pass, latency_ns)."""
    lat = f["latency_ns"]
    return {"id": f["id"], "tenant": f.get("tenant"), "sent": f["sent"], "received": f["received"],
            "lost": f["lost"], "duplicated": f.get("duplicated"), "pass": f["pass"], "verdict": f.get("verdict"),
            "not_checkable": f.get("not_checkable", []),
            "latency_ns": {"p50": lat.get("p50"), "p99": lat.get("p99"), "max": lat.get("max"),
                           "bound_ns": lat.get("bound_ns"), "noise_floor_ns": lat.get("noise_floor_ns"),
                           "jitter_ns": lat.get("jitter_ns"), "jitter_bound_ns": lat.get("jitter_bound_ns"),
                           "modeled_propagation_ns": lat.get("modeled_propagation_ns"),
                           "combined_max_ns": lat.get("combined_max_ns")},
            "rate": {"reserved_bps": f["rate"]["reserved_bps"], "mean_bps": f["rate"]["mean_bps"],
                     "min_window_bps": f["rate"]["min_window_bps"]},
            "checks": {c["name"]: {k: c.get(k) for k in ("status", "value", "bound_ns", "noise_floor_ns", "limit")}
                       for c in f.get("checks", [])},
            "failed_checks": [c["name"] for c in f.get("checks", []) if c.get("status") == "fail"]}


def interference_invariance(on: list[dict[str, Any]], off: list[dict[str, Any]]) -> dict[str, Any]:
    """Per flow: p50/p99/max latency with interference beside the control run without it."""
    by_off = {f["id"]: f for f in off}
    pick = lambda f: None if f is None else {k: f["latency_ns"].get(k) for k in ("p50", "p99", "max")}  # noqa: E731
    return {f["id"]: {"with_interference": pick(f), "without_interference": pick(by_off.get(f["id"]))} for f in on}


def compare_phases(off: list[dict[str, Any]], on: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """Per flow received rate (and p99 latency) with interference off vs on."""
    by_off = {f["id"]: f for f in off}
    rows = []
    for f in on:
        o = by_off.get(f["id"])
        if o is None:
            continue
        r_off, r_on = o["rate"]["mean_bps"] or 0, f["rate"]["mean_bps"] or 0
        ratio = (r_on / r_off) if r_off else None
        rows.append({"id": f["id"], "rate_off_bps": r_off, "rate_on_bps": r_on,
                     "ratio": None if ratio is None else round(ratio, 4),
                     "received_off": o["received"], "received_on": f["received"],
                     "lost_off": o["lost"], "lost_on": f["lost"],
                     "p99_off_ns": o["latency_ns"]["p99"], "p99_on_ns": f["latency_ns"]["p99"],
                     "max_off_ns": o["latency_ns"]["max"], "max_on_ns": f["latency_ns"]["max"]})
    ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
    reduced = [r["id"] for r in rows if r["ratio"] is None or r["ratio"] < threshold]
    return {"flows": rows, "min_ratio": min(ratios) if ratios else None, "threshold": threshold,
            "reduced": bool(reduced) or not rows, "reduced_flows": reduced}


# ----- one phase --------------------------------------------------------------------------------------

def _wait_listening(host: Any, port: int, timeout_s: float = 15.0) -> None:
    """Wait until a TCP server listens on ``port`` in ``host``'s namespace: an iperf3 client started
    before its server listens fails at once and reports nothing (a loaded machine can take seconds)."""
    deadline = time.monotonic() + timeout_s
    while f":{port} " not in host.cmd(f"ss -Hltn 'sport = :{port}'"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"iperf3 server in {host.name} did not listen on port {port} within {timeout_s:g} s")
        time.sleep(0.05)


def iperf3_summary(text: bytes) -> dict[str, Any]:
    """What an ``iperf3 -u --json`` client sent: its end summary, or, when the end-of-test exchange
    with the server failed (a starved control connection; the client then reports an ``error``),
    the sum of its own per-second intervals, which it counted before that exchange."""
    try:
        j = json.loads(text.decode(errors="replace"))
    except ValueError:
        return {"sent_bps": None, "error": text.decode(errors="replace").strip()[-200:] or "no iperf3 output"}
    s = (j.get("end") or {}).get("sum") or {}
    if s.get("bits_per_second"):
        return {"sent_bps": s.get("bits_per_second"), "packets": s.get("packets"),
                "lost_packets": s.get("lost_packets"), "lost_percent": s.get("lost_percent"), "error": j.get("error")}
    sums = [iv.get("sum") or {} for iv in j.get("intervals") or []]
    seconds = sum(float(x.get("seconds") or 0) for x in sums)
    sent_bytes = sum(int(x.get("bytes") or 0) for x in sums)
    return {"sent_bps": sent_bytes * 8 / seconds if seconds > 0 else None,
            "packets": sum(int(x.get("packets") or 0) for x in sums) or None,
            "lost_packets": None, "lost_percent": None,
            "error": j.get("error") or ("no iperf3 intervals" if not sums else None)}


def run_phase(name: str, emu: Any, plan: HostPlan, flows: list[dict[str, Any]], floods: list[dict[str, Any]],
              meta: dict[str, Any], cfg: ScenarioConfig, outdir: Path, procs: HostProcs,
              gates: Any = None) -> dict[str, Any]:
    """Captures, talkers and (if ``floods``) interference for one phase; returns the analysis. With
    ``gates`` (a ``GateKeeper``) the gated ports' ``tc -s`` counters are kept in ``gates-tc-stats.txt``."""

    say = progress("scenario", cfg.verbose)
    outdir.mkdir(parents=True, exist_ok=True)
    net = emu.net
    sched_file = outdir / "emulated-schedule.json"
    refs = {f["id"]: reference_reservation(f["emulated"]) for f in flows}
    warm = {f["id"]: {**f["emulated"], "id": f"{f['id']}{WARMUP_SUFFIX}"} for f in flows}
    sched_file.write_text(json.dumps({**meta, "reservations": [f["emulated"] for f in flows] + list(refs.values())
                                      + list(warm.values())}, indent=1))
    warm_up(flows, warm, sched_file, net, procs, int(meta["cycle_ns"]), say, name)
    # captures in destination hosts (one per host)
    caps: dict[str, tuple[subprocess.Popen, str]] = {}
    for f in flows:
        h = plan.host(f["dst_host"])
        if h.name not in caps:
            path = str(outdir / f"rx-{h.name}.pcap")
            cmd = capture_command(host_intf_name(h), path, bpf=receiver_filter(h.ip))
            caps[h.name] = (procs.add(net.get(h.name).popen(cmd, stdout=subprocess.DEVNULL,
                                                             stderr=subprocess.DEVNULL)), path)
    deadline = time.monotonic() + patience(15)
    while not all(os.path.exists(p) and os.path.getsize(p) >= 24 for _, p in caps.values()):
        if time.monotonic() > deadline:
            raise RuntimeError("captures did not start within 15 s")
        time.sleep(0.05)
    time.sleep(0.3)
    # interference
    flood_procs = []
    servers: list[subprocess.Popen] = []
    if floods:
        for fl in floods:
            srv = procs.add(net.get(fl["dst_host"]).popen(["iperf3", "-s", "-p", str(fl["port"]), "-1"],
                                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            servers.append(srv)
        for fl in floods:
            _wait_listening(net.get(fl["dst_host"]), int(fl["port"]))
        for fl in floods:
            cli = procs.add(net.get(fl["src_host"]).popen(
                ["iperf3", "-c", fl["dst_ip"], "-u", "-b", str(int(fl["rate_bps"])), "-l", "1400",
                 "-t", f"{cfg.duration + 2:g}", "-p", str(fl["port"]), "--json"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
            flood_procs.append((fl, cli))
        time.sleep(1.0)   # let the floods fill the links before the talkers start
        rates = ", ".join("%.3g" % (fl["rate_bps"] / 1e6) for fl in floods)
        say(f"[{name}] {len(floods)} interference flows at {rates} Mb/s")
    # talkers: every one starts in the same cycle, once all have started up (Python's start-up is
    # seconds under the VM's TCG: the first ones would otherwise send while the others load)
    switches = sorted({plan.switch_name(n) for f in flows for n in f["reservation"]["path"]})
    watched = {h: net.get(h).pid for f in flows for h in (f["src_host"], f["dst_host"])}
    drops_before = droplog.snapshot(switches, watched)    # before the talkers' start time is set (it takes a while)
    not_before = ["--not-before", str(time.time_ns() + int(patience(TALKER_STARTUP_S) * 1e9)),
                  "--spin", str(TALKER_SPIN_VM_NS if in_vm() else TALKER_SPIN_NS)]
    rt = ["--rt"] if cfg.realtime else []
    talkers = []
    for f in flows:
        out = outdir / f"talker-{f['id']}.json"
        cmd = probe_send_cmd(sched_file, f["id"], f["dst_ip"], f["port"], "--duration", f"{cfg.duration:g}",
                             "--out", str(out), *not_before, *rt)
        talkers.append((f, out, procs.add(net.get(f["src_host"]).popen(cmd, stdout=subprocess.DEVNULL,
                                                                         stderr=subprocess.PIPE))))
    for f in flows:   # the reference flows: one switch away from each receiver, into the same capture
        ref = refs[f["id"]]
        out = outdir / f"talker-{ref['id']}.json"
        cmd = probe_send_cmd(sched_file, ref["id"], f["dst_ip"], f["ref_port"], "--duration", f"{cfg.duration:g}",
                             "--out", str(out), *not_before)
        # at normal priority: with it under SCHED_FIFO too, four busy-waiting real-time talkers on the
        # host's 2 cores starved userspace Open vSwitch (30% of the reserved frames lost, 3 runs of 3)
        talkers.append((ref, out, procs.add(net.get(f["ref_host"]).popen(cmd, stdout=subprocess.DEVNULL,
                                                                           stderr=subprocess.PIPE))))
    say(f"[{name}] {len(flows)} talkers and {len(flows)} reference talkers for {cfg.duration:g} s")
    talker_results = []
    for f, out, p in talkers:
        _, err = p.communicate(timeout=cfg.duration + patience(60))
        try:
            tr = json.loads(out.read_text())
        except (OSError, ValueError):
            raise RuntimeError(f"talker of {f['id']} failed: {err.decode(errors='replace').strip()[-300:]}") from None
        talker_results.append(tr)
    time.sleep(0.5)
    drops = droplog.grown(drops_before, droplog.snapshot(switches, watched))
    flood_results = []
    for fl, cli in flood_procs:
        try:
            text, _ = cli.communicate(timeout=patience(10))
        except subprocess.TimeoutExpired:
            procs.stop(cli)    # SIGTERM: iperf3 still prints its JSON, intervals included
            try:
                text, _ = cli.communicate(timeout=5)
            except (subprocess.TimeoutExpired, ValueError):
                text = b""
        rec: dict[str, Any] = dict(fl)
        rec.update(iperf3_summary(text))
        flood_results.append(rec)
    for srv in servers:
        procs.stop(srv, signal.SIGKILL, 2)
    if gates is not None:    # what the gates passed and what they still hold, after the talkers
        (outdir / "gates-tc-stats.txt").write_text(gates.stats())
    for proc, _ in caps.values():
        procs.stop(proc)
    sent = {str(t["reservation_id"]): int(t["sent"]) for t in talker_results}
    reports, noise = [], {}
    for f in flows:
        pcap = caps[f["dst_host"]][1]
        nf = noise_floor(read_probes([pcap]), [flow_id_of(refs[f["id"]]["id"])])
        noise[f["id"]] = nf
        th = thresholds_with_noise(nf, rate_window_ns=cfg.rate_window_ns, tx_tolerance_ns=cfg.tx_tolerance_ns or 0,
                                   propagation="emulated")
        reports.append(analyze([pcap], [f["emulated"]], meta, sent_counts=sent, thresholds=th, require=[f["id"]]))
    report = merge_reports(reports, ignore={flow_id_of(r["id"]) for r in refs.values()})
    for fl in report.flows:
        fl["noise_floor"] = noise.get(fl["id"])
        fl["drops_while_probed"] = drops     # the talkers ran together: one set of counters for all
    write_all(report, str(outdir))
    d = report.to_dict()
    say(f"[{name}] {'PASS' if report.passed else 'FAIL'}: " + "; ".join(
        f"{f['id']} {f['received']}/{f['sent']} p99 {f['latency_ns']['p99'] or 0:.0f} ns "
        f"{f['rate']['mean_bps'] / 1e6:.3f} Mb/s{'' if f['pass'] else ' FAIL ' + ','.join(c['name'] for c in f['checks'] if c['status'] == 'fail')}"
        + (f" (not checkable: {','.join(f['not_checkable'])})" if f.get("not_checkable") else "")
        for f in d["flows"]))
    floors = [n["noise_floor_ns"] for n in noise.values() if n["noise_floor_ns"] is not None]
    return {"name": name, "pass": report.passed, "flows": d["flows"], "talkers": talker_results,
            "noise_floor_ns": max(floors) if floors else None, "drops_while_probed": drops,
            "interference": flood_results, "analysis": {k: v for k, v in d.items() if k != "flows"},
            "html": str(outdir / "report.html")}


def probe_send_cmd(sched_file: Path, reservation_id: str, dst_ip: str, port: int, *more: str) -> list[str]:
    """argv of ``dnctl probe send --json`` of one reservation of ``sched_file`` to ``dst_ip:port``, plus ``more``."""
    return [DNCTL, "probe", "send", "--schedule", str(sched_file), "--reservation", reservation_id,
            "--dst", dst_ip, "--port", str(port), "--json", *more]


def warm_up(flows: list[dict[str, Any]], warm: dict[str, dict[str, Any]], sched_file: Path, net: Any,
            procs: HostProcs, cycle_ns: int, say: Any, phase: str) -> None:
    """Prime every reserved flow's path before its captures start, as the ARP pings prime the hosts.

    Why: Open vSwitch's kernel datapath learns a flow from its first packet, which goes up to
    ovs-vswitchd and back (an upcall): tens of ms under the TCG guest's load, enough to miss a gate's
    window and wait a cycle, or be overtaken by the next packet. On a network whose forwarding is
    installed ahead of the traffic (the switches' OpenFlow tables are) that first-packet cost is the
    software switch's, not the schedule's. So each talker's flow (its addresses and UDP destination
    port: what the switches' entries match) is sent ``WARMUP_PERIODS`` periods first, under the id
    ``<id>-warmup`` (another flow id: were one still in flight when the captures start, the analyzer
    lists it as an unknown flow, never as a duplicate of the measured flow); the captures start two
    cycles after the last of them."""
    ts = []
    for f in flows:
        w = warm[f["id"]]
        cmd = probe_send_cmd(sched_file, w["id"], f["dst_ip"], f["port"],
                             "--count", str(WARMUP_PERIODS * max(1, len(w.get("tx_offsets_ns") or [0]))))
        ts.append(procs.add(net.get(f["src_host"]).popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
    for p in ts:
        p.wait(timeout=patience(60) + WARMUP_PERIODS * cycle_ns / 1e9)
    time.sleep(2 * cycle_ns / 1e9)
    say(f"[{phase}] paths primed: {WARMUP_PERIODS} periods of every talker's flow before the captures")


def wait_gated(keeper: Any, flows: list[dict[str, Any]], say: Any, timeout_s: float = 60.0) -> None:
    """Wait until the gate keeper has gated every link the reservations of ``flows`` cross and read
    them back equal to the schedule (``GateKeeper.wait_gated``; ``timeout_s`` stretched in the VM):
    the talkers must not start before their gates."""
    links = {f"{u}->{v}" for f in flows for u, v in zip(f["reservation"]["path"], f["reservation"]["path"][1:])}
    s = keeper.wait_gated(links, patience(timeout_s))     # GatesNotInPlace (a RuntimeError) if not
    say(f"gates: {s['ports_gated']} ports gated, read back equal to the schedule")


def receiver_filter(ip: str) -> str:
    """The capture filter at a receiving host: probes (and reference probes) addressed TO it.

    ``dst host`` matters: a host that receives one reservation may send another, and its own
    outgoing probes on the same interface would otherwise be captured too and then again at their
    receiver: counted as duplicates (each received once) and with a near-zero latency."""
    return f"udp and dst portrange {PROBE_PORT_BASE}-{PROBE_PORT_BASE + 998} and dst host {ip}"


def reference_reservation(res: dict[str, Any]) -> dict[str, Any]:
    """The reference flow of ``res``: same period and offsets, ``REF_BYTES`` per period, id ``<id>-ref``
    (docs/verification.md, "The noise floor")."""
    ref = {k: v for k, v in res.items() if k != "match"}
    ref.update(id=f"{res['id']}-ref", frame_bytes=REF_BYTES,
               bandwidth_bps=int(REF_BYTES * 8e9 // int(res["period_ns"])))
    return ref


def attach_reference_hosts(plan: HostPlan, reqs: list[dict[str, Any]]) -> dict[tuple[int, str], str]:
    """Attach one reference host per receiver (same tenant, the receiver's own switch; the noise
    floor's talker) and return their names by ``(tenant, switch)``. Attach before the bring-up."""
    ref_hosts: dict[tuple[int, str], str] = {}
    for rq in reqs:
        dst = plan.host(rq["_dst_host"])
        if (dst.tenant, dst.switch) not in ref_hosts:
            ref_hosts[(dst.tenant, dst.switch)] = plan.attach(dst.tenant, dst.switch)[0].name
    return ref_hosts


def flow_record(plan: HostPlan, rq: dict[str, Any], res: dict[str, Any], ref_hosts: dict[tuple[int, str], str],
                index: int) -> dict[str, Any]:
    """What ``run_phase`` needs of one admitted reservation ``res`` (asked for by ``rq``, the
    ``index``-th): hosts, ports and its reference flow's host and port."""
    dst = plan.host(rq["_dst_host"])
    return {"id": res["id"], "tenant": rq["tenant"], "src_host": rq["_src_host"], "dst_host": rq["_dst_host"],
            "dst_ip": dst.ip, "port": rq["match"]["udp_dst"], "reservation": res,
            "ref_host": ref_hosts[(dst.tenant, dst.switch)], "ref_port": REF_PORT_BASE + index,
            # the controller scheduled the emulated network: the talker sends the reservation as is
            "emulated": res}


def tx_tolerance(cfg: ScenarioConfig) -> int:
    """The talker lateness a tx-slot check allows beyond the measured noise floor (0 by default)."""
    return cfg.tx_tolerance_ns or 0


# ----- the whole scenario -------------------------------------------------------------------------------

def run_scenario(cfg: ScenarioConfig) -> dict[str, Any]:
    """Bring up, reserve, run the phases and the audit, tear down; returns the report (also written)."""
    say = progress("scenario", cfg.verbose)
    t0 = time.monotonic()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    topo = load_topology(cfg.topology)
    plan = scenario_plan(topo, cfg.tenants)
    scale = SCENARIO_LINK_SCALE if cfg.link_scale is None else cfg.link_scale
    reqs = reservation_requests(plan, cfg.tenants, cfg.reservations, cfg, scale, miniature=True)
    ref_hosts = attach_reference_hosts(plan, reqs)
    itenant = cfg.tenants + 1
    phases = ["off", "on"] if cfg.interference == "both" else [cfg.interference]
    if "on" in phases:
        cities = sorted({r["src"] for r in reqs} | {r["dst"] for r in reqs}, key=topo.nodes.index)
        for c in cities:
            plan.attach(itenant, c)
    report: dict[str, Any] = {"pass": False, "topology": topo.name, "tenants": cfg.tenants,
                              "config": {k: v for k, v in asdict(cfg).items() if k != "verbose"}}
    seconds: dict[str, float] = {}
    t3 = time.monotonic()
    with NetworkStack(topo, plan, link_scale=scale, log_dir=out, verbose=cfg.verbose,
                      lldp_interval=cfg.lldp_interval, miniature=True, periods_ns=(cfg.period_ns,),
                      delay_scale=cfg.delay_scale, gates=GATE_MODES[cfg.gates]) as net:
        ctl, emu, procs = net.ctl, net.emu, net.procs
        apply_priority_links(emu, scale)   # reserved frames (PCP 7) first on every link
        seconds["bring_up_s"] = time.monotonic() - t0
        with ctl.client() as api:
            for t in plan.tenants():
                api.post("/v1/tenants", {"name": f"tenant{t}" if t != itenant else "interference"})
            flows = []
            for i, rq in enumerate(reqs):
                body = {k: v for k, v in rq.items() if not k.startswith("_")}
                res = api.post("/v1/reservations", body)
                flows.append(flow_record(plan, rq, res, ref_hosts, i))
            sched = api.get("/v1/schedule")
        if net.gates is not None:
            wait_gated(net.gates, flows, say)
        meta = {"cycle_ns": int(sched["cycle_ns"]), "slot_ns": int(sched["slot_ns"]),
                "links": sched.get("links") or []}
        if "epoch_ns" in sched:
            meta["epoch_ns"] = int(sched["epoch_ns"])
        say(f"{len(flows)} reservations admitted: " + ", ".join(
            f"{f['id']} {'-'.join(f['reservation']['path'])}" for f in flows))
        # warm the ARP caches and prove reachability of every talker pair
        for f in flows:
            pr = emu.ping(f["src_host"], f["dst_host"], count=2, interval_s=0.2)
            if not pr.ok and pr.received == 0:
                raise RuntimeError(f"{f['src_host']} cannot reach {f['dst_host']} before the run: {pr}")
        floods = interference_flows(topo, plan, flows, itenant, scale, cfg)
        report["phases"] = {}
        for ph in phases:
            t1 = time.monotonic()
            report["phases"][ph] = run_phase(ph, emu, plan, flows, floods if ph == "on" else [], meta, cfg,
                                             out / f"interference-{ph}", procs, net.gates)
            seconds[f"phase_{ph}_s"] = time.monotonic() - t1
        t2 = time.monotonic()
        if net.gates is not None:
            net.gates.check()      # the gates the packets crossed, read back once more after the phases
        report["gates"] = net.gates_report
        iso = audit(emu, plan, k=cfg.audit_k, workdir=out / "isolation", verbose=cfg.verbose)
        seconds["isolation_s"] = time.monotonic() - t2
        t3 = time.monotonic()
    seconds["tear_down_s"] = time.monotonic() - t3
    main = report["phases"]["on" if "on" in phases else "off"]
    report["flows"] = [compact_flow(f) for f in main["flows"]]
    report["reservations"] = [{"id": f["id"], "tenant": f["tenant"], "src_host": f["src_host"],
                               "dst_host": f["dst_host"], "path": f["reservation"]["path"],
                               "latency_bound_ns": f["reservation"]["latency_bound_ns"],
                               "jitter_bound_ns": f["reservation"]["jitter_bound_ns"],
                               "bandwidth_bps": f["reservation"]["bandwidth_bps"],
                               "emulated_bandwidth_bps": f["emulated"]["bandwidth_bps"],
                               "emulated_frame_bytes": f["emulated"]["frame_bytes"],
                               "model_bandwidth_bps": cfg.bandwidth_bps, "reference_host": f["ref_host"],
                               "best_effort_path": best_effort_path(topo, f["reservation"]["path"][0],
                                                                    f["reservation"]["path"][-1])} for f in flows]
    report["interference"] = {"mode": cfg.interference, "flows": floods}
    floors = [p["noise_floor_ns"] for p in report["phases"].values() if p.get("noise_floor_ns") is not None]
    report["platform"] = {**net.platform, "noise_floor_ns": max(floors) if floors else None,
                          "noise_floor_by_phase_ns": {k: p.get("noise_floor_ns") for k, p in report["phases"].items()}}
    report["not_checkable"] = {f["id"]: f["not_checkable"] for f in main["flows"] if f.get("not_checkable")}
    if len(phases) == 2:
        report["interference_invariance"] = interference_invariance(report["phases"]["on"]["flows"],
                                                                    report["phases"]["off"]["flows"])
        report["best_effort_degradation"] = [
            {k: fl.get(k) for k in ("src_host", "dst_host", "rate_bps", "sent_bps", "lost_percent", "against")}
            for fl in report["phases"]["on"].get("interference", [])]
    else:
        report["interference_invariance"] = None
        report["interference_invariance_note"] = "one phase only: run with --interference both for the control run"
    if len(phases) == 2:
        report["interference"]["effect"] = compare_phases(report["phases"]["off"]["flows"],
                                                          report["phases"]["on"]["flows"], cfg.reduce_threshold)
    iso_small = {k: v for k, v in iso.items() if k not in ("ports",)}
    report["isolation"] = iso_small
    report["tolerances"] = tolerances(cfg, scale)
    report["emulation"] = emu.summary()
    report["controller"] = {"log": str(ctl.log_path)}
    ok = all(p["pass"] for p in report["phases"].values()) and iso["pass"]
    if report["gates"].get("enabled"):
        ok = ok and report["gates"]["readback_equal"] and report["gates"]["all_gated"]
    if len(phases) == 2:
        ok = ok and not report["interference"]["effect"]["reduced"]
    report["pass"] = bool(ok)
    seconds["total_s"] = time.monotonic() - t0
    report["seconds"] = {k: round(v, 2) for k, v in seconds.items()}
    write_report(report, out)
    return report


def interference_flows(topo: Topology, plan: HostPlan, flows: list[dict[str, Any]], itenant: int, scale: float,
                       cfg: ScenarioConfig) -> list[dict[str, Any]]:
    """Best-effort floods between the interference tenant's hosts at each reservation's ends."""
    hosts = {h.switch: h for h in plan.hosts_of(itenant)}
    out = []
    for i, f in enumerate(flows[:cfg.max_interference_flows]):
        path = f["reservation"]["path"]
        s, d = hosts.get(path[0]), hosts.get(path[-1])
        if s is None or d is None:
            continue
        be = best_effort_path(topo, path[0], path[-1])
        shared = {(u, v) for u, v in zip(path, path[1:])} & {(u, v) for u, v in zip(be, be[1:])}
        bottleneck = min(topo.capacity_bps(u, v) for u, v in zip(path, path[1:]))
        rate = min(cfg.interference_factor * bottleneck * scale, cfg.max_flood_bps)
        out.append({"src_host": s.name, "dst_host": d.name, "dst_ip": d.ip, "port": IPERF_PORT_BASE + i,
                    "rate_bps": int(rate), "bottleneck_bps_emulated": int(bottleneck * scale),
                    "saturating": rate >= bottleneck * scale, "against": f["id"], "best_effort_path": be,
                    "shared_links": len(shared), "reservation_links": len(path) - 1})
    return out


def tolerances(cfg: ScenarioConfig, scale: float) -> dict[str, Any]:
    return {
        "link_scale": scale,
        "schedule": "the controller schedules the emulated network (tools.emulation.miniature): capacities x "
                    "link_scale, the propagation the links carry (none without netem), a slot that fits its frames; "
                    "reservations are requested at the emulated rate and the talkers send them as they are",
        "noise_floor": "per flow, measured in the same capture: max - min of (receive time - intended send time) "
                       "of a reference flow from a host of the same tenant on the receiver's own switch",
        "latency": "measured max <= latency_bound_ns + the noise floor; nothing else",
        "jitter": "max - min measured latency <= jitter_bound_ns + the noise floor",
        "tx_slot": f"sent within the slot window + {tx_tolerance(cfg)} ns + the noise floor",
        "rate": f"every {cfg.rate_window_ns / 1e9:g} s window carries what the schedule promises in it (the "
                "periods whose arrival spread, jitter bound + noise floor, fits in the window)",
        "not_checkable": "a check whose noise floor exceeds its bound is not_checkable, never a pass; a flow passes "
                         "when no check fails, and the report lists what could not be checked",
        "interference_effect": f"reduced when a flow's received rate with interference is below "
                               f"{cfg.reduce_threshold:g} x without, or it lost more",
    }


# ----- output -----------------------------------------------------------------------------------------

def text_summary(rep: dict[str, Any]) -> str:
    lines = [f"scenario on {rep['topology']}: {rep['tenants']} tenants, {len(rep.get('reservations', []))} "
             f"reservations, interference {rep['interference']['mode']}: {'PASS' if rep['pass'] else 'FAIL'}"]
    for name, ph in rep.get("phases", {}).items():
        lines.append(f"  phase interference {name}: {'PASS' if ph['pass'] else 'FAIL'}")
        for f in ph["flows"]:
            lat = f["latency_ns"]
            failed = [c["name"] for c in f["checks"] if c.get("status", "fail" if not c["pass"] else "pass") == "fail"]
            nc = f.get("not_checkable") or []
            lines.append(f"    {f['id']}: {f['received']}/{f['sent']} received, lost {f['lost']}, latency p50/p99/max "
                         f"{fmt_ns(lat['p50'])}/{fmt_ns(lat['p99'])}/{fmt_ns(lat['max'])} (bound {fmt_ns(lat['bound_ns'])} + noise floor {fmt_ns(lat.get('noise_floor_ns'))}), "
                         f"jitter {fmt_ns(lat['jitter_ns'])}, rate {f['rate']['mean_bps'] / 1e6:.3f} of "
                         f"{f['rate']['reserved_bps'] / 1e6:.3f} Mb/s" + (f"; FAILED {', '.join(failed)}" if failed else "")
                         + (f"; not checkable: {', '.join(nc)}" if nc else ""))
        for fl in ph.get("interference", []):
            sent = fl.get("sent_bps")
            lines.append(f"    interference {fl['src_host']}->{fl['dst_host']} asked {fl['rate_bps'] / 1e6:.3g} Mb/s, "
                         f"sent {sent / 1e6 if sent else 0:.3g} Mb/s, lost {fl.get('lost_percent') or 0:.0f}% "
                         f"(policed), shares {fl['shared_links']}/{fl['reservation_links']} links with {fl['against']}, "
                         f"{'saturates' if fl['saturating'] else 'does NOT saturate'} its "
                         f"{fl['bottleneck_bps_emulated'] / 1e6:.3g} Mb/s bottleneck")
    pf = rep.get("platform") or {}
    lines.append(f"  ran on: {'VM' if pf.get('vm') else 'this host kernel'}, {pf.get('datapath')} datapath, links "
                 f"x{pf.get('link_scale', 0):g}, delay x{pf.get('effective_delay_scale', 0):g}"
                 f"{'' if pf.get('propagation_emulated') else ' (no netem: no propagation emulated or scheduled)'}, "
                 f"slot {fmt_ns(pf.get('slot_ns'))}, noise floor {fmt_ns(pf.get('noise_floor_ns'))}")
    g = rep.get("gates") or {}
    lines.append("  gates: " + (f"802.1Qbv (taprio) on {g['ports_gated']} ports, read back "
                                f"{'equal to the schedule' if g['readback_equal'] else 'DIFFERENT: ' + str(g['differences'])}"
                                f" ({g['readbacks']} read-backs)" if g.get("enabled")
                                else f"none ({g.get('reason') or 'not reported'}): reserved frames first by priority"))
    for fid, row in (rep.get("interference_invariance") or {}).items():
        w, wo = row["with_interference"] or {}, row["without_interference"] or {}
        lines.append(f"    invariance {fid}: p50/p99/max with interference "
                     f"{'/'.join(fmt_ns(w.get(k)) for k in ('p50', 'p99', 'max'))}, without "
                     f"{'/'.join(fmt_ns(wo.get(k)) for k in ('p50', 'p99', 'max'))}")
    eff = rep["interference"].get("effect")
    if eff:
        lines.append(f"  interference effect on reserved throughput: min ratio on/off {eff['min_ratio']}; "
                     f"{'REDUCED: ' + ', '.join(eff['reduced_flows']) if eff['reduced'] else 'not reduced'}")
    iso = rep["isolation"]
    lines.append(f"  isolation: {'PASS' if iso['pass'] else 'FAIL'}: {iso['leaked_frames']} leaked frames, "
                 f"{iso['reachability']['reachable_pairs']}/{iso['reachability']['pairs_tested']} intra-tenant pairs "
                 f"reachable, {iso['coverage']['frames_sent_total']} probe frames")
    lines.append(f"  seconds: " + ", ".join(f"{k} {v}" for k, v in rep["seconds"].items()))
    return "\n".join(lines)


def plot_comparison(rep: dict[str, Any], path: str) -> str | None:
    """Received rate and p99 latency per flow for each phase (bars)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    phases = rep.get("phases", {})
    if not phases:
        return None
    ids = [f["id"] for f in next(iter(phases.values()))["flows"]]
    x = np.arange(len(ids))
    w = 0.8 / len(phases)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (name, ph) in enumerate(phases.items()):
        by = {f["id"]: f for f in ph["flows"]}
        a1.bar(x + i * w, [by[k]["rate"]["mean_bps"] / 1e6 if k in by else 0 for k in ids], w,
               label=f"interference {name}")
        a2.bar(x + i * w, [(by[k]["latency_ns"]["p99"] or 0) / 1e3 if k in by else 0 for k in ids], w,
               label=f"interference {name}")
    res = next(iter(phases.values()))["flows"]
    a1.scatter(x + 0.4 - w / 2, [f["rate"]["reserved_bps"] / 1e6 for f in res], color="red", marker="_", s=300,
               label="reserved (scaled)", zorder=3)
    a1.set_xticks(x + 0.4 - w / 2, ids)
    a1.set_ylabel("received Mb/s (IP)")
    a1.set_title("reserved flows: received rate")
    a1.legend(fontsize=8)
    a2.set_xticks(x + 0.4 - w / 2, ids)
    a2.set_ylabel("p99 measured one-way latency (us)")
    a2.set_title("reserved flows: p99 latency (no propagation emulated)")
    a2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(rep: dict[str, Any], out: Path) -> None:
    """report.json, summary.txt, comparison.png, isolation.png and an index report.html."""
    (out / "report.json").write_text(json.dumps(rep, indent=1, default=json_plain) + "\n")
    summary = text_summary(rep)
    (out / "summary.txt").write_text(summary + "\n")
    pngs = [p for p in (plot_comparison(rep, str(out / "comparison.png")),
                        plot_matrix(rep["isolation"], str(out / "isolation.png"))) if p]
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>detnet scenario</title></head><body>",
             f"<h1>Scenario on {html.escape(rep['topology'])}: {'PASS' if rep['pass'] else 'FAIL'}</h1>",
             "<pre>" + html.escape(summary) + "</pre>"]
    for p in pngs:
        b64 = base64.b64encode(Path(p).read_bytes()).decode()
        parts.append(f"<p><img src='data:image/png;base64,{b64}'></p>")
    for name, ph in rep.get("phases", {}).items():
        rel = os.path.relpath(ph["html"], out)
        parts.append(f"<p><a href='{html.escape(rel)}'>per-flow figures, interference {name}</a></p>")
    parts.append("<h2>Tolerances</h2><pre>" + html.escape(json.dumps(rep["tolerances"], indent=1)) + "</pre>")
    parts.append("</body></html>")
    (out / "report.html").write_text("\n".join(parts))
