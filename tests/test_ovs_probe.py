"""tools/emulation/ovs.py: the machine probe, the datapath choice, the OVS bring-up errors; and
topologies/machine.py, the kernel probes it shares with the Mininet topology and the launcher
(no root needed)."""

from __future__ import annotations

import dataclasses
import subprocess
import time

import pytest

from tools.emulation import ovs
from tools.emulation.ovs import Capabilities
from topologies import machine


def caps(**kw) -> Capabilities:
    base = dict(ovs_installed=True, ovs_running=True, kernel_datapath=False, netem=False, htb=True,
                is_root=True, mininet_importable=True)
    base.update(kw)
    return Capabilities(**base)


def test_probe_returns_consistent_types():
    c = ovs.probe()
    for f in dataclasses.fields(c):
        assert isinstance(getattr(c, f.name), bool), f.name
    assert c.datapath in ("kernel", "user")
    assert c.datapath == ("kernel" if c.kernel_datapath else "user")
    d = c.to_dict()
    assert d["datapath"] == c.datapath and d["missing_for_emulation"] == c.missing_for_emulation()
    assert ("not root" in c.missing_for_emulation()) == (not c.is_root)
    assert ("Open vSwitch not installed" in c.missing_for_emulation()) == (not c.ovs_installed)
    assert ("mininet not importable" in c.missing_for_emulation()) == (not c.mininet_importable)
    if not c.is_root:  # the qdisc checks need root: they must say no rather than guess
        assert not c.netem and not c.htb


def test_datapath_choice_follows_kernel_module():
    assert caps(kernel_datapath=True).datapath == "kernel"
    assert caps(kernel_datapath=False).datapath == "user"


def test_missing_lists_only_hard_requirements():
    assert caps().missing_for_emulation() == []
    # OVS not running is not missing (ensure_ovs_running starts it); no netem/htb only limits
    assert caps(ovs_running=False, netem=False, htb=False).missing_for_emulation() == []
    assert caps(is_root=False, ovs_installed=False, mininet_importable=False).missing_for_emulation() == [
        "not root", "Open vSwitch not installed", "mininet not importable"]
    lim = caps(kernel_datapath=False, netem=False, htb=False).limitations()
    assert any("userspace" in l for l in lim) and any("netem" in l for l in lim) and any("htb" in l for l in lim)
    assert caps(kernel_datapath=True, netem=True, htb=True).limitations() == []


def test_emulation_datapath_choice_with_fake_capabilities(monkeypatch):
    pytest.importorskip("networkx")
    from tools.emulation.network import Emulation, EmulationError
    from topologies.hosts import HostPlan
    from topologies.model import Topology
    t = Topology("two")
    t.add_node("A"), t.add_node("B")
    t.add_link("A", "B", 10)
    plan = HostPlan.build(t, [(1, "A"), (1, "B")])

    monkeypatch.setattr(ovs, "load_kernel_datapath", lambda: True)
    assert Emulation(t, plan)._choose_datapath(caps(kernel_datapath=True)) == "kernel"
    assert Emulation(t, plan)._choose_datapath(caps(kernel_datapath=False)) == "user"
    assert Emulation(t, plan, datapath="user")._choose_datapath(caps(kernel_datapath=True)) == "user"
    # the module is said loadable but will not load: auto falls back to user, with a note
    monkeypatch.setattr(ovs, "load_kernel_datapath", lambda: False)
    e = Emulation(t, plan)
    assert e._choose_datapath(caps(kernel_datapath=True)) == "user"
    assert any("would not load" in n for n in e.notes)
    with pytest.raises(EmulationError, match="kernel datapath requested"):
        Emulation(t, plan, datapath="kernel")._choose_datapath(caps(kernel_datapath=False))


def test_ensure_ovs_running_says_not_installed(monkeypatch):
    monkeypatch.setattr(ovs.shutil, "which", lambda _name: None)
    with pytest.raises(ovs.OvsError) as e:
        ovs.ensure_ovs_running()
    msg = str(e.value)
    assert "not installed" in msg and "\n" not in msg


def test_ensure_ovs_running_does_nothing_when_running(monkeypatch):
    calls = []
    monkeypatch.setattr(ovs, "ovs_installed", lambda: True)
    monkeypatch.setattr(ovs, "ovs_running", lambda: True)
    monkeypatch.setattr(ovs, "_run", lambda *a, **k: calls.append(a))
    ovs.ensure_ovs_running()
    assert calls == []  # never restarts a running OVS


