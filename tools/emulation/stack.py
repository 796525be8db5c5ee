"""``NetworkStack``: the one way to start a controller with an emulation (and stop both).

Why: the training run, the scenario, the isolation audit, chaos and the REST bench all need the
same steps in the same order: check the machine, take the machine-wide emulation lock (before
the controller, so a run waiting for another one holds no ports), make sure Open vSwitch runs,
start ``dnctl controller`` on the topology and host plan (``ControllerProcess``: free ports,
throw-away state, an admin token), start the Mininet emulation connected to it, wait until every
switch is connected and synced; and on the way out, ALWAYS, stop the processes started in the
hosts (``procs``), the emulation, the controller, then release the lock — also on failure, and
with Ctrl-C deferred until the tear-down is done::

    with NetworkStack(topo, plan, link_scale=1e-4) as net:
        api = net.ctl.client()
        net.procs.add(net.emu.net.get("t1h1").popen([...]), "talker")

``emulate=False`` starts the controller alone (the REST bench without switches). ``cluster=N``
(N >= 2) starts a 3-member etcd and N controllers on it (``--store etcd://``, one CA, one admin
token); every switch connects to all of them; ``ctl`` is the one elected first, ``ctls`` all of
them, ``leader()`` asks which leads now. The meters of
the controller and the links of the emulation use the same ``link_scale`` (default: the
emulation's, 1/1000); ``shape_links=False`` leaves the links unshaped (a run that shapes them
itself). ``miniature=True`` gives the controller the emulated network itself
(``tools.emulation.miniature``: capacities x ``link_scale``, the propagation the links really
carry, a slot that fits its frames for ``periods_ns``, meters unscaled), so its bounds and
offsets describe the packets' network; reservations are then requested at the emulated rates.
``gates`` (None: where the kernel has taprio and the controller schedules the miniature, but not in
the project's TCG guest, which gates only when asked and only slots of 1 ms or more; False: never;
True: or fail) puts 802.1Qbv gates on every port that carries reservations and keeps them equal to the
controller's schedule (``tools.emulation.gates.GateKeeper``; ``gates_report`` is its report).
``platform`` says what ran where (datapath, link and delay scale, propagation emulated or not). ``timings`` says where the start-up time went; ``emulation_mem_mb`` what the emulation
took of the machine's memory.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from tools.emulation import ovs, txbuffer
from tools.emulation.controller_proc import ControllerProcess
from tools.emulation.etcd import EtcdCluster, etcd_cluster
from tools.emulation.gates import GateKeeper
from tools.emulation.lifecycle import Managed, sigint_deferred
from tools.emulation.miniature import (effective_delay_scale, miniature_base_cycle_ns, miniature_config, miniature_slot_ns,
                                       miniature_topology)
from tools.emulation.network import Emulation, EmulationError, emulation_lock
from tools.emulation.patience import in_vm
from tools.emulation.pki import Pki
from tools.emulation.tcpproxy import TcpRelay
from tools.emulation.procs import HostProcs
from tools.emulation.progress import Progress, quiet
from topologies.emulated import DEFAULT_DELAY_SCALE, DEFAULT_LINK_SCALE
from topologies.machine import taprio_works

__all__ = ["MINIATURE_RATE_SCALE", "NetworkStack", "controlled_emulation", "mem_available_mb"]

#: the controller's rate scale when it schedules the miniature: its rates are the emulated ones
#: already, so 1 in effect (a meter of 5 Mb/s loses 50 bit/s); just below 1 because the controller
#: takes a scale < 1 to mean "the switches are an emulation" and then lets a reservation meter's
#: burst cover 50 ms at its rate (controller.dataplane.translation EMULATION_BURST_NS: a software
#: switch on shared cores stalls for milliseconds and then forwards the backlog at once; at scale 1
#: the burst is 3 frames and half the probes were policed). 0.99999 survives ``--link-scale``'s
#: 6-digit formatting; an explicit controller option would be cleaner (outside these files).
MINIATURE_RATE_SCALE = 0.99999


def mem_available_mb() -> float:
    """The machine's MemAvailable in MiB (0 when /proc/meminfo does not say)."""
    with contextlib.suppress(OSError):
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return 0.0


