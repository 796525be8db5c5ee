"""TSNKit interop: read instances, schedule with `dnctl tsnkit`, and let TSNKit's own simulator check the outputs."""

import csv
import json
import os
import re
import subprocess
import sys

import networkx as nx
import numpy as np
import pytest
from tsnkit.data.dataset_spec import TOPO_FUNC, generate_flowset

from controller.core.model import Hop, Reservation
from controller.core.scheduler import Scheduler
from schedules.tsnkit_io import (TsnkitFormatError, _assign_queues, _Frame, read_instance, schedule_instance,
                                 write_outputs, write_subset_task)
from tools.cli.main import main

TOPO_CSV = """link,q_num,rate,t_proc,t_prop
"(0, 1)",8,1,2000,0
"(1, 0)",8,1,2000,0
"(0, 2)",8,1,2000,0
"(2, 0)",8,1,2000,0
"(1, 3)",8,1,2000,0
"(3, 1)",8,1,2000,0
"""


def generate(tmp_path, topo: str, num_sw: int, streams: int, seed: int, period=1, size=2, deadline=3):
    """A TSNKit instance made by TSNKit's own generator (topo: 0 line, 1 ring, 3 mesh)."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        net = TOPO_FUNC[topo](num_sw, num_queue=8, data_rate=1, header=str(tmp_path / "inst_topo"))
        generate_flowset(nx.DiGraph(net), size, period, deadline, streams, num_sw, num_sw, str(tmp_path / "inst_task"))
    finally:
        np.random.set_state(state)
    return tmp_path / "inst_task.csv", tmp_path / "inst_topo.csv"


def simulate_full(task, outdir) -> tuple[str, dict[int, float]]:
    """The simulator's '[Potential Errors]' line and its average delay per stream."""
    proc = subprocess.run([sys.executable, "-m", "tsnkit.simulation.tas", str(task), str(outdir) + "/", "--no-draw"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [l for l in proc.stdout.splitlines() if l.startswith("[Potential Errors]")]
    assert lines, proc.stdout[-2000:]
    delays = {}
    for l in proc.stdout.splitlines():
        m = re.match(r"Flow\s+(\d+):\s+Average delay:\s+([-\d.na]+)", l)
        if m:
            delays[int(m.group(1))] = float(m.group(2))
    return lines[0], delays


def expected_sim_delays(outdir) -> dict[int, float]:
    """What the simulator measures for our schedule: DELAY.csv (last start - first start) minus its T_PROC."""
    return {int(r["stream"]): int(r["delay"]) - 2000 for r in csv.DictReader(open(outdir / "DELAY.csv"))}


@pytest.mark.parametrize("topo, num_sw, streams, seed, size", [(1, 6, 40, 3, 2), (3, 8, 60, 5, 3), (0, 5, 30, 9, 2)])
def test_dnctl_tsnkit_passes_the_simulator(tmp_path, capsys, topo, num_sw, streams, seed, size):
    task, net = generate(tmp_path, topo, num_sw, streams, seed, size=size)
    out = tmp_path / "out"
    code = main(["tsnkit", str(task), str(net), str(out), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0, summary
    assert summary["scheduled"] == summary["streams"] == streams and summary["problems"] == {}
    assert sorted(os.listdir(out)) == ["DELAY.csv", "GCL.csv", "OFFSET.csv", "QUEUE.csv", "ROUTE.csv"]
    with open(out / "OFFSET.csv") as f:
        assert len(list(csv.DictReader(f))) == streams
    # delays within the deadlines (TSNKit's notion: last start + transmission + t_proc - first start)
    deadlines = {int(r["stream"]): int(r["deadline"]) for r in csv.DictReader(open(task))}
    sizes = {int(r["stream"]): int(r["size"]) for r in csv.DictReader(open(task))}
    for r in csv.DictReader(open(out / "DELAY.csv")):
        s = int(r["stream"])
        assert int(r["delay"]) + sizes[s] * 8 + 2000 <= deadlines[s]
    errors, delays = simulate_full(task, out)
    assert errors == "[Potential Errors]: []"
    assert delays == expected_sim_delays(out)  # the simulator sees exactly the delays we scheduled


def test_waiting_frames_get_their_own_queue_and_still_pass(tmp_path):
    # ES 2 and ES 4 hang off switch 0, ES 3 off switch 1. Stream 0 (2->3) waits at 0->1 from 2800 ns
    # to its window at 5000 ns; stream 1 (4->3) is sent on 0->1 at 3800 ns, inside that wait.
    (tmp_path / "topo.csv").write_text(TOPO_CSV + '"(4, 0)",8,1,2000,0\n"(0, 4)",8,1,2000,0\n')
    (tmp_path / "task.csv").write_text("stream,src,dst,size,period,deadline,jitter\n"
                                       "0,2,[3],100,100000,100000,100000\n"
                                       "1,4,[3],100,100000,100000,100000\n")
    inst = read_instance(tmp_path / "task.csv", tmp_path / "topo.csv")
    sched = Scheduler(inst.topology, slot_ns=100, base_cycle_ns=100_000, max_share=1.0)

    def res(rid, path, starts):
        hops = [Hop(u, v, list(range(s, s + 8))) for (u, v), s in zip(zip(path, path[1:]), starts)]
        return Reservation(id=rid, tenant=1, src=path[0], dst=path[-1], period_ns=100_000, frame_bytes=100,
                           bandwidth_bps=8000, max_latency_ns=100_000, latency_bound_ns=(starts[-1] + 8) * 100 + 2000,
                           jitter_bound_ns=100, path=path, hops=hops, tx_offsets_ns=[starts[0] * 100])

    sched.restore(res("s0", ["2", "0", "1", "3"], [0, 50, 78]))
    sched.restore(res("s1", ["4", "0", "1", "3"], [10, 38, 66]))
    out = tmp_path / "out"
    rep = write_outputs(sched, inst, out)
    assert rep.problems == {}
    queues = {(r["stream"], r["link"]): int(r["queue"]) for r in csv.DictReader(open(out / "QUEUE.csv"))}
    assert queues[("0", "(0, 1)")] != queues[("1", "(0, 1)")]
    errors, delays = simulate_full(tmp_path / "task.csv", out)
    assert errors == "[Potential Errors]: []" and delays == expected_sim_delays(out)

    # control: with every frame in queue 0 the waiting frame leaves in the other's window
    for name, col in (("QUEUE.csv", "queue"), ("GCL.csv", "queue")):
        rows = list(csv.DictReader(open(out / name)))
        with open(out / name, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows({**r, col: 0} for r in rows)
    assert simulate_full(tmp_path / "task.csv", out)[1] != expected_sim_delays(out)


def test_assign_queues_separates_a_waiting_frame():
    # frame 0 arrives at 0 and waits for its window at 5000; frame 1's window 2000-3000 opens meanwhile
    a = _Frame(0, ("0", "1"), 5000, 6000, 0)
    b = _Frame(1, ("0", "1"), 2000, 3000, 2000)
    c = _Frame(2, ("0", "1"), 7000, 8000, 7000)
    assert _assign_queues([a, b, c], 10_000, {0: 10_000, 1: 10_000, 2: 10_000}, 100, 8)
    assert a.queue != b.queue and c.queue == 0
    assert not _assign_queues([_Frame(0, ("0", "1"), 5000, 6000, 0), _Frame(1, ("0", "1"), 2000, 3000, 2000)],
                              10_000, {0: 10_000, 1: 10_000}, 100, 1)


def test_read_instance_maps_streams_and_end_stations(tmp_path):
    (tmp_path / "topo.csv").write_text(TOPO_CSV)
    (tmp_path / "task.csv").write_text("stream,src,dst,size,period,deadline,jitter\n0,2,[3],100,1000000,30000,30000\n")
    inst = read_instance(tmp_path / "task.csv", tmp_path / "topo.csv")
    topo, reqs = inst
    assert sorted(topo.nodes) == ["0", "1", "2", "3"]
    assert topo.graph.nodes["2"]["role"] == "end_station" and topo.graph.nodes["0"]["role"] == "switch"
    assert topo.capacity_bps("0", "1") == 1_000_000_000
    (r,) = reqs
    assert (r.id, r.src, r.dst, r.frame_bytes, r.period_ns, r.max_latency_ns) == ("s0", "2", "3", 100, 1_000_000, 30000)
    assert r.paths == [["2", "0", "1", "3"]]
    assert inst.hyperperiod_ns == 1_000_000


def test_infeasible_deadline_exits_1(tmp_path, capsys):
    (tmp_path / "topo.csv").write_text(TOPO_CSV)
    # 3 hops of 1500 B at 1 Gb/s need 3 * (12000 + 2000) ns; 20 us is not enough
    (tmp_path / "task.csv").write_text("stream,src,dst,size,period,deadline,jitter\n"
                                       "0,2,[3],1500,1000000,20000,20000\n1,3,[2],100,1000000,30000,30000\n")
    code = main(["tsnkit", str(tmp_path / "task.csv"), str(tmp_path / "topo.csv"), str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 1 and "scheduled 1/2" in out and "latency 1" in out
    # the scheduled part, renumbered for the simulator, passes it
    inst = read_instance(tmp_path / "task.csv", tmp_path / "topo.csv")
    run = schedule_instance(inst)
    assert run.admitted == ["s1"] and set(run.rejected) == {"s0"}
    mapping = write_subset_task(inst, [1], tmp_path / "part.csv")
    assert mapping == {1: 0}
    write_outputs(run.scheduler, inst, tmp_path / "part", renumber=mapping)
    errors, delays = simulate_full(tmp_path / "part.csv", tmp_path / "part")
    assert errors == "[Potential Errors]: []" and delays == expected_sim_delays(tmp_path / "part")


@pytest.mark.parametrize("task, needle", [
    ("stream,src,dst,size,period,deadline,jitter\n0,2,\"[3, 1]\",100,1000000,30000,30000\n", "multicast"),
    ("stream,src,dst,size\n0,2,[3],100\n", "not a TSNKit stream CSV"),
    ("stream,src,dst,size,period,deadline,jitter\n0,2,[3],abc,1000000,30000,30000\n", "size"),
    ("stream,src,dst,size,period,deadline,jitter\n0,2,[9],100,1000000,30000,30000\n", "node 9"),
    ("stream,src,dst,size,period,deadline,jitter\n0,2,[3],100,1000000,2000000,30000\n", "deadline"),
])
def test_bad_files_exit_2(tmp_path, capsys, task, needle):
    (tmp_path / "topo.csv").write_text(TOPO_CSV)
    (tmp_path / "task.csv").write_text(task)
    code = main(["tsnkit", str(tmp_path / "task.csv"), str(tmp_path / "topo.csv"), str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
    with pytest.raises(TsnkitFormatError):
        read_instance(tmp_path / "task.csv", tmp_path / "topo.csv")


def test_bad_topology_exit_2(tmp_path, capsys):
    (tmp_path / "topo.csv").write_text("link,q_num,rate,t_proc,t_prop\n\"(0 1)\",8,1,2000,0\n")
    (tmp_path / "task.csv").write_text("stream,src,dst,size,period,deadline,jitter\n0,0,[1],100,1000000,30000,30000\n")
    assert main(["tsnkit", str(tmp_path / "task.csv"), str(tmp_path / "topo.csv"), str(tmp_path / "out")]) == 2
    assert "topo.csv" in capsys.readouterr().err


def test_schedule_json_written_alongside(tmp_path):
    task, net = generate(tmp_path, 1, 4, 10, 1)
    inst = read_instance(task, net)
    run = schedule_instance(inst)
    assert run.complete
    rep = write_outputs(run.scheduler, inst, tmp_path / "o")
    assert rep.streams == 10 and rep.problems == {}
    assert main(["tsnkit", str(task), str(net), str(tmp_path / "o2"), "--schedule-json", str(tmp_path / "s.json")]) == 0
    d = json.loads((tmp_path / "s.json").read_text())
    assert d["slot_ns"] == 100 and d["cycle_ns"] == inst.hyperperiod_ns and len(d["reservations"]) == 10
