"""The VM's host side without a VM: recipe key, ``--vm`` modes, and the guest protocol and tear-down
against a fake qemu (a small Python program that plays the agent of ``tools/vm/recipe/agent`` on
the control share: ready file, N.sh -> N.out/N.err/N.rc, poweroff)."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tools.vm import guest as guest_mod
from tools.vm import image as image_mod
from tools.vm.guest import Guest, GuestError, GuestTimeout
from tools.vm.host import VM_MODES, KernelFeatures, wants_vm
from tools.vm.image import Image, image_key, recipe_lines

KERNEL = ("linux-image-6.1.0-57-amd64", "6.1.192-3")


# ----- the image's recipe ----------------------------------------------------------------------

def test_recipe_lists_name_what_the_emulation_needs():
    pkgs = recipe_lines("packages.txt")
    for p in ("openvswitch-switch", "mininet", "iproute2", "python3", "python3-networkx",
              "python3-numpy", "python3-scapy", "tcpdump", "iperf3", "kmod"):
        assert p in pkgs
    assert not any(p.startswith("#") or " " in p for p in pkgs)
    mods = recipe_lines("modules.txt")
    assert "net" in mods and "drivers/net/veth.ko" in mods and "drivers/virtio" in mods


def test_image_key_follows_the_recipe_and_the_kernel(tmp_path, monkeypatch):
    original, recipe = image_mod.RECIPE, tmp_path / "recipe"
    shutil.copytree(original, recipe)
    monkeypatch.setattr(image_mod, "RECIPE", recipe)
    key = image_key(KERNEL)
    assert key == image_key(KERNEL) and len(key) == 16
    assert image_key((KERNEL[0], "6.1.193-1")) != key                     # a new stock kernel
    with open(recipe / "packages.txt", "a") as f:
        f.write("strace\n")                                               # a new package
    assert image_key(KERNEL) != key
    (recipe / "packages.txt").write_text((original / "packages.txt").read_text())
    assert image_key(KERNEL) == key                                       # back to the same recipe
    (recipe / "agent").write_text((recipe / "agent").read_text() + "# changed\n")
    assert image_key(KERNEL) != key                                       # the agent is in the key too
    monkeypatch.setattr(image_mod, "RECIPE_REVISION", image_mod.RECIPE_REVISION + 1)
    (recipe / "agent").write_text((original / "agent").read_text())
    assert image_key(KERNEL) != key                                       # and the build steps' revision


def test_cached_image_needs_all_three_files(tmp_path, monkeypatch):
    monkeypatch.setenv("DETNET_VM_CACHE", str(tmp_path))
    folder = tmp_path / "abc"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"key": "abc", "kernel_release": "6.1.0-57-amd64"}')
    for name in ("vmlinuz", "initrd.img"):
        (folder / name).write_bytes(b"x")
    assert image_mod.cached_image("abc") is None          # no root.img: an interrupted build
    (folder / "root.img").write_bytes(b"x")
    img = image_mod.cached_image("abc")
    assert img is not None and img.root == folder / "root.img" and img.kernel_release == "6.1.0-57-amd64"
    assert image_mod.cached_image("other") is None


# ----- --vm auto|on|off --------------------------------------------------------------------------

def test_vm_modes():
    have_all = KernelFeatures(openvswitch=True, netem=True, taprio=True)
    no_taprio = KernelFeatures(openvswitch=True, netem=True, taprio=False)
    assert VM_MODES == ("auto", "on", "off")
    assert not wants_vm("auto", have_all) and wants_vm("auto", no_taprio)
    assert wants_vm("on", have_all) and not wants_vm("off", no_taprio)
    assert no_taprio.missing() == ["sch_taprio"]
    assert KernelFeatures(False, False, True).missing() == ["openvswitch module", "sch_netem"]
    with pytest.raises(ValueError, match="auto, on, off"):
        wants_vm("maybe", have_all)


# ----- the guest protocol against a fake qemu ----------------------------------------------------

FAKE_QEMU = textwrap.dedent("""\
    #!{python}
    # plays qemu + /sbin/detnet-agent: finds the ctl share on the command line, answers commands
    import os, subprocess, sys, time
    args = sys.argv[1:]
    shares = dict((kv.split("mount_tag=")[1].split(",")[0], kv.split("path=")[1].split(",")[0])
                  for kv in (args[i + 1] for i, a in enumerate(args) if a == "-virtfs"))
    ctl = shares["ctl"]
    mode = os.environ.get("FAKE_QEMU_MODE", "ok")
    print("fake console: booting", file=open(args[args.index("-serial") + 1][5:], "w"), flush=True)
    if mode == "die":
        print("qemu-system-x86_64: something broke", flush=True)
        sys.exit(3)
    if mode == "hang":
        time.sleep(600)
    open(os.path.join(ctl, "ready"), "w").write("1.00 0.50\\n")
    n = 0
    while True:
        sh = os.path.join(ctl, f"{{n}}.sh")
        if os.path.exists(sh):
            t = open(os.path.join(ctl, f"{{n}}.timeout")).read().strip()
            with open(os.path.join(ctl, f"{{n}}.out"), "w") as o, open(os.path.join(ctl, f"{{n}}.err"), "w") as e:
                rc = subprocess.call(["timeout", "-k", "1", t, "bash", sh], stdout=o, stderr=e,
                                     env=dict(os.environ, DETNET_OUT=shares["out"]))
            open(os.path.join(ctl, f"{{n}}.rc.tmp"), "w").write(f"{{rc}}\\n")
            os.rename(os.path.join(ctl, f"{{n}}.rc.tmp"), os.path.join(ctl, f"{{n}}.rc"))
            n += 1
        elif os.path.exists(os.path.join(ctl, "poweroff")):
            if mode != "stubborn":
                sys.exit(0)
            time.sleep(600)
        else:
            time.sleep(0.02)
