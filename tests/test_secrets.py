"""Secrets stay secret in a real ``dnctl controller`` over OpenFlow TLS and HTTPS, at DEBUG level.

The tokens (admin, a tenant's, the tenant's rotated one, a wrong one presented) and the private
keys (the CA's, the controller's, a switch's) never appear in: the controller's log, ``/metrics``,
the Schedule JSON export, the event log, the state database, an error answer, or the one-line
error a client shows. Private keys are files of mode 0600. ``tests/test_api_hostile.py`` covers the
tokens in-process with uvicorn's own loggers; this is the whole process, as operators run it.
"""

from __future__ import annotations

import base64
import os
import ssl
import stat
from pathlib import Path

import httpx
import pytest

from apihelpers import beijing_line
from tools.client import ApiClient, ApiError
from tools.emulation.controller_proc import ControllerProcess
from topologies.hosts import HostPlan


def _windows(secret: str, width: int = 12) -> list[str]:
    return [secret[i:i + width] for i in range(0, len(secret) - width + 1, 3)]


def _key_pieces(path) -> list[str]:
    """Pieces of a PEM private key: its base64 lines and the raw key bytes' base64 and hex windows."""
    lines = [ln for ln in open(path).read().splitlines() if ln and not ln.startswith("-----")]
    der = base64.b64decode("".join(lines))
    return [piece for line in lines for piece in _windows(line, 16)] + _windows(der.hex(), 24)


def test_tokens_and_private_keys_reach_no_log_export_answer_or_error(tmp_path):
    topo = beijing_line("secrets")
    with ControllerProcess(topo, HostPlan(topo), log_dir=tmp_path, start_timeout=60, https=True,
                           log_level="debug") as ctl:
        switch = ctl.switch_tls([1, 2, 3])
        keys = [ctl.pki.folder / "ca.key", ctl.pki.controller.key, switch[0]]
        for key in keys:
            assert stat.S_IMODE(os.stat(key).st_mode) == 0o600, key
        pieces = {key.name: _key_pieces(key) for key in keys}      # read now: the folder goes at stop
        verify = ssl.create_default_context(cafile=ctl.ca)
        admin = ctl.client()
        tenant = admin.post("/v1/tenants", {"name": "blue"})
        first = tenant["token"]
        blue = ApiClient(ctl.url, first, ca=ctl.ca)
        blue.post("/v1/reservations", {"src": "Beijing", "dst": "Jinan", "bandwidth_bps": 10**6,
                                       "max_latency_ns": 10**8})
        second = admin.rotate_tenant_token(tenant["id"])
        wrong = "WrongTokenWrongTokenWrongToken" + first[-8:]
        texts: dict[str, str] = {}
        for i, token in enumerate((first, wrong, second[:-1] + "x")):         # refused: one-line errors
            with pytest.raises(ApiError) as e:
                ApiClient(ctl.url, token, ca=ctl.ca).get("/v1/reservations")
            texts[f"client error {i}"] = str(e.value)
            r = httpx.get(f"{ctl.url}/v1/reservations", headers={"Authorization": f"Bearer {token}"},
                          verify=verify, trust_env=False)
            texts[f"401 answer {i}"] = r.text + repr(dict(r.headers))
        blue2 = ApiClient(ctl.url, second, ca=ctl.ca)
        texts["tenant view"] = repr(blue2.get("/v1/reservations")) + repr(blue2.get("/v1/tenants/me"))
        texts["metrics"] = httpx.get(f"{ctl.url}/metrics", verify=verify, trust_env=False).text
        texts["schedule"] = repr(admin.get("/v1/schedule"))
        texts["events"] = repr(admin.get("/v1/events", {"since": 0}))
        texts["tenants"] = repr(admin.get("/v1/tenants"))
        db = Path(ctl.db)
        texts["database"] = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*")).decode("latin-1")
    texts["log"] = ctl.log_path.read_text()
    assert "DEBUG" in texts["log"] and "reservation" in texts["schedule"]
    for token in (ctl.admin_token, first, second, wrong):
        for piece in _windows(token):
            for where, text in texts.items():
                assert piece not in text, f"a token reached the {where}"
    for name, key_pieces in pieces.items():
        for piece in key_pieces:
            for where, text in texts.items():
                assert piece not in text, f"private key {name} reached the {where}"
    for where, text in texts.items():
        assert "PRIVATE KEY" not in text, where
