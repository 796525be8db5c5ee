"""IEEE 802.1Qcw YANG output (schedules/yang.py), validated against the published modules with yanglint.

- the vendored modules are the revisions ``schedules.yang.MODULES`` names, listed in the YANG library
  and the NOTICE;
- a port's ``gate-parameter-table`` holds exactly its GCL's gate timeline (protection paths included),
  the cycle as a rational number of seconds, the base time as PTP seconds and nanoseconds;
- yanglint (libyang 2, the library of netopeer2/sysrepo NETCONF servers) accepts every bridge's
  document and refuses broken ones (so the check can fail): a list longer than supported-list-max,
  an unknown operation, a gate state out of range;
- every port of a 4,096-reservation fntf40 schedule (the project's own scheduler, the admission
  benchmark's workload with some protected requests) validates, and each port's list agrees with the
  Schedule JSON (its GCL) and with the slot tables ``/metrics`` reads;
- ``dnctl schedule gcl --format yang`` (one port, all bridges, --yang-dir) and its errors; taprio's etf
  child for talkers with launch time; ``GET /v1/schedule/gcl`` (admin) against GET /v1/schedule and /metrics.

yanglint comes from Debian's libyang2-tools, which ``make setup`` installs (tools/setup.sh); a
missing yanglint fails here, naming that.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import pytest
from fastapi.testclient import TestClient

from controller.api import create_app
from controller.core.bench import workload
from controller.core.model import Request, Reservation
from controller.core.scheduler import Scheduler
from controller.service import ControllerService
from schedules.gcl import gate_control_list
from schedules.schedule_json import schedule_to_dict
from schedules.taprio import compare, parse_taprio_show, taprio_config, talker_ports
from schedules.yang import (IMPLEMENTED, MODULE_DIR, MODULES, OPERATION, SCHED_BRIDGE, YangError, bridge_instance,
                            gate_parameter_table, port_timeline, schedule_instances, yanglint_argv)
from test_api import ADMIN, AH, square
from tools.cli.main import main
from topologies.hosts import HostPlan
from topologies.loaders import load_topology



def yanglint(*files: Path) -> subprocess.CompletedProcess:
    """yanglint checks config instance data files against the vendored modules (exit 0: valid)."""
    if shutil.which("yanglint") is None:
        pytest.fail("yanglint is missing: run `make setup` (tools/setup.sh installs Debian's libyang2-tools)")
    return subprocess.run(yanglint_argv(*files), capture_output=True, text=True)


def table_of(doc: dict, index: int = 0) -> dict:
    return (doc["ietf-interfaces:interfaces"]["interface"][index]["ieee802-dot1q-bridge:bridge-port"]
            [f"{SCHED_BRIDGE}:gate-parameter-table"])


def gcl_timeline(gcl) -> list[tuple[int, int, int]]:
    """The GCL's entries with equal neighbouring gate states merged: what the YANG list must hold."""
    out: list[list[int]] = []
    for e in gcl.entries:
        if out and out[-1][2] == e.gate_states:
            out[-1][1] += e.duration_ns
        else:
            out.append([e.start_ns, e.duration_ns, e.gate_states])
    return [tuple(x) for x in out]


def protected_scheduler() -> Scheduler:
    """Square A-B-C-D + A-D: a protected A->C (primary A-B-C, protection A-D-C) and two plain ones."""
    s = Scheduler(square())
    for r in (Request(tenant=1, src="A", dst="C", frame_bytes=1500, period_ns=250_000, max_latency_ns=20_000_000,
                      id="p1", protection="disjoint"),
              Request(tenant=1, src="A", dst="C", frame_bytes=3000, period_ns=500_000, max_latency_ns=20_000_000,
                      id="a1"),
              Request(tenant=2, src="B", dst="D", bandwidth_bps=10**9, max_latency_ns=20_000_000, id="b1")):
        assert isinstance(s.admit(r), Reservation), r
    assert s.reservations["p1"].protection_hops
    return s


