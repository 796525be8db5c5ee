"""The controller process: service + os-ken OpenFlow app + REST API, started and stopped together.

``run(options)`` builds the ``ControllerService`` from the topology, host plan and config, starts
os-ken's AppManager with ``controller.ofshim`` (OpenFlow 1.3 listener) and serves the FastAPI app
with uvicorn in a thread. SIGINT/SIGTERM stop everything within about a second: the REST server is
told to exit, switch connections are closed, the store is closed, then the process exits (os-ken's
native-thread hub has no way to stop its listener thread, so the last step is ``os._exit``).

Logging: one line per event on stderr, in the format of ``--log-format`` (``controller.logfmt``):
``text``, ``TIME LEVEL LOGGER: message``, or ``json``, one JSON object per line with the same message
and the event's structured fields (the audit events with their sequence numbers). With ``json`` a
generated admin token is never written to stderr: it goes to ``DB.admin-token`` (mode 0600) and the
log says where.

OpenFlow over TLS: with a private key, a certificate and a CA (``--of-key/--of-cert/--of-ca``, or
``tls_key``/``tls_cert``/``tls_ca`` in the config's ``[openflow]``, relative paths relative to the
config file) os-ken listens with TLS and requires a client certificate signed by that CA; a
switch must also be named by it (``controller.switchauth``; ``require_cert_dpid = false`` in
``[openflow]``, or ``--of-any-cert-dpid``, drops that rule). Give all three or none. A failed
handshake is a security event (``controller.oftls``). Without TLS files the controller does not
start, unless plain TCP is asked for explicitly (``--of-plain``, or ``plain = true``), and then it
says so in a WARNING line at start. Plain TCP and TLS files together are an error.

HTTPS for the REST API: with a certificate and its key (``--api-cert/--api-key``, or
``api_tls_cert``/``api_tls_key`` in the config) uvicorn serves TLS and every answer carries
``Strict-Transport-Security``. ``--pki DIR`` (a folder made by ``dnctl pki init``) stands for
both: ``controller.key``/``controller.crt`` and ``ca.crt`` for OpenFlow, the same key and
certificate for HTTPS.

os-ken (and ``controller.ofshim``, which imports it) is imported in ``Controller.start`` only:
it is heavy, and only the shim and this launcher may import it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvicorn

from controller import logfmt
from controller.api import create_app, server_config, warm_routes
from controller.api.guards import HstsMiddleware
from controller.config import ConfigError, ControllerConfig, load_config
from controller.service import ControllerService
from controller.api.leader import LeaderWritesMiddleware
from controller.etcdstore import EtcdStore, parse_etcd_url
from controller.ha import ClusterMember
from controller.store import Store, StoreError, TopologyIdentity
from topologies.hosts import HostPlan
from topologies.loaders import load_topology
from topologies.machine import qdisc_works
from topologies.model import Topology, TopologyError

LOG = logging.getLogger("detnet.launcher")
LOG_FORMAT = logfmt.TEXT_FORMAT

#: keys of the config file's [openflow] section
OPENFLOW_KEYS = {"of_host", "of_port", "link_scale", "lldp_interval", "barrier_timeout", "reserved_queue",
                 "tls_key", "tls_cert", "tls_ca", "plain", "require_cert_dpid"}


class LaunchError(Exception):
    """Start-up failed (bad input: ``code`` 2; the machine refused, e.g. a port in use: 1)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


