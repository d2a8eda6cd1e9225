"""Fixtures (a pytest plugin): one real control plane per test session, one fresh namespace per test.

Set ``SECRETROTATION_TEST_KUBECONFIG`` to reuse a running cluster (for example
``.cluster/kubeconfig`` after ``make cluster-up``) instead of starting one.
"""

from __future__ import annotations

import base64
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

from kubetest import Kube
from kubetest.operator import OperatorProcess, apply_cluster_role, install_crd
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
    """A fresh namespace whose default ServiceAccount has its token, so pods are admitted at once."""
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{stem}-{secrets.token_hex(3)}"
    kube.core.create_namespace({"metadata": {"name": name, "labels": {"secretrotation.dev/test": "true"}}})
    # Before 1.24 the ServiceAccount admission plugin refuses pods until the account has its token.
    needs_token = kube.server_minor_version() < 24
    kube.wait_one(
        kube.core.list_namespaced_service_account,
        "default",
        lambda sa: bool(sa.get("secrets")) or not needs_token,
        namespace=name,
        what="default ServiceAccount (and its token)",
        timeout=60,
    )
    yield name
    with contextlib.suppress(ApiException):  # a test may have deleted it already
        kube.core.delete_namespace(name)


@pytest.fixture(scope="session")
def operator_kubeconfig(kube: Kube, kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kubeconfig for the operator's own ServiceAccount, bound only by deploy/rbac.yaml.

    Running the operator under the shipped RBAC in every test proves that RBAC is enough.
    """
    install_crd(kube)
    apply_cluster_role(kube)
    namespace = "secretrotation-system"
    with contextlib.suppress(ApiException):
        kube.core.create_namespace({"metadata": {"name": namespace}})
    with contextlib.suppress(ApiException):
        kube.core.create_namespaced_service_account(namespace, {"metadata": {"name": "secretrotation"}})
    # An explicit long-lived token: clusters from 1.24 on no longer create one per account.
    with contextlib.suppress(ApiException):
        kube.core.create_namespaced_secret(namespace, {
            "metadata": {"name": "secretrotation-token",
                         "annotations": {"kubernetes.io/service-account.name": "secretrotation"}},
            "type": "kubernetes.io/service-account-token",
        })  # fmt: skip
    token_secret = kube.wait_one(
        kube.core.list_namespaced_secret, "secretrotation-token", lambda s: "token" in (s.get("data") or {}),
        namespace=namespace, what="the operator's token",
    )  # fmt: skip
    token = base64.b64decode(token_secret["data"]["token"]).decode()
    admin = yaml.safe_load(kubeconfig.read_text())
    admin["users"] = [{"name": "admin", "user": {"token": token}}]
    path = tmp_path_factory.mktemp("operator") / "kubeconfig"
    path.write_text(yaml.safe_dump(admin))
    return path


@pytest.fixture
def operator(kube: Kube, namespace: str, operator_kubeconfig: Path, tmp_path: Path) -> Iterator[OperatorProcess]:
    """The operator, watching this test's namespace, as its ServiceAccount."""
    kube.rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "secretrotation"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "secretrotation"},
            "subjects": [{"kind": "ServiceAccount", "name": "secretrotation", "namespace": "secretrotation-system"}],
        },
    )
    process = OperatorProcess(operator_kubeconfig, namespace, tmp_path / "operator.log")
    process.start()
    yield process
    process.stop()
