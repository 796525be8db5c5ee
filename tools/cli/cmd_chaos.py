"""``dnctl chaos``: cut a link and restart the controller on a live emulation, and report.

See ``tools.runs.chaos`` for the scenarios. Needs root, Open vSwitch and Mininet (the emulation).
"""

from __future__ import annotations

import argparse
import json

from tools.cli import CliError
from tools.cli.cmd_emulate import require_emulation
from tools.cli.vmarg import add_vm_argument, run_in_vm_if_asked
from tools.runs.chaos import ChaosConfig, run_chaos, text_summary
from tools.runs.chaos_ha import SCENARIOS, ClusterChaosConfig, run_cluster_chaos
from tools.runs.chaos_ha import text_summary as cluster_summary


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "chaos", help="failure scenarios on the emulation: link cut (reroute, protection), controller restart",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Bring up the controller and an emulation, reserve N unprotected and N protected flows\n"
                    "over one link, cut it with traffic flowing (time to reprogram every affected\n"
                    "reservation, packets lost per class after duplicate elimination), restore it, then\n"
                    "SIGKILL and restart the controller with traffic flowing (store and switches must\n"
                    "agree afterwards, no packet lost). Everything is torn down at the end.",
        epilog="examples:\n  dnctl chaos --json\n  dnctl chaos --reservations 50 --out /tmp/chaos\n"
               "  dnctl chaos --scenario leader-kill --kills 5 --json")
    p.add_argument("--topology", metavar="NAME", default=None,
                   help="topology name or file (default: chaos6, a small meshed ring that runs fast; e.g. fntf40)")
    p.add_argument("--reservations", type=int, default=2, metavar="N",
                   help="reservations per class (unprotected and protected) over the cut link (default 2)")
    p.add_argument("--traffic", type=int, default=2, metavar="K",
                   help="of those, how many per class carry probe traffic (default 2)")
    p.add_argument("--no-restart", action="store_true", help="skip the controller restart scenario")
    p.add_argument("--scenario", choices=("link-cut",) + SCENARIOS, default="link-cut",
                   help="link-cut (default): the link cut and controller restart above, one controller; "
                        "leader-kill, etcd-member-kill, partition: a cluster of 3 controllers on 3 etcd "
                        "members with a writer admitting through a follower (docs/high-availability.md)")
    p.add_argument("--kills", type=int, default=3, metavar="N",
                   help="leader-kill: how many times the leader is killed (default 3)")
    p.add_argument("--out", metavar="DIR", help="keep captures, talker results, controller log and report.json here")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_vm_argument(p)
    p.set_defaults(func=_chaos)


def _chaos(args: argparse.Namespace) -> int:
    if args.reservations < 1 or args.reservations > 2000:
        raise CliError("--reservations must be between 1 and 2000")
    if args.traffic < 1:
        raise CliError("--traffic must be at least 1")
    if not 1 <= args.kills <= 100:
        raise CliError("--kills must be between 1 and 100")
    code = run_in_vm_if_asked(args, args.out)
    if code is not None:
        return code
    require_emulation()
    if args.scenario != "link-cut":
        return _cluster(args)
    cfg = ChaosConfig(topology=args.topology, reservations=args.reservations, traffic=min(args.traffic, args.reservations),
                      restart=not args.no_restart, out=args.out, verbose=not args.quiet)
    try:
        rep = run_chaos(cfg)
    except (ValueError, KeyError) as e:
        raise CliError(str(e).strip("'\"")) from None
    if args.json:
        print(json.dumps(rep, indent=1))
    else:
        print(text_summary(rep))
    return 0 if rep["pass"] else 1


def _cluster(args: argparse.Namespace) -> int:
    cfg = ClusterChaosConfig(scenario=args.scenario, topology=args.topology, kills=args.kills,
                             reservations=args.reservations, traffic=min(args.traffic, args.reservations),
                             out=args.out, verbose=not args.quiet)
    try:
        rep = run_cluster_chaos(cfg)
    except (ValueError, KeyError) as e:
        raise CliError(str(e).strip("'\"")) from None
    print(json.dumps(rep, indent=1) if args.json else cluster_summary(rep))
    return 0 if rep["pass"] else 1
