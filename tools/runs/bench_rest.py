"""The REST load benchmark: N reservations of T tenants through the REST API, installed on the
40-switch emulation, checked on every switch, released, and the tables checked back to baseline.

Why a module of its own: ``dnctl bench rest`` (issue 4's benchmark figures) and the load test
(issue 7 item 5, ``tests/test_load_emulation.py``) run the same scenario; the CLI prints it, the
test asserts on it.

Scenario (``run_rest_bench``):

1. a host plan with ``hosts_per_tenant`` hosts of each tenant spread over the topology
   (``tools.runs.isolation.spread_plan``); the controller child process and, unless ``emulate=False``,
   the Mininet emulation of topology + plan connected to it (``tools.emulation.stack.NetworkStack``);
2. a snapshot of every switch's flow table and meter table (``ovs-ofctl --no-stats dump-flows``
   and ``dump-meters``: no counters), once all switches are connected and synced;
3. T tenants created by the admin; each tenant then POSTs its own reservations with its own token
   (the seeded workload of ``rest_workload``: the core admission bench's mix, endpoints among the
   tenant's host cities, a distinct UDP port per reservation so no two share a match), ``C``
   concurrent clients; every POST answer is timed (it returns once the shim has the barrier
   replies of every switch of the path, so it is the "POST to entries on every switch" time seen
   by the client); the shim's own figure (listener call to last barrier reply) is read from its
   ``install_ms=`` log lines;
4. controller RSS (``/proc/PID/status`` VmRSS and VmHWM) with everything installed;
5. every switch's reservation entries (cookie kind 3) compared with the translation of the
   admitted reservations (``controller.dataplane.translation.reservation_flows``): same cookies (the cookie's
   low byte digests match and actions), same count, and each reservation's meter on its ingress;
6. every reservation DELETEd (same concurrency), then the snapshot taken again and compared with
   step 2: ``tables_back_to_baseline``;
7. (``batch``, the default) the same workload again as ONE non-atomic batch
   (``POST /v1/reservations/batch`` with the admin token, every member naming its tenant), the
   switches checked as in step 5, then every admitted id released by one ``POST
   /v1/reservations/delete`` and the tables compared with step 2 again: the ``batch_*`` figures,
   printed beside the one-by-one ones (the shim's install figures are read from the one-by-one
   phase's log lines; ``batch_install_ms`` is the batch's one program).

``emulate=False`` gives the controller-alone figures (REST, admission, store; no switch, as ONOS's
null providers): report them beside the switch figures, never in place of them.

Rate limits: each tenant uses its own token (its own bucket, 50/s burst 100 by default); a 429 is
retried after its Retry-After and counted (``rate_limited``), never hidden.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import math
import random
import re
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import httpx
import networkx as nx

from controller.core.bench import BULK_FRACTION, HARMONIC_PERIODS_NS
from controller.core.model import Reservation
from controller.dataplane import specs
from controller.dataplane import translation as tr
from tools.emulation.progress import progress as progress_logger
from tools.emulation.progress import quiet
from tools.emulation.stack import NetworkStack
from tools.runs.isolation import spread_plan
from topologies.hosts import HostPlan
from topologies.loaders import load_topology
from topologies.model import Topology

#: first UDP destination port of the workload (each reservation of a tenant gets the next one)
UDP_BASE = 20000


log = progress_logger("bench rest")


# ----- workload (pure) --------------------------------------------------------------------------

@dataclass
class Item:
    """One reservation request of the workload: who sends it and the POST body."""

    tenant: int
    body: dict[str, Any]

    @property
    def id(self) -> str:
        return self.body["id"]


def rest_workload(plan: HostPlan, reservations: int, tenants: int, seed: int = 1) -> list[Item]:
    """The seeded request list: tenants round-robin 1..T, src/dst an ordered pair of distinct cities
    where the tenant has hosts, ~10% bulk flows (1-5 Gb/s, 1 ms period) and ~90% small periodic
    streams (64-1500 B, periods 1/2/4/8 ms), ``max_latency_ns`` = 2 x the pair's shortest
    propagation + 5 ms, and ``match.udp_dst`` = 20000 + the reservation's rank within its tenant
    (two reservations of one host pair never share a match)."""
    rng = random.Random(seed)
    cities = {t: sorted({h.switch for h in plan.hosts_of(t)}) for t in range(1, tenants + 1)}
    short = [t for t, c in cities.items() if len(c) < 2]
    if short:
        raise ValueError(f"tenant {short[0]} has hosts in fewer than two cities")
    g = plan.topology.graph
    dist: dict[tuple[str, str], int] = {}
    rank: Counter[int] = Counter()
    out = []
    for i in range(reservations):
        t = i % tenants + 1
        src, dst = rng.sample(cities[t], 2)
        if (src, dst) not in dist:
            dist[(src, dst)] = nx.shortest_path_length(g, src, dst, weight="propagation_ns")
        body: dict[str, Any] = {"id": f"t{t}-r{i}", "src": src, "dst": dst,
                                "max_latency_ns": int(2 * dist[(src, dst)] + 5_000_000),
                                "match": {"udp_dst": UDP_BASE + rank[t]}}
        rank[t] += 1
        if rng.random() < BULK_FRACTION:
            body.update(period_ns=1_000_000, bandwidth_bps=rng.randint(1_000, 5_000) * 1_000_000)
        else:
            body.update(period_ns=rng.choice(HARMONIC_PERIODS_NS), frame_bytes=rng.randint(64, 1500))
        out.append(Item(t, body))
    return out


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (linear interpolation, as numpy's default); None for no values."""
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def expected_reservation_cookies(plan: HostPlan, reservations: list[Reservation], *, rate_scale: float = 1.0
                                 ) -> tuple[dict[int, Counter], dict[int, set[int]]]:
    """dpid -> Counter of the reservation entries' cookies the translation puts there, and
    dpid -> the reservation meter ids it puts there."""
    flows: dict[int, Counter] = {}
    meters: dict[int, set[int]] = {}
    for res in reservations:
        fs, ms = tr.reservation_flows(plan, res, rate_scale=rate_scale)
        for f in fs:
            flows.setdefault(f.dpid, Counter())[f.cookie] += 1
        for m in ms:
            meters.setdefault(m.dpid, set()).add(m.meter_id)
    return flows, meters


