"""Start and stop a Mininet emulation of a Topology + HostPlan, as a context manager.

Why: every emulation user (tests, ``dnctl emulate``, ``dnctl demo``, the controller demos) needs
the same things done the same way: take the machine-wide lock, make sure Open vSwitch runs, pick
the datapath and link features this machine has, build the network from the one Topology, and
ALWAYS take it down again, leaving nothing behind, even on exceptions and Ctrl-C::

    with Emulation(topology, plan) as emu:          # controller-less static forwarding
        print(emu.ping("Harbin", "Haikou"))

Controller-less mode (``controller=None``, the default) installs the static forwarding of
``controller.dataplane.static`` (``topologies.mininet_topo.install_static``: one ``ovs-ofctl
add-flows`` per switch, all switches concurrently, and static ARP in the hosts), so the meshed
backbone works without a controller, keeps tenants apart and never floods a broadcast.

Mininet is imported only when an emulation is built (``topologies.mininet_topo`` imports it at
its top), so importing this module stays cheap for tools that only read its helpers.

Tear-down only removes what this emulation made (its switches ``s1..sN``, their interfaces, its
host shells); it never runs ``mn -c``. The lock (``/tmp/detnet-emu.lock``) is re-entrant within
a process and shared with a parent ``flock /tmp/detnet-emu.lock ...``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from topologies.emulated import DEFAULT_DELAY_SCALE, DEFAULT_LINK_SCALE, host_intf_name, switch_intf_name, tc_batch
from topologies.hosts import Host, HostPlan
from topologies.model import Topology
from tools.emulation import ovs, vethorder
from tools.emulation.lifecycle import Managed, sigint_deferred
from tools.emulation.progress import progress

LOCK_PATH = "/tmp/detnet-emu.lock"

log = progress("emulate")


# ----- the machine-wide lock ---------------------------------------------------------------

_lock_guard = threading.Lock()
_lock_depth = 0
_lock_fd: tuple[int, bool] | None = None   # (fd, whether we opened it)


def _other_lock_fds(path: str, exclude: int) -> list[int]:
    """Other fds of this process that refer to ``path`` (a caller's, or ``flock path cmd``'s)."""
    fds = []
    with contextlib.suppress(OSError):
        target = os.path.realpath(path)
        for fd_name in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                if int(fd_name) != exclude and os.path.realpath(f"/proc/self/fd/{fd_name}") == target:
                    fds.append(int(fd_name))
    return fds


@contextlib.contextmanager
def emulation_lock(path: str = LOCK_PATH, quiet: bool = False) -> Iterator[None]:
    """Hold the machine-wide emulation lock (``fcntl.flock`` on ``path``) for the ``with`` body.

    Re-entrant within the process (an Emulation inside a test that already holds it does not
    deadlock). If a parent ran us under ``flock path ...``, the inherited descriptor already holds
    the lock and is used. Prints one line when it has to wait for another emulation.
    """
    global _lock_depth, _lock_fd
    with _lock_guard:
        if _lock_depth > 0:
            _lock_depth += 1
            acquired_here = False
        else:
            acquired_here = True
    if acquired_here:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        own_fd = True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            # Held. By our caller (a test's own flock, or a parent's `flock path cmd` whose fd we
            # inherited)? Then that descriptor's flock succeeds again and we share its lock.
            shared = inherited = None
            for inherited in _other_lock_fds(path, exclude=fd):
                try:
                    fcntl.flock(inherited, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    shared = True
                    break
                except OSError:
                    pass
            if shared:
                os.close(fd)
                fd, own_fd = inherited, False
            else:
                if not quiet:
                    log(f"waiting for {path} (another emulation is running)...")
                fcntl.flock(fd, fcntl.LOCK_EX)
        with _lock_guard:
            _lock_depth, _lock_fd = 1, (fd, own_fd)
    try:
        yield
    finally:
        with _lock_guard:
            _lock_depth -= 1
            held, release = _lock_fd, _lock_depth == 0
            if release:
                _lock_fd = None
        if release and held is not None and held[1]:
            fcntl.flock(held[0], fcntl.LOCK_UN)
            os.close(held[0])


# ----- switch state queries ---------------------------------------------------------------

def list_bridges() -> list[str]:
    """Bridges Open vSwitch knows (``ovs-vsctl list-br``)."""
    res = subprocess.run(["ovs-vsctl", "--timeout=5", "list-br"], capture_output=True, text=True, timeout=10)
    return res.stdout.split() if res.returncode == 0 else []


def dump_flows(switch: str) -> list[str]:
    """The entries of one switch as ``ovs-ofctl -O OpenFlow13 dump-flows --no-stats`` prints them."""
    res = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows", switch],
                         capture_output=True, text=True, timeout=20)
    if res.returncode != 0:
        raise RuntimeError(f"dump-flows {switch}: {res.stderr.strip()}")
    return [l.strip() for l in res.stdout.splitlines() if "actions=" in l]


# ----- the emulation ------------------------------------------------------------------------------

@dataclass
class PingResult:
    src: str
    dst: str
    sent: int
    received: int
    rtt_avg_ms: float | None
    rtt_min_ms: float | None = None
    rtt_max_ms: float | None = None
    # where counted by sequence number (``parse_echo``): the probes without a reply, and the round
    # trip of each answered probe in the order sent
    missing: list[int] | None = None
    rtts_ms: list[float] | None = None

    @property
    def ok(self) -> bool:
        return self.sent > 0 and self.received == self.sent

    @property
    def loss_pct(self) -> float:
        return 100.0 * (self.sent - self.received) / self.sent if self.sent else 100.0

    def __str__(self) -> str:
        rtt = f", rtt {self.rtt_avg_ms:.3f} ms" if self.rtt_avg_ms is not None else ""
        return f"{self.src} -> {self.dst}: {self.received}/{self.sent} received, {self.loss_pct:.0f}% loss{rtt}"


#: the ICMP echo that waits for every probe's reply (stdlib only, run by path in a host's shell)
ECHO = Path(__file__).resolve().with_name("echo.py")


def echo_command(ip: str, count: int, interval_s: float, wait_s: float) -> str:
    """The shell command of ``echo.py``: ``count`` ICMP echo requests to ``ip``, ``interval_s`` apart,
    each answered if its reply comes within ``wait_s`` of the last one; read with ``parse_echo``."""
    return f"{shlex.quote(sys.executable)} -S {shlex.quote(str(ECHO))} {ip} {count} {interval_s:g} {wait_s:g}"


def parse_echo(src: str, dst: str, out: str) -> PingResult:
    """The result of an ``echo_command`` from its output (its last JSON line); no such line (the host
    could not run it) counts as nothing sent."""
    line = next((x for x in reversed(out.strip().splitlines()) if x.startswith("{")), None)
    if line is None:
        return PingResult(src, dst, 0, 0, None)
    r = json.loads(line)
    by_seq = {int(k): float(v) for k, v in r["rtt_ms"].items()}
    v = [by_seq[k] for k in sorted(by_seq)]
    return PingResult(src, dst, r["sent"], len(v), sum(v) / len(v) if v else None, min(v) if v else None,
                      max(v) if v else None, missing=[k for k in range(1, r["sent"] + 1) if k not in by_seq],
                      rtts_ms=v)


def parse_ping(src: str, dst: str, out: str) -> PingResult:
    """Parse iputils ping's summary lines."""
    m = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", out)
    sent, recv = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    r = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)", out)
    lo, avg, hi = (float(x) for x in r.groups()) if r else (None, None, None)
    return PingResult(src, dst, sent, recv, avg, lo, hi)


