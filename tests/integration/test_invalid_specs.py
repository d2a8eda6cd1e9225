"""Bad input gets a clear error naming the field, and nothing is changed.

Each spec is rejected by the API server (the CRD schema) or, where the schema
cannot express the rule, reported by the operator as ``Stalled=True``,
reason ``InvalidSpec``, with the field named and nothing touched.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from kubetest import Kube, condition, container, deployment, raw, secret
from kubetest.operator import GROUP, PLURAL, VERSION, OperatorProcess, install_crd, rotation
from kubetest.rotations import secret_names, template_secrets, wait_rotation

pytestmark = pytest.mark.integration
GEN = [{"key": "password"}]

REJECTED_BY_THE_API_SERVER = [
    pytest.param({"generate": GEN}, "secretName", id="neither-secretName-nor-serviceAccount"),
    pytest.param({"secretName": "DB", "generate": GEN}, "secretName", id="secretName-not-dns-1123"),
    pytest.param({"secretName": "d" * 242, "generate": GEN}, "secretName", id="secretName-leaves-no-room-for-v-N"),
    pytest.param({"secretName": "db"}, "spec", id="neither-generate-nor-from"),
    pytest.param({"secretName": "db", "generate": GEN, "from": {"secretName": "x"}}, "spec", id="generate-and-from"),
    pytest.param({"secretName": "db", "generate": [{"key": "p", "length": 7}]}, "length", id="length-below-8"),
    pytest.param({"secretName": "db", "generate": [{"key": "p", "length": 1025}]}, "length", id="length-above-1024"),
    pytest.param({"secretName": "db", "generate": [{"key": "p", "alphabet": "emoji"}]}, "alphabet", id="alphabet-enum"),
    pytest.param({"secretName": "db", "generate": [{"key": "a/b"}]}, "key", id="key-pattern"),
    pytest.param({"secretName": "db", "generate": [{"key": "p"}, {"key": "p"}]}, "generate", id="duplicate-keys"),
    pytest.param(
        {"secretName": "db", "generate": [{"key": f"k{i}"} for i in range(65)]}, "generate", id="too-many-keys"
    ),
    pytest.param(
        {"secretName": "db", "generate": GEN, "type": "kubernetes.io/service-account-token"},
        "type",
        id="token-type-mints-credentials",
    ),
    pytest.param({"secretName": "db", "generate": GEN, "retain": 11}, "retain", id="retain-above-10"),
    pytest.param({"serviceAccount": {"name": "deployer"}, "secretName": "db"}, "spec", id="account-and-secret"),
    pytest.param({"serviceAccount": {"name": "deployer"}, "generate": GEN}, "spec", id="account-with-generate"),
    pytest.param({"serviceAccount": {"name": "deployer"}, "type": "Opaque"}, "spec", id="account-with-type"),
    pytest.param({"serviceAccount": {"name": "Deployer"}}, "serviceAccount.name", id="account-name-not-dns-1123"),
    pytest.param({"serviceAccount": {"name": "d" * 242}}, "serviceAccount.name", id="account-name-too-long"),
    pytest.param({"secretName": "db", "generate": GEN, "rotateEvery": "30d"}, "rotateEvery", id="duration-units"),
    pytest.param(
        {"secretName": "db", "generate": GEN, "targets": [{"kind": "Job", "name": "x"}]}, "kind", id="target-kind-enum"
    ),
    pytest.param(
        {"secretName": "db", "generate": GEN, "targets": [{"kind": "Deployment"}]},
        "targets",
        id="target-without-name-or-selector",
    ),
    pytest.param(
        {"secretName": "db", "generate": GEN, "targets": [{"kind": "Deployment", "name": f"d{i}"} for i in range(65)]},
        "targets",
        id="too-many-targets",
    ),
]

REPORTED_BY_THE_OPERATOR = [
    pytest.param(
        {"secretName": "db", "generate": GEN, "rotateEvery": "30s"}, "spec.rotateEvery", id="rotate-every-under-1m"
    ),
    pytest.param(
        {"secretName": "db", "generate": GEN, "verify": {"timeout": "30s", "stableFor": "30s"}},
        "spec.verify.stableFor",
        id="stable-for-not-shorter-than-timeout",
    ),
    pytest.param(
        {
            "secretName": "db",
            "generate": GEN,
            "targets": [{"kind": "Deployment", "name": "api"}, {"kind": "Deployment", "name": "api"}],
        },
        "spec.targets[1]",
        id="duplicate-targets",
    ),
    pytest.param({"secretName": "db", "from": {"secretName": "absent"}}, "spec.from.secretName", id="from-missing"),
    pytest.param({"secretName": "db", "from": {"secretName": "empty"}}, "spec.from.secretName", id="from-empty"),
    pytest.param({"secretName": "db", "from": {"secretName": "db"}}, "spec.from.secretName", id="from-itself"),
    pytest.param(
        {"serviceAccount": {"name": "deployer"}, "rotateEvery": "30s"},
        "spec.rotateEvery",
        id="account-rotate-every-under-1m",
    ),
]


def _workload_and_base(kube: Kube, namespace: str) -> int:
    kube.core.create_namespaced_secret(namespace, secret("db", {"password": "initial"}))
    kube.core.create_namespaced_secret(namespace, {"metadata": {"name": "empty"}})
    env = [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]
    kube.apps.create_namespaced_deployment(namespace, deployment("api", {"containers": [container(env=env)]}))
    generation: int = raw(kube.apps.read_namespaced_deployment, "api", namespace)["metadata"]["generation"]
    return generation


@pytest.mark.parametrize(("spec", "field"), REJECTED_BY_THE_API_SERVER)
def test_the_api_server_rejects(kube: Kube, namespace: str, spec: dict[str, Any], field: str) -> None:
    install_crd(kube)
    with pytest.raises(ApiException) as rejected:
        kube.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, rotation("bad", **spec))

    assert rejected.value.status == 422, rejected.value.body
    message = json.loads(rejected.value.body)["message"]
    assert field in message, f"the error should name {field!r}: {message}"


@pytest.mark.parametrize(("spec", "field"), REPORTED_BY_THE_OPERATOR)
def test_the_operator_reports_invalid_spec_and_touches_nothing(
    kube: Kube, namespace: str, operator: OperatorProcess, spec: dict[str, Any], field: str
) -> None:
    generation = _workload_and_base(kube, namespace)
    before = secret_names(kube, namespace)
    kube.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, rotation("db", **spec))

    stalled = wait_rotation(
        kube, namespace, "db",
        lambda r: (condition(r, "Stalled") or {}).get("reason") == "InvalidSpec", "Stalled InvalidSpec",
    )  # fmt: skip

    message = condition(stalled, "Stalled")["message"]
    assert field in message, f"the message should name {field!r}: {message}"
    assert condition(stalled, "Ready")["status"] == "False"
    assert secret_names(kube, namespace) == before, "no Secret was created or deleted"
    assert raw(kube.apps.read_namespaced_deployment, "api", namespace)["metadata"]["generation"] == generation
    assert template_secrets(kube, namespace, "Deployment", "api") == {"db"}
