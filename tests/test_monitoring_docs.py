"""docs/grafana-dashboard.json and docs/prometheus-rules.yml: well-formed, and built only on metric
names the daemon really exports (read from a live registry, not from a list kept by hand)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from daemon.runtime.app import Daemon
from tests.conftest import make_config

DOCS = Path(__file__).resolve().parent.parent / "docs"
PANEL_TYPES = {"timeseries", "stat", "state-timeline", "gauge", "bargauge", "table", "text", "heatmap"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                "offset", "inf", "nan", "le"}
_DURATION = re.compile(r"^[0-9]+(ms|s|m|h|d|w|y)$")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every sample name a daemon's /metrics shows (histograms' _bucket/_sum/_count, process_*...)."""
    daemon = Daemon(make_config(tmp_path_factory.mktemp("metrics"), metrics={"enabled": True}))
    assert daemon.metrics is not None
    daemon.metrics.queue_depth = 0  # as after a scrape's database read
    text = generate_latest(daemon.metrics.registry).decode()
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions, keywords,
    label names (in ``{...}`` or ``by (...)``), ranges, strings or Grafana ``$variables``."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings ("{{ $value }}", label values)
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\$\w+", "", expr)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        rest = expr[match.end():].lstrip()
        if rest.startswith("(") or match.group().lower() in PROMQL_WORDS:
            continue  # a function call or a keyword
        if match.start() > 0 and (expr[match.start() - 1].isdigit() or expr[match.start() - 1] == "."):
            continue  # the exponent or unit of a number (1e3, 0.5)
        names.add(match.group())
    return names


def test_the_promql_reader_finds_metric_names_only() -> None:
    expr = ('histogram_quantile(0.95, sum by (le, channel) (rate(fnotify_attempt_duration_seconds_bucket'
            '{instance=~"$instance", channel="sms"}[$__rate_interval]))) > 1e3 and fnotify_paused == bool 1')
    assert metric_names(expr) == {"fnotify_attempt_duration_seconds_bucket", "fnotify_paused"}


def balanced(expr: str) -> bool:
    depth = {"(": 0, "[": 0, "{": 0}
    closing = {")": "(", "]": "[", "}": "{"}
    for char in re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr):
        if char in depth:
            depth[char] += 1
        elif char in closing:
            depth[closing[char]] -= 1
            if depth[closing[char]] < 0:
                return False
    return not any(depth.values())


def check_expr(expr: Any, exported: set[str], where: str) -> None:
    assert isinstance(expr, str) and expr.strip(), f"{where}: no expr"
    assert balanced(expr), f"{where}: unbalanced brackets in {expr!r}"
    names = metric_names(expr)
    assert names, f"{where}: reads no metric: {expr!r}"
    assert names <= exported, f"{where}: not exported by the daemon: {sorted(names - exported)}"


def test_the_dashboard_is_grafana_dashboard_json_on_exported_metrics(exported: set[str]) -> None:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text(encoding="utf-8"))
    for key, kind in (("title", str), ("uid", str), ("schemaVersion", int), ("panels", list), ("time", dict),
                      ("templating", dict), ("version", int)):
        assert isinstance(dashboard.get(key), kind), f"dashboard: {key} missing or not {kind.__name__}"
    assert dashboard["schemaVersion"] >= 36 and {"from", "to"} <= dashboard["time"].keys()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    check_expr(variables["instance"]["definition"].replace("label_values(", "").split(",")[0], exported,
               "the instance variable")

    ids, cells = set(), set()
    for panel in dashboard["panels"]:
        where = f"panel {panel.get('id')} {panel.get('title')!r}"
        assert isinstance(panel.get("id"), int) and panel["id"] not in ids, f"{where}: id missing or repeated"
        ids.add(panel["id"])
        assert panel.get("type") in PANEL_TYPES and isinstance(panel.get("title"), str) and panel["title"]
        assert panel.get("datasource") == {"type": "prometheus", "uid": "${datasource}"}, where
        grid = panel.get("gridPos") or {}
        assert all(isinstance(grid.get(k), int) for k in "hwxy"), f"{where}: gridPos needs h, w, x, y"
        assert grid["h"] > 0 and grid["w"] > 0 and grid["x"] >= 0 and grid["y"] >= 0
        assert grid["x"] + grid["w"] <= 24, f"{where}: wider than Grafana's 24 columns"
        covered = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                   for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not covered & cells, f"{where}: overlaps another panel"
        cells |= covered
        targets = panel.get("targets")
        assert isinstance(targets, list) and targets, f"{where}: no targets"
        assert len({t["refId"] for t in targets}) == len(targets), f"{where}: repeated refId"
        for target in targets:
            check_expr(target.get("expr"), exported, where)
    shown = {name for p in dashboard["panels"] for t in p["targets"] for name in metric_names(t["expr"])}
    # what the issue asks the dashboard to show: attempts by outcome per channel, delivery latency
    # percentiles, queue depth, breaker state
    assert {"fnotify_attempts_total", "fnotify_delivery_seconds_bucket", "fnotify_queue_depth",
            "fnotify_breaker_open"} <= shown


def test_the_alert_rules_parse_and_cover_queue_growth_a_failing_channel_and_an_open_breaker(
    exported: set[str],
) -> None:
    rules_file = yaml.safe_load((DOCS / "prometheus-rules.yml").read_text(encoding="utf-8"))
    assert isinstance(rules_file, dict) and list(rules_file) == ["groups"]
    alerts: dict[str, dict[str, Any]] = {}
    for group in rules_file["groups"]:
        assert isinstance(group.get("name"), str) and isinstance(group.get("rules"), list) and group["rules"]
        for rule in group["rules"]:
            name = rule.get("alert")
            assert isinstance(name, str) and re.fullmatch(r"[A-Z][A-Za-z0-9]+", name), rule
            assert name not in alerts, f"{name} twice"
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, name
            assert _DURATION.match(str(rule.get("for", "0s"))), f"{name}: for is not a duration"
            assert rule["labels"]["severity"] in {"info", "warning", "critical"}, name
            assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
            check_expr(rule["expr"], exported, name)
            alerts[name] = rule
    assert "fnotify_queue_depth" in metric_names(alerts["FnotifyQueueDepthGrowing"]["expr"])
    assert alerts["FnotifyChannelFailing"]["for"] == "5m"
    assert "fnotify_attempts_total" in metric_names(alerts["FnotifyChannelFailing"]["expr"])
    assert "fnotify_breaker_open" in metric_names(alerts["FnotifyBreakerOpen"]["expr"])


def test_the_queue_alert_and_panels_leave_out_the_notifications_held_for_quiet_hours() -> None:
    """``fnotify_queue_depth{status="held"}`` grows every night by design: every selector of the queue
    depth in the alert rule and the dashboard names which series it means."""
    rules = yaml.safe_load((DOCS / "prometheus-rules.yml").read_text(encoding="utf-8"))
    alert = next(r for g in rules["groups"] for r in g["rules"] if r["alert"] == "FnotifyQueueDepthGrowing")
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text(encoding="utf-8"))
    exprs = [alert["expr"]] + [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    selectors = [m.group(1) for e in exprs for m in re.finditer(r"fnotify_queue_depth(\{[^}]*\})?", e)]
    assert selectors and all(s and ('status!="held"' in s or 'status="held"' in s) for s in selectors), selectors
    assert re.findall(r"fnotify_queue_depth(\{[^}]*\})", alert["expr"]) == ['{status!="held"}'] * 2
