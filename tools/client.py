"""A client library of the detnet REST API (``ApiClient``), used by ``dnctl`` and by the runs.

``ApiClient`` wraps httpx: it adds the bearer token, returns parsed JSON, and turns every failure
into one ``ClientError`` whose text is one line, so a caller can show it as it is:

- the API refused (any 4xx/5xx): ``ApiError`` with the API's ``error``/``reason``/``field``/
  ``detail`` kept as attributes and a message such as
  ``rejected (capacity:Beijing-Tianjin): no free slots on Beijing->Tianjin``;
- nothing answers at the URL, or not in time: ``ConnectionFailed``
  (``cannot reach the controller at URL (is `dnctl controller` running?)``);
- a malformed URL: ``BadUrl`` (also a ``ValueError``), found before any request.

Every ``ClientError`` carries ``code``, the exit status a command line gives it: 1 when the
controller refused or could not be reached, 2 for the caller's own mistake (a malformed URL).
``dnctl`` (``tools.cli.main``) prints the message and exits with that code.

Where to connect by default: ``ApiClient.from_env(url, token)`` takes the given URL, else
``$DNCTL_URL``, else ``http://127.0.0.1:8080``; the given token, else ``$DNCTL_TOKEN``, else
``$DNCTL_ADMIN_TOKEN``. The command-line options (``--url``, ``--token``, ``--ca``, ``--json``)
live in ``tools.cli.clientargs``; this module imports nothing of the command line.

A cluster of controllers: a follower answers a write with ``307``/``308`` and the leader's URL in
``Location``; every request follows it itself, at most ``MAX_REDIRECTS`` hops, re-sending the
same method, body and headers, ``Authorization`` included (httpx's own ``follow_redirects`` drops
it on a cross-origin hop, and the leader is another origin). A ``Location`` that is not http(s),
or one hop too many, is a ``BadRedirect`` (a ``ConnectionFailed``: exit status 1).

``reserve`` is safe to retry: it sends an ``Idempotency-Key`` (a uuid4 per call unless the caller
gives ``idempotency_key``) and, for up to ``retry_s`` seconds (constructor; 0: never), sends the
same request with the same key again when the controller cannot be reached, does not answer in
time, or answers 503 (no leader yet: its ``Retry-After`` is honoured, at most ``MAX_RETRY_WAIT``
seconds a wait). The controller answers a repeat with the first answer and admits nothing, so a
retry across a leader failover never books twice. The other calls are not retried.

HTTPS: the controller's certificate is always verified, against ``ca`` (a PEM file: the CA of
``dnctl pki init``), else ``$DNCTL_CA``, else the system's trusted CAs. There is no way to skip
verification. A certificate that does not verify is a ``TlsFailed`` naming the CA to give; an
unreadable CA file is a ``BadCa`` (the caller's mistake, exit status 2).
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import os
import re
import ssl
import time
import uuid
from typing import Any, Iterator, Mapping, Sequence
from urllib.parse import quote, urljoin, urlsplit

import httpx

__all__ = ["DEFAULT_URL", "ApiClient", "ApiError", "BadCa", "BadRedirect", "BadUrl", "ClientError", "ConnectionFailed",
           "TlsFailed", "error_message"]

DEFAULT_URL = "http://127.0.0.1:8080"
#: redirects (307/308) one request follows at most
MAX_REDIRECTS = 3
#: the longest wait between two tries of ``reserve``, whatever ``Retry-After`` says (seconds)
MAX_RETRY_WAIT = 5.0
#: without ``Retry-After``: a try every ``FAST_RETRY_S`` for the first ``FAST_RETRY_FOR_S`` seconds
#: (a leader failover takes about a second; a longer wait would add to it), then every ``BACKOFF_MAX_S``
FAST_RETRY_S = 0.1
FAST_RETRY_FOR_S = 3.0
BACKOFF_MAX_S = 1.0
#: how long ``reserve`` keeps trying by default (seconds)
DEFAULT_RETRY_S = 10.0
#: Longest API detail echoed on the one error line (the rest is noise on a terminal).
_MAX_DETAIL = 400


class ClientError(Exception):
    """A request through ``ApiClient`` failed; the message is one line.

    ``code`` is the exit status a command line gives it: 1 (the controller refused or could not
    be reached) unless a subclass says otherwise.
    """

    code = 1


class BadUrl(ClientError, ValueError):
    """The controller URL is not ``http(s)://HOST[:PORT]``: the caller's mistake (exit status 2)."""

    code = 2

    def __init__(self, url: str):
        self.url = url
        super().__init__(f"{url!r}: expected http://HOST:PORT or https://HOST:PORT")


