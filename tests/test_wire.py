"""``controller.dataplane.wire`` packs flow and meter mods byte for byte as os-ken serialises them:
every change of the programs the data-plane tests build, and generated specs over every match
field, mask, instruction and action the specs allow."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from os_ken.base import app_manager  # noqa: F401 - import order os-ken needs
from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser

from controller import ofchannel
from controller.dataplane import programs, wire
from controller.dataplane.programs import (FlowAdd, FlowDelete, FlowDeleteStrict, MeterAdd, MeterDelete,
                                           MeterModify)
from controller.dataplane.specs import FlowSpec, MeterSpec
from fakeswitch import FakeNetwork, link_bps, programmed, reservation, ring_plan


class Datapath:
    ofproto, ofproto_parser = ofproto_v1_3, ofproto_v1_3_parser
    id = 1


DP = Datapath()


def os_ken_bytes(c, xid: int) -> bytes:
    msg = ofchannel.change_message(DP, c)
    msg.set_xid(xid)
    msg.serialize()
    return bytes(msg.buf)


def test_every_change_of_the_programs_packs_as_os_ken_serialises_it():
    plan = ring_plan()
    old = reservation("r1", ["A", "B", "C"], protection=["A", "D", "C"])
    new = reservation("r1", ["A", "D", "C"], protection=["A", "B", "C"])
    every = [programs.install(plan, old, link_bps([old])), programs.remove(plan, old, link_bps([])),
             programs.reroute(plan, [(old, new)], link_bps([new])).program, programmed(plan, [old]),
             programs.install_many(plan, [old, reservation("r2", ["B", "C", "D"])],
                                   link_bps([old, reservation("r2", ["B", "C", "D"])]))[0],
             programs.reroute(plan, [(reservation("y", ["A", "B", "C"]), reservation("y", ["A", "D", "C"]))],
                              link_bps([])).program]
    net = FakeNetwork(plan)
    net.run(programmed(plan, [new]))
    every.append(programs.resync(plan, "A", [old], net.switches[plan.dpid("A")].dump()))
    kinds = set()
    for prog in every:
        for xid, c in enumerate(prog.changes(), start=1):
            kinds.add(type(c).__name__)
            assert ofchannel.change_bytes(DP, c, xid) == os_ken_bytes(c, xid), c
    # the kinds wire packs, and the groups os-ken still does (through the same function)
    assert kinds == {"FlowAdd", "FlowDelete", "FlowDeleteStrict", "MeterAdd", "MeterModify", "MeterDelete",
                     "GroupAdd", "GroupModify", "GroupDelete"}


MAC = st.lists(st.integers(0, 255), min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b))
IPV4 = st.lists(st.integers(0, 255), min_size=4, max_size=4).map(lambda b: ".".join(map(str, b)))
U8, U16, U32 = st.integers(0, 0xFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF_FFFF)
FIELDS = {
    "in_port": U32, "metadata": st.integers(0, 2 ** 64 - 1), "eth_dst": MAC, "eth_src": MAC,
    "eth_type": U16, "vlan_vid": st.integers(0, 0x1FFF), "vlan_pcp": st.integers(0, 7),
    "ip_dscp": st.integers(0, 63), "ip_proto": U8, "ipv4_src": IPV4, "ipv4_dst": IPV4,
    "tcp_src": U16, "tcp_dst": U16, "udp_src": U16, "udp_dst": U16,
}
MASKABLE = {"metadata", "eth_dst", "eth_src", "vlan_vid", "ipv4_src", "ipv4_dst"}


@st.composite
def matches(draw):
    names = draw(st.lists(st.sampled_from(sorted(FIELDS)), unique=True, max_size=8))
    out = {}
    for n in names:
        v = draw(FIELDS[n])
        if n in MASKABLE and draw(st.booleans()):
            v = (v, draw(FIELDS[n]))
        out[n] = v
    return out


ACTIONS = st.one_of(
    st.builds(lambda p, m: {"type": "output", "port": p, "max_len": m}, U32, U16),
    st.just({"type": "push_vlan"}), st.just({"type": "pop_vlan"}),
    st.builds(lambda v: {"type": "set_vlan", "vid": v}, st.integers(0, 0xFFF)),
    st.builds(lambda p: {"type": "set_vlan_pcp", "pcp": p}, st.integers(0, 7)),
    st.builds(lambda q: {"type": "set_queue", "queue_id": q}, U32),
    st.builds(lambda g: {"type": "group", "group_id": g}, U32))
INSTRUCTIONS = st.lists(st.one_of(
    st.builds(lambda m: {"type": "meter", "meter_id": m}, U32),
    st.builds(lambda t: {"type": "goto", "table": t}, st.integers(0, 254)),
    st.builds(lambda a: {"type": "apply", "actions": a}, st.lists(ACTIONS, max_size=5))), max_size=3)


@settings(max_examples=300, deadline=None)
@given(match=matches(), instructions=INSTRUCTIONS, cookie=st.integers(0, 2 ** 64 - 1), table=st.integers(0, 254),
       priority=U16, xid=U32)
def test_generated_flow_mods_pack_as_os_ken_serialises_them(match, instructions, cookie, table, priority, xid):
    flow = FlowSpec(1, table, priority, match, instructions, cookie)
    for c in (FlowAdd(flow), FlowDeleteStrict(1, table, priority, match), FlowDelete(1, cookie, cookie)):
        assert ofchannel.change_bytes(DP, c, xid) == os_ken_bytes(c, xid)


@settings(max_examples=100, deadline=None)
@given(meter_id=U32, rate=U32, burst=U32, xid=U32)
def test_generated_meter_mods_pack_as_os_ken_serialises_them(meter_id, rate, burst, xid):
    m = MeterSpec(1, meter_id, rate, burst)
    for c in (MeterAdd(m), MeterModify(m), MeterDelete(1, meter_id)):
        assert ofchannel.change_bytes(DP, c, xid) == os_ken_bytes(c, xid)


def test_a_field_without_an_encoding_is_refused():
    import pytest
    with pytest.raises(ValueError, match="arp_op"):
        wire.flow_add(1, FlowSpec(1, 0, 1, {"arp_op": 1}))
