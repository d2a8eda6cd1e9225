"""The operator's self-restraint (deploy/policy-operator.yaml), with the operator's own token.

Each refused act is sent as the operator, from a namespace where RBAC grants it, so the API
server's answer is the policy's; each refusal names what was refused. What a rotation does
(stage versions, switch references, collect versions) is shown allowed here, and by every
other integration test, whose operator runs under the same policy (the operator_kubeconfig
fixture installs it).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from kubetest import Kube, container, deployment, raw, secret
from kubetest.reach import POLICY_NAME, acting_as_operator, bind_in_namespace, message_of, version_secret
from secretrotation.core import names
from secretrotation.core.objects import value_at
from secretrotation.core.plan import PatchWorkload
from secretrotation.core.record import Change
from secretrotation.shell.api import StepConflict
from secretrotation.shell.cluster import APPLY_PATCH, Cluster

pytestmark = pytest.mark.integration

Obj = dict[str, Any]
JSON_PATCH = "application/json-patch+json"
SWITCH_MARK = f"{names.GROUP}/switched-by"


@pytest.fixture
def as_operator(kube: Kube, namespace: str, operator_kubeconfig: Path) -> Iterator[Kube]:
    """A client with the operator's token, which RBAC lets act in this test's namespace."""
    bind_in_namespace(kube, namespace)
    operator = acting_as_operator(operator_kubeconfig)
    yield operator
    operator.api.close()


def refusal(request: Callable[[], object]) -> str:
    """The policy's message refusing ``request``; fails if anything else answers."""
    with pytest.raises(ApiException) as raised:
        request()
    message = message_of(raised.value)
    assert raised.value.status == 403 and f"'{POLICY_NAME}'" in message, f"{raised.value.status}: {message}"
    return message


def account(name: str, labels: dict[str, str] | None = None) -> Obj:
    return {"metadata": {"name": name, **({"labels": labels} if labels else {})}}


def token_secret(name: str, account_name: str, revision: int) -> Obj:
    """A token Secret (the API server requires the account annotation) labelled as version ``revision``."""
    manifest = secret(name, {}, type="kubernetes.io/service-account-token")
    manifest["metadata"]["labels"] = names.version_labels("ci", revision)
    manifest["metadata"]["annotations"] = {"kubernetes.io/service-account.name": account_name}
    return manifest


def test_the_operator_deletes_only_secrets_and_accounts_that_are_rotation_versions(
    kube: Kube, namespace: str, as_operator: Kube
) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db", {"password": "p"}))
    planted = secret("planted", {"password": "p"})
    planted["metadata"]["labels"] = names.version_labels("db", 1)  # the labels, not the name of a version
    kube.core.create_namespaced_secret(namespace, planted)
    kube.core.create_namespaced_service_account(namespace, account("app"))
    kube.core.create_namespaced_secret(namespace, version_secret("db", 1, rotation="db"))
    kube.core.create_namespaced_service_account(namespace, account("app-v1", names.version_labels("ci", 1)))

    message = refusal(lambda: as_operator.core.delete_namespaced_secret("db", namespace))
    assert "may delete only Secrets that are rotation versions" in message and "Secret db is not one" in message
    message = refusal(lambda: as_operator.core.delete_namespaced_secret("planted", namespace))
    assert "Secret planted is not one" in message, message
    message = refusal(lambda: as_operator.core.delete_namespaced_service_account("app", namespace))
    assert "may delete only ServiceAccounts that are rotation versions" in message
    assert "ServiceAccount app is not one" in message, message

    as_operator.core.delete_namespaced_secret("db-v1", namespace)
    as_operator.core.delete_namespaced_service_account("app-v1", namespace)
    left = {s["metadata"]["name"] for s in raw(kube.core.list_namespaced_secret, namespace)["items"]}
    assert {"db", "planted"} <= left and "db-v1" not in left


