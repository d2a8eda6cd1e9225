"""The operator's reach, installed as an SRE would from deploy/: its RoleBinding per namespace
(rbac-namespace.yaml), the opt-in cluster-wide grant and exclusions (operator-clusterwide.yaml),
and its self-restraint policy (policy-operator.yaml); and a client acting as the operator.

RBAC and admission policies reach the API server's caches a moment after they are written, so
each installer returns only once the API server answers with what it installed.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kubetest import Kube, eventually, raw, secret
from kubetest.operator import REPO
from secretrotation.core import names

Obj = dict[str, Any]
OPERATOR_NAMESPACE = "secretrotation-system"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:secretrotation"
NAMESPACE_BINDING = REPO / "deploy/rbac-namespace.yaml"
CLUSTERWIDE = REPO / "deploy/operator-clusterwide.yaml"
POLICY = REPO / "deploy/policy-operator.yaml"
POLICY_NAME = "secretrotation-operator"
EXCLUSION_POLICY_NAME = "secretrotation-operator-excluded-namespaces"
# Where the self-restraint policy is probed until it is enforced: the operator may create
# Secrets here (a RoleBinding), and the probe is a dry run, so nothing is ever created.
PROBE_NAMESPACE = "secretrotation-policy-probe"


def documents(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def of_kind(path: Path, kind: str) -> list[Obj]:
    return [doc for doc in documents(path) if doc["kind"] == kind]


def acting_as_operator(operator_kubeconfig: Path) -> Kube:
    """A client with the operator's own token (the ``operator_kubeconfig`` fixture's)."""
    return Kube(config.new_client_from_config(config_file=str(operator_kubeconfig)))


def message_of(error: ApiException) -> str:
    message: str = json.loads(error.body or "{}").get("message", "")
    return message


def _apply(kube: Kube, doc: Obj) -> None:
    """Create the cluster-scoped object ``doc``, or replace the object of its name."""
    admission = client.AdmissionregistrationV1Api(kube.api)
    create, read, replace = {
        "ValidatingAdmissionPolicy": (admission.create_validating_admission_policy,
                                      admission.read_validating_admission_policy,
                                      admission.replace_validating_admission_policy),
        "ValidatingAdmissionPolicyBinding": (admission.create_validating_admission_policy_binding,
                                             admission.read_validating_admission_policy_binding,
                                             admission.replace_validating_admission_policy_binding),
        "ClusterRoleBinding": (kube.rbac.create_cluster_role_binding, kube.rbac.read_cluster_role_binding,
                               kube.rbac.replace_cluster_role_binding),
    }[doc["kind"]]  # fmt: skip
    try:
        create(doc)
    except ApiException as error:
        if error.status != 409:
            raise
        name = doc["metadata"]["name"]
        version = raw(read, name)["metadata"]["resourceVersion"]
        replace(name, {**doc, "metadata": {**doc["metadata"], "resourceVersion": version}})


def _delete(kube: Kube, doc: Obj) -> None:
    admission = client.AdmissionregistrationV1Api(kube.api)
    delete = {
        "ValidatingAdmissionPolicy": admission.delete_validating_admission_policy,
        "ValidatingAdmissionPolicyBinding": admission.delete_validating_admission_policy_binding,
        "ClusterRoleBinding": kube.rbac.delete_cluster_role_binding,
    }[doc["kind"]]
    with contextlib.suppress(ApiException):
        delete(doc["metadata"]["name"])


def wait_operator_may(kube: Kube, verb: str, resource: str, group: str = "", namespace: str = "") -> None:
    """Wait until RBAC allows the operator ``verb`` on ``resource`` (in ``namespace``; "" for every namespace)."""
    attributes = {"namespace": namespace, "verb": verb, "group": group, "resource": resource}
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{OPERATOR_NAMESPACE}", "system:authenticated"]
    review = {"spec": {"user": OPERATOR_USER, "groups": groups, "resourceAttributes": attributes}}

    def allowed() -> bool:
        return bool(raw(kube.authorization.create_subject_access_review, review)["status"].get("allowed"))

    where = f"in {namespace}" if namespace else "in every namespace"
    eventually(allowed, timeout=30, what=f"RBAC to let the operator {verb} {resource} {where}", interval=0.1)


def bind_in_namespace(kube: Kube, namespace: str) -> None:
    """deploy/rbac-namespace.yaml for ``namespace``: the operator's rights there; returns once RBAC grants them."""
    [binding] = of_kind(NAMESPACE_BINDING, "RoleBinding")
    binding["metadata"]["namespace"] = namespace
    try:
        kube.rbac.create_namespaced_role_binding(namespace, binding)
    except ApiException as error:
        if error.status != 409:  # bound already (a session reusing a cluster)
            raise
    wait_operator_may(kube, "create", "secrets", namespace=namespace)


def install_operator_policy(kube: Kube, operator: Kube) -> None:
    """deploy/policy-operator.yaml; returns once it refuses the operator (``operator``: its client)."""
    for doc in documents(POLICY):
        _apply(kube, doc)
    with contextlib.suppress(ApiException):
        kube.core.create_namespace({"metadata": {"name": PROBE_NAMESPACE}})
    bind_in_namespace(kube, PROBE_NAMESPACE)
    wait_refused(
        lambda: operator.core.create_namespaced_secret(PROBE_NAMESPACE, secret("probe", {"k": "v"}), dry_run="All"),
        POLICY_NAME,
        what="the operator's self-restraint policy to refuse an unlabelled Secret",
    )


def version_secret(base: str, revision: int, rotation: str = "probe") -> Obj:
    """A Secret labelled and named as version ``revision`` of a rotation, as the operator stages one."""
    manifest = secret(names.version_name(base, revision), {"k": "v"})
    manifest["metadata"]["labels"] = names.version_labels(rotation, revision)
    return manifest


def wait_refused(request: Any, policy: str, *, what: str) -> None:
    """Repeat ``request`` (which must have no effect) until ``policy`` refuses it."""

    def refused() -> bool:
        try:
            request()
        except ApiException as error:
            if error.status == 403 and f"'{policy}'" in message_of(error):
                return True
            if error.status != 403:  # RBAC not granted yet answers 403 too
                raise
        return False

    eventually(refused, timeout=30, what=what, interval=0.2)


@contextlib.contextmanager
def clusterwide(kube: Kube, operator: Kube, excluded: Sequence[str]) -> Iterator[None]:
    """deploy/operator-clusterwide.yaml's grant and exclusion policy, the policy listing ``excluded``.

    Returns once RBAC lets the operator watch every namespace and the policy refuses it a
    write in the first excluded namespace; removes both on the way out, so no later test's
    operator holds more than its RoleBindings.
    """
    docs = [d for d in documents(CLUSTERWIDE) if d["kind"] not in ("Namespace", "ServiceAccount", "Deployment")]
    for doc in docs:
        if doc["kind"] == "ValidatingAdmissionPolicyBinding":
            [expression] = doc["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
            expression["values"] = list(excluded)
        _apply(kube, doc)
    try:
        wait_operator_may(kube, "watch", "pods")
        wait_refused(
            lambda: operator.core.create_namespaced_secret(excluded[0], version_secret("probe", 1), dry_run="All"),
            EXCLUSION_POLICY_NAME,
            what=f"the exclusion policy to refuse the operator a write in {excluded[0]}",
        )
        yield
    finally:
        for doc in docs:
            _delete(kube, doc)