def parse_controller(controller: Any) -> tuple[str, int] | None:
    """``None``, ``('ip', port)`` or ``'ip:port'`` -> ``(ip, port)`` or None."""
    if controller is None:
        return None
    if isinstance(controller, str):
        host, sep, port = controller.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"controller {controller!r}: expected HOST:PORT")
        return host, int(port)
    host, port = controller
    return str(host), int(port)


@dataclass
class Timings:
    ovs_s: float = 0.0      # ensure OVS + probe
    start_s: float = 0.0    # Mininet build + start
    static_s: float = 0.0   # static flows + host setup
    stop_s: float = 0.0     # tear-down incl. leftover check

    @property
    def up_s(self) -> float:
        return self.ovs_s + self.start_s + self.static_s

    def to_dict(self) -> dict[str, float]:
        return {"ovs_s": round(self.ovs_s, 3), "start_s": round(self.start_s, 3),
                "static_s": round(self.static_s, 3), "up_s": round(self.up_s, 3),
                "stop_s": round(self.stop_s, 3)}


#: the interface group (``ip link ... group``) an emulation's root-namespace veths join to be deleted
#: together at tear-down; an unusual number, and only ours join it, under the emulation lock
TEARDOWN_GROUP = 0xDE7


def del_link_group(names: list[str]) -> None:
    """Delete the interfaces ``names`` (of the root namespace) in one kernel batch: they join
    ``TEARDOWN_GROUP`` and ``ip link del group`` removes the group at once. The kernel then waits
    for one RCU grace period for them all, where ``ip link del`` one by one waits for one each:
    300 veth pairs took 0.1 s against 5.9 s here. A veth's peer goes with it."""
    if not names:
        return
    subprocess.run(["ip", "-force", "-batch", "-"], capture_output=True, text=True, timeout=60,
                   input="".join(f"link set dev {n} group {TEARDOWN_GROUP}\n" for n in names))
    subprocess.run(["ip", "link", "del", "group", str(TEARDOWN_GROUP)], capture_output=True, timeout=60)


