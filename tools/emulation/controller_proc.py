"""Run ``dnctl controller`` as a child process for a test, a demo or a scenario, and stop it cleanly.

Why: every end-to-end tool needs the same steps: pick free ports, a throw-away SQLite file and a
known admin token, start the controller on the same topology and host plan as the emulation,
wait until its REST API answers (and, later, until the switches are connected), and always stop
it again — SIGTERM, then SIGKILL if it does not exit — leaving no process behind::

    with ControllerProcess("fntf40", "plan.json", link_scale=0.001) as ctl:
        api = ctl.client()                          # tools.client.ApiClient with the admin token
        api.post("/v1/tenants", {"name": "blue"})

With an emulation connected to it, use ``tools.emulation.stack.NetworkStack`` (lock, OVS,
controller, emulation, switches synced, and the tear-down in the right order).

``topology`` may be a builtin name, a topology file or a ``Topology`` object (written to the temp
directory); ``hosts`` may be a host plan file or a ``HostPlan`` (written there too). The child
gets ``PR_SET_PDEATHSIG`` = SIGTERM, so it also goes away if this process is killed outright.
OpenFlow runs over TLS with client certificates unless ``tls=False``: a throw-away CA and the
controller's certificate are made in the temp directory (``tools.emulation.pki``; ``ctl.pki``),
and ``ctl.switch_tls(dpids)`` gives the switches theirs, as ``Emulation(tls=...)`` takes them
(``NetworkStack`` does).
``tls=False`` starts it with ``--of-plain``. ``https=True`` also serves the REST API over HTTPS
with the same certificate; ``ctl.url`` is then ``https://...``, and ``ctl.client()`` and
``ctl.ca`` verify it against the throw-away CA.
Its stderr goes to ``ctl.log_path`` (in the temp directory, removed by ``stop()``, unless
``log_dir`` is given); ``ctl.log_tail()`` shows the end of it in error messages.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tools.client import ApiClient
from tools.emulation.lifecycle import Managed
from tools.emulation.patience import patience
from tools.emulation.pki import Pki

#: the dnctl entry point of the interpreter running us (the venv's)
DNCTL = str(Path(sys.executable).with_name("dnctl"))


class ControllerProcessError(RuntimeError):
    """The controller did not start (or did not reach the awaited state) in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort
        pass


#: file systems whose locking SQLite cannot use (its WAL needs shared memory and POSIX locks)
UNLOCKABLE_FS = frozenset({"9p", "nfs", "nfs4", "cifs", "smb3", "fuse.sshfs"})


def on_unlockable_fs(path: str | os.PathLike, mounts: str = "/proc/self/mounts") -> bool:
    """Whether ``path`` lies on a file system of ``UNLOCKABLE_FS`` (the longest mount point that
    contains it decides)."""
    target = os.path.realpath(path)
    best, fstype = "", ""
    try:
        lines = Path(mounts).read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        if (target == point or target.startswith(point.rstrip("/") + "/")) and len(point) > len(best):
            best, fstype = point, parts[2]
    return fstype in UNLOCKABLE_FS


