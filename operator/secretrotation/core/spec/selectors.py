"""Parsing ``spec.targets``: workload kinds, names and label selectors."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from secretrotation.core.spec.fields import Fields, check_label_key, check_label_value, quote
from secretrotation.core.spec.types import (
    MAX_MATCH_EXPRESSIONS,
    MAX_MATCH_LABELS,
    MAX_NAME_LENGTH,
    MAX_SELECTOR_VALUES,
    MAX_TARGETS,
    SELECTOR_OPERATORS,
    InvalidSpec,
    TargetSelector,
    WorkloadKind,
)


def targets_of(root: Fields) -> tuple[TargetSelector, ...] | None:
    entries = root.items(
        "targets", MAX_TARGETS, if_empty="must not be empty; omit targets to discover workloads automatically"
    )
    if entries is None:
        return None
    targets: list[TargetSelector] = []
    for index, raw in enumerate(entries):
        entry = Fields.of(raw, f"{root.at('targets')}[{index}]", {"kind", "name", "selector"})
        target = _target(entry)
        if target in targets:
            what = target.name if target.name is not None else "with the same selector"
            raise InvalidSpec(entry.path, f"duplicate target {target.kind} {what}")
        targets.append(target)
    return tuple(targets)


def _target(entry: Fields) -> TargetSelector:
    kind = entry.choice("kind", WorkloadKind)
    if entry.has("name") == entry.has("selector"):
        raise InvalidSpec(entry.path, "set exactly one of name or selector")
    if entry.has("name"):
        return TargetSelector(kind=kind, name=entry.name("name", MAX_NAME_LENGTH))
    return TargetSelector(
        kind=kind, selector=_label_selector(entry.child("selector", {"matchLabels", "matchExpressions"}))
    )


def _label_selector(selector: Fields) -> dict[str, Any]:
    normalised: dict[str, Any] = {}
    match_labels = _match_labels(selector)
    if match_labels:
        normalised["matchLabels"] = match_labels
    # Empty matchLabels / matchExpressions read as absent, as in Kubernetes; only the whole selector must say something.
    expressions = selector.items("matchExpressions", MAX_MATCH_EXPRESSIONS, if_empty=None)
    if expressions:
        normalised["matchExpressions"] = [
            _match_expression(
                Fields.of(raw, f"{selector.at('matchExpressions')}[{index}]", {"key", "operator", "values"})
            )
            for index, raw in enumerate(expressions)
        ]
    if not normalised:
        raise InvalidSpec(selector.path, "selector must not be empty; name the workloads or use labels")
    return normalised


def _match_labels(selector: Fields) -> dict[str, str]:
    path = selector.at("matchLabels")
    labels = selector.get("matchLabels")
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise InvalidSpec(path, "must be an object")
    if len(labels) > MAX_MATCH_LABELS:
        raise InvalidSpec(path, f"must have at most {MAX_MATCH_LABELS} labels")
    for key, value in labels.items():
        check_label_key(key, path)
        if not isinstance(value, str):
            raise InvalidSpec(path, f"the value of {quote(key)} must be a string")
        check_label_value(value, f"the value of {quote(key)}", path)
    return dict(labels)


def _match_expression(expression: Fields) -> dict[str, Any]:
    key = expression.string("key", required=True)
    assert key is not None
    check_label_key(key, expression.at("key"))
    operator = expression.get("operator")
    if operator is None:
        raise InvalidSpec(expression.at("operator"), "is required")
    if operator not in SELECTOR_OPERATORS:
        raise InvalidSpec(expression.at("operator"), f"must be one of {', '.join(SELECTOR_OPERATORS)}")
    values = list(_selector_values(expression))
    if operator in ("In", "NotIn"):
        if not values:
            raise InvalidSpec(expression.at("values"), f"must not be empty for operator {operator}")
        return {"key": key, "operator": operator, "values": values}
    if values:
        raise InvalidSpec(expression.at("values"), f"must be empty for operator {operator}")
    return {"key": key, "operator": operator}


def _selector_values(expression: Fields) -> Iterator[str]:
    path = expression.at("values")
    values = expression.get("values")
    if values is None:
        return
    if not isinstance(values, list):
        raise InvalidSpec(path, "must be a list")
    if len(values) > MAX_SELECTOR_VALUES:
        raise InvalidSpec(path, f"must have at most {MAX_SELECTOR_VALUES} items")
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise InvalidSpec(f"{path}[{index}]", "must be a string")
        check_label_value(value, "the value", f"{path}[{index}]")
        yield value
