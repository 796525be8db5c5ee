"""The shipped Prometheus alert rules (deploy/prometheus/detnet-rules.yml), checked with the real ``promtool``.

``promtool check rules`` parses every rule; ``promtool test rules`` runs detnet-rules.test.yml, where
each alert is silent while pending, fires once its ``for:`` is over, and stays silent through a healthy
half hour; ``promtool check config`` accepts the sample prometheus.yml that loads the rules. The rules'
own conventions (``for:``, severity, summary and description) and the test file's coverage (every
alert fires somewhere, is seen pending before it fires, and is silent in the healthy test) are checked
from the YAML, and a copy of the rules with one ``for:`` removed must fail the unit tests (so they do
test the delays). That every series the rules use is one the controller exposes is checked against a
live scrape in tests/test_dashboard.py.

``promtool`` comes with Debian's ``prometheus`` package, which ``make setup`` installs: without it
these tests fail (it is this project's dependency, not an optional machine feature).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from promhelpers import prometheus_tool

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "deploy" / "prometheus" / "detnet-rules.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "detnet-rules.test.yml"
CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"


def promtool() -> str:
    return prometheus_tool("promtool")


def run_promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120)


def alerts() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_check_rules_accepts_the_file():
    r = run_promtool("check", "rules", str(RULES))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in r.stdout


def test_promtool_unit_tests_of_the_rules_pass():
    r = run_promtool("test", "rules", str(RULE_TESTS))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_the_sample_prometheus_config_loads_the_rules():
    r = run_promtool("check", "config", str(CONFIG))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "detnet-rules.yml" in r.stdout


def test_every_alert_has_for_severity_and_annotations():
    names = [a["alert"] for a in alerts()]
    assert len(names) == len(set(names)) and len(names) >= 9
    for a in alerts():
        assert a.get("for"), f"{a['alert']}: no for:"
        assert a["labels"]["severity"] in ("critical", "warning"), a["alert"]
        assert a["annotations"].get("summary") and a["annotations"].get("description"), a["alert"]


def test_every_alert_is_unit_tested_firing_pending_and_healthy():
    doc = yaml.safe_load(RULE_TESTS.read_text())
    fires, pending, healthy = set(), set(), set()
    for case in doc["tests"]:
        checks = case["alert_rule_test"]
        for c in checks:
            if c["exp_alerts"]:
                fires.add(c["alertname"])
        for c in checks:            # silent at an earlier time of the same case in which it fires later
            if not c["exp_alerts"] and any(o["alertname"] == c["alertname"] and o["exp_alerts"]
                                           and _minutes(o["eval_time"]) > _minutes(c["eval_time"]) for o in checks):
                pending.add(c["alertname"])
        if case["name"].startswith("a healthy"):
            healthy = {c["alertname"] for c in checks if not c["exp_alerts"]}
    names = {a["alert"] for a in alerts()}
    assert names - fires == set(), "alerts never seen firing"
    assert names - pending == set(), "alerts whose for: delay is not tested"
    assert names - healthy == set(), "alerts not checked silent on a healthy series"


def _minutes(t: str) -> float:
    return float(t[:-1]) * {"s": 1 / 60, "m": 1, "h": 60}[t[-1]]


def test_the_unit_tests_catch_a_missing_for_delay(tmp_path):
    """With DetnetLinkDown's ``for:`` dropped, the link alert fires while it should be pending."""
    doc = yaml.safe_load(RULES.read_text())
    for g in doc["groups"]:
        for r in g["rules"]:
            if r.get("alert") == "DetnetLinkDown":
                del r["for"]
    (tmp_path / RULES.name).write_text(yaml.safe_dump(doc, sort_keys=False))
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    r = run_promtool("test", "rules", str(tmp_path / RULE_TESTS.name))
    assert r.returncode != 0
    assert "DetnetLinkDown" in r.stdout + r.stderr
