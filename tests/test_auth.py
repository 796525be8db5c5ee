"""Tokens, principals, the admin token's life cycle, config loading and the rate limiter."""

import hashlib
import json

import pytest

from controller.api import RateLimiter
from controller.auth import (ADMIN_TOKEN_ENV, Principal, configured_admin_token, find_principal, generate_token,
                             hash_token, parse_bearer, verify_token)
from controller.config import ConfigError, ControllerConfig, load_config
from controller.service import ControllerService
from topologies.model import Topology


def tiny() -> Topology:
    t = Topology("tiny")
    for n in "AB":
        t.add_node(n)
    t.add_link("A", "B", 10)
    return t


def test_tokens_are_random_urlsafe_and_hashed_with_sha256():
    tokens = {generate_token() for _ in range(50)}
    assert len(tokens) == 50
    for tok in tokens:
        assert len(tok) >= 43 and all(c.isalnum() or c in "-_" for c in tok)
    tok = next(iter(tokens))
    assert hash_token(tok) == hashlib.sha256(tok.encode()).hexdigest()
    assert verify_token(tok, hash_token(tok))
    assert not verify_token(tok + "x", hash_token(tok))


def test_find_principal_matches_admin_tenant_or_nobody():
    admin, t1, t2 = generate_token(), generate_token(), generate_token()
    hashes = [(1, hash_token(t1)), (2, hash_token(t2))]
    assert find_principal(admin, hash_token(admin), hashes) == Principal.admin()
    assert find_principal(t2, hash_token(admin), hashes) == Principal.of_tenant(2)
    assert find_principal("nope", hash_token(admin), hashes) is None
    assert find_principal("", hash_token(admin), hashes) is None
    assert find_principal(t1, None, hashes).actor == "tenant:1"
    assert Principal.admin().actor == "admin" and Principal.admin().is_admin


@pytest.mark.parametrize("header,token", [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None),
                                          ("Bearer", None), ("", None), (None, None)])
def test_parse_bearer(header, token):
    assert parse_bearer(header) == token


def test_configured_admin_token_prefers_explicit_then_env(monkeypatch):
    monkeypatch.delenv(ADMIN_TOKEN_ENV, raising=False)
    assert configured_admin_token(None) is None
    monkeypatch.setenv(ADMIN_TOKEN_ENV, "from-the-environment-123")
    assert configured_admin_token(None) == "from-the-environment-123"
    assert configured_admin_token("explicit-admin-token-1") == "explicit-admin-token-1"
    with pytest.raises(ValueError):
        configured_admin_token("short")


def test_admin_token_generated_once_then_kept_across_restarts(tmp_path, monkeypatch):
    monkeypatch.delenv(ADMIN_TOKEN_ENV, raising=False)
    shown: list[str] = []
    db = str(tmp_path / "c.db")
    svc = ControllerService(tiny(), db_path=db, announce=shown.append)
    assert len(shown) == 1 and svc.admin_token_generated
    token = shown[0]
    assert svc.authenticate(token) == Principal.admin()
    svc.close()
    # restart without any token: the stored hash keeps the same token valid, nothing is printed
    svc = ControllerService(tiny(), db_path=db, announce=shown.append)
    assert len(shown) == 1 and not svc.admin_token_generated
    assert svc.authenticate(token) == Principal.admin()
    svc.close()
    # a configured token replaces it
    svc = ControllerService(tiny(), db_path=db, admin_token="a-brand-new-admin-token", announce=shown.append)
    assert svc.authenticate("a-brand-new-admin-token") == Principal.admin()
    assert svc.authenticate(token) is None
    raw = json.dumps(svc.store._query("SELECT * FROM audit")) + json.dumps(svc.store._query("SELECT * FROM settings"))
    assert token not in raw and "a-brand-new-admin-token" not in raw
    svc.close()


def test_generated_admin_token_goes_to_stderr_once(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(ADMIN_TOKEN_ENV, raising=False)
    ControllerService(tiny(), db_path=str(tmp_path / "c.db")).close()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "admin token" in err
    ControllerService(tiny(), db_path=str(tmp_path / "c.db")).close()
    assert capsys.readouterr().err == ""


def test_config_json_and_toml(tmp_path, monkeypatch):
    monkeypatch.delenv(ADMIN_TOKEN_ENV, raising=False)
    (tmp_path / "c.toml").write_text('db_path = "state/x.db"\nslot_ns = 500\nmax_share = 1\n'
                                     'rate_limit_per_s = 5\n[openflow]\nport = 6653\n')
    cfg = load_config(tmp_path / "c.toml")
    assert cfg.slot_ns == 500 and cfg.max_share == 1.0 and cfg.rate_limit_per_s == 5.0
    assert cfg.db_path == str((tmp_path / "state" / "x.db").resolve())
    assert cfg.openflow == {"port": 6653}
    assert cfg.scheduler_options()["slot_ns"] == 500
    (tmp_path / "c.json").write_text(json.dumps({"admin_token": "json-admin-token-xyz", "k_paths": 2}))
    cfg = load_config(tmp_path / "c.json")
    assert cfg.admin_token == "json-admin-token-xyz" and cfg.k_paths == 2
    assert cfg.to_dict()["admin_token"] == "<set>"
    monkeypatch.setenv(ADMIN_TOKEN_ENV, "env-admin-token-wins")
    assert load_config(tmp_path / "c.json").admin_token == "env-admin-token-wins"
    assert load_config(None).admin_token == "env-admin-token-wins"


@pytest.mark.parametrize("text,needle", [
    ('slot_nz = 5', "unknown key 'slot_nz'"),
    ('slot_ns = "5"', "slot_ns must be an integer"),
    ('slot_ns = true', "slot_ns must be an integer"),
    ('max_share = 2', "max_share"),
    ('slot_ns = 300', "multiples of slot_ns"),
    ('listen_port = 70000', "listen_port"),
    ('admin_token = "short"', "admin_token"),
    ('slot_ns = [', "not valid TOML"),
])
def test_config_errors_name_the_file_and_key(tmp_path, monkeypatch, text, needle):
    monkeypatch.delenv(ADMIN_TOKEN_ENV, raising=False)
    p = tmp_path / "bad.toml"
    p.write_text(text + "\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert needle in str(e.value) and "bad.toml" in str(e.value)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    assert ControllerConfig().rate_limit_burst == 100


def test_rate_limiter_token_bucket():
    now = [0.0]
    rl = RateLimiter(2.0, 3, clock=lambda: now[0])
    assert [rl.allow("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = rl.allow("a")
    assert wait == pytest.approx(0.5)
    assert rl.allow("b") == 0.0                   # buckets are per key
    now[0] += 0.5
    assert rl.allow("a") == 0.0 and rl.allow("a") > 0
    now[0] += 100
    assert [rl.allow("a") for _ in range(4)].count(0.0) == 3   # refills to the burst, not beyond
    assert RateLimiter(0, 1).allow("x") == 0.0                  # disabled
