"""``dnctl training``: plan a training job's reservations, estimate its iteration time, run it emulated."""

from __future__ import annotations

import argparse
import json
import sys

from schedules.training import JobError, list_jobs, load_job
from schedules.training_model import estimate
from schedules.training_plan import NotAdmissible, check_sites, hop_delays, plan
from tools.cli import CliError
from tools.cli.clientargs import add_client_args, client_from_args, wants_json
from tools.cli.cmd_reserve import send_batch
from tools.cli.vmarg import add_gates_argument, add_vm_argument, run_in_vm_if_asked
from tools.cli.units import parse_bandwidth
from tools.runs.scales import DEFAULT_SCALE
from tools.runs.training_run import RunError, RunOptions, execute, table
from topologies.loaders import load_topology
from topologies.model import TopologyError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("training", help="plan, estimate and run cross-city training jobs",
                       description="Training jobs over the deterministic network (see docs/training.md).")
    tsub = p.add_subparsers(dest="training_cmd", metavar="ACTION")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("job", help="job file (JSON or YAML) or shipped job name (see `dnctl training list`)")
        q.add_argument("--topology", default="fntf40", help="topology name or file (default fntf40)")
        q.add_argument("--json", action="store_true", help="print one JSON object")

    q = tsub.add_parser("list", help="list the shipped jobs")
    q.set_defaults(func=_list)

    q = tsub.add_parser("plan", help="turn a job into reservation requests")
    common(q)
    q.add_argument("--tenant", type=int, default=1, help="tenant id of the requests (default 1)")
    q.add_argument("--out", help="also write the requests as a REQUESTS.json for `dnctl schedule`")
    q.set_defaults(func=_plan)

    q = tsub.add_parser("reserve", help="reserve a job's plan on a running controller as one atomic batch",
                        description="Send the job's plan (`dnctl training plan`) to the controller as one atomic "
                                    "batch (POST /v1/reservations/batch): every flow of the job is admitted, or "
                                    "none (a training job's flows are useless one by one); a refusal names the "
                                    "flow that blocked it.")
    q.add_argument("job", help="job file (JSON or YAML) or shipped job name (see `dnctl training list`)")
    q.add_argument("--topology", default="fntf40", help="topology the plan is made on (default fntf40; the "
                                                        "controller's own)")
    q.add_argument("--tenant", type=int, metavar="N",
                   help="tenant of the flows (needed with the admin token; a tenant token implies its own)")
    add_client_args(q)
    q.set_defaults(func=_reserve)

    q = tsub.add_parser("estimate", help="analytic iteration time, deterministic or best effort")
    common(q)
    q.add_argument("--network", choices=("deterministic", "best-effort", "both"), default="both",
                   help="which network to model (default both)")
    q.add_argument("--interference", default="0",
                   help="unresponsive interference on each site's channel, e.g. 30G (default 0)")
    q.set_defaults(func=_estimate)

    q = tsub.add_parser("run", help="run a job for real on the emulated backbone (--emulate)",
                        description="Run the job on the Mininet backbone: controller, emulation, training and "
                                    "interference tenants, one train agent per site; the deterministic run "
                                    "(reservations) then the best-effort run (none), with the same interference, "
                                    "and a single-site baseline. Needs root and Open vSwitch (see docs/demo.md).")
    q.add_argument("job", help="job file (JSON or YAML) or shipped job name (see `dnctl training list`)")
    q.add_argument("--emulate", action="store_true", required=True,
                   help="run on the emulation (the only way to run a job here)")
    q.add_argument("--topology", default="fntf40", help="topology name or file (default fntf40)")
    q.add_argument("--scale", type=float, default=None,
                   help="rate scale: link, meter and channel rates and the bytes moved are multiplied by it, "
                        "times are kept (default 1e-4: 100 Gb/s links become 10 Mb/s)")
    q.add_argument("--network", choices=("deterministic", "best-effort", "both"), default="both",
                   help="which run(s) to do (default both)")
    q.add_argument("--interference", default="auto",
                   help="UDP flood per ring hop: 'auto' (0.9x the narrowest link of the hop's path), "
                        "a model-unit rate such as 90G, or 'off' (default auto)")
    q.add_argument("--iterations", type=int, help="iterations per run (default: the job's)")
    q.add_argument("--tenants", type=int, help="tenants to create (default: 1 + one per ring hop)")
    q.add_argument("--out", metavar="DIR", help="keep logs, per-iteration files and run.json here")
    add_gates_argument(q, "before and after the deterministic run")
    q.add_argument("--json", action="store_true", help="print the result as one JSON object")
    add_vm_argument(q)
    q.set_defaults(func=_run)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _load(args):
    try:
        job = load_job(args.job)
        topo = load_topology(args.topology)
        check_sites(job, topo)
    except (JobError, TopologyError) as e:
        raise CliError(str(e)) from None
    return job, topo


def _list(args) -> int:
    for name in list_jobs():
        job = load_job(name)
        print(f"{name:18} {job.k} sites, {job.parameters / 1e9:g}B parameters, {job.collective}: "
              f"{', '.join(job.sites)}")
    return 0


def _plan(args) -> int:
    job, topo = _load(args)
    if args.tenant < 1:
        raise CliError("--tenant must be at least 1")
    flows = plan(job, topo, tenant=args.tenant)
    if args.out:
        with open(args.out, "w") as f:
            json.dump([fl.request for fl in flows], f, indent=1)
    if args.json:
        print(json.dumps({"job": job.name, "flows": [fl.to_dict() for fl in flows]}, indent=1))
        return 0
    print(f"{job.name}: {job.collective} all-reduce over {job.k} sites, "
          f"{job.gradient_bytes / 1e9:.3g} GB of gradient per site cross the WAN per iteration")
    print(f"{'id':22} {'from':12} {'to':12} {'rate':>9} {'GB/iter':>8} {'window (s)':>14} {'prop ms':>8}")
    for fl in flows:
        r = fl.request
        print(f"{r['id']:22} {r['src']:12} {r['dst']:12} {r['bandwidth_bps'] / 1e9:7.3g}G "
              f"{fl.bytes_per_iteration / 1e9:8.3g} {fl.window_start_s:6.2f}-{fl.window_end_s:<7.2f} "
              f"{fl.propagation_ns / 1e6:8.2f}")
    if args.out:
        print(f"requests written to {args.out}")
    return 0


