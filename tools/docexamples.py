"""Doc examples that run: check, or rewrite, the outputs the docs show by running the examples.

Why: a page that shows what a command prints is a promise; it was broken silently (a reserve
example showed "200 slots, 2.802 ms" where fntf40 gives 1 slot, 2.562 ms). Here the examples are
run and their output compared with the page (``tests/test_doc_examples.py``), and
``python -m tools.docexamples --write`` puts the real output into the pages.

Which examples run: fenced blocks whose info string is exactly

- ``console``: a shell session. A line ``$ COMMAND`` is a command (a trailing ``\\`` continues it
  on the next line; a here-document ``<<'EOF'`` runs to its ``EOF`` line); the lines after it, up
  to the next ``$ `` line, are what it prints, stdout and stderr together as a terminal shows them
  (trailing blank lines ignored). A line ``$ echo $?`` shows the exit status of the command before.
- ``pycon``: a Python session in doctest form (``>>> ``, ``... `` then the output); an exception
  shows as ``Traceback (most recent call last):``, ``  ...``, ``Type: message``.

Other blocks (``sh``, ``json``, plain ````` ``` `````) are not run: synopses, excerpts, and what
needs an emulation or root.

How: all the marked blocks of one page run in order as one session, against one fresh controller
on fntf40 (``controller()`` here, or the caller's), in a fresh folder: console blocks in one bash
process (so shell variables carry over), pycon blocks in one namespace. The session's environment
holds ``DNCTL_URL`` and ``URL`` (the controller), ``DNCTL_ADMIN_TOKEN`` and ``ADMIN`` (its admin
token), and ``dnctl`` of this Python's environment first on ``PATH``; nothing else of the caller's
``DNCTL_*``. Volatile parts are normalised on both sides before comparing: tokens (pages show them
elided, ``3q1l...Yw``), the controller's port (pages say 8080) and timestamps.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import uvicorn

from controller.api import create_app
from controller.config import ControllerConfig
from controller.service import ControllerService
from topologies.loaders import load_topology

__all__ = ["PAGES", "ADMIN_TOKEN", "Example", "Mismatch", "parse_page", "run_page", "check_page", "write_page",
           "controller", "main"]

REPO = Path(__file__).resolve().parents[1]
#: the pages whose marked examples run (relative to the repository)
PAGES = ("README.md", "docs/cli.md", "docs/rest-api.md", "docs/client.md", "docs/standards.md")
#: the admin token of the examples' controller (pages show it as $ADMIN / $DNCTL_ADMIN_TOKEN)
ADMIN_TOKEN = "docs-examples-admin-token-0123456789"
#: the longest a page's session may run
TIMEOUT_S = 600

_TOKEN = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{40,}(?![A-Za-z0-9_-])")
_ELIDED = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{2,6}\.\.\.[A-Za-z0-9_-]{1,6}(?![A-Za-z0-9_-])")
_PORT = re.compile(r"\b(127\.0\.0\.1|localhost):\d{2,5}\b")
_ISO_TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?")
_TS = re.compile(r'("ts": ?|"uptime_s": ?)[0-9.]+')
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")
_MARK = "\x1e"


@dataclass
class Example:
    """One command (console) or statement (pycon) of a page and the output the page shows."""

    kind: str             # "console" | "pycon"
    source: str           # the command (may span lines) or the Python source
    want: list[str]       # the output lines the page shows
    line: int             # 1-based line of the command in the page
    out_start: int        # 0-based index of the first output line in the page
    out_end: int          # one past the last output line (trailing blank lines excluded)


class Mismatch(AssertionError):
    """A page's example printed something else than the page shows."""


# ----- parsing ---------------------------------------------------------------------------------
def parse_page(text: str) -> list[Example]:
    """The marked examples of a markdown page, in order."""
    lines = text.split("\n")
    examples: list[Example] = []
    i = 0
    while i < len(lines):
        fence = lines[i].strip()
        if fence in ("```console", "```pycon"):
            kind = fence[3:]
            end = i + 1
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            examples += _parse_block(kind, lines, i + 1, end)
            i = end
        i += 1
    return examples


