"""Benchmark ``dnctl tsnkit`` against TSNKit's own heuristics on TSNKit-generated instances.

    python -m schedules.tsnkit_bench --out DIR [--topos line ring mesh] [--streams 100 200 400]

For every topology kind and stream count, TSNKit's generator (``tsnkit.data.dataset_spec``, seeded)
writes an instance; then ``dnctl tsnkit`` and each TSNKit algorithm (``python -m
tsnkit.algorithms.<name> TASK TOPO OUT/``) run as separate processes with a time limit, and
TSNKit's simulator checks every complete output. Reported per run: streams scheduled, simulator
potential errors, wall time (process start to exit). TSNKit's heuristics are all-or-nothing (they
write no output unless every stream fits), so they show either all streams or 0.

Needs ``tsnkit`` (a test extra). Writes DIR/results.json and DIR/results.md; prints the table.
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import networkx as nx
import numpy as np

from schedules.tsnkit_io import read_instance, schedule_instance, write_outputs, write_subset_task

TOPOS = {"line": 0, "ring": 1, "tree": 2, "mesh": 3}


def generate(dirpath: Path, topo: str, num_sw: int, streams: int, seed: int, size: int, period: int,
             deadline: int) -> tuple[Path, Path]:
    """Write ``task.csv`` and ``topo.csv`` with TSNKit's own generator (tsnkit, a test extra, is
    imported here only: the rest of the module works without it)."""
    from tsnkit.data.dataset_spec import TOPO_FUNC, generate_flowset

    dirpath.mkdir(parents=True, exist_ok=True)
    np.random.seed(seed)
    net = TOPO_FUNC[TOPOS[topo]](num_sw, num_queue=8, data_rate=1, header=str(dirpath / "topo"))
    generate_flowset(nx.DiGraph(net), size, period, deadline, streams, num_sw, num_sw, str(dirpath / "task"))
    return dirpath / "task.csv", dirpath / "topo.csv"


def _run(cmd: list[str], timeout: float) -> tuple[int | None, str, float]:
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           env={**os.environ, "MPLBACKEND": "Agg"})
        return p.returncode, p.stdout + p.stderr, time.perf_counter() - t0
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return None, out, time.perf_counter() - t0


def simulate(task: Path, outdir: Path, timeout: float) -> str:
    """Number of streams TSNKit's simulator flags ('[Potential Errors]' list length), or why not run."""
    code, out, _ = _run([sys.executable, "-m", "tsnkit.simulation.tas", str(task), str(outdir) + "/", "--no-draw"],
                        timeout)
    if code is None:
        return "timeout"
    m = re.search(r"\[Potential Errors\]: (\[.*\])", out)
    if code != 0 or not m:
        return "crash"
    return str(len(ast.literal_eval(m.group(1))))


def simulate_scheduled_part(task: Path, topo: Path, outdir: Path, timeout: float) -> str:
    """Simulate only the streams dnctl scheduled: same schedule, written for a renumbered task file
    (TSNKit's simulator needs every stream of its task file configured). Shown as 'N (part)'."""
    inst = read_instance(task, topo)
    run = schedule_instance(inst)
    ids = [inst.stream(rid).id for rid in run.admitted]
    outdir.mkdir(parents=True, exist_ok=True)
    sub_task = outdir.parent / "task-scheduled.csv"
    mapping = write_subset_task(inst, ids, sub_task)
    write_outputs(run.scheduler, inst, outdir, renumber=mapping)
    return simulate(sub_task, outdir, timeout) + " (part)"


def run_ours(task: Path, topo: Path, outdir: Path, timeout: float) -> dict:
    code, out, wall = _run([sys.executable, "-m", "tools.cli.main", "tsnkit", str(task), str(topo), str(outdir), "--json"],
                           timeout)
    if code is None:
        return {"scheduled": 0, "wall_s": wall, "status": "timeout"}
    try:
        s = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"scheduled": 0, "wall_s": wall, "status": f"error (exit {code})"}
    return {"scheduled": s["scheduled"], "wall_s": wall, "status": "complete" if code == 0 else "partial",
            "rejections": s["rejections_by_reason"]}


def run_tsnkit(algo: str, task: Path, topo: Path, outdir: Path, streams: int, timeout: float) -> dict:
    outdir.mkdir(parents=True, exist_ok=True)
    code, out, wall = _run([sys.executable, "-m", f"tsnkit.algorithms.{algo}", str(task), str(topo), str(outdir) + "/"],
                           timeout)
    if code is None:
        return {"scheduled": 0, "wall_s": wall, "status": "timeout"}
    flag = "succ" if "| succ" in out else "fail" if "| fail" in out else "error"
    return {"scheduled": streams if flag == "succ" else 0, "wall_s": wall,
            "status": "complete" if flag == "succ" else flag}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m schedules.tsnkit_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder for instances, outputs and results")
    ap.add_argument("--topos", nargs="+", default=["line", "ring", "mesh"], choices=list(TOPOS))
    ap.add_argument("--streams", nargs="+", type=int, default=[100, 200, 300, 400])
    ap.add_argument("--num-sw", type=int, default=8, help="switches (and end stations) per topology (default 8)")
    ap.add_argument("--size", type=int, default=2, help="TSNKit size spec 1-5 (default 2: 100-500 B)")
    ap.add_argument("--period", type=int, default=4, help="TSNKit period spec 1-6 (default 4: 100-800 us)")
    ap.add_argument("--deadline", type=int, default=3, help="TSNKit deadline spec 2-5 (default 3: +10-400 us slack)")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--algos", nargs="*", default=["ls", "dt"], help="TSNKit algorithms to compare (default ls dt)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per run (default 600)")
    args = ap.parse_args(argv)

    root = Path(args.out)
    rows = []
    for topo in args.topos:
        for n in args.streams:
            d = root / f"{topo}{args.num_sw}-{n}"
            task, net = generate(d, topo, args.num_sw, n, args.seed + n, args.size, args.period, args.deadline)
            with open(task) as f:
                periods = {int(r["period"]) for r in csv.DictReader(f)}
            results = {"dnctl": run_ours(task, net, d / "dnctl", args.timeout)}
            for algo in args.algos:
                results[algo] = run_tsnkit(algo, task, net, d / algo, n, args.timeout)
            if results["dnctl"]["status"] == "partial":
                results["dnctl"]["sim_errors"] = simulate_scheduled_part(task, net, d / "dnctl-part", args.timeout)
            for name, r in results.items():
                if "sim_errors" not in r:
                    r["sim_errors"] = simulate(task, d / name, args.timeout) if r["status"] == "complete" else "-"
                rows.append({"topology": f"{topo}{args.num_sw}", "streams": n, "periods": sorted(periods),
                             "method": name, **r})
                print(f"{topo}{args.num_sw:<3} {n:>4} streams  {name:<6} scheduled {r['scheduled']:>4}  "
                      f"sim errors {r['sim_errors']:>7}  {r['wall_s']:8.2f} s  {r['status']}", flush=True)
    (root / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    md = ["| topology | streams | method | scheduled | simulator errors | wall time (s) | status |",
          "| --- | ---: | --- | ---: | ---: | ---: | --- |"]
    for r in rows:
        md.append(f"| {r['topology']} | {r['streams']} | {r['method']} | {r['scheduled']} | {r['sim_errors']} | "
                  f"{r['wall_s']:.2f} | {r['status']} |")
    (root / "results.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
