"""The alert rules of deploy/monitoring/: current, well-formed, about series that exist, and passing promtool."""

from __future__ import annotations

import subprocess
from typing import Any

import yaml

from monitoringcheck import MONITORING, REPO, promtool, tool, unknown_names

MONITORING_TOOL = tool()
RULES = MONITORING / MONITORING_TOOL.RULES_FILE
RULE_RESOURCE = MONITORING / MONITORING_TOOL.RULE_RESOURCE
PROMTOOL_TESTS = MONITORING / "tests" / "alerts_test.yaml"
SEVERITIES = {"critical", "warning", "info"}


def _rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *argv], capture_output=True, text=True, timeout=60, cwd=REPO)


def test_the_files_are_what_tools_monitoring_writes() -> None:
    stale = [
        str(path.relative_to(REPO)) for path, text in MONITORING_TOOL.rendered().items() if path.read_text() != text
    ]
    assert stale == [], f"run `python tools/monitoring.py`: {stale} differ from what it writes"


def test_the_plain_rules_file_holds_exactly_the_prometheusrule_spec() -> None:
    resource = yaml.safe_load(RULE_RESOURCE.read_text())
    assert (resource["apiVersion"], resource["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert yaml.safe_load(RULES.read_text()) == resource["spec"]


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook_row() -> None:
    for rule in _rules():
        assert rule["labels"]["severity"] in SEVERITIES, rule
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}, rule
        assert annotations["summary"] and annotations["description"], rule
        assert annotations["runbook_url"] == f"{MONITORING_TOOL.RUNBOOK}#{rule['alert'].lower()}", rule


README = (REPO / "README.md").read_text()


def test_every_runbook_url_names_an_anchor_in_the_readme() -> None:
    missing = [rule["alert"] for rule in _rules() if f'<a id="{rule["alert"].lower()}"></a>' not in README]
    assert missing == [], f"README.md has no troubleshooting row anchored for {missing}"


def test_every_expression_names_only_series_and_labels_the_operator_exports() -> None:
    assert {rule["alert"]: unknown_names(rule["expr"]) for rule in _rules()} == {r["alert"]: [] for r in _rules()}


def test_promtool_accepts_the_rules() -> None:
    result = _run("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_promtool_tests_see_every_alert_fire_and_stay_silent() -> None:
    cases = [case for test in yaml.safe_load(PROMTOOL_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    fires = {case["alertname"] for case in cases if case["exp_alerts"]}
    silent = {case["alertname"] for case in cases if not case["exp_alerts"]}
    alerts = {rule["alert"] for rule in _rules()}
    assert (fires, silent) == (alerts, alerts), "each alert needs a case where it fires and one where it does not"

    result = _run("test", "rules", str(PROMTOOL_TESTS))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout, result.stdout