# ----- switch tables ----------------------------------------------------------------------------

_COOKIE = re.compile(r"cookie=(0x[0-9a-f]+)")


def _ofctl(*args: str, timeout: float = 60.0) -> str:
    r = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", *args], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"ovs-ofctl {' '.join(args)}: {r.stderr.strip()[-200:]}")
    return r.stdout


def flow_lines(switch: str) -> list[str]:
    """A switch's entries without counters (``--no-stats``), sorted."""
    return sorted(l.strip() for l in _ofctl("--no-stats", "dump-flows", switch).splitlines() if "actions=" in l)


def meter_lines(switch: str) -> list[str]:
    """A switch's meter configurations (``dump-meters``: no counters), one string per meter, sorted."""
    text = _ofctl("dump-meters", switch)
    body = "\n".join(l for l in text.splitlines() if not l.startswith("OFPST_") and "reply" not in l)
    return sorted(" ".join(("meter=" + chunk).split()) for chunk in body.split("meter=")[1:])


def meter_ids(lines: list[str]) -> set[int]:
    return {int(m.group(1)) for l in lines if (m := re.match(r"meter=(\d+)", l))}


def cookies_of(lines: list[str], kind: int | None = None) -> Counter:
    """Counter of the cookies of ``lines`` (only those of cookie ``kind`` when given)."""
    c: Counter = Counter()
    for l in lines:
        m = _COOKIE.search(l)
        v = int(m.group(1), 16) if m else 0
        if kind is None or specs.parse_cookie(v)["kind"] == kind:
            c[v] += 1
    return c


def snapshot(switches: list[str], workers: int = 8) -> dict[str, dict[str, list[str]]]:
    """switch -> {"flows": [...], "meters": [...]}, read concurrently."""
    def one(sw: str) -> tuple[str, dict[str, list[str]]]:
        return sw, {"flows": flow_lines(sw), "meters": meter_lines(sw)}
    with cf.ThreadPoolExecutor(workers) as ex:
        return dict(ex.map(one, switches))


