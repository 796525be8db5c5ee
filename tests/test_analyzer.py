"""The pcap analyzer on synthetic captures written with scapy (known faults must be found)."""

import hashlib
import json
import os
import struct
from decimal import Decimal

import numpy as np
import pytest
from scapy.all import ARP, Dot1Q, Ether, IP, Raw, UDP, rdpcap, wrpcap
from scapy.utils import PcapNgWriter

from tools.probes.analyzer import (Thresholds, analyze, count_leaks, modeled_propagation_ns, noise_floor,
                                   promised_window_bps, read_frames, read_probes, rfc3550_jitter,
                                   thresholds_with_noise, write_synthetic_pcap)
from tools.cli.main import main
from tools.probes.probe_format import Probe, flow_id_of, pack, send_plan, unpack

CYCLE = 1_000_000
SLOT = 10_000
T0 = 1_700_000_000 * 10**9  # a cycle boundary

RES = {"id": "r1", "tenant": 1, "src": "A", "dst": "C", "period_ns": 500_000, "frame_bytes": 300,
       "bandwidth_bps": 300 * 8 * 2000, "max_latency_ns": 10_000_000, "latency_bound_ns": 2_000_000,
       "jitter_bound_ns": 20_000, "path": ["A", "B", "C"],
       "hops": [{"src": "A", "dst": "B", "slots": [3, 4, 53, 54]}, {"src": "B", "dst": "C", "slots": [10, 60]}],
       "tx_offsets_ns": [30_000, 530_000]}
META = {"cycle_ns": CYCLE, "slot_ns": SLOT,
        "links": [{"src": "A", "dst": "B", "capacity_bps": 10**9, "propagation_ns": 600_000},
                  {"src": "B", "dst": "C", "capacity_bps": 10**9, "propagation_ns": 400_000}]}


def clean_rows(n=400, latency=50_000, res=RES):
    """(seq, tx_ns, rx_ns, intended_ns, offset_ns, payload_size) following the send plan exactly."""
    plan = send_plan(res, META)
    per = plan.intended_offsets()
    rows = []
    for seq in range(n):
        c, k = divmod(seq, len(per))
        off, inst, frag = per[k]
        intended = T0 + c * CYCLE + off
        tx = intended + 100 + (seq * 37) % 500
        rows.append([seq, tx, tx + latency + (seq * 53) % 3000, intended, inst, plan.payload_sizes[frag]])
    return rows


def frame(row, rid="r1", src="10.0.1.1", dst="10.0.1.2", vlan=None, smac="02:00:00:01:01:00"):
    seq, tx, rx, intended, inst, size = row
    p = Probe(flow_id_of(rid), seq, tx, intended, inst, reservation_id=rid)
    eth = Ether(src=smac, dst="02:00:00:01:02:00")
    if vlan is not None:
        eth = eth / Dot1Q(vlan=vlan)
    pkt = eth / IP(src=src, dst=dst) / UDP(sport=40000, dport=47000) / Raw(pack(p, size))
    pkt.time = Decimal(rx) / Decimal(10**9)
    return pkt


def write(path, rows, **kw):
    wrpcap(str(path), [frame(r, **kw) for r in rows], nano=True)
    return str(path)


def checks(flow):
    return {c["name"]: c for c in flow["checks"]}


def run(tmp_path, rows, res=RES, meta=META, **kw):
    p = write(tmp_path / "cap.pcap", rows)
    rep = analyze([p], [res], meta, **kw)
    assert len(rep.flows) == 1
    return rep, rep.flows[0]


