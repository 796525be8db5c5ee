"""``dnctl controller --log-format text|json`` (``controller.logfmt``) and the audit events in the log.

In-process: the JSON formatter's object (core keys, fields, redaction, tracebacks on one line), the
text line unchanged, the store logging each audit entry with its sequence number once committed and
nothing for a rolled-back transaction, bad values refused. End to end: a real ``dnctl controller
--log-format json`` without an admin token; the generated token lands in ``DB.admin-token`` (0600),
a tenant and a reservation are made with tokens and a token rotated; every stderr line is a JSON
object, the audit events appear with the same sequence numbers as ``GET /v1/events``, and no token
appears anywhere in the log.
"""

from __future__ import annotations

import io
import json
import logging
import os
import stat
import subprocess
import sys
import time

import httpx
import pytest

from apihelpers import beijing_line
from controller import logfmt
from controller.launcher import LaunchError, LaunchOptions, resolve
from controller.store import AUDIT_LOG, Store


def _record(msg="hello %s", args=("world",), level=logging.INFO, **extra) -> logging.LogRecord:
    rec = logging.LogRecord("detnet.test", level, __file__, 1, msg, args, None)
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


def test_json_line_has_the_core_keys_and_the_fields():
    rec = _record(fields={"seq": 7, "action": "reserve", "message": "not me", "Authorization": "Bearer s3cret"})
    line = logfmt.JsonFormatter().format(rec)
    assert "\n" not in line
    doc = json.loads(line)
    assert doc["message"] == "hello world"                # a field never replaces a core key
    assert doc["level"] == "INFO" and doc["logger"] == "detnet.test"
    assert doc["time"].endswith("Z") and doc["time"][:4].isdigit()
    assert doc["seq"] == 7 and doc["action"] == "reserve"
    assert doc["Authorization"] == "<redacted>" and "s3cret" not in line


def test_json_traceback_and_multiline_message_stay_on_one_line():
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        rec = _record("two\nlines", (), logging.ERROR, exc_info=sys.exc_info())
    line = logfmt.JsonFormatter().format(rec)
    assert "\n" not in line
    doc = json.loads(line)
    assert doc["message"] == "two\nlines" and "ValueError: bad" in doc["exception"]


def test_text_line_is_the_old_format():
    line = logfmt.formatter("text").format(_record())
    assert line.endswith(" INFO detnet.test: hello world")
    with pytest.raises(ValueError, match="log format 'xml'"):
        logfmt.formatter("xml")


@pytest.fixture
def audit_lines():
    """The detnet.audit records as JSON lines, captured at INFO."""
    stream = io.StringIO()
    handler = logfmt.handler("json", stream)
    before = AUDIT_LOG.level
    AUDIT_LOG.addHandler(handler)
    AUDIT_LOG.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(l) for l in stream.getvalue().splitlines()]
    finally:
        AUDIT_LOG.removeHandler(handler)
        AUDIT_LOG.setLevel(before)


def test_store_logs_each_committed_audit_entry_with_its_seq(tmp_path, audit_lines):
    store = Store(tmp_path / "a.db", synchronous="OFF")
    try:
        seq1 = store.append_audit("admin", "create_tenant", {"name": "t", "token": "tok-123"}, {"id": 1}, "ok", 1)
        with pytest.raises(RuntimeError):
            with store.transaction() as tx:
                tx.append_audit("admin", "rolled_back", None, None, "ok")
                raise RuntimeError("abort")
        with store.transaction() as tx:
            seq2 = tx.append_audit("tenant:1", "reserve", {"src": "A"}, {"id": "r1"}, "ok", 1)
            seq3 = tx.append_audit("tenant:1", "reserve", {"src": "B"}, None, "rejected", 1)
    finally:
        store.close()
    lines = audit_lines()
    assert [l["seq"] for l in lines] == [seq1, seq2, seq3] and seq1 < seq2 < seq3
    assert all(l["action"] != "rolled_back" for l in lines)
    first = lines[0]
    assert first["message"] == f"audit {seq1}: admin create_tenant ok (tenant 1)"
    assert first["logger"] == "detnet.audit" and first["tenant"] == 1 and first["outcome"] == {"id": 1}
    assert first["request"] == {"name": "t", "token": "<redacted>"}
    assert lines[2]["status"] == "rejected"


