"""Controller configuration: one JSON or TOML file (chosen by extension), every key optional.

Example ``controller.toml``::

    topology = "fntf40"          # name or file, read by the entry point
    db_path = "state/controller.db"   # relative to this file; the folder must exist
    allow_topology_change = false     # true: start on a database written for another topology
    listen_host = "127.0.0.1"
    listen_port = 8080
    api_tls_cert = "pki/controller.crt"   # HTTPS for the REST API: both or none, relative to this file
    api_tls_key = "pki/controller.key"
    slot_ns = 1000
    max_share = 0.75
    rate_limit_per_s = 50
    rate_limit_burst = 100

    [openflow]                   # checked by controller.launcher
    of_port = 6653
    tls_key = "pki/controller.key"    # OpenFlow over TLS: all three, relative to this file
    tls_cert = "pki/controller.crt"
    tls_ca = "pki/ca.crt"             # signs the switches' certificates (each naming its dpid)

Unknown keys are an error (a typo must not silently fall back to a default). The environment
variable ``DNCTL_ADMIN_TOKEN`` overrides ``admin_token``. Sections ``[openflow]`` and
``[extra]`` are passed through untouched for other parts of the controller.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from controller.auth import ADMIN_TOKEN_ENV


class ConfigError(ValueError):
    """The config file is unreadable or has a bad key or value; the message names the file and key."""


#: Keys handed to ``controller.core.scheduler.Scheduler`` as keyword arguments.
SCHEDULER_KEYS = ("slot_ns", "base_cycle_ns", "max_cycle_ns", "max_share", "k_paths", "max_wait_slots",
                  "processing_ns")


@dataclass
class ControllerConfig:
    """Every setting of the controller process, with its default."""

    topology: str | None = None
    hosts: str | None = None
    db_path: str = "detnet-controller.db"
    #: start on a database whose reservations were placed on another topology (name or digest);
    #: those that no longer fit are then listed as unrestored. False: the launcher refuses.
    allow_topology_change: bool = False
    admin_token: str | None = None
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    #: HTTPS for the REST API: certificate and private key files (both or none; relative to this file)
    api_tls_cert: str | None = None
    api_tls_key: str | None = None
    # scheduler
    slot_ns: int = 1000
    base_cycle_ns: int = 1_000_000
    max_cycle_ns: int = 100_000_000
    max_share: float = 0.75
    k_paths: int = 4
    max_wait_slots: int = 4
    processing_ns: int = 1000
    max_tenants: int = 128
    # REST API
    rate_limit_per_s: float = 50.0
    rate_limit_burst: int = 100
    max_body_bytes: int = 65536
    log_level: str = "INFO"
    # passed through to other components
    openflow: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def scheduler_options(self) -> dict[str, Any]:
        """Keyword arguments for the Scheduler."""
        return {k: getattr(self, k) for k in SCHEDULER_KEYS}

    def to_dict(self, *, hide_secrets: bool = True) -> dict[str, Any]:
        d = asdict(self)
        if hide_secrets and d.get("admin_token"):
            d["admin_token"] = "<set>"
        return d

    @classmethod
    def from_dict(cls, data: Any, source: str = "<config>", *, env: bool = True) -> "ControllerConfig":
        """Validate a parsed config; ConfigError names ``source`` and the key. ``env``: apply env overrides."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a table/object of settings")
        types = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(data) - set(types))
        if unknown:
            raise ConfigError(f"{source}: unknown key {unknown[0]!r} (known: {', '.join(sorted(types))})")
        cfg = cls()
        for key, value in data.items():
            setattr(cfg, key, _coerce(source, key, value, getattr(cls(), key), types[key]))
        if env and os.environ.get(ADMIN_TOKEN_ENV):
            cfg.admin_token = os.environ[ADMIN_TOKEN_ENV]
        cfg._check(source)
        return cfg

    def _check(self, source: str) -> None:
        def bad(key: str, why: str) -> ConfigError:
            return ConfigError(f"{source}: {key} {why}")

        for key in ("slot_ns", "base_cycle_ns", "max_cycle_ns", "k_paths", "max_tenants", "max_body_bytes"):
            if getattr(self, key) <= 0:
                raise bad(key, "must be positive")
        for key in ("max_wait_slots", "processing_ns", "rate_limit_burst"):
            if getattr(self, key) < 0:
                raise bad(key, "must not be negative")
        if not 0 < self.max_share <= 1:
            raise bad("max_share", "must be in (0, 1]")
        if self.rate_limit_per_s < 0:
            raise bad("rate_limit_per_s", "must not be negative (0 disables the limit)")
        if not 0 < self.listen_port < 65536:
            raise bad("listen_port", "must be a TCP port number")
        if self.base_cycle_ns % self.slot_ns or self.max_cycle_ns % self.slot_ns:
            raise bad("base_cycle_ns/max_cycle_ns", "must be multiples of slot_ns")
        if self.max_cycle_ns < self.base_cycle_ns:
            raise bad("max_cycle_ns", "must be at least base_cycle_ns")
        if self.admin_token is not None and len(self.admin_token) < 16:
            raise bad("admin_token", "must be at least 16 characters")


def _coerce(source: str, key: str, value: Any, default: Any, typ: Any) -> Any:
    """Check one value against the type of its default (ints stay ints, floats accept ints)."""
    t = str(typ)
    if value is None:
        if "None" in t:
            return None
        raise ConfigError(f"{source}: {key} must not be null")
    if "dict" in t:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key} must be a table")
        return dict(value)
    if isinstance(default, bool) or "bool" in t:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key} must be true or false")
        return value
    if "float" in t:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: {key} must be a number")
        return float(value)
    if "int" in t:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {key} must be an integer")
        return value
    if not isinstance(value, str):
        raise ConfigError(f"{source}: {key} must be a string")
    return value


def load_config(path: str | Path | None = None, *, env: bool = True) -> ControllerConfig:
    """Read a JSON (``.json``) or TOML (any other extension) config; None: defaults (+ env overrides)."""
    if path is None:
        return ControllerConfig.from_dict({}, "<defaults>", env=env)
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read: {e.strerror or e}") from None
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(raw.decode("utf-8"))
        else:
            data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{p}: not valid {'JSON' if p.suffix.lower() == '.json' else 'TOML'}: {e}") from None
    cfg = ControllerConfig.from_dict(data, str(p), env=env)
    # a relative db_path is relative to the config file, so the state follows the config
    if cfg.db_path != ":memory:" and not Path(cfg.db_path).expanduser().is_absolute():
        cfg.db_path = str((p.parent / cfg.db_path).resolve())
    return cfg
