"""``dnctl controller``: run the detnet controller (scheduler + REST API + OpenFlow 1.3) in one process.

Everything runs until SIGINT/SIGTERM, which stop it within about a second. Settings come from
the command line, else the config file (``--config``, JSON or TOML; OpenFlow settings in its
``[openflow]`` section: of_host, of_port, link_scale, lldp_interval, barrier_timeout,
reserved_queue, tls_key, tls_cert, tls_ca, plain, require_cert_dpid), else defaults.

OpenFlow over TLS with client certificates (``--pki DIR`` from ``dnctl pki init``, or ``--of-key``,
``--of-cert`` and ``--of-ca``; docs/security.md); plain TCP only when asked (``--of-plain``), with a
WARNING at start. HTTPS for the REST API with ``--api-cert`` and ``--api-key`` (``--pki`` gives both).
"""

from __future__ import annotations

import argparse

from tools.cli import CliError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "controller", help="run the controller: REST API + OpenFlow 1.3 (until Ctrl-C)",
        description="Run the detnet controller in the foreground: the scheduler and store, the REST API "
                    "and the OpenFlow 1.3 listener that programs the switches. Stops cleanly on "
                    "SIGINT/SIGTERM. The admin token comes from the config file or $DNCTL_ADMIN_TOKEN; "
                    "without either, one is generated and printed once on stderr.")
    p.add_argument("--topology", metavar="NAME_OR_FILE",
                   help="builtin topology name (e.g. fntf40) or a .json/.graphml/.csv file")
    p.add_argument("--hosts", metavar="PLAN.json", help="host plan (tenant hosts and ports) as written by "
                   "the emulation; without it no host is known (no ARP, no best effort, no reservation flows)")
    p.add_argument("--config", metavar="FILE", help="controller config file (JSON or TOML)")
    p.add_argument("--db", metavar="PATH", help="SQLite state file (default detnet-controller.db)")
    p.add_argument("--store", metavar="etcd://HOST:PORT[,...]",
                   help="run as a member of a cluster: the state in etcd (instead of --db), one member "
                        "leads (admits, programs the switches as OpenFlow MASTER), the others follow "
                        "(serve reads, answer writes with 307 to the leader) and take over when it goes; "
                        "see docs/high-availability.md")
    p.add_argument("--advertise-url", metavar="URL",
                   help="with --store: the REST URL the other members and clients reach this one at "
                        "(default: its own listen address and port)")
    p.add_argument("--lease-ttl", type=int, metavar="S",
                   help="with --store: the leader's lease in etcd, s (default 2; a leader cut off from "
                        "etcd stops writing within it)")
    p.add_argument("--of-host", metavar="ADDR", help="OpenFlow listen address (default 0.0.0.0)")
    p.add_argument("--of-port", type=int, metavar="PORT", help="OpenFlow listen port (default 6653)")
    p.add_argument("--pki", metavar="DIR", help="TLS from a folder made by `dnctl pki init`: OpenFlow with "
                   "client certificates (controller.key/.crt, ca.crt) and HTTPS (controller.key/.crt)")
    p.add_argument("--of-key", metavar="KEY.pem", help="OpenFlow over TLS: the controller's private key "
                   "(with --of-cert and --of-ca)")
    p.add_argument("--of-cert", metavar="CERT.pem", help="OpenFlow over TLS: the controller's certificate")
    p.add_argument("--of-ca", metavar="CA.pem", help="OpenFlow over TLS: the CA that signs the switches' "
                   "certificates; a switch without one is refused")
    p.add_argument("--of-plain", action="store_true", default=None,
                   help="OpenFlow over plain TCP (an emulation on this host only; a WARNING at start); "
                        "without it the controller needs TLS (--pki or --of-key/--of-cert/--of-ca)")
    p.add_argument("--of-any-cert-dpid", action="store_false", dest="require_cert_dpid", default=None,
                   help="over TLS, accept a switch whose certificate does not name its dpid "
                        "(default: the certificate must name it, as 'dpid:' and 16 hex digits)")
    p.add_argument("--api-host", metavar="ADDR", help="REST API listen address (default 127.0.0.1)")
    p.add_argument("--api-port", type=int, metavar="PORT", help="REST API port (default 8080)")
    p.add_argument("--api-cert", metavar="CERT.pem", help="HTTPS for the REST API: the certificate (with --api-key)")
    p.add_argument("--api-key", metavar="KEY.pem", help="HTTPS for the REST API: the private key")
    p.add_argument("--link-scale", type=float, metavar="F",
                   help="factor applied to meter rates, as the emulation scales link capacities "
                        "(0.001: 100 Gb/s links are 100 Mb/s; default 1)")
    p.add_argument("--lldp-interval", type=float, metavar="S", help="seconds between LLDP probes (default 2)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], type=str.lower,
                   help="log level (default info)")
    p.add_argument("--log-format", choices=["text", "json"], type=str.lower,
                   help="stderr log lines: text (default, 'TIME LEVEL LOGGER: message') or json (one "
                        "object per line: time, level, logger, message and the event's fields, e.g. the "
                        "audit events with their sequence numbers; a generated admin token then goes to "
                        "DB.admin-token, mode 0600, never to the log)")
    p.add_argument("--allow-topology-change", action="store_true", default=None,
                   help="start even if the database's reservations were placed on another topology "
                        "(those that no longer fit are then listed as unrestored)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    # imported here: the controller's stack (FastAPI, os-ken) is 1.5 s of import on a host and over a
    # minute in the TCG guest, and every other dnctl verb (the talkers of every run) would pay it
    from controller.launcher import LaunchError, LaunchOptions, run
    opts = LaunchOptions(topology=args.topology, hosts=args.hosts, config=args.config, db=args.db,
                         of_host=args.of_host, of_port=args.of_port, api_host=args.api_host,
                         api_port=args.api_port, link_scale=args.link_scale, log_level=args.log_level,
                         log_format=args.log_format,
                         lldp_interval=args.lldp_interval, allow_topology_change=args.allow_topology_change,
                         of_key=args.of_key, of_cert=args.of_cert, of_ca=args.of_ca, of_plain=args.of_plain,
                         require_cert_dpid=args.require_cert_dpid, pki=args.pki, api_cert=args.api_cert,
                         api_key=args.api_key, store=args.store, advertise_url=args.advertise_url,
                         lease_ttl=args.lease_ttl)
    try:
        return run(opts)
    except LaunchError as e:
        raise CliError(str(e), e.code) from None
