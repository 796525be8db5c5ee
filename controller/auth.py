"""Bearer tokens: generation, hashing, constant-time checks, and who a request acts as.

Tokens are 32 random bytes (``secrets.token_urlsafe(32)``, 43 characters). Only their sha256 hex
digest is kept (a fast hash is enough: the token carries 256 bits of entropy, so there is nothing
to brute-force). Comparisons go through ``hmac.compare_digest``, and ``find_principal`` compares
the presented hash with every candidate without stopping early, so timing reveals nothing about
which token, if any, matched.

The admin token (see docs/rest-api.md):
- the env variable ``DNCTL_ADMIN_TOKEN``, or ``admin_token`` in the config file (the environment
  wins), sets it; its hash replaces the stored one;
- otherwise the hash already stored in the database is kept, so a restart without the variable
  keeps the same admin token working;
- otherwise a token is generated, its hash stored, and the token printed once on stderr.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from typing import Iterable

#: Environment variable that sets the admin token (wins over the config file).
ADMIN_TOKEN_ENV = "DNCTL_ADMIN_TOKEN"
#: Settings key under which the store keeps the admin token's hash.
ADMIN_HASH_KEY = "admin_token_sha256"
#: Shortest token accepted from a config file or the environment.
MIN_TOKEN_CHARS = 16


def generate_token() -> str:
    """A new random token (32 bytes, URL-safe base64)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """sha256 hex digest of the token (what the store keeps)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def verify_token(token: str, token_hash: str) -> bool:
    """True if ``token`` hashes to ``token_hash`` (constant-time comparison)."""
    return hmac.compare_digest(hash_token(token), token_hash)


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: the admin, or one tenant (``tenant`` is its id)."""

    kind: str              # "admin" | "tenant"
    tenant: int | None = None

    @classmethod
    def admin(cls) -> "Principal":
        return cls("admin")

    @classmethod
    def of_tenant(cls, tenant_id: int) -> "Principal":
        return cls("tenant", int(tenant_id))

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"

    @property
    def actor(self) -> str:
        """How the audit log names it: ``admin`` or ``tenant:N``."""
        return "admin" if self.is_admin else f"tenant:{self.tenant}"


def find_principal(token: str, admin_hash: str | None,
                   tenant_hashes: Iterable[tuple[int, str]]) -> Principal | None:
    """The principal whose hash matches ``token``, or None.

    Every candidate is compared (no early exit), each with ``hmac.compare_digest``.
    """
    if not isinstance(token, str) or not token:
        return None
    h = hash_token(token)
    found: Principal | None = None
    if admin_hash is not None and hmac.compare_digest(h, admin_hash):
        found = Principal.admin()
    for tid, th in tenant_hashes:
        if hmac.compare_digest(h, th) and found is None:
            found = Principal.of_tenant(tid)
    return found


def configured_admin_token(explicit: str | None) -> str | None:
    """The admin token to install: ``explicit`` if given, else ``$DNCTL_ADMIN_TOKEN``, else None.

    (``controller.config.load_config`` already lets the environment win over the file, so the
    value it hands over is passed here as ``explicit``.) ValueError if the token is too short.
    """
    token = explicit if explicit else os.environ.get(ADMIN_TOKEN_ENV) or None
    if token is None:
        return None
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise ValueError(f"the admin token must be at least {MIN_TOKEN_CHARS} characters without spaces "
                         "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return token


def parse_bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header, or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    value = value.strip()
    return value or None
