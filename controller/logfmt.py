"""The controller's log formats: ``text`` for people, ``json`` for machines; one record, one line.

``text`` is ``TIME LEVEL LOGGER: message`` (``TEXT_FORMAT``). ``json`` is one JSON object per line
with ``time`` (ISO 8601, UTC, milliseconds), ``level``, ``logger`` and ``message`` (the same
message as the text line), then the structured fields of the event where the code passes them as
``extra={"fields": {...}}`` (the audit events: ``seq``, ``actor``, ``action``, ``status``,
``tenant``, ``request``, ``outcome``; see ``controller.store``), and ``exception`` with the
traceback text when there is one. A field never replaces one of the four keys above.

Tokens: the code never logs one (the store redacts credential-like keys at every depth before an
audit entry is written or logged); the JSON formatter also writes ``"<redacted>"`` for any field
named like a credential (``token``, ``authorization``, ...; ``controller.store.SECRET_KEYS``),
whatever its origin. It checks the top-level field names only: walking every nested value again
would nearly double the cost of a line (an admission's audit event: about 60 us instead of 33
to format, against 6-12 us for the text line, on a loaded 2-core host).

Standard ``logging`` only: ``JsonFormatter`` is a ``logging.Formatter``; ``handler(fmt)`` gives
the stderr handler the launcher installs on the root logger.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any, TextIO

from controller.store import SECRET_KEYS

__all__ = ["FORMATS", "TEXT_FORMAT", "JsonFormatter", "formatter", "handler"]

#: the values of ``dnctl controller --log-format``
FORMATS = ("text", "json")

#: the text line (the format the controller always had)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_CORE_KEYS = ("time", "level", "logger", "message")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in messages are escaped by JSON)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
                            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                key = str(key)
                if key not in _CORE_KEYS:
                    doc[key] = "<redacted>" if key.lower() in SECRET_KEYS else value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, default=str, ensure_ascii=False, separators=(",", ":"))


def formatter(fmt: str) -> logging.Formatter:
    """The formatter of ``fmt`` (one of ``FORMATS``); ValueError otherwise."""
    if fmt == "text":
        return logging.Formatter(TEXT_FORMAT)
    if fmt == "json":
        return JsonFormatter()
    raise ValueError(f"log format {fmt!r}: use {' or '.join(FORMATS)}")


def handler(fmt: str, stream: TextIO | None = None) -> logging.Handler:
    """A stream handler (stderr unless ``stream``) writing records in format ``fmt``."""
    h = logging.StreamHandler(stream if stream is not None else sys.stderr)
    h.setFormatter(formatter(fmt))
    return h
