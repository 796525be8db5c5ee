"""The Mininet topology built from a Topology and a HostPlan (also a ``mn --custom`` file).

Why: the emulation must be the same network the controller schedules on. Everything here is
derived from the Topology and the HostPlan (topologies/hosts.py), never discovered:

- one switch per node, named ``plan.switch_name(node)`` (``s1``, ``s2``, ...) with datapath id
  ``plan.dpid(node)`` as 16 hex digits;
- inter-switch links on exactly the ports ``plan.port(u, v)`` / ``plan.port(v, u)``;
- hosts with the plan's name, MAC, IP/prefix, on the plan's switch port.

Link parameters (used when the link class is Mininet's ``TCLink``, as with ``mn --link tc``) are
``topologies.emulated.link_params``: scaled capacity as ``bw``, and the propagation delay as
``delay`` only when tc ``netem`` works on this machine (checked, or forced with
``delay=True/False``). tools/emulation/network.py does not use TCLink: it builds plain links and
applies the same shaping afterwards with one ``tc -batch`` (``topologies.emulated.tc_batch``).
The names, link parameters and the default plan live in ``topologies.emulated``, which does not
import Mininet: import them from there.

With ``mn`` (see docs/emulation.md)::

    mn --custom topologies/mininet_topo.py --topo fntf40 --switch detnet --controller none \\
       --link tc --test static+cli
    mn --custom topologies/mininet_topo.py --topo detnet,topologies/data/fntf40.json,tenants=2 ...

``--switch detnet`` is Open vSwitch speaking OpenFlow 1.3, fail mode secure, on the kernel
datapath when the openvswitch module is usable, else the userspace one. ``--test static``
installs the controller-less static forwarding (``controller.dataplane.static``, ``install_static``
below); ``--test cli`` opens the
Mininet CLI. With a controller instead: ``--controller remote,ip=127.0.0.1,port=6653``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# ``mn --custom`` exec()s this file without ``__file__``; the code object still knows its path.
_REPO = Path(os.path.abspath(globals().get("__file__") or sys._getframe(0).f_code.co_filename)
             ).resolve().parent.parent


def _make_importable() -> None:
    """Under ``mn`` (the system python, no venv) make the project and the venv's libraries importable.

    The project goes first; the venv's site-packages (made with this same system python) last, so
    it only supplies what the system lacks (networkx). In the venv itself both are already there.
    """
    if str(_REPO) not in sys.path:
        sys.path.insert(0, str(_REPO))
    site = _REPO / ".venv" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    if site.is_dir() and str(site) not in sys.path:
        sys.path.append(str(site))


_make_importable()

from mininet.cli import CLI  # noqa: E402
from mininet.link import TCIntf  # noqa: E402
from mininet.node import NullController, OVSSwitch  # noqa: E402
from mininet.topo import Topo  # noqa: E402

from controller.dataplane.ofctl_text import flows_text  # noqa: E402
from controller.dataplane.specs import FlowSpec  # noqa: E402
from controller.dataplane.static import static_arp, static_flows  # noqa: E402
from topologies.emulated import (DEFAULT_DELAY_SCALE, DEFAULT_LINK_SCALE, MAX_BW_MBPS,  # noqa: E402
                                 default_plan, host_intf_name, link_params, switch_intf_name)
# tc_batch is not used here: tools/emulation/network.py takes it from here with BackboneTopo
from topologies.emulated import tc_batch  # noqa: E402,F401
from topologies.hosts import HostPlan  # noqa: E402
from topologies.loaders import load_topology  # noqa: E402
from topologies.machine import kernel_datapath_available, qdisc_works  # noqa: E402
from topologies.model import Topology  # noqa: E402

class BackboneTopo(Topo):
    """Mininet Topo of ``topology`` with the hosts of ``plan`` (see the module docstring)."""

    def build(self, topology: Topology, plan: HostPlan | None = None, *,
              link_scale: float | None = DEFAULT_LINK_SCALE, delay_scale: float = DEFAULT_DELAY_SCALE,
              delay: bool | None = None, max_bw_mbps: float = MAX_BW_MBPS) -> None:
        if plan is None:
            plan = default_plan(topology)
        if plan.topology is not topology:
            raise ValueError(f"host plan is for topology {plan.topology.name!r}, not {topology.name!r}")
        if delay is None:
            delay = qdisc_works("netem delay 1ms")
        self.topology, self.plan = topology, plan
        self.link_scale, self.delay_scale, self.delay = link_scale, delay_scale, bool(delay)
        for node in topology.nodes:
            self.addSwitch(plan.switch_name(node), dpid=f"{plan.dpid(node):016x}")
        for link in topology.links():
            u, v = link.src, link.dst
            su, sv = plan.switch_name(u), plan.switch_name(v)
            pu, pv = plan.port(u, v), plan.port(v, u)
            self.addLink(su, sv, port1=pu, port2=pv,
                         intfName1=switch_intf_name(su, pu), intfName2=switch_intf_name(sv, pv),
                         **link_params(link.capacity_bps, link.propagation_ns, link_scale=link_scale,
                                       delay_scale=delay_scale, delay=self.delay, max_bw_mbps=max_bw_mbps))
        for h in plan.hosts:
            # the MAC is given to the veth as it is made (one command), not set on the host after
            self.addHost(h.name, ip=f"{h.ip}/{h.prefix_len}")
            sw = plan.switch_name(h.switch)
            self.addLink(h.name, sw, port2=h.port, intfName1=host_intf_name(h),
                         intfName2=switch_intf_name(sw, h.port), addr1=h.mac)


# ----- mn --custom entry points -------------------------------------------------------

def _mn_topo(name_or_file: str, tenants: int = 1, per_city: int = 1, link_scale: float = DEFAULT_LINK_SCALE,
             delay_scale: float = DEFAULT_DELAY_SCALE) -> BackboneTopo:
    topology = load_topology(name_or_file)
    plan = default_plan(topology, int(tenants), int(per_city))
    # Under mn only Mininet's own TCLink is selectable (--link tc): it refuses more than 1 Gb/s.
    return BackboneTopo(topology, plan, link_scale=float(link_scale), delay_scale=float(delay_scale),
                        max_bw_mbps=TCIntf.bwParamMax)


def _fntf40(tenants: int = 1, per_city: int = 1, **kw) -> BackboneTopo:
    return _mn_topo("fntf40", tenants, per_city, **kw)


class DetnetSwitch(OVSSwitch):
    """``--switch detnet``: OVS, OpenFlow 1.3, fail mode secure, kernel datapath if usable else user."""

    def __init__(self, name, **params):
        if "datapath" not in params:
            params["datapath"] = "kernel" if kernel_datapath_available() else "user"
        params.setdefault("protocols", "OpenFlow13")
        params.setdefault("failMode", "secure")
        # No passive OpenFlow listener (mn's default ptcp:6654+n): it counts as a controller that
        # never connects, so `mn --test ...` would wait forever. ovs-ofctl uses the mgmt socket.
        params["listenPort"] = None
        OVSSwitch.__init__(self, name, **params)

    def start(self, controllers):
        """``--controller none`` is a NullController: give the bridge no controller entry at all
        (else OVS would dial 127.0.0.1:6653 and ``mn`` would wait forever for it to connect)."""
        OVSSwitch.start(self, [c for c in controllers if not isinstance(c, NullController)])

    def connected(self):
        """Without any controller there is nothing to wait for."""
        return not self.controllerUUIDs(update=True) or OVSSwitch.connected(self)


def add_flows(flows: dict[str, list[FlowSpec]], timeout: float = 60.0, attempts: int = 3) -> None:
    """Write each switch's entries with one ``ovs-ofctl -O OpenFlow13 --bundle add-flows SW -``, all
    switches concurrently (not one process per flow).

    A switch whose write failed is written again, up to ``attempts`` times: under a slow CPU (the
    TCG VM) ovs-vswitchd sometimes drops a management connection while forty arrive at once
    ("failed to connect to socket (Broken pipe)"). That is safe to repeat: a bundle is applied
    whole or not at all, and adding an entry that exists replaces it with itself."""
    pending = dict(flows)
    errors: list[str] = []
    for attempt in range(attempts):
        if attempt:
            time.sleep(0.5 * attempt)
        procs = []
        for sw, specs in pending.items():
            p = subprocess.Popen(["ovs-ofctl", "-O", "OpenFlow13", "--bundle", "add-flows", sw, "-"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            procs.append((sw, p, flows_text(specs)))
        errors = []
        failed = {}
        for sw, p, text in procs:
            _out, err = p.communicate(text, timeout=timeout)
            if p.returncode != 0:
                errors.append(f"{sw}: {err.strip().splitlines()[-1] if err.strip() else 'exit %d' % p.returncode}")
                failed[sw] = pending[sw]
        if not failed:
            return
        pending = failed
    raise RuntimeError(f"ovs-ofctl add-flows failed ({attempts} attempts): " + "; ".join(errors[:3]))


def configure_hosts(net, plan: HostPlan, *, tx_offload_off: bool = True) -> None:
    """Static ARP for each host's tenant, IPv6 off (no ND/MLD multicast), and, for the userspace
    datapath, TX checksum offload off (else TCP/UDP from a veth reaches OVS with bad checksums)."""
    arp = static_arp(plan)
    with tempfile.TemporaryDirectory(prefix="detnet-arp-") as tmp:
        for h in plan.hosts:
            node = net.get(h.name)
            intf = host_intf_name(h)
            path = Path(tmp) / f"{h.name}.batch"
            path.write_text("".join(f"neigh replace {ip} lladdr {mac} dev {intf} nud permanent\n"
                                    for ip, mac in arp[h.name]))
            cmd = ("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"
                   " >/dev/null 2>&1; ")
            if tx_offload_off:
                cmd += f"ethtool -K {intf} tx off >/dev/null 2>&1; "
            cmd += f"ip -batch {path} && echo ARP-OK"
            out = node.cmd(cmd)
            if "ARP-OK" not in out:
                raise RuntimeError(f"static ARP on {h.name} failed: {out.strip()[-200:]}")


def install_static(net, plan: HostPlan, *, tx_offload_off: bool = True) -> int:
    """Controller-less static forwarding (``controller.dataplane.static``) on every switch of a running
    Mininet ``net`` and static ARP on its hosts; returns the number of entries."""
    flows = static_flows(plan)
    add_flows(flows)
    configure_hosts(net, plan, tx_offload_off=tx_offload_off)
    return sum(len(v) for v in flows.values())


def _static_test(net) -> None:
    """``--test static``: controller-less static forwarding and static ARP (``install_static``)."""
    if not isinstance(net.topo, BackboneTopo):
        raise RuntimeError("--test static needs a detnet topology (--topo fntf40 or --topo detnet,FILE)")
    install_static(net, net.topo.plan)


def _cli_test(net) -> None:
    """``--test cli``: the Mininet CLI (so ``--test static+cli`` installs flows, then hands over)."""
    CLI(net)


topos = {"fntf40": _fntf40, "detnet": _mn_topo}
switches = {"detnet": DetnetSwitch}
tests = {"static": _static_test, "cli": _cli_test}
