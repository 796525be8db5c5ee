"""Human units on the command line: bandwidths, durations and sizes in, short strings out.

The API speaks integers only (``bandwidth_bps``, ``*_ns``, ``frame_bytes``); people type ``2G``,
``30ms`` or ``64KiB``. These parsers turn such text into the API's integers and the formatters turn
integers back into short strings that the parsers accept again.

Rules (all parsers):

- a number (``2``, ``1.5``, ``.5``, ``1e3``, ``1_000``), optional spaces, an optional unit;
- bandwidth: SI decimal prefixes ``k M G T`` (any case: no one means milli-bits), optional ``bps``,
  ``b/s``, ``bit/s`` or ``bits/s``; a plain number is bit/s. ``B/s``/``Bps`` (bytes) is refused
  rather than guessed;
- duration: ``ns``, ``us``/``µs``/``μs``, ``ms``, ``s``; a plain number is nanoseconds, except
  for ``parse_duration_with_unit`` (the options of a reservation: ``--max-latency 30`` would be
  30 ns, surely not what was meant), which refuses it and suggests the units;
- size: ``B``/``bytes``, SI ``kB KB MB GB`` (powers of 1000) and binary ``KiB MiB GiB`` (powers of
  1024); a plain number is bytes. A lowercase ``b`` (bits) is refused for sizes;
- the result must be a whole, non-negative number of the base unit (``1.5ns`` is refused, not
  rounded) so nothing the user asked for is silently changed.

Errors are ``ValueError`` with one line that quotes the text and says what would be accepted.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_NUMBER = r"[+-]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_SPLIT = re.compile(rf"^\s*({_NUMBER})\s*(.*?)\s*$")

#: Largest value any parser returns (far above any real rate, time or size; keeps ints small).
_MAX = 10**18

_RATE_PREFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_RATE_SUFFIXES = ("", "bps", "b/s", "bit/s", "bits/s", "bit", "bits", "b")

_TIME_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "sec": 10**9}

_SIZE_UNITS = {
    "": 1, "b": 1, "byte": 1, "bytes": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}


def _split(text: str | int, what: str, examples: str) -> tuple[Decimal, str]:
    """(number, unit text) of ``text``; ValueError naming the text when there is no number."""
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise ValueError(f"{what} {text!r}: expected text such as {examples}")
    if isinstance(text, int):
        return Decimal(text), ""
    m = _SPLIT.match(text)
    if not m:
        raise ValueError(f"{what} {text!r}: expected a number and a unit, such as {examples}")
    try:
        value = Decimal(m.group(1))
    except InvalidOperation:  # pragma: no cover - the regex only lets valid numbers through
        raise ValueError(f"{what} {text!r}: not a number") from None
    return value, m.group(2)


def _whole(value: Decimal, scale: int, text: str | int, what: str, base: str) -> int:
    """``value * scale`` as a non-negative int; ValueError when negative or fractional."""
    total = value * scale
    if total > _MAX:
        raise ValueError(f"{what} {text!r}: too large")
    if total < 0:
        raise ValueError(f"{what} {text!r}: must not be negative")
    if total != total.to_integral_value():
        raise ValueError(f"{what} {text!r}: not a whole number of {base}")
    return int(total)


def parse_bandwidth(text: str | int) -> int:
    """Bit/s from ``"2G"``, ``"2Gbps"``, ``"500M"``, ``"1.5 Gb/s"``, ``"100k"`` or ``"1000"`` (SI)."""
    examples = "2G, 2Gbps, 500M, 1.5 Gb/s or 100k"
    value, unit = _split(text, "bandwidth", examples)
    prefix, rest = "", unit
    if unit and unit[0].lower() in "kmgt":
        prefix, rest = unit[0].lower(), unit[1:]
    if "B" in rest or rest.lower().startswith("byte"):
        raise ValueError(f"bandwidth {text!r}: give bits per second (e.g. 2G or 2Gbps), not bytes")
    if rest.lower() not in _RATE_SUFFIXES:
        raise ValueError(f"bandwidth {text!r}: unknown unit {unit!r} (use e.g. {examples})")
    return _whole(value, _RATE_PREFIX[prefix], text, "bandwidth", "bit/s")


def parse_duration(text: str | int, *, require_unit: bool = False) -> int:
    """Nanoseconds from ``"30ms"``, ``"250us"``, ``"20µs"``, ``"1.5s"``, ``"100ns"`` or ``"100"``.

    ``require_unit``: a plain number (``"30"``) is refused with the units it could mean.
    """
    examples = "30ms, 250us, 1.5s, 20us or 100ns"
    value, unit = _split(text, "duration", examples)
    if unit == "" and require_unit:
        n = str(text).strip()
        raise ValueError(f"duration {text!r} has no unit: give one, e.g. {n}ms, {n}us, {n}s or {n}ns")
    if unit == "":
        scale = 1
    elif unit.lower() in _TIME_UNITS:
        scale = _TIME_UNITS[unit.lower()]
    else:
        raise ValueError(f"duration {text!r}: unknown unit {unit!r} (use ns, us, ms or s, e.g. {examples})")
    return _whole(value, scale, text, "duration", "ns")


def parse_duration_with_unit(text: str | int) -> int:
    """``parse_duration`` that refuses a plain number (``"30"``): a unit is required."""
    return parse_duration(text, require_unit=True)


def parse_size(text: str | int) -> int:
    """Bytes from ``"1500"``, ``"1500B"``, ``"64KiB"``, ``"1MB"`` (kB/MB: x1000; KiB/MiB: x1024)."""
    examples = "1500, 1500B, 64KiB or 1MB"
    value, unit = _split(text, "size", examples)
    if unit.endswith("b") and not unit.endswith("ib"):
        raise ValueError(f"size {text!r}: 'b' means bits; give bytes with 'B' (e.g. {examples})")
    key = unit.lower()
    if key not in _SIZE_UNITS:
        raise ValueError(f"size {text!r}: unknown unit {unit!r} (use B, kB, MB, GB, KiB, MiB or GiB)")
    return _whole(value, _SIZE_UNITS[key], text, "size", "bytes")


def _short(value: float) -> str:
    """A number with up to 4 significant digits and no trailing zeros: 1.5, 12.35, 500."""
    s = f"{value:.4g}"
    if "e" in s:  # very large values in the top unit: print them whole
        s = f"{value:.0f}"
    return s


def _scaled(value: int, units: list[tuple[int, str]], sep: str = " ") -> str:
    """``value`` in the largest unit (of ``(scale, name)`` ascending) that keeps it >= 1."""
    scale, name = units[0]
    for s, n in units:
        if abs(value) >= s:
            scale, name = s, n
    return f"{_short(value / scale)}{sep}{name}"


def format_bps(bps: int | float | None) -> str:
    """``2000000000`` -> ``"2 Gb/s"``; None -> ``"unlimited"`` (quotas use None for no limit)."""
    if bps is None:
        return "unlimited"
    return _scaled(bps, [(1, "b/s"), (10**3, "kb/s"), (10**6, "Mb/s"), (10**9, "Gb/s"), (10**12, "Tb/s")])


def format_ns(ns: int | float | None) -> str:
    """``30000000`` -> ``"30 ms"``, ``1500`` -> ``"1.5 us"`` (ASCII ``us`` so any terminal shows it)."""
    if ns is None:
        return "-"
    return _scaled(ns, [(1, "ns"), (10**3, "us"), (10**6, "ms"), (10**9, "s")])


def format_bytes(n: int | float | None) -> str:
    """``1500`` -> ``"1500 B"``, ``250000`` -> ``"250 kB"`` (SI, like the bandwidths)."""
    if n is None:
        return "-"
    if abs(n) < 10**4:
        return f"{_short(n)} B"
    return _scaled(n, [(1, "B"), (10**3, "kB"), (10**6, "MB"), (10**9, "GB")])