""")


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A fake qemu on PATH and an Image of empty files; the temp root is watched for leftovers."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    qemu = bin_dir / "qemu-system-x86_64"
    qemu.write_text(FAKE_QEMU.format(python=sys.executable))
    qemu.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    tmp_root = tmp_path / "tmp"
    tmp_root.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_root))
    monkeypatch.setattr(guest_mod.tempfile, "tempdir", None)   # re-read TMPDIR
    folder = tmp_path / "img"
    folder.mkdir()
    for name in ("vmlinuz", "initrd.img", "root.img"):
        (folder / name).write_bytes(b"")
    img = Image(folder, "k", "6.1.0-57-amd64", {})
    return img, tmp_root


def test_guest_runs_commands_and_tears_down(fake, tmp_path):
    img, tmp_root = fake
    keep = tmp_path / "keep"
    with Guest(img, lock=False, out_dir=keep, boot_timeout=20) as g:
        assert g.running and g.boot_seconds is not None and g.guest_uptime_at_ready == 1.0
        r = g.run("echo hello; echo oops >&2; exit 3")
        assert (r.returncode, r.stdout, r.stderr) == (3, "hello\n", "oops\n")
        r = g.run('echo report > "$DETNET_OUT/report.json"', check=True)
        assert r.returncode == 0 and (keep / "report.json").read_text() == "report\n"
        with pytest.raises(GuestError, match="exit 1 in the guest: false"):
            g.run("false", check=True)
        proc = g._proc
    assert proc.poll() is not None                       # qemu is gone
    assert list(tmp_root.iterdir()) == []                # the spool and console log are gone
    assert (keep / "report.json").exists()               # the caller's output folder stays


def test_guest_command_timeout_keeps_the_guest(fake):
    img, tmp_root = fake
    with Guest(img, lock=False, boot_timeout=20) as g:
        with pytest.raises(GuestTimeout, match="timed out after 1 s") as e:
            g.run("echo started; sleep 30", timeout=1)
        assert e.value.result.stdout == "started\n"
        assert g.run("echo still here").stdout == "still here\n"
    assert list(tmp_root.iterdir()) == []


def test_guest_torn_down_on_exception_and_interrupt(fake):
    img, tmp_root = fake
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with Guest(img, lock=False, boot_timeout=20) as g:
                proc = g._proc
                raise exc
        assert proc.poll() is not None
        assert list(tmp_root.iterdir()) == []


def test_guest_killed_when_it_ignores_poweroff(fake, monkeypatch):
    img, tmp_root = fake
    monkeypatch.setenv("FAKE_QEMU_MODE", "stubborn")
    t0 = time.monotonic()
    with Guest(img, lock=False, boot_timeout=20) as g:
        proc = g._proc
    assert proc.poll() is not None and time.monotonic() - t0 < 30
    assert list(tmp_root.iterdir()) == []


def test_guest_boot_failures_are_one_error_with_the_console(fake, monkeypatch):
    img, tmp_root = fake
    monkeypatch.setenv("FAKE_QEMU_MODE", "die")
    with pytest.raises(GuestError, match=r"qemu exited \(code 3\).*something broke.*fake console: booting"):
        with Guest(img, lock=False, boot_timeout=20):
            pass
    monkeypatch.setenv("FAKE_QEMU_MODE", "hang")
    with pytest.raises(GuestError, match="not ready within 1 s"):
        with Guest(img, lock=False, boot_timeout=1):
            pass
    assert list(tmp_root.iterdir()) == []


def test_qemu_command_line(fake):
    img, _ = fake
    g = Guest(img, lock=False)
    g._tmp = Path("/x")
    g.out_dir = Path("/o")
    cmd = " ".join(g.qemu_command())
    assert "-accel tcg,thread=multi" in cmd and "-cpu max" in cmd and "-no-reboot" in cmd
    assert f"file={img.root},if=virtio,format=raw,snapshot=on" in cmd          # the image never changes
    assert f"path={guest_mod.REPO},mount_tag=repo,security_model=none,readonly=on" in cmd
    assert "path=/o,mount_tag=out" in cmd and "path=/x/ctl,mount_tag=ctl" in cmd


def test_orphaned_temp_folders_are_removed(fake, tmp_path):
    img, tmp_root = fake
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan, alive, foreign = tmp_root / "detnet-vm-orphan", tmp_root / "detnet-vm-alive", tmp_root / "other"
    for folder, pid in ((orphan, dead.pid), (alive, os.getpid()), (foreign, dead.pid)):
        folder.mkdir()
        (folder / "pid").write_text(f"{pid}\n")
    with Guest(img, lock=False, boot_timeout=20):
        pass
    assert not orphan.exists() and alive.exists() and foreign.exists()


def test_vm_probe_figures_from_guest_output():
    from tools.vm.probe import MODULES, parse_guest_output
    out = ("== lsmod\nopenvswitch\nsch_netem\nsch_taprio\nsch_etf\nveth\nnsh\n"
           "== ping\n10 packets transmitted, 10 received, 0% packet loss, time 1803ms\n"
           "rtt min/avg/max/mdev = 20.412/21.630/24.904/1.200 ms\n"
           "== taprio\nqdisc taprio 8001: root tc 2 map 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
           "index 0 cmd S gatemask 0x1 interval 500000\nindex 1 cmd S gatemask 0x2 interval 500000\n")
    res = parse_guest_output(out, 10)
    assert res["modules"] == {m: True for m in MODULES}
    assert res["netem"] == {"delay_ms": 10, "expected_rtt_ms": 20, "limit_ms": 7.0,
                            "rtt_ms": [20.412, 21.63, 24.904], "within": True}
    assert res["taprio"]
    slow = parse_guest_output(out.replace("21.630", "27.100"), 10)
    assert not slow["netem"]["within"]                     # 27.1 > 20 + 7
    broken = parse_guest_output("== lsmod\nveth\n", 10)
    assert broken["netem"]["rtt_ms"] is None and not broken["netem"]["within"] and not broken["taprio"]
    assert not broken["modules"]["openvswitch"]


def test_guest_streams_output_while_the_command_runs(fake):
    img, _ = fake
    got: list[tuple[str, str, float]] = []
    with Guest(img, lock=False, boot_timeout=20) as g:
        t0 = time.monotonic()
        r = g.run("echo one; echo warn >&2; sleep 1.5; echo two; printf tail",
                  stream=lambda name, text: got.append((name, text, time.monotonic() - t0)))
    assert r.stdout == "one\ntwo\ntail" and r.stderr == "warn\n"
    assert "".join(t for n, t, _ in got if n == "stdout") == r.stdout      # all of it, once
    assert "".join(t for n, t, _ in got if n == "stderr") == r.stderr
    first = next(at for n, t, at in got if n == "stdout")
    assert first < r.seconds - 1.0                      # "one" arrived while the command still ran


# ----- --vm on the emulation verbs: the verb runs whole in the guest --------------------------------

def test_vm_argument_strips_out_and_vm_and_the_guest_script_runs_the_verb_there():
    from tools.cli.vmarg import verb_argv
    from tools.vm.delegate import guest_script
    assert verb_argv(["demo", "--quick", "--out", "o", "--vm", "on"]) == ["demo", "--quick"]
    script = guest_script(["demo", "--quick", "--out", "/out"], repo=Path("/r"), cwd=Path("/elsewhere"))
    assert "mount --bind /repo /r" in script and "\ncd /r\n" in script
    assert script.endswith("exec /r/.venv/bin/dnctl demo --quick --out /out --vm off")
    assert "\ncd /r/sub\n" in guest_script(["demo"], repo=Path("/r"), cwd=Path("/r/sub"))


def test_vm_on_runs_the_verb_in_the_guest_with_its_out_folder(fake, tmp_path, monkeypatch, capsys):
    """``dnctl verify scenario --vm on``: the guest gets the verb (``--vm off``, ``--out /out``), its
    output is streamed to ours, its files land in --out, its exit code is the verb's."""
    from tools.cli.main import main
    from tools.vm import delegate
    img, tmp_root = fake
    monkeypatch.setattr(delegate, "ensure_image", lambda: img)
    # the fake guest runs the script on this host: stand in for mount/modprobe/ovs-ctl/dnctl
    seen = {}

    def script(argv, **kw):
        seen["argv"] = argv
        return ('echo "scenario: progress"; echo "the summary"; '
                'echo \'{"pass": false}\' > "$DETNET_OUT/report.json"; exit 1')
    monkeypatch.setattr(delegate, "guest_script", script)
    monkeypatch.setattr(delegate, "Guest", functools.partial(delegate.Guest, lock=False, boot_timeout=20))
    out = tmp_path / "scn"
    code = main(["verify", "scenario", "--topology", "fntf40", "--tenants", "2", "--vm", "on", "--out", str(out)])
    assert code == 1
    assert seen["argv"] == ["verify", "scenario", "--topology", "fntf40", "--tenants", "2", "--out", "/out"]
    assert "the summary" in capsys.readouterr().out
    assert json.loads((out / "report.json").read_text()) == {"pass": False}
    assert list(tmp_root.iterdir()) == []                # the guest was torn down


