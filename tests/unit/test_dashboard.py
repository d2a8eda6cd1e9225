"""The Grafana dashboard of deploy/monitoring/: every panel queries the operator's series, through the variables."""

from __future__ import annotations

import json
from typing import Any

from monitoringcheck import MONITORING, unknown_names

DASHBOARD: dict[str, Any] = json.loads((MONITORING / "dashboard.json").read_text())
PANELS = [panel for panel in DASHBOARD["panels"] if panel["type"] != "row"]
VARIABLE_SOURCE = {"type": "prometheus", "uid": "${datasource}"}
# The two series without a namespace label: the replica's own, and the duration histogram.
UNSCOPED = ("secretrotation_leader", "secretrotation_rotation_duration_seconds")


def _variables() -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in DASHBOARD["templating"]["list"]}


def test_the_dashboard_picks_a_prometheus_data_source_and_namespaces() -> None:
    assert DASHBOARD["schemaVersion"] >= 39 and DASHBOARD["uid"] and DASHBOARD["title"]
    variables = _variables()
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "prometheus")
    namespace = variables["namespace"]
    assert namespace["type"] == "query" and namespace["datasource"] == VARIABLE_SOURCE
    assert namespace["query"]["query"] == "label_values(secretrotation_rotation_info, namespace)"
    assert namespace["includeAll"] and namespace["allValue"] == ".*"


def test_every_panel_queries_through_the_data_source_variable() -> None:
    assert PANELS
    for panel in PANELS:
        assert panel["datasource"] == VARIABLE_SOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["expr"].strip() and target["datasource"] == VARIABLE_SOURCE, (panel["title"], target)


def test_every_query_names_only_series_and_labels_the_operator_exports() -> None:
    exprs = [target["expr"] for panel in PANELS for target in panel["targets"]]
    assert {expr: unknown_names(expr) for expr in exprs} == {expr: [] for expr in exprs}


def test_every_query_of_a_namespaced_series_follows_the_namespace_variable() -> None:
    for panel in PANELS:
        for target in panel["targets"]:
            if not any(name in target["expr"] for name in UNSCOPED):
                assert 'namespace=~"$namespace"' in target["expr"], (panel["title"], target["expr"])


def test_panels_do_not_overlap_and_fit_the_grid() -> None:
    cells: set[tuple[int, int]] = set()
    for panel in PANELS:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(box["x"], box["x"] + box["w"]) for y in range(box["y"], box["y"] + box["h"])}
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine
    assert len({panel["id"] for panel in PANELS}) == len(PANELS), "panel ids are unique"
