"""The Grafana dashboard (deploy/grafana/detnet-dashboard.json) and its provisioning files.

Every panel's PromQL is parsed by the real ``promtool`` (the expressions are written as recording
rules into a temporary file and ``promtool check rules`` parses them with Prometheus's own parser),
and every series a panel or an alert rule names is one a running controller exposes: the names come
from a live scrape of ``/metrics`` (a controller served by the real REST app, with a tenant, an
admitted and a refused reservation), a histogram's ``_bucket``/``_sum``/``_count`` and a counter's
``_total`` counting. The provisioning YAML points Grafana at that JSON and names the datasource
uid the panels use.

``promtool`` comes with Debian's ``prometheus`` package, installed by ``make setup``.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from apihelpers import beijing_line, live_controller
from promhelpers import prometheus_tool

REPO = Path(__file__).resolve().parent.parent
GRAFANA = REPO / "deploy" / "grafana"
DASHBOARD = GRAFANA / "detnet-dashboard.json"
RULES = REPO / "deploy" / "prometheus" / "detnet-rules.yml"
ADMIN = "dashboard-test-admin-token-0123456789"

#: series Prometheus makes itself (the rules may use them; nothing the controller exposes)
PROMETHEUS_OWN = {"up"}


def promtool() -> str:
    return prometheus_tool("promtool")


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(d: dict) -> list[dict]:
    """Every panel, those inside collapsed rows included, rows themselves excluded."""
    out = []
    for p in d["panels"]:
        out += [q for q in p.get("panels", [])] if p["type"] == "row" else [p]
    return out


def expressions(d: dict) -> list[tuple[str, str]]:
    """(panel title/refId, PromQL) of every query of the dashboard."""
    return [(f"{p['title']}/{t['refId']}", t["expr"]) for p in panels(d) for t in p["targets"]]


_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
             "offset", "inf", "nan", "atan2"}


def series_names(expr: str) -> set[str]:
    """The metric names a (valid) PromQL expression selects: identifiers that are not function
    calls, keywords, label names (in braces or in by/on/... clauses), strings or durations."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)          # strings
    s = re.sub(r"\{[^}]*\}", " ", s)                                              # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)                                             # ranges, subqueries
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)   # label lists
    names = set()
    for m in re.finditer(r"(?<![\w.:])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:]|\s*\()", s):
        if m.group(1).lower() not in _KEYWORDS:
            names.add(m.group(1))
    return names


def test_series_names_extractor_on_tricky_expressions():
    assert series_names('histogram_quantile(0.99, sum by (route, le) (rate(a_bucket{x="y{z}"}[5m])))') == {"a_bucket"}
    assert series_names("count(b == 0) or vector(0)") == {"b"}
    assert series_names("c / on(job) group_left(tenant) (d > 1e9) unless e offset 10m") == {"c", "d", "e"}
    assert series_names('{__name__="f"}') == set() and series_names("sum_over_time(g[5m:1m])") == {"g"}


def test_dashboard_is_well_formed():
    d = dashboard()
    assert d["uid"] and d["title"] and d["schemaVersion"] >= 36
    ids = [p["id"] for p in d["panels"]] + [q["id"] for p in d["panels"] for q in p.get("panels", [])]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    ds = {v["name"]: v for v in d["templating"]["list"] if v["type"] == "datasource"}
    assert ds["datasource"]["query"] == "prometheus"
    for p in panels(d):
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        assert p["datasource"]["uid"] == "${datasource}" and p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
    titles = " ".join(p["title"].lower() for p in panels(d))
    for topic in ("reserved share", "link state", "by tenant", "admission latency", "install latency",
                  "rejections", "reroutes", "install failures"):
        assert topic in titles, f"no panel about {topic}"


