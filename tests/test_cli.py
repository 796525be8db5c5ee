"""The dnctl dispatcher: every verb is registered, has --help, and usage errors are one line, exit 2."""

import subprocess
import sys

import pytest

from tools.cli import main as cli
DNCTL = [sys.executable, "-m", "tools.cli.main"]


def verbs():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sorted(sub.choices)


def test_every_planned_verb_module_is_present():
    for module in cli.verb_modules():
        assert callable(module.register), module.__name__  # a listed verb without register() is a bug


@pytest.mark.parametrize("verb", verbs())
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([verb, "--help"])
    assert e.value.code == 0
    assert "usage: dnctl" in capsys.readouterr().out


def test_unknown_verb_is_a_one_line_usage_error():
    r = subprocess.run(DNCTL + ["frobnicate"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_no_verb_prints_help_and_exits_2():
    r = subprocess.run(DNCTL, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "VERB" in r.stdout


def test_schedule_export_is_wired_to_the_rest_client():
    r = subprocess.run(DNCTL + ["schedule", "export", "--url", "http://127.0.0.1:1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "cannot reach the controller" in r.stderr and "Traceback" not in r.stderr