class EmulationError(RuntimeError):
    """The emulation could not start; one line naming what is missing or failed."""


class Emulation(Managed):
    """A running Mininet emulation of ``topology`` with the hosts of ``plan`` (context manager).

    ``controller``: None (controller-less static forwarding) or ``(ip, port)`` / ``'ip:port'`` of an
    OpenFlow 1.3 controller. ``datapath``: None (auto: kernel if the openvswitch module is usable,
    else user), 'kernel' or 'user'. ``link_scale``: bandwidth factor (1/1000: 100 Gb/s -> 100 Mb/s;
    None: no shaping). ``delay_scale``: propagation factor, applied only where netem works.
    ``static_routes``: None (auto: only without a controller), True or False. ``tls``: None (plain
    ``tcp:`` controller targets) or the switches' ``(key, cert, ca)`` files: Open vSwitch is given
    them with ``ovs-vsctl set-ssl`` (one key and certificate per ``ovs-vswitchd``: the certificate
    names every switch's dpid, ``tools.emulation.pki``) and dials ``ssl:IP:PORT``; removed again
    (``del-ssl``) at stop. ``more_controllers``: the other members of a cluster of controllers
    (``controller.ha``); every switch connects to all of them and the controllers settle the
    OpenFlow roles among themselves.
    """

    def __init__(self, topology: Topology, plan: HostPlan, *, controller: Any = None, datapath: str | None = None,
                 link_scale: float | None = None, delay_scale: float | None = None,
                 static_routes: bool | None = None, lock: bool = True, verbose: bool = True,
                 wait_connected_s: float = 10.0, capabilities: ovs.Capabilities | None = None,
                 tls: tuple[Any, Any, Any] | None = None, tx_queues: int = 1, more_controllers: Any = ()):
        if plan.topology is not topology:
            raise ValueError(f"host plan is for topology {plan.topology.name!r}, not {topology.name!r}")
        if datapath not in (None, "kernel", "user"):
            raise ValueError(f"datapath {datapath!r}: expected 'kernel' or 'user'")
        self.topology, self.plan = topology, plan
        self.controller = parse_controller(controller)
        #: the other members of a cluster of controllers: every switch connects to each of them too
        self.more_controllers = [parse_controller(c) for c in more_controllers]
        if self.more_controllers and self.controller is None:
            raise ValueError("more_controllers without a controller")
        self.requested_datapath = datapath
        self.link_scale = DEFAULT_LINK_SCALE if link_scale is None else link_scale
        self.delay_scale = DEFAULT_DELAY_SCALE if delay_scale is None else delay_scale
        self.static_routes = (self.controller is None) if static_routes is None else bool(static_routes)
        self.use_lock, self.verbose, self.wait_connected_s = lock, verbose, wait_connected_s
        self.capabilities = capabilities
        self.tls = None if tls is None else tuple(str(f) for f in tls)
        #: TX (and RX) queues of every veth: taprio's gates need one per traffic class (tools.emulation.gates)
        self.tx_queues = max(1, int(tx_queues))
        if self.tls is not None and self.controller is None:
            raise ValueError("tls without a controller: there is no OpenFlow channel to protect")
        self.datapath: str | None = None
        self.shaped = self.delayed = False
        self.net: Any = None
        self.flow_count = 0
        self.veth_order: vethorder.Ordered | None = None    # which veth ends deliver through one ring
        self.timings = Timings()
        self.notes: list[str] = []
        self._lock_cm: contextlib.AbstractContextManager | None = None
        self._host_pids: list[int] = []
        self._up = False
        self._left: dict[str, list] | None = None

    # -- names this emulation owns (derived from the plan, so cleanup works even mid-build) --
    @property
    def switch_names(self) -> list[str]:
        return [self.plan.switch_name(n) for n in self.topology.nodes]

    def root_interfaces(self) -> list[str]:
        """Interfaces this emulation creates in the root namespace (switch ports; bridge taps)."""
        names = [switch_intf_name(self.plan.switch_name(u), p) for (u, _v), p in self.plan.link_ports().items()]
        names += [switch_intf_name(self.plan.switch_name(h.switch), h.port) for h in self.plan.hosts]
        return names + self.switch_names

    # -- lifecycle --
    def _log(self, msg: str) -> None:
        if self.verbose:
            log(msg)

    def start(self) -> None:
        """Lock, ensure OVS, build and start Mininet, install static forwarding when asked."""
        if self.use_lock:
            self._lock_cm = emulation_lock()
            self._lock_cm.__enter__()
        t0 = time.monotonic()
        caps = self.capabilities or ovs.probe()
        self.capabilities = caps
        missing = caps.missing_for_emulation()
        if missing:
            raise EmulationError("cannot emulate on this machine: " + ", ".join(missing))
        try:
            ovs.ensure_ovs_running()
        except ovs.OvsError as e:
            raise EmulationError(str(e)) from None
        self.datapath = self._choose_datapath(caps)
        self.shaped = bool(self.link_scale) and caps.htb
        self.delayed = caps.netem
        if not caps.netem:
            self.notes.append("no tc netem on this machine: links carry no propagation delay")
        if self.link_scale and not caps.htb:
            self.notes.append("no tc htb on this machine: links are not rate-limited")
        self.timings.ovs_s = time.monotonic() - t0
        stale = sorted(set(list_bridges()) & set(self.switch_names))
        if stale:
            self._log(f"removing {len(stale)} stale bridge(s) of an earlier run: {' '.join(stale[:5])}...")
            self._del_bridges(stale)
        stale_intfs = [n for n in self.root_interfaces() if os.path.exists(f"/sys/class/net/{n}")]
        if stale_intfs:   # a killed earlier run (we hold the lock: no live emulation of ours owns them)
            self._log(f"removing {len(stale_intfs)} stale interface(s) of an earlier run: "
                      f"{' '.join(stale_intfs[:5])}...")
            subprocess.run(["ip", "-force", "-batch", "-"], input="".join(f"link del {n}\n" for n in stale_intfs),
                           text=True, capture_output=True, timeout=60)

        t1 = time.monotonic()
        self._build()
        self.timings.start_s = time.monotonic() - t1
        self._log(f"started {len(self.switch_names)} switches, {len(self.topology.links())} links, "
                  f"{len(self.plan.hosts)} hosts in {self.timings.start_s:.1f} s")
        for note in self.notes:
            self._log(note)
        if self.static_routes:
            t2 = time.monotonic()
            from topologies.mininet_topo import install_static   # imports Mininet
            self.flow_count = install_static(self.net, self.plan, tx_offload_off=self.datapath == "user")
            self.timings.static_s = time.monotonic() - t2
            self._log(f"installed {self.flow_count} static entries on {len(self.switch_names)} switches "
                      f"and static ARP on {len(self.plan.hosts)} hosts in {self.timings.static_s:.1f} s")
        elif self.datapath == "user":
            configure_hosts_offload_only(self.net, self.plan)
        if self.controller and self.wait_connected_s > 0:
            if not self.net.waitConnected(timeout=self.wait_connected_s):
                self._log(f"warning: not all switches connected to {self.controller[0]}:{self.controller[1]} "
                          f"within {self.wait_connected_s:.0f} s")
        self._up = True
        self._log(f"up in {self.timings.up_s:.1f} s")

    def _choose_datapath(self, caps: ovs.Capabilities) -> str:
        want = self.requested_datapath or caps.datapath
        if want == "kernel" and not ovs.load_kernel_datapath():
            if self.requested_datapath == "kernel":
                raise EmulationError("kernel datapath requested but the openvswitch module cannot be loaded")
            self.notes.append("openvswitch kernel module would not load: using the userspace datapath")
            want = "user"
        if want == "user" and not caps.kernel_datapath:
            self.notes.append("no openvswitch kernel module: userspace datapath")
        return want

    def _build(self) -> None:
        from functools import partial

        from mininet.link import Link
        from mininet.log import setLogLevel
        from mininet.net import Mininet
        from mininet.node import OVSSwitch, RemoteController

        from topologies.mininet_topo import BackboneTopo   # imports Mininet
        setLogLevel("warning")
        dp = self.datapath or "user"
        self._log(f"building {self.topology.name}: {len(self.switch_names)} switches, "
                  f"{dp} datapath, links {'x%g' % self.link_scale if self.shaped else 'unshaped'}"
                  f"{', delay x%g' % self.delay_scale if self.delayed else ', no delay'}"
                  f", {'controller %s:%d' % self.controller if self.controller else 'no controller'}")
        # Plain links: the shaping is applied after start in one `tc -batch` (see tc_batch).
        topo = BackboneTopo(self.topology, self.plan, link_scale=None, delay=False)
        # batch=True: Mininet starts every switch in one ovs-vsctl call (it asks for batch startup only
        # of a switch class it can see the batchStartup of, which a partial hides)
        switch = partial(OVSSwitch, protocols="OpenFlow13", datapath=dp, failMode="secure", batch=True)
        link = Link if self.tx_queues == 1 else multiqueue_link(Link, self.tx_queues)
        self.net = Mininet(topo=topo, switch=switch, controller=None, link=link, intf=deferred_up_intf(),
                           autoSetMacs=False, autoStaticArp=False, build=False, waitConnected=False)
        if self.controller:
            ip, port = self.controller
            if self.tls is not None:
                res = subprocess.run(["ovs-vsctl", "--timeout=20", "set-ssl", *self.tls], capture_output=True,
                                     text=True, timeout=30)
                if res.returncode != 0:
                    raise EmulationError(f"ovs-vsctl set-ssl failed: {res.stderr.strip()}")
            # Mininet's OVSSwitch makes each target as PROTOCOL:IP:PORT from the Controller object
            for i, (ip, port) in enumerate([(ip, port)] + self.more_controllers):
                self.net.addController(f"c{i}", controller=RemoteController, ip=ip, port=port,
                                       protocol="ssl" if self.tls is not None else "tcp")
        try:
            self.net.build()
        finally:
            self._host_pids = [h.pid for h in self.net.hosts if getattr(h, "pid", None)]
        # the switch ports, which Mininet left down (``deferred_up_intf``), up in one batch; the hosts'
        # ends came up when Mininet gave them their addresses
        ports = self.root_interfaces()[:-len(self.switch_names)]
        res = subprocess.run(["ip", "-batch", "-"], input="".join(f"link set dev {n} up\n" for n in ports),
                             capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            raise EmulationError(f"cannot bring the switch ports up: {res.stderr.strip().splitlines()[-1:]}")
        self.net.start()
        if self.more_controllers:
            # a cluster: a member that restarts must get its switches back within a second (Open
            # vSwitch backs off up to 8 s between reconnection attempts by default)
            uuids = subprocess.run(["ovs-vsctl", "--bare", "--columns=_uuid", "list", "controller"],
                                   capture_output=True, text=True, timeout=30).stdout.split()
            for u in uuids:
                subprocess.run(["ovs-vsctl", "set", "controller", u, "max_backoff=1000"], capture_output=True,
                               timeout=30)
        # IPv6 off on our root-namespace switch ports: else the kernel's own router solicitations,
        # MLD reports and DAD probes on them enter the emulated network as traffic.
        keys = [f"net.ipv6.conf.{n}.disable_ipv6=1" for n in self.root_interfaces()[:-len(self.switch_names)]]
        for i in range(0, len(keys), 500):
            subprocess.run(["sysctl", "-q", "-w", *keys[i:i + 500]], capture_output=True, timeout=60)
        # every veth one FIFO (a flow's frames sent from two CPUs must not leave two backlogs out of order)
        hosts = {h.name: h for h in self.plan.hosts}
        self.veth_order = vethorder.configure(
            self.root_interfaces()[:-len(self.switch_names)],
            [(node.pid, host_intf_name(hosts[node.name])) for node in self.net.hosts if node.name in hosts])
        self._log(self.veth_order.describe())
        if self.veth_order.failed:
            self.notes.append(self.veth_order.describe())
        batch = tc_batch(self.topology, self.plan, link_scale=self.link_scale if self.shaped else None,
                         delay_scale=self.delay_scale, delay=self.delayed)
        if batch:
            res = subprocess.run(["tc", "-batch", "-"], input=batch, capture_output=True, text=True, timeout=120)
            if res.returncode != 0:
                raise EmulationError(f"tc -batch failed: {res.stderr.strip().splitlines()[-1:]}")

    def stop(self) -> None:
        """Tear down (idempotent): net.stop(), then remove any leftover of ours; release the lock.

        Ctrl-C during tear-down is deferred until it is done (then re-raised).
        """
        if self.net is None and self._lock_cm is None:
            return
        with sigint_deferred(lambda: log("still tearing down, please wait...")):
            t0 = time.monotonic()
            try:
                if self.net is not None:
                    self._log("stopping...")
                    # Mininet's RemoteController.stop() does nothing, so net.stop() leaves the c0 node's
                    # shell running: it is terminated below and its pid is swept with the hosts'.
                    controllers = list(self.net.controllers)
                    nodes = list(self.net.hosts) + controllers
                    self._host_pids = sorted(set(self._host_pids) | {n.pid for n in nodes if n.pid})
                    try:
                        self._fast_unwire()
                        self.net.stop()
                    except Exception as e:  # noqa: BLE001 - the leftover sweep below still runs
                        self._log(f"net.stop() failed ({type(e).__name__}: {e}); cleaning up by name")
                    for c in controllers:
                        with contextlib.suppress(Exception):
                            c.terminate()
                    self.net = None
                    if self.tls is not None:
                        subprocess.run(["ovs-vsctl", "--timeout=20", "del-ssl"], capture_output=True, timeout=30)
                    self._sweep()
                    self.timings.stop_s = time.monotonic() - t0
                    self._log(f"stopped in {self.timings.stop_s:.1f} s")
            finally:
                self._up = False
                if self._lock_cm is not None:
                    cm, self._lock_cm = self._lock_cm, None
                    cm.__exit__(None, None, None)

    def _fast_unwire(self) -> None:
        """Before net.stop(): delete our root-namespace veths in one kernel batch (``del_link_group``),
        then our bridges in one ovs-vsctl call, then whatever of ours is left in one ``ip -batch``,
        and let net.stop() skip its per-link ``ip link del`` (about 25 ms each while OVS still holds
        the ports: 3 s for fntf40). net.stop() still stops the switches and the hosts (whose
        namespaces take the host-side veth ends with them)."""
        ports = set(self.root_interfaces()) - set(self.switch_names)      # the bridges' own ports are OVS's
        del_link_group([n for n in ports if os.path.exists(f"/sys/class/net/{n}")])
        self._del_bridges(self.switch_names)
        names = [n for n in self.root_interfaces() if os.path.exists(f"/sys/class/net/{n}")]
        if names:
            subprocess.run(["ip", "-force", "-batch", "-"], input="".join(f"link del {n}\n" for n in names),
                                 capture_output=True, text=True, timeout=60)
            # errors are expected: deleting one end of a veth pair deletes its peer too
        if self.net is not None:
            self.net.links = []

    def _del_bridges(self, names: list[str]) -> None:
        if names:
            cmd = ["ovs-vsctl", "--timeout=20"]
            for n in names:
                cmd += ["--", "--if-exists", "del-br", n]
            subprocess.run(cmd, capture_output=True, timeout=30)

    def leftovers(self) -> dict[str, list]:
        """What of ours still exists: bridges, root-namespace interfaces, host shell pids."""
        bridges = sorted(set(list_bridges()) & set(self.switch_names))
        intfs = [n for n in self.root_interfaces() if os.path.exists(f"/sys/class/net/{n}")]
        pids = [p for p in self._host_pids if _alive(p)]
        return {"bridges": bridges, "interfaces": intfs, "pids": pids}

    def _sweep(self) -> None:
        """Remove what net.stop() left of ours (by name/pid); record what could not be removed."""
        left = self.leftovers()
        if any(left.values()):
            self._log(f"cleaning leftovers: {len(left['bridges'])} bridges, {len(left['interfaces'])} "
                      f"interfaces, {len(left['pids'])} host processes")
            self._del_bridges(left["bridges"])
            for name in left["interfaces"]:
                subprocess.run(["ip", "link", "del", name], capture_output=True, timeout=10)
            for pid in left["pids"]:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
            left = self.leftovers()
            if any(left.values()):
                self._log(f"warning: could not remove {left}")
        self._left = left

    # -- using the running emulation --
    def resolve(self, spec: str, tenant: int | None = None) -> Host:
        """A plan host from a host name (``t1h10``) or a city name (its first host of ``tenant``,
        or of the lowest tenant there)."""
        with contextlib.suppress(KeyError):
            return self.plan.host(spec)
        if not self.topology.has_node(spec):
            raise KeyError(f"{spec!r} is neither a host nor a node of {self.topology.name}")
        hosts = [h for h in self.plan.host_ports(spec) if tenant is None or h.tenant == tenant]
        if not hosts:
            raise KeyError(f"no host{'' if tenant is None else ' of tenant %d' % tenant} at {spec}")
        return min(hosts, key=lambda h: (h.tenant, h.port))

    def node(self, spec: str, tenant: int | None = None) -> Any:
        """The Mininet host object for a host or city name."""
        return self.net.get(self.resolve(spec, tenant).name)

    def ping(self, src: str, dst: str, count: int = 3, interval_s: float = 0.2, timeout_s: float = 2.0,
             tenant: int | None = None) -> PingResult:
        """Ping from host/city ``src`` to host/city ``dst`` (same tenant) and parse the result: ``count``
        probes, each answered if its reply comes within ``timeout_s`` of the last probe (``echo.py``)."""
        s = self.resolve(src, tenant)
        d = self.resolve(dst, s.tenant if tenant is None else tenant)
        out = self.net.get(s.name).cmd(echo_command(d.ip, count, interval_s, timeout_s))
        return parse_echo(src, dst, out)

    def flows(self, node_or_switch: str) -> list[str]:
        """Current entries of a switch (by topology node or switch name)."""
        sw = self.plan.switch_name(node_or_switch) if self.topology.has_node(node_or_switch) else node_or_switch
        return dump_flows(sw)

    def summary(self) -> dict[str, Any]:
        return {"topology": self.topology.name, "switches": len(self.switch_names),
                "links": len(self.topology.links()), "hosts": len(self.plan.hosts),
                "datapath": self.datapath, "link_scale": self.link_scale if self.shaped else None,
                # the factor asked for (1 by default); where netem is missing the links carry no
                # propagation: propagation_emulated false, effective_delay_scale 0
                "delay_scale": self.delay_scale, "propagation_emulated": bool(self.delayed),
                "effective_delay_scale": self.delay_scale if self.delayed else 0.0,
                "controller": f"{self.controller[0]}:{self.controller[1]}" if self.controller else None,
                "openflow": ("tls" if self.tls else "tcp") if self.controller else None,
                "static_routes": self.static_routes, "static_entries": self.flow_count,
                "veth_ends_in_order": len(self.veth_order.ends) if self.veth_order else 0,
                "notes": list(self.notes), "timings": self.timings.to_dict()}


def deferred_up_intf() -> Any:
    """Mininet's ``Intf`` without the ``ifconfig up`` it runs for each interface as it is made (a
    shell round trip each: about 700 for fntf40 with 256 hosts); the emulation brings the switch
    ports up in one ``ip -batch`` after the build, and a host's interface comes up with the
    address Mininet gives it."""
    from mininet.link import Intf

    class DeferredUpIntf(Intf):
        def config(self, up: Any = True, **params: Any) -> dict:
            return super().config(up=None, **params)

    return DeferredUpIntf


def multiqueue_link(base: Any, queues: int) -> Any:
    """Mininet's ``Link`` class ``base``, its veth pairs made with ``numtxqueues``/``numrxqueues`` ``queues``
    (Mininet makes single-queue veths, and the queue count is fixed at creation; taprio needs >= 2)."""
    class MultiQueueLink(base):
        @classmethod
        def makeIntfPair(cls, intfname1: str, intfname2: str, addr1: str | None = None, addr2: str | None = None,
                         node1: Any = None, node2: Any = None, deleteIntfs: bool = True) -> None:
            from mininet.util import quietRun
            run = node1.cmd if node1 is not None else quietRun
            if deleteIntfs:
                run(f"ip link del {intfname1}")
                (node2.cmd if node2 is not None else quietRun)(f"ip link del {intfname2}")
            q = f"numtxqueues {queues} numrxqueues {queues}"
            mac1, mac2 = (f" address {addr1}" if addr1 else ""), (f" address {addr2}" if addr2 else "")
            out = run(f"ip link add name {intfname1}{mac1} {q} type veth peer name {intfname2}{mac2} {q} "
                      f"netns {node2.pid if node2 is not None else 1}")
            if out:
                raise EmulationError(f"cannot create the veth pair {intfname1} {intfname2}: {out.strip()}")
    return MultiQueueLink


def configure_hosts_offload_only(net: Any, plan: HostPlan) -> None:
    """Userspace datapath with a controller: still turn TX checksum offload off on host veths."""
    for h in plan.hosts:
        net.get(h.name).cmd(f"ethtool -K {host_intf_name(h)} tx off >/dev/null 2>&1")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is dead for our purposes
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True


def write_plan(plan: HostPlan, path: str | os.PathLike) -> None:
    """The host plan as JSON (HostPlan.to_dict), for other tools to read."""
    Path(path).write_text(json.dumps(plan.to_dict(), indent=1) + "\n")
