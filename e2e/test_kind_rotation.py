"""On a real kubelet and container runtime: a Secret rotated twice, and a broken version rolled back."""

from __future__ import annotations

import pytest

from kubetest import Kube, container, deployment, secret
from kubetest.operator import OperatorProcess
from kubetest.rotations import at_revision, create, db_rotation, request_rotation, template_secrets, wait_rotation

pytestmark = pytest.mark.integration
PAUSE = "registry.k8s.io/pause:3.9"


def test_a_deployment_is_rotated_twice_on_a_real_kubelet(kube: Kube, namespace: str, operator: OperatorProcess) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db", {"username": "shop", "password": "initial"}))
    env = [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]
    kube.apps.create_namespaced_deployment(
        namespace, deployment("api", {"containers": [container(image=PAUSE, env=env)]})
    )
    create(kube, namespace, db_rotation(verify={"timeout": "5m", "stableFor": "5s"}))

    wait_rotation(kube, namespace, "db", at_revision(1), "revision 1", timeout=300)
    request_rotation(kube, namespace, "db", "2")
    wait_rotation(kube, namespace, "db", at_revision(2), "revision 2", timeout=300)

    assert template_secrets(kube, namespace, "Deployment", "api") == {"db-v2"}
