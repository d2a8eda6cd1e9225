"""Ownership that cannot be forged, names that are never used twice, and refusals that say what refused.

Each case is one of the hardening measurements: a re-created SecretRotation must not take over
the versions of the one before it, a name is never staged twice, one rotation cannot hijack
another's version, and a create the API server rejects for good stalls with its reason.
"""

from __future__ import annotations

import base64

import pytest

from kubetest import Kube, condition, raw, secret
from kubetest.operator import GROUP, PLURAL, VERSION, OperatorProcess
from kubetest.rotations import (
    at_revision,
    consumer,
    create,
    db_rotation,
    list_rotations,
    request_rotation,
    stalled_with,
    template_secrets,
    wait_rotation,
)
from secretrotation_dev.devcluster import podsim

pytestmark = pytest.mark.integration


def _db_and_api(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db", {"username": "shop", "password": "initial"}))
    consumer(kube, namespace, "api", "db")


def _rotated_once(kube: Kube, namespace: str) -> None:
    _db_and_api(kube, namespace)
    create(kube, namespace, db_rotation())
    wait_rotation(kube, namespace, "db", at_revision(1), "revision 1")


def _secret(kube: Kube, namespace: str, name: str) -> dict[str, object]:
    found: dict[str, object] = raw(kube.core.read_namespaced_secret, name, namespace)
    return found


def _settled_with_a_version(obj: dict[str, object]) -> bool:
    status = obj.get("status") or {}
    return status.get("phase") == "Idle" and bool(status.get("currentSecret"))  # type: ignore[union-attr]


def test_a_re_created_rotation_adopts_none_of_the_versions_its_predecessor_left(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    _rotated_once(kube, namespace)
    left = _secret(kube, namespace, "db-v1")
    kube.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "db")
    kube.wait_gone(list_rotations(kube), "db", namespace=namespace, plural=PLURAL)

    create(kube, namespace, db_rotation())
    rotated = wait_rotation(kube, namespace, "db", _settled_with_a_version, "the new incarnation settled")

    assert rotated["status"]["currentSecret"] == "db-v2", "db-v1 is the old incarnation's: never staged again"
    after = _secret(kube, namespace, "db-v1")
    assert after["metadata"] == left["metadata"] and after["data"] == left["data"], "db-v1 was touched"  # type: ignore[index]
    events = raw(kube.core.list_namespaced_event, namespace)["items"]
    assert any(e["reason"] == "VersionNameTaken" and "db-v1" in e["message"] for e in events), "the skip is said"


def test_a_version_name_is_never_staged_twice_even_after_a_failed_version_was_collected(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    _db_and_api(kube, namespace)
    faults = f"- secret: db-v1\n  effect: {podsim.Effect.CRASH_LOOP.value}\n"
    kube.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": podsim.FAULTS_CONFIGMAP}, "data": {podsim.FAULTS_KEY: faults}}
    )
    create(kube, namespace, db_rotation(verify={"timeout": "2m", "stableFor": "1s"}))
    wait_rotation(kube, namespace, "db", stalled_with("VerificationFailed"), "db-v1 failed and rolled back", 120)
    kube.wait_gone(kube.core.list_namespaced_secret, "db-v1", namespace=namespace)

    request_rotation(kube, namespace, "db", "again")
    rotated = wait_rotation(kube, namespace, "db", at_revision(2), "the retry promoted")

    assert rotated["status"]["currentSecret"] == "db-v2", "the kubelet caches immutable Secrets by name"
    assert template_secrets(kube, namespace, "Deployment", "api") == {"db-v2"}


def test_a_rotation_of_a_secret_labelled_as_another_rotations_version_is_refused_and_creates_nothing(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    """The operator's second line: the CRD refuses a secretName ending in -v<N>, not a copy under another name."""
    _rotated_once(kube, namespace)
    copy = _secret(kube, namespace, "db-v1")
    labels = copy["metadata"]["labels"]  # type: ignore[index]
    kube.core.create_namespaced_secret(
        namespace, {"metadata": {"name": "db-copy", "labels": labels}, "data": {"k": ""}}
    )

    create(kube, namespace, db_rotation("hijack", secretName="db-copy"))
    refused = wait_rotation(kube, namespace, "hijack", stalled_with("InvalidSpec"), "the hijack refused")

    message = condition(refused, "Stalled")["message"]  # type: ignore[index]
    assert "spec.secretName: Secret db-copy is a version staged by SecretRotation db" in message, message
    names = {s["metadata"]["name"] for s in raw(kube.core.list_namespaced_secret, namespace)["items"]}
    assert "db-copy-v1" not in names
    assert template_secrets(kube, namespace, "Deployment", "api") == {"db-v1"}, "the other rotation's workload moved"


def test_a_create_the_api_server_rejects_as_invalid_stalls_with_its_reason_not_a_retry_loop(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    """A kubernetes.io/tls version copied from a Secret without tls.key: the API server answers 422."""
    encoded = base64.b64encode(b"not-a-key-pair").decode()
    kube.core.create_namespaced_secret(namespace, {"metadata": {"name": "issued"}, "data": {"tls.crt": encoded}})
    kube.core.create_namespaced_secret(namespace, secret("web-tls", {"tls.crt": "x"}))
    create(kube, namespace, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "SecretRotation", "metadata": {"name": "web"},
        "spec": {"secretName": "web-tls", "type": "kubernetes.io/tls", "from": {"secretName": "issued"}},
    })  # fmt: skip

    stalled = wait_rotation(
        kube, namespace, "web", lambda o: (condition(o, "Stalled") or {}).get("reason") == "Invalid", "Stalled Invalid"
    )

    message = condition(stalled, "Stalled")["message"]  # type: ignore[index]
    assert "tls.key" in message and "not-a-key-pair" not in message, message
    assert "retrying in 300s" in operator.logs(), "a refusal is retried every few minutes, not in a loop"
    names = {s["metadata"]["name"] for s in raw(kube.core.list_namespaced_secret, namespace)["items"]}
    assert "web-tls-v1" not in names