def _parse_block(kind: str, lines: list[str], start: int, end: int) -> list[Example]:
    prompt, more = ("$ ", None) if kind == "console" else (">>> ", "... ")
    out: list[Example] = []
    i = start
    while i < end:
        if not lines[i].startswith(prompt.rstrip()) or not (lines[i] + " ").startswith(prompt):
            i += 1                      # text before the first prompt: not part of an example
            continue
        first = i
        src = [lines[i][len(prompt):] if len(lines[i]) >= len(prompt) else ""]
        i += 1
        if kind == "console":
            while src[-1].endswith("\\") and i < end:
                src.append(lines[i])
                i += 1
            doc = _HEREDOC.search(src[0])
            if doc:
                while i < end and lines[i].strip() != doc.group(2):
                    src.append(lines[i])
                    i += 1
                if i < end:
                    src.append(lines[i])
                    i += 1
        else:
            while i < end and (lines[i].startswith(more) or lines[i] == more.rstrip()):
                src.append(lines[i][len(more):])
                i += 1
        o = i
        while i < end and not (lines[i] + " ").startswith(prompt):
            i += 1
        stop = i
        while stop > o and not lines[stop - 1].strip():
            stop -= 1
        out.append(Example(kind, "\n".join(src), lines[o:stop], first + 1, o, stop))
    return out


# ----- normalising -------------------------------------------------------------------------------
def for_page(line: str) -> str:
    """An output line as a page shows it: tokens elided, the controller's port as 8080."""
    line = _TOKEN.sub(lambda m: f"{m.group(0)[:4]}...{m.group(0)[-2:]}", line)
    return _PORT.sub(lambda m: f"{m.group(1)}:8080", line).rstrip()


def normal(line: str) -> str:
    """What is compared of a line: ``for_page`` with every token and timestamp replaced."""
    line = _ELIDED.sub("<token>", for_page(line))
    return _TS.sub(lambda m: m.group(1) + "<time>", _ISO_TIME.sub("<time>", line))


# ----- running ----------------------------------------------------------------------------------
def session_env(url: str, admin_token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DNCTL_")}
    env.update(DNCTL_URL=url, URL=url, DNCTL_ADMIN_TOKEN=admin_token, ADMIN=admin_token, PYTHONUNBUFFERED="1",
               PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""), COLUMNS="100")
    return env


def _run_console(examples: list[Example], env: dict[str, str], workdir: Path) -> list[list[str]]:
    # each command's output follows a marker line; the marker starts with a newline so that an
    # output without a final newline (curl's JSON) still ends its own last line, as the page shows it
    script = ["exec 2>&1", "__rc=0"]
    for n, ex in enumerate(examples):
        script.append(f"printf '\\n{_MARK}%d\\n' {n}; (exit $__rc)")
        script.append(ex.source)
        script.append("__rc=$?")
    script.append(f"printf '\\n{_MARK}end\\n'")
    proc = subprocess.run(["bash", "--noprofile", "--norc"], input="\n".join(script) + "\n", capture_output=True,
                          text=True, env=env, cwd=workdir, timeout=TIMEOUT_S)
    outputs: list[list[str]] = [[] for _ in examples]
    for chunk in proc.stdout.split("\n" + _MARK)[1:]:
        tag, _, body = chunk.partition("\n")
        if tag.isdigit() and int(tag) < len(outputs):
            out = body.split("\n")
            while out and not out[-1].strip():
                out.pop()
            outputs[int(tag)] = out
    return outputs


def _run_python(examples: list[Example], env: dict[str, str], workdir: Path) -> list[list[str]]:
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    outputs = []
    try:
        os.environ.clear()
        os.environ.update(env)
        os.chdir(workdir)
        for ex in examples:
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                try:
                    exec(compile(ex.source + "\n", "<docs>", "single"), namespace)  # noqa: S102 - the page's own code
                except Exception as e:  # noqa: BLE001 - shown as the page shows it
                    print("Traceback (most recent call last):\n  ...")
                    print("".join(traceback.format_exception_only(type(e), e)).rstrip())
            out = buf.getvalue().rstrip("\n").split("\n") if buf.getvalue().strip() else []
            outputs.append(out)
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return outputs