def test_ensure_ovs_running_reports_failed_start(monkeypatch):
    import subprocess
    monkeypatch.setattr(ovs, "ovs_installed", lambda: True)
    monkeypatch.setattr(ovs, "ovs_running", lambda: False)
    monkeypatch.setattr(ovs, "_ovs_ctl", lambda: "/fake/ovs-ctl")
    monkeypatch.setattr(ovs.os, "geteuid", lambda: 0)
    started = []
    monkeypatch.setattr(ovs, "_run", lambda cmd, **k: started.append(k.get("env"))
                        or subprocess.CompletedProcess(cmd, 1, "", "boom: no db\n"))
    with pytest.raises(ovs.OvsError, match="could not start Open vSwitch.*boom: no db"):
        ovs.ensure_ovs_running()
    assert started == [ovs.start_env()]     # started in the environment start_env gives


# ----- topologies/machine.py: the kernel probes ---------------------------------------------

def test_ovs_probe_uses_the_kernel_probes_of_topologies_machine():
    assert ovs.qdisc_works is machine.qdisc_works
    assert ovs.kernel_datapath_available is machine.kernel_datapath_available
    assert ovs.load_kernel_datapath is machine.load_kernel_datapath


def test_qdisc_works_says_no_without_root_and_runs_nothing(monkeypatch):
    ran = []
    monkeypatch.setattr(machine.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(machine.subprocess, "run", lambda *a, **k: ran.append(a))
    assert machine.qdisc_works("netem delay 1ms") is False
    assert ran == []


def test_qdisc_works_tries_the_qdisc_in_a_throwaway_namespace(monkeypatch):
    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0 if "netem" in cmd else 2, "", "")

    monkeypatch.setattr(machine.os, "geteuid", lambda: 0)
    monkeypatch.setattr(machine.shutil, "which", lambda name: f"/usr/sbin/{name}")
    monkeypatch.setattr(machine.subprocess, "run", fake_run)
    assert machine.qdisc_works("netem delay 1ms") is True
    assert machine.qdisc_works("taprio num_tc 2") is False
    assert calls[0] == ["unshare", "--net", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]


def test_qdisc_works_says_no_when_the_command_cannot_run(monkeypatch):
    def boom(cmd, **kw):
        raise subprocess.TimeoutExpired(cmd, 10)

    monkeypatch.setattr(machine.os, "geteuid", lambda: 0)
    monkeypatch.setattr(machine.shutil, "which", lambda name: f"/usr/sbin/{name}")
    monkeypatch.setattr(machine.subprocess, "run", boom)
    assert machine.qdisc_works("htb") is False


def test_kernel_datapath_follows_the_module_directory(monkeypatch, tmp_path):
    loaded = tmp_path / "openvswitch"
    monkeypatch.setattr(machine, "OVS_MODULE", loaded)
    monkeypatch.setattr(machine.shutil, "which", lambda name: None)  # no modprobe: cannot load
    assert machine.kernel_datapath_available() is False
    assert machine.load_kernel_datapath() is False
    loaded.mkdir()
    assert machine.kernel_datapath_available() is True
    assert machine.load_kernel_datapath() is True


def test_open_vswitch_is_started_on_jemalloc_when_it_is_installed(monkeypatch, tmp_path):
    lib = tmp_path / "libjemalloc.so.2"
    lib.write_bytes(b"")
    monkeypatch.setattr(ovs, "JEMALLOC_CANDIDATES", (str(tmp_path / "absent.so"), str(lib)))
    env = ovs.start_env({"PATH": "/bin"})
    assert env == {"PATH": "/bin", "LD_PRELOAD": str(lib)}
    # an existing preload is kept, after ours, and ours is never added twice
    assert ovs.start_env({"LD_PRELOAD": "/x.so"})["LD_PRELOAD"] == f"{lib} /x.so"
    assert ovs.start_env({"LD_PRELOAD": str(lib)})["LD_PRELOAD"] == str(lib)
    monkeypatch.setattr(ovs, "JEMALLOC_CANDIDATES", (str(tmp_path / "absent.so"),))
    assert ovs.start_env({"PATH": "/bin"}) == {"PATH": "/bin"}


def test_allocator_reads_what_a_process_really_runs_on():
    lib = ovs.jemalloc_path()
    if lib is None:
        pytest.skip("machine lacks libjemalloc2 (make setup installs it)")
    plain = subprocess.Popen(["sleep", "30"])
    preloaded = subprocess.Popen(["sleep", "30"], env=ovs.start_env())
    try:
        time.sleep(0.3)
        assert ovs.allocator(plain.pid) == "glibc"
        assert ovs.allocator(preloaded.pid) == "jemalloc"
    finally:
        for p in (plain, preloaded):
            p.kill()
            p.wait()
    assert ovs.allocator(plain.pid) == "unknown"