def test_clean_capture_passes_with_exact_figures(tmp_path):
    rows = clean_rows()
    rep, f = run(tmp_path, rows)
    assert rep.passed, [c for c in f["checks"] if not c["pass"]]
    assert (f["sent"], f["received"], f["lost"], f["duplicated"], f["reordered"]) == (400, 400, 0, 0, 0)
    lat = np.array([r[2] - r[1] for r in rows])
    assert f["latency_ns"]["min"] == lat.min() and f["latency_ns"]["max"] == lat.max()
    assert f["latency_ns"]["p99"] == pytest.approx(np.percentile(lat, 99))
    assert f["latency_ns"]["jitter_ns"] == lat.max() - lat.min()
    assert f["slots"]["tx_outside"] == 0 and f["slots"]["arrival_outside"] == 0
    assert f["rate"]["reserved_bps"] == RES["bandwidth_bps"]
    json.dumps(rep.to_dict())


def test_measured_and_modeled_latency_are_kept_apart(tmp_path):
    rep, f = run(tmp_path, clean_rows(latency=50_000))
    lat = f["latency_ns"]
    assert lat["modeled_propagation_ns"] == 1_000_000
    assert lat["propagation_emulated"] is False  # 50 us measured << 1 ms modeled
    assert lat["combined_max_ns"] == lat["max"] + 1_000_000
    assert "modeled" in lat["combined_label"]
    c = checks(f)
    assert "latency_combined" in c and "arrival_window_loose" in c and "arrival_window" not in c


def test_combined_latency_can_fail_while_measured_passes(tmp_path):
    rows = clean_rows(latency=1_200_000)  # 1.2 ms measured: < 2 ms bound, but + 1 ms modeled > bound
    _, f = run(tmp_path, rows, thresholds=Thresholds(propagation="not-emulated"))
    c = checks(f)
    assert c["latency_measured"]["pass"] and not c["latency_combined"]["pass"]
    assert c["latency_combined"]["value"] == f["latency_ns"]["max"] + 1_000_000


def test_emulated_propagation_uses_the_strict_arrival_window(tmp_path):
    rows = clean_rows(latency=1_100_000)  # looks like propagation is emulated (>= half the model)
    rows[7][2] = rows[7][1] + 300_000     # one arrives faster than light along the path
    _, f = run(tmp_path, rows)
    assert f["latency_ns"]["propagation_emulated"] is True
    c = checks(f)
    assert "latency_combined" not in c
    assert not c["arrival_window"]["pass"] and c["arrival_window"]["value"] == 1
    assert f["slots"]["arrival_window_ns"] == [1_000_000, 2_000_000]


def test_loss_is_found_including_tail_loss_with_the_talker_count(tmp_path):
    rows = [r for r in clean_rows() if r[0] not in (5, 6, 100, 399)]
    _, f = run(tmp_path, rows)
    assert f["lost"] == 3 and f["sent"] == 399  # max seq + 1 cannot see the tail
    assert not checks(f)["loss"]["pass"]
    _, f = run(tmp_path, rows, sent_counts={"r1": 400})
    assert f["lost"] == 4 and f["sent_source"] == "talker"


def test_duplicates_are_counted_not_received_twice(tmp_path):
    rows = clean_rows()
    rows.insert(20, list(rows[3]))
    rows[20][2] = rows[19][2] + 1
    rows.append(list(rows[50]))
    rows[-1][2] = rows[-2][2] + 1
    _, f = run(tmp_path, rows)
    assert f["duplicated"] == 2 and f["received"] == 400 and f["lost"] == 0
    assert not checks(f)["duplicates"]["pass"]
    assert checks(f)["loss"]["pass"]


def test_reordering_is_found(tmp_path):
    rows = clean_rows()
    rows[10][2], rows[11][2] = rows[11][2], rows[10][2]  # 11 arrives before 10
    rows[200][2] = rows[205][2] + 10                     # 200 arrives after 205
    _, f = run(tmp_path, rows)
    assert f["reordered"] == 2
    assert not checks(f)["reordering"]["pass"] and checks(f)["loss"]["pass"]