@dataclass
class LaunchOptions:
    """Everything ``run`` needs; ``None`` means 'from the config file, else the default'."""

    topology: str | None = None
    hosts: str | None = None
    config: str | None = None
    db: str | None = None
    of_host: str | None = None
    of_port: int | None = None
    api_host: str | None = None
    api_port: int | None = None
    link_scale: float | None = None
    log_level: str | None = None
    #: ``text`` (default) or ``json`` (``controller.logfmt.FORMATS``)
    log_format: str | None = None
    lldp_interval: float | None = None
    #: True: start even if the database was written for another topology (``--allow-topology-change``)
    allow_topology_change: bool | None = None
    #: OpenFlow over TLS: private key, certificate, CA of the switches' certificates (all or none)
    of_key: str | None = None
    of_cert: str | None = None
    of_ca: str | None = None
    #: True: plain TCP asked for explicitly (``--of-plain``)
    of_plain: bool | None = None
    #: False: a switch's certificate need not name its dpid (``--of-any-cert-dpid``)
    require_cert_dpid: bool | None = None
    #: HTTPS for the REST API: certificate and private key (both or none)
    api_cert: str | None = None
    api_key: str | None = None
    #: a folder made by ``dnctl pki init``: TLS for OpenFlow and HTTPS from its files
    pki: str | None = None
    #: ``etcd://HOST:PORT[,HOST:PORT...]``: a cluster member on etcd instead of the SQLite file
    store: str | None = None
    #: the REST URL other members and clients reach this one at (default: the API's own URL)
    advertise_url: str | None = None
    #: the leader's lease, s (etcd's leases: at least 2)
    lease_ttl: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Resolved:
    """Options after merging the config file; what the process actually uses."""

    config: ControllerConfig
    topology: Topology
    plan: HostPlan
    of_host: str
    of_port: int
    api_host: str
    api_port: int
    link_scale: float
    lldp_interval: float
    barrier_timeout: float
    reserved_queue: int | None
    log_level: str
    log_format: str = "text"
    #: (key, cert, ca) files of the OpenFlow TLS listener; None: plain TCP
    of_tls: tuple[str, str, str] | None = None
    #: plain TCP was asked for explicitly
    of_plain: bool = False
    require_cert_dpid: bool = True
    #: (cert, key) files of the HTTPS listener; None: plain HTTP
    api_tls: tuple[str, str] | None = None
    #: etcd endpoints of a cluster (``--store etcd://``); None: the SQLite file of ``config.db_path``
    etcd: list[str] | None = None
    advertise_url: str | None = None
    lease_ttl: int = 2

    @property
    def api_url(self) -> str:
        """Where the REST API answers (``https://`` when it serves TLS)."""
        host = f"[{self.api_host}]" if ":" in self.api_host else self.api_host
        return f"{'https' if self.api_tls else 'http'}://{host}:{self.api_port}"


#: the files ``--pki DIR`` stands for (``dnctl pki init`` writes them)
PKI_FILES = {"of_key": "controller.key", "of_cert": "controller.crt", "of_ca": "ca.crt",
             "api_cert": "controller.crt", "api_key": "controller.key"}


def _num(section: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    v = section.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not isinstance(v, int)):
        raise LaunchError(f"config: openflow.{key} must be {'an integer' if kind is int else 'a number'}")
    return kind(v)