def test_the_operator_creates_only_secrets_and_accounts_that_are_rotation_versions(
    namespace: str, as_operator: Kube
) -> None:
    message = refusal(lambda: as_operator.core.create_namespaced_secret(namespace, secret("db-v1", {"k": "v"})))
    assert "may create only Secrets that are rotation versions" in message and "Secret db-v1 is not one" in message
    message = refusal(lambda: as_operator.core.create_namespaced_service_account(namespace, account("admin")))
    assert "ServiceAccount admin is not one" in message, message

    as_operator.core.create_namespaced_secret(namespace, version_secret("db", 1, rotation="db"))
    as_operator.core.create_namespaced_service_account(namespace, account("app-v1", names.version_labels("ci", 1)))


def test_the_operator_mints_a_token_only_for_an_account_version_named_by_the_secrets_own_labels(
    namespace: str, as_operator: Kube
) -> None:
    def create(body: Obj) -> Callable[[], object]:
        return lambda: as_operator.core.create_namespaced_secret(namespace, body)

    message = refusal(create(token_secret("default-v1-token", "default", 1)))
    assert "token Secret only as <account>-token" in message and "token for account default" in message, message
    message = refusal(create(token_secret("app-v1-token", "admin-v1", 1)))
    assert "Secret app-v1-token is a token for account admin-v1" in message, message
    refusal(create(token_secret("app-v2-token", "app-v1", 2)))  # the account is not the labels' revision

    as_operator.core.create_namespaced_service_account(namespace, account("app-v1", names.version_labels("ci", 1)))
    create(token_secret("app-v1-token", "app-v1", 1))()


def test_the_operator_deletes_only_pods_a_statefulset_controls(kube: Kube, namespace: str, as_operator: Kube) -> None:
    kube.core.create_namespaced_pod(namespace, {"metadata": {"name": "lone"}, "spec": {"containers": [container()]}})
    message = refusal(lambda: as_operator.core.delete_namespaced_pod("lone", namespace))
    assert "may delete only Pods a StatefulSet controls: Pod lone is not one" in message, message


