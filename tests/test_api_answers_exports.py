"""Issue 12, wrong answer 3: every export agrees on what a link carries, protection paths included.

A protected reservation holds slots on two link-disjoint paths. The Schedule JSON lists them
(``hops`` and ``protection_hops``), ``/metrics`` counts them (``detnet_link_reserved_share``), and
so must the 802.1Qbv gate control lists (``schedules.gcl``, ``dnctl schedule gcl``, tc taprio),
TSNKit's ``GCL.csv`` and the Schedule JSON importer's overlap check. The GCL used to show
"reserved 0.00%" on a link that only a protection path crosses.
"""

from __future__ import annotations

import csv
import json
import re

import pytest

from controller.auth import Principal
from controller.service import ControllerService
from schedules.gcl import gate_control_list
from schedules.schedule_json import SchedulePayloadError, validate_schedule
from schedules.tsnkit_io import TsnkitInstance, TsnStream, write_outputs
from tools.cli.main import main
from topologies.model import Topology

ADMIN_P = Principal.admin()


def ring() -> Topology:
    """0-1-2-3-0 at 1 Gb/s: 0->2 has two link-disjoint paths (TSNKit wants numeric node names)."""
    t = Topology("ring4")
    for n in "0123":
        t.add_node(n)
    for u, v, km in (("0", "1", 100), ("1", "2", 100), ("2", "3", 300), ("3", "0", 300)):
        t.add_link(u, v, km, capacity_bps=10**9)
    return t


@pytest.fixture
def service(tmp_path):
    svc = ControllerService(ring(), db_path=str(tmp_path / "c.db"), admin_token="x" * 32, store_synchronous="OFF")
    svc.create_tenant("one")
    prot = svc.reserve(ADMIN_P, {"tenant": 1, "id": "s0", "src": "0", "dst": "2", "frame_bytes": 1500,
                                 "period_ns": 500_000, "max_latency_ns": 10**8, "protection": "disjoint"})
    assert prot.protection_path, prot
    plain = svc.reserve(ADMIN_P, {"tenant": 1, "id": "s1", "src": "1", "dst": "3", "frame_bytes": 500,
                                  "period_ns": 1_000_000, "max_latency_ns": 10**8})
    assert plain.path, plain
    yield svc
    svc.close()


def _json_slots(schedule: dict) -> dict[tuple[str, str], set[int]]:
    """Slots held per directed link according to the Schedule JSON (both paths)."""
    out: dict[tuple[str, str], set[int]] = {}
    for r in schedule["reservations"]:
        for h in list(r["hops"]) + list(r.get("protection_hops") or []):
            out.setdefault((h["src"], h["dst"]), set()).update(h["slots"])
    return out


def _metric_shares(text: str) -> dict[tuple[str, str], float]:
    out = {}
    for line in text.splitlines():
        m = re.match(r'detnet_link_reserved_share\{link="([^"-]+)-([^"]+)"\} (\S+)$', line)
        if m:
            out[(m.group(1), m.group(2))] = float(m.group(3))
    return out


def _tsnkit_reserved_ns(outdir) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    with open(outdir / "GCL.csv", newline="") as f:
        for row in csv.DictReader(f):
            u, v = (x.strip() for x in row["link"].strip("()").split(","))
            out[(u, v)] = out.get((u, v), 0) + int(row["end"]) - int(row["start"])
    return out


def test_every_export_agrees_on_what_each_link_carries(service, tmp_path):
    schedule = service.schedule_dict()
    slot, cycle = schedule["slot_ns"], schedule["cycle_ns"]
    n_slots = cycle // slot
    held = _json_slots(schedule)
    prot = next(r for r in schedule["reservations"] if r["id"] == "s0")
    only_protection = [(h["src"], h["dst"]) for h in prot["protection_hops"]]
    assert only_protection and all(held[l] for l in only_protection)
    shares = _metric_shares(service.metrics_text())
    streams = [TsnStream(0, 0, (2,), 1500, 500_000, 10**8, 0), TsnStream(1, 1, (3,), 500, 1_000_000, 10**8, 0)]
    instance = TsnkitInstance("ring", service.topology, streams, [], 1_000_000)
    write_outputs(service.scheduler, instance, tmp_path / "tsnkit")
    tsnkit = _tsnkit_reserved_ns(tmp_path / "tsnkit")
    for u, v in service.topology.directed_links():
        n = len(held.get((u, v), ()))
        gcl = gate_control_list(schedule, u, v)
        assert gcl.reserved_ns == n * slot, (u, v)
        assert {s for e in gcl.entries if e.state == "reserved"
                for s in range(e.start_ns // slot, (e.start_ns + e.duration_ns) // slot)} == held.get((u, v), set())
        assert shares[(u, v)] == pytest.approx(n / n_slots), (u, v)
        assert tsnkit.get((u, v), 0) == n * slot, (u, v)


def test_schedule_gcl_shows_the_protection_paths_share(service, tmp_path, capsys):
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps(service.schedule_dict()))
    prot = next(r for r in service.schedule_dict()["reservations"] if r["id"] == "s0")
    u, v = prot["protection_hops"][0]["src"], prot["protection_hops"][0]["dst"]
    capsys.readouterr()
    assert main(["schedule", "gcl", str(path), "--link", u, v]) == 0
    out = capsys.readouterr().out
    assert "reserved 0.00%" not in out and "s0" in out


def test_the_schedule_importer_sees_overlaps_on_protection_paths(service):
    doc = service.schedule_dict()
    prot = next(r for r in doc["reservations"] if r["id"] == "s0")
    clash = {**prot, "id": "clash", "path": prot["protection_path"], "hops": prot["protection_hops"]}
    for k in ("protection", "protection_path", "protection_hops", "protection_latency_bound_ns"):
        clash.pop(k, None)
    doc["reservations"].append(clash)
    with pytest.raises(SchedulePayloadError, match="overlaps"):
        validate_schedule(doc, service.topology)