# ----- the vendored modules ----------------------------------------------------------------------------------
def test_vendored_modules_are_the_revisions_named_with_library_and_notice():
    files = sorted(p.name for p in MODULE_DIR.glob("*.yang"))
    assert files == sorted(f"{m}@{r}.yang" for m, r in MODULES.items())
    for m, r in MODULES.items():
        text = (MODULE_DIR / f"{m}@{r}.yang").read_text(encoding="utf-8")
        assert re.search(rf"^module {re.escape(m)} {{", text, re.M)
        assert re.findall(r"^\s*revision\s+\"?([\d-]+)", text, re.M)[0] == r      # the newest revision first
    library = json.loads((MODULE_DIR / "yang-library.json").read_text())["ietf-yang-library:modules-state"]
    assert {(x["name"], x["revision"]) for x in library["module"]} == set(MODULES.items())
    assert {x["name"] for x in library["module"] if x["conformance-type"] == "implement"} == set(IMPLEMENTED)
    notice = (MODULE_DIR / "NOTICE").read_text()
    for m, r in MODULES.items():
        assert f"{m}@{r}.yang" in notice


# ----- the gate table ------------------------------------------------------------------------------------------
def test_gate_table_holds_the_gcl_timeline_protection_included():
    s = protected_scheduler()
    sched = schedule_to_dict(s)
    prot = [(h["src"], h["dst"]) for h in sched["reservations"][[r["id"] for r in sched["reservations"]].index("p1")]
            ["protection_hops"]]
    assert ("A", "D") in prot
    for link in [(l["src"], l["dst"]) for l in sched["links"]]:
        g = gate_control_list(sched, *link)
        t = gate_parameter_table(g)
        assert port_timeline(t) == gcl_timeline(g)
        assert sum(d for _, d, _ in port_timeline(t)) == g.cycle_ns
        entries = t["admin-control-list"]["gate-control-entry"]
        assert [e["index"] for e in entries] == list(range(len(entries)))
        assert {e["operation-name"] for e in entries} == {OPERATION}
        reserved = sum(e["time-interval-value"] for e in entries if e["gate-states-value"] == 0x80)
        assert reserved == g.reserved_ns == round(s.link_share()[link] * g.cycle_ns)
        assert t["supported-list-max"] == len(entries)
        assert t["supported-interval-max"] == max(e["time-interval-value"] for e in entries)
    # the protection path's first link opens for p1 (the GCL counts protection_hops)
    a_d = gate_control_list(sched, "A", "D")
    assert "p1" in {rid for _, _, rid in a_d.reserved_windows()}
    assert gate_parameter_table(a_d)["admin-control-list"]["gate-control-entry"][0]["gate-states-value"] == 0x80


def test_cycle_base_time_and_gate_encodings():
    s = protected_scheduler()
    g = gate_control_list(s, "A", "B")
    t = gate_parameter_table(g, base_time_ns=1_500_000_007)
    assert t["admin-cycle-time"] == {"numerator": 1, "denominator": 1000}        # 1 ms
    assert t["admin-base-time"] == {"seconds": "1", "nanoseconds": 500_000_007}  # uint64 is a string in RFC 7951
    assert t["admin-gate-states"] == 0x7F and t["gate-enabled"] is True and t["config-change"] is True
    assert gate_parameter_table(g, base_time_ns=0)["admin-base-time"] == {"seconds": "0", "nanoseconds": 0}
    g3 = gate_control_list(s, "A", "B", reserved_tc=3)
    t3 = gate_parameter_table(g3)
    assert t3["admin-gate-states"] == 0xF7
    assert {e["gate-states-value"] for e in t3["admin-control-list"]["gate-control-entry"]} == {0x08, 0xF7}
    eight = gate_control_list({**schedule_to_dict(s), "cycle_ns": 8_000_000}, "A", "B")
    assert gate_parameter_table(eight)["admin-cycle-time"] == {"numerator": 1, "denominator": 125}