# A Deployment with every kind of reference, and fields around them the operator must never touch.
POD_SPEC: Obj = {
    "serviceAccountName": "app",
    "imagePullSecrets": [{"name": "regcred"}],
    "initContainers": [container("init", envFrom=[{"secretRef": {"name": "db"}}])],
    "containers": [
        container(
            env=[
                {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                {"name": "MODE", "value": "safe"},
            ],
            envFrom=[{"secretRef": {"name": "db"}}, {"configMapRef": {"name": "settings"}}],
            volumeMounts=[{"name": "creds", "mountPath": "/creds"}],
        )
    ],
    "volumes": [
        {"name": "creds", "secret": {"secretName": "db"}},
        {"name": "bundle", "projected": {"sources": [{"secret": {"name": "db"}}, {"configMap": {"name": "settings"}}]}},
        {"name": "scratch", "emptyDir": {}},
    ],
}
POD = "/spec/template/spec"
APP = f"{POD}/containers/0"

# (what, JSON patch, what the refusal names)
REFUSED_PATCHES = [
    ("image", [{"op": "replace", "path": f"{APP}/image", "value": "evil:1"}], "changed: app (image)"),
    ("command", [{"op": "add", "path": f"{APP}/command", "value": ["sh"]}], "changed: app (command)"),
    ("args", [{"op": "add", "path": f"{APP}/args", "value": ["-c", "id"]}], "changed: app (args)"),
    ("privileged", [{"op": "add", "path": f"{APP}/securityContext", "value": {"privileged": True}}],
     "changed: app (securityContext)"),
    ("init-image", [{"op": "replace", "path": f"{POD}/initContainers/0/image", "value": "evil:1"}],
     "changed: init (image)"),
    ("volume-mount", [{"op": "add", "path": f"{APP}/volumeMounts/-", "value": {"name": "scratch", "mountPath": "/x"}}],
     "changed: app (volumeMounts)"),
    ("new-container", [{"op": "add", "path": f"{POD}/containers/-", "value": container("miner")}],
     "may not add, remove or reorder containers"),
    ("host-network", [{"op": "add", "path": f"{POD}/hostNetwork", "value": True}], "changed: hostNetwork"),
    ("host-pid", [{"op": "add", "path": f"{POD}/hostPID", "value": True}], "changed: hostPID"),
    ("host-ipc", [{"op": "add", "path": f"{POD}/hostIPC", "value": True}], "changed: hostIPC"),
    ("run-as-root", [{"op": "add", "path": f"{POD}/securityContext/runAsUser", "value": 0}],
     "changed: securityContext"),
    ("node-selector", [{"op": "add", "path": f"{POD}/nodeSelector", "value": {"kubernetes.io/hostname": "node-1"}}],
     "changed: nodeSelector"),
    ("tolerations", [{"op": "add", "path": f"{POD}/tolerations", "value": [{"operator": "Exists"}]}],
     "changed: tolerations"),
    ("replicas", [{"op": "replace", "path": "/spec/replicas", "value": 5}], "changed: replicas"),
    ("template-labels", [{"op": "add", "path": "/spec/template/metadata/labels/extra", "value": "x"}],
     "changed: template metadata"),
    ("labels", [{"op": "add", "path": "/metadata/labels", "value": {"team": "other"}}], "changed: labels"),
    ("annotation", [{"op": "add", "path": "/metadata/annotations", "value": {"owner": "me"}}],
     "changed: annotation owner"),
    ("host-path", [{"op": "remove", "path": f"{POD}/volumes/2/emptyDir"},
                   {"op": "add", "path": f"{POD}/volumes/2/hostPath", "value": {"path": "/"}}], "changed: scratch"),
    ("new-volume", [{"op": "add", "path": f"{POD}/volumes/-", "value": {"name": "root", "hostPath": {"path": "/"}}}],
     "may not add, remove or reorder volumes"),
    ("projected-config-map", [{"op": "replace", "path": f"{POD}/volumes/1/projected/sources/1/configMap/name",
                               "value": "other"}], "changed: bundle"),
    ("env-value", [{"op": "replace", "path": f"{APP}/env/1/value", "value": "unsafe"}],
     "only the name of the Secret an env or envFrom entry reads; changed in: app"),
    ("env-secret-key", [{"op": "replace", "path": f"{APP}/env/0/valueFrom/secretKeyRef/key", "value": "token"}],
     "changed in: app"),
    ("env-from-config-map", [{"op": "replace", "path": f"{APP}/envFrom/1", "value": {"secretRef": {"name": "admin"}}}],
     "changed in: app"),
    ("image-pull-secrets", [{"op": "add", "path": f"{POD}/imagePullSecrets/-", "value": {"name": "other"}}],
     "may not add or remove imagePullSecrets"),
    ("account", [{"op": "replace", "path": f"{POD}/serviceAccountName", "value": "admin"},
                 {"op": "replace", "path": f"{POD}/serviceAccount", "value": "admin"}],
     "only between versions of one ServiceAccount (app, app-v1, app-v2): not from app to admin"),
]  # fmt: skip


@pytest.fixture
def consumer(kube: Kube, namespace: str) -> str:
    kube.apps.create_namespaced_deployment(namespace, deployment("api", copy.deepcopy(POD_SPEC)))
    return "api"


@pytest.mark.parametrize(("patch", "named"), [pytest.param(p, n, id=i) for i, p, n in REFUSED_PATCHES])
def test_the_operator_may_not_change_a_workload_beyond_its_secret_and_account_references(
    kube: Kube, namespace: str, as_operator: Kube, consumer: str, patch: list[Obj], named: str
) -> None:
    before = raw(kube.apps.read_namespaced_deployment, consumer, namespace)
    message = refusal(lambda: as_operator.apps.patch_namespaced_deployment(
        consumer, namespace, patch, _content_type=JSON_PATCH
    ))  # fmt: skip
    assert named in message, message
    after = raw(kube.apps.read_namespaced_deployment, consumer, namespace)  # its controller may have written status
    assert after["spec"] == before["spec"] and after["metadata"].get("labels") == before["metadata"].get("labels")


def test_the_operator_switches_every_reference_and_marks_the_workload_then_reverts_and_unmarks(
    kube: Kube, namespace: str, as_operator: Kube, consumer: str
) -> None:
    # What a rotation's switch patch does (plan.PatchWorkload as a JSON patch): test and replace each reference,
    # add the mark.
    switches = [
        (f"{POD}/serviceAccountName", "app", "app-v1"),
        (f"{POD}/serviceAccount", "app", "app-v1"),
        (f"{POD}/imagePullSecrets/0/name", "regcred", "regcred-v1"),
        (f"{POD}/initContainers/0/envFrom/0/secretRef/name", "db", "db-v1"),
        (f"{APP}/env/0/valueFrom/secretKeyRef/name", "db", "db-v1"),
        (f"{APP}/envFrom/0/secretRef/name", "db", "db-v1"),
        (f"{POD}/volumes/0/secret/secretName", "db", "db-v1"),
        (f"{POD}/volumes/1/projected/sources/0/secret/name", "db", "db-v1"),
    ]

    def send(pairs: list[tuple[str, str, str]], **mark: str) -> Obj:
        for _ in range(20):  # as the engine does: a failed test (its controller annotated it since the read) re-plans
            live = raw(kube.apps.read_namespaced_deployment, consumer, namespace)["metadata"]
            changes = tuple(Change(path, old, new) for path, old, new in pairs)
            action = PatchWorkload("Deployment", consumer, changes, annotated=bool(live.get("annotations")),
                                   resource_version=live["resourceVersion"], **mark)  # fmt: skip
            assert not action.by_apply, "no object judged: a JSON patch"
            try:
                answer: Obj = raw(as_operator.apps.patch_namespaced_deployment, consumer, namespace,
                                  action.operations(), _content_type=JSON_PATCH)  # fmt: skip
                return answer
            except ApiException as error:
                if error.status != 422 or "ValidatingAdmissionPolicy" in (error.body or ""):
                    raise
                time.sleep(0.2)
        raise AssertionError("every patch failed its test")

    switched = send(switches, mark="{}")
    assert switched["spec"]["template"]["spec"]["serviceAccountName"] == "app-v1"
    assert switched["metadata"]["annotations"][SWITCH_MARK] == "{}"
    send([(path, new, old) for path, old, new in switches])  # the rollback
    unmarked = send([], unmark="{}")
    assert unmarked["spec"]["template"]["spec"]["serviceAccountName"] == "app"
    assert SWITCH_MARK not in (unmarked["metadata"].get("annotations") or {})


def test_the_operators_server_side_apply_switches_reverts_and_unmarks_and_may_not_change_anything_else(
    kube: Kube, namespace: str, as_operator: Kube, consumer: str
) -> None:
    # What a rotation sends (plan.PatchWorkload by apply, through the shell): keyed references and atomic lists.
    cluster = Cluster(as_operator.api)
    switches = (
        Change(f"{POD}/initContainers/0/envFrom/0/secretRef/name", "db", "db-v1"),
        Change(f"{APP}/env/0/valueFrom/secretKeyRef/name", "db", "db-v1"),
        Change(f"{APP}/envFrom/0/secretRef/name", "db", "db-v1"),
        Change(f"{POD}/volumes/0/secret/secretName", "db", "db-v1"),
        Change(f"{POD}/volumes/1/projected/sources/0/secret/name", "db", "db-v1"),
        Change(f"{POD}/serviceAccountName", "app", "app-v1"),
        Change(f"{POD}/serviceAccount", "app", "app-v1"),
    )

    def send(changes: tuple[Change, ...], **mark: str) -> Obj:
        for _ in range(20):  # as the engine does: a 409 (its controller wrote status since the read) re-plans
            live = {**raw(kube.apps.read_namespaced_deployment, consumer, namespace), "kind": "Deployment"}
            action = PatchWorkload("Deployment", consumer, changes, workload=live, **mark)
            assert action.by_apply
            try:
                performed = cluster.perform(namespace, "ci", action)
            except StepConflict:
                time.sleep(0.2)
                continue
            assert performed is not None
            return performed[1]
        raise AssertionError("every apply answered 409")

    switched = send(switches, mark="{}")
    assert all(value_at(switched, c.path) == c.new for c in switches)
    assert switched["metadata"]["annotations"][SWITCH_MARK] == "{}"
    [owner] = [e for e in switched["metadata"]["managedFields"] if e["manager"] == "secretrotation"]
    assert owner["operation"] == "Apply", owner
    reverted = send(tuple(c.reversed() for c in switches))
    assert all(value_at(reverted, c.path) == c.old for c in switches), "the rollback"
    unmarked = send((), unmark="{}")
    assert all(value_at(unmarked, c.path) == c.old for c in switches), "the references stay as they are"
    assert SWITCH_MARK not in (unmarked["metadata"].get("annotations") or {})

    # The same apply with anything beyond references in it is refused, as the JSON patch is. (It sends
    # every field the operator owns: an apply that left them out would remove them.)
    live = raw(kube.apps.read_namespaced_deployment, consumer, namespace)
    image = PatchWorkload("Deployment", consumer, (), workload={**live, "kind": "Deployment"}).apply_configuration()
    del image["metadata"]["resourceVersion"]  # the policy, not a 409, must answer
    [app] = [c for c in image["spec"]["template"]["spec"]["containers"] if c["name"] == "app"]
    app["image"] = "evil:1"
    message = refusal(lambda: as_operator.apps.patch_namespaced_deployment(
        consumer, namespace, image, _content_type=APPLY_PATCH, field_manager="secretrotation", force=True
    ))  # fmt: skip
    assert "changed: app (image)" in message, message
    assert raw(kube.apps.read_namespaced_deployment, consumer, namespace)["spec"] == live["spec"]


def test_a_statefulset_and_a_daemonset_are_guarded_too(kube: Kube, namespace: str, as_operator: Kube) -> None:
    template = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [container()]}}
    spec = {"selector": {"matchLabels": {"app": "x"}}, "template": template}
    kube.apps.create_namespaced_stateful_set(
        namespace, {"metadata": {"name": "ledger"}, "spec": {**spec, "serviceName": "x"}}
    )
    kube.apps.create_namespaced_daemon_set(namespace, {"metadata": {"name": "agent"}, "spec": spec})
    image = [{"op": "replace", "path": f"{APP}/image", "value": "evil:1"}]
    host_pid = [{"op": "add", "path": f"{POD}/hostPID", "value": True}]

    assert "changed: app (image)" in refusal(lambda: as_operator.apps.patch_namespaced_stateful_set(
        "ledger", namespace, image, _content_type=JSON_PATCH))  # fmt: skip
    assert "changed: hostPID" in refusal(lambda: as_operator.apps.patch_namespaced_daemon_set(
        "agent", namespace, host_pid, _content_type=JSON_PATCH))  # fmt: skip


def test_the_policy_restrains_no_one_but_the_operator(kube: Kube, namespace: str, consumer: str) -> None:
    image = [{"op": "replace", "path": f"{APP}/image", "value": "registry.local/app:2"}]
    kube.apps.patch_namespaced_deployment(consumer, namespace, image, _content_type=JSON_PATCH)
    kube.core.create_namespaced_secret(namespace, secret("plain", {"k": "v"}))
    kube.core.delete_namespaced_secret("plain", namespace)
