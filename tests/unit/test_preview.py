"""The dry run behind ``kubectl srot plan``: what a rotation requested now would do, from the same rules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from secretrotation.core import names
from secretrotation.core.preview import preview
from secretrotation.core.record import Change, WorkloadRef
from secretrotation.core.world import Fact, NamespaceObjects, NeedFacts, Needs, Observed, Resource, SecretState

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
SPEC = {"secretName": "db", "generate": [{"key": "username", "value": "shop"}, {"key": "password"}], "retain": 1}
ROTATED = {"revision": 2, "highestRevision": 2, "currentSecret": "db-v2", "retainedSecrets": ["db-v1"]}


def workload(kind: str, name: str, pod_spec: dict[str, Any], **spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "labels": labels},
        "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": pod_spec},
                 **spec},
    }  # fmt: skip


def env_reading(secret: str, *keys: str) -> dict[str, Any]:
    env = [{"name": k.upper(), "valueFrom": {"secretKeyRef": {"name": secret, "key": k}}} for k in keys]
    return {"containers": [{"name": "app", "env": env}]}


def secret(name: str, rotation: str | None = "db") -> SecretState:
    labels = names.version_labels(rotation, 1) if rotation else {}
    return SecretState(name, labels, frozenset({"username", "password"}), True, "Opaque", "7")


def observe(objects: NamespaceObjects, status: dict[str, Any], spec: dict[str, Any] | None = None) -> Any:
    resource = Resource("db", "shop", 1, {}, spec or SPEC, status)
    secrets = {n: secret(n, None if n == "db" else "db") for n in ("db", "db-v1", "db-v2")}
    return preview(resource, Observed(NOW, objects, secrets, service_accounts={}))


def test_it_names_each_reference_it_would_rewrite_and_each_consumer_it_would_not() -> None:
    objects = NamespaceObjects(
        deployments=[workload("Deployment", "api", env_reading("db-v2", "password"))],
        jobs=[{"metadata": {"name": "backup"}, "spec": {"template": {"spec": env_reading("db-v2", "password")}}}],
        cron_jobs=[],
    )

    planned = observe(objects, ROTATED)

    assert (planned.version, planned.revision, planned.previous, planned.problem) == ("db-v3", 3, "db-v2", None)
    [target] = planned.targets
    assert (target.kind, target.name, target.missing, target.refusal) == ("Deployment", "api", (), None)
    assert target.changes == (Change("/spec/template/spec/containers/0/env/0/valueFrom/secretKeyRef/name", "db-v2",
                                     "db-v3"),)  # fmt: skip
    assert planned.untracked == (WorkloadRef("Job", "backup"),)


def test_a_key_the_new_version_would_lack_is_reported_as_the_refusal_that_stops_it() -> None:
    objects = NamespaceObjects(
        deployments=[workload("Deployment", "api", env_reading("db-v2", "apikey"))], cron_jobs=[]
    )

    planned = observe(objects, ROTATED)

    [target] = planned.targets
    assert target.missing and "'apikey'" in target.missing[0], target
    assert planned.problem is not None and planned.problem.reason == "MissingKey"


def test_collection_keeps_the_retained_version_and_blocks_one_an_untracked_consumer_still_uses() -> None:
    objects = NamespaceObjects(
        deployments=[workload("Deployment", "api", env_reading("db-v2", "password"))],
        jobs=[{"metadata": {"name": "backup"}, "spec": {"template": {"spec": env_reading("db-v1", "password")}}}],
        cron_jobs=[],
    )

    planned = observe(objects, ROTATED)

    verdicts = {d.name: (d.outcome, d.reason) for d in planned.disposals}
    assert verdicts == {"db-v2": ("Keep", "Retained"), "db-v1": ("Blocked", "StillReferenced")}, verdicts


def test_the_version_its_targets_leave_would_be_deleted_when_nothing_else_holds_it() -> None:
    objects = NamespaceObjects(deployments=[workload("Deployment", "api", env_reading("db-v2", "password"))],
                               pods=[{"metadata": {"name": "api-1", "labels": {"app": "api"}},
                                      "spec": env_reading("db-v2", "password")}], cron_jobs=[])  # fmt: skip

    planned = observe(objects, ROTATED, {**SPEC, "retain": 0})

    verdicts = {d.name: d.outcome for d in planned.disposals}
    assert verdicts == {"db-v2": "Delete", "db-v1": "Delete"}, planned.disposals


def test_a_paused_rotation_or_one_in_flight_is_noted() -> None:
    in_flight = {**ROTATED, "phase": "Verifying", "rotation": {"revision": 3, "secret": "db-v3", "targets": []}}
    objects = NamespaceObjects(cron_jobs=[])

    planned = observe(objects, {**in_flight, "highestRevision": 3}, {**SPEC, "paused": True})

    assert planned.version == "db-v4"
    assert any("paused" in n for n in planned.notes) and any("in flight" in n for n in planned.notes)


def test_it_asks_for_what_it_reads_like_a_step() -> None:
    resource = Resource("db", "shop", 1, {}, SPEC, ROTATED)
    with pytest.raises(NeedFacts) as need:
        preview(resource, Observed(NOW, NamespaceObjects(cron_jobs=None), {"db": secret("db", None)}))
    assert need.value.needs in (Needs(frozenset({Fact.CRON_JOBS})), Needs(secrets=frozenset({"db-v2"})))
