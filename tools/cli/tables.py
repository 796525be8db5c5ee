"""Plain-text tables for ``dnctl``'s human output (scripts use ``--json`` instead).

No colours, no box drawing, ASCII only: the output must read the same in a terminal, a CI log
and a pasted issue. Columns are padded to their widest cell; numbers are right-aligned.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence


def _is_number(cell: str) -> bool:
    """True for cells that look numeric (right-aligned): ``12``, ``1.5 Gb/s``, ``30 ms``."""
    head = cell.split(" ", 1)[0]
    try:
        float(head)
    except ValueError:
        return False
    return True


def render_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], empty: str = "(none)") -> str:
    """Rows under headers, columns separated by two spaces; ``empty`` when there are no rows.

    A column is right-aligned when every non-empty cell in it looks like a number.
    """
    body = [["" if c is None else str(c) for c in row] for row in rows]
    if not body:
        return empty
    ncol = len(headers)
    for row in body:
        if len(row) != ncol:
            raise ValueError(f"table row has {len(row)} cells, headers have {ncol}")
    widths = [max(len(headers[i]), *(len(r[i]) for r in body)) for i in range(ncol)]
    right = [all(_is_number(r[i]) for r in body if r[i] and r[i] != "-") and any(r[i] for r in body)
             for i in range(ncol)]

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, c in enumerate(cells):
            last = i == ncol - 1
            if right[i]:
                out.append(c.rjust(widths[i]))
            else:
                out.append(c if last else c.ljust(widths[i]))
        return "  ".join(out).rstrip()

    return "\n".join([line(list(headers)), *(line(r) for r in body)])


def render_pairs(pairs: Iterable[tuple[str, Any]], indent: int = 0) -> str:
    """``key  value`` lines with the keys padded to the longest one (for ``show`` verbs)."""
    items = [(k, "" if v is None else str(v)) for k, v in pairs]
    if not items:
        return ""
    width = max(len(k) for k, _ in items)
    pad = " " * indent
    return "\n".join(f"{pad}{k.ljust(width)}  {v}".rstrip() for k, v in items)


def compress_ints(values: Sequence[int], limit: int = 4) -> str:
    """Sorted integers as ranges, at most ``limit`` ranges then ``...``: ``0-16, 40, 52-53, ...``."""
    vals = sorted(set(int(v) for v in values))
    if not vals:
        return "-"
    ranges: list[tuple[int, int]] = []
    start = prev = vals[0]
    for v in vals[1:]:
        if v == prev + 1:
            prev = v
            continue
        ranges.append((start, prev))
        start = prev = v
    ranges.append((start, prev))
    parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in ranges[:limit]]
    if len(ranges) > limit:
        parts.append("...")
    return ", ".join(parts)
