"""``dnctl topo``: inspect, list and convert topologies.

- ``dnctl topo show NAME_OR_FILE [--json] [--route-factor F]``: size, fibre, degrees, diameters,
- ``dnctl topo list``: the packaged topology names,
- ``dnctl topo export NAME_OR_FILE --out FILE.json``: write the native JSON format.

Loader warnings (merged duplicates, guessed lengths) go to stderr; a broken file is one line on
stderr and exit 2.

Start-up: the topology modules (networkx) are imported by the actions, not at module level, so
building the parser and ``--help`` import none of them (tests/test_cli_startup.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from tools.cli import CliError

if TYPE_CHECKING:
    from topologies.model import Topology

#: ``topologies.loaders.DEFAULT_ROUTE_FACTOR``, copied so that --help need not import the loaders
#: (and networkx); tests/test_cli_startup.py checks that the two are equal
DEFAULT_ROUTE_FACTOR = 1.34


def load_for_cli(name_or_file: str, route_factor: float = DEFAULT_ROUTE_FACTOR) -> Topology:
    """Load a topology for a CLI verb: warnings to stderr, errors as CliError (exit 2)."""
    from topologies.loaders import load_topology, load_warnings
    from topologies.model import TopologyError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # printed below from the recorded list, once each
        try:
            topo = load_topology(name_or_file, route_factor=route_factor)
        except TopologyError as e:
            raise CliError(str(e)) from None
    for w in load_warnings(topo):
        print(f"dnctl: warning: {w}", file=sys.stderr)
    return topo


def _fmt_bps(bps: int) -> str:
    for unit, scale in (("Tb/s", 1e12), ("Gb/s", 1e9), ("Mb/s", 1e6), ("kb/s", 1e3)):
        if bps >= scale:
            return f"{bps / scale:g} {unit}"
    return f"{bps} b/s"


def _show(args) -> int:
    from topologies.loaders import load_warnings
    from topologies.summary import summarize

    topo = load_for_cli(args.topology, args.route_factor)
    s = summarize(topo)
    if args.json:
        s["warnings"] = load_warnings(topo)
        print(json.dumps(s))
        return 0
    caps = ", ".join(f"{n} x {_fmt_bps(int(c))}" for c, n in s["capacities_bps"].items())
    print(f"topology   {s['name']}")
    print(f"nodes      {s['nodes']}")
    print(f"links      {s['links']} ({caps})")
    print(f"fibre      {s['total_km']:,.0f} km total, {s['mean_link_km']:,.0f} km mean link")
    print(f"degree     min {s['min_degree']}, max {s['max_degree']}, mean {s['mean_degree']}")
    if not s["connected"]:
        print("connected  no: diameters undefined")
        return 0
    print(f"bridges    {s['bridges']}" + (" (survives any single link failure)" if s["bridges"] == 0 else ""))
    print(f"hops       diameter {s['hop_diameter']}")
    if s["max_path_ms"] is not None:
        a, b = s["max_path_endpoints"]
        print(f"worst path {a} -> {b}: {s['max_path_km']:,.0f} km, {s['max_path_ms']:.2f} ms one way, "
              f"{len(s['max_path']) - 1} hops")
    return 0


def _list(args) -> int:
    from topologies.loaders import list_builtin

    names = list_builtin()
    if args.json:
        print(json.dumps(names))
    else:
        print("\n".join(names))
    return 0


def _export(args) -> int:
    topo = load_for_cli(args.topology, args.route_factor)
    out = Path(args.out)
    try:
        out.write_text(topo.to_json(), encoding="utf-8")
    except OSError as e:
        raise CliError(f"{out}: cannot write ({e.strerror or e})") from None
    print(f"wrote {out}: {len(topo.nodes)} nodes, {len(topo.links())} links")
    return 0


def _route_factor(text: str) -> float:
    try:
        f = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < f < 100:
        raise argparse.ArgumentTypeError(f"must be a positive factor (typically 1.2-1.5), not {text}")
    return f


def register(subparsers) -> None:
    p = subparsers.add_parser("topo", help="show, list and convert topologies",
                              description="Inspect, list and convert topologies (native JSON, Zoo GraphML, TSNKit CSV).")
    sub = p.add_subparsers(dest="topo_cmd", metavar="CMD", parser_class=type(p))
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    src_help = "a builtin name (see 'dnctl topo list') or a .json, .graphml or .csv file"
    rf_help = f"fibre km per great-circle km, for files that give coordinates (default {DEFAULT_ROUTE_FACTOR})"

    show = sub.add_parser("show", help="print nodes, links, fibre, degrees and diameters")
    show.add_argument("topology", metavar="NAME_OR_FILE", help=src_help)
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.add_argument("--route-factor", type=_route_factor, default=DEFAULT_ROUTE_FACTOR, help=rf_help)
    show.set_defaults(func=_show)

    lst = sub.add_parser("list", help="list the packaged topology names")
    lst.add_argument("--json", action="store_true", help="print a JSON list")
    lst.set_defaults(func=_list)

    exp = sub.add_parser("export", help="write a topology as native JSON")
    exp.add_argument("topology", metavar="NAME_OR_FILE", help=src_help)
    exp.add_argument("--out", required=True, metavar="FILE.json", help="output file")
    exp.add_argument("--route-factor", type=_route_factor, default=DEFAULT_ROUTE_FACTOR, help=rf_help)
    exp.set_defaults(func=_export)