def test_latency_above_bound_fails_with_the_number(tmp_path):
    rows = clean_rows()
    rows[33][2] = rows[33][1] + 2_500_000
    _, f = run(tmp_path, rows)
    c = checks(f)["latency_measured"]
    assert not c["pass"] and c["value"] == 2_500_000 and c["limit"] == 2_000_000
    assert not checks(f)["jitter"]["pass"]


def test_latency_and_jitter_allow_the_bound_plus_the_measured_noise_floor_only(tmp_path):
    rows = clean_rows()
    rows[33][2] = rows[33][1] + 2_015_000          # 15 us above the 2 ms bound
    _, f = run(tmp_path, rows, thresholds=Thresholds(noise_floor_ns=10_000))
    c = checks(f)
    lat, jit = c["latency_measured"], c["jitter"]
    assert (lat["bound_ns"], lat["noise_floor_ns"], lat["limit"], lat["status"]) == (2_000_000, 10_000, 2_010_000, "fail")
    assert not f["pass"] and not lat["pass"]
    _, f = run(tmp_path, rows, thresholds=Thresholds(noise_floor_ns=16_000))
    c = checks(f)
    assert c["latency_measured"]["status"] == "pass" and c["latency_measured"]["limit"] == 2_016_000
    # the jitter bound is 20 us, and 2 ms of jitter fails against it + 16 us of noise
    assert c["jitter"]["status"] == "fail" and c["jitter"]["limit"] == 36_000


def test_a_noise_floor_above_the_bound_is_not_checkable_never_a_pass(tmp_path):
    rows = clean_rows()
    _, f = run(tmp_path, rows, thresholds=Thresholds(noise_floor_ns=25_000))   # > the 20 us jitter bound
    c = checks(f)
    assert c["jitter"]["status"] == "not_checkable" and c["jitter"]["pass"] is False
    assert "NOT CHECKABLE" in c["jitter"]["detail"]
    assert c["tx_slot"]["status"] == "not_checkable"           # the slot window is 20 us too
    assert c["rate"]["status"] == "not_checkable"              # a window's promise rests on the arrival spread
    assert c["latency_measured"]["status"] == "pass"           # 2 ms bound: checkable
    assert set(f["not_checkable"]) == {"jitter", "tx_slot", "rate"}
    # the flow passes on its checkable checks and says plainly what it could not check
    assert f["pass"] and "not checkable: jitter, tx_slot, rate" in f["verdict"]
    # a failing checkable check still fails the flow
    rows[3][2] = rows[3][1] + 3_000_000
    _, f = run(tmp_path, rows, thresholds=Thresholds(noise_floor_ns=25_000))
    assert not f["pass"] and checks(f)["latency_measured"]["status"] == "fail"


def test_an_unmeasured_noise_floor_makes_every_time_check_not_checkable(tmp_path):
    """A reference flow that delivered nothing leaves the platform's noise unknown: nothing that
    allows it can pass (nor fail on it); loss, duplicates and reordering still judge the flow."""
    th = thresholds_with_noise({"noise_floor_ns": None, "packets": 0}, propagation="emulated")
    assert th.noise_floor_missing and th.noise_floor_ns is None
    rows = clean_rows()
    _, f = run(tmp_path, rows, thresholds=th)
    c = checks(f)
    for name in ("latency_measured", "jitter", "tx_slot", "rate", "instance_bytes"):
        assert c[name]["status"] == "not_checkable" and c[name]["pass"] is False, name
        assert c[name]["noise_floor_ns"] is None and c[name]["limit"] is None
        assert "no noise floor (its reference flow delivered no packets)" in c[name]["detail"]
    assert c["loss"]["status"] == "pass" and f["pass"]
    del rows[5]                                                  # a loss still fails the flow
    _, f = run(tmp_path, rows, thresholds=th, sent_counts={"r1": len(rows) + 1})
    assert not f["pass"] and checks(f)["loss"]["status"] == "fail"
    assert thresholds_with_noise({"noise_floor_ns": 7_000}).noise_floor_ns == 7_000


