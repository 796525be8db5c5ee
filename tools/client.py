"""The REST client behind ``dnctl``'s controller verbs (tenant, reserve, reservations, paths, schedule).

``ApiClient`` wraps httpx: it adds the bearer token, returns parsed JSON, and turns every failure
into one ``CliError`` line, so a verb never shows a traceback:

- the API refused (any 4xx/5xx): ``ApiError`` (a ``CliError``, exit 1) with the API's
  ``error``/``reason``/``field``/``detail`` kept as attributes and a message such as
  ``rejected (capacity:Beijing-Tianjin): no free slots on Beijing->Tianjin``;
- nothing listens at the URL: ``cannot reach the controller at URL (is `dnctl controller` running?)``
  (exit 1);
- a malformed ``--url``: exit 2 (the user's own mistake, found before any request).

Where the client connects: ``--url``, else ``$DNCTL_URL``, else ``http://127.0.0.1:8080``; with
``--token``, else ``$DNCTL_TOKEN``, else ``$DNCTL_ADMIN_TOKEN``.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from typing import Any
from urllib.parse import urlsplit

import httpx

from tools.cli import CliError

DEFAULT_URL = "http://127.0.0.1:8080"
#: Longest API detail echoed on the one error line (the rest is noise on a terminal).
_MAX_DETAIL = 400


class ApiError(CliError):
    """The controller answered with an error status. Exit code 1 (a refusal, not a usage error)."""

    def __init__(self, status: int, body: Any):
        self.status = status
        self.body = body
        d = body if isinstance(body, dict) else {}
        self.error: str | None = d.get("error") if isinstance(d.get("error"), str) else None
        self.reason: str | None = d.get("reason") if isinstance(d.get("reason"), str) else None
        self.field: str | None = d.get("field") if isinstance(d.get("field"), str) else None
        self.detail: str = _detail_text(d.get("detail") if d else body)
        super().__init__(error_message(status, body), code=1)


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
        return f"forbidden{tail} (this needs the admin token)"
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


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ApiClient:
    """A small synchronous client of the detnet REST API (see docs/cli.md and the REST shape)."""

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, timeout: float = 10,
                 transport: httpx.BaseTransport | None = None):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CliError(f"--url {url!r}: expected http://HOST:PORT or https://HOST:PORT")
        self.url = url.rstrip("/")
        self.token = token or None
        self.timeout = timeout
        headers = {"Accept": "application/json", "User-Agent": "dnctl"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        # A proxy from the environment must never sit between dnctl and a controller on this machine.
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport,
                                  trust_env=not _is_loopback(parts.hostname))

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "ApiClient":
        """A client from ``--url``/``--token`` or ``$DNCTL_URL``/``$DNCTL_TOKEN``/``$DNCTL_ADMIN_TOKEN``."""
        url = getattr(args, "url", None) or os.environ.get("DNCTL_URL") or DEFAULT_URL
        token = (getattr(args, "token", None) or os.environ.get("DNCTL_TOKEN")
                 or os.environ.get("DNCTL_ADMIN_TOKEN"))
        return cls(url, token)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                body: Any = None) -> Any:
        """Send one request; the parsed JSON answer (None for 204, text for non-JSON answers).

        Raises ``ApiError`` on an error status and ``CliError`` (exit 1) when the controller
        cannot be reached or does not answer in time.
        """
        if params:
            params = {k: v for k, v in params.items() if v is not None}
        try:
            r = self._http.request(method, path, params=params or None,
                                   json=body if body is not None else None)
        except httpx.ConnectError:
            raise CliError(f"cannot reach the controller at {self.url} (is `dnctl controller` running?)",
                           code=1) from None
        except httpx.TimeoutException:
            raise CliError(f"the controller at {self.url} did not answer within {self.timeout:g} s",
                           code=1) from None
        except httpx.HTTPError as e:
            raise CliError(f"talking to the controller at {self.url}: {_one_line(str(e)) or type(e).__name__}",
                           code=1) from None
        parsed = self._parse(r)
        if r.status_code >= 400:
            raise ApiError(r.status_code, parsed)
        return parsed

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

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, body=body)

    def patch(self, path: str, body: Any = None) -> Any:
        return self.request("PATCH", path, body=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)


def add_client_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--url``, ``--token`` and ``--json`` to a verb's parser.

    Defaults are suppressed, so the options may be given at any level of nested subcommands
    (``dnctl reservations --json list`` and ``dnctl reservations list --json`` both work); read
    them with ``getattr(args, "json", False)`` or through ``ApiClient.from_args``.
    """
    g = parser.add_argument_group("controller connection")
    g.add_argument("--url", default=argparse.SUPPRESS,
                   help=f"controller REST URL (default $DNCTL_URL or {DEFAULT_URL})")
    g.add_argument("--token", default=argparse.SUPPRESS,
                   help="API token (default $DNCTL_TOKEN, else $DNCTL_ADMIN_TOKEN)")
    g.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="print the API's JSON answer instead of a table")


def wants_json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def print_json(obj: Any) -> None:
    """The API's answer as JSON on stdout (what ``--json`` prints)."""
    print(json.dumps(obj, indent=1, ensure_ascii=False))


def schedule_export(args: argparse.Namespace) -> int:
    """GET /v1/schedule and write the Schedule JSON to ``args.out`` (a file) or stdout.

    ``args`` may carry ``url``, ``token`` (see ``add_client_args``) and ``out`` (None or ``-``:
    stdout). On success with a file, one summary line goes to stderr so stdout stays clean.
    """
    with ApiClient.from_args(args) as api:
        schedule = api.get("/v1/schedule")
    if not isinstance(schedule, dict):
        raise CliError("the controller's /v1/schedule answer is not a JSON object", code=1)
    text = json.dumps(schedule, indent=1, ensure_ascii=False) + "\n"
    out = getattr(args, "out", None)
    if not out or out == "-":
        sys.stdout.write(text)
        return 0
    try:
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise CliError(f"--out {out}: {e.strerror or e}") from None
    n = len(schedule.get("reservations", []))
    print(f"schedule: {n} reservation{'s' if n != 1 else ''}, cycle {schedule.get('cycle_ns')} ns, "
          f"written to {out}", file=sys.stderr)
    return 0


def parse_option(parse, text: str | None, option: str, *, positive: bool = True) -> int | None:
    """``parse(text)`` for a command-line option, None when not given; CliError (exit 2) naming it.

    ``parse`` is one of ``tools.cli.units.parse_bandwidth``/``parse_duration``/``parse_size``.
    """
    if text is None:
        return None
    try:
        value = parse(text)
    except ValueError as e:
        raise CliError(f"{option}: {e}") from None
    if positive and value <= 0:
        raise CliError(f"{option} {text!r}: must be greater than zero")
    return value
