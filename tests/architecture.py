"""The architecture check: the project's import rules, read from the source with ``ast``.

Why: the layering (docs and issue 10) only holds if something looks. This module reads every
module under ``controller/``, ``topologies/``, ``schedules/`` and ``tools/`` (nothing is imported or
run) and reports, as one JSON object, what ``tests/test_architecture.py`` asserts:

- ``cycles``: groups of project modules that import each other, directly or round a loop
  (strongly connected components of the import graph; every import counts, at module top or in
  a function, because either can run first);
- ``os_ken_importers`` / ``os_ken_outside_shim``: os_ken belongs to the shim
  (``controller.ofshim``, ``controller.ofchannel``) and ``controller.launcher`` only;
- ``lower_layers_importing_tools``: ``controller``, ``topologies`` and ``schedules`` sit below
  ``tools`` and never import it;
- ``impure_pure_modules``: pure modules (``PURE``) reach neither os_ken nor mininet, not even
  through another project module (the chain is given);
- ``dynamic_imports``: ``importlib.import_module``/``__import__`` of a project module, or of a
  name computed at run time (the graph cannot see those: plain imports instead);
- ``import_fallbacks``: a project import inside ``try: ... except ImportError`` whose handler
  carries on (a module that exists is imported, not "imported if present");
- ``function_local_project_imports``: project imports inside functions, each ``file:line``
  (reported, not a rule by itself: lazy imports of modules that pull in mininet or matplotlib are
  allowed).

The edges are the names written in the source: ``from a.b import c`` is an edge to ``a.b``, and to
``a.b.c`` too when that is a module; ``import a.b`` is an edge to ``a.b``. Parent packages that
Python initialises on the way are not edges (the project's package ``__init__`` files hold
docstrings and at most an exception class). Same rules as ``../shared/hooks/import_graph.py``.

usage: python3 tests/architecture.py [REPO]   or   python -m tests.architecture [REPO]
Prints the JSON; exit status 0 when every rule holds, 1 otherwise. Standard library only.
"""

from __future__ import annotations

import ast
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

#: top-level packages that are the project (tests/ is not a layer)
ROOTS = ("controller", "topologies", "schedules", "tools")
#: the layers below tools/
LOWER = ("controller", "topologies", "schedules")
#: the only modules that may import os_ken: the shim (its request/reply channel, its TLS listener) and the launcher
OS_KEN_ALLOWED = frozenset({"controller.ofshim", "controller.ofchannel", "controller.oftls", "controller.launcher"})
#: modules (a name, or a package prefix ending in ".") that must reach neither os_ken nor mininet: the
#: pure logic (core, data plane, schedules, topology model, host plan, the emulated network's names
#: and shaping), the file loaders (pure but for reading the file) and the kernel probes
PURE = ("controller.core.", "controller.dataplane.", "schedules.", "topologies.model", "topologies.hosts",
        "topologies.fileio", "topologies.loaders", "topologies.zoo", "topologies.tsnkit_topo",
        "topologies.generate_fntf40", "topologies.emulated", "topologies.machine")
#: third-party roots a pure module must not reach
FORBIDDEN_IN_PURE = ("os_ken", "mininet")
_IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError"})


@dataclass
class Module:
    """One project module: its dotted name, file, and what it imports."""

    name: str
    path: Path
    rel: str                                                          # path relative to the repo
    deps: dict[str, int] = field(default_factory=dict)                # project module -> first line
    external: dict[str, int] = field(default_factory=dict)            # third-party root -> first line
    local: list[tuple[int, str]] = field(default_factory=list)        # (line, project module) in a function
    dynamic: list[tuple[int, str]] = field(default_factory=list)      # (line, target or "<computed>")
    fallbacks: list[tuple[int, str]] = field(default_factory=list)    # (line, project module)


def is_pure(name: str) -> bool:
    """Whether ``name`` is one of the ``PURE`` modules (``controller.core`` itself included)."""
    return any(name == p.rstrip(".") or (p.endswith(".") and name.startswith(p)) for p in PURE)


