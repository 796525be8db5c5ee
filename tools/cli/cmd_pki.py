"""``dnctl pki init DIR --topology T``: a CA and the certificates a controller and its switches need.

The controller refuses to start without TLS on its OpenFlow port unless told ``--of-plain``
(docs/security.md). This verb makes what ``dnctl controller --pki DIR`` takes, with
``tools.emulation.pki`` (``cryptography``, ECDSA P-256, keys mode 0600):

- ``ca.crt``, ``ca.key``: a new CA (keep ``ca.key`` offline once the switches have theirs);
- ``controller.crt``, ``controller.key``: the controller's, for OpenFlow and HTTPS, naming the
  ``--host`` names (default ``127.0.0.1`` and ``localhost``);
- ``switches.crt``, ``switches.key``: one client certificate naming every dpid of the topology
  (``dpid:`` + 16 hex digits), for an Open vSwitch running all of them (``ovs-vsctl set-ssl``);
  ``--switch NAME`` (repeatable) issues ``NAME.crt``/``NAME.key`` naming only that switch's dpid,
  as a real backbone gives each switch its own.

An existing folder with a CA is refused unless ``--force`` (a new CA would orphan every
certificate issued by the old one). ``--json`` prints the files written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tools.cli import CliError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pki", help="make a CA and the TLS certificates of a controller and its switches",
                       description="Certificates for OpenFlow over TLS with client certificates and for "
                                   "HTTPS (docs/security.md).")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = actions.add_parser("init", help="a new CA, the controller's certificate and the switches'",
                              description="Write ca.crt/ca.key, controller.crt/.key (OpenFlow and HTTPS) and "
                                          "switches.crt/.key (naming every dpid of the topology) into DIR; "
                                          "private keys mode 0600. Then: dnctl controller --pki DIR, and "
                                          "ovs-vsctl set-ssl DIR/switches.key DIR/switches.crt DIR/ca.crt on "
                                          "the switches.")
    init.add_argument("folder", metavar="DIR", help="folder to write (created if missing)")
    init.add_argument("--topology", required=True, metavar="NAME_OR_FILE",
                      help="the topology whose switches get certificates (its dpids, as the controller numbers them)")
    init.add_argument("--host", action="append", metavar="NAME_OR_ADDR", dest="hosts",
                      help="a name or address the controller is reached at (repeatable; default 127.0.0.1 and "
                           "localhost)")
    init.add_argument("--switch", action="append", metavar="NAME", dest="switches", default=[],
                      help="also issue NAME.crt/NAME.key naming only this switch's dpid (repeatable)")
    init.add_argument("--force", action="store_true", help="replace a CA already in DIR")
    init.add_argument("--json", action="store_true", help="print the files written as JSON")
    init.set_defaults(func=_init)


def _init(args: argparse.Namespace) -> int:
    from tools.emulation.pki import Pki
    from topologies.hosts import HostPlan
    from topologies.loaders import load_topology
    from topologies.model import TopologyError

    try:
        topology = load_topology(args.topology)
    except TopologyError as e:
        raise CliError(str(e)) from None
    plan = HostPlan(topology)
    unknown = [s for s in args.switches if s not in topology.nodes]
    if unknown:
        raise CliError(f"pki init: --switch {unknown[0]}: no such switch in {topology.name}")
    folder = Path(args.folder)
    if folder.exists() and not folder.is_dir():
        raise CliError(f"pki init: {folder} exists and is not a folder")
    if (folder / "ca.key").exists() and not args.force:
        raise CliError(f"pki init: {folder} already holds a CA (ca.key); --force replaces it and every "
                       "certificate it issued")
    try:
        pki = Pki.create(folder, switch_dpids=[plan.dpid(n) for n in topology.nodes],
                         controller_hosts=args.hosts or ("127.0.0.1", "localhost"))
        per_switch = {name: pki.issue_switch(name, [plan.dpid(name)]) for name in args.switches}
    except OSError as e:
        raise CliError(f"pki init: {folder}: {e.strerror or e}", 1) from None
    assert pki.controller is not None and pki.switches is not None
    files = {"ca": {"cert": str(pki.ca_cert), "key": str(folder / "ca.key")},
             "controller": {"cert": str(pki.controller.cert), "key": str(pki.controller.key)},
             "switches": {"cert": str(pki.switches.cert), "key": str(pki.switches.key),
                          "dpids": len(topology.nodes)},
             **{name: {"cert": str(c.cert), "key": str(c.key), "dpids": 1} for name, c in per_switch.items()}}
    if args.json:
        print(json.dumps({"folder": str(folder), "topology": topology.name, "files": files}, indent=1))
        return 0
    print(f"{folder}: a new CA, the controller's certificate ({', '.join(args.hosts or ('127.0.0.1', 'localhost'))}) "
          f"and the switches' ({len(topology.nodes)} dpids of {topology.name})"
          + (f", and {len(per_switch)} per switch" if per_switch else ""))
    print(f"  controller: dnctl controller --topology {args.topology} --pki {folder}")
    print(f"  switches:   ovs-vsctl set-ssl {pki.switches.key} {pki.switches.cert} {pki.ca_cert}")
    print(f"  clients:    DNCTL_CA={pki.ca_cert} (or --ca) with https://")
    print(f"keep {folder / 'ca.key'} away from the controller host once certificates are issued", file=sys.stderr)
    return 0
