"""ServiceAccount rotation: versioned accounts and tokens, switched, verified, and only then collected.

Every test runs under the invariant checker: no pod ever names a missing
account or Secret, and no version goes while something uses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kubetest import Kube, condition, container, raw
from kubetest.accounts import account_and_bindings, account_names, workloads_running_as
from kubetest.invariants import InvariantChecker
from kubetest.operator import OperatorProcess, apply_cluster_role, rotation
from kubetest.rotations import (
    at_revision,
    collection_blocked_at,
    create,
    opt_in,
    request_rotation,
    stalled_with,
    wait_rotation,
)
from secretrotation_dev.devcluster import podsim

pytestmark = pytest.mark.integration
Obj = dict[str, Any]
VERIFY = {"timeout": "3m", "stableFor": "1s"}


@pytest.fixture
def checked(kube: Kube, namespace: str) -> Iterator[None]:
    with InvariantChecker(kube, namespace):
        yield


def account_rotation(**extra: Any) -> Obj:
    spec: Obj = {"serviceAccount": {"name": "deployer"}, "verify": VERIFY, **extra}
    return rotation("deployer", **spec)


def subjects(kube: Kube, namespace: str, binding: str) -> list[str]:
    found = raw(kube.rbac.read_namespaced_role_binding, binding, namespace)
    return sorted(s["name"] for s in found.get("subjects") or [])


def running_as(kube: Kube, namespace: str, kind: str, name: str) -> str:
    read = kube.apps.read_namespaced_deployment if kind == "Deployment" else kube.apps.read_namespaced_stateful_set
    account: str = raw(read, name, namespace)["spec"]["template"]["spec"]["serviceAccountName"]
    return account


def test_workloads_switch_account_versions_and_bindings_follow_then_old_ones_are_collected(
    kube: Kube, namespace: str, operator: OperatorProcess, checked: None
) -> None:
    opt_in(kube, namespace)
    account_and_bindings(kube, namespace)
    workloads_running_as(kube, namespace, "deployer")
    create(kube, namespace, account_rotation(retain=0))

    first = wait_rotation(kube, namespace, "deployer", at_revision(1), "revision 1")

    assert first["status"]["currentSecret"] == "deployer-v1"
    assert running_as(kube, namespace, "Deployment", "api") == "deployer-v1"
    assert running_as(kube, namespace, "StatefulSet", "worker") == "deployer-v1"
    assert subjects(kube, namespace, "deployer-reads") == ["deployer", "deployer-v1"]
    assert subjects(kube, namespace, "shared-reads") == ["deployer", "deployer-v1", "other"]
    assert subjects(kube, namespace, "other-admin") == ["other"], "never a binding the old account did not have"
    assert account_names(kube, namespace) == {"deployer", "deployer-v1", "other"}, "the adopted base account stays"

    request_rotation(kube, namespace, "deployer", "2")
    second = wait_rotation(kube, namespace, "deployer", at_revision(2), "revision 2")

    assert second["status"]["currentSecret"] == "deployer-v2"
    assert running_as(kube, namespace, "Deployment", "api") == "deployer-v2"
    assert running_as(kube, namespace, "StatefulSet", "worker") == "deployer-v2"
    assert account_names(kube, namespace) == {"deployer", "deployer-v2", "other"}, "deployer-v1 is collected (retain 0)"
    assert subjects(kube, namespace, "deployer-reads") == ["deployer", "deployer-v2"]
    assert subjects(kube, namespace, "shared-reads") == ["deployer", "deployer-v2", "other"], "others stay bound"
    assert subjects(kube, namespace, "other-admin") == ["other"]


def test_token_secret_consumers_are_switched_and_old_tokens_collected(
    kube: Kube, namespace: str, operator: OperatorProcess, checked: None
) -> None:
    kube.core.create_namespaced_service_account(namespace, {"metadata": {"name": "deployer"}})
    create(kube, namespace, account_rotation(retain=0, serviceAccount={"name": "deployer", "tokenSecret": True}))
    wait_rotation(kube, namespace, "deployer", at_revision(1), "revision 1")
    token = raw(kube.core.read_namespaced_secret, "deployer-v1-token", namespace)
    assert token["type"] == "kubernetes.io/service-account-token" and "token" in token["data"]
    workloads_running_as(kube, namespace, "deployer-v1", token_volume="deployer-v1-token")

    request_rotation(kube, namespace, "deployer", "2")
    wait_rotation(kube, namespace, "deployer", at_revision(2), "revision 2")

    template = raw(kube.apps.read_namespaced_deployment, "api", namespace)["spec"]["template"]["spec"]
    assert template["serviceAccountName"] == "deployer-v2"
    assert template["volumes"] == [{"name": "token", "secret": {"secretName": "deployer-v2-token", "defaultMode": 420}}]
    names = {s["metadata"]["name"] for s in raw(kube.core.list_namespaced_secret, namespace)["items"]}
    assert "deployer-v2-token" in names and "deployer-v1-token" not in names


def test_collection_waits_for_a_lone_pod_running_as_the_old_account(
    kube: Kube, namespace: str, operator: OperatorProcess, checked: None
) -> None:
    kube.core.create_namespaced_service_account(namespace, {"metadata": {"name": "deployer"}})
    create(kube, namespace, account_rotation(retain=0))
    wait_rotation(kube, namespace, "deployer", at_revision(1), "revision 1")
    kube.core.create_namespaced_pod(namespace, {
        "metadata": {"name": "debug-shell"},
        "spec": {"serviceAccountName": "deployer-v1", "containers": [container()]},
    })  # fmt: skip

    request_rotation(kube, namespace, "deployer", "2")
    blocked = wait_rotation(kube, namespace, "deployer", collection_blocked_at(2), "collection of deployer-v1 blocked")
    assert "Pod/debug-shell" in condition(blocked, "GarbageCollected")["message"]
    assert "deployer-v1" in account_names(kube, namespace)

    kube.core.delete_namespaced_pod("debug-shell", namespace)
    wait_rotation(kube, namespace, "deployer", lambda r: condition(r, "GarbageCollected") is None, "resumed")

    assert account_names(kube, namespace) == {"deployer", "deployer-v2"}


def test_a_crash_on_the_new_account_rolls_back_and_removes_it_everywhere(
    kube: Kube, namespace: str, operator: OperatorProcess, checked: None
) -> None:
    opt_in(kube, namespace)
    account_and_bindings(kube, namespace)
    workloads_running_as(kube, namespace, "deployer")
    faults = f"- serviceAccount: deployer-v1\n  effect: {podsim.Effect.CRASH_LOOP.value}\n"
    kube.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": podsim.FAULTS_CONFIGMAP}, "data": {podsim.FAULTS_KEY: faults}}
    )
    create(kube, namespace, account_rotation(verify={"timeout": "10m", "stableFor": "1s"}))

    failed = wait_rotation(kube, namespace, "deployer", stalled_with("VerificationFailed"), "rolled back", timeout=120)

    assert "CrashLoopBackOff" in condition(failed, "Stalled")["message"]
    assert running_as(kube, namespace, "Deployment", "api") == "deployer"
    assert running_as(kube, namespace, "StatefulSet", "worker") == "deployer"
    assert account_names(kube, namespace) == {"deployer", "other"}, "the failed account version is removed"
    assert subjects(kube, namespace, "deployer-reads") == ["deployer"]
    assert subjects(kube, namespace, "shared-reads") == ["deployer", "other"]


@pytest.mark.parametrize(
    ("consent", "let_in", "said"),
    [(True, False, "the operator may not extend"), (False, True, "does not consent")],
    ids=["operator-not-let-in", "binding-does-not-consent"],
)
def test_without_both_consents_a_binding_is_not_extended_and_nothing_is_touched(
    kube: Kube, namespace: str, operator: OperatorProcess, checked: None, consent: bool, let_in: bool, said: str
) -> None:
    if let_in:
        opt_in(kube, namespace)
    account_and_bindings(kube, namespace, consent=consent)
    workloads_running_as(kube, namespace, "deployer")
    create(kube, namespace, account_rotation())

    stalled = wait_rotation(kube, namespace, "deployer", stalled_with("BindingNotPermitted"), "BindingNotPermitted")

    message = condition(stalled, "Stalled")["message"]
    assert "RoleBinding/deployer-reads" in message and said in message, message
    assert account_names(kube, namespace) == {"deployer", "other"}
    assert subjects(kube, namespace, "deployer-reads") == ["deployer"]
    assert running_as(kube, namespace, "Deployment", "api") == "deployer"


def test_the_opt_in_role_lets_the_operator_extend_only_the_bindings_it_names(kube: Kube, namespace: str) -> None:
    opt_in(kube, namespace, bindings=["deployer-reads"], roles=["reader"])
    operator = "system:serviceaccount:secretrotation-system:secretrotation"
    allowed = {
        (verb, resource, name): may(kube, operator, namespace, verb, resource, name)
        for verb, resource, name in (
            ("patch", "rolebindings", "deployer-reads"), ("patch", "rolebindings", "other-admin"),
            ("bind", "roles", "reader"), ("bind", "roles", "admin"), ("bind", "clusterroles", "cluster-admin"),
        )
    }  # fmt: skip

    assert allowed == {
        ("patch", "rolebindings", "deployer-reads"): True, ("patch", "rolebindings", "other-admin"): False,
        ("bind", "roles", "reader"): True, ("bind", "roles", "admin"): False,
        ("bind", "clusterroles", "cluster-admin"): False,
    }  # fmt: skip


def may(kube: Kube, user: str, namespace: str, verb: str, resource: str, name: str) -> bool:
    attributes = {"namespace": namespace, "verb": verb, "group": "rbac.authorization.k8s.io",
                  "resource": resource, "name": name}  # fmt: skip
    spec = {"user": user, "groups": ["system:serviceaccounts"], "resourceAttributes": attributes}
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
    return bool(raw(kube.authorization.create_subject_access_review, review)["status"].get("allowed"))


def test_the_shipped_rbac_alone_cannot_bind_roles_or_extend_bindings(kube: Kube, namespace: str) -> None:
    """Without the namespace's opt-in, the operator holds no verb that could grant an account anything."""
    apply_cluster_role(kube)
    for verb, resource in (("patch", "rolebindings"), ("update", "rolebindings"), ("create", "rolebindings"),
                           ("bind", "roles"), ("bind", "clusterroles"), ("escalate", "roles")):  # fmt: skip
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": "system:serviceaccount:secretrotation-system:secretrotation",
                "groups": ["system:serviceaccounts"],
                "resourceAttributes": {
                    "namespace": namespace, "verb": verb, "group": "rbac.authorization.k8s.io", "resource": resource,
                },
            },
        }  # fmt: skip
        answer = raw(kube.authorization.create_subject_access_review, review)
        assert not answer["status"].get("allowed"), f"the operator may {verb} {resource} without opting in"
