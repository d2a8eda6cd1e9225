"""Fixtures (a pytest plugin): one real control plane per test session, one fresh namespace per test.

Set ``SECRETROTATION_TEST_KUBECONFIG`` to reuse a running cluster (for example
``.cluster/kubeconfig`` after ``make cluster-up``) instead of starting one.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import config
from kubernetes.client.exceptions import ApiException

from kubetest import Kube, raw
from kubetest.operator import OperatorProcess, apply_cluster_role, install_crd
from kubetest.reach import acting_as_operator, bind_in_namespace, install_operator_policy
from secretrotation_dev.devcluster import binaries
from secretrotation_dev.devcluster.controlplane import ControlPlane


@pytest.fixture(scope="session")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    existing = os.environ.get("SECRETROTATION_TEST_KUBECONFIG")
    if existing:
        yield Path(existing)
        return
    plane = ControlPlane(tmp_path_factory.mktemp("cluster"), binaries.find(), die_with_parent=True)
    plane.start()
    try:
        yield plane.kubeconfig
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def kube(kubeconfig: Path) -> Kube:
    return Kube(config.new_client_from_config(config_file=str(kubeconfig)))


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace whose default ServiceAccount exists, so pods are admitted at once."""
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{stem}-{secrets.token_hex(3)}"
    kube.core.create_namespace({"metadata": {"name": name, "labels": {"secretrotation.dev/test": "true"}}})
    # The ServiceAccount admission plugin refuses pods until the account exists.
    kube.wait_one(
        kube.core.list_namespaced_service_account, "default", lambda _: True, namespace=name,
        what="default ServiceAccount", timeout=60,
    )  # fmt: skip
    yield name
    with contextlib.suppress(ApiException):  # a test may have deleted it already
        kube.core.delete_namespace(name)


@pytest.fixture(scope="session")
def operator_kubeconfig(kube: Kube, kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kubeconfig for the operator's own ServiceAccount, bound only by deploy/rbac.yaml, and
    restrained by deploy/policy-operator.yaml (installed and enforced before this returns).

    Running the operator under the shipped RBAC and policy in every test proves that the RBAC
    is enough and that the policy refuses nothing a rotation does.
    """
    install_crd(kube)
    apply_cluster_role(kube)
    namespace = "secretrotation-system"
    with contextlib.suppress(ApiException):
        kube.core.create_namespace({"metadata": {"name": namespace}})
    with contextlib.suppress(ApiException):
        kube.core.create_namespaced_service_account(namespace, {"metadata": {"name": "secretrotation"}})
    # A bound token from the TokenRequest API, as a pod of the operator gets one.
    request = {"spec": {"expirationSeconds": 4 * 3600}}
    granted = raw(kube.core.create_namespaced_service_account_token, "secretrotation", namespace, request)
    token = granted["status"]["token"]
    admin = yaml.safe_load(kubeconfig.read_text())
    admin["users"] = [{"name": "admin", "user": {"token": token}}]
    path = tmp_path_factory.mktemp("operator") / "kubeconfig"
    path.write_text(yaml.safe_dump(admin))
    operator = acting_as_operator(path)
    try:
        install_operator_policy(kube, operator)
    finally:
        operator.api.close()
    return path


@pytest.fixture
def operator(kube: Kube, namespace: str, operator_kubeconfig: Path, tmp_path: Path) -> Iterator[OperatorProcess]:
    """The operator, watching this test's namespace, as its ServiceAccount (bound by deploy/rbac-namespace.yaml)."""
    bind_in_namespace(kube, namespace)
    process = OperatorProcess(operator_kubeconfig, namespace, tmp_path / "operator.log")
    process.start()
    yield process
    process.stop()
