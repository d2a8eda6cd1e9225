"""Helpers for tests that drive SecretRotations: create, request, wait, inspect."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from kubetest import Kube, condition, container, deployment, raw
from kubetest.operator import GROUP, PLURAL, VERSION, rotation
from secretrotation.core import references, rollout

Obj = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
FAST_VERIFY = {"timeout": "3m", "stableFor": "1s"}
WORKLOADS = (("Deployment", "api"), ("StatefulSet", "ledger"), ("DaemonSet", "agent"))


def list_rotations(kube: Kube) -> Callable[..., Any]:
    return functools.partial(kube.custom.list_namespaced_custom_object, GROUP, VERSION)


def wait_rotation(kube: Kube, namespace: str, name: str, predicate: Callable[[Obj], bool], what: str,
                  timeout: float = 90) -> Obj:  # fmt: skip
    return kube.wait_one(
        list_rotations(kube), name, predicate, namespace=namespace, plural=PLURAL, what=what, timeout=timeout
    )


def at_revision(revision: int) -> Callable[[Obj], bool]:
    def check(obj: Obj) -> bool:
        status = obj.get("status") or {}
        ready = condition(obj, "Ready") or {}
        return status.get("revision") == revision and status.get("phase") == "Idle" and ready.get("status") == "True"

    return check


def stalled_with(reason: str) -> Callable[[Obj], bool]:
    def check(obj: Obj) -> bool:
        stalled = condition(obj, "Stalled") or {}
        return stalled.get("status") == "True" and stalled.get("reason") == reason and obj["status"]["phase"] == "Idle"

    return check


def request_rotation(kube: Kube, namespace: str, name: str, value: str) -> None:
    patch = {"metadata": {"annotations": {"rotation.sre.dev/requested-at": value}}}
    kube.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, patch)


def template_secrets(kube: Kube, namespace: str, kind: str, name: str) -> frozenset[str]:
    read = {
        "Deployment": kube.apps.read_namespaced_deployment,
        "StatefulSet": kube.apps.read_namespaced_stateful_set,
        "DaemonSet": kube.apps.read_namespaced_daemon_set,
    }[kind]
    workload = raw(read, name, namespace)
    return references.referenced_secrets(references.pod_spec_of({**workload, "kind": kind}))


def secret_names(kube: Kube, namespace: str) -> set[str]:
    items = raw(kube.core.list_namespaced_secret, namespace)["items"]
    return {s["metadata"]["name"] for s in items if s["type"] != "kubernetes.io/service-account-token"}


def rolled_out(kube: Kube, namespace: str) -> None:
    """Wait until every Deployment, StatefulSet and DaemonSet of the namespace has rolled out, by kubectl's rules.

    A rotation is started on settled workloads, as an SRE starts one: a StatefulSet switched
    while its first pods are still being created one by one (OrderedReady) was seen to
    stall its controller past a test's wait.
    """
    for list_call, judge in (
        (kube.apps.list_namespaced_stateful_set, rollout.statefulset_rollout_status),
        (kube.apps.list_namespaced_deployment, rollout.deployment_rollout_status),
        (kube.apps.list_namespaced_daemon_set, rollout.daemonset_rollout_status),
    ):
        kube.wait(
            list_call,
            lambda items, judge=judge: all(judge(i).done for i in items),
            namespace=namespace,
            what="workloads rolled out",
            describe=lambda items, judge=judge: "; ".join(
                f"{i['metadata']['name']}: {judge(i).message}" for i in items if not judge(i).done
            ),
        )


def shop_workloads(kube: Kube, namespace: str, secret_name: str = "db") -> None:
    """A Deployment (env), a StatefulSet (volume item) and a DaemonSet (envFrom in an init container),
    each rolled out (``rolled_out``) before it is returned."""
    env = [
        {"name": "DB_USER", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "username"}}},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "password"}}},
    ]
    kube.apps.create_namespaced_deployment(
        namespace, deployment("api", {"containers": [container(env=env)]}, replicas=2)
    )
    volume = {"name": "db", "secret": {"secretName": secret_name, "items": [{"key": "password", "path": "pw"}]}}
    kube.apps.create_namespaced_stateful_set(namespace, {
        "metadata": {"name": "ledger"},
        "spec": {
            "serviceName": "ledger", "replicas": 2, "selector": {"matchLabels": {"app": "ledger"}},
            "template": {"metadata": {"labels": {"app": "ledger"}},
                         "spec": {"containers": [container()], "volumes": [volume]}},
        },
    })  # fmt: skip
    init = container("init", envFrom=[{"secretRef": {"name": secret_name}}])
    kube.apps.create_namespaced_daemon_set(namespace, {
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                         "spec": {"initContainers": [init], "containers": [container()]}},
        },
    })  # fmt: skip
    rolled_out(kube, namespace)


def consumer(kube: Kube, namespace: str, name: str, secret_name: str) -> None:
    """A one-replica Deployment ``name`` reading key ``password`` of ``secret_name`` into its env."""
    env = [{"name": "P", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "password"}}}]
    kube.apps.create_namespaced_deployment(namespace, deployment(name, {"containers": [container(env=env)]}))


def reverted_on_deletion(kube: Kube, namespace: str) -> Obj:
    """Wait for the one Warning ``RevertedOnDeletion`` Event in the namespace, and return it."""
    events = kube.wait(
        kube.core.list_namespaced_event,
        lambda items: any(e["reason"] == "RevertedOnDeletion" for e in items),
        namespace=namespace,
        what="a RevertedOnDeletion Event",
    )
    [reverted] = [e for e in events if e["reason"] == "RevertedOnDeletion"]
    return reverted


def db_rotation(name: str = "db", **extra: Any) -> Obj:
    spec: Obj = {
        "secretName": "db",
        "generate": [{"key": "username", "value": "shop"}, {"key": "password", "length": 24}],
        "verify": FAST_VERIFY,
        "retain": 1,
    }
    spec.update(extra)
    return rotation(name, **spec)


def create(kube: Kube, namespace: str, body: Obj) -> None:
    kube.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)


def collection_blocked_at(revision: int) -> Callable[[Obj], bool]:
    def check(obj: Obj) -> bool:
        blocked = (condition(obj, "GarbageCollected") or {}).get("status") == "False"
        return bool((obj.get("status") or {}).get("revision") == revision and blocked)

    return check


def opt_in(
    kube: Kube,
    namespace: str,
    bindings: Sequence[str] = ("deployer-reads", "shared-reads"),
    roles: Sequence[str] = ("reader",),
) -> None:
    """Apply deploy/rbac-serviceaccounts.yaml to the namespace for these bindings and roles, as an SRE would."""
    names = {"BINDING": list(bindings), "ROLE": list(roles), "CLUSTER_ROLE": []}
    for doc in yaml.safe_load_all((REPO / "deploy/rbac-serviceaccounts.yaml").read_text()):
        doc["metadata"]["namespace"] = namespace
        if doc["kind"] == "Role":
            rules = [{**rule, "resourceNames": names[rule["resourceNames"][0]]} for rule in doc["rules"]]
            doc["rules"] = [rule for rule in rules if rule["resourceNames"]]
            kube.rbac.create_namespaced_role(namespace, doc)
        else:
            kube.rbac.create_namespaced_role_binding(namespace, doc)