def test_noise_floor_is_max_minus_min_of_the_reference_flow(tmp_path):
    rows = clean_rows(n=200)
    ref = {**RES, "id": "ref-1"}
    ref_rows = [[r[0], r[1], r[3] + 5_000 + (r[0] % 10) * 1_000, r[3], r[4], r[5]] for r in rows]
    p = str(tmp_path / "cap.pcap")
    wrpcap(p, [frame(r) for r in rows] + [frame(r, rid="ref-1") for r in ref_rows], nano=True)
    probes = read_probes([p])
    nf = noise_floor(probes, [flow_id_of("ref-1")])
    d = np.array([r[2] - r[3] for r in ref_rows])
    assert nf["noise_floor_ns"] == d.max() - d.min() and nf["packets"] == 200
    assert nf["p99_spread_ns"] == round(np.percentile(d, 99) - d.min())
    assert noise_floor(probes, [12345])["noise_floor_ns"] is None
    rep = analyze([p], [RES, ref], META)
    assert {f["id"] for f in rep.flows} == {"r1", "ref-1"}


def test_rate_need_is_what_the_schedule_promises_in_the_window():
    # 1 ms periods, 100 ms windows: a spread of 10.5 ms leaves 89 whole periods
    assert promised_window_bps(8_000_000, 1_000_000, 100_000_000, 10_500_000) == 8_000_000 * 89 / 100
    assert promised_window_bps(8_000_000, 1_000_000, 100_000_000, 0) == 8_000_000
    assert promised_window_bps(8_000_000, 1_000_000, 100_000_000, 200_000_000) == 0


def test_slot_window_violations_are_found(tmp_path):
    rows = clean_rows()
    rows[40][1] += 25_000    # sent 25 us late: past its 20 us window (2 slots)
    rows[41][1] += 500       # still inside its window
    rows[42][1] -= 1_000     # sent before its window opens (belongs to the previous, closed window)
    _, f = run(tmp_path, rows)
    c = checks(f)["tx_slot"]
    assert not c["pass"] and c["value"] == 2
    _, f = run(tmp_path, rows, thresholds=Thresholds(tx_tolerance_ns=6_000))
    assert checks(f)["tx_slot"]["value"] == 1


def test_arrival_outside_the_cycle_window_fails(tmp_path):
    rows = clean_rows()
    rows[60][2] = rows[60][1] + 1_990_000 + 50_000  # arrives after offset + latency bound
    _, f = run(tmp_path, rows, thresholds=Thresholds(propagation="not-emulated"))
    c = checks(f)["arrival_window_loose"]
    assert not c["pass"] and c["value"] == 1


def test_excess_bytes_per_instance_fail(tmp_path):
    rows = clean_rows(n=40)
    extra = list(rows[4])
    extra[0] = 1000  # an extra datagram (new seq) in the same instance
    extra[2] += 10
    _, f = run(tmp_path, rows + [extra])
    c = checks(f)["instance_bytes"]
    assert not c["pass"] and c["value"] == 300 + extra[5] + 28


def test_rate_below_reservation_fails(tmp_path):
    rows = [r for r in clean_rows(n=800) if r[0] % 2 == 0 or r[0] >= 700]
    _, f = run(tmp_path, rows, thresholds=Thresholds(rate_window_ns=50_000_000))
    c = checks(f)["rate"]
    assert not c["pass"] and c["value"] < 0.6 * RES["bandwidth_bps"]


def test_vlan_tags_pcapng_and_two_files(tmp_path):
    rows = clean_rows(n=100)
    a = write(tmp_path / "a.pcap", rows[:50], vlan=7)
    b = str(tmp_path / "b.pcapng")
    w = PcapNgWriter(b)
    for r in rows[50:]:
        w.write(frame(r))
    w.close()
    rep = analyze([a, b], [RES], META)
    f = rep.flows[0]
    assert f["received"] == 100 and f["lost"] == 0
    assert read_frames(b).ts_resolution_ns == 1000.0  # scapy writes microsecond pcapng


