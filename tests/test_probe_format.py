"""Probe payload encoding and the talker's send plan (tools.probes.probe_format)."""

import pytest

from tools.probes.probe_format import (FIXED_LEN, IP_UDP_OVERHEAD, MAGIC, Probe, ProbeFormatError, flow_id_of,
                                header_len, instances_of, pack, send_plan, split_bytes, unpack)


def _probe(**kw):
    d = dict(flow_id=flow_id_of("res-1"), seq=2**40 + 7, tx_ns=1_700_000_000_123_456_789,
             intended_ns=1_700_000_000_123_450_000, tx_offset_ns=30_000, frag_index=1, frag_count=3,
             cycle_index=123456, reservation_id="res-1", flags=1)
    d.update(kw)
    return Probe(**d)


def test_roundtrip_keeps_every_field():
    p = _probe()
    data = pack(p)
    assert len(data) == FIXED_LEN + len("res-1")
    assert unpack(data) == p


def test_padding_to_size_and_roundtrip():
    p = _probe(reservation_id="x" * 64)
    data = pack(p, 1472)
    assert len(data) == 1472
    assert data[FIXED_LEN + 64:] == bytes(1472 - FIXED_LEN - 64)
    assert unpack(data) == p


def test_magic_is_first_and_big_endian():
    data = pack(_probe())
    assert int.from_bytes(data[:4], "big") == MAGIC
    assert data[12:20] == (2**40 + 7).to_bytes(8, "big")


@pytest.mark.parametrize("mutate, msg", [
    (lambda b: b"\x00\x00\x00\x00" + b[4:], "magic"),
    (lambda b: b[:4] + b"\x09" + b[5:], "version"),
    (lambda b: b[:20], "shorter"),
    (lambda b: b[:6] + (200).to_bytes(2, "big") + b[8:], "header length"),
])
def test_unpack_rejects_non_probes(mutate, msg):
    with pytest.raises(ProbeFormatError, match=msg):
        unpack(mutate(pack(_probe())))


def test_id_too_long_is_refused():
    with pytest.raises(ProbeFormatError):
        pack(_probe(reservation_id="y" * 65))


def test_flow_id_is_stable_32_bit_and_differs_between_ids():
    ids = [f"r{i}" for i in range(2000)]
    fids = [flow_id_of(i) for i in ids]
    assert all(0 <= f < 2**32 for f in fids)
    assert fids == [flow_id_of(i) for i in ids]
    assert len(set(fids)) == len(fids)


@pytest.mark.parametrize("ip_bytes", [1, 100, 1500, 1501, 1510, 3000, 4000, 10_000])
def test_split_bytes_carries_the_bytes_in_mtu_datagrams(ip_bytes):
    sizes = split_bytes(ip_bytes, "rid")
    ip_sizes = [s + IP_UDP_OVERHEAD for s in sizes]
    assert all(s <= 1500 for s in ip_sizes)
    assert all(s >= header_len("rid") for s in sizes)
    smallest = header_len("rid") + IP_UDP_OVERHEAD
    assert sum(ip_sizes) == max(ip_bytes, smallest)


def _res(**kw):
    d = {"id": "r", "period_ns": 250_000, "frame_bytes": 3000, "tx_offsets_ns": [20_000],
         "hops": [{"src": "A", "dst": "B", "slots": [2, 3, 4, 50]}]}
    d.update(kw)
    return d


def test_single_offset_repeats_every_period_with_its_slot_window():
    inst = instances_of(_res(), cycle_ns=1_000_000, slot_ns=10_000)
    assert [i.offset_ns for i in inst] == [20_000, 270_000, 520_000, 770_000]
    assert inst[0].window_ns == 30_000  # slots 2,3,4 consecutive
    assert inst[1].window_ns == 10_000  # slot 27 not listed: one slot


def test_explicit_offsets_are_used_as_given():
    inst = instances_of(_res(tx_offsets_ns=[500_000, 20_000], period_ns=500_000), 1_000_000, 10_000)
    assert [i.offset_ns for i in inst] == [20_000, 500_000]
    assert inst[1].window_ns == 10_000 and inst[0].window_ns == 30_000


def test_send_plan_spreads_datagrams_over_the_window():
    plan = send_plan(_res(period_ns=1_000_000), {"cycle_ns": 1_000_000, "slot_ns": 10_000})
    assert plan.flow_id == flow_id_of("r")
    assert len(plan.payload_sizes) == 2
    offs = plan.intended_offsets()
    assert [o for o, _, _ in offs] == [20_000, 35_000]
    assert plan.ip_bytes_per_instance == 3000
    assert plan.rate_bps == pytest.approx(3000 * 8e9 / 1_000_000)


def test_send_plan_override_bytes_and_bad_meta():
    plan = send_plan(_res(), {"cycle_ns": 1_000_000, "slot_ns": 10_000}, bytes_per_period=6000)
    assert plan.ip_bytes_per_instance == 6000
    with pytest.raises(ValueError):
        send_plan(_res(), {"cycle_ns": -1, "slot_ns": 10})
