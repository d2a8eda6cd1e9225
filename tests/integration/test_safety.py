"""Safety: rollback, the reference guard, overlapping rotations, deletion, and a spec change mid-rotation."""

from __future__ import annotations

import pytest

from kubetest import Kube, condition, container, deployment, deployment_available, eventually, raw, secret
from kubetest.operator import GROUP, PLURAL, VERSION, OperatorProcess
from kubetest.rotations import (
    FAST_VERIFY,
    at_revision,
    collection_blocked_at,
    create,
    db_rotation,
    request_rotation,
    secret_names,
    stalled_with,
    template_secrets,
    wait_rotation,
)
from secretrotation_dev.devcluster import podsim

pytestmark = pytest.mark.integration


def _env(secret_name: str) -> list[dict[str, object]]:
    return [{"name": "P", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "password"}}}]


def _inject_crash(kube: Kube, namespace: str, secret_name: str) -> None:
    faults = f"- secret: {secret_name}\n  effect: {podsim.Effect.CRASH_LOOP.value}\n"
    kube.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": podsim.FAULTS_CONFIGMAP}, "data": {podsim.FAULTS_KEY: faults}}
    )


def _patch_spec(kube: Kube, namespace: str, name: str, spec: dict[str, object]) -> None:
    kube.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, {"spec": spec})


def _rotation(kube: Kube, namespace: str, name: str) -> dict[str, object]:
    result: dict[str, object] = raw(kube.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name)
    return result