def test_vm_modes_of_the_verbs_and_their_errors(monkeypatch, capsys):
    import argparse
    from tools.cli import vmarg
    from tools.cli.main import main
    from tools.vm import delegate
    have = KernelFeatures(True, True, True)
    monkeypatch.setattr(vmarg, "host_kernel", lambda: have)
    ns = argparse.Namespace(vm="auto", argv=["demo"])
    assert vmarg.run_in_vm_if_asked(ns, "o") is None                  # the kernel has it all: here
    assert vmarg.run_in_vm_if_asked(argparse.Namespace(vm="off"), "o") is None
    monkeypatch.setenv("DETNET_IN_VM", "1")
    assert vmarg.run_in_vm_if_asked(argparse.Namespace(vm="on"), "o") is None   # already in the guest
    monkeypatch.delenv("DETNET_IN_VM")
    # a venv of another Python cannot run in the guest: one line, exit 1, nothing started
    monkeypatch.setattr(delegate, "venv_python_version", lambda repo=None: "3.12.1")
    assert main(["demo", "--vm", "on", "--out", "/nonexistent/never"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dnctl: vm: the VM runs the project's virtualenv") and err.count("\n") == 1
    with pytest.raises(SystemExit) as e:                                  # a usage error
        main(["demo", "--vm", "maybe"])
    assert e.value.code == 2 and "invalid choice: 'maybe'" in capsys.readouterr().err


def test_vm_on_gives_out_only_to_verbs_that_have_it(fake, monkeypatch):
    """Regression: ``emulate up --vm on`` failed in the guest with 'unrecognized arguments: --out'."""
    from tools.cli.main import main
    from tools.vm import delegate
    img, _ = fake
    monkeypatch.setattr(delegate, "ensure_image", lambda: img)
    seen = []
    monkeypatch.setattr(delegate, "guest_script", lambda argv, **kw: seen.append(argv) or "echo '{}'")
    monkeypatch.setattr(delegate, "Guest", functools.partial(delegate.Guest, lock=False, boot_timeout=20))
    assert main(["emulate", "up", "--topology", "fntf40", "--ping", "Harbin", "Haikou", "--vm", "on"]) == 0
    assert seen == [["emulate", "up", "--topology", "fntf40", "--ping", "Harbin", "Haikou"]]