def test_limits_and_capabilities():
    g = gate_control_list(schedule_to_dict(protected_scheduler()), "A", "B")
    n = len(gate_parameter_table(g)["admin-control-list"]["gate-control-entry"])
    assert gate_parameter_table(g, supported_list_max=n)["supported-list-max"] == n
    with pytest.raises(YangError, match=rf"port A->B: needs supported-list-max {n}, the bridge supports {n - 1}"):
        gate_parameter_table(g, supported_list_max=n - 1)
    with pytest.raises(YangError, match="supported-interval-max"):
        gate_parameter_table(g, supported_interval_max=1)
    with pytest.raises(YangError, match="base time"):
        gate_parameter_table(g, base_time_ns=-1)
    bare = gate_parameter_table(g, capabilities=False)
    assert not any(k.startswith("supported-") for k in bare)


# ----- yanglint ---------------------------------------------------------------------------------------------------
def test_yanglint_accepts_every_bridge_and_refuses_broken_documents(tmp_path):
    docs = schedule_instances(protected_scheduler(), base_time_ns=1_000_000_000)
    assert sorted(docs) == ["A", "B", "C", "D"]
    files = []
    for b, doc in docs.items():
        files.append(tmp_path / f"{b}.json")
        files[-1].write_text(json.dumps(doc))
    r = yanglint(*files)
    assert r.returncode == 0, r.stderr
    xml = subprocess.run(yanglint_argv(files[0], fmt="xml"), capture_output=True, text=True)    # for NETCONF
    assert xml.returncode == 0 and xml.stdout.startswith('<interfaces xmlns="urn:ietf:params:xml:ns:yang:'
                                                         'ietf-interfaces">')
    assert 'xmlns:sched="urn:ieee:std:802.1Q:yang:ieee802-dot1q-sched">sched:set-gate-states<' in xml.stdout

    def broken(name: str, change) -> str:
        doc = json.loads(json.dumps(docs["A"]))
        change(table_of(doc))
        (tmp_path / name).write_text(json.dumps(doc))
        out = yanglint(tmp_path / name)
        assert out.returncode != 0, name
        return out.stderr

    assert "supported-list-max" in broken("long.json", lambda t: t.update({"supported-list-max": 1}))
    broken("interval.json", lambda t: t.update({"supported-interval-max": 1}))
    assert "identity" in broken("op.json", lambda t: t["admin-control-list"]["gate-control-entry"][0].update(
        {"operation-name": "ieee802-dot1q-sched:open-everything"}))
    broken("gates.json", lambda t: t["admin-control-list"]["gate-control-entry"][0].update({"gate-states-value": 256}))
    broken("cycle.json", lambda t: t.update({"supported-cycle-max": {"numerator": 1, "denominator": 10**6}}))


