"""On a real kubelet: a Deployment consuming a Secret starts, and the CRD is accepted."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubetest import Kube, condition, container, deployment, deployment_available, secret
from kubetest.operator import install_crd
from secretrotation.shell.kubejson import raw

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]


def test_a_workload_consuming_a_secret_becomes_available(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db", {"password": "e2e"}))
    env = [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]
    pod_spec = {"containers": [container(image="registry.k8s.io/pause:3.9", env=env)]}
    kube.apps.create_namespaced_deployment(namespace, deployment("api", pod_spec))

    kube.wait_one(kube.apps.list_namespaced_deployment, "api", deployment_available, namespace=namespace, timeout=180)


def test_the_crd_is_accepted(kube: Kube) -> None:
    # The operator fixture of an earlier test may have installed it already (409 AlreadyExists):
    # install_crd then replaces it with the file's version, so the API server still judges this file.
    install_crd(kube)

    crd = yaml.safe_load((REPO / "crds/secretrotation.yaml").read_text())
    current = raw(kube.extensions.read_custom_resource_definition, crd["metadata"]["name"])
    established = condition(current, "Established") or {}
    assert established.get("status") == "True", current.get("status")
    served = {v["name"] for v in current["spec"]["versions"] if v["served"]}
    assert served == {v["name"] for v in crd["spec"]["versions"] if v["served"]}, served