def snapshot_diff(before: dict[str, dict[str, list[str]]], after: dict[str, dict[str, list[str]]]
                  ) -> dict[str, dict[str, int]]:
    """switch -> {"flows_missing", "flows_extra", "meters_missing", "meters_extra"} where they differ."""
    out = {}
    for sw in sorted(set(before) | set(after)):
        b, a = before.get(sw, {}), after.get(sw, {})
        d = {}
        for k in ("flows", "meters"):
            bc, ac = Counter(b.get(k, [])), Counter(a.get(k, []))
            d[f"{k}_missing"] = sum((bc - ac).values())
            d[f"{k}_extra"] = sum((ac - bc).values())
        if any(d.values()):
            out[sw] = d
    return out


def verify_installed(plan: HostPlan, reservations: list[Reservation], snap: dict[str, dict[str, list[str]]],
                     *, rate_scale: float = 1.0) -> dict[str, Any]:
    """Compare every switch's reservation entries and meters with the translation of ``reservations``."""
    want_flows, want_meters = expected_reservation_cookies(plan, reservations, rate_scale=rate_scale)
    bad: dict[str, dict[str, int]] = {}
    expected = found = 0
    for node in plan.topology.nodes:
        dpid, sw = plan.dpid(node), plan.switch_name(node)
        want = want_flows.get(dpid, Counter())
        have = cookies_of(snap[sw]["flows"], specs.KIND_RESERVATION)
        expected += sum(want.values())
        found += sum(have.values())
        wm = want_meters.get(dpid, set())
        hm = {i for i in meter_ids(snap[sw]["meters"]) if i >= specs.RES_METER_BASE}
        d = {"entries_missing": sum((want - have).values()), "entries_extra": sum((have - want).values()),
             "meters_missing": len(wm - hm), "meters_extra": len(hm - wm)}
        if any(d.values()):
            bad[sw] = d
    return {"entries_expected": expected, "entries_found": found, "ok": not bad, "mismatches": bad}


# ----- HTTP load ----------------------------------------------------------------------------------

@dataclass
class Answer:
    status: int             # HTTP status, 0 when the request failed without an answer
    seconds: float          # last attempt's round trip
    body: Any = None
    retries: int = 0        # 429s retried


def _send(client: Any, method: str, path: str, token: str, body: Any = None, max_retries: int = 20) -> Answer:
    retries = 0
    while True:
        t0 = time.perf_counter()
        try:
            r = client.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as e:
            return Answer(0, time.perf_counter() - t0, {"error": type(e).__name__, "detail": str(e)}, retries)
        dt = time.perf_counter() - t0
        if r.status_code == 429 and retries < max_retries:
            retries += 1
            time.sleep(min(2.0, float(r.headers.get("Retry-After", "1"))))
            continue
        parsed = None
        if r.content and "json" in r.headers.get("content-type", ""):
            with contextlib.suppress(ValueError):
                parsed = r.json()
        return Answer(r.status_code, dt, parsed, retries)


def run_requests(url: str, jobs: list[tuple[str, str, str, Any]], concurrency: int, timeout: float = 60.0
                 ) -> tuple[list[Answer], float]:
    """Send ``jobs`` (method, path, token, body) with ``concurrency`` clients (each its own keep-alive
    connection); answers in job order and the wall time of the whole batch."""
    answers: list[Answer | None] = [None] * len(jobs)
    nxt = iter(range(len(jobs)))
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=timeout, trust_env=False) as c:
            while True:
                with lock:
                    i = next(nxt, None)
                if i is None:
                    return
                m, p, tok, body = jobs[i]
                answers[i] = _send(c, m, p, tok, body)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, min(concurrency, len(jobs))))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [a for a in answers if a is not None], time.perf_counter() - t0


# ----- measurements of the controller process -------------------------------------------------------

def proc_memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) of a process in MiB."""
    out = {}
    with contextlib.suppress(OSError):
        for line in open(f"/proc/{pid}/status"):
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = round(int(v.split()[0]) / 1024, 1)
    return out


_INSTALL = re.compile(r"reservations? (\S+) (installed|removed) on (\d+) switches.*?install_ms=([\d.]+)")


def install_times_from_log(text: str) -> dict[str, dict[str, float]]:
    """{"installed": {id: ms}, "removed": {id: ms}} from the shim's log lines (a line for
    reservations programmed together lists their ids, comma-separated; each gets the program's time)."""
    out: dict[str, dict[str, float]] = {"installed": {}, "removed": {}}
    for m in _INSTALL.finditer(text):
        for rid in m.group(1).split(","):
            out[m.group(2)][rid] = float(m.group(4))
    return out