def _reserve(args) -> int:
    job, topo = _load(args)
    if args.tenant is not None and args.tenant < 1:
        raise CliError("--tenant must be at least 1")
    requests = [dict(fl.request) for fl in plan(job, topo, tenant=args.tenant or 1)]
    if args.tenant is None:      # a tenant token implies its own tenant
        for r in requests:
            r.pop("tenant", None)
    with client_from_args(args) as api:
        return send_batch(api, requests, atomic=True, as_json=wants_json(args))


def _estimate(args) -> int:
    job, topo = _load(args)
    try:
        interference = parse_bandwidth(args.interference)
    except ValueError as e:
        raise CliError(f"--interference: {e}") from None
    try:
        det_delay, be_delay, _ = hop_delays(job, topo)
    except NotAdmissible as e:
        raise CliError(str(e), code=1) from None
    nets = ["deterministic", "best-effort"] if args.network == "both" else [args.network]
    results = [estimate(job, det_delay if n == "deterministic" else be_delay, network=n,
                        interference_bps=interference) for n in nets]
    if args.json:
        print(json.dumps({"job": job.name, "topology": topo.name,
                          "estimates": {e.network: e.to_dict() for e in results}}, indent=1))
        return 0
    print(f"{job.name}: {job.k} sites, {job.parameters / 1e9:g}B parameters, {job.collective} all-reduce, "
          f"channel {job.channel_bps / 1e9:g} Gb/s per site, interference {interference / 1e9:g} Gb/s")
    rows = [
        ("single-site iteration (forward + backward)", "baseline_s", "s"),
        ("WAN bytes per site per iteration", "wan_bytes_per_site", "GB"),
        ("latency-bound rounds", "rounds", ""),
        ("effective rate per site", "effective_rate_bps", "Gb/s"),
        ("straggler factor (slowest of K flows)", "straggler_factor", "x"),
        ("communication time", "comm_s", "s"),
        ("  late buckets (1-overlap) x comm", "late_buckets_s", "s"),
        ("  overflow of the backward window", "overflow_s", "s"),
        ("  one-way delay of the slowest hop", "hop_delay_s", "ms"),
        ("  latency rounds x (delay + jitter/queue)", "latency_s", "s"),
        ("exposed communication", "exposed_s", "s"),
        ("iteration time", "iteration_s", "s"),
        ("efficiency vs single site", "efficiency", "%"),
        ("whole job", "job_hours", "h"),
    ]
    header = f"{'term':44}" + "".join(f"{e.network:>16}" for e in results)
    print(header)
    for label, key, unit in rows:
        cells = []
        for e in results:
            v = getattr(e, key)
            if unit == "GB":
                cells.append(f"{v / 1e9:13.3f} GB")
            elif unit == "Gb/s":
                cells.append(f"{v / 1e9:11.3f} Gb/s")
            elif unit == "ms":
                cells.append(f"{v * 1e3:13.3f} ms")
            elif unit == "%":
                cells.append(f"{v * 100:14.1f} %")
            elif unit == "":
                cells.append(f"{v:16d}")
            else:
                cells.append(f"{v:14.3f} {unit}")
        print(f"{label:44}" + "".join(f"{c:>16}" for c in cells))
    return 0


def _run(args) -> int:
    """``dnctl training run JOB --emulate``: see tools/runs/training_run.py."""
    _load(args)   # validate job and topology first: a bad name is a usage error, before any emulation
    interference: str | float = args.interference.strip().lower()
    if interference not in ("auto", "off"):
        try:
            interference = float(parse_bandwidth(args.interference))
        except ValueError as e:
            raise CliError(f"--interference: {e} (or 'auto' / 'off')") from None
        if interference <= 0:
            raise CliError("--interference must be positive (or 'off')")
    scale = DEFAULT_SCALE if args.scale is None else args.scale
    if not 0 < scale <= 1:
        raise CliError("--scale must be in (0, 1]")
    if args.iterations is not None and args.iterations < 2:
        raise CliError("--iterations must be at least 2 (the first is a warm-up)")
    if args.tenants is not None and args.tenants < 1:
        raise CliError("--tenants must be at least 1")
    code = run_in_vm_if_asked(args, args.out)
    if code is not None:
        return code
    opts = RunOptions(args.job, topology=args.topology, scale=scale, network=args.network,
                      interference=interference, iterations=args.iterations, out=args.out, tenants=args.tenants,
                      gates=args.gates)
    try:
        result = execute(opts, progress=lambda m: print(f"training: {m}", file=sys.stderr, flush=True))
    except (RunError, NotAdmissible) as e:
        raise CliError(str(e), code=1) from None
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    job = result["job"]
    print(f"{job['name']}: {len(job['sites'])} sites, emulated at scale {scale:g} "
          f"({result['run']['volume_bytes_per_site'] / 1e3:.0f} kB per site per iteration at "
          f"{result['run']['channel_bps'] / 1e6:.2f} Mb/s); {result['iterations']} iterations per run, "
          f"first left out")
    print(table(result))
    t = result["targets"]
    if t:
        print("targets: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in t.items()))
    print(f"files in {result['workdir']}")
    return 0