def test_bad_log_format_is_a_usage_error(tmp_path):
    with pytest.raises(LaunchError, match="log format 'xml'") as e:
        resolve(LaunchOptions(topology="fntf40", db=str(tmp_path / "x.db"), log_format="xml"))
    assert e.value.code == 2
    r = subprocess.run([sys.executable, "-m", "tools.cli.main", "controller", "--log-format", "xml"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--log-format" in r.stderr and "invalid choice" in r.stderr


def _wait_for(cond, timeout, what, proc):
    deadline = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, f"the controller exited while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_json_log_end_to_end_has_audit_seqs_and_no_token(tmp_path):
    from tools.emulation.controller_proc import ControllerProcess

    ctl = ControllerProcess(beijing_line("logline"), log_dir=tmp_path, db=tmp_path / "state.db",
                            extra_args=["--log-format", "json"])
    env = {k: v for k, v in os.environ.items() if k not in ("DNCTL_ADMIN_TOKEN", "DNCTL_TOKEN")}
    token_file = tmp_path / "state.db.admin-token"
    tokens: list[str] = []
    try:
        with open(ctl.log_path, "ab") as log:
            ctl.proc = subprocess.Popen(ctl.command(), env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        ctl.wait(lambda h: True, 60, "the REST API")
        _wait_for(token_file.exists, 10, "the admin token file", ctl.proc)
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        admin = token_file.read_text().strip()
        tokens.append(admin)
        ah = {"Authorization": f"Bearer {admin}"}
        with httpx.Client(base_url=ctl.url, timeout=30, trust_env=False) as c:
            r = c.post("/v1/tenants", json={"name": "blue", "quota_bps": 10**9}, headers=ah)
            assert r.status_code == 201, r.text
            tid, tok = r.json()["id"], r.json()["token"]
            tokens.append(tok)
            th = {"Authorization": f"Bearer {tok}"}
            body = {"src": "Beijing", "dst": "Jinan", "bandwidth_bps": 10**7, "max_latency_ns": 30_000_000}
            r = c.post("/v1/reservations", json=body, headers=th)
            assert r.status_code == 201, r.text
            rid = r.json()["id"]
            r = c.post("/v1/reservations", json={**body, "bandwidth_bps": 5 * 10**9}, headers=th)   # over quota
            assert r.status_code == 409, r.text
            r = c.post(f"/v1/tenants/{tid}/token", headers=ah)
            assert r.status_code == 200, r.text
            tokens.append(r.json()["token"])
            assert c.get("/v1/reservations", headers={"Authorization": "Bearer wrong-token-xyz"}).status_code == 401
            events = c.get("/v1/events", params={"since": 0}, headers=ah).json()["events"]
    finally:
        code = ctl.stop()
    assert code == 0
    text = ctl.log_path.read_text()
    lines = text.splitlines()
    docs = []
    for line in lines:
        try:
            docs.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line in the --log-format json log: {line!r}")
    assert len(docs) >= 8
    assert all({"time", "level", "logger", "message"} <= set(d) for d in docs)
    for t in tokens:
        assert t not in text, "a token reached the log"
    assert "wrong-token-xyz" not in text
    audited = {d["seq"]: d for d in docs if d["logger"] == "detnet.audit"}
    by_seq = {e["seq"]: e for e in events}
    for action in ("create_tenant", "reserve", "rotate_token"):
        assert any(e["action"] == action for e in events), action
    for seq, e in by_seq.items():          # every audit entry of the run is in the log, same seq and fields
        assert seq in audited, f"audit entry {seq} ({e['action']}) not logged"
        d = audited[seq]
        assert (d["action"], d["actor"], d["status"], d["tenant"]) == (e["action"], e["actor"], e["status"],
                                                                        e["tenant"])
        assert d["message"].startswith(f"audit {seq}: {e['actor']} {e['action']} {e['status']}")
    reserve = [d for d in audited.values() if d["action"] == "reserve" and d["status"] == "ok"]
    assert [d["outcome"]["id"] for d in reserve] == [rid]
    assert any(d["action"] == "reserve" and d["status"] == "rejected" and d["outcome"]["reason"].startswith("quota")
               for d in audited.values())
    assert any(d["logger"] == "detnet.launcher" and d.get("admin_token_file") == str(token_file) for d in docs)
