"""A throw-away etcd cluster: 1 or 3 members on free loopback ports in a temp dir.

For the tests and for ``dnctl chaos`` (the cluster scenarios run three controllers on it). etcd
comes from Debian's ``etcd-server`` package, which ``make setup`` installs (tools/setup.sh); a
missing binary raises ``EtcdUnavailable`` ("run make setup"). Each member runs in its own process
group, killed (SIGTERM, then SIGKILL) on exit, and the data directories go with the temp dir, also
when the caller fails or the cluster never forms.

The members use a 50 ms heartbeat and a 500 ms election timeout (etcd's defaults: 100 ms, 1 s):
loopback has no latency to allow for, and a lost member is replaced faster.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import httpx


#: operations per Txn the clusters allow (etcd's default is 128; a batch admission needs more)
MAX_TXN_OPS = 4096
#: bytes of one request (etcd's default is 1.5 MiB: a batch of about 500 reservations)
MAX_REQUEST_BYTES = 32 * 1024 * 1024


class EtcdUnavailable(RuntimeError):
    """etcd is not installed or the cluster did not form (one line, with the log's tail)."""


def etcd_binary() -> str:
    """The path of ``etcd``; ``EtcdUnavailable`` when Debian's ``etcd-server`` is not installed."""
    path = shutil.which("etcd")
    if path is None:
        raise EtcdUnavailable("etcd not found: it comes with Debian's 'etcd-server' package; run make setup")
    return path


def _free_ports(n: int) -> list[int]:
    """n distinct ports nobody listens on now (held open together so the kernel gives n different ones)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"


@dataclass
class EtcdCluster:
    """A running cluster: ``endpoints`` (``HOST:PORT`` each), ``url`` (``etcd://...``), ``stop(i)``."""

    root: Path
    members: list[Member] = field(default_factory=list)

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    @property
    def url(self) -> str:
        return "etcd://" + ",".join(self.endpoints)

    def stop(self, index: int) -> None:
        """Stop one member (its process group), as a crash would (SIGKILL)."""
        _kill(self.members[index].proc, sig=signal.SIGKILL)

    def pause(self, index: int) -> None:
        """Freeze one member (SIGSTOP): it accepts connections and never answers, like a partition."""
        os.killpg(self.members[index].proc.pid, signal.SIGSTOP)

    def stop_all(self) -> None:
        for m in self.members:
            _kill(m.proc)


def _kill(proc: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        os.killpg(proc.pid, signal.SIGCONT)       # a paused member must run to see the SIGTERM
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass


def _healthy(endpoint: str) -> bool:
    try:
        r = httpx.get(f"http://{endpoint}/health", timeout=1.0)
        return r.status_code == 200 and r.json().get("health") == "true"
    except (httpx.HTTPError, ValueError):
        return False


@contextmanager
def etcd_cluster(size: int = 1, *, timeout: float = 30.0,
                 max_request_bytes: int = MAX_REQUEST_BYTES) -> Iterator[EtcdCluster]:
    """Start a ``size``-member etcd cluster on loopback; yield it once every member is healthy;
    always stop every member and remove the data."""
    binary = etcd_binary()
    root = Path(tempfile.mkdtemp(prefix="detnet-etcd-"))
    ports = _free_ports(2 * size)
    cluster = EtcdCluster(root, [Member(f"m{i}", ports[2 * i], ports[2 * i + 1]) for i in range(size)])
    initial = ",".join(f"{m.name}=http://127.0.0.1:{m.peer_port}" for m in cluster.members)
    try:
        for m in cluster.members:
            log = open(root / f"{m.name}.log", "wb")
            m.proc = subprocess.Popen(
                [binary, "--name", m.name, "--data-dir", str(root / m.name),
                 "--listen-client-urls", f"http://127.0.0.1:{m.client_port}",
                 "--advertise-client-urls", f"http://127.0.0.1:{m.client_port}",
                 "--listen-peer-urls", f"http://127.0.0.1:{m.peer_port}",
                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{m.peer_port}",
                 "--initial-cluster", initial, "--initial-cluster-state", "new",
                 "--initial-cluster-token", root.name,
                 "--heartbeat-interval", "50", "--election-timeout", "500",
                 "--max-txn-ops", str(MAX_TXN_OPS), "--max-request-bytes", str(max_request_bytes)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            log.close()
        deadline = time.monotonic() + timeout
        while not all(_healthy(e) for e in cluster.endpoints):
            dead = [m.name for m in cluster.members if m.proc.poll() is not None]
            if dead or time.monotonic() > deadline:
                tail = "".join((root / f"{n}.log").read_text(errors="replace")[-600:] for n in dead[:1])
                raise EtcdUnavailable(f"etcd cluster of {size} did not become healthy in {timeout:.0f} s"
                            f"{' (exited: ' + ', '.join(dead) + ')' if dead else ''} {tail}")
            time.sleep(0.1)
        yield cluster
    finally:
        cluster.stop_all()
        shutil.rmtree(root, ignore_errors=True)
