"""The docs show what the code prints (issue 12: "examples produced by running them").

Every marked example (```console and ```pycon blocks) of README.md, docs/cli.md, docs/rest-api.md
and docs/client.md runs, in page order as one session, against a fresh controller on fntf40
started here (``apihelpers.live_controller``: the service and REST app ``dnctl controller`` runs,
no switches); what it prints must be what the page shows, but for tokens, the port and times
(``tools.docexamples``). A failure names the page, the line and both texts; ``python -m
tools.docexamples --write PAGE`` puts the real output into the page.

The mechanics of the tool (parsing, normalising, naming the first difference) are tested first
on small pages of their own.
"""

import shutil

import pytest

from apihelpers import live_controller
from tools import docexamples
from topologies.loaders import load_topology

SAMPLE = """text
```console
$ echo one \\
    two
one two
$ cat > f.txt <<'EOF2'
$ not a prompt inside a here-document
EOF2
$ false
$ echo $?
1

```
```sh
$ echo not run
```
```pycon
>>> for i in range(2):
...     print(i)
0
1
>>> {"token": "%s"}
{'token': 'abcd...yz'}
```
"""


def test_a_page_is_parsed_into_commands_and_their_outputs():
    examples = docexamples.parse_page(SAMPLE % ("A" * 43))
    assert [(e.kind, e.source, e.want) for e in examples] == [
        ("console", "echo one \\\n    two", ["one two"]),
        ("console", "cat > f.txt <<'EOF2'\n$ not a prompt inside a here-document\nEOF2", []),
        ("console", "false", []),
        ("console", "echo $?", ["1"]),
        ("pycon", "for i in range(2):\n    print(i)", ["0", "1"]),
        ("pycon", '{"token": "%s"}' % ("A" * 43), ["{'token': 'abcd...yz'}"]),
    ]
    assert examples[3].line == 10 and (examples[3].out_start, examples[3].out_end) == (10, 11)


def test_tokens_ports_and_times_are_normalised_and_only_they():
    token = "Zk3q" + "x" * 36 + "Q9"
    assert docexamples.for_page(f"token: {token}") == "token: Zk3q...Q9"
    assert docexamples.normal(f"token: {token}") == docexamples.normal("token: 3q1l...Yw") == "token: <token>"
    assert docexamples.normal("http://127.0.0.1:41237/v1") == "http://127.0.0.1:8080/v1"
    assert docexamples.normal('{"ts": 1764520000.25, "x": 1}') == '{"ts": <time>, "x": 1}'
    assert docexamples.normal("bound 2.562 ms") != docexamples.normal("bound 2.802 ms")
    assert docexamples.normal("first slots 0, 100, 200, ...") == "first slots 0, 100, 200, ..."


def test_a_session_runs_in_order_and_the_first_difference_is_named(tmp_path):
    if shutil.which("bash") is None:
        pytest.skip("this machine has no bash")
    page = tmp_path / "page.md"
    page.write_text(SAMPLE.replace("$ echo $?\n1", "$ echo $?\n2") % ("A" * 43))
    results = docexamples.run_page(page, "http://127.0.0.1:9")
    assert [got for _, got in results] == [["one two"], [], [], ["1"], ["0", "1"], ["{'token': '%s'}" % ("A" * 43)]]
    diff = docexamples.first_difference("page.md", results)
    assert diff.startswith("page.md:11: `echo $?` (line 10), output line 1:") and "shows: 2" in diff \
        and "printed:     1" in diff
    assert docexamples.write_page(page, "http://127.0.0.1:9") == 1
    assert "$ echo $?\n1\n" in page.read_text() and docexamples.first_difference(
        "page.md", docexamples.run_page(page, "http://127.0.0.1:9")) is None


@pytest.mark.parametrize("page", docexamples.PAGES)
def test_the_pages_examples_print_what_the_page_shows(page, tmp_path):
    if shutil.which("bash") is None:
        pytest.skip("this machine has no bash")
    for tool in ("jq", "curl"):                     # our dependencies: make setup installs them
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: `make setup` installs it (tools/setup.sh)")
    path = docexamples.REPO / page
    assert docexamples.parse_page(path.read_text()), f"{page} has no runnable example"
    with live_controller(load_topology("fntf40"), tmp_path / "c.db", docexamples.ADMIN_TOKEN) as url:
        docexamples.check_page(path, url)
