"""The install manifests agree on the operator's reach: namespaced by default, cluster-wide only
in operator-clusterwide.yaml, the same identity everywhere the policies and bindings name it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from secretrotation.adapters import cli, scope

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
Obj = dict[str, Any]


def docs(name: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]


def one(name: str, kind: str) -> Obj:
    [found] = [doc for doc in docs(name) if doc["kind"] == kind]
    return found


def container_of(deployment: Obj) -> Obj:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return container


def scope_of(deployment: Obj) -> scope.Scope:
    args = cli._parser().parse_args(container_of(deployment)["args"])
    return scope.from_arguments(args, deployment["metadata"]["namespace"])


def operator_username() -> str:
    account = one("operator.yaml", "ServiceAccount")["metadata"]
    return f"system:serviceaccount:{account['namespace']}:{account['name']}"


def test_the_default_install_acts_in_listed_namespaces_and_binds_nothing_cluster_wide() -> None:
    kinds = {doc["kind"] for doc in docs("operator.yaml")}
    assert "ClusterRoleBinding" not in kinds, kinds
    assert not scope_of(one("operator.yaml", "Deployment")).clusterwide


def test_the_cluster_wide_install_differs_from_the_default_only_in_its_scope() -> None:
    default, clusterwide = one("operator.yaml", "Deployment"), one("operator-clusterwide.yaml", "Deployment")
    assert scope_of(clusterwide).clusterwide
    for deployment in (default, clusterwide):
        container_of(deployment).pop("args")
    assert clusterwide == default


def test_both_installs_tell_the_operator_its_own_namespace() -> None:
    for name in ("operator.yaml", "operator-clusterwide.yaml"):
        env = {e["name"]: e for e in container_of(one(name, "Deployment"))["env"]}
        assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}, name


def test_the_exclusion_policy_refuses_writes_where_the_cluster_wide_operator_does_not_act() -> None:
    binding = one("operator-clusterwide.yaml", "ValidatingAdmissionPolicyBinding")
    [selected] = binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
    assert selected["key"] == "kubernetes.io/metadata.name" and selected["operator"] == "In"
    assert set(selected["values"]) == scope_of(one("operator-clusterwide.yaml", "Deployment")).excluded


def test_every_binding_grants_the_cluster_role_to_the_operators_account_and_every_policy_names_it() -> None:
    account = one("operator.yaml", "ServiceAccount")["metadata"]
    subject = {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    role = one("rbac.yaml", "ClusterRole")["metadata"]["name"]
    for name, kind in (("rbac-namespace.yaml", "RoleBinding"), ("operator-clusterwide.yaml", "ClusterRoleBinding")):
        binding = one(name, kind)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}
        assert binding["subjects"] == [subject], name
    for name in ("policy-operator.yaml", "operator-clusterwide.yaml"):
        policy = one(name, "ValidatingAdmissionPolicy")
        [condition] = policy["spec"]["matchConditions"]
        assert condition["expression"] == f"request.userInfo.username == '{operator_username()}'", name
        assert one(name, "ValidatingAdmissionPolicyBinding")["spec"]["policyName"] == policy["metadata"]["name"]
