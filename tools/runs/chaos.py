"""``dnctl chaos``: failure scenarios on a real emulation, measured and reported.

One run (``run_chaos``), everything torn down at the end (also on failure and Ctrl-C):

1. the controller (child process) and a Mininet emulation connected to it (default topology: a
   small meshed one, ``chaos6``: a ring A..F with chords A-E and B-E, so a flow A->C has three
   link-disjoint routes and a protected flow can be re-protected after a cut);
2. N unprotected and N protected reservations A->C (or, on another topology, across a chosen
   link that has a disjoint alternative), all with their first path forced over the **cut link**;
   the first ``traffic`` of each class carry probes (``dnctl probe send`` in the source host,
   tcpdump in the destination host), the others are small and only count for reprogramming;
3. **link cut**: with traffic flowing, the switch-side interface of the link is set down (the
   peer loses carrier, so both switches report OFPPortStatus); the controller's ``link_down``
   event gives ``reprogrammed_s`` (port status to the last barrier reply of every affected
   reservation); the captures give the packets lost per class after duplicate elimination;
   the link is then set up again;
4. **controller restart** (unless ``--no-restart``): with traffic flowing the controller is
   SIGKILLed, started again on the same database, and must come back with the same reservations,
   resynchronise every switch without adding or deleting an entry, and lose no packet (the
   entries stay on the switches while it is down);
5. one JSON report (``link_cut``, ``controller_restart``, ``pass``) and, with ``out``, the
   captures, talker results, controller log and report.json in that directory.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from tools.emulation.controller_proc import DNCTL
from tools.emulation.procs import HostProcs
from tools.emulation.progress import progress
from tools.emulation.stack import NetworkStack
from tools.probes.analyzer import Thresholds, analyze, read_probes
from tools.probes.capture import capture_command
from tools.probes.probe_format import flow_id_of
from topologies.emulated import host_intf_name, switch_intf_name
from topologies.hosts import HostPlan
from topologies.loaders import load_topology
from topologies.model import Topology

PORT_BASE = 47100
#: IP bytes per period each probe talker sends in the emulation
PROBE_IP_BYTES = 200
#: Ethernet + VLAN bytes a meter counts per datagram beyond the IP packet
L2_OVERHEAD = 18


log = progress("chaos")


def chaos6() -> Topology:
    """The default topology: ring A-B-C-D-E-F-A plus chords A-E and B-E, 100 Gb/s links."""
    t = Topology("chaos6")
    for n in "ABCDEF":
        t.add_node(n)
    for a, b, km in (("A", "B", 100), ("B", "C", 100), ("C", "D", 200), ("D", "E", 200), ("E", "F", 200),
                     ("F", "A", 200), ("A", "E", 300), ("B", "E", 300)):
        t.add_link(a, b, km, capacity_bps=10**11)
    return t


def load(name: str | None) -> Topology:
    if name in (None, "chaos6"):
        return chaos6()
    return load_topology(name)


def choose_flow(topo: Topology) -> tuple[str, str, list[str], tuple[str, str]]:
    """(src, dst, first path, cut link): a 2-hop shortest path whose first link has a disjoint
    alternative route between src and dst (chaos6: A->C over A-B-C, cut A-B)."""
    if topo.name == "chaos6":
        return "A", "C", ["A", "B", "C"], ("A", "B")
    g = topo.graph.to_undirected()
    for u, v in sorted(g.edges):
        for a, b in ((u, v), (v, u)):
            for c in sorted(g.neighbors(b)):
                if c == a or g.has_edge(a, c):
                    continue
                path = nx.shortest_path(topo.graph, a, c, weight="propagation_ns")
                if path[:2] != [a, b]:
                    continue
                if len(list(nx.edge_disjoint_paths(g, a, c, cutoff=3))) >= 3:
                    return a, c, path, (a, b)
    raise ValueError(f"{topo.name}: no flow with three link-disjoint routes")


@dataclass
class ChaosConfig:
    topology: str | None = None
    reservations: int = 2            # per class (unprotected, protected)
    traffic: int = 2                 # flows with probes per class
    period_ns: int = 2_000_000
    link_scale: float = 0.001
    cut_after_s: float = 2.0
    cut_traffic_s: float = 6.0
    restart: bool = True
    restart_traffic_s: float = 8.0
    out: str | None = None
    verbose: bool = True


def _requests(cfg: ChaosConfig, src_host, dst_host, path: list[str]) -> list[dict[str, Any]]:
    """N unprotected then N protected requests, first path forced over the cut link."""
    wire = PROBE_IP_BYTES + L2_OVERHEAD * max(1, math.ceil(PROBE_IP_BYTES / 1500))
    big = int(math.ceil(2 * wire / cfg.link_scale))      # meters get 2x what the talker sends
    out = []
    for k, prot in enumerate((None, "disjoint")):
        for i in range(cfg.reservations):
            n = k * cfg.reservations + i
            body = {"tenant": 1, "id": f"{'p' if prot else 'u'}{i}", "src": path[0], "dst": path[-1],
                    "period_ns": cfg.period_ns, "frame_bytes": big if i < cfg.traffic else 1500,
                    "max_latency_ns": 100_000_000, "paths": [path],
                    "match": {"ip_src": src_host.ip, "ip_dst": dst_host.ip, "ip_proto": 17,
                              "udp_dst": PORT_BASE + n}}
            if prot:
                body["protection"] = prot
            out.append(body)
    return out


def _emulated(res: dict[str, Any], scale: float) -> dict[str, Any]:
    """The reservation as the talker sends it in the emulation (scaled bytes)."""
    r = dict(res)
    r["frame_bytes"] = PROBE_IP_BYTES
    r["bandwidth_bps"] = int(round(int(res["bandwidth_bps"]) * scale))
    return r


def _traffic(emu, plan, flows, meta, duration, outdir: Path, tag: str, procs: HostProcs,
             during=None) -> dict[str, Any]:
    """Capture in the destination host, run one talker per flow for ``duration`` s, call
    ``during()`` while they run, then count loss per flow after duplicate elimination."""
    net = emu.net
    sched = outdir / f"{tag}-schedule.json"
    sched.write_text(json.dumps({**meta, "reservations": [f["emulated"] for f in flows]}))
    dst = plan.host(flows[0]["dst_host"])
    pcap = outdir / f"{tag}-rx.pcap"
    cap = procs.add(net.get(dst.name).popen(
        capture_command(host_intf_name(dst), str(pcap), bpf=f"udp and dst portrange {PORT_BASE}-{PORT_BASE + 999}"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = time.monotonic() + 15
    while not (pcap.exists() and pcap.stat().st_size >= 24):
        if time.monotonic() > deadline:
            raise RuntimeError("capture did not start within 15 s")
        time.sleep(0.05)
    time.sleep(0.3)
    talkers = []
    for f in flows:
        out = outdir / f"{tag}-talker-{f['id']}.json"
        cmd = [DNCTL, "probe", "send", "--schedule", str(sched), "--reservation", f["id"], "--dst", f["dst_ip"],
               "--port", str(f["port"]), "--duration", f"{duration:g}", "--out", str(out)]
        talkers.append((f, out, procs.add(net.get(f["src_host"]).popen(cmd, stdout=subprocess.DEVNULL,
                                                                         stderr=subprocess.PIPE))))
    t_start = time.time()
    marks = during() if during else {}
    sent = {}
    for f, out, p in talkers:
        _, err = p.communicate(timeout=duration + 60)
        try:
            sent[f["id"]] = int(json.loads(out.read_text())["sent"])
        except (OSError, ValueError, KeyError):
            raise RuntimeError(f"talker of {f['id']} failed: {err.decode(errors='replace').strip()[-300:]}") from None
    time.sleep(0.5)
    procs.stop(cap)
    rep = analyze([str(pcap)], [f["emulated"] for f in flows], meta, sent_counts=sent,
                  thresholds=Thresholds(propagation="not-emulated", tx_tolerance_ns=10**9),
                  require=[f["id"] for f in flows])
    per = {}
    for fl in rep.to_dict()["flows"]:
        per[fl["id"]] = {"sent": fl["sent"], "received": fl["received"], "lost": fl["lost"],
                         "duplicated": fl["duplicated"], "eliminated": fl.get("eliminated", 0)}
    # packets received after the cut (does rerouted traffic flow again?)
    after = {}
    if marks.get("cut_wall") is not None:
        pr = read_probes([str(pcap)])
        cut_ns = int((marks["cut_wall"] + 1.0) * 1e9)
        for f in flows:
            sel = (pr.flow == flow_id_of(f["id"])) & (pr.rx_ns > cut_ns)
            after[f["id"]] = int(sel.sum())
    return {"flows": per, "received_1s_after_cut": after, "started": t_start, **marks}


def _set_link(plan, link: tuple[str, str], up: bool) -> None:
    u, v = link
    for a, b in ((u, v), (v, u)) if up else ((u, v),):
        subprocess.run(["ip", "link", "set", switch_intf_name(plan.switch_name(a), plan.port(a, b)),
                        "up" if up else "down"], check=True, capture_output=True, timeout=10)


def _wait_event(api, action: str, since: int, timeout: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for e in api.get(f"/v1/events?since={since}&limit=1000")["events"]:
            if e["action"] == action:
                return e
        time.sleep(0.05)
    return None


def _tail_seq(api) -> int:
    since = 0
    while True:
        page = api.get(f"/v1/events?since={since}&limit=1000")
        if not page["events"]:
            return since
        since = page["next"]


@dataclass
class Setting:
    """Where a chaos run happens: the topology, the flow's ends, path and cut link, the host plan
    (one host of tenant 1 at each end) and the output folder (``out``, else a temporary one)."""

    topo: Topology
    src: str
    dst: str
    path: list[str]
    cut: tuple[str, str]
    plan: HostPlan
    src_host: Any
    dst_host: Any
    outdir: Path


def setting(topology: str | None, out: str | None) -> Setting:
    topo = load(topology)
    src, dst, path, cut = choose_flow(topo)
    plan = HostPlan.build(topo, [(1, src), (1, dst)])
    outdir = Path(out) if out else Path(tempfile.mkdtemp(prefix="detnet-chaos-"))
    outdir.mkdir(parents=True, exist_ok=True)
    return Setting(topo, src, dst, path, cut, plan, plan.host_ports(src)[0], plan.host_ports(dst)[0], outdir)


def run_chaos(cfg: ChaosConfig) -> dict[str, Any]:
    """Run the scenarios; returns the report (see the module doc). Raises on set-up failure."""
    say = progress("chaos", cfg.verbose)
    st = setting(cfg.topology, cfg.out)
    topo, src, dst, path, cut, plan = st.topo, st.src, st.dst, st.path, st.cut, st.plan
    src_host, dst_host, outdir = st.src_host, st.dst_host, st.outdir
    report: dict[str, Any] = {"topology": topo.name, "flow": {"src": src, "dst": dst, "path": path},
                              "cut_link": list(cut), "reservations_per_class": cfg.reservations,
                              "traffic_flows_per_class": min(cfg.traffic, cfg.reservations)}
    t_all = time.monotonic()
    with NetworkStack(topo, plan, link_scale=cfg.link_scale, verbose=cfg.verbose, log_dir=str(outdir)) as net:
        ctl, emu, procs = net.ctl, net.emu, net.procs
        report["platform"] = net.platform          # incl. openflow: tls (the restart comes back over TLS too)
        api = ctl.client()
        api.post("/v1/tenants", {"name": "chaos"})
        flows, res_by_id = [], {}
        for i, body in enumerate(_requests(cfg, src_host, dst_host, path)):
            r = api.post("/v1/reservations", body)
            res_by_id[r["id"]] = r
            if body["frame_bytes"] > 1500:
                flows.append({"id": r["id"], "protected": bool(r.get("protection_path")),
                              "src_host": src_host.name, "dst_host": dst_host.name, "dst_ip": dst_host.ip,
                              "port": body["match"]["udp_dst"], "emulated": _emulated(r, cfg.link_scale)})
        sched = api.get("/v1/schedule")
        meta = {"cycle_ns": sched["cycle_ns"], "slot_ns": sched["slot_ns"], "links": sched["links"]}
        n_res = len(res_by_id)
        say(f"{n_res} reservations over {'-'.join(path)} ({cfg.reservations} protected), "
            f"{len(flows)} with traffic; cutting {cut[0]}-{cut[1]}")
        if not emu.ping(src_host.name, dst_host.name, count=2).ok:
            raise RuntimeError(f"{src_host.name} cannot reach {dst_host.name} before the cut")

        # ----- link cut ---------------------------------------------------------------
        seq0 = _tail_seq(api)

        def cut_link() -> dict[str, Any]:
            time.sleep(cfg.cut_after_s)
            wall = time.time()
            _set_link(plan, cut, up=False)
            return {"cut_wall": wall}

        ph1 = _traffic(emu, plan, flows, meta, cfg.cut_traffic_s, outdir, "cut", procs, cut_link)
        ev = _wait_event(api, "link_down", seq0, 10)
        if ev is None:
            raise RuntimeError("the controller reported no link_down event within 10 s of the cut:\n"
                               + ctl.log_tail())
        o = ev["outcome"]
        lost = {"protected": 0, "unprotected": 0}
        for f in flows:
            lost["protected" if f["protected"] else "unprotected"] += ph1["flows"][f["id"]]["lost"]
        after = ph1["received_1s_after_cut"]
        now = {r["id"]: r for r in api.get("/v1/reservations")["reservations"]}
        link_cut = {
            "reservations_affected": o["reservations_affected"],
            "rerouted": len(o["rerouted"]), "down": len(o["down"]),
            "reprogrammed_s": o["reprogrammed_s"], "scheduling_s": o.get("scheduling_s"),
            "cut_to_reprogrammed_s": round(ev["ts"] - ph1["cut_wall"], 4),
            "lost_protected": lost["protected"], "lost_unprotected": lost["unprotected"],
            "flows": ph1["flows"], "received_1s_after_cut": after,
            "avoid_cut_link": all(not ({tuple(cut), tuple(reversed(cut))}
                                       & set(zip(r["path"], r["path"][1:]))) for r in now.values()),
            "protected_reprotected": sum(1 for r in now.values()
                                         if r.get("protection") and r.get("protection_path")),
        }
        link_cut["pass"] = (link_cut["reservations_affected"] == n_res and link_cut["down"] == 0
                            and link_cut["lost_protected"] == 0 and link_cut["avoid_cut_link"]
                            and all(after.get(f["id"], 0) > 0 for f in flows))
        report["link_cut"] = link_cut
        say(f"link cut: {link_cut['reservations_affected']} affected, reprogrammed in "
            f"{1000 * link_cut['reprogrammed_s']:.1f} ms after the port status "
            f"({1000 * link_cut['cut_to_reprogrammed_s']:.0f} ms after the cut); lost: protected "
            f"{lost['protected']}, unprotected {lost['unprotected']}")
        seq1 = _tail_seq(api)
        _set_link(plan, cut, up=True)
        if _wait_event(api, "link_up", seq1, 10) is None:
            raise RuntimeError("no link_up event within 10 s of restoring the link")

        # ----- controller restart -------------------------------------------------------
        if cfg.restart:
            report["controller_restart"] = _restart(ctl, api, emu, plan, flows, meta, cfg, outdir, procs, say)
        else:
            report["controller_restart"] = {"reservations_before": None, "reservations_after": None,
                                            "lost_packets": None, "skipped": "--no-restart"}
    restart = report["controller_restart"]
    report["pass"] = bool(report["link_cut"]["pass"] and (restart.get("skipped") or restart.get("pass")))
    return finish(report, outdir, keep=bool(cfg.out), t_all=t_all)


def finish(report: dict[str, Any], outdir: Path, *, keep: bool, t_all: float) -> dict[str, Any]:
    """Stamp the run's duration and folder, write report.json there, and remove the folder when
    it was a temporary one (``keep`` False: then ``out`` is None)."""
    report["seconds"] = round(time.monotonic() - t_all, 1)
    report["out"] = str(outdir)
    (outdir / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    if not keep:
        shutil.rmtree(outdir, ignore_errors=True)
        report["out"] = None
    return report


def _restart(ctl, api, emu, plan, flows, meta, cfg, outdir, procs, say) -> dict[str, Any]:
    before = sorted((r["id"], json.dumps(r, sort_keys=True)) for r in api.get("/v1/reservations")["reservations"])
    log_mark = ctl.log_path.stat().st_size if ctl.log_path.exists() else 0
    marks: dict[str, Any] = {}

    def kill_and_restart() -> dict[str, Any]:
        time.sleep(cfg.restart_traffic_s / 4)
        t0 = time.monotonic()
        ctl.proc.send_signal(signal.SIGKILL)
        ctl.proc.wait(5)
        time.sleep(1.0)                     # the network runs without a controller
        ctl.start()
        ctl.wait_switches(len(plan.topology.nodes), 60)
        marks["down_to_resynced_s"] = round(time.monotonic() - t0, 3)
        return {}

    ph = _traffic(emu, plan, flows, meta, cfg.restart_traffic_s, outdir, "restart", procs, kill_and_restart)
    api2 = ctl.client()
    after = sorted((r["id"], json.dumps(r, sort_keys=True)) for r in api2.get("/v1/reservations")["reservations"])
    text = ctl.log_path.read_text(errors="replace")[log_mark:]
    synced = re.findall(r"synced in [\d.]+ ms: flows \+(\d+) -(\d+), meters \+(\d+) ~(\d+) -(\d+)"
                        r"(?:, groups \+(\d+) ~(\d+) -(\d+))?", text)
    changes = sum(int(x or 0) for s in synced for x in s)
    lost = sum(f["lost"] for f in ph["flows"].values())
    out = {"reservations_before": len(before), "reservations_after": len(after),
           "identical": before == after, "switches_resynced": len(synced), "resync_changes": changes,
           "lost_packets": lost, "down_to_resynced_s": marks.get("down_to_resynced_s"), "flows": ph["flows"]}
    out["pass"] = (out["identical"] and len(synced) == len(plan.topology.nodes) and changes == 0 and lost == 0)
    say(f"controller restart: {len(before)} -> {len(after)} reservations, {len(synced)} switches resynced with "
        f"{changes} changes, {lost} packets lost, back in {out['down_to_resynced_s']} s")
    return out


def text_summary(rep: dict[str, Any]) -> str:
    lc, cr = rep["link_cut"], rep["controller_restart"]
    lines = [f"chaos on {rep['topology']}: {'PASS' if rep['pass'] else 'FAIL'} ({rep['seconds']} s)",
             f"link cut {'-'.join(rep['cut_link'])}: {lc['reservations_affected']} reservations affected, "
             f"{lc['rerouted']} rerouted, {lc['down']} down; reprogrammed {1000 * lc['reprogrammed_s']:.1f} ms "
             f"after the port status ({1000 * lc['cut_to_reprogrammed_s']:.0f} ms after the cut)",
             f"  lost packets: protected {lc['lost_protected']}, unprotected {lc['lost_unprotected']}"]
    if cr.get("skipped"):
        lines.append(f"controller restart: skipped ({cr['skipped']})")
    else:
        lines.append(f"controller restart: reservations {cr['reservations_before']} -> {cr['reservations_after']}"
                     f" ({'identical' if cr['identical'] else 'DIFFERENT'}), {cr['switches_resynced']} switches "
                     f"resynced with {cr['resync_changes']} changes, {cr['lost_packets']} packets lost")
    return "\n".join(lines)