class BadCa(ClientError, ValueError):
    """The CA file given to verify the controller's certificate cannot be read or is not PEM
    (the caller's mistake, exit status 2)."""

    code = 2


class ConnectionFailed(ClientError):
    """The controller could not be reached, did not answer in time, or the transport failed."""


class TlsFailed(ConnectionFailed):
    """The controller's certificate did not verify (wrong or missing CA, wrong host name)."""


class BadRedirect(ConnectionFailed):
    """A 307/308 to a URL that is not http(s), or more than ``MAX_REDIRECTS`` of them (never retried)."""


class ApiError(ClientError):
    """The controller answered with an error status (a refusal, exit status 1).

    Fields: ``status`` (HTTP status), ``body`` (the parsed answer), ``headers`` (the answer's,
    e.g. ``Retry-After``; empty when not known), and from a JSON answer ``error``, ``reason``,
    ``field`` (None when absent) and ``detail`` (one line, "" when absent).
    """

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None):
        self.status = status
        self.body = body
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        d = body if isinstance(body, dict) else {}
        self.error: str | None = d.get("error") if isinstance(d.get("error"), str) else None
        self.reason: str | None = d.get("reason") if isinstance(d.get("reason"), str) else None
        self.field: str | None = d.get("field") if isinstance(d.get("field"), str) else None
        #: the member of a batch (or the id of a multi-delete) that refused it, by position
        self.index: int | None = d.get("index") if type(d.get("index")) is int else None
        self.detail: str = _detail_text(d.get("detail") if d else body)
        super().__init__(error_message(status, body))


def _one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


def _detail_text(detail: Any) -> str:
    """The API's ``detail`` as one line (FastAPI's own validation errors give a list of dicts)."""
    if detail is None:
        return ""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = [str(x) for x in item.get("loc", []) if x not in ("body", "query", "path")]
                msg = item.get("msg", "")
                parts.append(f"{'.'.join(loc)}: {msg}" if loc else str(msg))
            else:
                parts.append(str(item))
        return _one_line("; ".join(parts))
    if isinstance(detail, dict):
        return _one_line(json.dumps(detail, sort_keys=True))
    return _one_line(str(detail))


def error_message(status: int, body: Any) -> str:
    """One line for an error answer, from its JSON ``{"error","detail","reason","field"}``."""
    d = body if isinstance(body, dict) else {}
    error = d.get("error") if isinstance(d.get("error"), str) else None
    reason = d.get("reason") if isinstance(d.get("reason"), str) else None
    field = d.get("field") if isinstance(d.get("field"), str) else None
    detail = _detail_text(d.get("detail") if d else body)
    tail = f": {detail}" if detail else ""
    if status == 409 or error == "rejected":
        return f"rejected ({reason}){tail}" if reason else f"rejected{tail}"
    if status == 401:
        return f"unauthorized{tail} (give --token or set DNCTL_TOKEN)"
    if status == 403:
        return f"forbidden{tail}" if "admin token" in tail else f"forbidden{tail} (this needs the admin token)"
    if status == 404:
        return f"not found{tail}"
    if status == 422 or error == "invalid":
        if field and detail.startswith(f"{field}:"):  # the API often repeats the field in its detail
            tail = f": {detail[len(field) + 1:].strip()}"
        return f"invalid {field}{tail}" if field else f"invalid request{tail}"
    if status == 413:
        return f"request too large{tail}"
    if status == 429:
        return f"rate limited{tail} (try again shortly)"
    if status >= 500:
        return f"controller error (HTTP {status}){tail}"
    return f"{error or f'HTTP {status}'}{tail}"


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds a ``Retry-After`` header (delay seconds or an HTTP date) asks to wait; None: absent or bad."""
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _verify(ca: str | None) -> ssl.SSLContext | bool:
    """What httpx verifies the controller's certificate with: ``ca``'s certificates, else the
    system's (True). Never False."""
    if ca is None:
        return True
    try:
        return ssl.create_default_context(cafile=ca)
    except FileNotFoundError:
        raise BadCa(f"--ca {ca}: no such file") from None
    except (OSError, ssl.SSLError) as e:
        raise BadCa(f"--ca {ca}: not a readable PEM certificate ({_one_line(str(e))})") from None


