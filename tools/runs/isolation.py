"""Tenant isolation audit on a running emulation: try every way across, capture every host port.

``audit(emu, plan)`` (also used by the scenario runner and the demo, on THEIR emulation):

1. every host port captures what it RECEIVES (tcpdump ``-Q in`` inside each host, whole frames);
2. intra-tenant reachability: within each tenant, a ring of pings (h0->h1->...->h0; both
   directions for two hosts) through the host's own stack (ARP via the controller); a pair with
   no reply is tried once more (counted in ``reachable_on_retry``);
3. every host sends, from a raw socket in its namespace (``tools.probes.isolation_probe``), to every host
   of ``k`` other tenants (tenant i probes tenants i+1..i+k, cyclically, so every tenant is
   probed by k others and all tenants probe at once): ARP requests for the foreign IP, UDP and
   ICMP to the foreign MAC/IP, the same with the foreign tenant's VLAN tag (802.1Q) and a QinQ
   pair, an ARP reply and a gratuitous ARP claiming the foreign IP; plus, once per host,
   broadcast, subnet-broadcast and multicast UDP (which would hit EVERY port of a flat network).
   ``k=None`` probes every other tenant (N² frames: fine for small N);
4. ``tools.probes.analyzer.count_leaks`` over all captures: a frame received on a port whose source MAC
   (else IPv4/ARP sender) belongs to another tenant is a leak.

Passes when no frame leaked, every ping ring closed and every capture saw its tenant's traffic
(a capture that saw nothing proves nothing). The report says what was covered.

``dnctl verify isolation`` owns the whole lifecycle: controller + emulation up, audit, down.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tools.emulation.network import Emulation, parse_ping
from tools.emulation.progress import progress
from tools.emulation.stack import controlled_emulation
from tools.probes import isolation_probe as ip
from tools.probes.analyzer import count_leaks
from tools.probes.capture import capture_command
from tools.runs.scales import SCENARIO_LINK_SCALE
from topologies.emulated import host_intf_name
from topologies.hosts import Host, HostPlan
from topologies.model import Topology

log = progress("isolation")


# ----- plans and sampling (pure) -----------------------------------------------------------------

def spread_plan(topology: Topology, tenants: int, hosts_per_tenant: int = 2) -> HostPlan:
    """``hosts_per_tenant`` hosts of each tenant 1..N, in different cities, spread over the topology.

    Host j of tenant t sits at node ``(t - 1 + j * stride_t) mod n`` with a stride that varies with
    the tenant, so tenants' host pairs cross the network along different paths.
    """
    nodes = list(topology.nodes)
    n = len(nodes)
    if hosts_per_tenant > n:
        raise ValueError(f"{hosts_per_tenant} hosts per tenant need as many nodes; {topology.name} has {n}")
    att = []
    for t in range(1, tenants + 1):
        base = (t - 1) % n
        stride = max(1, n // hosts_per_tenant) + ((t - 1) // n) % max(1, n // hosts_per_tenant)
        used: list[int] = []
        for j in range(hosts_per_tenant):
            i = (base + j * stride) % n
            while i in used:
                i = (i + 1) % n
            used.append(i)
            att.append((t, nodes[i]))
    return HostPlan.build(topology, att)


def foreign_targets(tenants: list[int], k: int | None) -> dict[int, list[int]]:
    """Tenant -> the tenants it probes: the next ``k`` in cyclic order (all others when k is None)."""
    n = len(tenants)
    kk = n - 1 if k is None else min(max(0, k), n - 1)
    return {t: [tenants[(i + d) % n] for d in range(1, kk + 1)] for i, t in enumerate(tenants)}


def ping_pairs(plan: HostPlan) -> list[tuple[Host, Host]]:
    """A ring of pings within each tenant (h0->h1, h1->h2, ..., hlast->h0)."""
    pairs = []
    for t in plan.tenants():
        hs = plan.hosts_of(t)
        if len(hs) >= 2:
            pairs += [(hs[i], hs[(i + 1) % len(hs)]) for i in range(len(hs))]
    return pairs


def leak_matrix(leaks: dict[str, Any], tenants: list[int]) -> list[list[int]]:
    """rows: receiving tenant, columns: sending tenant, cells: frames leaked (from count_leaks)."""
    idx = {t: i for i, t in enumerate(tenants)}
    m = [[0] * len(tenants) for _ in tenants]
    for st in leaks["ports"].values():
        r = idx.get(st["tenant"])
        for src, c in st["leaked_by_tenant"].items():
            if r is not None and int(src) in idx:
                m[r][idx[int(src)]] += int(c)
    return m


# ----- the audit on a running emulation ----------------------------------------------------------

def _net_and_plan(emu: Any, plan: HostPlan | None) -> tuple[Any, HostPlan]:
    is_emulation = isinstance(emu, Emulation)
    net = emu.net if is_emulation else emu
    plan = plan or (emu.plan if is_emulation else None)
    if plan is None:
        raise ValueError("audit needs the host plan (pass plan= with a bare Mininet net)")
    return net, plan


def _start_captures(net: Any, plan: HostPlan, pcap_dir: Path, timeout: float) -> dict[str, tuple[Any, str]]:
    caps: dict[str, tuple[Any, str]] = {}
    for h in plan.hosts:
        path = str(pcap_dir / f"{h.name}.pcap")
        cmd = capture_command(host_intf_name(h), path, bpf=None, snaplen=128, buffer_kib=1024) + ["-Q", "in"]
        caps[h.name] = (net.get(h.name).popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), path)
    deadline = time.monotonic() + timeout
    pending = set(caps)
    while pending:
        for name in list(pending):
            proc, path = caps[name]
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
                _stop_captures(caps)
                raise RuntimeError(f"tcpdump on {name} exited: {err.splitlines()[-1] if err else proc.returncode}")
            if os.path.exists(path) and os.path.getsize(path) >= 24:
                pending.discard(name)
        if pending and time.monotonic() > deadline:
            _stop_captures(caps)
            raise RuntimeError(f"{len(pending)} captures did not start within {timeout:.0f} s")
        time.sleep(0.05)
    time.sleep(0.2)
    return caps


def _stop_captures(caps: dict[str, tuple[Any, str]]) -> dict[str, str]:
    for proc, _ in caps.values():
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass
    for proc, _ in caps.values():
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr:
            proc.stderr.close()
    return {name: path for name, (_, path) in caps.items()}


def _pings(net: Any, pairs: list[tuple[Host, Host]], count: int, parallel: int) -> list[dict[str, Any]]:
    """Ping every pair (waves of ``parallel``); pairs that got no reply are tried once more, a wave of
    their own (the first try can lose its ARP round trip to the controller under load)."""
    first = _ping_wave(net, pairs, count, parallel)
    retry = [i for i, r in enumerate(first) if not r["reachable"]]
    if retry:
        again = _ping_wave(net, [pairs[i] for i in retry], count + 2, parallel)
        for i, r in zip(retry, again):
            r["attempts"] = 2
            r["first_attempt"] = {"sent": first[i]["sent"], "received": first[i]["received"]}
            first[i] = r
    return first


def _ping_wave(net: Any, pairs: list[tuple[Host, Host]], count: int, parallel: int) -> list[dict[str, Any]]:
    out = []
    for i in range(0, len(pairs), parallel):
        wave = [(s, d, net.get(s.name).popen(["ping", "-n", "-c", str(count), "-i", "0.2", "-W", "2", d.ip],
                                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
                for s, d in pairs[i:i + parallel]]
        for s, d, p in wave:
            text, _ = p.communicate(timeout=count * 0.2 + 15)
            r = parse_ping(s.name, d.name, text.decode(errors="replace"))
            out.append({"tenant": s.tenant, "src": s.name, "dst": d.name, "sent": r.sent, "received": r.received,
                        "reachable": r.received > 0, "rtt_avg_ms": r.rtt_avg_ms, "attempts": 1})
    return out


def _send_probes(net: Any, plan: HostPlan, targets: dict[int, list[int]], repeat: int) -> dict[str, int]:
    ep = {h.name: ip.Endpoint(h.name, h.tenant, h.mac, h.ip, h.prefix_len) for h in plan.hosts}
    sent: dict[str, int] = {k: 0 for k in ip.KINDS}
    for h in plan.hosts:
        frames: list[tuple[str, bytes]] = []
        for ft in targets.get(h.tenant, []):
            for f in plan.hosts_of(ft):
                frames += ip.targeted_frames(ep[h.name], ep[f.name])
        frames += ip.broadcast_frames(ep[h.name])
        sock = ip.netns_socket(net.get(h.name).pid, host_intf_name(h))
        try:
            for _ in range(repeat):
                for kind, fr in frames:
                    sock.send(fr)
                    sent[kind] += 1
        finally:
            sock.close()
    return sent


def audit(emu: Any, plan: HostPlan | None = None, *, k: int | None = 3, repeat: int = 2, ping_count: int = 3,
          parallel: int = 64, settle_s: float = 1.0, workdir: str | os.PathLike | None = None,
          keep_pcaps: bool = False, verbose: bool = True) -> dict[str, Any]:
    """Run the isolation audit on a running emulation (an ``Emulation`` or a Mininet net + ``plan``).

    ``k``: foreign tenants each tenant probes (None: all). ``repeat``: times every probe frame is
    sent. Returns the report dict (``pass``, ``leaked_frames``, ``leak_matrix``, ``reachability``,
    ``coverage``, ``ports``...). Pcaps go to ``workdir/pcaps`` (a temp dir, removed unless
    ``keep_pcaps``, when no workdir is given).
    """
    say = progress("isolation", verbose)
    net, plan = _net_and_plan(emu, plan)
    tenants = plan.tenants()
    t0 = time.monotonic()
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="detnet-iso-")
        pcap_dir = Path(tmp.name)
    else:
        pcap_dir = Path(workdir) / "pcaps"
        pcap_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    try:
        caps = _start_captures(net, plan, pcap_dir, timeout=20 + 0.1 * len(plan.hosts))
        timings["captures_start_s"] = time.monotonic() - t0
        say(f"capturing on {len(caps)} host ports")
        try:
            t1 = time.monotonic()
            pairs = ping_pairs(plan)
            pings = _pings(net, pairs, ping_count, parallel)
            timings["pings_s"] = time.monotonic() - t1
            say(f"{sum(p['reachable'] for p in pings)}/{len(pings)} intra-tenant pings reachable")
            t2 = time.monotonic()
            targets = foreign_targets(tenants, k)
            sent = _send_probes(net, plan, targets, repeat)
            timings["probes_s"] = time.monotonic() - t2
            say(f"sent {sum(sent.values())} cross-tenant probe frames")
            time.sleep(settle_s)
        finally:
            paths = _stop_captures(caps)
        t3 = time.monotonic()
        port_tenant = {h.name: h.tenant for h in plan.hosts}
        leaks = count_leaks({n: p for n, p in paths.items()}, port_tenant,
                            tenant_of_mac={h.mac: h.tenant for h in plan.hosts},
                            tenant_of_ip={h.ip: h.tenant for h in plan.hosts})
        timings["analysis_s"] = time.monotonic() - t3
    finally:
        if tmp is not None and not keep_pcaps:
            tmp.cleanup()
    report = build_report(plan, leaks, pings, targets, sent, repeat=repeat, k=k)
    timings["total_s"] = time.monotonic() - t0
    report["seconds"] = {k_: round(v, 3) for k_, v in timings.items()}
    if workdir is not None:
        report["pcap_dir"] = str(pcap_dir)
    say(f"{'PASS' if report['pass'] else 'FAIL'}: {report['leaked_frames']} leaked frames, "
        f"{report['reachability']['reachable_pairs']}/{report['reachability']['pairs_tested']} pairs reachable "
        f"in {timings['total_s']:.1f} s")
    return report


def build_report(plan: HostPlan, leaks: dict[str, Any], pings: list[dict[str, Any]], targets: dict[int, list[int]],
                 sent: dict[str, int], *, repeat: int, k: int | None) -> dict[str, Any]:
    """The audit's JSON report from its raw results (pure)."""
    tenants = plan.tenants()
    matrix = leak_matrix(leaks, tenants)
    by_tenant_ok = {t: True for t in tenants}
    for p in pings:
        by_tenant_ok[p["tenant"]] &= p["reachable"]
    single = [t for t in tenants if len(plan.hosts_of(t)) < 2]
    # a port's capture is only evidence if it saw its own tenant's traffic (the pings reach every host)
    blind = sorted(n for n, st in leaks["ports"].items()
                   if st["own"] == 0 and plan.host(n).tenant not in single)
    pairs_probed = sum(len(v) for v in targets.values())
    n = len(tenants)
    reach_ok = all(p["reachable"] for p in pings)
    leaked = int(leaks["leaked"])
    return {
        "pass": leaked == 0 and reach_ok and not blind,
        "leaked_frames": leaked,
        "tenants": n,
        "hosts": len(plan.hosts),
        "leaks": [{"receiver_tenant": tenants[r], "sender_tenant": tenants[c], "frames": v}
                  for r, row in enumerate(matrix) for c, v in enumerate(row) if v],
        "leak_matrix": {"rows": "receiving tenant", "columns": "sending tenant", "tenants": tenants, "frames": matrix},
        "reachability": {
            "all_reachable": reach_ok, "pairs_tested": len(pings),
            "reachable_pairs": sum(p["reachable"] for p in pings),
            "reachable_on_retry": sum(p["reachable"] and p.get("attempts", 1) > 1 for p in pings),
            "tenants": {str(t): ok for t, ok in by_tenant_ok.items()},
            "tenants_with_one_host": single,
            "unreachable": [p for p in pings if not p["reachable"]], "pairs": pings,
        },
        "captures": {"ports": len(leaks["ports"]), "blind_ports": blind,
                     "frames_received": sum(st["frames"] for st in leaks["ports"].values()),
                     "own_frames": sum(st["own"] for st in leaks["ports"].values()),
                     "unattributed_frames": sum(st["unattributed"] for st in leaks["ports"].values())},
        "coverage": {
            "foreign_tenants_per_tenant": n - 1 if k is None else min(k, n - 1),
            "tenant_pairs_probed_directly": pairs_probed, "tenant_pairs_total": n * (n - 1),
            "targeted_kinds": ["arp_request", "udp_unicast", "icmp_unicast", "vlan_spoof_udp", "vlan_spoof_arp",
                               "qinq_spoof", "arp_spoof_reply", "gratuitous_arp"],
            "flooding_kinds": ["broadcast_udp", "subnet_broadcast_udp", "multicast_udp"],
            "frames_sent": sent, "frames_sent_total": sum(sent.values()), "repeat": repeat,
            "note": ("every host sent every targeted kind to every host of the tenants it probes, and the "
                     "flooding kinds once (x repeat), which would reach every port of all tenants if the "
                     "network flooded; every host port captured everything it received"),
        },
        "ports": {name: {k_: v for k_, v in st.items() if k_ != "leaked_by_tenant"} | {
            "leaked_by_tenant": {str(t): c for t, c in st["leaked_by_tenant"].items()}}
            for name, st in leaks["ports"].items()},
    }


