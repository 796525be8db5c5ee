"""``dnctl chaos --scenario leader-kill|etcd-member-kill|partition``: a cluster of controllers under failure.

One run brings up a 3-member etcd, three controllers on it (``--store etcd://``,
``controller.ha``) and the emulation with every switch connected to all three
(``NetworkStack(cluster=3)``), reserves flows that carry probe traffic, and keeps a **writer**
admitting small reservations through a follower (the client follows the 307 to the leader and
retries with the same ``Idempotency-Key`` across a failover) while the failure happens:

- ``leader-kill``: SIGKILL the leading controller, ``kills`` times (the killed member is started
  again as a follower before the next kill). ``failover_s``: from the kill to the first write the
  new leader admitted;
- ``etcd-member-kill``: SIGKILL one of the three etcd members (the one the leader's store calls
  first). Nothing visible may change: same leader, writes go on (``failover_s`` is then the
  longest pause between two admitted writes around the kill), no packet lost;
- ``partition``: the leader is cut from etcd (its client traffic to etcd runs through a proxy
  per member, ``tools.emulation.tcpproxy``, which the scenario cuts). Its lease ends, another
  member takes over; a write sent to the cut-off leader directly must not be admitted
  (``stale_writes_accepted``), and the switches' tables must not change behind the new leader's
  back while the old one is cut off.

The report (``--json``) gives per failure ``failover_s``, ``lost_reserved_packets``,
``reservations_before``/``reservations_after``, ``duplicates``, ``stale_writes_accepted``,
``pass``; over several kills ``failover_s`` min/median/max. ``pass`` is about correctness (no
reserved packet lost, no reservation lost or booked twice, no stale write accepted, a leader
after every failure); the 1 s failover target is printed beside the measured figure.
"""

from __future__ import annotations

import itertools
import signal
import ssl
import statistics
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx

from tools.client import ApiClient, ApiError, ConnectionFailed
from tools.emulation.progress import progress
from tools.emulation.stack import NetworkStack
from tools.runs.chaos import _emulated, _requests, _traffic, finish, setting

SCENARIOS = ("leader-kill", "etcd-member-kill", "partition")
#: the take-over time the issue sets (ONOS: 0.33-0.52 s on 3-7 nodes)
FAILOVER_TARGET_S = 1.0
#: UDP ports of the writer's small reservations (one each: a duplicate shows as two on one port)
WRITER_PORT_BASE = 48000


@dataclass
class ClusterChaosConfig:
    scenario: str = "leader-kill"
    topology: str | None = None
    kills: int = 3
    reservations: int = 2            # probe-carrying reservations (and as many protected)
    traffic: int = 2
    period_ns: int = 2_000_000
    link_scale: float = 0.001
    traffic_s: float = 6.0
    out: str | None = None
    verbose: bool = True


class Writer:
    """Admits small reservations one after another through ``url`` until stopped; remembers when
    each answer came and what it said."""

    def __init__(self, url: str, token: str, ca: str | None, src: str, dst: str, match_base: dict[str, Any],
                 ports: Iterator[int]):
        # 2 s: a write the cut-off leader accepted hangs until its etcd calls time out; the client
        # gives up on it sooner and retries, with the same key, where the new leader answers
        self.client = ApiClient(url, token, timeout=2, ca=ca, retry_s=15)
        self.src, self.dst, self.match_base = src, dst, match_base
        self.results: list[dict[str, Any]] = []    # {"t", "port", "id" | "error"}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-writer", daemon=True)
        self._ports = ports     # one UDP port per reservation, across rounds (the same match would overlap)

    def start(self) -> "Writer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=40)
        self.client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            port = next(self._ports)
            body = {"tenant": 1, "src": self.src, "dst": self.dst, "period_ns": 10_000_000, "frame_bytes": 100,
                    "max_latency_ns": 100_000_000, "match": {**self.match_base, "udp_dst": port}}
            t_sent = time.time()
            try:
                res = self.client.reserve(body, idempotency_key=uuid.uuid4().hex)
                self.results.append({"t_sent": t_sent, "t": time.time(), "port": port, "id": res["id"]})
            except (ApiError, ConnectionFailed) as e:
                self.results.append({"t_sent": t_sent, "t": time.time(), "port": port, "error": str(e)[:200]})
            self._stop.wait(0.05)

    def admitted(self) -> list[dict[str, Any]]:
        return [r for r in self.results if "id" in r]


def _reservations(api: ApiClient) -> list[dict[str, Any]]:
    return api.get("/v1/reservations")["reservations"]


def _duplicates(reservations: list[dict[str, Any]]) -> int:
    """Writer reservations booked more than once (two on one writer port)."""
    ports: dict[int, int] = {}
    for r in reservations:
        port = (r.get("match") or {}).get("udp_dst")
        if port is not None and port >= WRITER_PORT_BASE:
            ports[port] = ports.get(port, 0) + 1
    return sum(n - 1 for n in ports.values() if n > 1)


