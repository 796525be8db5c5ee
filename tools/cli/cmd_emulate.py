"""``dnctl emulate``: probe the machine, bring a Mininet emulation of a topology up and down.

- ``dnctl emulate probe [--vm] [--json]``: what this machine offers (Open vSwitch, kernel datapath, netem,
  htb, taprio, root, Mininet), what an emulation will lack and whether ``--vm auto`` means a VM here;
  ``--vm`` also boots the VM with Debian's stock kernel and measures it (``tools.vm.probe``: boot
  time, modules, netem RTT against 2 x delay, taprio), exit 1 when a figure is off;
- ``dnctl emulate up --topology NAME_OR_FILE [--tenants N] [--hosts-per-tenant-city K]
  [--cities A,B,..] [--controller HOST:PORT [--switch-tls KEY CERT CA]] [--hosts-out PLAN.json] [--ping SRC DST ...]
  [--hold SECONDS | --cli] [--gates auto|on|off --url URL] [--json]``: start the emulation (see
  tools/emulation/network.py), optionally ping between cities or hosts, hold it up or open the Mininet CLI,
  then tear it down (also on Ctrl-C). With a controller whose REST API is at ``--url`` and a kernel with
  taprio, the ports carrying reservations get 802.1Qbv gates kept equal to its schedule
  (tools/emulation/gates.py); ``--json``'s ``gates`` says how many and whether they read back equal.
  Exit 0 when every ping got all its replies, 1 otherwise.

Progress lines go to stderr; the result (human or ``--json``) to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from tools.cli import CliError
from tools.cli.clientargs import add_connection_args, client_from_args
from tools.cli.vmarg import add_vm_argument, run_in_vm_if_asked
from tools.emulation import netemcal
from tools.emulation.gates import GateKeeper
from tools.emulation.network import Emulation, EmulationError, parse_controller, write_plan
from tools.emulation.ovs import probe
from tools.emulation.patience import in_vm
from tools.vm.host import KernelFeatures, wants_vm
from tools.vm.probe import probe_vm
from topologies.loaders import load_topology
from topologies.machine import taprio_works
from topologies.model import TopologyError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("emulate", help="Mininet emulation of a topology: probe the machine, bring it up/down",
                       description="Probe the machine for emulation features, or bring a Mininet + Open vSwitch "
                                   "emulation of a topology up (controller-less static forwarding unless "
                                   "--controller), ping, hold, and tear it down.")
    vs = p.add_subparsers(dest="emulate_verb", metavar="ACTION")

    pr = vs.add_parser("probe", help="what this machine offers an emulation (OVS, datapath, netem, htb, root)")
    pr.add_argument("--json", action="store_true", help="machine-readable output")
    pr.add_argument("--vm", action="store_true",
                    help="also boot the VM with Debian's stock kernel and measure it (docs/vm.md)")
    pr.set_defaults(func=_probe)

    up = vs.add_parser("up", help="bring an emulation up, optionally ping, hold or open the CLI, tear down",
                       description="Bring the emulation of a topology up; tear it down at the end or on Ctrl-C.")
    up.add_argument("--topology", default="fntf40", metavar="NAME_OR_FILE",
                    help="builtin topology name or file (default fntf40)")
    up.add_argument("--tenants", type=int, default=1, metavar="N", help="tenants 1..N get hosts (default 1)")
    up.add_argument("--hosts-per-tenant-city", type=int, default=1, metavar="K",
                    help="hosts of each tenant at each city (default 1)")
    up.add_argument("--cities", metavar="A,B,...", help="attach hosts only at these nodes (default: all)")
    up.add_argument("--controller", metavar="HOST:PORT",
                    help="OpenFlow 1.3 controller (default: none, static forwarding installed by dnctl)")
    up.add_argument("--switch-tls", nargs=3, metavar=("KEY", "CERT", "CA"),
                    help="with --controller: the switches dial ssl:HOST:PORT with this key and certificate "
                         "(ovs-vsctl set-ssl; the certificate should name every switch's dpid) and check the "
                         "controller against CA (docs/security.md)")
    up.add_argument("--static-routes", action="store_true",
                    help="install the static forwarding even with --controller")
    up.add_argument("--datapath", choices=["auto", "kernel", "user"], default="auto",
                    help="Open vSwitch datapath (default auto: kernel when the module is usable)")
    up.add_argument("--link-scale", type=float, default=None, metavar="F",
                    help="link bandwidth factor (default 0.001: 100 Gb/s -> 100 Mb/s; 0: no shaping)")
    up.add_argument("--delay-scale", type=float, default=None, metavar="F",
                    help="propagation delay factor where netem exists (default 1)")
    up.add_argument("--hosts-out", metavar="PLAN.json", help="write the host plan (names, ports, MACs, IPs)")
    up.add_argument("--ping", nargs=2, action="append", default=[], metavar=("SRC", "DST"),
                    help="ping from SRC to DST (city or host name; repeatable)")
    up.add_argument("--count", type=int, default=3, help="pings per pair (default 3)")
    hold = up.add_mutually_exclusive_group()
    hold.add_argument("--hold", type=float, metavar="SECONDS", help="keep the emulation up this long")
    hold.add_argument("--cli", action="store_true", help="open the Mininet CLI (exit it to tear down)")
    up.add_argument("--gates", choices=["auto", "on", "off"], default="auto",
                    help="802.1Qbv gates: taprio on every port carrying reservations, kept equal to the schedule "
                         "of the controller at --url (tools/emulation/gates.py; docs/gates.md). auto (default): "
                         "when --controller and --url (or $DNCTL_URL) are given and this kernel has taprio")
    add_connection_args(up.add_argument_group("the controller's REST API (for --gates)"))
    up.add_argument("--json", action="store_true", help="print a JSON summary (timings, pings, gates)")
    add_vm_argument(up)
    up.set_defaults(func=_up)
    p.set_defaults(func=lambda _a: (p.print_help(), 2)[1])


def _probe(args: argparse.Namespace) -> int:
    caps = probe()
    kernel = KernelFeatures(openvswitch=caps.kernel_datapath, netem=caps.netem, taprio=taprio_works())
    vm = probe_vm() if args.vm else None
    code = 0 if vm is None or vm["ok"] else 1
    if args.json:
        print(json.dumps({**caps.to_dict(), "taprio": kernel.taprio, "vm_auto": wants_vm("auto", kernel),
                          **({"vm": vm} if vm else {})}, indent=1))
        return code
    yn = lambda b: "yes" if b else "no"  # noqa: E731
    print(f"Open vSwitch installed : {yn(caps.ovs_installed)}")
    print(f"Open vSwitch running   : {yn(caps.ovs_running)}")
    print(f"kernel datapath        : {yn(caps.kernel_datapath)}  -> datapath: {caps.datapath}")
    print(f"tc netem (link delay)  : {yn(caps.netem)}")
    print(f"tc htb (link shaping)  : {yn(caps.htb)}")
    print(f"tc taprio (802.1Qbv)   : {yn(kernel.taprio)}")
    print(f"root                   : {yn(caps.is_root)}")
    print(f"mininet importable     : {yn(caps.mininet_importable)}")
    missing = caps.missing_for_emulation()
    print("emulation              : " + ("possible" if not missing else "NOT possible: " + ", ".join(missing)))
    for note in caps.limitations():
        print(f"  limitation: {note}")
    print("--vm auto              : " + (f"VM (this kernel lacks {', '.join(kernel.missing())})"
                                         if wants_vm("auto", kernel) else "host kernel"))
    if vm:
        net = vm["netem"]
        rtt = "/".join(f"{x:.1f}" for x in net["rtt_ms"]) if net["rtt_ms"] else "none"
        print(f"VM (kernel {vm['kernel_release']}): booted in {vm['boot_seconds']:.1f} s; modules "
              + ", ".join(f"{m} {yn(ok)}" for m, ok in vm["modules"].items()))
        print(f"  netem {net['delay_ms']:g} ms each way: RTT min/avg/max {rtt} ms, expected "
              f"{net['expected_rtt_ms']:g} ± {net['limit_ms']:g} ms: {'ok' if net['within'] else 'OFF'}")
        print(f"  taprio gate list installed and read back: {yn(vm['taprio'])}")
    return code


def require_emulation() -> None:
    """A one-line ``CliError`` (exit 2) naming what this machine lacks for an emulation, if anything.

    The verbs that bring an emulation up (verify isolation/scenario, chaos) call it before starting.
    """
    missing = probe().missing_for_emulation()
    if missing:
        raise CliError("cannot emulate on this machine: " + ", ".join(missing))


def _load(args: argparse.Namespace):
    try:
        topo = load_topology(args.topology)
    except TopologyError as e:
        raise CliError(str(e)) from None
    if args.tenants < 1 or args.tenants > 4094:
        raise CliError("--tenants must be between 1 and 4094")
    if args.hosts_per_tenant_city < 1:
        raise CliError("--hosts-per-tenant-city must be at least 1")
    cities = None
    if args.cities:
        cities = [c.strip() for c in args.cities.split(",") if c.strip()]
        unknown = [c for c in cities if not topo.has_node(c)]
        if unknown:
            raise CliError(f"--cities: {', '.join(unknown)} not in topology {topo.name}")
    try:
        from topologies.mininet_topo import default_plan   # imports Mininet
    except ImportError as e:
        raise CliError(f"mininet not importable ({e}); install mininet") from None
    try:
        plan = default_plan(topo, args.tenants, args.hosts_per_tenant_city, cities)
    except TopologyError as e:
        raise CliError(str(e)) from None
    return topo, plan


def _up(args: argparse.Namespace) -> int:
    topo, plan = _load(args)
    if args.hold is not None and args.hold < 0:
        raise CliError("--hold must be >= 0 seconds")
    if args.count < 1:
        raise CliError("--count must be at least 1")
    try:
        controller = parse_controller(args.controller)
    except ValueError as e:
        raise CliError(str(e)) from None
    if args.switch_tls:
        if controller is None:
            raise CliError("--switch-tls needs --controller HOST:PORT")
        for f in args.switch_tls:
            try:
                open(f, "rb").close()
            except OSError as e:
                raise CliError(f"--switch-tls {f}: cannot read: {e.strerror or e}") from None
    if args.cli and args.vm == "on":
        raise CliError("--cli opens Mininet's CLI on this host: not with --vm on")
    if not args.cli:
        code = run_in_vm_if_asked(args, None)
        if code is not None:
            return code
    if len(plan.hosts) > 1000:
        print(f"dnctl: warning: {len(plan.hosts)} hosts: each is a shell and a namespace; this will be slow",
              file=sys.stderr)
    gates_off = _gates_off_reason(args, controller)
    emu = Emulation(topo, plan, controller=controller, tls=tuple(args.switch_tls) if args.switch_tls else None,
                    datapath=None if args.datapath == "auto" else args.datapath,
                    link_scale=args.link_scale, delay_scale=args.delay_scale,
                    static_routes=True if args.static_routes else None, tx_queues=1 if gates_off else 2)
    # resolve ping endpoints before starting, so a typo costs nothing
    for src, dst in args.ping:
        try:
            s = emu.resolve(src)
            emu.resolve(dst, s.tenant)
        except KeyError as e:
            raise CliError(f"--ping {src} {dst}: {e.args[0]}") from None
    if args.hosts_out:
        write_plan(plan, args.hosts_out)
    pings: list[dict[str, Any]] = []
    keeper: GateKeeper | None = None
    gates: dict[str, Any] = {"enabled": False, "reason": gates_off}
    try:
        with emu:
            if not gates_off:
                keeper = GateKeeper(emu, client_from_args(args))
                try:
                    keeper.start()
                except Exception as e:  # noqa: BLE001 - the controller's API unreachable: a one-line error
                    raise CliError(f"--gates: cannot read the controller's schedule: {e}", code=1) from None
            for src, dst in args.ping:
                r = emu.ping(src, dst, count=args.count)
                pings.append({"src": src, "dst": dst, "sent": r.sent, "received": r.received,
                              "rtt_avg_ms": r.rtt_avg_ms, "rtt_min_ms": r.rtt_min_ms, "rtt_max_ms": r.rtt_max_ms,
                              "missing": r.missing, "ok": r.ok})
                if not args.json:
                    print(r, flush=True)
            if args.cli:
                from mininet.cli import CLI
                CLI(emu.net)
            elif args.hold:
                print(f"emulate: holding for {args.hold:g} s (Ctrl-C to tear down)", file=sys.stderr, flush=True)
                time.sleep(args.hold)
            if keeper is not None:
                keeper.stop()
                keeper.check()
                gates = keeper.summary()
    except EmulationError as e:
        raise CliError(str(e), code=1) from None
    finally:
        if keeper is not None:
            keeper.stop()
            keeper.client.close()
    ok = all(p["ok"] for p in pings)
    summary = emu.summary() | {"vm": in_vm(), "pings": pings, "gates": gates, "ok": ok}
    if pings and emu.delayed:
        # how late this machine's netem delays fire, measured now: what a propagation check of the
        # pings' round trips must allow for the timers (tools/emulation/netemcal.py)
        try:
            summary["netem_lateness"] = netemcal.measure().to_dict()
        except RuntimeError as e:
            summary["netem_lateness"] = {"error": str(e)}
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        t = emu.timings
        print(f"{topo.name}: {summary['switches']} switches, {summary['links']} links, {summary['hosts']} hosts, "
              f"{emu.datapath} datapath; up in {t.up_s:.1f} s (Mininet {t.start_s:.1f} s, static "
              f"{t.static_s:.1f} s), down in {t.stop_s:.1f} s")
        for note in emu.notes:
            print(f"  note: {note}")
        if pings:
            print(f"pings: {sum(p['ok'] for p in pings)}/{len(pings)} pairs answered in full")
        cal = summary.get("netem_lateness")
        if cal and "late_ms" in cal:
            print(f"netem timers: a {cal['delay_ms']:g} ms delay fired {cal['late_ms']:.3f} ms late in the fastest of "
                  f"{cal['pings']} pings across one delayed link, {cal['late_avg_ms']:.3f} ms on average")
        if gates["enabled"]:
            print(f"gates: {gates['ports_gated']} ports gated, {gates['ports_open']} open, read back "
                  f"{'equal to the schedule' if gates['readback_equal'] else 'DIFFERENT: ' + str(gates['differences'])}"
                  f" ({gates['applies']} applies)")
        else:
            print(f"gates: off ({gates['reason']})")
    return 0 if ok else 1


def _gates_off_reason(args: argparse.Namespace, controller: Any) -> str | None:
    """Why ``dnctl emulate up`` runs without gates (None: with them); ``--gates on`` that cannot is exit 2."""
    reason = None
    if args.gates == "off":
        reason = "turned off (--gates off)"
    elif controller is None:
        reason = "no --controller: static forwarding has no schedule"
    elif not (getattr(args, "url", None) or os.environ.get("DNCTL_URL")):
        reason = "no --url (or $DNCTL_URL): the controller's schedule cannot be read"
    elif not taprio_works():
        reason = "no tc taprio on this kernel"
    if reason and args.gates == "on":
        raise CliError(f"--gates on: {reason}")
    return reason
