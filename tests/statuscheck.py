"""What every status the operator writes must satisfy, checked on every planned step in the unit tests.

kstatus conventions, the CRD's structural schema (nothing would be pruned), no empty
strings, documented reasons, and never a constant from the spec.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from secretrotation.core.conditions import Reason
from secretrotation.core.plan import Plan
from secretrotation.core.world import Resource

CAMEL_CASE = re.compile(r"[A-Z][a-z0-9]+([A-Z][a-z0-9]*)*")
KNOWN_REASONS = {reason.value for reason in Reason}
STATUS_SCHEMA = yaml.safe_load((Path(__file__).parents[1] / "crds/secretrotation.yaml").read_text())["spec"][
    "versions"
][0]["schema"]["openAPIV3Schema"]["properties"]["status"]


def undeclared(value: Any, schema: Mapping[str, Any], path: str = "status") -> list[str]:
    """Fields of ``value`` the structural schema would prune (silently dropping operator state)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if isinstance(value, Mapping):
        declared = schema.get("properties") or {}
        found = [f"{path}.{key}" for key in value if key not in declared]
        return found + [
            m for key, v in value.items() if key in declared for m in undeclared(v, declared[key], f"{path}.{key}")
        ]
    if isinstance(value, list) and "items" in schema:
        return [m for v in value for m in undeclared(v, schema["items"], f"{path}[]")]
    return []


def assert_conventions(plan: Plan, resource: Resource, *, canary: str | None = None) -> None:
    """What every status the operator writes must satisfy (kstatus, the CRD schema, never a secret value)."""
    status = plan.status
    assert not undeclared(status, STATUS_SCHEMA), f"pruned by the CRD schema: {undeclared(status, STATUS_SCHEMA)}"
    conditions = status.get("conditions") or []
    types = [c["type"] for c in conditions]
    assert len(types) == len(set(types)), f"duplicate condition types: {types}"
    by_type = {c["type"]: c for c in conditions}
    assert "Ready" in by_type, f"Ready must always be present: {types}"
    assert status["observedGeneration"] == resource.generation, status
    for condition in conditions:
        assert condition["observedGeneration"] == resource.generation, condition
        assert condition["status"] in ("True", "False"), condition
        assert CAMEL_CASE.fullmatch(condition["reason"]), f"reason is not CamelCase: {condition}"
        assert condition["reason"] in KNOWN_REASONS, f"reason outside the documented set: {condition}"
        assert condition["message"] and condition["lastTransitionTime"], condition
    in_flight = bool(status.get("rotation"))
    reconciling, stalled = by_type.get("Reconciling"), by_type.get("Stalled")
    if reconciling is not None:
        requested = reconciling["reason"] == Reason.REQUESTED  # a request about to start a rotation
        assert reconciling["status"] == "True" and (in_flight or requested), f"Reconciling outside a rotation: {status}"
    if in_flight and stalled is None:
        assert reconciling is not None, f"a rotation in flight must be Reconciling: {types}"
    if stalled is not None:
        assert stalled["status"] == "True", stalled
    collected = by_type.get("GarbageCollected")
    if collected is not None:
        assert collected["status"] == "False" and status.get("pendingDeletion"), collected
    for event in plan.events:
        assert CAMEL_CASE.fullmatch(event.reason), f"event reason is not CamelCase: {event}"
    if canary is not None:
        assert canary not in repr(plan), "the constant from spec.generate leaked into a plan"