def _first_after(writer: Writer, t: float) -> float | None:
    """When the first write sent after ``t`` was admitted (one sent before may have been answered
    by the old leader just before it died)."""
    times = [r["t"] for r in writer.admitted() if r["t_sent"] >= t]
    return min(times) if times else None


def _longest_gap(writer: Writer, t0: float, t1: float) -> float | None:
    times = sorted(r["t"] for r in writer.admitted() if t0 <= r["t"] <= t1)
    if len(times) < 2:
        return None
    return max(b - a for a, b in zip(times, times[1:]))


def run_cluster_chaos(cfg: ClusterChaosConfig) -> dict[str, Any]:
    """Run one cluster scenario (see the module doc); returns the report. Raises on set-up failure."""
    if cfg.scenario not in SCENARIOS:
        raise ValueError(f"scenario {cfg.scenario!r}: one of {', '.join(SCENARIOS)}")
    say = progress("chaos", cfg.verbose)
    st = setting(cfg.topology, cfg.out)
    topo, src, dst, path, plan = st.topo, st.src, st.dst, st.path, st.plan
    src_host, dst_host, outdir = st.src_host, st.dst_host, st.outdir
    report: dict[str, Any] = {"scenario": cfg.scenario, "topology": topo.name, "controllers": 3, "etcd_members": 3,
                              "failover_target_s": FAILOVER_TARGET_S}
    t_all = time.monotonic()
    with NetworkStack(topo, plan, link_scale=cfg.link_scale, verbose=cfg.verbose, log_dir=str(outdir),
                      cluster=3, etcd_proxies=cfg.scenario == "partition") as net:
        report["platform"] = net.platform
        api = net.ctl.client()
        api.post("/v1/tenants", {"name": "chaos"})
        flows = []
        for body in _requests(cfg, src_host, dst_host, path):    # type: ignore[arg-type]
            r = api.post("/v1/reservations", body)
            if body["frame_bytes"] > 1500:
                flows.append({"id": r["id"], "src_host": src_host.name, "dst_host": dst_host.name,
                              "dst_ip": dst_host.ip, "port": body["match"]["udp_dst"],
                              "emulated": _emulated(r, cfg.link_scale)})
        sched = api.get("/v1/schedule")
        meta = {"cycle_ns": sched["cycle_ns"], "slot_ns": sched["slot_ns"], "links": sched["links"]}
        api.close()
        say(f"cluster of 3 on etcd; {len(flows)} reserved flows with traffic over {'-'.join(path)}; "
            f"scenario {cfg.scenario}")
        match_base = {"ip_src": src_host.ip, "ip_dst": dst_host.ip, "ip_proto": 17}
        ports = itertools.count(WRITER_PORT_BASE)
        rounds = []
        n = cfg.kills if cfg.scenario == "leader-kill" else 1
        for i in range(n):
            rounds.append(_round(net, cfg, i, flows, meta, outdir, src, dst, match_base, ports, say))
            if cfg.scenario == "leader-kill" and i + 1 < n:
                net.restart_stopped()          # the killed member comes back, as a follower
    report["rounds"] = rounds
    fo = [r["failover_s"] for r in rounds if r.get("failover_s") is not None]
    report["failover_s"] = ({"min": min(fo), "median": round(statistics.median(fo), 3), "max": max(fo)}
                            if fo else None)
    for key in ("lost_reserved_packets", "duplicates", "stale_writes_accepted", "reservations_lost"):
        report[key] = sum(int(r.get(key) or 0) for r in rounds)
    report["pass"] = bool(rounds) and all(r["pass"] for r in rounds)
    return finish(report, outdir, keep=bool(cfg.out), t_all=t_all)


