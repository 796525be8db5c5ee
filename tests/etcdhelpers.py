"""A throw-away etcd cluster for the tests (``tools.emulation.etcd``): etcd is the project's
dependency (``make setup`` installs it), so a missing binary or a cluster that does not form fails
the test, never skips it."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import pytest

from tools.emulation.etcd import MAX_TXN_OPS, EtcdCluster, EtcdUnavailable, Member, etcd_cluster as _cluster

__all__ = ["MAX_TXN_OPS", "EtcdCluster", "Member", "etcd_cluster"]


@contextmanager
def etcd_cluster(size: int = 1, *, timeout: float = 30.0, **kw) -> Iterator[EtcdCluster]:
    """``tools.emulation.etcd.etcd_cluster``; a missing etcd or a cluster that does not form fails the test."""
    try:
        with _cluster(size, timeout=timeout, **kw) as cluster:
            yield cluster
    except EtcdUnavailable as e:
        pytest.fail(str(e))
