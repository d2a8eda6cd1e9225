"""Helpers for ServiceAccount rotation tests: accounts, their bindings, workloads running as them."""

from __future__ import annotations

from typing import Any

from kubetest import Kube, container, deployment, raw
from kubetest.rotations import rolled_out
from secretrotation.core import names

Obj = dict[str, Any]


def account_and_bindings(kube: Kube, namespace: str, *, consent: bool = True) -> None:
    """ServiceAccount deployer, bound by its own RoleBinding and a shared one; another account's binding.

    With ``consent``, the two bindings that name deployer let new versions of it join them.
    """
    for name in ("deployer", "other"):
        kube.core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    kube.rbac.create_namespaced_role(namespace, {
        "metadata": {"name": "reader"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
    })  # fmt: skip
    kube.rbac.create_namespaced_role(namespace, {
        "metadata": {"name": "admin"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}],
    })  # fmt: skip
    for binding, role, subjects in (
        ("deployer-reads", "reader", ["deployer"]),
        ("shared-reads", "reader", ["deployer", "other"]),
        ("other-admin", "admin", ["other"]),
    ):
        consenting = consent and "deployer" in subjects
        annotations = {names.EXTEND_BINDING_ANNOTATION: "true"} if consenting else {}
        kube.rbac.create_namespaced_role_binding(namespace, {
            "metadata": {"name": binding, "annotations": annotations},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": s, "namespace": namespace} for s in subjects],
        })  # fmt: skip


def workloads_running_as(kube: Kube, namespace: str, account: str, *, token_volume: str | None = None) -> None:
    pod_spec: Obj = {"serviceAccountName": account, "containers": [container()]}
    if token_volume:
        pod_spec["volumes"] = [{"name": "token", "secret": {"secretName": token_volume}}]
    kube.apps.create_namespaced_deployment(namespace, deployment("api", pod_spec, replicas=2))
    kube.apps.create_namespaced_stateful_set(namespace, {
        "metadata": {"name": "worker"},
        "spec": {"serviceName": "worker", "replicas": 2, "selector": {"matchLabels": {"app": "worker"}},
                 "template": {"metadata": {"labels": {"app": "worker"}}, "spec": pod_spec}},
    })  # fmt: skip
    rolled_out(kube, namespace)


def account_names(kube: Kube, namespace: str) -> set[str]:
    items = raw(kube.core.list_namespaced_service_account, namespace)["items"]
    return {a["metadata"]["name"] for a in items} - {"default"}