def test_fntf40_4096_reservations_every_port_validates_and_agrees(tmp_path):
    topo = load_topology("fntf40")
    s = Scheduler(topo)
    admitted = 0
    for i, req in enumerate(workload(topo, 6000, 128, seed=1)):
        if i % 16 == 0:
            req.protection = "disjoint"
        admitted += isinstance(s.admit(req), Reservation)
        if admitted == 4096:
            break
    assert admitted == 4096 == len(s.reservations)
    protected = sum(1 for r in s.reservations.values() if r.protection_hops)
    assert protected > 100
    sched = schedule_to_dict(s)

    t0 = time.perf_counter()
    docs = schedule_instances(sched)
    built = time.perf_counter() - t0
    files = []
    for b, doc in docs.items():
        files.append(tmp_path / f"{b}.json")
        files[-1].write_text(json.dumps(doc))
    t0 = time.perf_counter()
    results = [yanglint(f) for f in files]
    checked = time.perf_counter() - t0
    bad = [(f.name, r.stderr[:300]) for f, r in zip(files, results) if r.returncode != 0]
    assert not bad, bad

    ports = {(i["description"].split()[-3], i["description"].split()[-1]): table_of({"ietf-interfaces:interfaces": {
        "interface": [i]}}) for doc in docs.values() for i in doc["ietf-interfaces:interfaces"]["interface"]}
    assert len(ports) == len(sched["links"]) == 184 and len(docs) == 40
    share = s.link_share()
    for (u, v), table in ports.items():
        g = gate_control_list(sched, u, v)
        assert port_timeline(table) == gcl_timeline(g), (u, v)
        reserved = sum(d for _, d, states in port_timeline(table) if states == 0x80)
        assert reserved == round(share[(u, v)] * s.cycle_ns), (u, v)   # what /metrics reads
    entries = [len(t["admin-control-list"]["gate-control-entry"]) for t in ports.values()]
    print(f"\nfntf40, 4096 reservations ({protected} protected): {len(ports)} ports on {len(docs)} bridges, "
          f"{sum(entries)} gate control entries (busiest port {max(entries)}); YANG built in {built:.2f} s, "
          f"yanglint validated in {checked:.2f} s")


# ----- dnctl schedule gcl --format yang ---------------------------------------------------------------------
@pytest.fixture
def schedule_file(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(schedule_to_dict(protected_scheduler())))
    return path


