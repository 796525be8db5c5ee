"""``dnctl bench all``: every speed figure of issue 13 in one table, each beside its target.

Rows (each measured in its own process, so peak memory is that point's own):

- **admission**: ``dnctl bench admission --json`` on fntf40 at 1,000 / 4,096 / 20,000 / 100,000
  reservations (128 tenants, seed 1) and on the generated 2,000-site WAN (``wan2000``,
  ``topologies/generate_wan.py``) at 10,000: admitted share, total, CPU, p99, peak RSS. Targets:
  4,096 in at most 0.5 s, 20,000 in at most 3 s (the others are the scale curve, no target).
- **start-up**: wall time of ``dnctl <verb> --help`` for the offline verbs ``tsnkit``, ``topo`` and
  ``schedule`` (best of 5: Python start, imports, parser), target 0.2 s.
- **TSNKit**: on instances made by TSNKit's own generator (line, ring, mesh of 8 switches; 8, 16,
  32, 64 and 128 streams), ``dnctl tsnkit`` and TSNKit's ``ls`` and ``dt``, each a whole process,
  wall time from start to exit, every complete output checked by TSNKit's simulator
  (``schedules.tsnkit_bench``). Target: dnctl at least 3x faster than the faster of ``ls``/``dt``,
  no simulator error, at least as many instances fully scheduled.
- **REST**: ``dnctl bench rest --json`` on fntf40 (4,096 requests of 128 tenants, 256 hosts, 8
  clients) onto the 40 emulated switches, then ``--no-emulate`` (the controller alone, like ONOS's
  null providers; its rows say so, so nobody compares the two): one by one (reservations/s, POST
  p50/p99, deletes/s), one batch (entries verified on every switch), the emulation's bring-up and
  tear-down. Targets: 1,000/s one by one with POST p50 <= 5 ms and p99 <= 20 ms, deletes as fast;
  4,096 in <= 2 s through the batch; the controller alone >= 10,000/s through the batch; the
  emulation up in <= 6 s and down in <= 3 s. On a machine that cannot emulate, the emulated rows
  name what it lacks and the controller-alone rows still run.

Figures are measurements, never pass/fail: the run exits 0 whatever they are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from schedules.tsnkit_bench import generate, run_ours, run_tsnkit, simulate

#: (topology, reservations, target total seconds or None)
ADMISSION_POINTS = (("fntf40", 1000, None), ("fntf40", 4096, 0.5), ("fntf40", 20000, 3.0),
                    ("fntf40", 100000, None), ("wan2000", 10000, None))
STARTUP_VERBS = ("tsnkit", "topo", "schedule")
STARTUP_TARGET_S = 0.2
TSNKIT_TOPOS = ("line", "ring", "mesh")
TSNKIT_STREAMS = (8, 16, 32, 64, 128)
TSNKIT_SPEEDUP_TARGET = 3.0
DNCTL = [sys.executable, "-m", "tools.cli.main"]
#: issue 13's REST and emulation targets
REST_RATE_TARGET = 1000          # reservations (and deletes) per second, one by one, 8 clients
REST_P50_TARGET_MS, REST_P99_TARGET_MS = 5.0, 20.0
REST_BATCH_TARGET_S = 2.0        # 4,096 through the batch path onto the switches
ALONE_BATCH_TARGET = 10000       # reservations per second through the batch path, no switch
EMULATION_UP_TARGET_S, EMULATION_DOWN_TARGET_S = 6.0, 3.0


def admission_point(topology: str, reservations: int, tenants: int = 128, seed: int = 1,
                    timeout: float = 3600) -> dict:
    """One ``dnctl bench admission --json`` run in its own process."""
    cmd = DNCTL + ["bench", "admission", "--topology", topology, "--reservations", str(reservations),
                   "--tenants", str(tenants), "--seed", str(seed), "--json"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"topology": topology, "reservations": reservations, "error": f"timeout after {timeout:g} s"}
    if p.returncode != 0:
        return {"topology": topology, "reservations": reservations,
                "error": (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def startup_s(verb: str, runs: int = 5) -> float:
    """Best wall time of ``dnctl VERB --help`` over ``runs`` processes."""
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(DNCTL + [verb, "--help"], capture_output=True, check=True)
        best = min(best, time.perf_counter() - t0)
    return best


def rest_run(emulate: bool, topology: str = "fntf40", reservations: int = 4096, tenants: int = 128,
             timeout: float = 3600) -> dict:
    """One ``dnctl bench rest --json`` run in its own process (``emulate``: onto the emulated
    switches, else the controller alone); ``{"error": ...}`` when it could not run."""
    cmd = DNCTL + ["bench", "rest", "--topology", topology, "--reservations", str(reservations),
                   "--tenants", str(tenants), "--json"] + ([] if emulate else ["--no-emulate"])
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:g} s"}
    lines = p.stdout.strip().splitlines()
    if not lines:      # it could not run (e.g. no root or Open vSwitch to emulate with): its one line
        return {"error": (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]}
    return json.loads(lines[-1])    # exit 1 with figures: a check failed, the figures say which


def tsnkit_instance(root: Path, topo: str, streams: int, seed: int, timeout: float) -> dict:
    """dnctl, ls and dt on one generated instance (8 switches; TSNKit's size spec 2, period spec 4,
    deadline spec 3, as schedules.tsnkit_bench), each checked by the simulator when complete."""
    d = root / f"{topo}8-{streams}"
    task, net = generate(d, topo, 8, streams, seed + streams, 2, 4, 3)
    out = {"instance": f"{topo}8-{streams}", "streams": streams}
    for name in ("dnctl", "ls", "dt"):
        r = (run_ours(task, net, d / name, timeout) if name == "dnctl"
             else run_tsnkit(name, task, net, d / name, streams, timeout))
        r["sim_errors"] = simulate(task, d / name, timeout) if r["status"] == "complete" else "-"
        out[name] = {k: r[k] for k in ("scheduled", "wall_s", "status", "sim_errors")}
    peer = min(out["ls"]["wall_s"], out["dt"]["wall_s"])
    out["speedup"] = round(peer / out["dnctl"]["wall_s"], 2) if out["dnctl"]["wall_s"] > 0 else None
    return out


def run_all(*, admission: bool = True, startup: bool = True, tsnkit: bool = True, rest: bool = True,
            points=ADMISSION_POINTS, streams=TSNKIT_STREAMS, topos=TSNKIT_TOPOS, seed: int = 2024,
            timeout: float = 600, rest_topology: str = "fntf40", rest_reservations: int = 4096,
            rest_tenants: int = 128, progress: Callable[[str], None] | None = None) -> dict:
    """Run the selected parts; return a JSON-able dict (``admission``, ``startup``, ``tsnkit``,
    ``rest``: ``{"switches": ..., "alone": ...}``, each ``dnctl bench rest --json``'s object)."""
    say = progress or (lambda _m: None)
    out: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    if admission:
        out["admission"] = []
        for topo, n, target in points:
            say(f"admission {topo} {n}")
            r = admission_point(topo, n)
            r["target_total_s"] = target
            out["admission"].append(r)
    if startup:
        out["startup"] = []
        for verb in STARTUP_VERBS:
            say(f"start-up {verb}")
            out["startup"].append({"verb": verb, "wall_s": round(startup_s(verb), 3), "target_s": STARTUP_TARGET_S})
    if tsnkit:
        rows = []
        with tempfile.TemporaryDirectory(prefix="bench-tsnkit-") as tmp:
            for topo in topos:
                for n in streams:
                    say(f"tsnkit {topo}8-{n}")
                    rows.append(tsnkit_instance(Path(tmp), topo, n, seed, timeout))
        complete = {m: sum(r[m]["status"] == "complete" for r in rows) for m in ("dnctl", "ls", "dt")}
        speedups = [r["speedup"] for r in rows if r["speedup"] is not None]
        out["tsnkit"] = {"instances": rows, "complete": complete, "target_speedup": TSNKIT_SPEEDUP_TARGET,
                         "min_speedup": min(speedups) if speedups else None,
                         "max_speedup": max(speedups) if speedups else None,
                         "sim_errors_dnctl": sum(int(r["dnctl"]["sim_errors"]) for r in rows
                                                 if r["dnctl"]["sim_errors"].isdigit())}
    if rest:
        out["rest"] = {}
        for key, emulate in (("switches", True), ("alone", False)):
            say(f"rest {'onto the emulated switches' if emulate else 'controller alone'}")
            out["rest"][key] = rest_run(emulate, rest_topology, rest_reservations, rest_tenants)
    return out


def _rest_rows(rest: dict, row: Callable[..., None]) -> None:
    """The REST part of the table: onto the switches, then the controller alone (named as such)."""
    sw, alone = rest.get("switches", {}), rest.get("alone", {})
    if "error" in sw:
        row("rest onto the switches", "not run", "", sw["error"][:100])
    elif sw:
        n = sw["requests"]
        row(f"rest onto {sw['switches']} switches: one by one", f"{sw['reservations_per_s']} /s",
            f">= {REST_RATE_TARGET} /s", f"{sw['admitted']} of {n} admitted, {sw['concurrency']} clients")
        row("  POST -> installed p50 / p99", f"{sw['post_p50_ms']:.1f} / {sw['post_p99_ms']:.1f} ms",
            f"<= {REST_P50_TARGET_MS:g} / {REST_P99_TARGET_MS:g} ms")
        row("  deletes", f"{sw['deletes_per_s']} /s", f">= {REST_RATE_TARGET} /s")
        row("  entries on every switch = translation", str(sw["installed_match"]), "True")
        if "batch_post_s" in sw:
            row(f"rest onto {sw['switches']} switches: one batch",
                f"{sw['batch_admitted']} in {sw['batch_post_s']:.2f} s", f"<= {REST_BATCH_TARGET_S:g} s",
                f"{sw['batch_reservations_per_s']} /s; switches' program {sw.get('batch_install_ms') or 0:.0f} ms; "
                f"entries match: {sw.get('batch_installed_match')}")
        if sw.get("emulation_start_s") is not None:
            up = sw["emulation_timings"]["up_s"]
            row(f"emulation up ({sw['switches']} switches, {sw['hosts']} hosts)", f"{up:.2f} s",
                f"<= {EMULATION_UP_TARGET_S:g} s", f"{sw['emulation_start_s']:.2f} s to the bench's clock")
        if sw.get("emulation_stop_s") is not None:
            row("emulation down", f"{sw['emulation_stop_s']:.2f} s", f"<= {EMULATION_DOWN_TARGET_S:g} s")
    if "error" in alone:
        row("rest, controller alone", "not run", "", alone["error"][:100])
    elif alone:
        row("rest, controller alone (no switch): one batch", f"{alone.get('batch_reservations_per_s')} /s",
            f">= {ALONE_BATCH_TARGET} /s", f"{alone.get('batch_admitted')} in {alone.get('batch_post_s')} s")
        row("rest, controller alone (no switch): one by one", f"{alone['reservations_per_s']} /s", "",
            f"POST p50 {alone['post_p50_ms']:.1f} ms, p99 {alone['post_p99_ms']:.1f} ms")


def text_table(r: dict) -> str:
    """The one table: figure, value, target (and the peer's figure where a peer runs here)."""
    lines = [f"{'figure':<44} {'measured':>22} {'target':>12}  peer (same run)"]

    def row(name: str, value: str, target: str = "", peer: str = "") -> None:
        lines.append(f"{name:<44} {value:>22} {target:>12}  {peer}")

    for a in r.get("admission", []):
        name = f"admission {a['topology']} {a['reservations']}"
        if "error" in a:
            row(name, a["error"][:22])
            continue
        share = a["admitted"] / a["reservations"] if a["reservations"] else 0.0
        tgt = f"<= {a['target_total_s']:g} s" if a.get("target_total_s") else ""
        row(name + " total", f"{a['total_s']:.2f} s (cpu {a.get('cpu_s', 0):.2f})", tgt)
        row(name + " admitted", f"{a['admitted']} ({share:.1%})")
        row(name + " p99 / peak RSS", f"{a['p99_ms']:.2f} ms / {a['peak_rss_mb']:.0f} MiB")
    for s in r.get("startup", []):
        row(f"start-up dnctl {s['verb']} --help", f"{s['wall_s']:.3f} s", f"<= {s['target_s']:g} s")
    t = r.get("tsnkit")
    if t:
        for i in t["instances"]:
            d, ls, dt = i["dnctl"], i["ls"], i["dt"]
            row(f"tsnkit {i['instance']} dnctl wall (sched, sim err)",
                f"{d['wall_s']:.2f} s ({d['scheduled']}, {d['sim_errors']})",
                f"{t['target_speedup']:g}x peer",
                f"ls {ls['wall_s']:.2f} s ({ls['scheduled']}, {ls['sim_errors']}), "
                f"dt {dt['wall_s']:.2f} s ({dt['scheduled']}, {dt['sim_errors']}); x{i['speedup']}")
        c = t["complete"]
        row("tsnkit instances fully scheduled", f"{c['dnctl']} of {len(t['instances'])}",
            ">= peers", f"ls {c['ls']}, dt {c['dt']}")
        row("tsnkit speed-up over faster peer", f"x{t['min_speedup']} - x{t['max_speedup']}",
            f">= {t['target_speedup']:g}x")
        row("tsnkit simulator errors (dnctl)", str(t["sim_errors_dnctl"]), "0")
    if r.get("rest"):
        _rest_rows(r["rest"], row)
    return "\n".join(lines)
