"""Bad input gets a clear error naming the field, and nothing is changed.

Each spec is refused by the API server (the CRD schema and its CEL rules) with
the field named by its full path, or, where no rule can see the problem,
reported by the operator as ``Stalled=True``, reason ``InvalidSpec``, with the
field named and nothing touched.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from kubetest import Kube, condition, container, deployment, raw, secret
from kubetest.operator import GROUP, PLURAL, VERSION, OperatorProcess, install_crd, rotation
from kubetest.rotations import secret_names, template_secrets, wait_rotation
from secretrotation.core import names

pytestmark = pytest.mark.integration
GEN = [{"key": "password"}]
NAMED = [{"kind": "Deployment", "name": "api"}]


def _selector(**selector: Any) -> dict[str, Any]:
    return {"secretName": "db", "generate": GEN, "targets": [{"kind": "Deployment", "selector": selector}]}


# (spec, the path the refusal names). The API server writes each error as "<path>: <problem>".
REJECTED_BY_THE_API_SERVER = [
    # Which credential, and how its versions are filled.
    pytest.param({"generate": GEN}, "spec.secretName", id="neither-secretName-nor-serviceAccount"),
    pytest.param({"secretName": "db"}, "spec", id="neither-generate-nor-from"),
    pytest.param(
        {"secretName": "db", "generate": GEN, "from": {"secretName": "x"}}, "spec.from", id="generate-and-from"
    ),
    pytest.param(
        {"serviceAccount": {"name": "deployer"}, "secretName": "db"}, "spec.secretName", id="account-and-secret"
    ),
    pytest.param(
        {"serviceAccount": {"name": "deployer"}, "generate": GEN}, "spec.generate", id="account-with-generate"
    ),
    pytest.param(
        {"serviceAccount": {"name": "deployer"}, "from": {"secretName": "x"}}, "spec.from", id="account-with-from"
    ),
    pytest.param({"serviceAccount": {"name": "deployer"}, "type": "Opaque"}, "spec.type", id="account-with-type"),
    # Names.
    pytest.param({"secretName": "DB", "generate": GEN}, "spec.secretName", id="secretName-not-dns-1123"),
    pytest.param({"secretName": "d" * 242, "generate": GEN}, "spec.secretName", id="secretName-leaves-no-room-for-v-N"),
    pytest.param({"secretName": "db-v1", "generate": GEN}, "spec.secretName", id="secretName-looks-like-a-version"),
    pytest.param({"serviceAccount": {"name": "Deployer"}}, "spec.serviceAccount.name", id="account-name-not-dns-1123"),
    pytest.param({"serviceAccount": {"name": "d" * 242}}, "spec.serviceAccount.name", id="account-name-too-long"),
    pytest.param(
        {"serviceAccount": {"name": "deployer-v2"}}, "spec.serviceAccount.name", id="account-name-looks-like-a-version"
    ),
    pytest.param({"secretName": "db", "from": {"secretName": "db"}}, "spec.from.secretName", id="from-itself"),
    pytest.param(
        {"secretName": "db", "from": {"secretName": "db-v3"}}, "spec.from.secretName", id="from-its-own-version"
    ),
    # Secret types and generate entries.
    pytest.param(
        {"secretName": "db", "generate": GEN, "type": "kubernetes.io/service-account-token"},
        "spec.type",
        id="token-type-mints-credentials",
    ),
    pytest.param(
        {"secretName": "db", "generate": [{"key": "tls.crt"}], "type": "kubernetes.io/tls"},
        "spec.generate",
        id="tls-without-key",
    ),
    pytest.param(
        {"secretName": "db", "generate": [{"key": ".dockerconfigjson"}], "type": "kubernetes.io/dockerconfigjson"},
        "spec.generate",
        id="docker-config-random",
    ),
    pytest.param(
        {"secretName": "db", "generate": [{"key": "p", "length": 7}]}, "spec.generate[0].length", id="length-below-8"
    ),
    pytest.param(
        {"secretName": "db", "generate": [{"key": "p", "length": 1025}]},
        "spec.generate[0].length",
        id="length-above-1024",
    ),
    pytest.param(
        {"secretName": "db", "generate": [{"key": "p", "alphabet": "emoji"}]},
        "spec.generate[0].alphabet",
        id="alphabet-enum",
    ),
    pytest.param({"secretName": "db", "generate": [{"key": "a/b"}]}, "spec.generate[0].key", id="key-pattern"),
    pytest.param(
        {"secretName": "db", "generate": [{"key": "user", "value": "shop", "length": 8}]},
        "spec.generate[0]",
        id="value-with-length",
    ),
    pytest.param(
        {"secretName": "db", "generate": [{"key": "user", "value": "shop", "alphabet": "hex"}]},
        "spec.generate[0]",
        id="value-with-alphabet",
    ),
    pytest.param(
        {"secretName": "db", "generate": [{"key": "p"}, {"key": "p"}]}, "spec.generate[1]", id="duplicate-keys"
    ),
    pytest.param(
        {"secretName": "db", "generate": [{"key": f"k{i}"} for i in range(65)]}, "spec.generate", id="too-many-keys"
    ),
    # Targets.
    pytest.param(
        {"secretName": "db", "generate": GEN, "targets": [{"kind": "Job", "name": "x"}]},
        "spec.targets[0].kind",
        id="target-kind-enum",
    ),
    pytest.param(
        {"secretName": "db", "generate": GEN, "targets": [{"kind": "Deployment"}]},
        "spec.targets[0]",
        id="target-without-name-or-selector",
    ),
    pytest.param(
        {
            "secretName": "db",
            "generate": GEN,
            "targets": [{"kind": "Deployment", "name": "api", "selector": {"matchLabels": {"app": "api"}}}],
        },
        "spec.targets[0]",
        id="target-with-name-and-selector",
    ),
    pytest.param({"secretName": "db", "generate": GEN, "targets": NAMED * 2}, "spec.targets", id="duplicate-targets"),
    pytest.param(
        {"secretName": "db", "generate": GEN, "targets": [{"kind": "Deployment", "name": f"d{i}"} for i in range(65)]},
        "spec.targets",
        id="too-many-targets",
    ),
    pytest.param(_selector(matchLabels={}), "spec.targets[0].selector", id="selector-with-nothing-in-it"),
    pytest.param(
        _selector(matchExpressions=[{"key": "tier", "operator": "In"}]),
        "spec.targets[0].selector.matchExpressions[0].values",
        id="in-without-values",
    ),
    pytest.param(
        _selector(matchExpressions=[{"key": "tier", "operator": "Exists", "values": ["db"]}]),
        "spec.targets[0].selector.matchExpressions[0].values",
        id="exists-with-values",
    ),
    pytest.param(
        _selector(matchExpressions=[{"key": "example.com/" + "n" * 64, "operator": "Exists"}]),
        "spec.targets[0].selector.matchExpressions[0].key",
        id="expression-key-name-above-63",
    ),
    # Schedule, verification, retention.
    pytest.param({"secretName": "db", "generate": GEN, "rotateEvery": "30d"}, "spec.rotateEvery", id="duration-units"),
    pytest.param(
        {"secretName": "db", "generate": GEN, "rotateEvery": "30s"}, "spec.rotateEvery", id="rotate-every-under-1m"
    ),
    pytest.param(
        {"serviceAccount": {"name": "deployer"}, "rotateEvery": "8761h"},
        "spec.rotateEvery",
        id="account-rotate-every-above-8760h",
    ),
    pytest.param(
        {"secretName": "db", "generate": GEN, "verify": {"timeout": "9s", "stableFor": "0s"}},
        "spec.verify.timeout",
        id="timeout-under-10s",
    ),
    pytest.param(
        {"secretName": "db", "generate": GEN, "verify": {"timeout": "24h", "stableFor": "61m"}},
        "spec.verify.stableFor",
        id="stable-for-above-1h",
    ),
    pytest.param(
        {"secretName": "db", "generate": GEN, "verify": {"timeout": "30s", "stableFor": "30s"}},
        "spec.verify.stableFor",
        id="stable-for-not-shorter-than-timeout",
    ),
    pytest.param({"secretName": "db", "generate": GEN, "retain": 11}, "spec.retain", id="retain-above-10"),
]

# What no rule can see: other objects, JSON, keys of a map, selectors equal only once normalised.
REPORTED_BY_THE_OPERATOR = [
    pytest.param({"secretName": "db", "from": {"secretName": "absent"}}, "spec.from.secretName", id="from-missing"),
    pytest.param({"secretName": "db", "from": {"secretName": "empty"}}, "spec.from.secretName", id="from-empty"),
    pytest.param(
        {"secretName": "db", "from": {"secretName": "default-token"}}, "never copied", id="from-a-token-secret"
    ),
    pytest.param(
        {"secretName": "db", "from": {"secretName": "other-copy"}}, "version staged by", id="from-another-version"
    ),
    pytest.param(
        {
            "secretName": "db",
            "type": "kubernetes.io/dockerconfigjson",
            "generate": [{"key": ".dockerconfigjson", "value": "[1]"}],
        },
        "spec.generate[0].value",
        id="docker-config-not-a-json-object",
    ),
    pytest.param(
        _selector(matchLabels={"example.com/" + "n" * 64: "api"}),
        "spec.targets[0].selector.matchLabels",
        id="match-labels-key-name-above-63",
    ),
    pytest.param(
        {
            "secretName": "db",
            "generate": GEN,
            "targets": [
                {"kind": "Deployment", "selector": {"matchLabels": {"app": "api"}}},
                {"kind": "Deployment", "selector": {"matchLabels": {"app": "api"}, "matchExpressions": []}},
            ],
        },
        "spec.targets[1]",
        id="duplicate-selector-written-differently",
    ),
]


def _workload_and_base(kube: Kube, namespace: str) -> int:
    kube.core.create_namespaced_secret(namespace, secret("db", {"password": "initial"}))
    kube.core.create_namespaced_secret(namespace, {"metadata": {"name": "empty"}})
    kube.core.create_namespaced_secret(namespace, {
        "metadata": {"name": "default-token", "annotations": {"kubernetes.io/service-account.name": "default"}},
        "type": "kubernetes.io/service-account-token",
    })  # fmt: skip
    kube.wait_one(kube.core.list_namespaced_secret, "default-token", lambda s: "token" in (s.get("data") or {}),
                  namespace=namespace, what="the token controller to fill default-token")  # fmt: skip
    copied = secret("other-copy", {"password": "x"})
    copied["metadata"]["labels"] = names.version_labels("other", 3)
    kube.core.create_namespaced_secret(namespace, copied)
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
    assert f"{field}: " in message, f"the error should name {field!r}: {message}"


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
