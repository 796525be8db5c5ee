"""Writes go to the leader: on a follower of a cluster, ``307`` to the leader's REST URL.

A cluster of controllers on etcd (``controller.ha``) serves reads on every member (from state
reloaded when the leader writes) and writes on the leader only. This pure ASGI middleware answers
a write (POST, PUT, PATCH, DELETE) on a member that does not lead with:

- ``307 Temporary Redirect`` and ``Location: <leader URL><same path and query>`` when the leader is
  known (307, not 302/303: the client sends the same method and body again;
  ``tools.client.ApiClient`` follows it with its token);
- while nobody is known to lead (an election in progress), or the known leader's REST port
  refuses connections (it died: a follower is about to revoke its lease), the write is held up to ``HOLD_S``
  seconds for a leader to appear (a failover takes well under a second: answering at once would
  make every client wait a whole ``Retry-After``), then answered as above, or this member serves
  it if it was elected meanwhile;
- ``503`` ``{"error": "no_leader", ...}`` with ``Retry-After: 1`` when nobody leads after that
  (the client retries).

``POST /v1/paths`` (what-if: nothing is reserved) is a read and is served where it arrives.
"""

import asyncio
import json
import time
from typing import Any

from controller.api.errors import error_body

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
#: POST routes that change nothing
READ_POSTS = {"/v1/paths"}
#: how long a write waits for a leader to be known before 503 (seconds)
HOLD_S = 2.0


class LeaderWritesMiddleware:
    """307 (or 503 with no leader) for writes on a member that does not lead."""

    def __init__(self, app: Any, member: Any):
        self.app, self.member = app, member

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if (scope["type"] != "http" or scope.get("method") not in WRITE_METHODS
                or scope.get("path") in READ_POSTS or self.member.is_leader):
            return await self.app(scope, receive, send)
        leader = self.member.leader_url
        dead = None
        if leader and leader != self.member.identity and await asyncio.to_thread(self.member.probe, leader):
            dead, leader = leader, None     # nothing listens there: a failover has begun; wait for the next
        end = time.monotonic() + HOLD_S
        while not leader and time.monotonic() < end:
            await asyncio.sleep(0.02)
            if self.member.is_leader:
                return await self.app(scope, receive, send)
            leader = self.member.leader_url
            if leader == dead:
                leader = None
        if leader and leader != self.member.identity:
            target = leader.rstrip("/") + scope.get("raw_path", scope["path"].encode()).decode("latin-1")
            if scope.get("query_string"):
                target += "?" + scope["query_string"].decode("latin-1")
            body = json.dumps(error_body("not_leader", f"this controller follows; the leader is {leader}",
                                         leader=leader)).encode()
            headers = [(b"location", target.encode("latin-1")), (b"cache-control", b"no-store")]
            status = 307
        else:
            body = json.dumps(error_body("no_leader", "no controller leads the cluster now (a failover is in "
                                         "progress): retry shortly")).encode()
            headers = [(b"retry-after", b"1")]
            status = 503
        await send({"type": "http.response.start", "status": status,
                    "headers": headers + [(b"content-type", b"application/json"),
                                          (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
