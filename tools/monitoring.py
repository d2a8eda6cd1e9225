"""Write the monitoring files of deploy/monitoring/ from the definitions below: the one place to edit them.

    python tools/monitoring.py            write prometheusrule.yaml, secretrotation-rules.yaml, dashboard.json
    python tools/monitoring.py --check    exit 1 if a written file differs from what this would write

``prometheusrule.yaml`` is a PrometheusRule for the Prometheus Operator; ``secretrotation-rules.yaml``
holds the same rule groups (its ``spec``) as a plain Prometheus rules file, for ``promtool`` and for a
Prometheus without the operator. Every alert's ``runbook_url`` is ``RUNBOOK`` plus the anchor of its row
in the README's troubleshooting table. tests/unit/test_alerts.py checks that the files are current.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
MONITORING = REPO / "deploy" / "monitoring"
RULE_RESOURCE, RULES_FILE, DASHBOARD_FILE = "prometheusrule.yaml", "secretrotation-rules.yaml", "dashboard.json"
RUNBOOK = "https://github.com/sre-dev/secretrotation/blob/main/README.md"
HEADER = "# Written by tools/monitoring.py from its definitions: edit them there, then run it.\n"
STALLED = 'secretrotation_condition{type="Stalled",status="True"} == 1'
WHICH = "{{ $labels.namespace }}/{{ $labels.name }}"
SHOW = "kubectl -n {{ $labels.namespace }} describe secretrotation {{ $labels.name }}"


@dataclasses.dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    severity: str  # critical (act now), warning (act today)
    summary: str
    description: str
    wait: str = ""  # the rule's ``for``: how long the expression must hold; empty fires at once

    @property
    def runbook_url(self) -> str:
        return f"{RUNBOOK}#{self.name.lower()}"

    def rule(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr}
        if self.wait:
            rule["for"] = self.wait
        rule["labels"] = {"severity": self.severity}
        rule["annotations"] = {
            "summary": self.summary,
            "description": self.description,
            "runbook_url": self.runbook_url,
        }
        return rule


ALERTS = (
    Alert(
        "SecretRotationFailed",
        STALLED,
        "warning",
        f"SecretRotation {WHICH} failed and needs a human",
        "Its Stalled condition is True: the last rotation failed and was rolled back, an action was refused "
        "by the API server, or the spec is invalid. The version in use still works. The reason and the "
        f"message say what to fix: {SHOW}",
    ),
    Alert(
        "SecretRotationStalled",
        STALLED,
        "critical",
        f"SecretRotation {WHICH} has been stalled for 30 minutes",
        "The cause of its failure has not been fixed for 30 minutes, and no rotation succeeds until it is "
        "(a refusal is retried every 5 minutes; after a failed rotation the next starts when requested, or "
        f"one rotateEvery period later, doubling with each failure). {SHOW}",
        wait="30m",
    ),
    Alert(
        "SecretRotationOverdue",
        "time() - secretrotation_next_rotation_timestamp_seconds > 3600",
        "warning",
        f"SecretRotation {WHICH} is more than an hour past its scheduled rotation",
        "The rotation that was due {{ $value | humanizeDuration }} ago has not happened: the resource may be paused "
        f"(spec.paused), waiting for another rotation on a shared workload, or the operator is not acting. {SHOW}",
    ),
    Alert(
        "SecretRotationNeverSucceeded",
        "(time() - secretrotation_created_timestamp_seconds"
        " unless on (namespace, name) secretrotation_last_success_timestamp_seconds) > 3600",
        "warning",
        f"SecretRotation {WHICH} has not completed a rotation in the hour since it was created",
        "Its first rotation starts when it is created and takes minutes; it is now {{ $value | humanizeDuration }} "
        "old and no rotation ever succeeded (paused before the first rotation, invalid, or stuck waiting). "
        f"{SHOW}",
        wait="5m",  # rides over an operator restart, which sets the creation time a moment before the last success
    ),
    Alert(
        "SecretRotationCollectionBlocked",
        'secretrotation_condition{type="GarbageCollected",status="False"} == 1',
        "warning",
        f"SecretRotation {WHICH} cannot delete an old version for an hour",
        "Something the operator does not manage still references an old version (a workload outside the "
        "targets, a lone pod), so that version stays valid. The GarbageCollected condition's message lists "
        f"what; move or remove those and collection resumes by itself. {SHOW}",
        wait="1h",
    ),
    Alert(
        "SecretRotationStepErrors",
        "sum by (namespace, name) (increase(secretrotation_step_errors_total[15m])) > 3",
        "warning",
        f"Steps of SecretRotation {WHICH} keep failing",
        "{{ $value | humanize }} steps failed in 15 minutes, for 15 minutes: API errors, conflicts or refusals, "
        "each retried with backoff (at most 60 s apart). Look for StepFailed Events and the operator's "
        f"'step failed' log lines. {SHOW}",
        wait="15m",
    ),
    Alert(
        "SecretRotationOperatorDown",
        "absent(secretrotation_leader)",
        "critical",
        "No SecretRotation operator has been scraped for 5 minutes",
        "No replica of the operator answers on /metrics: nothing rotates, and no other SecretRotation alert "
        "can fire. Check the pods in secretrotation-system and the scrape configuration.",
        wait="5m",
    ),
    Alert(
        "SecretRotationNoLeader",
        "sum(secretrotation_leader) != 1",
        "critical",
        "{{ $value }} replicas of the SecretRotation operator are acting, not 1",
        "With --leader-elect one replica holds the Lease and acts. 0: replicas stand by but none leads "
        "(the Lease cannot be taken: RBAC, API server). More than 1: replicas run without --leader-elect "
        "and act at once; scale to one or enable leader election.",
        wait="1m",
    ),
)


def rule_groups() -> dict[str, Any]:
    """The rule groups, as a plain Prometheus rules file holds them (and a PrometheusRule's ``spec``)."""
    return {"groups": [{"name": "secretrotation", "rules": [alert.rule() for alert in ALERTS]}]}


def prometheus_rule() -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "secretrotation",
            "namespace": "secretrotation-system",
            "labels": {"app.kubernetes.io/name": "secretrotation", "app.kubernetes.io/component": "alerts"},
        },
        "spec": rule_groups(),
    }