def _pcapng_ns(path, frames_ts):
    """A minimal pcapng with if_tsresol = 9 (nanoseconds)."""
    def block(t, body):
        body += bytes(-len(body) % 4)
        n = 12 + len(body)
        return struct.pack("<II", t, n) + body + struct.pack("<I", n)
    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", 1, 0, 65535) + struct.pack("<HHB", 9, 1, 9) + bytes(3) + bytes(4))
    for raw, ts in frames_ts:
        out += block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(raw), len(raw)) + raw)
    with open(path, "wb") as f:
        f.write(out)


def test_pcapng_nanosecond_resolution(tmp_path):
    rows = clean_rows(n=10)
    path = str(tmp_path / "ns.pcapng")
    _pcapng_ns(path, [(bytes(frame(r)), r[2]) for r in rows])
    p = read_probes([path])
    assert p.rx_ns.tolist() == [r[2] for r in rows]
    assert p.ids == {flow_id_of("r1"): "r1"}


def test_unknown_and_non_probe_traffic_is_ignored_or_listed(tmp_path):
    rows = clean_rows(n=20)
    pkts = [frame(r) for r in rows] + [frame(r, rid="other") for r in clean_rows(n=5)]
    noise = Ether() / IP() / UDP(dport=47000) / Raw(b"not a probe" * 10)
    noise.time = Decimal(T0) / 10**9
    pkts.append(noise)
    arp = Ether() / ARP()
    arp.time = Decimal(T0) / 10**9
    pkts.append(arp)
    wrpcap(str(tmp_path / "m.pcap"), pkts, nano=True)
    rep = analyze([str(tmp_path / "m.pcap")], [RES], META)
    assert rep.frames == 27 and rep.probe_packets == 25
    assert rep.flows[0]["received"] == 20
    assert rep.unknown_flows == [{"flow_id": flow_id_of("other"), "reservation_id": "other", "packets": 5}]


def test_required_but_absent_reservation_fails(tmp_path):
    p = write(tmp_path / "c.pcap", clean_rows(n=10))
    other = dict(RES, id="r2")
    rep = analyze([p], [RES, other], META, require=["r2"])
    by = {f["id"]: f for f in rep.flows}
    assert by["r1"]["pass"] and not by["r2"]["pass"] and by["r2"]["received"] == 0
    assert not rep.passed


def test_rfc3550_jitter_matches_the_recurrence():
    transit = np.array([100, 130, 90, 90, 200, 150])
    j = 0.0
    for d in np.abs(np.diff(transit)):
        j += (d - j) / 16
    final, jmax = rfc3550_jitter(transit)
    assert final == pytest.approx(j) and jmax >= final


def test_modeled_propagation_uses_either_direction_and_unknown_is_none():
    links = [{"src": "A", "dst": "B", "propagation_ns": 5}, {"src": "C", "dst": "B", "propagation_ns": 7}]
    assert modeled_propagation_ns(["A", "B", "C"], links) == 12
    assert modeled_propagation_ns(["A", "D"], links) is None
    assert modeled_propagation_ns(["A", "B"], None) is None