def resolve(opts: LaunchOptions) -> Resolved:
    """Merge command line over config file over defaults and load topology and host plan.

    Raises LaunchError (one line) on any bad input.
    """
    try:
        cfg = load_config(opts.config)
    except ConfigError as e:
        raise LaunchError(str(e)) from None
    of_cfg = dict(cfg.openflow or {})
    unknown = sorted(set(of_cfg) - OPENFLOW_KEYS)
    if unknown:
        raise LaunchError(f"config: unknown key openflow.{unknown[0]} (known: {', '.join(sorted(OPENFLOW_KEYS))})")
    if opts.db is not None:
        cfg.db_path = opts.db
    if opts.api_host is not None:
        cfg.listen_host = opts.api_host
    if opts.api_port is not None:
        cfg.listen_port = opts.api_port
    if opts.log_level is not None:
        cfg.log_level = opts.log_level
    if opts.hosts is not None:
        cfg.hosts = opts.hosts
    if opts.allow_topology_change is not None:
        cfg.allow_topology_change = bool(opts.allow_topology_change)
    _check_db_folder(cfg.db_path)
    topo_name = opts.topology or cfg.topology
    if not topo_name:
        raise LaunchError("no topology: give --topology NAME_OR_FILE (or 'topology' in the config file)")

    of_port = opts.of_port if opts.of_port is not None else _num(of_cfg, "of_port", int, 6653)
    of_host = opts.of_host or of_cfg.get("of_host") or "0.0.0.0"
    link_scale = opts.link_scale if opts.link_scale is not None else _num(of_cfg, "link_scale", float, 1.0)
    lldp = opts.lldp_interval if opts.lldp_interval is not None else _num(of_cfg, "lldp_interval", float, 2.0)
    barrier = _num(of_cfg, "barrier_timeout", float, 5.0)
    queue = _num(of_cfg, "reserved_queue", int, None)
    for name, port in (("OpenFlow port", of_port), ("API port", cfg.listen_port)):
        if not 0 < port < 65536:
            raise LaunchError(f"{name} {port} is not a TCP port number (1-65535)")
    if of_port == cfg.listen_port:
        raise LaunchError(f"OpenFlow and API ports are both {of_port}")
    if not 0 < link_scale <= 1000:
        raise LaunchError(f"link scale {link_scale} must be in (0, 1000]")
    if not 0.1 <= lldp <= 3600:
        raise LaunchError(f"LLDP interval {lldp} s must be between 0.1 and 3600")
    level = str(cfg.log_level).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise LaunchError(f"log level {cfg.log_level!r}: use debug, info, warning or error")
    log_format = opts.log_format or "text"
    if log_format not in logfmt.FORMATS:
        raise LaunchError(f"log format {log_format!r}: use {' or '.join(logfmt.FORMATS)}")

    opts = _with_pki(opts)
    of_tls, of_plain, require_cert_dpid = _openflow_tls(opts, of_cfg, opts.config)
    api_tls = _api_tls(opts, cfg, opts.config)
    if of_tls is not None:
        _check_key_pair(of_tls[1], of_tls[0], "--of-cert/--of-key")
        _check_ca(of_tls[2], "--of-ca")
    if api_tls is not None:
        _check_key_pair(api_tls[0], api_tls[1], "--api-cert/--api-key")

    try:
        topology = load_topology(topo_name)
    except TopologyError as e:
        raise LaunchError(str(e)) from None
    plan = HostPlan(topology)
    if cfg.hosts:
        try:
            data = json.loads(Path(cfg.hosts).read_text())
        except OSError as e:
            raise LaunchError(f"{cfg.hosts}: cannot read host plan: {e.strerror or e}") from None
        except json.JSONDecodeError as e:
            raise LaunchError(f"{cfg.hosts}: not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise LaunchError(f"{cfg.hosts}: a host plan is a JSON object with 'hosts'")
        if data.get("topology") not in (None, topology.name):
            raise LaunchError(f"{cfg.hosts}: host plan is for topology {data.get('topology')!r}, not {topology.name!r}")
        try:
            plan = HostPlan.from_dict(topology, data)
        except (TopologyError, KeyError, TypeError, ValueError) as e:
            raise LaunchError(f"{cfg.hosts}: bad host plan: {e}") from None
    etcd = None
    if opts.store is not None:
        if opts.db is not None:
            raise LaunchError("--store and --db: give one (--store etcd://... keeps the state in etcd)")
        try:
            etcd = parse_etcd_url(opts.store)
        except ValueError as e:
            raise LaunchError(f"--store: {e}") from None
    elif opts.advertise_url is not None or opts.lease_ttl is not None:
        raise LaunchError("--advertise-url and --lease-ttl belong to a cluster: give --store etcd://HOST:PORT")
    lease_ttl = opts.lease_ttl if opts.lease_ttl is not None else 2
    if not 2 <= lease_ttl <= 60:
        raise LaunchError(f"--lease-ttl {lease_ttl}: between 2 and 60 s (etcd's leases last at least about 2 s)")
    if opts.advertise_url is not None:
        parts = urlsplit(opts.advertise_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise LaunchError(f"--advertise-url {opts.advertise_url}: an http:// or https:// URL")
    if etcd is None:
        check_database_topology(cfg.db_path, topology, allow=cfg.allow_topology_change)
    if of_tls is None and not of_plain:
        raise LaunchError("OpenFlow needs TLS: give --pki DIR (`dnctl pki init DIR --topology T` makes one) or "
                          "--of-key, --of-cert and --of-ca; --of-plain runs plain TCP (an emulation on this "
                          "host only)")
    return Resolved(cfg, topology, plan, of_host, of_port, cfg.listen_host, cfg.listen_port, link_scale, lldp,
                    barrier, queue, level, log_format, of_tls, of_plain, require_cert_dpid, api_tls, etcd,
                    opts.advertise_url.rstrip("/") if opts.advertise_url else None, lease_ttl)


def _with_pki(opts: LaunchOptions) -> LaunchOptions:
    """``opts`` with the files of ``--pki DIR`` where no flag names another; the folder must hold them."""
    if opts.pki is None:
        return opts
    if opts.of_plain:
        raise LaunchError("--pki and --of-plain together: choose one")
    folder = Path(opts.pki).expanduser()
    if not folder.is_dir():
        raise LaunchError(f"--pki {opts.pki}: not a folder (make one with `dnctl pki init {opts.pki} --topology T`)")
    missing = sorted({name for name in PKI_FILES.values() if not (folder / name).is_file()})
    if missing:
        raise LaunchError(f"--pki {opts.pki}: missing {', '.join(missing)} (`dnctl pki init` writes them)")
    return dataclasses.replace(opts, **{k: str(folder / name) for k, name in PKI_FILES.items()
                                        if getattr(opts, k) is None})


def _check_key_pair(cert: str, key: str, flags: str) -> None:
    """The certificate and private key must load together (as the TLS listener will load them):
    found here, the mistake is one line at start, not a failed listener thread later. The
    message names the files, never what is in them."""
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as e:
        why = getattr(e, "reason", None) or getattr(e, "strerror", None) or ""
        if not why or "PEM lib" in str(why):
            why = "not a PEM certificate and its private key"
        else:
            why = str(why).lower().replace("_", " ")
        raise LaunchError(f"{flags} {cert} {key}: the certificate and key do not load together ({why})") from None


def _check_ca(ca: str, flag: str) -> None:
    """The CA file must hold at least one PEM certificate."""
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
    except (ssl.SSLError, OSError) as e:
        why = getattr(e, "reason", None) or getattr(e, "strerror", None) or "no PEM certificate"
        raise LaunchError(f"{flag} {ca}: not a CA certificate ({str(why).lower().replace('_', ' ')})") from None


def _api_tls(opts: LaunchOptions, cfg: ControllerConfig, config_path: str | None) -> tuple[str, str] | None:
    """(cert, key) of the HTTPS listener, or None: command line over the config; both or none, readable."""
    base = Path(config_path).parent if config_path else Path(".")
    files: list[str | None] = []
    for flag, given, configured in (("--api-cert", opts.api_cert, cfg.api_tls_cert),
                                    ("--api-key", opts.api_key, cfg.api_tls_key)):
        value = given if given is not None else (str(base / Path(configured).expanduser()) if configured else None)
        if value is not None:
            try:
                with open(Path(value).expanduser(), "rb"):
                    pass
            except OSError as e:
                raise LaunchError(f"{flag} {value}: cannot read: {e.strerror or e}") from None
            value = str(Path(value).expanduser())
        files.append(value)
    if (files[0] is None) != (files[1] is None):
        raise LaunchError("HTTPS needs both --api-cert and --api-key (api_tls_cert and api_tls_key in the config)")
    return (files[0], files[1]) if files[0] else None   # type: ignore[return-value]


def _openflow_tls(opts: LaunchOptions, of_cfg: dict[str, Any],
                  config_path: str | None) -> tuple[tuple[str, str, str] | None, bool, bool]:
    """(key, cert, ca) or None, plain asked, require_cert_dpid: command line over ``[openflow]``.
    Files must be readable; all three or none; not with plain."""
    base = Path(config_path).parent if config_path else Path(".")
    files: list[str | None] = []
    for flag, key, given in (("--of-key", "tls_key", opts.of_key), ("--of-cert", "tls_cert", opts.of_cert),
                             ("--of-ca", "tls_ca", opts.of_ca)):
        value = given
        if value is None and of_cfg.get(key) is not None:
            if not isinstance(of_cfg[key], str):
                raise LaunchError(f"config: openflow.{key} must be a file name")
            value = str(base / Path(of_cfg[key]).expanduser())
        if value is not None:
            path = Path(value).expanduser()
            try:
                with open(path, "rb"):
                    pass
            except OSError as e:
                raise LaunchError(f"{flag} {value}: cannot read: {e.strerror or e}") from None
            value = str(path)
        files.append(value)
    for key in ("plain", "require_cert_dpid"):
        if key in of_cfg and not isinstance(of_cfg[key], bool):
            raise LaunchError(f"config: openflow.{key} must be true or false")
    plain = bool(opts.of_plain) if opts.of_plain is not None else bool(of_cfg.get("plain", False))
    require = (bool(opts.require_cert_dpid) if opts.require_cert_dpid is not None
               else bool(of_cfg.get("require_cert_dpid", True)))
    given = [f for f in files if f is not None]
    if given and len(given) != 3:
        raise LaunchError("OpenFlow TLS needs all of --of-key, --of-cert and --of-ca (or tls_key, tls_cert, "
                          "tls_ca in [openflow]); missing: "
                          + ", ".join(n for n, f in zip(("--of-key", "--of-cert", "--of-ca"), files) if f is None))
    if given and plain:
        raise LaunchError("--of-plain (openflow.plain) and TLS files together: choose one")
    return (tuple(files) if given else None), plain, require   # type: ignore[return-value]


def _check_db_folder(db_path: str) -> None:
    """The database's folder must exist: a mistyped ``--db`` is an error, never a new folder."""
    if db_path == ":memory:":
        return
    folder = Path(db_path).expanduser().resolve().parent
    if not folder.is_dir():
        raise LaunchError(f"--db {db_path}: folder {folder} does not exist (create it first)")


def check_database_topology(db_path: str, topology: Topology, *, allow: bool) -> None:
    """Refuse (LaunchError, one line naming both) a database whose reservations were placed on
    another topology (name or ``controller.store.topology_digest``), unless ``allow``.

    Creates nothing: a missing database file is a fresh start. A database without reservations,
    or that never recorded its topology (written before detnet did), is accepted; the service
    records the topology at start. Problems opening the file are left to the service's start.
    """
    if db_path == ":memory:" or not Path(db_path).expanduser().is_file():
        return
    try:
        store = Store(Path(db_path).expanduser())
    except StoreError:
        return
    try:
        before, count = store.topology(), store.reservation_count()
    finally:
        store.close()
    now = TopologyIdentity.of(topology)
    if before is None or before == now or count == 0 or allow:
        return      # allowed: the service logs and audits the change at start
    raise LaunchError(f"{db_path}: its {count} reservation{'s' if count != 1 else ''} were placed on topology "
                      f"{before.describe()}, not "
                      f"{now.describe()}; start with that topology, another --db, or --allow-topology-change "
                      "(allow_topology_change = true in the config) to list those that no longer fit as unrestored")


def setup_logging(level: str, fmt: str = "text") -> None:
    """One format (``text`` or ``json``) for every logger; os-ken's own chatter only at debug level."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(logfmt.handler(fmt))
    logging.captureWarnings(True)       # Python's warnings as records too: every stderr line in one format
    root.setLevel(level)
    quiet = logging.DEBUG if level == "DEBUG" else logging.WARNING
    for name in ("os_ken", "uvicorn.access", "httpx"):
        logging.getLogger(name).setLevel(quiet if name != "uvicorn.access" else max(quiet, logging.INFO))


def file_announce(db_path: str) -> Any:
    """How ``--log-format json`` shows a generated admin token: never on stderr (a log collector
    would keep it) but in ``DB.admin-token``, mode 0600, created anew (a temporary file for an
    in-memory database); the log says where."""
    def announce(token: str) -> None:
        if db_path == ":memory:":
            fd, name = tempfile.mkstemp(prefix="detnet-admin-token-")
        else:
            name = str(Path(db_path).expanduser()) + ".admin-token"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        LOG.warning("generated admin token written to %s (mode 0600; set DNCTL_ADMIN_TOKEN to choose your own)",
                    name, extra={"fields": {"admin_token_file": name}})
    return announce


def _check_port_free(host: str, port: int, what: str) -> None:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
    except OSError as e:
        raise LaunchError(f"cannot listen for {what} on {host}:{port}: {e.strerror or e}", 1) from None
    finally:
        s.close()


def queue_support() -> tuple[bool, str]:
    """Whether OVS queues (kernel datapath + tc htb) exist here, and why not."""
    if not Path("/sys/module/openvswitch").exists():
        return False, "no openvswitch kernel module (userspace datapath: meters only)"
    if not qdisc_works("htb"):
        return False, "tc htb does not work"
    return True, "kernel datapath and tc htb"


class Controller:
    """The running process parts; ``stop()`` is idempotent and bounded."""

    def __init__(self, r: Resolved):
        self.r = r
        self.service: ControllerService | None = None
        self.server: uvicorn.Server | None = None
        self.api_thread: threading.Thread | None = None
        self.shim: Any = None
        #: this controller's place in a cluster on etcd (``--store etcd://``); None: alone
        self.member: ClusterMember | None = None
        self._stopped = threading.Event()

    def _handshake_failed(self, address: Any, detail: str) -> None:
        """A TLS handshake on the OpenFlow port failed (``controller.oftls``): a security event."""
        where = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
        LOG.warning("security: refused OpenFlow connection from %s: TLS handshake failed (%s)", where, detail,
                    extra={"fields": {"event": "switch_refused", "address": where, "reason": "tls_handshake"}})
        if self.service is not None:
            try:
                self.service.switch_refused(None, where, "tls_handshake", detail)
            except Exception:  # noqa: BLE001 - the listener must go on
                LOG.exception("recording a refused TLS handshake failed")

    def start(self) -> None:
        r = self.r
        _check_port_free(r.of_host, r.of_port, "OpenFlow")
        _check_port_free(r.api_host, r.api_port, "the REST API")
        try:
            kw = {"announce": file_announce(r.config.db_path)} if r.log_format == "json" else {}
            if r.etcd is not None:
                self.service = self._cluster_service(kw)
            else:
                self.service = ControllerService.from_config(r.config, r.topology, r.plan, **kw)
        except LaunchError:
            raise
        except Exception as e:  # noqa: BLE001 - store/db problems are one line
            raise LaunchError(f"cannot start the controller service: {e}", 1) from None

        # os-ken: app_manager before os_ken.controller.* (circular import otherwise)
        from os_ken.base import app_manager
        from os_ken import cfg as oscfg
        import os_ken.controller.controller  # noqa: F401 - registers the ofp_* options
        from controller import ofshim
        oscfg.CONF.set_override("ofp_tcp_listen_port", r.of_port)
        oscfg.CONF.set_override("ofp_listen_host", r.of_host)
        if r.of_tls is not None:
            key, cert, ca = r.of_tls
            # os-ken serves TLS on its "ssl" port when given a key and a certificate, and requires
            # a client certificate signed by ca_certs (os_ken.controller.controller.server_loop)
            oscfg.CONF.set_override("ofp_ssl_listen_port", r.of_port)
            oscfg.CONF.set_override("ctl_privkey", key)
            oscfg.CONF.set_override("ctl_cert", cert)
            oscfg.CONF.set_override("ca_certs", ca)
            from controller import oftls
            oftls.install(self._handshake_failed)
        else:
            LOG.warning("OpenFlow over plain TCP on %s:%d (--of-plain): any host that reaches this port can "
                        "claim to be a switch and read its flow tables; use TLS (--pki) beyond an emulation",
                        r.of_host, r.of_port)
        qok, qwhy = queue_support()
        queue_id = r.reserved_queue if qok else None
        if r.reserved_queue is not None and not qok:
            LOG.warning("openflow.reserved_queue ignored: no queues here (%s)", qwhy)
        ha_kw: dict[str, Any] = {"ha": True, "on_deposed": self._deposed} if self.member is not None else {}
        ofshim.configure(self.service, rate_scale=r.link_scale, lldp_interval=r.lldp_interval,
                         barrier_timeout=r.barrier_timeout, queue_id=queue_id, tls=r.of_tls is not None,
                         require_cert_dpid=r.require_cert_dpid, **ha_kw)
        mgr = app_manager.AppManager.get_instance()
        mgr.load_apps(["controller.ofshim"])
        contexts = mgr.create_contexts()
        mgr.instantiate_apps(**contexts)
        self.shim = ofshim.instance()

        cfg = r.config
        app = create_app(self.service, rate_limit_per_s=cfg.rate_limit_per_s, rate_limit_burst=cfg.rate_limit_burst,
                         max_body_bytes=cfg.max_body_bytes)
        tls_kw: dict[str, Any] = {}
        if self.member is not None:
            app.add_middleware(LeaderWritesMiddleware, member=self.member)
        if r.api_tls is not None:
            app.add_middleware(HstsMiddleware)
            tls_kw = {"ssl_certfile": r.api_tls[0], "ssl_keyfile": r.api_tls[1]}
        LOG.debug("REST routes prepared in %.0f ms", 1000 * warm_routes(app))
        ucfg = server_config(app, host=r.api_host, port=r.api_port, log_config=None,
                             log_level=r.log_level.lower(), lifespan="off", timeout_graceful_shutdown=1, **tls_kw)
        self.server = uvicorn.Server(ucfg)
        self.api_thread = threading.Thread(target=self.server.run, name="detnet-rest", daemon=True)
        self.api_thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.api_thread.is_alive() or time.monotonic() > deadline:
                raise LaunchError(f"the REST API did not start on {r.api_host}:{r.api_port}", 1)
            time.sleep(0.02)
        LOG.info("controller up: topology %s (%d switches, %d links), %d hosts of %d tenants; OpenFlow 1.3 %s on "
                 "%s:%d; REST on %s; link scale %g; queues: %s", r.topology.name, len(r.topology.nodes),
                 len(r.topology.links()), len(r.plan.hosts), len(r.plan.tenants()),
                 "over TLS (client certificates required)" if r.of_tls else "over plain TCP", r.of_host, r.of_port,
                 r.api_url, r.link_scale, "yes" if qok else f"no ({qwhy})")
        if self.member is not None:
            LOG.info("cluster member %s on etcd %s (lease %d s): following until elected",
                     self.member.identity, ",".join(r.etcd or []), r.lease_ttl)
            self.member.start()

    def _cluster_service(self, kw: dict[str, Any]) -> ControllerService:
        """The service of a cluster member: the state in etcd, loaded read-only until it leads."""
        r = self.r
        try:
            store = EtcdStore(r.etcd or [])
        except StoreError as e:
            raise LaunchError(f"--store etcd://{','.join(r.etcd or [])}: {e}", 1) from None
        cfg = r.config
        service = ControllerService(r.topology, store=store, host_plan=r.plan, admin_token=cfg.admin_token,
                                    scheduler_options=cfg.scheduler_options(), max_tenants=cfg.max_tenants,
                                    writable=False, **kw)
        self.member = ClusterMember(service, store, r.advertise_url or r.api_url, ttl=r.lease_ttl,
                                    on_role=self._on_role)
        service.cluster_status = self.member.status
        return service

    def _on_role(self, role: str, term: int) -> None:
        """The cluster member's role changed: the shim claims MASTER (generation id ``term``) and
        resynchronises, or stops writing and becomes SLAVE."""
        if self.shim is not None:
            self.shim.set_role(role == "leader", term)

    def _deposed(self, reason: str) -> None:
        """A switch refused this controller's MASTER claim or writes: a newer leader exists, so
        this member steps down (it may not have noticed in etcd yet)."""
        if self.member is not None:
            self.member.step_down(f"a switch knows a newer leader: {reason}")

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        t0 = time.monotonic()
        if self.server is not None:
            self.server.should_exit = True
        if self.member is not None:
            try:
                self.member.stop()      # a leader resigns: the next member need not wait for the lease
            except Exception:  # noqa: BLE001
                LOG.exception("leaving the cluster failed")
        if self.shim is not None:
            self.shim.close()
        if self.api_thread is not None:
            self.api_thread.join(1.0)
        if self.service is not None:
            try:
                self.service.close()
            except Exception:  # noqa: BLE001
                LOG.exception("closing the service failed")
        LOG.info("controller stopped in %.0f ms", 1000 * (time.monotonic() - t0))


def run(opts: LaunchOptions) -> int:
    """Start everything, block until SIGINT/SIGTERM, stop, exit the process (never returns normally
    once started: os-ken's listener thread cannot be joined). Returns only on start-up failure."""
    stop = threading.Event()
    got: list[int] = []

    def _on_signal(signum: int, _frame: Any) -> None:
        got.append(signum)
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    r = resolve(opts)
    setup_logging(r.log_level, r.log_format)
    ctl = Controller(r)
    try:
        try:
            ctl.start()
        except LaunchError:
            ctl.stop()
            raise
        except Exception as e:  # noqa: BLE001
            LOG.exception("start-up failed")
            ctl.stop()
            raise LaunchError(f"start-up failed: {type(e).__name__}: {e}", 1) from None
    except LaunchError as e:
        if ctl.shim is None:
            raise
        # os-ken's threads are running and cannot be joined: returning would leave a process that
        # neither exits nor answers SIGTERM (its handler only sets ``stop``); say it and go
        sys.stderr.write(f"dnctl: {e}\n")
        logging.shutdown()
        sys.stderr.flush()
        os._exit(e.code)
    while not stop.wait(0.2):
        pass
    LOG.info("%s received: stopping", signal.Signals(got[0]).name if got else "stop")
    code = 0
    try:
        ctl.stop()
    except Exception:  # noqa: BLE001
        LOG.exception("stop failed")
        code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
