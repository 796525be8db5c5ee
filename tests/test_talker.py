"""The talker against loopback UDP: counts, order, payload fields and plan; never timed assertions.

Pacing statistics are computed and checked for consistency only (a loaded 2-core machine may
pace badly; that must show in the figures, not make a test flaky). The capture test needs root
and tcpdump (a machine feature) and is skipped without them.
"""

import concurrent.futures
import json
import os
import shutil
import socket
import time

import numpy as np
import pytest

from tools.probes.probe_format import FLAG_LATE, flow_id_of, unpack
from tools.probes.talker import TalkerResult, flood, send

CYCLE = 2_000_000
SLOT = 50_000
RES = {"id": "talk-1", "tenant": 1, "src": "A", "dst": "B", "period_ns": 1_000_000, "frame_bytes": 200,
       "bandwidth_bps": 1_600_000, "max_latency_ns": 10_000_000, "latency_bound_ns": 5_000_000,
       "jitter_bound_ns": SLOT, "path": ["A", "B"], "hops": [{"src": "A", "dst": "B", "slots": [2, 22]}],
       "tx_offsets_ns": [100_000, 1_100_000]}
META = {"cycle_ns": CYCLE, "slot_ns": SLOT}


@pytest.fixture
def listener():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(("127.0.0.1", 0))
    s.settimeout(2.0)
    yield s
    s.close()


def drain(s, n):
    out = []
    try:
        while len(out) < n:
            out.append(s.recv(65535))
    except socket.timeout:
        pass
    return out


def test_sends_count_in_order_at_the_planned_offsets(listener):
    rec = []
    r = send(RES, META, "127.0.0.1", listener.getsockname()[1], count=30, record=rec, quiet=True)
    got = [unpack(d) for d in drain(listener, 30)]
    assert r.sent == 30 and len(got) == 30
    assert [p.seq for p in got] == list(range(30))
    assert all(p.flow_id == flow_id_of("talk-1") and p.reservation_id == "talk-1" for p in got)
    intended = np.array([p.intended_ns for p in got])
    assert set(np.diff(intended).tolist()) == {1_000_000}  # one datagram per period
    assert {(i - r.start_ns) % CYCLE for i in intended.tolist()} == {100_000, 1_100_000}
    assert {p.tx_offset_ns for p in got} == {100_000, 1_100_000}
    assert r.start_ns % CYCLE == 0  # cycles aligned to the epoch
    tx = np.array([p.tx_ns for p in got])
    assert (tx >= intended).all()   # never early
    assert [a for _, a in rec] == tx.tolist()
    # the reported statistics are those of the recorded send times
    err = np.abs(tx - intended)
    assert r.pacing_error_ns["max"] == err.max() and r.pacing_error_ns["mean"] == pytest.approx(err.mean())
    assert r.late == int((err > 0.1 * SLOT).sum())
    assert sum(1 for p in got if p.flags & FLAG_LATE) <= r.late + 1
    assert r.pacing_ok == (r.late <= 0.01 * 30)
    assert r.sent_ip_bytes == 30 * 200


def test_frames_above_mtu_are_split_inside_the_slot_window(listener):
    res = dict(RES, frame_bytes=4000, tx_offsets_ns=[100_000], period_ns=CYCLE, bandwidth_bps=16_000_000)
    r = send(res, META, "127.0.0.1", listener.getsockname()[1], count=6, quiet=True)
    raw = drain(listener, 6)
    got = [unpack(d) for d in raw]
    assert len(got) == 6 and r.sent_ip_bytes == 2 * 4000
    assert sum(len(d) + 28 for d in raw[:3]) == 4000 and all(len(d) + 28 <= 1500 for d in raw)
    assert [p.frag_index for p in got] == [0, 1, 2, 0, 1, 2]
    assert all(p.frag_count == 3 for p in got)
    offs = sorted({(p.intended_ns - r.start_ns) % CYCLE for p in got})
    assert offs[0] == 100_000 and offs[-1] < 100_000 + SLOT  # one slot window (slot 2 only)


def test_duration_sends_whole_cycles(listener):
    r = send(RES, META, "127.0.0.1", listener.getsockname()[1], duration=0.01, quiet=True)
    assert r.cycles == 5 and r.sent == 10
    assert len(drain(listener, 10)) == 10


def test_rate_misbehaviour_sends_more_bytes_per_period(listener):
    r = send(RES, META, "127.0.0.1", listener.getsockname()[1], count=8, rate=3 * 1_600_000, quiet=True)
    got = drain(listener, 8)
    assert len(got) == 8 and all(len(d) + 28 == 600 for d in got)
    assert r.misbehaving == {"rate": 4_800_000}


def test_burst_misbehaviour_keeps_bytes_but_bunches_send_times(listener):
    r = send(RES, META, "127.0.0.1", listener.getsockname()[1], count=8, burst=4, quiet=True)
    got = [unpack(d) for d in drain(listener, 8)]
    assert len(got) == 8 and r.sent_ip_bytes == 8 * 200
    starts = [p.intended_ns for p in got]
    assert len(set(starts[:4])) == 1 and len(set(starts[4:])) == 1 and starts[4] - starts[0] == 4_000_000


