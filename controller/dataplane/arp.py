"""The controller's ARP policy (pure): which ARP requests it answers, and with what.

Host ports send ARP to the controller (table 0); the controller answers a request for a known
host of the asker's own tenant from the host plan, so no ARP is ever flooded and no tenant learns
another's addresses.
"""

from __future__ import annotations

from controller.dataplane.frames import arp_reply, parse_arp
from topologies.hosts import HostPlan


def arp_answer(plan: HostPlan, dpid: int, in_port: int, frame: bytes) -> bytes | None:
    """The reply to an ARP request arriving on a host port for a known host of the SAME tenant;
    everything else (other tenants, unknown IPs, replies, inter-switch ports) gets no answer."""
    req = parse_arp(frame)
    if req is None or req.op != 1:
        return None
    try:
        node = plan.node_of_dpid(dpid)
    except KeyError:
        return None
    asker = next((h for h in plan.host_ports(node) if h.port == in_port), None)
    target = plan.host_by_ip(req.tpa)
    if asker is None or target is None or target.tenant != asker.tenant or target.ip == req.spa:
        return None
    return arp_reply(req, target.mac)
