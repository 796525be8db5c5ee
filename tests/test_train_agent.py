"""The training agent's ring all-reduce, run for real over loopback TCP with three sites."""

import json
import subprocess
import sys



def free_ports(n):
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_three_site_ring_runs_every_iteration_and_waits_for_compute(tmp_path):
    ports = free_ports(3)
    peers = ",".join(f"127.0.0.1:{p}" for p in ports)
    procs = []
    for rank in range(3):
        procs.append(subprocess.Popen([
            sys.executable, "-m", "tools.runs.train_agent", "--rank", str(rank), "--peers", peers,
            "--volume-bytes", "400000", "--forward-s", "0.02", "--backward-s", "0.05",
            "--overlap", "0.9", "--iterations", "4", "--timeout", "20",
            "--out", str(tmp_path / f"r{rank}.jsonl")]))
    for p in procs:
        assert p.wait(timeout=60) == 0
    for rank in range(3):
        lines = [json.loads(l) for l in (tmp_path / f"r{rank}.jsonl").read_text().splitlines()]
        assert [l["iteration"] for l in lines] == [0, 1, 2, 3]
        for l in lines:
            # an iteration can never be shorter than its compute
            assert l["iteration_s"] >= l["compute_s"] - 1e-3
            assert l["rank"] == rank


def test_bad_rank_is_a_usage_error():
    r = subprocess.run([sys.executable, "-m", "tools.runs.train_agent", "--rank", "5", "--peers", "a,b",
                        "--volume-bytes", "1", "--forward-s", "0", "--backward-s", "0"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "--rank" in r.stderr