class ApiClient:
    """A small synchronous client of the detnet REST API (see docs/cli.md and the REST shape)."""

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, timeout: float = 10,
                 transport: httpx.BaseTransport | None = None, ca: str | None = None,
                 retry_s: float = DEFAULT_RETRY_S):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadUrl(url)
        self.url = url.rstrip("/")
        self.ca = ca or None
        self.token = token or None
        self.timeout = timeout
        #: how long ``reserve`` keeps trying when the controller is unreachable or answers 503 (0: never)
        self.retry_s = max(0.0, float(retry_s))
        self._sleep = time.sleep         # the tests watch the waits here
        headers = {"Accept": "application/json", "User-Agent": "dnctl"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        # A proxy from the environment must never sit between dnctl and a controller on this machine.
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport,
                                  trust_env=not _is_loopback(parts.hostname), verify=_verify(self.ca))

    @classmethod
    def from_env(cls, url: str | None = None, token: str | None = None, ca: str | None = None) -> "ApiClient":
        """A client on ``url`` else ``$DNCTL_URL`` else ``DEFAULT_URL``, with ``token`` else
        ``$DNCTL_TOKEN`` else ``$DNCTL_ADMIN_TOKEN``, verifying HTTPS against ``ca`` else
        ``$DNCTL_CA`` (an empty string counts as not given)."""
        url = url or os.environ.get("DNCTL_URL") or DEFAULT_URL
        token = token or os.environ.get("DNCTL_TOKEN") or os.environ.get("DNCTL_ADMIN_TOKEN")
        return cls(url, token, ca=ca or os.environ.get("DNCTL_CA") or None)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                body: Any = None, headers: Mapping[str, str] | None = None) -> Any:
        """Send one request; the parsed JSON answer (None for 204, text for non-JSON answers).
        A 307/308 is followed (``MAX_REDIRECTS`` hops at most) with the same method, body and
        headers, the token included.

        Raises ``ApiError`` on an error status, ``ConnectionFailed`` when the controller cannot
        be reached or does not answer in time, ``BadRedirect`` for a redirect it will not follow.
        """
        if params:
            params = {k: v for k, v in params.items() if v is not None}
        target: str = path
        for hop in range(MAX_REDIRECTS + 1):
            r = self._send(method, target, params=params or None, body=body, headers=headers)
            if r.status_code not in (307, 308):
                break
            location = r.headers.get("location")
            if not location:
                break                   # nothing to follow: answered as it is below
            target = urljoin(str(r.request.url), location)
            params = None               # the Location carries the query
            if urlsplit(target).scheme not in ("http", "https"):
                raise BadRedirect(f"the controller at {self.url} redirected to {_one_line(target)!r}: "
                                  "not an http(s) URL, not followed")
        else:
            raise BadRedirect(f"the controller at {self.url} redirected more than {MAX_REDIRECTS} times "
                              f"(last to {_one_line(target)}): not followed")
        parsed = self._parse(r)
        if r.status_code >= 400:
            raise ApiError(r.status_code, parsed, r.headers)
        return parsed

    def _send(self, method: str, target: str, *, params: dict[str, Any] | None, body: Any,
              headers: Mapping[str, str] | None) -> httpx.Response:
        """One HTTP exchange (no redirect followed); transport failures become ``ConnectionFailed``."""
        try:
            return self._http.request(method, target, params=params, json=body if body is not None else None,
                                      headers=dict(headers) if headers else None, follow_redirects=False)
        except httpx.ConnectError as e:
            if "CERTIFICATE_VERIFY_FAILED" in str(e):
                why = re.sub(r"\s*\(_ssl\.c:\d+\)", "", _one_line(str(e)).split("certificate verify failed:")[-1])
                why = why.strip(" )]") or "verify failed"
                raise TlsFailed(f"the controller at {self.url} presented a certificate that does not verify "
                                f"({why}) against {self.ca or 'the system CAs'}: give the CA that signed it "
                                "(--ca or $DNCTL_CA)") from None
            raise ConnectionFailed(f"cannot reach the controller at {self.url} (is `dnctl controller` running?)"
                                   ) from None
        except httpx.TimeoutException:
            raise ConnectionFailed(f"the controller at {self.url} did not answer within {self.timeout:g} s"
                                   ) from None
        except httpx.RemoteProtocolError as e:
            hint = " (if it serves HTTPS, use https://)" if self.url.startswith("http://") else ""
            raise ConnectionFailed(f"talking to the controller at {self.url}: "
                                   f"{_one_line(str(e)) or type(e).__name__}{hint}") from None
        except httpx.HTTPError as e:
            raise ConnectionFailed(f"talking to the controller at {self.url}: "
                                   f"{_one_line(str(e)) or type(e).__name__}") from None

    @staticmethod
    def _parse(r: httpx.Response) -> Any:
        if r.status_code == 204 or not r.content:
            return None
        if "json" in r.headers.get("content-type", ""):
            try:
                return r.json()
            except ValueError:
                pass
        return r.text

    # ----- the everyday calls ---------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """``GET /healthz`` (no token): ``status`` ok or degraded, with ``reasons``, and counts."""
        return self.get("/healthz")

    def topology(self) -> dict[str, Any]:
        """``GET /v1/topology``: nodes, links and the caller's hosts."""
        return self.get("/v1/topology")

    def create_tenant(self, name: str, **quota: Any) -> dict[str, Any]:
        """``POST /v1/tenants`` (admin): ``{"id", "name", "token", ...}``; the token is shown once.
        ``quota``: ``quota_bps`` (bit/s it may hold), ``max_reservations``."""
        return self.post("/v1/tenants", {"name": name, **quota})

    def what_if(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v1/paths``: would ``request`` (a ``POST /v1/reservations`` body) be admitted
        now, and where: ``{"admissible", "path", "latency_bound_ns", ...}`` or the reason not.
        Nothing is reserved."""
        return self.post("/v1/paths", dict(request))

    def reserve(self, request: Mapping[str, Any], *, idempotency_key: str | None = None) -> dict[str, Any]:
        """``POST /v1/reservations``: admit one reservation (``src``, ``dst``, ``bandwidth_bps`` or
        ``frame_bytes``/``period_ns``, ``max_latency_ns``, optional ``id``, ``match``,
        ``protection``; ``tenant`` with the admin token). Returns it with its path, slots,
        ``latency_bound_ns``, ``jitter_bound_ns`` and ``tx_offsets_ns``; a refusal raises
        ``ApiError`` (409 with ``reason``, 422 with ``field``) and changed nothing.

        Sent with ``Idempotency-Key: idempotency_key`` (default: a new uuid4) and tried again with
        the same key for up to ``retry_s`` seconds while the controller is unreachable, slow or
        answers 503 (see the module doc): at most one reservation comes of one call. Give your
        own key to make a retry of a whole program (e.g. after it crashed) safe too."""
        key = idempotency_key if idempotency_key is not None else str(uuid.uuid4())
        body, headers = dict(request), {"Idempotency-Key": key}
        started = time.monotonic()
        deadline = started + self.retry_s
        while True:
            try:
                return self.request("POST", "/v1/reservations", body=body, headers=headers)
            except (BadRedirect, TlsFailed):
                raise
            except (ConnectionFailed, ApiError) as e:
                if isinstance(e, ApiError) and e.status != 503:
                    raise
                wait = _retry_after(e.headers) if isinstance(e, ApiError) else None
                if wait is None:    # every 0.1 s for the first seconds: a failover takes about one
                    fast = time.monotonic() - started < FAST_RETRY_FOR_S
                    wait = FAST_RETRY_S if fast else BACKOFF_MAX_S
                wait = min(MAX_RETRY_WAIT, wait)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                self._sleep(min(wait, left))

    def reservation(self, reservation_id: str) -> dict[str, Any]:
        """``GET /v1/reservations/{id}`` (404 ``ApiError`` when it is not the caller's)."""
        return self.get(f"/v1/reservations/{quote(reservation_id, safe='')}")

    def release(self, reservation_id: str) -> None:
        """``DELETE /v1/reservations/{id}``: its slots freed and its entries removed."""
        self.delete(f"/v1/reservations/{quote(reservation_id, safe='')}")

    def schedule(self) -> dict[str, Any]:
        """``GET /v1/schedule``: the Schedule JSON of the caller's reservations (the contract)."""
        return self.get("/v1/schedule")

    # ----- day-2: modify, page through, tenants ---------------------------------------------------
    def modify_reservation(self, reservation_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """``PATCH /v1/reservations/{id}``: change ``bandwidth_bps`` or ``frame_bytes`` (with or
        without ``period_ns``), ``max_latency_ns``, ``max_jitter_ns``, ``match``, ``protection``
        (None removes the last three). The reservation keeps its id; a refusal raises ``ApiError``
        (409 with ``reason``, 422 with ``field``) and changed nothing. Returns the reservation."""
        return self.patch(f"/v1/reservations/{quote(reservation_id, safe='')}", dict(changes))

    def list_reservations_page(self, *, limit: int | None = None, cursor: str | None = None,
                               src: str | None = None, dst: str | None = None, status: str | None = None,
                               tenant: int | None = None, slots: str | None = None) -> dict[str, Any]:
        """One page of ``GET /v1/reservations``: ``{"reservations": [...], "next_cursor": str|None}``
        (filters: ``src``, ``dst``, ``status`` = active|down|unrestored, ``tenant`` for the admin;
        ``slots`` = "expanded" (default) or "compact")."""
        return self.get("/v1/reservations", params={"limit": limit, "cursor": cursor, "src": src, "dst": dst,
                                                     "status": status, "tenant": tenant, "slots": slots})

    def iter_reservations(self, *, page_size: int = 500, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every reservation matching ``filters`` (as ``list_reservations_page``), page by page."""
        cursor = None
        while True:
            page = self.list_reservations_page(limit=page_size, cursor=cursor, **filters)
            yield from page.get("reservations", [])
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def delete_tenant(self, tenant_id: int) -> dict[str, Any]:
        """``DELETE /v1/tenants/{id}`` (admin): its reservations released, its token revoked.
        Returns ``{"id", "name", "released": [ids]}``."""
        return self.delete(f"/v1/tenants/{int(tenant_id)}")

    def rotate_tenant_token(self, tenant_id: int) -> str:
        """``POST /v1/tenants/{id}/token`` (admin, or the tenant itself): the new token (shown
        once); the old one is refused from now on."""
        return str(self.post(f"/v1/tenants/{int(tenant_id)}/token")["token"])

    def my_tenant(self) -> dict[str, Any]:
        """``GET /v1/tenants/me`` (a tenant token): quotas, usage, ``available_bps`` and
        ``reservations_left`` (None: unlimited)."""
        return self.get("/v1/tenants/me")

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, body=body)

    def patch(self, path: str, body: Any = None) -> Any:
        return self.request("PATCH", path, body=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    # ----- bulk and gang admission ---------------------------------------------------------------
    def reserve_batch(self, requests: Sequence[Mapping[str, Any]], atomic: bool = True) -> dict[str, Any]:
        """``POST /v1/reservations/batch``: admit ``requests`` (each a ``POST /v1/reservations``
        body) in order, as one change.

        ``atomic`` (default): all or none; a refusal raises ``ApiError`` (409 with ``reason``, 422
        with ``field``, 403) whose ``index`` names the first member that blocked, and nothing was
        admitted. Otherwise the answer lists what was admitted and the refused members:
        ``{"atomic", "reservations": [reservation, ...], "rejections": [{"index", "error",
        "reason", "detail", "field"?}, ...]}`` (reservations in request order).
        """
        return self.post("/v1/reservations/batch",
                         {"atomic": bool(atomic), "reservations": [dict(r) for r in requests]})

    def release_many(self, ids: Sequence[str]) -> list[str]:
        """``POST /v1/reservations/delete``: release every reservation of ``ids``, or none (an
        unknown id, another tenant's, or one given twice raises ``ApiError`` with its ``index``).
        Returns the ids deleted, in the order given."""
        answer = self.post("/v1/reservations/delete", {"ids": list(ids)})
        return list(answer["deleted"])
