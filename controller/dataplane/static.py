"""Controller-less static forwarding of a host plan (pure: plan in, flow specs out).

Why: an emulation without a controller (``dnctl emulate up``, ``mn --custom ... --test static``,
the emulation tests) still needs a meshed backbone that forwards without loops, keeps tenants
apart and never floods. The entries are the data plane's own ``FlowSpec`` (``controller.dataplane.
specs``); ``controller.dataplane.ofctl_text`` writes them as ``ovs-ofctl`` lines, and whoever
holds the switches (``topologies.mininet_topo.install_static``) installs them.

Per switch:

- table 0 (classification): a frame from a host port whose source MAC is that host's is tagged
  with its tenant in the OpenFlow metadata and goes to table 1; a frame from an inter-switch
  port goes to table 2; anything else is dropped;
- table 1 (ingress, per tenant): ``metadata=tenant, eth_dst=<MAC of a host of that tenant>``
  outputs towards that host, so a host reaches only hosts of its own tenant;
- table 2 (transit): ``eth_dst=<host MAC>`` outputs towards that host;
- the next hop towards a host is best-effort routing's (``controller.dataplane.routing``: one
  shortest-path tree by propagation per destination switch, so forwarding is loop-free); every
  table ends in a drop.

Hosts get static ARP entries for the hosts of their tenant (``static_arp``): no broadcast or
multicast is ever needed, and none is forwarded. Cookies are ``STATIC_COOKIE | tenant``.

The classification entries carry a ``{"type": "write_metadata", "metadata": n}`` instruction, an
instruction only the static forwarding uses.
"""

from __future__ import annotations

from controller.dataplane.routing import next_hops
from controller.dataplane.specs import FlowSpec
from topologies.hosts import Host, HostPlan

__all__ = ["STATIC_COOKIE", "TABLE_CLASSIFY", "TABLE_INGRESS", "TABLE_TRANSIT", "PRIO_FORWARD", "PRIO_DROP",
           "static_flows", "static_arp"]

#: cookie of the controller-less static entries ("ST" in the top bytes); low bits: tenant
STATIC_COOKIE = 0x5354_0000_0000_0000
PRIO_FORWARD = 100
PRIO_DROP = 0
TABLE_CLASSIFY, TABLE_INGRESS, TABLE_TRANSIT = 0, 1, 2


def _output(port: int) -> list[dict]:
    return [{"type": "apply", "actions": [{"type": "output", "port": port}]}]


def static_flows(plan: HostPlan) -> dict[str, list[FlowSpec]]:
    """The controller-less forwarding of ``plan``: switch name -> its entries (see the module doc)."""
    topo = plan.topology
    hops = next_hops(topo.graph)

    def out_port(node: str, host: Host) -> int | None:
        if host.switch == node:
            return host.port
        nxt = hops.get((node, host.switch))
        return None if nxt is None else plan.port(node, nxt)

    flows: dict[str, list[FlowSpec]] = {}
    for node in topo.nodes:
        dpid = plan.dpid(node)
        specs: list[FlowSpec] = []
        for h in plan.host_ports(node):
            specs.append(FlowSpec(dpid, TABLE_CLASSIFY, PRIO_FORWARD, {"in_port": h.port, "eth_src": h.mac},
                                  [{"type": "write_metadata", "metadata": h.tenant},
                                   {"type": "goto", "table": TABLE_INGRESS}], STATIC_COOKIE | h.tenant))
        for nbr in sorted(topo.graph.successors(node), key=lambda v: plan.port(node, v)):
            specs.append(FlowSpec(dpid, TABLE_CLASSIFY, PRIO_FORWARD, {"in_port": plan.port(node, nbr)},
                                  [{"type": "goto", "table": TABLE_TRANSIT}], STATIC_COOKIE))
        for h in plan.hosts:
            port = out_port(node, h)
            if port is None:
                continue  # destination unreachable from here
            specs.append(FlowSpec(dpid, TABLE_INGRESS, PRIO_FORWARD, {"metadata": h.tenant, "eth_dst": h.mac},
                                  _output(port), STATIC_COOKIE | h.tenant))
            specs.append(FlowSpec(dpid, TABLE_TRANSIT, PRIO_FORWARD, {"eth_dst": h.mac}, _output(port),
                                  STATIC_COOKIE | h.tenant))
        for table in (TABLE_CLASSIFY, TABLE_INGRESS, TABLE_TRANSIT):
            specs.append(FlowSpec(dpid, table, PRIO_DROP, {}, [], STATIC_COOKIE))
        flows[plan.switch_name(node)] = specs
    return flows


def static_arp(plan: HostPlan) -> dict[str, list[tuple[str, str]]]:
    """Host name -> ``(ip, mac)`` of every other host of its tenant."""
    by_tenant: dict[int, list[Host]] = {}
    for h in plan.hosts:
        by_tenant.setdefault(h.tenant, []).append(h)
    return {h.name: [(o.ip, o.mac) for o in by_tenant[h.tenant] if o.name != h.name] for h in plan.hosts}
