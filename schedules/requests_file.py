"""REQUESTS.json: a batch of reservation requests for ``dnctl schedule``.

The file is a JSON list of request objects, each exactly what ``POST /v1/reservations`` takes
(``controller.core.model.Request.from_dict``): ``tenant``, ``src``, ``dst``, ``frame_bytes`` with
``period_ns`` or ``bandwidth_bps`` (optionally with ``period_ns``; never both rates: that is an
error naming both, as in the API), ``max_latency_ns``, optionally ``id`` (becomes the
reservation's id), ``max_jitter_ns``, ``paths``, ``match`` (checked by the API's own
``validate_match``) and ``protection``. An unknown node name suggests the node meant.

A malformed file is refused as a whole, with one line naming the file, the entry index and the
field, so a batch is never half-applied because of a typo.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from controller.core.model import InvalidRequest, Request
from topologies.loaders import suggestion


class RequestsFileError(ValueError):
    """REQUESTS.json is unreadable or an entry is invalid; the message is one line."""


def parse_requests(data: Any, source: str = "<requests>", topology=None) -> list[Request]:
    """Validate a decoded REQUESTS.json document and return its requests in file order.

    With ``topology`` given, ``src``/``dst`` (and nodes named in ``paths``) must be nodes of it.
    Duplicate ``id`` values are refused (the second would only ever be rejected as ``exists``).
    """
    if not isinstance(data, list):
        raise RequestsFileError(f"{source}: expected a JSON list of request objects, got {type(data).__name__}")
    out: list[Request] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(data):
        try:
            req = Request.from_dict(entry)
        except InvalidRequest as e:
            raise RequestsFileError(f"{source}: entry #{i}: field {e.field!r}: {e.detail}") from None
        if topology is not None:
            for name, nodes in [("src", [req.src]), ("dst", [req.dst])] + [("paths", p) for p in req.paths or []]:
                for node in nodes:
                    if not topology.has_node(node):
                        hint = suggestion(node, topology.nodes)
                        raise RequestsFileError(f"{source}: entry #{i}: field {name!r}: {node!r} is not a node of "
                                                f"topology {topology.name}{f' ({hint})' if hint else ''}")
        if req.id is not None:
            if req.id in seen:
                raise RequestsFileError(f"{source}: entry #{i}: field 'id': {req.id!r} already used by entry #{seen[req.id]}")
            seen[req.id] = i
        out.append(req)
    return out


def read_requests(path: str | Path, topology=None) -> list[Request]:
    """Read and validate a REQUESTS.json file (see ``parse_requests``)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RequestsFileError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RequestsFileError(f"{p}: cannot read: {e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise RequestsFileError(f"{p}: not JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    return parse_requests(data, str(p), topology)
