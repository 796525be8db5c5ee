"""What every topology file loader shares: reading a file, recording fix-ups, the route factor.

Why a module of its own: ``topologies.loaders`` dispatches to the format loaders
(``topologies.zoo``, ``topologies.tsnkit_topo``) and they need these helpers too; kept here, the
loaders import the formats and the formats import this, with no cycle.

- ``read_text``: a file's text, or a one-line ``TopologyError`` naming it.
- ``warn`` / ``load_warnings``: a fix-up a loader made (merged duplicates, guessed lengths) is issued
  as a ``TopologyWarning`` and kept in ``topology.graph.graph["warnings"]``.
- ``DEFAULT_ROUTE_FACTOR``: fibre km per great-circle km, for formats that give only coordinates.

Pure apart from reading the file it is given.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from topologies.model import Topology, TopologyError

__all__ = ["DEFAULT_ROUTE_FACTOR", "TopologyWarning", "load_warnings", "read_text", "warn"]

#: Fibre length over great-circle distance used when a format gives only coordinates (fibre routes
#: typically run 1.2-1.5x the great-circle distance; fntf40's factor is 1.3354: docs/topologies.md).
DEFAULT_ROUTE_FACTOR = 1.34


class TopologyWarning(UserWarning):
    """Something a loader had to fix or guess in an otherwise usable topology file."""


def warn(topo: Topology, message: str) -> None:
    """Record ``message`` on ``topo`` and issue it as a TopologyWarning."""
    topo.graph.graph.setdefault("warnings", []).append(message)
    warnings.warn(message, TopologyWarning, stacklevel=3)


def load_warnings(topo: Topology) -> list[str]:
    """The warnings the loader recorded on ``topo`` (empty when it loaded cleanly)."""
    return list(topo.graph.graph.get("warnings", []))


def read_text(path: Path | str, source: str | None = None) -> str:
    """A file's text, or TopologyError naming it (missing, a directory, unreadable, not UTF-8)."""
    source = source or str(path)
    try:
        with open(path, encoding="utf-8-sig") as f:
            return f.read()
    except FileNotFoundError:
        raise TopologyError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise TopologyError(f"{source}: is a directory, not a topology file") from None
    except UnicodeDecodeError:
        raise TopologyError(f"{source}: not a text file (not UTF-8)") from None
    except OSError as e:
        raise TopologyError(f"{source}: cannot read ({e.strerror or e})") from None