def _check_rules(tmp_path: Path, exprs: list[tuple[str, str]]) -> subprocess.CompletedProcess:
    rules = [{"record": f"detnet_dashboard:q{i}", "expr": e} for i, (_, e) in enumerate(exprs)]
    f = tmp_path / "dashboard-queries.yml"
    f.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    return subprocess.run([promtool(), "check", "rules", str(f)], capture_output=True, text=True, timeout=120)


def test_every_panel_query_parses_with_promtool(tmp_path):
    exprs = expressions(dashboard())
    r = _check_rules(tmp_path, exprs)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in r.stdout


def test_promtool_refuses_a_broken_query(tmp_path):
    """The parse check is not blind: one unbalanced parenthesis fails it."""
    r = _check_rules(tmp_path, [("ok", "sum(detnet_reservations)"), ("bad", "sum(rate(detnet_admissions_total[5m])")])
    assert r.returncode != 0 and "parse error" in (r.stdout + r.stderr).lower()


@pytest.fixture(scope="module")
def exposed(tmp_path_factory) -> set[str]:
    """Every series name a live controller's /metrics exposes, after some traffic."""
    db = tmp_path_factory.mktemp("dash") / "c.db"
    with live_controller(beijing_line("dash"), db, ADMIN) as url, httpx.Client(base_url=url, timeout=30) as c:
        ah = {"Authorization": f"Bearer {ADMIN}"}
        r = c.post("/v1/tenants", json={"name": "blue", "quota_bps": 10**9, "max_reservations": 10}, headers=ah)
        assert r.status_code == 201, r.text
        th = {"Authorization": f"Bearer {r.json()['token']}"}
        body = {"src": "Beijing", "dst": "Jinan", "bandwidth_bps": 10**7, "max_latency_ns": 30_000_000}
        assert c.post("/v1/reservations", json=body, headers=th).status_code == 201
        assert c.post("/v1/reservations", json={**body, "bandwidth_bps": 2 * 10**9}, headers=th).status_code == 409
        r = c.get("/metrics")
        assert r.status_code == 200
        text = r.text
    names = set()
    for fam in text_string_to_metric_families(text):
        names.add(fam.name)
        names.update(s.name for s in fam.samples)
        names.update({"counter": [fam.name + "_total"], "info": [fam.name + "_info"],
                      "histogram": [fam.name + x for x in ("_bucket", "_sum", "_count")]}.get(fam.type, []))
    assert "detnet_reservations" in names and "detnet_admission_seconds_bucket" in names
    return names


def test_every_dashboard_series_is_exposed_by_the_controller(exposed):
    missing = {(where, n) for where, e in expressions(dashboard()) for n in series_names(e) if n not in exposed}
    assert not missing, f"dashboard queries name series the controller does not expose: {sorted(missing)}"


def test_every_alert_rule_series_is_exposed_by_the_controller(exposed):
    doc = yaml.safe_load(RULES.read_text())
    used = {(r["alert"], n) for g in doc["groups"] for r in g["rules"] for n in series_names(r["expr"])}
    assert {n for _, n in used} >= {"detnet_link_up", "detnet_reservations_down"}
    missing = sorted((a, n) for a, n in used if n not in exposed and n not in PROMETHEUS_OWN)
    assert not missing, f"alert rules name series the controller does not expose: {missing}"


def test_provisioning_points_grafana_at_the_dashboard_and_its_datasource():
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "detnet.yml").read_text())
    (source,) = ds["datasources"]
    assert source["type"] == "prometheus" and source["uid"] == "detnet-prometheus"
    assert dashboard()["templating"]["list"][0]["current"]["value"] == source["uid"]
    prov = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "detnet.yml").read_text())
    (provider,) = prov["providers"]
    assert provider["type"] == "file"
    folder = Path(provider["options"]["path"].replace("$DETNET_GRAFANA_DIR", str(GRAFANA)))
    assert (folder / DASHBOARD.name).is_file()
    assert list(folder.glob("*.json")) == [DASHBOARD]     # nothing else gets provisioned from there