def discover(repo: Path, roots: tuple[str, ...] = ROOTS) -> dict[str, Module]:
    """Dotted module name -> Module (not yet parsed) for every ``.py`` file under ``roots``."""
    mods: dict[str, Module] = {}
    for root in roots:
        for p in sorted((repo / root).rglob("*.py")):
            parts = list(p.relative_to(repo).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join(parts)
            mods[name] = Module(name, p, str(p.relative_to(repo)))
    return mods


def _resolver(mods: dict[str, Module]):
    def resolve(dotted: str) -> str | None:
        """The project module a dotted name refers to (longest known prefix), or None."""
        parts = dotted.split(".")
        while parts:
            cand = ".".join(parts)
            if cand in mods:
                return cand
            parts.pop()
        return None
    return resolve


def _absolute(node: ast.ImportFrom, module: Module) -> str:
    """The absolute base of a ``from ... import`` (relative levels resolved against the package)."""
    if not node.level:
        return node.module or ""
    pkg = module.name.split(".") if module.path.name == "__init__.py" else module.name.split(".")[:-1]
    pkg = pkg[: len(pkg) - (node.level - 1)]
    return ".".join(pkg + ([node.module] if node.module else []))


def _imported_names(node: ast.AST, module: Module) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        base = _absolute(node, module)
        return [base] + [f"{base}.{a.name}" if base else a.name for a in node.names]
    return []


def _targets(names: list[str], resolve, own: str) -> set[str]:
    """The project modules named (each name by its longest prefix that is a module), ``own`` left out."""
    return {t for t in map(resolve, names) if t and t != own}


def _falls_back_on_import_error(handler: ast.ExceptHandler) -> bool:
    """An ``except ImportError`` (or ModuleNotFoundError) that carries on instead of raising.

    A handler that raises (``raise CliError("mininet not importable ...")``) reports a missing
    optional dependency: that is not a fallback.
    """
    t = handler.type
    names = t.elts if isinstance(t, ast.Tuple) else [t]
    catches = any(isinstance(n, ast.Name) and n.id in _IMPORT_ERRORS for n in names)
    return catches and not any(isinstance(stmt, ast.Raise) for stmt in handler.body)


def _dynamic_target(call: ast.Call) -> str | None:
    """For ``importlib.import_module(x)`` / ``import_module(x)`` / ``__import__(x)``: x, or "<computed>"."""
    f = call.func
    is_dyn = (isinstance(f, ast.Attribute) and f.attr == "import_module") or \
             (isinstance(f, ast.Name) and f.id in ("import_module", "__import__"))
    if not is_dyn:
        return None
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return "<computed>"


def parse(module: Module, mods: dict[str, Module]) -> None:
    """Fill ``module``'s imports from its source."""
    resolve = _resolver(mods)
    tree = ast.parse(module.path.read_text(encoding="utf-8"), module.rel)

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = _imported_names(node, module)
            for n in names:
                root = n.split(".")[0]
                if root and resolve(n) is None and root not in ROOTS:
                    module.external.setdefault(root, node.lineno)
            for t in sorted(_targets(names, resolve, module.name)):
                module.deps.setdefault(t, node.lineno)
                if in_function:
                    module.local.append((node.lineno, t))
        elif isinstance(node, ast.Call):
            target = _dynamic_target(node)
            if target is not None and (target == "<computed>" or resolve(target)):
                module.dynamic.append((node.lineno, target))
        elif isinstance(node, ast.Try):
            if any(_falls_back_on_import_error(h) for h in node.handlers):
                for stmt in node.body:
                    for sub in ast.walk(stmt):
                        for t in sorted(_targets(_imported_names(sub, module), resolve, module.name)):
                            module.fallbacks.append((sub.lineno, t))
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Groups of two or more modules that reach each other (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on_stack.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return sorted(out)


def _chain_to_forbidden(start: str, mods: dict[str, Module]) -> list[str] | None:
    """Shortest import chain from ``start`` to os_ken or mininet (ending with that root), or None."""
    prev: dict[str, str | None] = {start: None}
    queue = [start]
    for m in queue:
        hit = next((r for r in FORBIDDEN_IN_PURE if r in mods[m].external), None)
        if hit:
            chain = [hit]
            x: str | None = m
            while x is not None:
                chain.append(x)
                x = prev[x]
            return chain[::-1]
        for d in sorted(mods[m].deps):
            if d not in prev:
                prev[d] = m
                queue.append(d)
    return None


def analyse(repo: Path | str, roots: tuple[str, ...] = ROOTS) -> dict:
    """The report (see the module docstring) for the project at ``repo``."""
    repo = Path(repo)
    mods = discover(repo, roots)
    for m in mods.values():
        parse(m, mods)

    def where(m: Module, line: int) -> str:
        return f"{m.rel}:{line}"

    os_ken = sorted(n for n, m in mods.items() if "os_ken" in m.external)
    report = {
        "modules": len(mods),
        "cycles": strongly_connected({n: set(m.deps) for n, m in mods.items()}),
        "os_ken_importers": os_ken,
        "os_ken_outside_shim": [{"module": n, "where": where(mods[n], mods[n].external["os_ken"])}
                                for n in os_ken if n not in OS_KEN_ALLOWED],
        "mininet_importers": sorted(n for n, m in mods.items() if "mininet" in m.external),
        "lower_layers_importing_tools": [
            {"module": n, "where": where(m, line), "imports": d}
            for n, m in sorted(mods.items()) if n.split(".")[0] in LOWER
            for d, line in sorted(m.deps.items()) if d.split(".")[0] == "tools"],
        "impure_pure_modules": [
            {"module": n, "chain": chain}
            for n in sorted(mods) if is_pure(n) and (chain := _chain_to_forbidden(n, mods))],
        "dynamic_imports": [{"module": n, "where": where(m, line), "imports": t}
                            for n, m in sorted(mods.items()) for line, t in m.dynamic],
        "import_fallbacks": [{"module": n, "where": where(m, line), "imports": t}
                             for n, m in sorted(mods.items()) for line, t in m.fallbacks],
        "function_local_project_imports": [{"module": n, "where": where(m, line), "imports": t}
                                           for n, m in sorted(mods.items()) for line, t in m.local],
    }
    report["ok"] = not any(report[k] for k in RULES)
    return report


#: the report keys that must be empty for the check to pass
RULES = ("cycles", "os_ken_outside_shim", "lower_layers_importing_tools", "impure_pure_modules",
         "dynamic_imports", "import_fallbacks")


def to_json(report: dict) -> str:
    """The report as JSON, one key a line (long lists stay on their line: grep- and jq-friendly)."""
    return "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in report.items()) + "\n}"


def main(argv: list[str] | None = None) -> int:
    """Print the report of REPO (default: this checkout); 0 when every rule holds, else 1."""
    args = sys.argv[1:] if argv is None else argv
    repo = Path(args[0]) if args else Path(__file__).resolve().parent.parent
    report = analyse(repo)
    print(to_json(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
