"""The collect rules for Secret versions: a version is deleted only when this rotation
created it, it is not the version in use, and nothing in the namespace references it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from secretrotation.core import names
from secretrotation.core import spec as model
from secretrotation.core.credentials import Context, SecretCredential
from secretrotation.core.credentials.secret import referrers_of
from secretrotation.core.rules import Finding, collect
from secretrotation.core.rules.collect import Candidate
from secretrotation.core.world import NamespaceObjects, Observed, Referrer, SecretState

ROTATION = "app-db"
VERSION = "db-v1"
IN_USE = "db-v2"
OURS = names.version_labels(ROTATION, 1)


SPEC = model.parse_spec({"secretName": "db", "generate": [{"key": "password"}]})


def facts(c: Candidate, objects: NamespaceObjects) -> Candidate:
    """``c`` with the referrers its credential finds in ``objects``."""
    return replace(c, referrers=tuple(referrers_of(c.name, objects)))


def candidate(name: str = VERSION, labels: Mapping[str, str] = OURS, in_use: str | None = IN_USE) -> Candidate:
    return Candidate("Secret", name, labels, ROTATION, in_use, "db")


def judge(c: Candidate, objects: NamespaceObjects) -> Finding | None:
    """What the collect rules say of deleting ``c``, with the facts its credential gathers from ``objects``."""
    secret = SecretState(c.name, c.labels, frozenset(), True, "Opaque", "1")
    observed = Observed(now=datetime(2026, 3, 1, tzinfo=UTC), objects=objects, secrets={c.name: secret})
    context = Context(ROTATION, "ns", SPEC, observed)
    removal = SecretCredential().removal(context, c.name, c.in_use, within_retain=False, switched_at=None)
    assert removal is not None
    return collect.judge(removal.candidate)


def pod_spec_using(secret: str) -> dict[str, Any]:
    return {"containers": [{"name": "app", "image": "app:1", "envFrom": [{"secretRef": {"name": secret}}]}]}


def pod(name: str, secret: str = VERSION, pod_spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": pod_spec if pod_spec is not None else pod_spec_using(secret)}


def templated(name: str, secret: str = VERSION, **spec: Any) -> dict[str, Any]:
    """A Deployment, StatefulSet, DaemonSet, Job or ReplicaSet: a pod template under spec."""
    return {"metadata": {"name": name}, "spec": {**spec, "template": {"spec": pod_spec_using(secret)}}}


def cron_job(name: str, secret: str = VERSION) -> dict[str, Any]:
    job_template = {"spec": {"template": {"spec": pod_spec_using(secret)}}}
    return {"metadata": {"name": name}, "spec": {"schedule": "@daily", "jobTemplate": job_template}}


def service_account(name: str, secret: str = VERSION) -> dict[str, Any]:
    return {"metadata": {"name": name}, "imagePullSecrets": [{"name": "registry"}, {"name": secret}]}


def only(field: str, *objects: dict[str, Any]) -> NamespaceObjects:
    return NamespaceObjects(**{field: objects})


# One object of each referrer kind, in the field of NamespaceObjects it is listed in.
REFERRER_KINDS = [
    pytest.param("pods", pod("worker-7f9c"), Referrer("Pod", "worker-7f9c"), id="Pod"),
    pytest.param("deployments", templated("web"), Referrer("Deployment", "web"), id="Deployment"),
    pytest.param("stateful_sets", templated("store"), Referrer("StatefulSet", "store"), id="StatefulSet"),
    pytest.param("daemon_sets", templated("agent"), Referrer("DaemonSet", "agent"), id="DaemonSet"),
    pytest.param("jobs", templated("migrate"), Referrer("Job", "migrate"), id="Job"),
    pytest.param("cron_jobs", cron_job("nightly"), Referrer("CronJob", "nightly"), id="CronJob"),
    pytest.param(
        "replica_sets", templated("web-5d8f", replicas=2), Referrer("ReplicaSet", "web-5d8f"), id="ReplicaSet"
    ),
    pytest.param(
        "service_accounts", service_account("builder"), Referrer("ServiceAccount", "builder"), id="ServiceAccount"
    ),
]


# --- the chain --------------------------------------------------------------------------------


def test_the_chain_asks_ownership_then_use_then_references() -> None:
    # The order decides which reason a blocked deletion reports.
    order = [check.__name__ for check in collect.CHAIN]

    assert order == [
        "is_not_the_adopted_base",
        "is_beyond_the_retain_window",
        "was_created_by_this_rotation",
        "is_not_in_use",
        "is_not_referenced",
        "has_no_mounted_token",
        "token_unused_since_switch",
    ]


@pytest.mark.parametrize(
    "labels",
    [
        pytest.param({}, id="no-labels"),
        pytest.param({names.ROTATION_LABEL: "other-rotation", names.REVISION_LABEL: "1"}, id="another-rotation"),
        pytest.param({names.REVISION_LABEL: "1", "app": "db"}, id="revision-label-only"),
        pytest.param({names.ROTATION_LABEL: ""}, id="empty-rotation-label"),
    ],
)
def test_a_secret_without_our_rotation_label_is_never_ours_to_delete(labels: dict[str, str]) -> None:
    verdict = collect.was_created_by_this_rotation(candidate(labels=labels))

    assert verdict is not None, f"a Secret labelled {labels} was taken for one of ours"
    assert verdict is not None and verdict.reason == "NotOwned", verdict
    assert VERSION in verdict.message and f"{names.ROTATION_LABEL}={ROTATION}" in verdict.message, verdict.message


def test_a_secret_carrying_our_rotation_label_passes_the_ownership_check() -> None:
    assert collect.was_created_by_this_rotation(candidate()) is None


def test_ownership_is_judged_first_even_when_the_secret_is_in_use_and_referenced() -> None:
    foreign = candidate(name=IN_USE, labels={})
    objects = only("pods", pod("web-1", IN_USE))

    verdict = judge(foreign, objects)

    assert verdict is not None and verdict.reason == "NotOwned", verdict


def test_the_version_in_use_is_never_deletable() -> None:
    in_use = candidate(name=IN_USE)

    alone = collect.is_not_in_use(in_use)
    judged = judge(in_use, only("pods", pod("web-1", IN_USE)))

    assert alone is not None and alone.reason == "InUse", alone
    assert IN_USE in alone.message, alone.message
    assert judged is not None and judged.reason == "InUse", f"InUse must win over StillReferenced: {judged}"


@pytest.mark.parametrize("in_use", [IN_USE, None], ids=["another-version-in-use", "nothing-in-use-yet"])
def test_a_version_that_is_not_in_use_passes_the_use_check(in_use: str | None) -> None:
    assert collect.is_not_in_use(candidate(in_use=in_use)) is None


# --- references -------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "obj", "referrer"), REFERRER_KINDS)
def test_a_version_still_referenced_is_blocked_naming_the_referrer(
    field: str, obj: dict[str, Any], referrer: Referrer
) -> None:
    objects = only(field, obj)

    alone = collect.is_not_referenced(facts(candidate(), objects))
    judged = judge(candidate(), objects)

    assert alone is not None, f"{referrer} references {VERSION} but the check did not see it"
    assert alone.reason == "StillReferenced", alone
    assert referrers_of(VERSION, objects) == [referrer]
    assert alone.message == f"Secret {VERSION} is still referenced by {referrer}", alone.message
    assert judged == alone, "judge must report the first blocking check"


@pytest.mark.parametrize(("field", "obj", "referrer"), REFERRER_KINDS)
def test_objects_referencing_another_secret_do_not_block(field: str, obj: dict[str, Any], referrer: Referrer) -> None:
    objects = only(field, obj)

    verdict = judge(candidate(name="db-v9", labels=names.version_labels(ROTATION, 9)), objects)

    assert verdict is None, f"{referrer} references {VERSION}, not db-v9: {verdict}"


@pytest.mark.parametrize(
    ("replicas", "blocks"),
    [
        pytest.param(0, False, id="scaled-to-zero"),
        pytest.param(1, True, id="one-replica"),
        pytest.param(3, True, id="three-replicas"),
    ],
)
def test_a_replica_set_blocks_only_while_it_still_wants_replicas(replicas: int, blocks: bool) -> None:
    # A Deployment keeps its old ReplicaSets at 0 replicas as rollout history: they create no pods.
    objects = only("replica_sets", templated("web-5d8f", replicas=replicas))

    verdict = judge(candidate(), objects)

    assert (verdict is not None) is blocks, f"ReplicaSet with replicas={replicas}: {verdict}"


def test_a_replica_set_without_a_replica_count_counts_as_one() -> None:
    # The API server defaults spec.replicas to 1.
    found = referrers_of(VERSION, only("replica_sets", templated("web-5d8f")))

    assert found == [Referrer("ReplicaSet", "web-5d8f")], found


def test_a_service_account_blocks_only_through_image_pull_secrets() -> None:
    mounts_only = {"metadata": {"name": "builder"}, "imagePullSecrets": [{"name": "registry"}]}

    verdict = judge(candidate(), only("service_accounts", mounts_only))

    assert verdict is None, verdict


@pytest.mark.parametrize(
    "pod_spec",
    [
        pytest.param(
            {"containers": [{"name": "a", "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": VERSION}}}]}]},
            id="env-secretKeyRef",
        ),
        pytest.param({"containers": [{"name": "a", "envFrom": [{"secretRef": {"name": VERSION}}]}]}, id="envFrom"),
        pytest.param({"volumes": [{"name": "v", "secret": {"secretName": VERSION}}]}, id="volume"),
        pytest.param(
            {"volumes": [{"name": "v", "projected": {"sources": [{"secret": {"name": VERSION}}]}}]}, id="projected"
        ),
        pytest.param({"imagePullSecrets": [{"name": VERSION}]}, id="imagePullSecrets"),
        pytest.param(
            {"initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": VERSION}}]}]}, id="initContainer"
        ),
        pytest.param(
            {"ephemeralContainers": [{"name": "debug", "envFrom": [{"secretRef": {"name": VERSION}}]}]},
            id="ephemeralContainer",
        ),
        pytest.param(
            {
                "containers": [
                    {
                        "name": "a",
                        "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": VERSION, "optional": True}}}],
                    }
                ]
            },
            id="optional-reference",
        ),
    ],
)
def test_a_pod_blocks_through_every_kind_of_secret_reference(pod_spec: dict[str, Any]) -> None:
    verdict = judge(candidate(), only("pods", pod("web-1", pod_spec=pod_spec)))

    assert verdict is not None and verdict.reason == "StillReferenced", verdict


def test_every_referrer_in_the_namespace_is_reported_kind_by_kind() -> None:
    objects = NamespaceObjects(
        pods=[pod("web-1"), pod("other", "db-v2")],
        deployments=[templated("web")],
        stateful_sets=[templated("store")],
        daemon_sets=[templated("agent")],
        jobs=[templated("migrate")],
        cron_jobs=[cron_job("nightly")],
        replica_sets=[templated("web-old", replicas=0), templated("web-new", replicas=1)],
        service_accounts=[service_account("builder")],
    )

    found = referrers_of(VERSION, objects)

    assert [str(r) for r in found] == [
        "Pod/web-1",
        "Deployment/web",
        "StatefulSet/store",
        "DaemonSet/agent",
        "Job/migrate",
        "CronJob/nightly",
        "ReplicaSet/web-new",
        "ServiceAccount/builder",
    ]


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        pytest.param(1, "Pod/p0", id="one"),
        pytest.param(5, "Pod/p0, Pod/p1, Pod/p2, Pod/p3, Pod/p4", id="five-fit"),
        pytest.param(6, "Pod/p0, Pod/p1, Pod/p2, Pod/p3, Pod/p4 and 1 more", id="six"),
        pytest.param(40, "Pod/p0, Pod/p1, Pod/p2, Pod/p3, Pod/p4 and 35 more", id="forty"),
    ],
)
def test_the_message_lists_at_most_five_referrers_and_counts_the_rest(count: int, expected: str) -> None:
    objects = only("pods", *(pod(f"p{i}") for i in range(count)))

    verdict = judge(candidate(), objects)

    assert verdict.message == f"Secret {VERSION} is still referenced by {expected}", verdict.message
    assert len(referrers_of(VERSION, objects)) == count, "every referrer is found, only the message is bounded"


# --- deletable --------------------------------------------------------------------------------


def test_an_unreferenced_version_of_ours_that_is_not_in_use_is_deletable() -> None:
    unrelated = NamespaceObjects(pods=[pod("web-1", IN_USE)], deployments=[templated("web", IN_USE)])

    verdict = judge(candidate(), unrelated)

    assert verdict is None, verdict


def test_each_check_alone_passes_an_unreferenced_version_of_ours() -> None:
    for check in collect.CHAIN:
        assert check(candidate()) is None, f"{check.__name__} blocked a deletable version"
