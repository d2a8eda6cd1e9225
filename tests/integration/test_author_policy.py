"""Who may rotate what: deploy/policy-authors.yaml admits a SecretRotation only if its author
could do by hand what the rotation makes the operator do, and deploy/rbac-user-roles.yaml
lets a namespace's editors author SecretRotations and its viewers read them.

Every request here is made by an impersonated user on the real API server, with RBAC and the
admission policy as a cluster runs them; the admin (system:masters) only sets the scene.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from kubetest import Kube, raw, secret
from kubetest.operator import GROUP, PLURAL, VERSION, OperatorProcess, install_crd, rotation
from kubetest.policies import (
    allowed,
    bind_cluster_role,
    grant,
    group_subject,
    impersonating,
    install_policies,
    message_of,
    rule,
    uninstall_policies,
    user_subject,
    wait_aggregated,
    wait_allowed,
)
from kubetest.rotations import FAST_VERIFY, at_revision, consumer, create, template_secrets, wait_rotation

pytestmark = pytest.mark.integration
Obj = dict[str, Any]
AsUser = Callable[..., Kube]
RULE = "a SecretRotation may only rotate what its author could rotate by hand"
GENERATE = [{"key": "password", "length": 24}]
NAMED_API = [{"kind": "Deployment", "name": "api"}]


@pytest.fixture(scope="module", autouse=True)
def policies(kube: Kube) -> Iterator[None]:
    install_crd(kube)
    install_policies(kube)
    yield
    uninstall_policies(kube)


@pytest.fixture
def as_user(kube: Kube) -> Iterator[AsUser]:
    """``as_user(name, group=None)``: a client impersonating that user, closed after the test."""
    clients: list[Kube] = []

    def make(user: str, group: str | None = None) -> Kube:
        clients.append(impersonating(kube, user, group))
        return clients[-1]

    yield make
    for made in clients:
        made.api.close()


def refusal(kube: Kube, namespace: str, body: Obj) -> ApiException:
    with pytest.raises(ApiException) as refused:
        create(kube, namespace, body)
    return refused.value


def exists(kube: Kube, namespace: str, name: str) -> bool:
    try:
        kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def editor(kube: Kube, namespace: str, as_user: AsUser) -> Kube:
    """Erin, of group shop-editors, which holds the built-in ``edit`` role in the namespace."""
    wait_aggregated(kube, "edit", "create")
    bind_cluster_role(kube, namespace, group_subject("shop-editors"), "edit")
    wait_allowed(kube, "erin", namespace, "create", GROUP, PLURAL, groups=["shop-editors"])
    erin: Kube = as_user("erin", "shop-editors")
    return erin


def test_an_editor_rotates_a_secret_and_the_operator_completes_it(
    kube: Kube, namespace: str, operator: OperatorProcess, as_user: AsUser
) -> None:
    operator_account = "system:serviceaccount:secretrotation-system:secretrotation"
    groups = ["system:serviceaccounts", "system:serviceaccounts:secretrotation-system"]
    assert not allowed(kube, operator_account, namespace, "update", "", "secrets", name="db", groups=groups), (
        "had the policy checked the operator's status writes, it would refuse every one"
    )
    kube.core.create_namespaced_secret(namespace, secret("db", {"password": "initial"}))
    consumer(kube, namespace, "api", "db")
    erin = editor(kube, namespace, as_user)

    create(erin, namespace, rotation("db", secretName="db", generate=GENERATE, verify=FAST_VERIFY))

    done = wait_rotation(kube, namespace, "db", at_revision(1), "revision 1 Ready")
    assert done["status"]["currentSecret"] == "db-v1"
    assert template_secrets(kube, namespace, "Deployment", "api") == {"db-v1"}


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({"serviceAccount": {"name": "deployer", "tokenSecret": True},
                      "targets": [{"kind": "StatefulSet", "selector": {"matchLabels": {"app": "worker"}}}]},
                     id="account-with-token-secret-and-selector"),
        pytest.param({"secretName": "db", "from": {"secretName": "upstream"},
                      "targets": [*NAMED_API, {"kind": "DaemonSet", "name": "agent"}]},
                     id="from-with-named-targets"),
    ],
)  # fmt: skip
def test_an_editor_may_author_every_kind_of_rotation(kube: Kube, namespace: str, as_user: AsUser, spec: Obj) -> None:
    erin = editor(kube, namespace, as_user)

    create(erin, namespace, rotation("r", **spec))

    assert exists(kube, namespace, "r")


@dataclasses.dataclass(frozen=True)
class Case:
    """A rotation, what its author holds besides secretrotation-edit, and the one right missing."""

    spec: Obj
    holds: list[Obj]
    missing: Obj
    refusal: str  # "{ns}" stands for the namespace


def case(name: str, spec: Obj, holds: list[Obj], missing: Obj, refusal: str) -> Any:
    return pytest.param(Case(spec, holds, missing, refusal), id=name)


UPDATE_DB, CREATE_SECRETS = rule(["update"], "secrets", names=["db"]), rule(["create"], "secrets")
TOKEN = rule(["create"], "serviceaccounts/token", names=["deployer"])
UPDATE_ACCOUNT = rule(["update"], "serviceaccounts", names=["deployer"])
CREATE_ACCOUNTS = rule(["create"], "serviceaccounts")
PATCH_API = rule(["patch"], "deployments", "apps", names=["api"])


def patch_all(resource: str) -> Obj:
    return rule(["patch"], resource, "apps")


DB = {"secretName": "db", "generate": GENERATE}
ACCOUNT = {"name": "deployer"}
TWO_STATEFUL_SETS = [{"kind": "StatefulSet", "name": "ledger"}, {"kind": "StatefulSet", "name": "vault"}]
THREE_DAEMON_SETS = [{"kind": "DaemonSet", "name": n} for n in ("a", "b", "c")]
WEB_SELECTOR = [{"kind": "Deployment", "selector": {"matchLabels": {"tier": "web"}}}]

CASES = [
    case("base-secret-update", {**DB, "targets": NAMED_API}, [CREATE_SECRETS, PATCH_API], UPDATE_DB,
         "spec.secretName: you may not update Secret db in namespace {ns}"),
    case("base-secret-create", {**DB, "targets": NAMED_API}, [UPDATE_DB, PATCH_API], CREATE_SECRETS,
         "spec.secretName: you may not create Secrets in namespace {ns} (the rotation creates db-v<N>)"),
    case("from", {"secretName": "db", "from": {"secretName": "upstream"}, "targets": NAMED_API},
         [UPDATE_DB, CREATE_SECRETS, PATCH_API], rule(["get"], "secrets", names=["upstream"]),
         "spec.from.secretName: you may not get Secret upstream in namespace {ns}"),
    case("account-token", {"serviceAccount": ACCOUNT, "targets": NAMED_API},
         [UPDATE_ACCOUNT, CREATE_ACCOUNTS, PATCH_API], TOKEN,
         "spec.serviceAccount.name: you may not create serviceaccounts/token for ServiceAccount deployer "
         "in namespace {ns}"),
    case("account-update", {"serviceAccount": ACCOUNT, "targets": NAMED_API},
         [TOKEN, CREATE_ACCOUNTS, PATCH_API], UPDATE_ACCOUNT,
         "spec.serviceAccount.name: you may not update ServiceAccount deployer in namespace {ns}"),
    case("account-create", {"serviceAccount": ACCOUNT, "targets": NAMED_API},
         [TOKEN, UPDATE_ACCOUNT, PATCH_API], CREATE_ACCOUNTS,
         "spec.serviceAccount.name: you may not create ServiceAccounts in namespace {ns}"),
    case("account-token-secret", {"serviceAccount": {**ACCOUNT, "tokenSecret": True}, "targets": NAMED_API},
         [TOKEN, UPDATE_ACCOUNT, CREATE_ACCOUNTS, PATCH_API], CREATE_SECRETS,
         "spec.serviceAccount.tokenSecret: you may not create Secrets in namespace {ns}"),
    case("named-targets", {**DB, "targets": TWO_STATEFUL_SETS},
         [UPDATE_DB, CREATE_SECRETS, rule(["patch"], "statefulsets", "apps", names=["ledger"])],
         rule(["patch"], "statefulsets", "apps", names=["vault"]),
         "spec.targets[].name: you may not patch both StatefulSet ledger and StatefulSet vault in namespace {ns}"),
    case("selector-target", {**DB, "targets": WEB_SELECTOR}, [UPDATE_DB, CREATE_SECRETS, PATCH_API],
         patch_all("deployments"), "spec.targets[].selector: you may not patch Deployments in namespace {ns}"),
    case("auto-discovery", DB, [UPDATE_DB, CREATE_SECRETS, patch_all("deployments"), patch_all("statefulsets")],
         patch_all("daemonsets"), "spec.targets: you may not patch DaemonSets in namespace {ns} (without spec.targets"),
    case("three-named-targets", {**DB, "targets": THREE_DAEMON_SETS},
         [UPDATE_DB, CREATE_SECRETS, rule(["patch"], "daemonsets", "apps", names=["a", "b", "c"])],
         patch_all("daemonsets"),
         "spec.targets[].name: you may not patch DaemonSets in namespace {ns}, "
         "and named DaemonSets are checked one by one only up to 2 (this rotation names 3)"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_an_author_missing_one_right_is_refused_and_admitted_once_granted_it(
    kube: Kube, namespace: str, as_user: AsUser, case: Case
) -> None:
    bind_cluster_role(kube, namespace, user_subject("mallory"), "secretrotation-edit")
    wait_allowed(kube, "mallory", namespace, "create", GROUP, PLURAL)
    grant(kube, namespace, "mallory", "holds", case.holds)
    mallory = as_user("mallory")
    body = rotation("r", **case.spec)

    refused = refusal(mallory, namespace, body)

    assert refused.status == 403, refused.body
    assert case.refusal.format(ns=namespace) in message_of(refused)
    assert message_of(refused).endswith(RULE)
    assert not exists(kube, namespace, "r"), "a refused SecretRotation is never stored"

    grant(kube, namespace, "mallory", "missing", [case.missing])
    create(mallory, namespace, body)
    assert exists(kube, namespace, "r"), "the rights the rotation uses, and nothing more, are enough"


ONLY_AUTHORING: dict[str, Obj] = {
    "base-secret": {**DB, "targets": NAMED_API},
    "from": {"secretName": "db", "from": {"secretName": "upstream"}, "targets": NAMED_API},
    "account": {"serviceAccount": ACCOUNT, "targets": NAMED_API},
    "account-token-secret": {"serviceAccount": {**ACCOUNT, "tokenSecret": True}, "targets": NAMED_API},
    "named-target": {**DB, "targets": NAMED_API},
    "selector-target": {**DB, "targets": WEB_SELECTOR},
    "auto-discovery": DB,
}


def test_an_author_who_may_only_create_secret_rotations_is_refused_every_one(
    kube: Kube, namespace: str, as_user: AsUser
) -> None:
    bind_cluster_role(kube, namespace, user_subject("mallory"), "secretrotation-edit")
    wait_allowed(kube, "mallory", namespace, "create", GROUP, PLURAL)
    mallory = as_user("mallory")

    for name, spec in ONLY_AUTHORING.items():
        refused = refusal(mallory, namespace, rotation(name, **spec))

        assert refused.status == 403, (name, refused.body)
        message = message_of(refused)
        assert re.search(r"denied request: spec\.[a-zA-Z.\[\]]+: you may not \w+ ", message), (name, message)
        assert message.endswith(RULE), (name, message)
        assert not exists(kube, namespace, name), name


def test_requesting_a_rotation_needs_the_rights_and_labels_and_status_do_not(
    kube: Kube, namespace: str, as_user: AsUser
) -> None:
    create(kube, namespace, rotation("db", **DB, targets=NAMED_API))
    bind_cluster_role(kube, namespace, user_subject("mallory"), "secretrotation-edit")
    wait_allowed(kube, "mallory", namespace, "patch", GROUP, PLURAL)
    mallory = as_user("mallory")
    patch = mallory.custom.patch_namespaced_custom_object

    for change in ({"metadata": {"annotations": {"rotation.sre.dev/requested-at": "now"}}}, {"spec": {"retain": 2}}):
        with pytest.raises(ApiException) as refused:
            patch(GROUP, VERSION, namespace, PLURAL, "db", change)
        assert refused.value.status == 403
        assert f"spec.secretName: you may not update Secret db in namespace {namespace}" in message_of(refused.value)
    stored = raw(kube.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, "db")
    assert "annotations" not in stored["metadata"] and stored["spec"]["retain"] == 1

    patch(GROUP, VERSION, namespace, PLURAL, "db", {"metadata": {"labels": {"team": "shop"}}})

    # Status is the operator's: whoever may write it is not asked about Secrets or workloads.
    grant(kube, namespace, "status-writer", "status", [rule(["patch"], f"{PLURAL}/status", GROUP)])
    writer = as_user("status-writer")
    writer.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "db", {"status": {"phase": "Idle"}}
    )
    assert raw(kube.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, "db")["status"] == {
        "phase": "Idle"
    }


def test_viewers_read_secret_rotations_and_may_not_create_them(kube: Kube, namespace: str, as_user: AsUser) -> None:
    create(kube, namespace, rotation("db", **DB))
    wait_aggregated(kube, "view", "list")
    bind_cluster_role(kube, namespace, user_subject("vera"), "view")
    wait_allowed(kube, "vera", namespace, "list", GROUP, PLURAL)
    vera = as_user("vera")

    listed = raw(vera.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL)

    assert [r["metadata"]["name"] for r in listed["items"]] == ["db"]
    refused = refusal(vera, namespace, rotation("mine", **DB))
    assert refused.status == 403
    assert f'User "vera" cannot create resource "{PLURAL}"' in message_of(refused), "RBAC, not the policy, says no"