def test_a_stuck_ordered_ready_statefulset_pod_is_replaced_during_rollback(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db", {"password": "initial"}))
    volume = {"name": "db", "secret": {"secretName": "db"}}
    kube.apps.create_namespaced_stateful_set(namespace, {
        "metadata": {"name": "ledger"},
        "spec": {
            "serviceName": "ledger", "replicas": 3, "podManagementPolicy": "OrderedReady",
            "selector": {"matchLabels": {"app": "ledger"}},
            "template": {"metadata": {"labels": {"app": "ledger"}},
                         "spec": {"containers": [container()], "volumes": [volume]}},
        },
    })  # fmt: skip
    _inject_crash(kube, namespace, "db-v1")
    create(kube, namespace, db_rotation(generate=[{"key": "password"}]))

    failed = wait_rotation(kube, namespace, "db", stalled_with("VerificationFailed"), "rolled back", timeout=120)

    assert "StatefulSet ledger" in condition(failed, "Stalled")["message"]
    sts = kube.wait_one(
        kube.apps.list_namespaced_stateful_set, "ledger",
        lambda s: s["status"].get("currentRevision") == s["status"].get("updateRevision")
        and s["status"].get("readyReplicas") == 3,
        namespace=namespace, what="back on one revision, all Ready",
    )  # fmt: skip
    assert template_secrets(kube, namespace, "StatefulSet", "ledger") == {"db"}, sts["spec"]["template"]
    pods = raw(kube.core.list_namespaced_pod, namespace, label_selector="app=ledger")["items"]
    assert all("db-v1" not in str(p["spec"]) for p in pods), "a pod is still on the failed version"
    assert secret_names(kube, namespace) == {"db"}


def test_a_paused_deployment_is_not_switched(kube: Kube, namespace: str, operator: OperatorProcess) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db", {"password": "initial"}))
    manifest = deployment("api", {"containers": [container(env=_env("db"))]})
    manifest["spec"]["paused"] = True
    kube.apps.create_namespaced_deployment(namespace, manifest)
    generation = raw(kube.apps.read_namespaced_deployment, "api", namespace)["metadata"]["generation"]
    create(kube, namespace, db_rotation(generate=[{"key": "password"}]))

    failed = wait_rotation(kube, namespace, "db", stalled_with("TargetPaused"), "TargetPaused")

    assert "Deployment api is paused" in condition(failed, "Stalled")["message"]
    assert raw(kube.apps.read_namespaced_deployment, "api", namespace)["metadata"]["generation"] == generation
    assert secret_names(kube, namespace) == {"db"}, "the staged version is removed, everything is as it was"


def test_collection_is_blocked_by_an_untracked_workload_until_it_goes(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db", {"password": "initial"}))
    for name in ("api", "legacy"):
        kube.apps.create_namespaced_deployment(namespace, deployment(name, {"containers": [container(env=_env("db"))]}))
    create(kube, namespace, db_rotation(generate=[{"key": "password"}], retain=0))
    wait_rotation(kube, namespace, "db", at_revision(1), "revision 1")
    assert template_secrets(kube, namespace, "Deployment", "legacy") == {"db-v1"}

    _patch_spec(kube, namespace, "db", {"targets": [{"kind": "Deployment", "name": "api"}]})
    request_rotation(kube, namespace, "db", "2")
    blocked = wait_rotation(
        kube, namespace, "db",
        collection_blocked_at(2),
        "collection of db-v1 blocked",
    )  # fmt: skip

    gc = condition(blocked, "GarbageCollected")
    assert gc["reason"] == "StillReferenced" and "Deployment/legacy" in gc["message"], gc
    assert blocked["status"]["untrackedReferences"] == [{"kind": "Deployment", "name": "legacy"}]
    assert condition(blocked, "Ready")["status"] == "True", "the rotation itself succeeded"
    assert "db-v1" in secret_names(kube, namespace)
    events = raw(kube.core.list_namespaced_event, namespace)["items"]
    assert {"UntrackedReferences", "CollectionBlocked"} <= {e["reason"] for e in events}
    blocked_metric = f'secretrotation_gc_blocked_total{{name="db",namespace="{namespace}"}} 1.0'
    eventually(lambda: blocked_metric in operator.metrics(), timeout=10, what="the blocked-collection metric")

    kube.apps.delete_namespaced_deployment("legacy", namespace, propagation_policy="Foreground")
    collected = wait_rotation(
        kube, namespace, "db", lambda r: condition(r, "GarbageCollected") is None, "collection resumed"
    )

    assert secret_names(kube, namespace) == {"db", "db-v2"}
    assert "pendingDeletion" not in collected["status"]


def test_collection_is_blocked_by_a_lone_pod_until_it_goes(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    create(kube, namespace, db_rotation(generate=[{"key": "password"}], retain=0))
    wait_rotation(kube, namespace, "db", at_revision(1), "revision 1")
    kube.core.create_namespaced_pod(namespace, {
        "metadata": {"name": "debug-shell"},
        "spec": {"containers": [container(env=_env("db-v1"))]},
    })  # fmt: skip

    request_rotation(kube, namespace, "db", "2")
    blocked = wait_rotation(
        kube, namespace, "db",
        collection_blocked_at(2),
        "collection of db-v1 blocked",
    )  # fmt: skip
    assert "Pod/debug-shell" in condition(blocked, "GarbageCollected")["message"]
    assert "db-v1" in secret_names(kube, namespace)

    kube.core.delete_namespaced_pod("debug-shell", namespace)
    wait_rotation(kube, namespace, "db", lambda r: condition(r, "GarbageCollected") is None, "collection resumed")

    assert secret_names(kube, namespace) == {"db-v2"}


def test_overlapping_rotations_take_turns_on_a_shared_workload(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db", {"password": "a"}))
    kube.core.create_namespaced_secret(namespace, secret("api-key", {"password": "b"}))
    both = [*_env("db"), {"name": "K", "valueFrom": {"secretKeyRef": {"name": "api-key", "key": "password"}}}]
    kube.apps.create_namespaced_deployment(namespace, deployment("api", {"containers": [container(env=both)]}))
    kube.wait_one(kube.apps.list_namespaced_deployment, "api", deployment_available, namespace=namespace)
    slow = {"timeout": "3m", "stableFor": "4s"}
    create(kube, namespace, db_rotation("db", generate=[{"key": "password"}], verify=slow))
    create(kube, namespace, db_rotation("api-key", secretName="api-key", generate=[{"key": "password"}], verify=slow))

    def one_waits(items: list[dict]) -> bool:
        reasons = {(condition(r, "Reconciling") or {}).get("reason") for r in items}
        return "WaitingForWorkload" in reasons

    seen = kube.wait(
        lambda **kw: kube.custom.list_namespaced_custom_object(GROUP, VERSION, **kw),
        one_waits, namespace=namespace, plural=PLURAL, what="one rotation waiting for the other",
    )  # fmt: skip
    waiting = next(r for r in seen if (condition(r, "Reconciling") or {}).get("reason") == "WaitingForWorkload")
    other = ({"db", "api-key"} - {waiting["metadata"]["name"]}).pop()
    assert f"SecretRotation {other}" in condition(waiting, "Reconciling")["message"]

    wait_rotation(kube, namespace, "db", at_revision(1), "db rotated")
    wait_rotation(kube, namespace, "api-key", at_revision(1), "api-key rotated")
    assert template_secrets(kube, namespace, "Deployment", "api") == {"db-v1", "api-key-v1"}


def test_deleting_a_rotation_leaves_every_version_in_place(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db", {"password": "initial"}))
    kube.apps.create_namespaced_deployment(namespace, deployment("api", {"containers": [container(env=_env("db"))]}))
    create(kube, namespace, db_rotation(generate=[{"key": "password"}]))
    done = wait_rotation(kube, namespace, "db", at_revision(1), "revision 1")
    assert not done["metadata"].get("finalizers"), "no finalizer: deletion never waits for the operator"

    kube.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "db")

    events = kube.wait(
        kube.core.list_namespaced_event,
        lambda items: any(e["reason"] == "VersionsLeftInPlace" for e in items),
        namespace=namespace, what="the VersionsLeftInPlace event",
    )  # fmt: skip
    message = next(e["message"] for e in events if e["reason"] == "VersionsLeftInPlace")
    assert "db-v1" in message
    assert secret_names(kube, namespace) == {"db", "db-v1"}
    assert template_secrets(kube, namespace, "Deployment", "api") == {"db-v1"}


def test_a_namespace_with_rotations_is_deleted_while_the_operator_is_down(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    create(kube, namespace, db_rotation(generate=[{"key": "password"}]))
    wait_rotation(kube, namespace, "db", at_revision(1), "revision 1")
    operator.kill()

    kube.core.delete_namespace(namespace)

    kube.wait_gone(kube.core.list_namespace, namespace, timeout=120)


def test_a_spec_change_during_a_rotation_applies_to_the_next_one(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db", {"password": "initial"}))
    kube.apps.create_namespaced_deployment(namespace, deployment("api", {"containers": [container(env=_env("db"))]}))
    create(kube, namespace, db_rotation(generate=[{"key": "password"}], verify={"timeout": "3m", "stableFor": "5s"}))
    wait_rotation(kube, namespace, "db", lambda r: (r.get("status") or {}).get("phase") == "Verifying", "Verifying")

    _patch_spec(kube, namespace, "db", {"generate": [{"key": "password"}, {"key": "extra"}], "verify": FAST_VERIFY})
    first = wait_rotation(kube, namespace, "db", at_revision(1), "revision 1")

    assert set(raw(kube.core.read_namespaced_secret, "db-v1", namespace)["data"]) == {"password"}
    assert first["status"]["observedGeneration"] == first["metadata"]["generation"]
    request_rotation(kube, namespace, "db", "2")
    wait_rotation(kube, namespace, "db", at_revision(2), "revision 2")
    assert set(raw(kube.core.read_namespaced_secret, "db-v2", namespace)["data"]) == {"password", "extra"}