def _round(net: NetworkStack, cfg: ClusterChaosConfig, i: int, flows, meta, outdir: Path, src: str, dst: str,
           match_base: dict[str, Any], ports: Iterator[int], say) -> dict[str, Any]:
    """One failure with traffic flowing and the writer writing."""
    leader = net.leader()
    follower = next(c for c in net.ctls if c is not leader and c.running)
    admin = leader.admin_token
    with ApiClient(leader.url, admin, ca=leader.ca) as api:
        before = _reservations(api)
    writer = Writer(follower.url, admin, follower.ca, src, dst, match_base, ports).start()
    marks: dict[str, Any] = {}

    def fail() -> dict[str, Any]:
        time.sleep(cfg.traffic_s / 4)
        marks["t_fail"] = time.time()
        if cfg.scenario == "leader-kill":
            leader.proc.send_signal(signal.SIGKILL)
            leader.proc.wait(5)
        elif cfg.scenario == "etcd-member-kill":
            net.etcd.stop(0)                    # the member every store calls first
        else:
            net.cut_from_etcd(leader)
            # a write sent to the cut-off leader at once, while it may still believe it leads
            stale = threading.Thread(target=lambda: marks.__setitem__(
                "stale", _stale_write(leader, admin, src, dst, match_base)), daemon=True)
            stale.start()
        new = net.leader(timeout=30, but=leader if cfg.scenario != "etcd-member-kill" else None)
        marks["t_elected"] = time.time()
        marks["new_leader"] = new.url
        time.sleep(cfg.traffic_s / 4)
        if cfg.scenario == "partition":
            stale.join(timeout=20)
            if stale.is_alive():
                raise RuntimeError("the write sent to the cut-off leader got no answer within 20 s")
        return {}

    ph = _traffic(net.emu, net.plan, flows, meta, cfg.traffic_s, outdir, f"{cfg.scenario}-{i}", net.procs, fail)
    time.sleep(0.5)
    writer.stop()
    new = net.leader(timeout=30)
    with ApiClient(new.url, admin, ca=new.ca) as api:
        after = _reservations(api)
    t_fail = marks["t_fail"]
    admitted = writer.admitted()
    ids_after = {r["id"] for r in after}
    lost_res = [r["id"] for r in before if r["id"] not in ids_after] + \
               [w["id"] for w in admitted if w["id"] not in ids_after]
    dups = _duplicates(after)
    first = _first_after(writer, t_fail)
    if cfg.scenario == "etcd-member-kill":
        failover = _longest_gap(writer, t_fail - 1.0, time.time())
    else:
        failover = None if first is None else round(first - t_fail, 3)
    lost_packets = sum(f["lost"] for f in ph["flows"].values())
    stale = marks.get("stale", 0)
    out = {"round": i + 1, "old_leader": leader.url, "new_leader": marks.get("new_leader"),
           "failed_at": time.strftime("%H:%M:%S", time.localtime(t_fail)) + f".{int(t_fail * 1000) % 1000:03d}",
           "failover_s": None if failover is None else round(failover, 3),
           "lost_reserved_packets": lost_packets, "reservations_before": len(before),
           "reservations_after": len(after), "writes_admitted": len(admitted),
           "writes_failed": len(writer.results) - len(admitted),
           "write_errors": sorted({r["error"] for r in writer.results if "error" in r})[:5],
           "elected_s": None if marks.get("t_elected") is None else round(marks["t_elected"] - t_fail, 3),
           "duplicates": dups, "reservations_lost": len(lost_res), "stale_writes_accepted": stale,
           "flows": ph["flows"]}
    out["pass"] = (lost_packets == 0 and dups == 0 and not lost_res and stale == 0 and first is not None
                   and len(after) == len(before) + len(admitted))
    if cfg.scenario == "etcd-member-kill":
        out["pass"] = out["pass"] and marks.get("new_leader") == leader.url
    say(f"round {i + 1}: {cfg.scenario}: failover {out['failover_s']} s (target {FAILOVER_TARGET_S:g} s), "
        f"{lost_packets} reserved packets lost, reservations {len(before)} -> {len(after)} "
        f"({len(admitted)} admitted during), {dups} duplicates, {stale} stale writes accepted")
    return out


def _stale_write(leader, admin: str, src: str, dst: str, match_base: dict[str, Any]) -> int:
    """Send one reservation to the cut-off leader directly (no retry): 1 if it was admitted."""
    body = {"tenant": 1, "src": src, "dst": dst, "period_ns": 10_000_000, "frame_bytes": 100,
            "max_latency_ns": 100_000_000, "match": {**match_base, "udp_dst": WRITER_PORT_BASE - 1}}
    # not ApiClient: it would follow a 307 to the new leader, which may rightly admit it
    try:
        r = httpx.post(f"{leader.url}/v1/reservations", json=body, timeout=10, follow_redirects=False,
                       headers={"Authorization": f"Bearer {admin}"}, trust_env=False,
                       verify=ssl.create_default_context(cafile=leader.ca) if leader.ca else True)
    except httpx.HTTPError:
        return 0
    return 1 if r.status_code == 201 else 0


def text_summary(rep: dict[str, Any]) -> str:
    fo = rep.get("failover_s") or {}
    lines = [f"chaos {rep['scenario']} on a cluster of 3 (etcd 3 members), {rep['topology']}: "
             f"{'PASS' if rep['pass'] else 'FAIL'} ({rep['seconds']} s)"]
    what = "longest pause between two admitted writes" if rep["scenario"] == "etcd-member-kill" else "failover"
    for r in rep["rounds"]:
        lines.append(f"  round {r['round']}: {what} {r['failover_s']} s, lost reserved packets "
                     f"{r['lost_reserved_packets']}, reservations {r['reservations_before']} -> "
                     f"{r['reservations_after']} ({r['writes_admitted']} admitted during), duplicates "
                     f"{r['duplicates']}, stale writes accepted {r['stale_writes_accepted']}")
    if fo:
        lines.append(f"{what}: min {fo['min']} s, median {fo['median']} s, max {fo['max']} s "
                     f"(target <= {rep['failover_target_s']:g} s)")
    return "\n".join(lines)