def test_falling_behind_is_said_loudly_never_hidden(listener, capsys):
    # a start 50 ms in the past: every datagram is late, all are still sent
    start = (time.time_ns() // CYCLE - 25) * CYCLE
    r = send(RES, META, "127.0.0.1", listener.getsockname()[1], count=10, start_ns=start)
    assert r.sent == 10 and len(drain(listener, 10)) == 10
    assert not r.pacing_ok and not r.rate_kept and r.late == 10
    err = capsys.readouterr().err
    assert "TALKER WARNING" in err and "nothing was skipped" in err
    assert json.loads(json.dumps(r.to_dict()))["late"] == 10


def test_bad_arguments():
    with pytest.raises(ValueError):
        send(RES, META, "127.0.0.1", 9, quiet=True)
    with pytest.raises(ValueError):
        send(RES, META, None, 9, count=1, quiet=True)
    with pytest.raises(ValueError):
        send(RES, META, "127.0.0.1", 9, count=1, burst=0, quiet=True)


def test_python_flood_sends_roughly_the_rate(listener):
    out = flood("127.0.0.1", 2_000_000, 0.05, listener.getsockname()[1], length=472, use_iperf=False)
    n = len(drain(listener, out["packets"]))
    assert out["tool"] == "python" and n == out["packets"] > 0
    assert out["sent_bytes"] == n * 500


def test_talkers_given_the_same_not_before_start_in_the_same_cycle(listener):
    """``not_before_ns``: talkers started a moment apart begin in one cycle, the first at or after it."""
    port = listener.getsockname()[1]
    nb = time.time_ns() + 300_000_000
    with concurrent.futures.ThreadPoolExecutor(2) as ex:     # two talkers started one after the other
        fa = ex.submit(send, RES, META, "127.0.0.1", port, count=2, quiet=True, not_before_ns=nb)
        time.sleep(0.05)
        fb = ex.submit(send, RES, META, "127.0.0.1", port, count=2, quiet=True, not_before_ns=nb, spin_ns=2_000_000)
        a, b = fa.result(), fb.result()
    assert a.start_ns == b.start_ns >= nb and a.start_ns % CYCLE == 0 and a.start_ns - nb < CYCLE
    assert a.sent == b.sent == 2 and len(drain(listener, 4)) == 4
    c = send(RES, META, "127.0.0.1", port, count=1, quiet=True, not_before_ns=0)   # in the past: 20 ms from now
    assert c.start_ns > a.start_ns and c.start_ns % CYCLE == 0


def test_cli_probe_send_offline_and_bad_input(tmp_path, listener, capsys):
    from tools.cli.main import main

    sched = tmp_path / "s.json"
    sched.write_text(json.dumps({"version": 1, **META, "links": [], "reservations": [RES]}))
    out = tmp_path / "t.json"
    rc = main(["probe", "send", "--schedule", str(sched), "--reservation", "talk-1", "--dst", "127.0.0.1",
               "--port", str(listener.getsockname()[1]), "--count", "5", "--out", str(out)])
    assert rc in (0, 1)  # 1 only when this machine could not pace (said on stderr)
    d = json.loads(out.read_text())
    assert d["sent"] == 5 and len(drain(listener, 5)) == 5
    assert (rc == 0) == (d["pacing_ok"] and d["rate_kept"])
    capsys.readouterr()
    assert main(["probe", "send", "--schedule", str(sched), "--reservation", "nope", "--dst", "127.0.0.1",
                 "--count", "1"]) == 2
    assert main(["probe", "send", "--schedule", str(sched), "--reservation", "talk-1", "--count", "1"]) == 2
    assert main(["probe", "send", "--schedule", str(sched), "--reservation", "talk-1", "--dst", "127.0.0.1",
                 "--count", "0"]) == 2
    assert main(["probe", "send", "--schedule", str(sched), "--reservation", "talk-1", "--dst", "127.0.0.1",
                 "--count", "1", "--spin", "-1"]) == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("tcpdump"), reason="needs root and tcpdump")
def test_capture_talker_and_analyzer_end_to_end_on_loopback(tmp_path, listener):
    from tools.probes.analyzer import Thresholds, analyze, read_frames
    from tools.probes.capture import Capture

    port = listener.getsockname()[1]
    pcap = str(tmp_path / "lo.pcap")
    cap = Capture("lo", pcap, f"udp and dst port {port}").start()
    try:
        r = send(RES, META, "127.0.0.1", port, count=40, quiet=True)
        assert len(drain(listener, 40)) == 40
        time.sleep(0.1)
    finally:
        res = cap.stop()
    assert res.received == 40
    with open(pcap, "rb") as f:
        assert f.read(4) == b"\x4d\x3c\xb2\xa1"  # nanosecond pcap
    fr = read_frames(pcap)
    assert len(fr) == 40 and fr.ts_resolution_ns == 1.0
    rep = analyze([pcap], [RES], META, sent_counts={"talk-1": r.sent},
                  thresholds=Thresholds(tx_tolerance_ns=10**9))
    f = rep.flows[0]
    assert (f["sent"], f["received"], f["lost"], f["duplicated"], f["reordered"]) == (40, 40, 0, 0, 0)
    assert f["latency_ns"]["min"] > 0  # kernel receive time after the payload's tx time


def test_realtime_option_restores_the_scheduling_policy(listener):
    before = os.sched_getscheduler(0)
    r = send(RES, META, "127.0.0.1", listener.getsockname()[1], count=3, realtime=True, quiet=True)
    assert r.sent == 3 and len(drain(listener, 3)) == 3
    assert os.sched_getscheduler(0) == before
    assert (os.geteuid() == 0) or any("SCHED_FIFO" in w for w in r.warnings)


def test_closed_port_at_destination_is_not_a_send_error():
    # a host that only captures answers ICMP port unreachable; the talker must keep sending
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    r = send(RES, META, "127.0.0.1", port, count=6, quiet=True)
    assert r.sent == 6 and r.send_errors == 0
    out = flood("127.0.0.1", 1_000_000, 0.02, port, length=100, use_iperf=False)
    assert out["send_errors"] == 0 and out["packets"] > 0
