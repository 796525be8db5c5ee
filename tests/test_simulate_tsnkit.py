"""The line-rate simulator against TSNKit's own simulator (tsnkit.simulation.tas) on TSNKit's own instances.

Valid schedules: both find nothing wrong, and every stream's latency in ours is exactly TSNKit's
measured delay plus one transmission and two T_PROC (TSNKit logs the send when the first hop's
transmission and T_PROC are over, the reception before the last T_PROC; our latency runs from the
talker's offset to the listener, as the bound does). Corrupted schedules (one stream's slots on one link
moved onto another stream's, the same TSNKit output writer turning them into GCL/QUEUE files):
both flag the schedule, and ours names the two streams and the link.
"""

import copy
import types

import networkx as nx
import numpy as np
import pytest
from tsnkit.data.dataset_spec import TOPO_FUNC, generate_flowset
from tsnkit.simulation.tas import simulation

from controller.core.model import Reservation
from schedules.schedule_json import schedule_to_dict
from schedules.simulate import simulate
from schedules.tsnkit_io import TSNKIT_SIM_PROC_NS, read_instance, schedule_instance, write_outputs

#: TSNKit frames are sent whole (its simulator has no MTU)
WHOLE = 10**6


def generate(tmp_path, topo: int, num_sw: int, streams: int, seed: int, size: int):
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        net = TOPO_FUNC[topo](num_sw, num_queue=8, data_rate=1, header=str(tmp_path / "inst_topo"))
        generate_flowset(nx.DiGraph(net), size, 1, 3, streams, num_sw, num_sw, str(tmp_path / "inst_task"))
    finally:
        np.random.set_state(state)
    return tmp_path / "inst_task.csv", tmp_path / "inst_topo.csv"


def tsnkit_run(task, outdir, inst) -> tuple[set[str], dict[str, float]]:
    """TSNKit's verdict per stream and its measured delays.

    A stream fails when TSNKit's '[Potential Errors]' lists it (no frame received, or delays that
    vary) or when its delay in TSNKit's own terms (last start + transmission + T_PROC - first start,
    as tsnkit_io checks; the simulator logs it as measured + transmission + 2 T_PROC) is above the
    stream's deadline.
    """
    log = simulation(str(task), str(outdir) + "/", it=2, draw_results=False, disable_pbar=True)
    flagged, delays = set(), {}
    for i, (sent, received) in enumerate(log):
        x = [received[j] - sent[j] for j in range(len(received))]
        s = inst.stream(f"s{i}")
        if not x or np.var(x) > 0 or max(x) + s.size * 8 + 2 * TSNKIT_SIM_PROC_NS > s.deadline:
            flagged.add(f"s{i}")
        else:
            delays[f"s{i}"] = float(x[0])
    return flagged, delays


def corruptions(sd: dict, count: int, seed: int):
    """Pairs (A, B) sharing a link where A's slots can be moved onto B's: same period, same slot count."""
    by_id = {r["id"]: r for r in sd["reservations"]}
    holders: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for r in sd["reservations"]:
        for i, h in enumerate(r["hops"]):
            holders.setdefault((h["src"], h["dst"]), []).append((r["id"], i))
    pairs = []
    for link, rs in sorted(holders.items()):
        for a, ia in rs:
            for b, ib in rs:
                ra, rb = by_id[a], by_id[b]
                if a != b and ra["period_ns"] == rb["period_ns"] \
                        and len(ra["hops"][ia]["slots"]) == len(rb["hops"][ib]["slots"]):
                    pairs.append((link, a, ia, b, ib))
    rng = np.random.default_rng(seed)
    for k in rng.choice(len(pairs), size=min(count, len(pairs)), replace=False):
        link, a, ia, b, ib = pairs[k]
        bad = copy.deepcopy(sd)
        hops = {r["id"]: r["hops"] for r in bad["reservations"]}
        hops[a][ia]["slots"] = list(hops[b][ib]["slots"])
        yield bad, a, b, f"{link[0]}->{link[1]}"


@pytest.mark.parametrize("topo, num_sw, streams, seed, size", [(1, 6, 40, 3, 2), (3, 8, 60, 5, 3), (0, 5, 30, 9, 2)])
def test_same_verdicts_as_tsnkit(tmp_path, topo, num_sw, streams, seed, size):
    task, net = generate(tmp_path, topo, num_sw, streams, seed, size)
    inst = read_instance(task, net)
    run = schedule_instance(inst)
    assert run.complete
    sched = run.scheduler
    sd = schedule_to_dict(sched)
    write_outputs(sched, inst, tmp_path / "ok")
    flagged, delays = tsnkit_run(task, tmp_path / "ok", inst)
    ours = simulate(sd, processing_ns=TSNKIT_SIM_PROC_NS, mtu_bytes=WHOLE)
    assert flagged == set() and ours.ok
    for f in ours.flows:
        size = inst.stream(f.id).size
        assert f.worst_latency_ns == f.best_latency_ns == delays[f.id] + size * 8 + 2 * TSNKIT_SIM_PROC_NS

    checked = 0
    for bad, a, b, link in corruptions(sd, 4, seed):
        ours = simulate(bad, processing_ns=TSNKIT_SIM_PROC_NS, mtu_bytes=WHOLE)
        fake = types.SimpleNamespace(slot_ns=sched.slot_ns, cycle_ns=sched.cycle_ns,
                                     reservations={r["id"]: Reservation.from_dict(r) for r in bad["reservations"]})
        write_outputs(fake, inst, tmp_path / f"bad{checked}")
        flagged, _ = tsnkit_run(task, tmp_path / f"bad{checked}", inst)
        assert flagged, f"TSNKit found nothing wrong after moving {a} onto {b} on {link}"
        assert not ours.ok
        assert any(v.kind == "overlap" and v.link == link and set(v.reservations) == {a, b} for v in ours.violations)
        checked += 1
    assert checked >= 3