def text_report(rep: dict[str, Any], max_matrix: int = 16) -> str:
    """Human summary; the full matrix only for up to ``max_matrix`` tenants."""
    cov, reach, caps = rep["coverage"], rep["reachability"], rep["captures"]
    lines = [f"isolation audit: {rep['tenants']} tenants, {rep['hosts']} hosts: "
             f"{'PASS' if rep['pass'] else 'FAIL'}",
             f"  leaked frames: {rep['leaked_frames']} (must be 0)",
             f"  intra-tenant reachability: {reach['reachable_pairs']}/{reach['pairs_tested']} ping pairs "
             f"({'all reachable' if reach['all_reachable'] else 'NOT all reachable'})",
             f"  captures: {caps['ports']} ports, {caps['frames_received']} frames received "
             f"({caps['own_frames']} own tenant, {caps['unattributed_frames']} unattributed); "
             f"blind ports: {len(caps['blind_ports'])}",
             f"  coverage: each tenant probed {cov['foreign_tenants_per_tenant']} other tenants "
             f"({cov['tenant_pairs_probed_directly']}/{cov['tenant_pairs_total']} ordered tenant pairs directly), "
             f"{cov['frames_sent_total']} probe frames: "
             + ", ".join(f"{k} {v}" for k, v in cov["frames_sent"].items())]
    for leak in rep["leaks"][:20]:
        lines.append(f"  LEAK: tenant {leak['receiver_tenant']} received {leak['frames']} frames "
                     f"from tenant {leak['sender_tenant']}")
    for p in reach["unreachable"][:20]:
        lines.append(f"  UNREACHABLE: {p['src']} -> {p['dst']} (tenant {p['tenant']}): "
                     f"{p['received']}/{p['sent']}")
    m = rep["leak_matrix"]
    if len(m["tenants"]) <= max_matrix:
        lines.append("  leaked frames, receiving tenant (rows) x sending tenant (columns):")
        lines.append("        " + "".join(f"{t:>6}" for t in m["tenants"]))
        for t, row in zip(m["tenants"], m["frames"]):
            lines.append(f"  {t:>6}" + "".join(f"{v:>6}" for v in row))
    return "\n".join(lines)


