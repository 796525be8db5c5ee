"""``FlowSpec`` -> one ``ovs-ofctl add-flows`` line (pure: text formatting only).

Why: the controller sends specs through os-ken, but the controller-less static forwarding
(``controller.dataplane.static``) is written with ``ovs-ofctl -O OpenFlow13 add-flows SW -``, one
line per entry. This is the one place that knows how a spec reads in ``ovs-ofctl`` syntax.

>>> from controller.dataplane.specs import FlowSpec
>>> flow_line(FlowSpec(1, 0, 100, {"in_port": 3, "eth_src": "02:00:00:00:00:01"},
...                    [{"type": "write_metadata", "metadata": 1}, {"type": "goto", "table": 1}], 0x5))
'cookie=0x5,table=0,priority=100,in_port=3,dl_src=02:00:00:00:00:01,actions=write_metadata:0x1,goto_table:1'
>>> flow_line(FlowSpec(1, 2, 0, {}, [], 0x5))
'cookie=0x5,table=2,priority=0,actions=drop'
"""

from __future__ import annotations

from typing import Any

from controller.dataplane.specs import OFPVID_PRESENT, FlowSpec

__all__ = ["flow_line", "flows_text"]

#: OXM field name (the specs' names) -> ovs-ofctl field name, and whether it prints in hex
_FIELDS = {"in_port": ("in_port", False), "eth_src": ("dl_src", False), "eth_dst": ("dl_dst", False),
           "eth_type": ("dl_type", True), "metadata": ("metadata", True), "vlan_vid": ("vlan_vid", True),
           "vlan_pcp": ("vlan_pcp", False), "ipv4_src": ("nw_src", False), "ipv4_dst": ("nw_dst", False),
           "ip_proto": ("nw_proto", False), "udp_src": ("udp_src", False), "udp_dst": ("udp_dst", False),
           "tcp_src": ("tcp_src", False), "tcp_dst": ("tcp_dst", False)}


def _value(v: Any, hexa: bool) -> str:
    return f"{v:#x}" if hexa and isinstance(v, int) else str(v)


def _match(match: dict[str, Any]) -> str:
    parts = []
    for name, v in match.items():
        if name not in _FIELDS:
            raise ValueError(f"match field {name!r} has no ovs-ofctl spelling here")
        field, hexa = _FIELDS[name]
        if isinstance(v, tuple):
            parts.append(f"{field}={_value(v[0], hexa)}/{_value(v[1], hexa)}")
        else:
            parts.append(f"{field}={_value(v, hexa)}")
    return ",".join(parts)


def _action(a: dict[str, Any]) -> str:
    kind = a["type"]
    if kind == "output":
        return f"output:{a['port']}"
    if kind == "push_vlan":
        return "push_vlan:0x8100"
    if kind == "pop_vlan":
        return "pop_vlan"
    if kind == "set_vlan":
        return f"set_field:{a['vid'] | OFPVID_PRESENT:#x}->vlan_vid"
    if kind == "set_vlan_pcp":
        return f"set_field:{a['pcp']}->vlan_pcp"
    if kind == "set_queue":
        return f"set_queue:{a['queue_id']}"
    if kind == "group":
        return f"group:{a['group_id']}"
    raise ValueError(f"action {kind!r} has no ovs-ofctl spelling here")


def _instructions(instructions: list[dict[str, Any]]) -> str:
    parts = []
    for ins in instructions:
        kind = ins["type"]
        if kind == "apply":
            parts += [_action(a) for a in ins["actions"]]
        elif kind == "goto":
            parts.append(f"goto_table:{ins['table']}")
        elif kind == "meter":
            parts.append(f"meter:{ins['meter_id']}")
        elif kind == "write_metadata":
            parts.append(f"write_metadata:{ins['metadata']:#x}")
        else:
            raise ValueError(f"instruction {kind!r} has no ovs-ofctl spelling here")
    return ",".join(parts) or "drop"


def flow_line(spec: FlowSpec) -> str:
    """The ``ovs-ofctl add-flows`` line of ``spec`` (no instructions: ``actions=drop``)."""
    m = _match(spec.match)
    return (f"cookie={spec.cookie:#x},table={spec.table_id},priority={spec.priority}"
            f"{',' + m if m else ''},actions={_instructions(spec.instructions)}")


def flows_text(specs: list[FlowSpec]) -> str:
    """``add-flows`` input for ``specs``: one line each."""
    return "".join(flow_line(s) + "\n" for s in specs)