def test_leaked_frames_are_counted_per_port_and_tenant(tmp_path):
    macs = {"02:00:00:01:01:00": 1, "02:00:00:01:02:00": 1, "02:00:00:02:01:00": 2, "02:00:00:03:01:00": 3}
    ips = {"10.0.1.1": 1, "10.0.1.2": 1, "10.0.2.1": 2, "10.0.3.1": 3}
    rows = clean_rows(n=10)
    own = [frame(r, smac="02:00:00:01:01:00") for r in rows]
    leak2 = [frame(r, src="10.0.2.1", smac="02:00:00:02:01:00") for r in rows[:3]]
    leak3_by_ip = [frame(r, src="10.0.3.1", smac="02:99:99:99:99:99") for r in rows[:2]]
    arp3 = Ether(src="02:00:00:03:01:00", dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.0.3.1")
    lldp = Ether(src="02:99:99:99:99:98", dst="01:80:c2:00:00:0e", type=0x88CC) / Raw(b"\x00" * 20)
    for p in (arp3, lldp):
        p.time = Decimal(T0) / 10**9
    wrpcap(str(tmp_path / "h1.pcap"), own + leak2 + leak3_by_ip + [arp3, lldp], nano=True)
    wrpcap(str(tmp_path / "h2.pcap"), [frame(r, src="10.0.2.1", smac="02:00:00:02:01:00") for r in rows],
           nano=True)
    out = count_leaks({"t1h1": str(tmp_path / "h1.pcap"), "t2h1": [str(tmp_path / "h2.pcap")]},
                      {"t1h1": 1, "t2h1": 2}, tenant_of_mac=macs, tenant_of_ip=ips)
    h1 = out["ports"]["t1h1"]
    assert h1["frames"] == 17 and h1["own"] == 10 and h1["leaked"] == 6 and h1["unattributed"] == 1
    assert h1["leaked_by_tenant"] == {2: 3, 3: 3}
    assert out["ports"]["t2h1"]["leaked"] == 0 and out["ports"]["t2h1"]["own"] == 10
    assert out["leaked"] == 6 and out["pass"] is False


def test_report_outputs(tmp_path):
    from tools.probes.report import text_summary, to_json, write_all

    rows = clean_rows()
    rows[5][2] = rows[5][1] + 3_000_000
    rep, _ = run(tmp_path, rows)
    txt = text_summary(rep)
    assert "FAIL  latency_measured" in txt and "overall: FAIL" in txt and "modeled propagation" in txt
    d = json.loads(to_json(rep))
    assert d["pass"] is False and d["flows"][0]["latency_ns"]["bound_ns"] == 2_000_000
    out = write_all(rep, str(tmp_path / "rep"))
    assert len(out["pngs"]) == 3 and all(open(p, "rb").read(4) == b"\x89PNG" for p in out["pngs"])
    html = open(out["html"]).read()
    assert html.count("data:image/png;base64,") == 3 and "latency_measured" in html


# --- CLI -------------------------------------------------------------------------------------


def _schedule(tmp_path):
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps({"version": 1, **META, "reservations": [RES]}))
    return str(path)


