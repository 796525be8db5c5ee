"""The host plan: which tenant hosts hang off which switch, and their ports, names and addresses.

Pure and deterministic, so the Mininet emulation and the controller derive the same numbering
from the same Topology and the same list of attachments (no discovery needed to know a host):

- switch ``i`` (0-based position in ``topology.nodes``) is Mininet switch ``s{i+1}`` with
  datapath id ``i+1``;
- inter-switch ports come first, numbered from 1 in the order of ``topology.links()``;
  host ports follow, in the order of the attachments;
- host ``k`` of tenant ``t`` at switch ``i`` is named ``t{t}h{i+1}`` (``t{t}h{i+1}n{k}`` when a
  tenant has more than one host on a switch), IP ``10.{t // 256}.{t % 256}.{n}`` in the tenant's
  /24 (n counts the tenant's hosts from 1), MAC ``02:00:{t:04x}:{i+1:02x}:{k:02x}`` spread over bytes;
- a tenant's VLAN id is its tenant id (1..4094); tenant 0 is not a valid tenant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from topologies.model import Topology, TopologyError

MAX_VLAN = 4094


@dataclass(frozen=True)
class Host:
    """One end station: a tenant's host attached to a switch port."""

    name: str
    tenant: int
    switch: str        # topology node name (city)
    dpid: int          # datapath id of that switch
    port: int          # switch port number the host is on
    mac: str
    ip: str            # dotted quad, no prefix
    prefix_len: int = 24

    @property
    def vlan(self) -> int:
        return self.tenant

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "tenant": self.tenant, "switch": self.switch, "dpid": self.dpid,
                "port": self.port, "mac": self.mac, "ip": self.ip, "prefix_len": self.prefix_len}


@dataclass
class HostPlan:
    """Switch numbering, inter-switch ports and tenant hosts for one topology."""

    topology: Topology
    hosts: list[Host] = field(default_factory=list)

    # switch numbering ------------------------------------------------------
    def dpid(self, node: str) -> int:
        return self._dpids[node]

    def switch_name(self, node: str) -> str:
        """Mininet name of the switch for ``node`` (``s1``, ``s2``, ...)."""
        return f"s{self._dpids[node]}"

    def node_of_dpid(self, dpid: int) -> str:
        return self._nodes_by_dpid[dpid]

    def port(self, u: str, v: str) -> int:
        """Port number on switch ``u`` of its link towards switch ``v``."""
        return self._link_ports[(u, v)]

    def link_ports(self) -> dict[tuple[str, str], int]:
        """Every directed inter-switch link and its port on the source switch."""
        return dict(self._link_ports)

    def hosts_of(self, tenant: int) -> list[Host]:
        return [h for h in self.hosts if h.tenant == tenant]

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def host_by_ip(self, ip: str) -> Host | None:
        return self._by_ip.get(ip)

    def host_ports(self, node: str) -> list[Host]:
        return [h for h in self.hosts if h.switch == node]

    def tenants(self) -> list[int]:
        return sorted({h.tenant for h in self.hosts})

    def __post_init__(self) -> None:
        self._dpids = {n: i + 1 for i, n in enumerate(self.topology.nodes)}
        self._nodes_by_dpid = {d: n for n, d in self._dpids.items()}
        self._link_ports: dict[tuple[str, str], int] = {}
        self._next_port = {n: 1 for n in self.topology.nodes}
        for link in self.topology.links():
            for a, b in ((link.src, link.dst), (link.dst, link.src)):
                self._link_ports[(a, b)] = self._next_port[a]
                self._next_port[a] += 1
        self._by_ip = {h.ip: h for h in self.hosts}

    # building ----------------------------------------------------------------
    def attach(self, tenant: int, node: str, count: int = 1) -> list[Host]:
        """Attach ``count`` hosts of ``tenant`` to switch ``node``; returns the new hosts."""
        if not 1 <= tenant <= MAX_VLAN:
            raise TopologyError(f"tenant {tenant} out of range 1..{MAX_VLAN} (it is the VLAN id)")
        if node not in self._dpids:
            raise TopologyError(f"{self.topology.name}: unknown node {node!r}")
        new = []
        for _ in range(count):
            i = self._dpids[node]
            k = sum(1 for h in self.hosts if h.tenant == tenant and h.switch == node)
            n = len(self.hosts_of(tenant)) + 1
            if n > 254:
                raise TopologyError(f"tenant {tenant} has more than 254 hosts")
            name = f"t{tenant}h{i}" + (f"n{k}" if k else "")
            mac = "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}".format(
                (tenant >> 8) & 0xFF, tenant & 0xFF, (i >> 8) & 0xFF, i & 0xFF, k & 0xFF)
            ip = f"10.{tenant // 256}.{tenant % 256}.{n}"
            host = Host(name, tenant, node, i, self._next_port[node], mac, ip)
            self._next_port[node] += 1
            self.hosts.append(host)
            self._by_ip[ip] = host
            new.append(host)
        return new

    @classmethod
    def build(cls, topology: Topology, attachments: Iterable[tuple[int, str]] | Iterable[tuple[int, str, int]]
              ) -> "HostPlan":
        """A plan from (tenant, node[, count]) attachments, in order."""
        plan = cls(topology)
        for a in attachments:
            tenant, node, count = (a[0], a[1], a[2] if len(a) > 2 else 1)  # type: ignore[misc]
            plan.attach(tenant, node, count)
        return plan

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the attachments in order (the numbering is re-derived from them)."""
        return {"topology": self.topology.name, "hosts": [h.to_dict() for h in self.hosts]}

    @classmethod
    def from_dict(cls, topology: Topology, data: dict[str, Any]) -> "HostPlan":
        """Rebuild from ``to_dict`` output; re-derives numbering and checks it matches."""
        plan = cls(topology)
        for h in data.get("hosts", []):
            (new,) = plan.attach(int(h["tenant"]), h["switch"])
            if new.name != h["name"] or new.port != int(h["port"]):
                raise TopologyError(f"host plan does not match topology {topology.name}: host {h['name']}")
        return plan