class ControllerProcess(Managed):
    """A ``dnctl controller`` child process (context manager; ``stop()`` is idempotent).

    Attributes once started: ``url``, ``admin_token``, ``of_port``, ``api_port``, ``db``,
    ``log_path``, ``proc``, ``tmpdir``.
    """

    def __init__(self, topology: Any, hosts: Any = None, *, db: str | os.PathLike | None = None,
                 link_scale: float | None = None, lldp_interval: float | None = 1.0,
                 admin_token: str | None = None, log_level: str = "info", start_timeout: float = 20.0,
                 keep_tmp: bool = False, log_dir: str | os.PathLike | None = None,
                 extra_args: list[str] | None = None, tls: bool = True, https: bool = False,
                 store: str | None = None, pki: Pki | None = None):
        self.tmpdir = Path(tempfile.mkdtemp(prefix="detnet-ctl-"))
        self.keep_tmp = keep_tmp
        self.topology_arg = self._materialize_topology(topology)
        self.hosts_arg = self._materialize_hosts(hosts)
        #: where the caller wants the state file; ``db`` is where the controller keeps it: the
        #: same, unless that folder is on a file system SQLite cannot lock (the VM's 9p share of
        #: ``--out``): then a local file, copied to ``db_wanted`` when the controller stops
        self.db_wanted = str(db) if db is not None else None
        self.db = str(db) if db is not None and not on_unlockable_fs(Path(db).parent) else str(self.tmpdir / "state.db")
        self.link_scale = link_scale
        self.lldp_interval = lldp_interval
        self.admin_token = admin_token or secrets.token_hex(24)
        self.log_level = log_level
        self.start_timeout = patience(start_timeout)
        self.extra_args = list(extra_args or [])
        #: the throw-away CA and the controller's certificate (None: plain TCP)
        #: ``etcd://...``: a member of a cluster (``--store``, no ``--db``; see ``ControllerCluster``)
        self.store = store
        #: ``pki``: a CA shared by the members of a cluster (the switches trust one CA)
        self.pki: Pki | None = pki if pki is not None else Pki.create(self.tmpdir / "pki") if tls or https else None
        self.tls, self.https = tls, https
        #: the CA file that verifies the REST API's certificate (None: plain HTTP)
        self.ca: str | None = str(self.pki.ca_cert) if https and self.pki is not None else None
        self.of_port = free_port()
        self.api_port = free_port()
        while self.api_port == self.of_port:
            self.api_port = free_port()
        self.url = f"{'https' if https else 'http'}://127.0.0.1:{self.api_port}"
        self.log_path = (Path(log_dir) if log_dir else self.tmpdir) / "controller.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.started_s: float | None = None

    # -- inputs --
    def _materialize_topology(self, topology: Any) -> str:
        if isinstance(topology, (str, os.PathLike)):
            return str(topology)
        path = self.tmpdir / f"{topology.name}.json"   # a Topology object
        path.write_text(topology.to_json())
        return str(path)

    def _materialize_hosts(self, hosts: Any) -> str | None:
        if hosts is None or isinstance(hosts, (str, os.PathLike)):
            return None if hosts is None else str(hosts)
        path = self.tmpdir / "hosts.json"                # a HostPlan object
        path.write_text(json.dumps(hosts.to_dict(), indent=1) + "\n")
        return str(path)

    def command(self) -> list[str]:
        state = ["--store", self.store] if self.store else ["--db", self.db]
        cmd = [DNCTL, "controller", "--topology", self.topology_arg, *state,
               "--of-host", "127.0.0.1", "--of-port", str(self.of_port),
               "--api-host", "127.0.0.1", "--api-port", str(self.api_port), "--log-level", self.log_level]
        if self.hosts_arg:
            cmd += ["--hosts", self.hosts_arg]
        if self.link_scale is not None:
            cmd += ["--link-scale", f"{self.link_scale:g}"]
        if self.lldp_interval is not None:
            cmd += ["--lldp-interval", f"{self.lldp_interval:g}"]
        if self.tls and self.pki is not None and self.pki.controller is not None:
            cmd += ["--of-key", str(self.pki.controller.key), "--of-cert", str(self.pki.controller.cert),
                    "--of-ca", str(self.pki.ca_cert)]
        else:
            cmd += ["--of-plain"]
        if self.https and self.pki is not None and self.pki.controller is not None:
            cmd += ["--api-cert", str(self.pki.controller.cert), "--api-key", str(self.pki.controller.key)]
        return cmd + self.extra_args

    def switch_tls(self, dpids: Any) -> tuple[Path, Path, Path] | None:
        """``(key, cert, ca)`` of a new switch certificate naming ``dpids`` (for ``Emulation(tls=)``),
        or None when this controller listens on plain TCP."""
        if self.pki is None or not self.tls:
            return None
        cred = self.pki.issue_switch("switches", list(dpids))
        return cred.key, cred.cert, self.pki.ca_cert

    # -- lifecycle --
    def start(self) -> "ControllerProcess":
        """Spawn the controller and wait until GET /healthz answers 200."""
        env = dict(os.environ, DNCTL_ADMIN_TOKEN=self.admin_token)
        env.pop("DNCTL_TOKEN", None)
        t0 = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
                                         preexec_fn=_pdeathsig)
        self.wait(lambda h: True, self.start_timeout, "the REST API to answer /healthz")
        self.started_s = time.monotonic() - t0
        return self

    def healthz(self) -> dict[str, Any] | None:
        """GET /healthz as a dict, or None when the API does not answer (yet)."""
        try:
            r = httpx.get(f"{self.url}/healthz", timeout=2, trust_env=False,
                          verify=ssl.create_default_context(cafile=self.ca) if self.ca else True)
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code == 200 else None

    def wait(self, cond: Any, timeout: float, what: str) -> dict[str, Any]:
        """Poll /healthz until ``cond(healthz)`` holds; raise with the log tail on timeout or exit."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise ControllerProcessError(f"the controller exited (code {code}) while waiting for {what}:\n"
                                             + self.log_tail())
            h = self.healthz()
            if h is not None and cond(h):
                return h
            if time.monotonic() > deadline:
                raise ControllerProcessError(f"timed out after {timeout:g} s waiting for {what} "
                                             f"(last /healthz: {h}):\n" + self.log_tail())
            time.sleep(0.1)

    def wait_switches(self, n: int, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until at least ``n`` switches are connected (and synced) to the controller."""
        return self.wait(lambda h: int(h.get("switches_connected", 0)) >= n, patience(timeout),
                         f"{n} switches connected")

    def client(self, token: str | None = None, timeout: float = 30.0) -> Any:
        """A ``tools.client.ApiClient`` on this controller (admin token unless ``token`` is given)."""
        return ApiClient(self.url, token or self.admin_token, timeout=patience(timeout), ca=self.ca)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no controller log)"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; remove the temp dir. Returns the exit code."""
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        self.proc.kill()
                    self.proc.wait(5)
            code = self.proc.returncode
        if self.db_wanted and self.db != self.db_wanted and Path(self.db).exists():
            with contextlib.suppress(OSError):
                shutil.copyfile(self.db, self.db_wanted)
        if not self.keep_tmp and self.tmpdir.exists():
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        return code
