"""Who may call the controller: the admin token's hash and each tenant's token hash.

Only hashes are held (and stored); ``authenticate`` compares a presented token with every one of
them in constant time (``controller.auth.find_principal``). How the admin token is chosen at start
(explicit or ``$DNCTL_ADMIN_TOKEN``, else the stored hash, else a new token announced once) is
described in ``controller.auth``.
"""

from __future__ import annotations

import sys
import threading
from typing import Callable

from controller.auth import (ADMIN_HASH_KEY, Principal, configured_admin_token, find_principal,
                             generate_token, hash_token)
from controller.store import Store


def stderr_announce(token: str) -> None:
    """Show a generated admin token once, on stderr."""
    print(f"detnet controller: generated admin token (shown once; its hash is stored, set "
          f"DNCTL_ADMIN_TOKEN to choose your own): {token}", file=sys.stderr, flush=True)


class Credentials:
    """Token hashes by principal. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._admin_hash: str | None = None
        self._tenant_hashes: dict[int, str] = {}
        #: True when this start generated the admin token (it was announced once).
        self.admin_token_generated = False

    def init_admin(self, store: Store, admin_token: str | None, announce: Callable[[str], None], *,
                   write: bool = True) -> None:
        """Install the admin token's hash: the configured token, else the stored hash, else a new
        token (stored, announced once). Changes are written to the store and audited.
        ``write=False`` (a cluster's follower): the configured or stored hash, nothing written, no
        token generated (the leader does that; the follower reads it at its next reload)."""
        token = configured_admin_token(admin_token)
        stored = store.get_setting(ADMIN_HASH_KEY)
        if not write:
            chosen = hash_token(token) if token is not None else stored
            if chosen:
                self._set_admin(chosen)
            return
        if token is not None:
            h = hash_token(token)
            if h != stored:
                with store.transaction() as tx:
                    tx.set_setting(ADMIN_HASH_KEY, h)
                    tx.append_audit("system", "admin_token_set", status="ok")
            self._set_admin(h)
        elif stored:
            self._set_admin(stored)
        else:
            token = generate_token()
            h = hash_token(token)
            with store.transaction() as tx:
                tx.set_setting(ADMIN_HASH_KEY, h)
                tx.append_audit("system", "admin_token_generated", status="ok")
            self._set_admin(h)
            self.admin_token_generated = True
            announce(token)

    def _set_admin(self, token_hash: str) -> None:
        with self._lock:
            self._admin_hash = token_hash

    def set_tenant(self, tenant_id: int, token_hash: str) -> None:
        with self._lock:
            self._tenant_hashes[tenant_id] = token_hash

    def remove_tenant(self, tenant_id: int) -> None:
        """Forget a tenant's token hash: its token stops working at once (deleted or rotated)."""
        with self._lock:
            self._tenant_hashes.pop(tenant_id, None)

    def authenticate(self, token: str | None) -> Principal | None:
        """The principal a bearer token stands for, or None (constant-time over all hashes)."""
        if not token:
            return None
        with self._lock:
            admin_hash, tenant_hashes = self._admin_hash, list(self._tenant_hashes.items())
        return find_principal(token, admin_hash, tenant_hashes)
