"""``dnctl bench``: benchmarks. Kinds are subcommands: ``admission`` (the scheduler alone, offline),
``rest`` (reservations through the REST API on the emulated network, ``tools.runs.bench_rest``),
``channel`` (OpenFlow over TLS beside plain TCP, ``tools.runs.bench_channel``) and ``all`` (the
speed figures of issue 13 in one table beside their targets, ``tools.runs.bench_all``).

``--topology wan<N>`` (e.g. ``wan2000``) is the generated N-site WAN of ``topologies.generate_wan``.

To add a kind, write a function ``_register_<kind>(bsub)`` that adds its parser with
``set_defaults(func=...)`` and append it to ``KINDS``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from tools.cli import CliError
from tools.emulation import ovs
from topologies.generate_wan import wan
from topologies.loaders import load_topology
from topologies.model import Topology, TopologyError

#: ``wan<N>``: the generated WAN of N sites (not a file, not a packaged name)
_WAN = re.compile(r"wan([1-9][0-9]*)")


def _topology(name: str) -> Topology:
    """A packaged topology or file, or ``wan<N>`` generated; CliError on a bad name or file."""
    m = _WAN.fullmatch(name)
    if m is not None:
        n = int(m.group(1))
        if not 2 <= n <= 100_000:
            raise CliError(f"--topology {name}: the generated WAN has 2 to 100000 sites")
        return wan(n)
    try:
        return load_topology(name)
    except TopologyError as e:
        raise CliError(str(e)) from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run benchmarks (admission speed, ...)",
                       description="Benchmarks. Figures are measurements, not pass/fail checks.")
    bsub = p.add_subparsers(dest="bench_kind", metavar="KIND")
    for reg in KINDS:
        reg(bsub)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {v}")
    return v


def _register_admission(bsub: argparse._SubParsersAction) -> None:
    q = bsub.add_parser(
        "admission", help="admit a seeded workload one request at a time and time it",
        description="Admission benchmark: ~10%% bulk flows (1-5 Gb/s, 1 ms period), ~90%% small periodic "
                    "streams (64-1500 B, periods 1/2/4/8 ms), random node pairs, tenants round-robin "
                    "(see docs/scheduling.md).")
    q.add_argument("--topology", default="fntf40",
                   help="topology name or file, or wan<N> for the generated N-site WAN (default fntf40)")
    q.add_argument("--reservations", type=_positive, default=4096, help="number of requests (default 4096)")
    q.add_argument("--tenants", type=_positive, default=128, help="number of tenants (default 128)")
    q.add_argument("--seed", type=int, default=1, help="workload seed (default 1)")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=_admission)


def _admission(args) -> int:
    topo = _topology(args.topology)
    if topo.graph.number_of_nodes() < 2:
        raise CliError(f"topology {topo.name} needs at least two nodes")
    from controller.core.bench import run_admission   # imported here: see _rest
    r = run_admission(topo, args.reservations, args.tenants, args.seed)
    if args.json:
        print(json.dumps(r))
        return 0
    reasons = ", ".join(f"{k} {v}" for k, v in r["rejected_by_reason"].items()) or "none"
    print(f"admission bench on {r['topology']}: {r['reservations']} requests, {r['tenants']} tenants, seed {r['seed']}")
    print(f"  admitted     {r['admitted']}")
    print(f"  rejected     {r['rejected']} ({reasons})")
    print(f"  total        {r['total_s']:.3f} s (CPU {r['cpu_s']:.3f} s)")
    print(f"  per request  p50 {r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms, max {r['max_ms']:.3f} ms")
    print(f"  peak RSS     {r['peak_rss_mb']:.1f} MiB")
    print(f"  cycle        {r['cycle_ns']} ns of {r['slot_ns']} ns slots; link share mean "
          f"{r['mean_link_share']:.3f}, max {r['max_link_share']:.3f}")
    return 0


def _register_rest(bsub: argparse._SubParsersAction) -> None:
    q = bsub.add_parser(
        "rest", help="reservations through the REST API on the emulated network: rate, install latency, RSS",
        description="REST load benchmark: starts the controller and (unless --no-emulate) the Mininet "
                    "emulation of the topology with HOSTS-PER-TENANT hosts of each tenant, creates the "
                    "tenants, POSTs the seeded workload with CONCURRENCY clients (each tenant with its own "
                    "token), checks every switch's reservation entries against the translation, DELETEs "
                    "everything and checks every flow and meter table is back to its baseline. Needs root, "
                    "Open vSwitch and Mininet for --emulate; takes the emulation lock.")
    q.add_argument("--topology", default="fntf40", help="topology name or file (default fntf40)")
    q.add_argument("--reservations", type=_positive, default=4096, help="number of requests (default 4096)")
    q.add_argument("--tenants", type=_positive, default=128, help="number of tenants (default 128)")
    q.add_argument("--hosts-per-tenant", type=_positive, default=2,
                   help="hosts of each tenant, in different cities (default 2; at least 2)")
    q.add_argument("--concurrency", type=_positive, default=8, help="concurrent REST clients (default 8)")
    q.add_argument("--emulate", action=argparse.BooleanOptionalAction, default=True,
                   help="run against the Mininet emulation (default); --no-emulate: controller only, no switches")
    q.add_argument("--seed", type=int, default=1, help="workload seed (default 1)")
    q.add_argument("--link-scale", type=float, default=None,
                   help="bandwidth scale of links and meters (default: the emulation's, 1/1000)")
    q.add_argument("--log-dir", default=None, help="keep the controller log in this directory")
    q.add_argument("--cluster", type=int, default=0, metavar="N",
                   help="N >= 2: N controllers on a 3-member etcd (--store etcd://), requests to the leader "
                        "(default 0: one controller on SQLite)")
    q.add_argument("--batch", action=argparse.BooleanOptionalAction, default=True,
                   help="then the same requests as one batch and one multi-delete, figures side by side "
                        "(default; --no-batch skips it)")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=_rest)


def _rest(args) -> int:
    try:
        topo = load_topology(args.topology)
    except TopologyError as e:
        raise CliError(str(e)) from None
    if args.hosts_per_tenant < 2:
        raise CliError("--hosts-per-tenant must be at least 2 (a reservation joins two of a tenant's cities)")
    if args.cluster == 1 or not 0 <= args.cluster <= 7:
        raise CliError("--cluster must be 0 (one controller) or 2 to 7")
    if args.hosts_per_tenant > len(topo.nodes):
        raise CliError(f"--hosts-per-tenant {args.hosts_per_tenant}: {topo.name} has only {len(topo.nodes)} nodes")
    if args.tenants > 4094:
        raise CliError("--tenants must be at most 4094 (tenant ids are VLAN ids)")
    if args.link_scale is not None and not 0 < args.link_scale <= 1000:
        raise CliError(f"--link-scale {args.link_scale:g} must be in (0, 1000]")
    if args.emulate:
        missing = ovs.probe().missing_for_emulation()
        if missing:
            raise CliError("cannot emulate on this machine (" + ", ".join(missing) + "); try --no-emulate")
    # imported here: the REST bench pulls in the controller's stack (FastAPI, os-ken), 1.5 s of import
    # that every other dnctl verb (the talkers of every run) would pay; over a minute in the TCG guest
    from tools.runs.bench_rest import BenchOptions, run_rest_bench, text_report
    opts = BenchOptions(topology=topo, reservations=args.reservations, tenants=args.tenants,
                        hosts_per_tenant=args.hosts_per_tenant, concurrency=args.concurrency,
                        emulate=args.emulate, seed=args.seed, link_scale=args.link_scale, keep_log=args.log_dir,
                        batch=args.batch, cluster=args.cluster)
    try:
        r = run_rest_bench(opts)
    except Exception as e:  # noqa: BLE001 - a failed run is one line, never a traceback
        raise CliError(f"bench rest failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                       code=1) from None
    if args.json:
        print(json.dumps(r))
    else:
        print(text_report(r))
    ok = r.get("installed_match") in (True, None) and r.get("tables_back_to_baseline") in (True, None) \
        and not r.get("errors") and not r.get("delete_errors") \
        and r.get("batch_installed_match") in (True, None) and r.get("batch_tables_back_to_baseline") in (True, None) \
        and not r.get("batch_delete_errors")
    return 0 if ok else 1


def _register_channel(bsub: argparse._SubParsersAction) -> None:
    q = bsub.add_parser(
        "channel", help="what OpenFlow over TLS costs: switch connection and resync, installs, beside plain TCP",
        description="Brings up the emulation twice per repeat, OpenFlow over plain TCP then over TLS with client "
                    "certificates, and measures the time and controller CPU for every switch to connect and "
                    "resync, then RESERVATIONS reservations made one by one (install_ms from the shim's log, "
                    "POST latency). Prints each run and the medians. Needs root, Open vSwitch and Mininet; "
                    "takes the emulation lock (tools/runs/bench_channel.py).")
    q.add_argument("--topology", default="fntf40", help="topology name or file (default fntf40)")
    q.add_argument("--reservations", type=_positive, default=64, help="reservations per run (default 64)")
    q.add_argument("--repeat", type=_positive, default=1, help="runs of each channel (default 1)")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=_channel)


def _channel(args) -> int:
    try:
        load_topology(args.topology)
    except TopologyError as e:
        raise CliError(str(e)) from None
    missing = ovs.probe().missing_for_emulation()
    if missing:
        raise CliError("cannot emulate on this machine (" + ", ".join(missing) + ")")
    from tools.runs.bench_channel import ChannelOptions, run_channel_bench
    opts = ChannelOptions(topology=args.topology, reservations=args.reservations, repeat=args.repeat)
    try:
        r = run_channel_bench(opts, progress=None if args.json else print)
    except Exception as e:  # noqa: BLE001 - a failed run is one line, never a traceback
        raise CliError(f"bench channel failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                       code=1) from None
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"{'median of ' + str(args.repeat):<14} {'connect s':>10} {'ctl CPU s':>10} {'install p50':>12} "
          f"{'install p99':>12} {'POST p50':>9} {'POST p99':>9}")
    for channel, m in r["median"].items():
        print(f"{channel:<14} {m['connect_s']:>10.2f} {m['controller_cpu_s']:>10.2f} {m['install_ms_p50']:>9.2f} ms "
              f"{m['install_ms_p99']:>9.2f} ms {m['post_ms_p50']:>6.1f} ms {m['post_ms_p99']:>6.1f} ms")
    return 0


def _register_all(bsub: argparse._SubParsersAction) -> None:
    q = bsub.add_parser(
        "all", help="every speed figure in one table beside its target (admission scale curve, start-up, TSNKit, "
                    "REST onto the switches and the controller alone, the emulation's bring-up)",
        description="Runs the admission scale curve (fntf40 1k/4k/20k/100k, wan2000 10k; each in its own process), "
                    "the start-up time of offline verbs, dnctl tsnkit against TSNKit's ls and dt on TSNKit's "
                    "own instances (line/ring/mesh, 8-128 streams, every complete output simulated), and dnctl "
                    "bench rest onto the emulated switches and without them (fntf40, 4,096 requests of 128 "
                    "tenants; the emulated run needs root, Open vSwitch and Mininet and takes the emulation lock), "
                    "and prints one table: each figure beside its target and the peer's figure from the same run. "
                    "Figures, not pass/fail (see docs/benchmarks.md).")
    q.add_argument("--no-admission", dest="admission", action="store_false", help="skip the admission curve")
    q.add_argument("--no-startup", dest="startup", action="store_false", help="skip the start-up times")
    q.add_argument("--no-tsnkit", dest="tsnkit", action="store_false", help="skip the TSNKit comparison")
    q.add_argument("--no-rest", dest="rest", action="store_false",
                   help="skip the REST runs (onto the emulated switches, and the controller alone)")
    q.add_argument("--quick", action="store_true",
                   help="smaller run: fntf40 4096 and 20000 only; TSNKit at 8, 32 and 128 streams; REST with "
                        "1024 requests")
    q.add_argument("--timeout", type=float, default=600, help="seconds per TSNKit run (default 600)")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=_all)


def _all(args) -> int:
    from tools.runs import bench_all   # imported here: it imports TSNKit's benchmark helpers (see _rest)
    if args.timeout <= 0:
        raise CliError("--timeout must be positive")
    points = bench_all.ADMISSION_POINTS
    streams = bench_all.TSNKIT_STREAMS
    if args.quick:
        points = tuple(p for p in points if p[0] == "fntf40" and p[1] in (4096, 20000))
        streams = (8, 32, 128)
    r = bench_all.run_all(admission=args.admission, startup=args.startup, tsnkit=args.tsnkit, rest=args.rest,
                          points=points, streams=streams, timeout=args.timeout,
                          rest_reservations=1024 if args.quick else 4096,
                          progress=None if args.json else (lambda m: print(f"  running {m}", file=sys.stderr)))
    print(json.dumps(r) if args.json else bench_all.text_table(r))
    return 0


KINDS = [_register_admission, _register_rest, _register_channel, _register_all]
