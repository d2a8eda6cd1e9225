"""What the monitoring files' queries may name: the operator's series, and their labels."""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest
from prometheus_client.metrics import MetricWrapperBase

from secretrotation.shell import metrics

REPO = Path(__file__).resolve().parents[1]
MONITORING = REPO / "deploy" / "monitoring"
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
SELECTOR = re.compile(r"\b(secretrotation_\w+)\s*(?:\{([^}]*)\})?")
MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")


def tool() -> ModuleType:
    """tools/monitoring.py, which writes the files of deploy/monitoring/."""
    if "monitoring_tool" in sys.modules:
        return sys.modules["monitoring_tool"]
    spec = importlib.util.spec_from_file_location("monitoring_tool", REPO / "tools" / "monitoring.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def exported_series() -> dict[str, frozenset[str]]:
    """Every series name the operator exports, and the labels each may carry."""
    series: dict[str, frozenset[str]] = {}
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase):
            labels = frozenset(metric._labelnames)
            for family in metric.describe():
                for suffix in SUFFIXES[family.type]:
                    series[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return series


def unknown_names(expr: str) -> list[str]:
    """The series and label matchers in ``expr`` that the operator does not export: typos."""
    exported, problems = exported_series(), []
    for match in SELECTOR.finditer(expr):
        name, matchers = match.group(1), match.group(2) or ""
        if name not in exported:
            problems.append(name)
            continue
        problems += [f"{name}{{{label}}}" for label in MATCHER.findall(matchers) if label not in exported[name]]
    return problems


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: `make tools` installs it (Debian's prometheus package)")
    return found
