"""What OpenFlow over TLS costs: the 40 switches' connection and resync, and reservation installs, TLS beside plain TCP.

Why: the controller needs TLS on its switch channel (docs/security.md); operators ask what it
costs. This run brings up the same emulation twice, once with plain TCP (``--of-plain``) and once
with TLS and client certificates (a throw-away CA, ECDSA P-256), and for each measures:

- ``connect_s``: from starting the emulation to every switch connected and resynchronised
  (``NetworkStack.timings["emulation_s"]``), which includes the 40 TLS handshakes;
- ``controller_cpu_s``: the controller process's CPU seconds from its start to that moment
  (``/proc``): its start-up, the same in both, plus the switches' connections, whose TLS
  handshakes' cryptography is the difference;
- ``install_ms`` p50/p99: the shim's own time to program each reservation onto its switches (the
  ``install_ms=`` of its log lines), for ``reservations`` reservations made one by one, and
  ``post_ms`` p50/p99: the POST answered, as a client sees it.

Plain TCP first, then TLS, on the same topology, host plan and workload (``bench_rest``'s seeded
one). The machine's noise is milliseconds: compare medians, over repeated runs (``--repeat``).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tools.client import ApiError
from tools.emulation.stack import NetworkStack
from tools.runs.bench_rest import percentile, rest_workload
from tools.runs.isolation import spread_plan
from topologies.loaders import load_topology

__all__ = ["ChannelOptions", "run_channel_bench"]

_INSTALL = re.compile(r"reservations? (\S+) installed on (\d+) switches.*?install_ms=([\d.]+)")


@dataclass
class ChannelOptions:
    topology: str = "fntf40"
    tenants: int = 4
    hosts_per_tenant: int = 4
    reservations: int = 64
    repeat: int = 1
    seed: int = 1
    connect_timeout: float = 180.0


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (``/proc/PID/stat``; 0 when it is gone)."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def logged_installs(log_path: Any) -> tuple[int, list[float]]:
    """The reservations the controller's log says it installed, and each program's ``install_ms``. The
    log is its stderr, read while it is written: a byte that is not UTF-8 (a CI run met one) is
    replaced, never fatal."""
    programs = list(_INSTALL.finditer(Path(log_path).read_text(errors="replace")))
    return sum(len(m.group(1).split(",")) for m in programs), [float(m.group(3)) for m in programs]


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _one(opts: ChannelOptions, tls: bool, say: Callable[[str], None]) -> dict[str, Any]:
    topo = load_topology(opts.topology)
    plan = spread_plan(topo, opts.tenants, min(opts.hosts_per_tenant, len(topo.nodes)))
    work = rest_workload(plan, opts.reservations, opts.tenants, opts.seed)
    stack = NetworkStack(topo, plan, tls=tls, lldp_interval=5.0, start_timeout=60,
                         connect_timeout=opts.connect_timeout, verbose=False)
    with stack:
        ctl = stack.ctl
        connect_cpu = _cpu_s(ctl.proc.pid)
        api = ctl.client()
        tokens = {}
        for t in range(1, opts.tenants + 1):
            tokens[t] = api.post("/v1/tenants", {"name": f"bench{t}"})["token"]
        post_ms: list[float] = []
        rejected = 0
        for item in work:
            t0 = time.perf_counter()
            try:
                ctl.client(tokens[item.tenant]).post("/v1/reservations", item.body)
            except ApiError:
                rejected += 1             # the network is full: no install to time
                continue
            post_ms.append(1000 * (time.perf_counter() - t0))
        deadline = time.monotonic() + 30
        installs: list[float] = []
        while time.monotonic() < deadline:
            reserved, installs = logged_installs(ctl.log_path)
            if reserved >= len(post_ms):
                break
            time.sleep(0.2)
        result = {"channel": "tls" if tls else "plain", "switches": len(topo.nodes),
                  "connect_s": round(stack.timings["emulation_s"], 2),
                  "controller_cpu_s": round(connect_cpu, 2),
                  "reservations": len(work), "admitted": len(post_ms), "rejected": rejected,
                  "programs": len(installs),
                  "install_ms_p50": _round(percentile(installs, 50)), "install_ms_p99": _round(percentile(installs, 99)),
                  "post_ms_p50": round(percentile(post_ms, 50) or 0, 2),
                  "post_ms_p99": round(percentile(post_ms, 99) or 0, 2)}
    say(f"{result['channel']:>5}: {result['switches']} switches connected and synced in {result['connect_s']} s "
        f"(controller CPU {result['controller_cpu_s']} s); install p50 {result['install_ms_p50']} ms, "
        f"POST p50 {result['post_ms_p50']} ms")
    return result


def run_channel_bench(opts: ChannelOptions, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Plain TCP then TLS, ``opts.repeat`` times each; every run's figures and the medians."""
    say = progress or (lambda _m: None)
    runs: list[dict[str, Any]] = []
    for i in range(opts.repeat):
        for tls in (False, True):
            say(f"run {i + 1}/{opts.repeat}, {'TLS' if tls else 'plain TCP'}: bringing up {opts.topology}")
            runs.append(_one(opts, tls, say))
    summary: dict[str, Any] = {}
    for channel in ("plain", "tls"):
        mine = [r for r in runs if r["channel"] == channel]
        summary[channel] = {key: percentile([r[key] for r in mine if r[key] is not None], 50)
                            for key in ("connect_s", "controller_cpu_s", "install_ms_p50", "install_ms_p99",
                                        "post_ms_p50", "post_ms_p99")}
    return {"topology": opts.topology, "repeat": opts.repeat, "runs": runs, "median": summary}