def metric_value(text: str, name: str) -> float | None:
    """The value of an unlabelled sample ``name`` in Prometheus text."""
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


# ----- the scenario ----------------------------------------------------------------------------------

@dataclass
class BenchOptions:
    topology: Any = "fntf40"
    reservations: int = 4096
    tenants: int = 128
    hosts_per_tenant: int = 2
    concurrency: int = 8
    emulate: bool = True
    seed: int = 1
    link_scale: float | None = None       # None: the emulation's default (1/1000)
    connect_timeout: float = 120.0
    verbose: bool = True
    keep_log: str | None = None           # a directory to keep the controller log in
    batch: bool = True                    # step 7: the same workload as one batch, one multi-delete
    cluster: int = 0                      # >= 2: that many controllers on a 3-member etcd, requests to the leader


def _ms(x: float | None) -> float | None:
    return None if x is None else round(1000 * x, 3)


def run_rest_bench(opts: BenchOptions, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the scenario of the module docstring; return the figures as a JSON-able dict."""
    say = progress or (log if opts.verbose else quiet)
    t_all = time.perf_counter()
    topo = opts.topology if isinstance(opts.topology, Topology) else load_topology(opts.topology)
    plan = spread_plan(topo, opts.tenants, opts.hosts_per_tenant)
    work = rest_workload(plan, opts.reservations, opts.tenants, opts.seed)
    stack = NetworkStack(topo, plan, link_scale=opts.link_scale, emulate=opts.emulate, log_dir=opts.keep_log,
                         lldp_interval=5.0, start_timeout=60, connect_timeout=opts.connect_timeout,
                         verbose=opts.verbose, cluster=opts.cluster)
    scale = stack.link_scale
    result: dict[str, Any] = {
        "topology": topo.name, "switches": len(topo.nodes), "tenants": opts.tenants,
        "hosts": len(plan.hosts), "requests": len(work), "concurrency": opts.concurrency, "seed": opts.seed,
        "emulated": opts.emulate, "link_scale": scale,
        "store": f"etcd (3 members), {opts.cluster} controllers" if opts.cluster else "sqlite"}

    with stack:
        ctl = stack.ctl
        switches = [plan.switch_name(n) for n in topo.nodes]
        base = None
        if opts.emulate:
            result["lock_wait_s"] = round(stack.timings["lock_wait_s"], 2)
            t_all += stack.timings["lock_wait_s"]      # total_s does not count waiting for other emulations
        say(f"controller up in {ctl.started_s:.1f} s (pid {ctl.proc.pid}, {ctl.url})")
        if opts.emulate:
            result["emulation_start_s"] = round(stack.timings["emulation_start_s"], 2)
            result["emulation_timings"] = stack.emu.timings.to_dict()
            result["switches_synced_s"] = round(stack.timings["emulation_s"], 2)
            result["emulation_mem_mb"] = stack.emulation_mem_mb
            say(f"emulation: {len(switches)} switches, {len(plan.hosts)} hosts up in "
                f"{result['emulation_start_s']:.1f} s, all switches synced after {result['switches_synced_s']:.1f} s "
                f"({result['emulation_mem_mb']:.0f} MiB of memory)")
            base = snapshot(switches)
            result["baseline_entries"] = sum(len(v["flows"]) for v in base.values())
        else:
            result["emulation_start_s"] = None
        result["controller_rss_idle_mb"] = proc_memory_mb(ctl.proc.pid).get("VmRSS")

        # tenants (admin), each with its own token
        admin = ctl.admin_token
        tjobs = [("POST", "/v1/tenants", admin, {"name": f"tenant{t}"}) for t in range(1, opts.tenants + 1)]
        answers, _ = run_requests(ctl.url, tjobs, 1)
        tokens: dict[int, str] = {}
        for t, a in zip(range(1, opts.tenants + 1), answers):
            if a.status != 201 or a.body.get("id") != t:
                raise RuntimeError(f"creating tenant{t}: HTTP {a.status} {a.body}")
            tokens[t] = a.body["token"]

        # POST every reservation
        t_load = time.perf_counter()
        jobs = [("POST", "/v1/reservations", tokens[it.tenant], it.body) for it in work]
        say(f"POSTing {len(jobs)} reservations of {opts.tenants} tenants with {opts.concurrency} clients...")
        answers, post_s = run_requests(ctl.url, jobs, opts.concurrency)
        admitted = [Reservation.from_dict(a.body) for a in answers if a.status == 201]
        statuses = Counter(a.status for a in answers)
        reasons = Counter(str(a.body.get("reason", "?")).split(":", 1)[0]
                          for a in answers if a.status == 409 and isinstance(a.body, dict))
        post_ok = [a.seconds for a in answers if a.status == 201]
        post_all = [a.seconds for a in answers]
        errors = {str(k): v for k, v in statuses.items() if k not in (201, 409)}
        result.update(
            admitted=len(admitted), rejected=statuses.get(409, 0), rejected_by_reason=dict(sorted(reasons.items())),
            errors=errors, rate_limited=sum(a.retries for a in answers), post_s=round(post_s, 3),
            requests_per_s=round(len(answers) / post_s, 1) if post_s else None,
            reservations_per_s=round(len(admitted) / post_s, 1) if post_s else None,
            post_p50_ms=_ms(percentile(post_ok, 50)), post_p99_ms=_ms(percentile(post_ok, 99)),
            post_max_ms=_ms(max(post_ok, default=None)),
            request_p50_ms=_ms(percentile(post_all, 50)), request_p99_ms=_ms(percentile(post_all, 99)))
        say(f"{len(admitted)} admitted, {statuses.get(409, 0)} rejected in {post_s:.1f} s: "
            f"{result['reservations_per_s']} reservations/s; POST p50 {result['post_p50_ms']} ms, "
            f"p99 {result['post_p99_ms']} ms" + (f"; errors {errors}" if errors else ""))

        mem = proc_memory_mb(ctl.proc.pid)
        result["controller_rss_mb"] = mem.get("VmRSS")
        result["controller_hwm_mb"] = mem.get("VmHWM")
        health = ctl.healthz() or {}
        result["reservations_held"] = health.get("reservations")
        metrics = _get_text(ctl.url + "/metrics")
        result["install_count_metric"] = metric_value(metrics, "detnet_flow_install_seconds_count")
        result["install_failures"] = sum(float(v) for v in re.findall(
            r"^detnet_flow_install_failures_total\{[^}]*\} (\S+)$", metrics, re.M))

        if opts.emulate:
            t_v = time.perf_counter()
            snap = snapshot(switches)
            check = verify_installed(plan, admitted, snap, rate_scale=scale)
            result["verify_s"] = round(time.perf_counter() - t_v, 2)
            result["entries_expected"] = check["entries_expected"]
            result["entries_found"] = check["entries_found"]
            result["installed_match"] = check["ok"]
            result["install_mismatches"] = check["mismatches"]
            say(f"switches hold {check['entries_found']} reservation entries, translation expects "
                f"{check['entries_expected']}: {'match' if check['ok'] else 'MISMATCH ' + str(check['mismatches'])}")

        # release everything
        djobs = [("DELETE", f"/v1/reservations/{r.id}", tokens[r.tenant], None) for r in admitted]
        say(f"DELETEing {len(djobs)} reservations...")
        dans, delete_s = run_requests(ctl.url, djobs, opts.concurrency)
        dstat = Counter(a.status for a in dans)
        result.update(deleted=dstat.get(204, 0), delete_errors={str(k): v for k, v in dstat.items() if k != 204},
                      delete_s=round(delete_s, 3),
                      deletes_per_s=round(len(dans) / delete_s, 1) if delete_s else None,
                      delete_p50_ms=_ms(percentile([a.seconds for a in dans], 50)),
                      delete_p99_ms=_ms(percentile([a.seconds for a in dans], 99)))
        health = ctl.healthz() or {}
        result["reservations_left"] = health.get("reservations")
        if opts.emulate:
            after = snapshot(switches)
            diff = snapshot_diff(base, after)
            result["tables_back_to_baseline"] = not diff
            result["baseline_diff"] = diff
            say("tables back to baseline on every switch" if not diff else f"tables differ from baseline: {diff}")
        else:
            result["tables_back_to_baseline"] = None
        result["load_s"] = round(time.perf_counter() - t_load, 2)
        one_by_one_log = len(ctl.log_path.read_bytes())     # the batch reuses the ids: its lines come after
        if opts.batch:
            result.update(_batch_phase(ctl.url, admin, work, plan, switches, base, scale, opts.emulate, say))

        log_bytes = ctl.log_path.read_bytes()
        times = install_times_from_log(log_bytes[:one_by_one_log].decode(errors="replace"))
        if opts.batch and opts.emulate:
            batch_times = install_times_from_log(log_bytes[one_by_one_log:].decode(errors="replace"))
            result["batch_install_ms"] = max(batch_times["installed"].values(), default=None)
        inst = [times["installed"][r.id] / 1000 for r in admitted if r.id in times["installed"]]
        rem = [v / 1000 for v in times["removed"].values()]
        result.update(install_samples=len(inst), install_p50_ms=_ms(percentile(inst, 50)),
                      install_p99_ms=_ms(percentile(inst, 99)), install_max_ms=_ms(max(inst, default=None)),
                      remove_p50_ms=_ms(percentile(rem, 50)), remove_p99_ms=_ms(percentile(rem, 99)))
        if not opts.emulate:   # no switch connected: nothing was installed, no install figure
            result.update(installed_match=None, install_samples=0, install_p50_ms=None, install_p99_ms=None,
                          install_max_ms=None, remove_p50_ms=None, remove_p99_ms=None)
    if opts.emulate and stack.emu is not None:      # its tear-down ran as the with block ended
        result["emulation_stop_s"] = round(stack.emu.timings.stop_s, 2)
    result["total_s"] = round(time.perf_counter() - t_all, 2)
    return result


def _batch_phase(url: str, admin: str, work: list[Item], plan: HostPlan, switches: list[str], base: Any,
                 scale: float, emulate: bool, say: Callable[[str], None]) -> dict[str, Any]:
    """Step 7: the workload as one non-atomic batch (admin token), checked, then one multi-delete."""
    body = {"atomic": False, "reservations": [dict(it.body, tenant=it.tenant) for it in work]}
    say(f"POSTing the same {len(work)} requests as one batch...")
    (a,), post_s = run_requests(url, [("POST", "/v1/reservations/batch", admin, body)], 1, timeout=600.0)
    if a.status != 201 or not isinstance(a.body, dict):
        raise RuntimeError(f"batch: HTTP {a.status} {str(a.body)[:200]}")
    admitted = [Reservation.from_dict(x) for x in a.body["reservations"]]
    rejections = a.body.get("rejections", [])
    reasons = Counter(str(x.get("reason", "?")).split(":", 1)[0] for x in rejections)
    out: dict[str, Any] = {
        "batch_admitted": len(admitted), "batch_rejected": len(rejections),
        "batch_rejected_by_reason": dict(sorted(reasons.items())), "batch_post_s": round(post_s, 3),
        "batch_reservations_per_s": round(len(admitted) / post_s, 1) if post_s else None}
    say(f"batch: {len(admitted)} admitted, {len(rejections)} rejected in {post_s:.2f} s")
    if emulate:
        check = verify_installed(plan, admitted, snapshot(switches), rate_scale=scale)
        out["batch_installed_match"] = check["ok"]
        out["batch_install_mismatches"] = check["mismatches"]
    else:
        out["batch_installed_match"] = None
    ids = [r.id for r in admitted]
    (d,), delete_s = run_requests(url, [("POST", "/v1/reservations/delete", admin, {"ids": ids})], 1,
                                  timeout=600.0)
    out["batch_deleted"] = len(d.body.get("deleted", [])) if d.status == 200 and isinstance(d.body, dict) else 0
    out["batch_delete_errors"] = {} if d.status == 200 else {str(d.status): len(ids)}
    out["batch_delete_s"] = round(delete_s, 3)
    out["batch_deletes_per_s"] = round(len(ids) / delete_s, 1) if delete_s else None
    if emulate:
        diff = snapshot_diff(base, snapshot(switches))
        out["batch_tables_back_to_baseline"] = not diff
        out["batch_baseline_diff"] = diff
    else:
        out["batch_tables_back_to_baseline"] = None
    say(f"batch: {out['batch_deleted']} released by one multi-delete in {delete_s:.2f} s")
    return out


def _get_text(url: str) -> str:
    try:
        return httpx.get(url, timeout=30, trust_env=False).text
    except httpx.HTTPError:
        return ""


def text_report(r: dict[str, Any]) -> str:
    """The human summary of ``run_rest_bench``'s figures."""
    def f(v: Any, unit: str = "") -> str:
        return "n/a" if v is None else f"{v}{unit}"
    reasons = ", ".join(f"{k} {v}" for k, v in r.get("rejected_by_reason", {}).items()) or "none"
    lines = [
        f"REST bench on {r['topology']} ({r['switches']} switches, "
        f"{'emulated' if r['emulated'] else 'no emulation'}): {r['requests']} requests, {r['tenants']} tenants, "
        f"{r['hosts']} hosts, {r['concurrency']} clients, seed {r['seed']}; store: {r.get('store', 'sqlite')}",
        f"  emulation start      {f(r.get('emulation_start_s'), ' s')} (switches synced after "
        f"{f(r.get('switches_synced_s'), ' s')}, {f(r.get('emulation_mem_mb'), ' MiB')})",
        f"  admitted             {r['admitted']} (rejected {r['rejected']}: {reasons})"
        + (f"; errors {r['errors']}" if r.get("errors") else ""),
        f"  reservations/s       {f(r['reservations_per_s'])} (all answers: {f(r['requests_per_s'])}/s; "
        f"POST phase {r['post_s']} s)",
        f"  POST -> 201          p50 {f(r['post_p50_ms'], ' ms')}, p99 {f(r['post_p99_ms'], ' ms')}, "
        f"max {f(r['post_max_ms'], ' ms')} (entries on every switch of the path when it returns)",
        f"  install (shim)       p50 {f(r['install_p50_ms'], ' ms')}, p99 {f(r['install_p99_ms'], ' ms')}, "
        f"max {f(r['install_max_ms'], ' ms')} ({r['install_samples']} samples, failures "
        f"{f(r.get('install_failures'))})",
        f"  controller RSS       {f(r['controller_rss_mb'], ' MiB')} with {f(r.get('reservations_held'))} "
        f"reservations (peak {f(r.get('controller_hwm_mb'), ' MiB')}, idle {f(r.get('controller_rss_idle_mb'), ' MiB')})",
        f"  entries on switches  {f(r.get('entries_found'))} of {f(r.get('entries_expected'))} expected: "
        f"{'match' if r.get('installed_match') else 'n/a' if r.get('installed_match') is None else 'MISMATCH'}",
        f"  released             {r['deleted']} in {r['delete_s']} s ({f(r['deletes_per_s'])}/s, p50 "
        f"{f(r['delete_p50_ms'], ' ms')}, p99 {f(r['delete_p99_ms'], ' ms')})",
        f"  tables at baseline   {'yes' if r['tables_back_to_baseline'] else 'n/a' if r['tables_back_to_baseline'] is None else 'NO'}",
        f"  load (POST+check+DELETE+check) {r['load_s']} s; whole run {r['total_s']} s",
    ]
    if "batch_post_s" in r:
        breasons = ", ".join(f"{k} {v}" for k, v in r.get("batch_rejected_by_reason", {}).items()) or "none"
        at_base = r.get("batch_tables_back_to_baseline")
        lines += [
            f"  {'':20} {'one by one':>26} {'one batch':>26}",
            f"  {'admitted':20} {r['admitted']:>26} {r['batch_admitted']:>26}",
            f"  {'rejected':20} {r['rejected']:>26} {r['batch_rejected']:>26}",
            f"  {'POST phase':20} {str(r['post_s']) + ' s':>26} {str(r['batch_post_s']) + ' s':>26}",
            f"  {'reservations/s':20} {f(r['reservations_per_s']):>26} {f(r['batch_reservations_per_s']):>26}",
            f"  {'release phase':20} {str(r['delete_s']) + ' s':>26} {str(r['batch_delete_s']) + ' s':>26}",
            f"  {'releases/s':20} {f(r['deletes_per_s']):>26} {f(r['batch_deletes_per_s']):>26}",
            f"  batch rejections     {breasons}; tables at baseline after the multi-delete: "
            f"{'yes' if at_base else 'n/a' if at_base is None else 'NO'}",
        ]
        if r.get("batch_install_ms") is not None:
            lines.append(f"  batch install (shim) {r['batch_install_ms']} ms: its one program on every switch, "
                         "barrier replies included")
    return "\n".join(lines)