def plot_matrix(rep: dict[str, Any], path: str) -> str:
    """PNG heat map of the leak matrix (all zero must look all blank) with reachability per tenant."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    m = rep["leak_matrix"]
    a = np.array(m["frames"], dtype=float)
    tenants = m["tenants"]
    fig, ax = plt.subplots(figsize=(6, 5.5))
    im = ax.imshow(a, cmap="Reds", vmin=0, vmax=max(1.0, a.max()), interpolation="nearest")
    ax.set_xlabel("sending tenant")
    ax.set_ylabel("receiving tenant")
    step = max(1, len(tenants) // 16)
    ticks = list(range(0, len(tenants), step))
    ax.set_xticks(ticks, [str(tenants[i]) for i in ticks], fontsize=7)
    ax.set_yticks(ticks, [str(tenants[i]) for i in ticks], fontsize=7)
    unreach = [t for t, ok in rep["reachability"]["tenants"].items() if not ok]
    ax.set_title(f"leaked frames: {rep['leaked_frames']} "
                 f"({rep['coverage']['frames_sent_total']} probes); unreachable tenants: {len(unreach)}", fontsize=9)
    fig.colorbar(im, ax=ax, label="frames")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ----- the whole run (``dnctl verify isolation``): controller + emulation up, audit, down ------------

def run_isolation(topology: Topology, plan: HostPlan, *, link_scale: float | None = None, k: int | None = 3,
                  repeat: int = 2, out: Path | None = None) -> dict[str, Any]:
    """Bring up the controller and the emulation of ``topology`` + ``plan``, ``audit`` it, tear it down.

    Returns the audit report with ``seconds.bring_up_s``/``wall_s`` and ``topology``. With ``out``:
    the controller log, the pcaps, isolation.json, isolation.txt and isolation.png are kept there.
    ``link_scale`` defaults to ``SCENARIO_LINK_SCALE``.
    """
    if out:
        out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    scale = SCENARIO_LINK_SCALE if link_scale is None else link_scale
    with controlled_emulation(topology, plan, link_scale=scale, log_dir=out) as (_ctl, emu):
        up_s = time.monotonic() - t0
        rep = audit(emu, plan, k=k, repeat=repeat, workdir=out)
    rep["seconds"]["bring_up_s"] = round(up_s, 3)
    rep["seconds"]["wall_s"] = round(time.monotonic() - t0, 3)
    rep["topology"] = topology.name
    if out:
        (out / "isolation.json").write_text(json.dumps(rep, indent=1) + "\n")
        (out / "isolation.txt").write_text(text_report(rep) + "\n")
        plot_matrix(rep, str(out / "isolation.png"))
    return rep
