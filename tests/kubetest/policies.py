"""The author policy and the user roles (deploy/policy-authors.yaml, deploy/rbac-user-roles.yaml),
and acting as other people: impersonated clients, RBAC grants, and waits until the API server
applies them.

RBAC, role aggregation and admission policies all reach the API server's caches a moment after
they are written, so every helper that grants something also waits, bounded, until the API
server answers with it: a test then fails on what it asserts, never on a race.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubetest import Kube, eventually, raw
from kubetest.operator import GROUP, PLURAL, REPO, VERSION, rotation

Obj = dict[str, Any]
POLICY = REPO / "deploy/policy-authors.yaml"
USER_ROLES = REPO / "deploy/rbac-user-roles.yaml"
PROBE_USER = "secretrotation-policy-probe"
PROBE_NAMESPACE = "default"


def _documents(path: Any) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _create_or_replace(create: Any, replace: Any, read: Any, body: Obj) -> None:
    try:
        create(body)
    except ApiException as error:
        if error.status != 409:
            raise
        name = body["metadata"]["name"]
        version = raw(read, name)["metadata"]["resourceVersion"]
        replace(name, {**body, "metadata": {**body["metadata"], "resourceVersion": version}})


def install_policies(kube: Kube) -> None:
    """Apply the policy, its binding and the user roles; return once the policy refuses requests.

    Needs the CRD installed (kubetest.operator.install_crd).
    """
    admission = client.AdmissionregistrationV1Api(kube.api)
    for doc in _documents(POLICY):
        if doc["kind"] == "ValidatingAdmissionPolicy":
            _create_or_replace(admission.create_validating_admission_policy,
                               admission.replace_validating_admission_policy,
                               admission.read_validating_admission_policy, doc)  # fmt: skip
        else:
            _create_or_replace(admission.create_validating_admission_policy_binding,
                               admission.replace_validating_admission_policy_binding,
                               admission.read_validating_admission_policy_binding, doc)  # fmt: skip
    for doc in _documents(USER_ROLES):
        _create_or_replace(kube.rbac.create_cluster_role, kube.rbac.replace_cluster_role,
                           kube.rbac.read_cluster_role, doc)  # fmt: skip
    _wait_enforced(kube)


def uninstall_policies(kube: Kube) -> None:
    admission = client.AdmissionregistrationV1Api(kube.api)
    with contextlib.suppress(ApiException):
        kube.rbac.delete_namespaced_role_binding(PROBE_USER, PROBE_NAMESPACE)
    for doc in _documents(POLICY):
        delete = (
            admission.delete_validating_admission_policy
            if doc["kind"] == "ValidatingAdmissionPolicy"
            else admission.delete_validating_admission_policy_binding
        )
        with contextlib.suppress(ApiException):
            delete(doc["metadata"]["name"])
    for doc in _documents(USER_ROLES):
        with contextlib.suppress(ApiException):
            kube.rbac.delete_cluster_role(doc["metadata"]["name"])


def _wait_enforced(kube: Kube) -> None:
    """Retry a request the policy refuses until it is refused (a dry run: nothing is ever created)."""
    bind_cluster_role(kube, PROBE_NAMESPACE, user_subject(PROBE_USER), "secretrotation-edit", name=PROBE_USER)
    wait_allowed(kube, PROBE_USER, PROBE_NAMESPACE, "create", GROUP, PLURAL)
    probe = impersonating(kube, PROBE_USER)
    body = rotation("policy-probe", secretName="probe", generate=[{"key": "k"}])

    def refused() -> bool:
        try:
            probe.custom.create_namespaced_custom_object(GROUP, VERSION, PROBE_NAMESPACE, PLURAL, body, dry_run="All")
        except ApiException as error:
            if error.status == 403 and "secretrotation-authors" in message_of(error):
                return True
            raise
        return False

    try:
        eventually(refused, timeout=30, what="the author policy to refuse a SecretRotation", interval=0.2)
    finally:
        probe.api.close()


def impersonating(kube: Kube, user: str, group: str | None = None) -> Kube:
    """A client acting as ``user`` (and ``group``): the admin's credentials, impersonating.

    The API server adds ``system:authenticated`` to an impersonated user's groups.
    """
    api = client.ApiClient(kube.api.configuration)
    api.set_default_header("Impersonate-User", user)
    if group:
        api.set_default_header("Impersonate-Group", group)
    return Kube(api)


def user_subject(user: str) -> Obj:
    return {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}


def group_subject(group: str) -> Obj:
    return {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": group}


def bind_cluster_role(kube: Kube, namespace: str, subject: Obj, cluster_role: str, *, name: str | None = None) -> None:
    """A RoleBinding of ``cluster_role`` to ``subject`` in ``namespace`` (kept if it exists)."""
    binding = {
        "metadata": {"name": name or f"{subject['name']}-{cluster_role}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
        "subjects": [subject],
    }
    try:
        kube.rbac.create_namespaced_role_binding(namespace, binding)
    except ApiException as error:
        if error.status != 409:
            raise


def rule(verbs: Sequence[str], resource: str, group: str = "", names: Sequence[str] = ()) -> Obj:
    """An RBAC rule; ``resource`` may name a subresource (``serviceaccounts/token``)."""
    found: Obj = {"apiGroups": [group], "resources": [resource], "verbs": list(verbs)}
    if names:
        found["resourceNames"] = list(names)
    return found


def grant(kube: Kube, namespace: str, user: str, name: str, rules: Iterable[Obj]) -> None:
    """A Role ``name`` with ``rules``, bound to ``user``; returns once RBAC allows every rule."""
    rules = list(rules)
    kube.rbac.create_namespaced_role(namespace, {"metadata": {"name": name}, "rules": rules})
    kube.rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [user_subject(user)],
    })  # fmt: skip
    for granted in rules:
        resource, _, subresource = granted["resources"][0].partition("/")
        for verb in granted["verbs"]:
            for object_name in granted.get("resourceNames") or [""]:
                wait_allowed(kube, user, namespace, verb, granted["apiGroups"][0], resource,
                             name=object_name, subresource=subresource)  # fmt: skip


def allowed(
    kube: Kube,
    user: str,
    namespace: str,
    verb: str,
    group: str,
    resource: str,
    *,
    name: str = "",
    subresource: str = "",
    groups: Sequence[str] = (),
) -> bool:
    """Does the API server's authorizer allow the request now (a SubjectAccessReview)?"""
    attributes = {"namespace": namespace, "verb": verb, "group": group, "resource": resource,
                  "name": name, "subresource": subresource}  # fmt: skip
    review = {"spec": {"user": user, "groups": ["system:authenticated", *groups], "resourceAttributes": attributes}}
    answer = raw(kube.authorization.create_subject_access_review, review)
    return bool(answer["status"].get("allowed"))


def wait_allowed(
    kube: Kube,
    user: str,
    namespace: str,
    verb: str,
    group: str,
    resource: str,
    *,
    name: str = "",
    subresource: str = "",
    groups: Sequence[str] = (),
    timeout: float = 30,
) -> None:
    """Wait until the API server's authorizer allows the request."""

    def now() -> bool:
        return allowed(kube, user, namespace, verb, group, resource, name=name, subresource=subresource, groups=groups)

    eventually(now, timeout=timeout, what=f"RBAC to allow {user} to {verb} {resource} {name}".strip())


def wait_aggregated(kube: Kube, cluster_role: str, verb: str, resource: str = PLURAL) -> None:
    """Wait until the aggregation controller has copied ``verb`` on ``resource`` into ``cluster_role``."""

    def has_rule(role: Obj) -> bool:
        return any(resource in r.get("resources", []) and verb in r.get("verbs", []) for r in role.get("rules") or [])

    kube.wait_one(kube.rbac.list_cluster_role, cluster_role, has_rule, what=f"{verb} {resource} aggregated", timeout=60)


def message_of(error: ApiException) -> str:
    """The message of an API error's Status body."""
    message: str = json.loads(error.body)["message"]
    return message
