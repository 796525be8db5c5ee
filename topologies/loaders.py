"""Load a Topology by name or from a file, whatever its format.

``load_topology("fntf40")`` or ``load_topology("abilene")`` (case-insensitive) reads packaged data;
``load_topology("net.json" | "net.graphml" | "net.csv")`` dispatches on the extension:

- ``.json``: the native format (``Topology.to_dict``),
- ``.graphml``: Internet Topology Zoo GraphML (``topologies.zoo``),
- ``.csv``: TSNKit topology CSV (``topologies.tsnkit_topo``).

Every problem with a file (missing, unreadable, not the format, missing or bad fields, unknown
nodes, empty) raises ``TopologyError`` with one line naming the file and the problem. Things a
loader fixed up on the way (merged duplicates, guessed lengths) are *warnings*: each is issued with
``warnings.warn(..., TopologyWarning)`` and kept in ``topology.graph.graph["warnings"]`` (read it
with ``load_warnings``), so a CLI can print them to stderr and a library user can filter them.
"""

from __future__ import annotations

import difflib
import json
from importlib import resources
from pathlib import Path
from typing import Iterable

from topologies.fileio import DEFAULT_ROUTE_FACTOR, TopologyWarning, load_warnings, read_text, warn
from topologies.model import DEFAULT_CAPACITY_BPS, Topology, TopologyError
from topologies.tsnkit_topo import load_tsnkit_csv
from topologies.zoo import load_graphml

# The fix-up helpers are part of this module's interface (``topologies.loaders.TopologyWarning``
# is what ``-W``/``filterwarnings`` name); they live in topologies.fileio, shared with the formats.
__all__ = ["DEFAULT_ROUTE_FACTOR", "TopologyWarning", "list_builtin", "load_native_json", "load_topology",
           "load_warnings", "read_text", "suggestion", "warn"]

_FORMATS = {".json": "native JSON", ".graphml": "Topology Zoo GraphML", ".csv": "TSNKit topology CSV"}


def suggestion(name: str, names: Iterable[str]) -> str:
    """``"did you mean 'Beijing'?"`` for the known name closest to a mistyped ``name``, else ``""``.

    The same letters in another case win (``beijing``); otherwise the closest spelling
    (``difflib``, ignoring case) if it is close enough (``Tianjn``, ``fntf4``). For the one-line
    errors about unknown nodes, links and topology names (the API, ``dnctl schedule``, the loaders).
    """
    if not isinstance(name, str) or not name:
        return ""
    known = [n for n in names if isinstance(n, str)]
    by_fold: dict[str, str] = {}
    for n in known:
        by_fold.setdefault(n.casefold(), n)
    best = by_fold.get(name.casefold())
    if best is None:
        close = difflib.get_close_matches(name.casefold(), list(by_fold), n=1, cutoff=0.75)
        best = by_fold[close[0]] if close else None
    return f"did you mean {best!r}?" if best is not None and best != name else ""


def _data_dir():
    return resources.files("topologies") / "data"


def _builtin_files() -> dict[str, object]:
    """Lower-case name -> packaged file (a Traversable)."""
    out: dict[str, object] = {}
    data = _data_dir()
    for entry in sorted(data.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            out[entry.name[:-5].lower()] = entry
    zoo = data / "zoo"
    if zoo.is_dir():
        for entry in sorted(zoo.iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".graphml"):
                out[entry.name[:-8].lower()] = entry
    return out


def list_builtin() -> list[str]:
    """Names of the packaged topologies (``fntf40`` first, then the Zoo samples), as spelled on disk."""
    names = []
    for entry in _builtin_files().values():
        name = entry.name.rsplit(".", 1)[0]
        names.append(name)
    return sorted(names, key=lambda n: (n != "fntf40", n.lower()))


def _is_bare_name(name_or_file: str) -> bool:
    return "/" not in name_or_file and "\\" not in name_or_file and not Path(name_or_file).suffix


def load_native_json(path: Path | str, source: str | None = None) -> Topology:
    """Read the native JSON format."""
    source = source or str(path)
    text = read_text(path, source)
    if not text.strip():
        raise TopologyError(f"{source}: empty file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise TopologyError(f"{source}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    return Topology.from_dict(data, source=source)


def _load_file(path: Path, source: str, route_factor: float, default_capacity_bps: float) -> Topology:
    ext = path.suffix.lower()
    if ext == ".json":
        return load_native_json(path, source)
    if ext == ".graphml":
        return load_graphml(path, route_factor=route_factor, default_capacity_bps=default_capacity_bps,
                            source=source)
    if ext == ".csv":
        return load_tsnkit_csv(path, source=source)
    known = ", ".join(f"{e} ({f})" for e, f in _FORMATS.items())
    raise TopologyError(f"{source}: unknown topology format {ext or '(no extension)'!r}; expected {known}")


def load_topology(name_or_file: str, *, route_factor: float = DEFAULT_ROUTE_FACTOR,
                  default_capacity_bps: float = DEFAULT_CAPACITY_BPS) -> Topology:
    """Load a packaged topology by name (case-insensitive) or a file by path (format from its extension).

    ``route_factor`` (fibre km per great-circle km) and ``default_capacity_bps`` (for links without a
    speed) apply to formats that give coordinates rather than lengths (Zoo GraphML). Raises
    TopologyError (one line naming the file) on any problem.
    """
    if not isinstance(route_factor, (int, float)) or not route_factor > 0:
        raise TopologyError(f"route factor must be a positive number, not {route_factor!r}")
    if not default_capacity_bps > 0:
        raise TopologyError(f"default capacity must be positive, not {default_capacity_bps!r}")
    name_or_file = str(name_or_file)
    if not name_or_file.strip():
        raise TopologyError("empty topology name")
    if _is_bare_name(name_or_file):
        entry = _builtin_files().get(name_or_file.lower())
        if entry is None:
            hint = suggestion(name_or_file, list_builtin())
            raise TopologyError(f"unknown topology {name_or_file!r}{f' ({hint})' if hint else ''}: builtin names "
                                f"are {', '.join(list_builtin())}; or give a .json, .graphml or .csv file")
        with resources.as_file(entry) as path:
            return _safe_load(Path(path), f"{name_or_file} ({entry.name})", route_factor, default_capacity_bps)
    return _safe_load(Path(name_or_file), name_or_file, route_factor, default_capacity_bps)


def _safe_load(path: Path, source: str, route_factor: float, default_capacity_bps: float) -> Topology:
    """Dispatch, turning any unexpected exception into a one-line TopologyError naming the file."""
    try:
        return _load_file(path, source, route_factor, default_capacity_bps)
    except TopologyError as e:
        msg = " ".join(str(e).split())
        raise TopologyError(msg if msg.startswith(source) else f"{source}: {msg}") from None
    except RecursionError:
        raise TopologyError(f"{source}: structure nested too deeply") from None
    except Exception as e:  # a loader bug or a format quirk: still one line, never a traceback
        detail = " ".join(str(e).split()) or type(e).__name__
        raise TopologyError(f"{source}: invalid topology ({type(e).__name__}: {detail})") from None