def run_page(path: Path, url: str, admin_token: str = ADMIN_TOKEN) -> list[tuple[Example, list[str]]]:
    """Run a page's marked examples in order as one session; each with what it printed."""
    examples = parse_page(Path(path).read_text())
    env = session_env(url, admin_token)
    results: list[tuple[Example, list[str]]] = []
    with tempfile.TemporaryDirectory(prefix="docexamples-") as tmp:
        # consecutive examples of one kind run together (console: one bash; pycon: one namespace;
        # a page that mixes them starts a new shell after each pycon run: keep to one kind a page)
        i = 0
        while i < len(examples):
            j = i
            while j < len(examples) and examples[j].kind == examples[i].kind:
                j += 1
            run = _run_console if examples[i].kind == "console" else _run_python
            results += zip(examples[i:j], run(examples[i:j], env, Path(tmp)))
            i = j
    return results


def first_difference(page: str, results: list[tuple[Example, list[str]]]) -> str | None:
    """``page:line: `command`: ...`` naming the first line that differs, or None."""
    for ex, got in results:
        want_n, got_n = [normal(l) for l in ex.want], [normal(l) for l in got]
        if want_n == got_n:
            continue
        for k in range(max(len(want_n), len(got_n))):
            w = ex.want[k] if k < len(ex.want) else "<nothing>"
            g = for_page(got[k]) if k < len(got) else "<nothing>"
            if k >= len(want_n) or k >= len(got_n) or want_n[k] != got_n[k]:
                cmd = ex.source.split("\n")[0]
                return (f"{page}:{ex.out_start + k + 1}: `{cmd}` (line {ex.line}), output line {k + 1}:\n"
                        f"  the page shows: {w}\n  it printed:     {g}")
    return None


def check_page(path: Path, url: str, admin_token: str = ADMIN_TOKEN) -> int:
    """Run a page's examples; raise ``Mismatch`` naming the first differing line; return how many ran."""
    results = run_page(path, url, admin_token)
    diff = first_difference(str(path), results)
    if diff:
        raise Mismatch(diff)
    return len(results)


def write_page(path: Path, url: str, admin_token: str = ADMIN_TOKEN) -> int:
    """Put what each example printed into the page (tokens elided, port 8080); how many changed."""
    path = Path(path)
    lines = path.read_text().split("\n")
    changed = 0
    for ex, got in reversed(run_page(path, url, admin_token)):
        if [normal(l) for l in ex.want] == [normal(l) for l in got]:
            continue                            # equal but for tokens or times: the page stays as it is
        lines[ex.out_start:ex.out_end] = [for_page(l) for l in got]
        changed += 1
    path.write_text("\n".join(lines))
    return changed


# ----- a controller for the examples ------------------------------------------------------------------
@contextlib.contextmanager
def controller(workdir: Path, *, topology: str = "fntf40", admin_token: str = ADMIN_TOKEN) -> Iterator[str]:
    """A fresh controller as ``dnctl controller --topology fntf40`` starts one (default settings, no
    host plan, no switches), serving the REST API on a free 127.0.0.1 port; yields its URL."""
    cfg = ControllerConfig(topology=topology, db_path=str(Path(workdir) / "detnet.db"), admin_token=admin_token)
    service = ControllerService.from_config(cfg, load_topology(topology), store_synchronous="OFF")
    app = create_app(service, rate_limit_per_s=cfg.rate_limit_per_s, rate_limit_burst=cfg.rate_limit_burst,
                     max_body_bytes=cfg.max_body_bytes)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the examples' controller did not start")
        time.sleep(0.01)
    try:
        yield "http://127.0.0.1:%d" % sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        service.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.docexamples",
        description="Run the docs' marked examples (```console and ```pycon blocks) against a fresh "
                    "controller on fntf40 and compare what they print with the pages.")
    parser.add_argument("pages", nargs="*", help=f"pages to run (default: {' '.join(PAGES)})")
    parser.add_argument("--write", action="store_true", help="put the real outputs into the pages")
    args = parser.parse_args(argv)
    pages = [Path(p) for p in args.pages] or [REPO / p for p in PAGES]
    status = 0
    for page in pages:
        if not page.is_file():
            print(f"docexamples: {page}: no such page", file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory(prefix="docexamples-ctl-") as tmp, controller(Path(tmp)) as url:
            if args.write:
                print(f"{page}: {write_page(page, url)} example(s) rewritten")
                continue
            results = run_page(page, url)
            diff = first_difference(str(page), results)
            print(diff if diff else f"{page}: {len(results)} example(s) as shown")
            status = status or (1 if diff else 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
