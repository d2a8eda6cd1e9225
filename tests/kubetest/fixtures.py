"""Fixtures (a pytest plugin): one real control plane per test session, one fresh namespace per test.

Set ``SECRETROTATION_TEST_KUBECONFIG`` to reuse a running cluster (for example
``.cluster/kubeconfig`` after ``make cluster-up``) instead of starting one.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import config

from kubetest import Kube
from secretrotation.devcluster import binaries
from secretrotation.devcluster.controlplane import ControlPlane


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
    kube.wait_one(
        kube.core.list_namespaced_service_account,
        "default",
        lambda sa: bool(sa.get("secrets")),
        namespace=name,
        what="default ServiceAccount token",
        timeout=60,
    )
    yield name
    kube.core.delete_namespace(name)