#: the shortest slot gated in the project's TCG guest: with the fntf40 demo's 100 us windows on 24 ports
#: both vCPUs soft-locked in softirq for minutes (taprio's hrtimers, with netem and four floods);
#: 1 ms slots (tests/test_vm_gates.py) and 100 ms slots (tests/test_vm_verbs.py) run
TCG_MIN_GATED_SLOT_NS = 1_000_000
#: the runs' ``--gates`` -> ``NetworkStack(gates=...)``: None = where the kernel has taprio (see the class)
GATE_MODES = {"auto": None, "on": True, "off": False}


class NetworkStack(Managed):
    """A controller child process + the Mininet emulation connected to it + processes in its hosts.

    ``topology``/``plan``: the ``Topology`` and ``HostPlan`` the emulation is built from; the
    controller is given ``controller_topology`` (a builtin name or file; default: the Topology
    itself, written to a file) and ``hosts_file`` (default: the plan, written to a file).
    ``emulation_kw`` goes to ``Emulation`` (``datapath``, ``delay_scale``...).
    """

    def __init__(self, topology: Any, plan: Any, *, link_scale: float | None = None, shape_links: bool = True,
                 emulate: bool = True, controller_topology: Any = None, hosts_file: Any = None, db: Any = None,
                 log_dir: Any = None, lldp_interval: float | None = 1.0, start_timeout: float = 20.0,
                 connect_timeout: float = 60.0, verbose: bool = True, progress: Progress = quiet,
                 miniature: bool = False, periods_ns: tuple[int, ...] = (), gates: bool | None = None,
                 tls: bool = True, cluster: int = 0, etcd_proxies: bool = False,
                 **emulation_kw: Any):
        self.topology, self.plan = topology, plan
        self.link_scale = DEFAULT_LINK_SCALE if link_scale is None else link_scale
        self.shape_links, self.emulate = shape_links, emulate
        self.controller_topology = topology if controller_topology is None else controller_topology
        self.hosts_file, self.db, self.log_dir = hosts_file, db, log_dir
        self.lldp_interval, self.start_timeout, self.connect_timeout = lldp_interval, start_timeout, connect_timeout
        self.verbose, self.progress, self.emulation_kw = verbose, progress, emulation_kw
        self.miniature, self.periods_ns = miniature, tuple(periods_ns)
        #: OpenFlow over TLS with client certificates (False: plain TCP, ``--of-plain``)
        self.tls = tls
        #: the miniature the controller schedules (None without ``miniature``): topology, slot_ns
        self.miniature_topology: Any = None
        self.slot_ns: int | None = None
        self.ctl: ControllerProcess | None = None
        self.emu: Emulation | None = None
        self.procs = HostProcs()
        self.timings: dict[str, float] = {}
        self.emulation_mem_mb: float | None = None
        #: 802.1Qbv gates (tools.emulation.gates): None = where the kernel has taprio and the controller
        #: schedules the miniature (the schedule then describes the emulated links), not in the TCG guest;
        #: False = never; True = or fail
        self.gates_asked = gates
        self.gates: GateKeeper | None = None
        self.tx_buffer: txbuffer.Widened | None = None     # userspace OVS's transmit socket, widened for the run
        self.gates_off_reason: str | None = None
        self._lock_cm: contextlib.AbstractContextManager | None = None
        #: a cluster of this many controllers on a 3-member etcd (``controller.ha``); 0: one controller
        self.cluster = int(cluster)
        if self.cluster == 1 or self.cluster < 0:
            raise ValueError(f"cluster {cluster}: 0 (one controller) or at least 2 members")
        #: every controller (one, or the cluster's members); ``ctl`` is the one that leads
        self.ctls: list[ControllerProcess] = []
        self.etcd: EtcdCluster | None = None
        self._etcd_cm: contextlib.AbstractContextManager | None = None
        self._pki_dir: str | None = None
        #: each member reaches etcd through relays that ``cut_from_etcd`` can cut (``tcpproxy``)
        self.etcd_proxies = bool(etcd_proxies)
        self.relays: dict[int, list[TcpRelay]] = {}      # id(controller) -> its relays

    # -- lifecycle --
    def start(self) -> "NetworkStack":
        """Lock, OVS, controller, emulation, every switch synced (see the module doc)."""
        caps = None
        if self.emulate:
            caps = ovs.probe()
            missing = caps.missing_for_emulation()
            if missing:
                raise EmulationError("cannot emulate on this machine: " + ", ".join(missing))
            t0 = time.monotonic()
            self._lock_cm = emulation_lock()
            self._lock_cm.__enter__()
            self.timings["lock_wait_s"] = time.monotonic() - t0
            t0 = time.monotonic()
            self.progress("OVS: checking Open vSwitch")
            try:
                ovs.ensure_ovs_running()
            except ovs.OvsError as e:
                raise EmulationError(str(e)) from None
            self.timings["ovs_s"] = time.monotonic() - t0
        t0 = time.monotonic()
        ctl_topology, ctl_scale, config = self.controller_topology, self.link_scale, None
        if self.miniature:
            ds = self.emulation_kw.get("delay_scale")
            self.miniature_topology = miniature_topology(
                self.topology, self.link_scale, DEFAULT_DELAY_SCALE if ds is None else ds,
                propagation_emulated=bool(caps and caps.netem))
            base_cycle = miniature_base_cycle_ns(self.miniature_topology, self.periods_ns)
            self.slot_ns = miniature_slot_ns(self.miniature_topology, self.periods_ns, base_cycle)
            ctl_topology, ctl_scale, config = (self.miniature_topology, MINIATURE_RATE_SCALE,
                                               miniature_config(self.slot_ns, base_cycle))
        if self.cluster:
            self._start_cluster(ctl_topology, ctl_scale, config)
        else:
            self.ctl = self._controller(ctl_topology, ctl_scale, config, log_dir=self.log_dir)
            self.ctls = [self.ctl]
            self.progress(f"controller: starting (OpenFlow :{self.ctl.of_port}, REST :{self.ctl.api_port}, "
                          + (f"scheduling the miniature: links x{self.link_scale:g}, slot {self.slot_ns} ns)"
                             if self.miniature else f"link scale {self.link_scale:g})"))
            self.ctl.start()
        self.timings["controller_s"] = time.monotonic() - t0
        if not self.emulate:
            return self
        n = len(self.topology.nodes)
        self.progress(f"emulation: starting {self.topology.name} ({n} switches, {len(self.plan.hosts)} hosts, "
                      f"userspace/kernel OVS as available)")
        t0 = time.monotonic()
        mem0 = mem_available_mb()
        # OpenFlow over TLS (unless the controller is plain): one certificate naming every switch's dpid
        tls = self.ctl.switch_tls(self.plan.dpid(n) for n in self.topology.nodes)
        gated = self._want_gates()
        self.emu = Emulation(self.topology, self.plan, controller=("127.0.0.1", self.ctls[0].of_port), tls=tls,
                             link_scale=self.link_scale if self.shape_links else 0, verbose=self.verbose,
                             wait_connected_s=0, capabilities=caps, tx_queues=2 if gated else 1,
                             more_controllers=[("127.0.0.1", c.of_port) for c in self.ctls[1:]],
                             **self.emulation_kw)
        self.emu.start()
        self.timings["emulation_start_s"] = time.monotonic() - t0
        self.ctl.wait_switches(n, self.connect_timeout)
        self.timings["emulation_s"] = time.monotonic() - t0
        if self.emu.datapath == "user":   # one shared transmit socket: its buffer must not drop frames
            self.tx_buffer = txbuffer.widen()
        self.emulation_mem_mb = round(mem0 - mem_available_mb(), 1)
        if gated:
            t0 = time.monotonic()
            self.gates = GateKeeper(self.emu, self.ctl.client())
            self.gates.start()
            self.timings["gates_s"] = time.monotonic() - t0
            self.progress(f"gates: taprio kept equal to the schedule ({self.gates.summary()['ports_gated']} ports "
                          f"gated now)")
        return self

    def _controller(self, topology: Any, scale: float, config: dict[str, Any] | None, **kw: Any) -> ControllerProcess:
        ctl = ControllerProcess(topology, self.hosts_file or self.plan, db=self.db, link_scale=scale,
                                lldp_interval=self.lldp_interval, start_timeout=self.start_timeout, tls=self.tls,
                                **kw)
        if config is not None:
            path = ctl.tmpdir / "miniature.json"
            path.write_text(json.dumps(config) + "\n")
            ctl.extra_args += ["--config", str(path)]
        return ctl

    def _start_cluster(self, topology: Any, scale: float, config: dict[str, Any] | None) -> None:
        """A 3-member etcd and ``cluster`` controllers on it (one CA, one admin token); ``ctl`` is
        the one elected."""
        self.progress(f"cluster: starting etcd (3 members) and {self.cluster} controllers on it")
        self._etcd_cm = etcd_cluster(3)
        self.etcd = self._etcd_cm.__enter__()
        self._pki_dir = tempfile.mkdtemp(prefix="detnet-cluster-pki-")
        pki = Pki.create(self._pki_dir) if self.tls else None
        token = secrets.token_hex(24)
        for i in range(self.cluster):
            log_dir = None if self.log_dir is None else Path(self.log_dir) / f"controller-{i}"
            relays = [TcpRelay(e) for e in self.etcd.endpoints] if self.etcd_proxies else []
            store = "etcd://" + ",".join(r.endpoint for r in relays) if relays else self.etcd.url
            ctl = self._controller(topology, scale, config, log_dir=log_dir, store=store, pki=pki, admin_token=token)
            self.relays[id(ctl)] = relays
            self.ctls.append(ctl)
        for c in self.ctls:
            c.start()
        self.ctl = self.leader(timeout=30)
        self.progress(f"cluster: {self.ctl.url} leads")

    def cut_from_etcd(self, ctl: ControllerProcess) -> None:
        """Partition ``ctl`` from every etcd member (needs ``etcd_proxies``)."""
        relays = self.relays.get(id(ctl))
        if not relays:
            raise ValueError("cut_from_etcd needs NetworkStack(cluster=N, etcd_proxies=True)")
        for r in relays:
            r.cut()

    def heal(self) -> None:
        """Undo every ``cut_from_etcd``."""
        for relays in self.relays.values():
            for r in relays:
                r.heal()

    def restart_stopped(self) -> None:
        """Start again every member that is not running (it joins as a follower), heal every cut."""
        self.heal()
        for c in self.ctls:
            if not c.running:
                c.start()

    def leader(self, timeout: float = 10.0, but: ControllerProcess | None = None) -> ControllerProcess:
        """The running member (other than ``but``) whose /healthz says it leads (waits up to
        ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while True:
            leading = []
            for c in self.ctls:
                h = c.healthz() if c.running and c is not but else None
                cl = (h or {}).get("cluster") or {}
                if cl.get("role") == "leader":
                    leading.append((int(cl.get("term") or 0), c))
            if leading:       # two only for a moment (a former leader not yet told): the newer term
                return max(leading, key=lambda x: x[0])[1]
            if time.monotonic() > deadline:
                raise EmulationError(f"no controller of the cluster leads after {timeout:g} s")
            time.sleep(0.05)

    def _want_gates(self) -> bool:
        """Whether this stack gates its links (``gates``; see ``__init__``); the reason when not."""
        if self.gates_asked is False:
            self.gates_off_reason = "turned off"
        elif not self.miniature:
            self.gates_off_reason = "the controller schedules the full-rate network, not the emulated links"
        elif not taprio_works():
            self.gates_off_reason = "no tc taprio on this kernel"
        elif in_vm() and (self.slot_ns or 0) < TCG_MIN_GATED_SLOT_NS:
            self.gates_off_reason = (f"in the TCG guest slots shorter than {TCG_MIN_GATED_SLOT_NS / 1e6:g} ms are "
                                     f"not gated (this one is {self.slot_ns} ns): taprio's timers at 100 us soft-locked "
                                     f"the guest (docs/gates.md); a lower link scale gives longer slots")
        elif self.gates_asked is None and in_vm():
            self.gates_off_reason = ("in the TCG guest gates only when asked (gates=True): reserved frames "
                                     "through 100 us windows were lost there (docs/gates.md)")
        if self.gates_off_reason and self.gates_asked:
            raise EmulationError(f"gates asked for, but {self.gates_off_reason}")
        return self.gates_off_reason is None

    @property
    def gates_report(self) -> dict[str, Any]:
        """The gates' report (``GateKeeper.summary``), or ``enabled: false`` and why."""
        if self.gates is not None:
            return self.gates.summary()
        return {"enabled": False, "reason": self.gates_off_reason}

    @property
    def platform(self) -> dict[str, Any]:
        """What ran where: ``vm`` (in the project's VM guest, ``tools.vm``), ``datapath``, ``link_scale``, ``delay_scale`` (the factor asked for),
        ``propagation_emulated``, ``effective_delay_scale`` (0 without netem), the miniature's
        ``slot_ns`` (None when the controller schedules the full-rate network) and ``openflow``, the
        switch channel (``tls``: TLS with client certificates, or ``plain`` TCP)."""
        emu = self.emu
        delayed = bool(emu is not None and emu.delayed)
        ds = self.emulation_kw.get("delay_scale")
        ds = DEFAULT_DELAY_SCALE if ds is None else ds
        return {"vm": in_vm(), "datapath": emu.datapath if emu is not None else None, "link_scale": self.link_scale,
                "delay_scale": ds, "propagation_emulated": delayed,
                "effective_delay_scale": effective_delay_scale(ds, delayed),
                "controller_schedules": "miniature" if self.miniature else "full-rate network",
                "slot_ns": self.slot_ns, "openflow": "tls" if self.tls else "plain"}

    def stop(self) -> None:
        """Stop host processes, the emulation, the controller; release the lock (idempotent; Ctrl-C
        during the tear-down is deferred until it is done, then re-raised)."""
        with sigint_deferred():
            try:
                self.procs.stop_all()
                if self.gates is not None:
                    self.gates.stop()
                    self.gates.client.close()
                if self.tx_buffer is not None:
                    tx, self.tx_buffer = self.tx_buffer, None
                    txbuffer.restore(tx)
                if self.emu is not None:
                    with contextlib.suppress(Exception):
                        self.emu.stop()
                for c in self.ctls or ([self.ctl] if self.ctl is not None else []):
                    c.stop()
                for relays in self.relays.values():
                    for r in relays:
                        r.close()
                if self._etcd_cm is not None:
                    cm, self._etcd_cm = self._etcd_cm, None
                    cm.__exit__(None, None, None)
                if self._pki_dir is not None:
                    shutil.rmtree(self._pki_dir, ignore_errors=True)
            finally:
                if self._lock_cm is not None:
                    cm, self._lock_cm = self._lock_cm, None
                    cm.__exit__(None, None, None)


@contextlib.contextmanager
def controlled_emulation(topology: Any, plan: Any, *, link_scale: float | None = None, db: Any = None,
                         log_dir: Any = None, connect_timeout: float = 60.0, verbose: bool = True,
                         lldp_interval: float | None = 1.0, **emulation_kw: Any) -> Iterator[tuple[Any, Any]]:
    """``with controlled_emulation(topo, plan) as (ctl, emu):`` a ``NetworkStack``'s controller and
    emulation, all switches synced; everything torn down on exit (also on Ctrl-C)."""
    with NetworkStack(topology, plan, link_scale=link_scale, db=db, log_dir=log_dir,
                      connect_timeout=connect_timeout, verbose=verbose, lldp_interval=lldp_interval,
                      **emulation_kw) as net:
        yield net.ctl, net.emu