# Grafana: every query is filtered by the dashboard's variables and sent to its data source variable.
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
NAMESPACE = 'namespace=~"$namespace"'
SELECTED = f'{NAMESPACE}, name=~"$name"'
RATE = "$__rate_interval"


@dataclasses.dataclass(frozen=True)
class Panel:
    title: str
    kind: str  # Grafana panel type: timeseries (over time), stat, bargauge or table (now)
    queries: tuple[tuple[str, str], ...]  # (expr, legend)
    unit: str = "short"
    description: str = ""
    width: int = 12
    height: int = 8


def _query_target(index: int, expr: str, legend: str, kind: str) -> dict[str, Any]:
    target: dict[str, Any] = {
        "datasource": DATASOURCE,
        "refId": chr(ord("A") + index),
        "expr": expr,
        "legendFormat": legend,
        "range": kind == "timeseries",
        "instant": kind != "timeseries",
    }
    if kind == "table":
        target["format"] = "table"
    return target


def _panel_json(panel_id: int, panel: Panel, x: int, y: int) -> dict[str, Any]:
    options: dict[str, dict[str, Any]] = {
        "timeseries": {"legend": {"displayMode": "table", "placement": "right", "showLegend": True},
                       "tooltip": {"mode": "multi", "sort": "desc"}},
        "stat": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                 "colorMode": "value", "graphMode": "none"},
        "bargauge": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                     "orientation": "horizontal", "displayMode": "basic", "showUnfilled": True},
        "table": {"showHeader": True},
    }  # fmt: skip
    result: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": options[panel.kind],
        "targets": [_query_target(i, expr, legend, panel.kind) for i, (expr, legend) in enumerate(panel.queries)],
    }
    if panel.kind == "table":  # a series per row, its labels as columns: the value is always 1
        result["transformations"] = [
            {"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True}}},
        ]
    return result


PANELS = (
    Panel("SecretRotations", "stat", ((f"count(secretrotation_rotation_info{{{SELECTED}}}) or vector(0)", ""),),
          width=6, height=4),
    Panel("Stalled", "stat",
          ((f'count(secretrotation_condition{{type="Stalled",status="True",{SELECTED}}} == 1) or vector(0)', ""),),
          width=6, height=4, description="Rotations that failed and wait for a human (alert SecretRotationFailed)."),
    Panel("Collections blocked", "stat",
          ((f'count(secretrotation_condition{{type="GarbageCollected",status="False",{SELECTED}}} == 1)'
            " or vector(0)", ""),),
          width=6, height=4, description="Rotations whose old versions are still referenced."),
    Panel("Acting replicas", "stat", (("sum(secretrotation_leader)", ""),), width=6, height=4,
          description="1 when healthy: the replica holding the leader Lease (alert SecretRotationNoLeader)."),
    Panel("Rotations finished, by result", "timeseries",
          ((f"sum by (result) (increase(secretrotation_rotations_finished_total{{{SELECTED}}}[{RATE}]))",
            "{{result}}"),),
          description="succeeded, or failed (rolled back or stopped before switching)."),
    Panel("Rotations started, by trigger", "timeseries",
          ((f"sum by (reason) (increase(secretrotation_rotations_started_total{{{SELECTED}}}[{RATE}]))",
            "{{reason}}"),)),
    Panel("Time since the last success", "bargauge",
          ((f"time() - secretrotation_last_success_timestamp_seconds{{{SELECTED}}}", "{{namespace}}/{{name}}"),
           (f"(time() - secretrotation_created_timestamp_seconds{{{SELECTED}}})"
            " unless on (namespace, name) secretrotation_last_success_timestamp_seconds",
            "never succeeded: {{namespace}}/{{name}}")),
          unit="s", description="Per rotation (A); B: the age of those that never succeeded."),
    Panel("Next scheduled rotation in", "bargauge",
          ((f"secretrotation_next_rotation_timestamp_seconds{{{SELECTED}}} - time()", "{{namespace}}/{{name}}"),),
          unit="s", description="Negative: overdue (alert SecretRotationOverdue past an hour)."),
    Panel("Current phase", "table",
          ((f"max by (namespace, name, phase) (secretrotation_phase{{{SELECTED}}} == 1)", ""),)),
    Panel("Conditions", "table",
          ((f"max by (namespace, name, type, status) (secretrotation_condition{{{SELECTED}}} == 1)", ""),),
          description="The status of every condition present on each rotation."),
    Panel("Failures, by reason", "timeseries",
          ((f"sum by (reason) (increase(secretrotation_failures_total{{{SELECTED}}}[{RATE}]))", "{{reason}}"),),
          description="Each time a rotation stalled for a human, by the Stalled condition's reason."),
    Panel("Blocked collections", "timeseries",
          ((f'max by (namespace, name) (secretrotation_condition{{type="GarbageCollected",status="False",{SELECTED}}})',
            "blocked: {{namespace}}/{{name}}"),
           (f"sum by (namespace, name) (increase(secretrotation_gc_blocked_total{{{SELECTED}}}[{RATE}]))",
            "deletions refused: {{namespace}}/{{name}}")),
          description="1 while an old version cannot be deleted (GarbageCollected False); deletions refused."),
    Panel("Step errors", "timeseries",
          ((f"sum by (namespace, name) (rate(secretrotation_step_errors_total{{{SELECTED}}}[{RATE}]))",
            "{{namespace}}/{{name}}"),),
          unit="ops", description="Steps that failed and are retried with backoff (alert SecretRotationStepErrors)."),
    Panel("Rotation duration", "timeseries",
          tuple((f"histogram_quantile({q}, sum by (le, result) "
                 f"(rate(secretrotation_rotation_duration_seconds_bucket[{RATE}])))",
                 f"p{round(q * 100)} {{{{result}}}}") for q in (0.5, 0.95)),
          unit="s", description="Start to end, of every rotation (this histogram has no namespace label)."),
    Panel("Workloads switched, by kind", "timeseries",
          ((f"sum by (kind) (increase(secretrotation_workloads_rolled_total{{{NAMESPACE}}}[{RATE}]))",
            "{{kind}}"),)),
)  # fmt: skip


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-variable"},
        "definition": query,
        "refresh": 2,  # on time range change
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def dashboard() -> dict[str, Any]:
    panels, x, y, row_height = [], 0, 0, 0
    for panel_id, panel in enumerate(PANELS, start=1):
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        panels.append(_panel_json(panel_id, panel, x, y))
        x, row_height = x + panel.width, max(row_height, panel.height)
    datasource = {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
    }
    return {
        "uid": "secretrotation",
        "title": "SecretRotation",
        "description": "Rotations, failures, blocked collections and the operator itself (tools/monitoring.py).",
        "tags": ["secretrotation", "kubernetes"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": "now-24h", "to": "now"},
        "refresh": "1m",
        "timezone": "",
        "templating": {
            "list": [
                datasource,
                _variable("namespace", "Namespace", "label_values(secretrotation_rotation_info, namespace)"),
                _variable("name", "SecretRotation", f"label_values(secretrotation_rotation_info{{{NAMESPACE}}}, name)"),
            ]
        },
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }


def _yaml(document: dict[str, Any]) -> str:
    return HEADER + yaml.safe_dump(document, sort_keys=False, width=1000, allow_unicode=True)


def rendered() -> dict[Path, str]:
    """Each file of deploy/monitoring/ this writes, and its text."""
    return {
        MONITORING / RULE_RESOURCE: _yaml(prometheus_rule()),
        MONITORING / RULES_FILE: _yaml(rule_groups()),
        MONITORING / DASHBOARD_FILE: json.dumps(dashboard(), indent=2) + "\n",
    }


def main(argv: list[str]) -> int:
    stale = [path for path, text in rendered().items() if not path.exists() or path.read_text() != text]
    if "--check" in argv:
        for path in stale:
            print(f"{path.relative_to(REPO)} is not what tools/monitoring.py writes: run it", file=sys.stderr)
        return 1 if stale else 0
    MONITORING.mkdir(parents=True, exist_ok=True)
    for path, text in rendered().items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
