"""The operator's reach: namespaced by default, cluster-wide only when opted in, never where excluded.

Each mode runs with the shipped grants: the RoleBinding per namespace (deploy/rbac-namespace.yaml,
as the ``operator`` fixture binds it), or the ClusterRoleBinding and exclusion policy of
deploy/operator-clusterwide.yaml. "Untouched" is shown after the operator has finished a rotation
it does watch, created after the untouched one.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

from kubetest import Kube, raw, secret
from kubetest.operator import GROUP, PLURAL, VERSION, OperatorProcess
from kubetest.reach import (
    EXCLUSION_POLICY_NAME,
    OPERATOR_NAMESPACE,
    acting_as_operator,
    bind_in_namespace,
    clusterwide,
    message_of,
    version_secret,
)
from kubetest.rotations import at_revision, consumer, create, db_rotation, secret_names, template_secrets, wait_rotation

pytestmark = pytest.mark.integration

NewNamespace = Callable[[str], str]


@pytest.fixture
def new_namespace(kube: Kube) -> Iterator[NewNamespace]:
    """Makes more namespaces for a test (``stem`` plus a random suffix); deletes them afterwards."""
    made: list[str] = []

    def make(stem: str) -> str:
        name = f"{stem}-{secrets.token_hex(3)}"
        kube.core.create_namespace({"metadata": {"name": name, "labels": {"secretrotation.dev/test": "true"}}})
        made.append(name)
        return name

    yield make
    for name in made:
        with contextlib.suppress(ApiException):
            kube.core.delete_namespace(name)


def a_rotation_of_a_consumed_secret(kube: Kube, namespace: str) -> None:
    """Secret ``db``, a Deployment ``api`` reading it, and the SecretRotation ``db`` of it."""
    kube.core.create_namespaced_secret(namespace, secret("db", {"username": "shop", "password": "initial"}))
    consumer(kube, namespace, "api", "db")
    create(kube, namespace, db_rotation())


def assert_untouched(kube: Kube, namespace: str) -> None:
    """The rotation in ``namespace`` has no status, and nothing was staged, switched or reported."""
    rotation = raw(kube.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, "db")
    assert "status" not in rotation, f"{namespace}: {rotation.get('status')}"
    assert secret_names(kube, namespace) == {"db"}, f"{namespace}: a version was staged"
    assert template_secrets(kube, namespace, "Deployment", "api") == {"db"}, f"{namespace}: api was switched"
    api = raw(kube.apps.read_namespaced_deployment, "api", namespace)
    assert not (api["metadata"].get("annotations") or {}).keys() & {f"{GROUP}/switched-by"}
    events = raw(kube.core.list_namespaced_event, namespace)["items"]
    reported = [e["reason"] for e in events if e.get("reportingComponent") == "secretrotation"]
    assert reported == [], f"{namespace}: the operator reported {reported}"


def test_a_namespaced_operator_acts_in_its_namespace_and_never_in_another_it_is_bound_in(
    kube: Kube, namespace: str, operator: OperatorProcess, new_namespace: NewNamespace
) -> None:
    # Bound like a watched namespace, but not listed: only the operator's scope keeps it out.
    unlisted = new_namespace("unlisted")
    bind_in_namespace(kube, unlisted)
    a_rotation_of_a_consumed_secret(kube, unlisted)

    a_rotation_of_a_consumed_secret(kube, namespace)
    wait_rotation(kube, namespace, "db", at_revision(1), "revision 1 Ready in the watched namespace")

    assert_untouched(kube, unlisted)
    assert f"Acting in namespaces {namespace}." in operator.logs()
    # Nothing outside its RoleBindings was asked for and refused (kopf lists no namespaces, watches no CRDs).
    assert "Forbidden" not in operator.logs() and "Not enough permissions" not in operator.logs()


@pytest.fixture
def as_operator(operator_kubeconfig: Path) -> Iterator[Kube]:
    operator = acting_as_operator(operator_kubeconfig)
    yield operator
    operator.api.close()


def test_a_cluster_wide_operator_acts_everywhere_but_in_excluded_namespaces(
    kube: Kube,
    namespace: str,
    operator_kubeconfig: Path,
    as_operator: Kube,
    new_namespace: NewNamespace,
    tmp_path: Path,
) -> None:
    excluded = new_namespace("excluded")  # --exclude-namespace
    own = new_namespace("own")  # the operator's own namespace, excluded by default
    exclusions = [excluded, own, "kube-system", OPERATOR_NAMESPACE]
    process = OperatorProcess(
        operator_kubeconfig, None, tmp_path / "operator.log",
        extra_args=["--all-namespaces", "--exclude-namespace", excluded], env={"POD_NAMESPACE": own},
    )  # fmt: skip
    with clusterwide(kube, as_operator, exclusions):
        process.start()
        try:
            for skipped in (excluded, own):
                a_rotation_of_a_consumed_secret(kube, skipped)
            # No RoleBinding here: the ClusterRoleBinding is the grant. One watch stream per kind
            # across namespaces: the rotations above reached the operator before this one.
            a_rotation_of_a_consumed_secret(kube, namespace)
            wait_rotation(kube, namespace, "db", at_revision(1), "revision 1 Ready in a namespace nobody listed")

            for skipped in (excluded, own):
                assert_untouched(kube, skipped)
            acting = f"Acting in every namespace except {', '.join(sorted([excluded, 'kube-system', own]))}."
            assert acting in process.logs()
        finally:
            process.stop()

        # And were it to try, the API server would refuse the operator's account any write there.
        with pytest.raises(ApiException) as raised:
            as_operator.core.create_namespaced_secret(excluded, version_secret("db", 1, rotation="db"))
        assert raised.value.status == 403, message_of(raised.value)
        assert f"'{EXCLUSION_POLICY_NAME}'" in message_of(raised.value)
        assert f"the operator does not act in namespace {excluded}" in message_of(raised.value)
        as_operator.core.create_namespaced_secret(namespace, version_secret("db", 9, rotation="db"))