def test_cli_yang_one_port_all_bridges_and_files(schedule_file, tmp_path, capsys):
    sched = json.loads(schedule_file.read_text())
    assert main(["schedule", "gcl", str(schedule_file), "--link", "A", "D", "--format", "yang"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert one == bridge_instance([gate_control_list(sched, "A", "D")])
    assert one["ietf-interfaces:interfaces"]["interface"][0]["name"] == "A-D"
    assert main(["schedule", "gcl", str(schedule_file), "--link", "A", "D", "--format", "yang", "--dev", "swp3",
                 "--base-time", "2000000000"]) == 0
    named = json.loads(capsys.readouterr().out)
    assert named["ietf-interfaces:interfaces"]["interface"][0]["name"] == "swp3"
    assert table_of(named)["admin-base-time"] == {"seconds": "2", "nanoseconds": 0}

    assert main(["schedule", "gcl", str(schedule_file), "--all", "--format", "yang"]) == 0
    every = json.loads(capsys.readouterr().out)
    assert every == {"bridges": schedule_instances(sched)}
    out = tmp_path / "yang"
    assert main(["schedule", "gcl", str(schedule_file), "--all", "--format", "yang", "--yang-dir", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote 4 bridge documents (8 ports) to {out}"
    assert sorted(p.name for p in out.iterdir()) == ["A.json", "B.json", "C.json", "D.json"]
    r = yanglint(*sorted(out.iterdir()))
    assert r.returncode == 0, r.stderr
    assert main(["schedule", "gcl", str(schedule_file), "--all", "--format", "yang", "--no-supported"]) == 0
    assert "supported-list-max" not in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--link", "A", "B", "--format", "yang", "--supported-list-max", "1"],
     "port A->B: needs supported-list-max"),
    (["--link", "A", "B", "--format", "text", "--dev", "x"],
     "--dev goes with --format taprio and one --link (or --format yang)"),
    (["--link", "A", "B", "--format", "yang", "--yang-dir", "d"], "--yang-dir goes with --format yang and --all"),
    (["--all", "--format", "taprio", "--supported-list-max", "9"], "go with --format yang"),
    (["--link", "A", "B", "--format", "yang", "--etf-delta", "5"], "--etf-delta goes with --format taprio"),
    (["--link", "B", "A", "--format", "taprio", "--etf-delta", "200000"], "no talker sends on B->A"),
])
def test_cli_errors_are_one_line_exit_2(schedule_file, capsys, argv, message):
    assert main(["schedule", "gcl", str(schedule_file), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


# ----- taprio: the etf child of launch-time talkers -------------------------------------------------------------
def test_taprio_etf_child_on_talker_ports(schedule_file, capsys):
    sched = json.loads(schedule_file.read_text())
    assert talker_ports(sched) == {("A", "B"), ("A", "D"), ("B", "C")}     # p1 and a1 from A (both paths), b1 from B
    g = gate_control_list(sched, "A", "B")
    plain = taprio_config(g, dev="eth1", link_bps=10**10)
    cfg = taprio_config(g, dev="eth1", link_bps=10**10, etf_delta_ns=200_000)
    assert plain.commands() == [plain.command()] and "handle" not in plain.command()
    taprio, etf = cfg.commands()
    assert taprio[:9] == ["tc", "qdisc", "replace", "dev", "eth1", "root", "handle", "100:", "taprio"]
    assert taprio[9:] == plain.command()[7:]
    assert etf == ["tc", "qdisc", "replace", "dev", "eth1", "parent", "100:2", "etf", "clockid", "CLOCK_TAI",
                   "delta", "200000"]
    assert cfg.etf_command(netns="n1")[:3] == ["tc", "-n", "n1"]
    assert cfg.to_dict()["etf"] == {"parent": "100:2", "clockid": "CLOCK_TAI", "delta_ns": 200000}

    # what `tc qdisc show` prints: taprio as captured in the guest (tests/test_taprio.py), the etf line as
    # tests/test_vm_etf.py saw it there (Debian 6.1.0-57, iproute2 6.1: tc/q_etf.c's etf_print_opt)
    entries = "".join(f"\tindex {i} cmd S gatemask {e.mask:#x} interval {e.interval_ns}\n"
                      for i, e in enumerate(cfg.entries))
    shown_text = ("qdisc taprio 100: root refcnt 3 tc 2 map 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0\n"
                  "queues offset 0 count 1 offset 1 count 1\n"
                  f"clockid TAI\tbase-time 0 cycle-time {cfg.cycle_ns} cycle-time-extension 0\n{entries}\n"
                  "qdisc etf 8002: parent 100:2 clockid TAI delta 200000 offload off deadline_mode off "
                  "skip_sock_check off\nqdisc pfifo 0: parent 100:1 limit 1000p\n")
    shown = parse_taprio_show(shown_text)
    assert shown["etf"] == {"parent": "100:2", "clockid": "CLOCK_TAI", "delta": 200000, "offload": False,
                            "deadline_mode": False, "skip_sock_check": False}
    assert compare(cfg, shown) == []
    assert compare(plain, shown) == ["etf: on 100:2 installed, none scheduled"]
    assert compare(cfg, parse_taprio_show(shown_text.replace("delta 200000", "delta 300000"))) == [
        "etf delta: 300000 installed, 200000 scheduled"]
    assert compare(cfg, parse_taprio_show(shown_text.split("qdisc etf")[0])) == [
        "etf: none installed, on 100:2 scheduled"]

    assert main(["schedule", "gcl", str(schedule_file), "--all", "--format", "taprio", "--etf-delta", "200000"]) == 0
    lines = capsys.readouterr().out.splitlines()
    etf_lines = [x for x in lines if x.startswith("tc ") and " etf " in x]
    assert len(etf_lines) == 3 and all("parent 100:2 etf clockid CLOCK_TAI delta 200000" in x for x in etf_lines)
    assert sum(1 for x in lines if x.startswith("# ") and "etf delta 200000 ns" in x) == 3
    assert main(["schedule", "gcl", str(schedule_file), "--all", "--format", "taprio"]) == 0
    assert " etf " not in capsys.readouterr().out


# ----- GET /v1/schedule/gcl ----------------------------------------------------------------------------------------
@pytest.fixture
def api(tmp_path):
    topo = square()
    service = ControllerService(topo, db_path=str(tmp_path / "g.db"), admin_token=ADMIN,
                                host_plan=HostPlan.build(topo, [(1, "A"), (1, "C")]), store_synchronous="OFF")
    client = TestClient(create_app(service, rate_limit_per_s=0), raise_server_exceptions=False)
    t = client.post("/v1/tenants", json={"name": "alpha"}, headers=AH).json()
    th = {"Authorization": f"Bearer {t['token']}"}
    for body in ({"src": "A", "dst": "C", "frame_bytes": 1500, "period_ns": 250_000, "max_latency_ns": 20_000_000,
                  "protection": "disjoint", "match": {"udp_dst": 5000}},
                 {"src": "A", "dst": "C", "bandwidth_bps": 10**9, "max_latency_ns": 20_000_000,
                  "match": {"udp_dst": 5001}}):
        assert client.post("/v1/reservations", json=body, headers=th).status_code == 201
    yield client, th
    service.close()


def test_rest_gcl_json_agrees_with_schedule_and_metrics(api):
    client, th = api
    sched = client.get("/v1/schedule", headers=AH).json()
    r = client.get("/v1/schedule/gcl", headers=AH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["format"] == "json" and body["cycle_ns"] == sched["cycle_ns"]
    assert body["gcls"] == [gate_control_list(sched, l["src"], l["dst"]).to_dict() for l in sched["links"]]
    metrics = client.get("/metrics").text
    share = {m[0]: float(m[1]) for m in re.findall(r'^detnet_link_reserved_share\{link="([^"]+)"\} (\S+)$', metrics,
                                                     re.M)}
    assert len(share) == len(body["gcls"]) == 8
    for g in body["gcls"]:
        assert g["reserved_ns"] / g["cycle_ns"] == pytest.approx(share[f"{g['src']}-{g['dst']}"])
    assert any(g["reserved_ns"] for g in body["gcls"] if (g["src"], g["dst"]) == ("A", "D"))   # protection path
    one = client.get("/v1/schedule/gcl?src=A&dst=D", headers=AH).json()
    assert [g["dst"] for g in one["gcls"]] == ["D"]


def test_rest_gcl_yang_and_taprio(api, tmp_path):
    client, _ = api
    sched = client.get("/v1/schedule", headers=AH).json()
    y = client.get("/v1/schedule/gcl?format=yang&base_time_ns=1000000000", headers=AH).json()
    assert y["modules"] == MODULES
    assert y["bridges"] == schedule_instances(sched, base_time_ns=1_000_000_000)
    files = []
    for b, doc in y["bridges"].items():
        files.append(tmp_path / f"{b}.json")
        files[-1].write_text(json.dumps(doc))
    assert yanglint(*files).returncode == 0
    t = client.get("/v1/schedule/gcl?format=taprio&etf_delta_ns=100000", headers=AH).json()
    ports = {(p["src"], p["dst"]): p for p in t["ports"]}
    assert len(ports) == 8
    a_b = ports[("A", "B")]
    want = taprio_config(gate_control_list(sched, "A", "B"), dev="A-B", link_bps=10**10, etf_delta_ns=100_000)
    assert a_b["commands"] == want.commands()
    assert len(ports[("B", "A")]["commands"]) == 1            # no talker sends on B->A: no etf


@pytest.mark.parametrize("query, status, field", [
    ("?src=A", 422, "dst"), ("?dst=A", 422, "src"), ("?format=xml", 422, None), ("?src=A&dst=C", 404, None),
    ("?tennant=1", 422, "tennant")])
def test_rest_gcl_errors(api, query, status, field):
    client, _ = api
    r = client.get(f"/v1/schedule/gcl{query}", headers=AH)
    assert r.status_code == status, r.text
    if field:
        assert r.json()["field"] == field


def test_rest_gcl_is_admin_only(api):
    client, th = api
    assert client.get("/v1/schedule/gcl", headers=th).status_code == 403
    assert client.get("/v1/schedule/gcl").status_code == 401