def test_cli_verify_pcap_exit_codes(tmp_path, capsys):
    sched = _schedule(tmp_path)
    good = write(tmp_path / "good.pcap", clean_rows())
    bad = write(tmp_path / "bad.pcap", [r for r in clean_rows() if r[0] != 17])
    assert main(["verify", "pcap", "--schedule", sched, good]) == 0
    out = capsys.readouterr().out
    assert "PASS  loss" in out and "overall: PASS" in out
    assert main(["verify", "pcap", "--schedule", sched, bad, "--json"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert d["pass"] is False and d["flows"][0]["lost"] == 1
    talker = tmp_path / "t.json"
    talker.write_text(json.dumps({"reservation_id": "r1", "sent": 401}))
    assert main(["verify", "pcap", "--schedule", sched, good, "--talker", str(talker)]) == 1


@pytest.mark.parametrize("make_args", [
    lambda t, s, g: ["verify", "pcap", "--schedule", s, str(t / "missing.pcap")],
    lambda t, s, g: ["verify", "pcap", "--schedule", s, s],                        # not a pcap
    lambda t, s, g: ["verify", "pcap", "--schedule", str(t / "nope.json"), g],
    lambda t, s, g: ["verify", "pcap", "--schedule", s, "--reservation", "zz", g],
    lambda t, s, g: ["verify", "pcap", "--schedule", g, g],                        # schedule not JSON
    lambda t, s, g: ["verify", "pcap", "--schedule", s, "--talker", s, g],         # not a talker result
])
def test_cli_verify_pcap_bad_input_is_exit_2(tmp_path, capsys, make_args):
    sched = _schedule(tmp_path)
    good = write(tmp_path / "good.pcap", clean_rows(n=10))
    assert main(make_args(tmp_path, sched, good)) == 2
    err = capsys.readouterr().err
    assert err.startswith("dnctl: ") and "Traceback" not in err


def test_cli_verify_pcap_plot_dir(tmp_path, capsys):
    sched = _schedule(tmp_path)
    good = write(tmp_path / "good.pcap", clean_rows())
    assert main(["verify", "pcap", "--schedule", sched, "--reservation", "r1", good,
                 "--plot", str(tmp_path / "plots")]) == 0
    names = set(os.listdir(tmp_path / "plots"))
    assert {"report.json", "summary.txt", "report.html", "r1-latency-cdf.png"} <= names


# ---------------------------------------------------------------------------------------------
# the numpy synthetic writer (benchmark captures): bytes pinned, frames checked against scapy

BENCH_RES = {"id": "bench-1", "tenant": 1, "src": "A", "dst": "B", "period_ns": 100_000, "frame_bytes": 100,
             "bandwidth_bps": 8_000_000, "max_latency_ns": 10_000_000, "latency_bound_ns": 5_000_000,
             "jitter_bound_ns": 10_000, "path": ["A", "B"], "hops": [{"src": "A", "dst": "B", "slots": [0]}],
             "tx_offsets_ns": [0]}
BENCH_META = {"cycle_ns": 100_000, "slot_ns": 1_000}


@pytest.mark.parametrize("n, res, kw, digest, size", [
    (1000, BENCH_RES, {}, "9f69d278365b70433286239011cdcdb5f730bcf217b6e9c558d06726c8aeee95", 130024),
    (777, dict(BENCH_RES, id="r-two", frame_bytes=600, period_ns=50_000, tx_offsets_ns=[1000]),
     {"latency_ns": 5000, "seed": 7}, "f686f318c4da046208fdfcd30d3b62ba8f0b8b70f2ead7a271ed5941178662e3", 489534),
])
def test_synthetic_pcap_bytes_are_pinned(tmp_path, n, res, kw, digest, size):
    path = tmp_path / "syn.pcap"
    write_synthetic_pcap(str(path), n, res, BENCH_META, **kw)
    data = path.read_bytes()
    assert len(data) == size
    assert hashlib.sha256(data).hexdigest() == digest


def test_synthetic_pcap_frames_parse_in_scapy_and_in_the_analyzer(tmp_path):
    path = str(tmp_path / "syn.pcap")
    write_synthetic_pcap(path, 20, BENCH_RES, BENCH_META)
    pkts = rdpcap(path)
    assert len(pkts) == 20
    for seq, pkt in enumerate(pkts):
        assert (pkt[Ether].src, pkt[Ether].dst, pkt[Ether].type) == ("02:00:00:00:00:01", "02:00:00:00:00:02", 0x0800)
        assert (pkt[IP].src, pkt[IP].dst, pkt[IP].proto, pkt[IP].ttl, pkt[IP].len) == ("10.0.1.1", "10.0.1.2", 17,
                                                                                     64, len(pkt) - 14)
        assert (pkt[UDP].sport, pkt[UDP].dport, pkt[UDP].len) == (40000, 47000, len(pkt) - 34)
        probe = unpack(bytes(pkt[UDP].payload))
        assert probe.seq == seq and probe.reservation_id == "bench-1" and probe.flow_id == flow_id_of("bench-1")
        assert int(pkt.time * 10**9) - probe.tx_ns >= 20_000
    p = read_probes([path])
    assert p.seq.tolist() == list(range(20)) and set(p.ids.values()) == {"bench-1"}
