"""Native sidecars (init containers with ``restartPolicy: Always``; beta and on by default from
Kubernetes 1.29, GA in 1.33, so on every release the suite runs on) are consumers.

In each test the Deployment's only consumer of the Secret is its sidecar: the rotation
must find it, switch it, judge the new pods by it, and stop or roll back because of it.
"""

from __future__ import annotations

import pytest

from kubetest import Kube, Obj, condition, container, deployment, pod_ready, raw, secret
from kubetest.invariants import InvariantChecker
from kubetest.operator import OperatorProcess
from kubetest.rotations import (
    at_revision,
    create,
    db_rotation,
    request_rotation,
    secret_names,
    stalled_with,
    template_secrets,
    wait_rotation,
)
from secretrotation_dev.devcluster import podsim

pytestmark = pytest.mark.integration


def _sidecar_consumer(kube: Kube, namespace: str, key: str = "password") -> None:
    """Deployment ``api``: the app reads no Secret; its sidecar ``proxy`` reads ``key`` of ``db``."""
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "db", "key": key}}}]
    proxy = container("proxy", restartPolicy="Always", env=env)
    manifest = deployment("api", {"initContainers": [proxy], "containers": [container()]}, replicas=2)
    kube.apps.create_namespaced_deployment(namespace, manifest)


def _sidecar_reads(kube: Kube, namespace: str) -> str:
    template = raw(kube.apps.read_namespaced_deployment, "api", namespace)["spec"]["template"]["spec"]
    [proxy] = template["initContainers"]
    assert proxy["restartPolicy"] == "Always", "the API server kept the sidecar a sidecar"
    name: str = proxy["env"][0]["valueFrom"]["secretKeyRef"]["name"]
    return name


def _live_pods(kube: Kube, namespace: str) -> list[Obj]:
    pods = raw(kube.core.list_namespaced_pod, namespace, label_selector="app=api")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def test_a_deployment_whose_only_consumer_is_a_sidecar_is_rotated_through_it(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db", {"username": "shop", "password": "initial"}))
    _sidecar_consumer(kube, namespace)

    with InvariantChecker(kube, namespace):
        create(kube, namespace, db_rotation(retain=0))
        first = wait_rotation(kube, namespace, "db", at_revision(1), "revision 1 Ready")

        assert _sidecar_reads(kube, namespace) == "db-v1", "the sidecar's reference was switched"
        [target] = first["status"]["targets"]
        assert (target["kind"], target["name"], target["state"]) == ("Deployment", "api", "Verified"), target
        pods = _live_pods(kube, namespace)
        assert pods and all(pod_ready(p) for p in pods)
        for pod in pods:
            [proxy] = pod["status"]["initContainerStatuses"]
            assert (proxy["name"], proxy["ready"], "running" in proxy["state"]) == ("proxy", True, True), proxy
            assert pod["spec"]["initContainers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "db-v1"

        request_rotation(kube, namespace, "db", "second")
        wait_rotation(kube, namespace, "db", at_revision(2), "revision 2 Ready")

    assert _sidecar_reads(kube, namespace) == "db-v2"
    assert template_secrets(kube, namespace, "Deployment", "api") == {"db-v2"}
    assert secret_names(kube, namespace) == {"db", "db-v2"}, "db-v1 is collected once the sidecar left it (retain: 0)"


def test_a_sidecar_crash_looping_on_the_new_version_rolls_back_naming_the_sidecar(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db", {"username": "shop", "password": "initial"}))
    _sidecar_consumer(kube, namespace)
    faults = f"- secret: db-v1\n  container: proxy\n  effect: {podsim.Effect.CRASH_LOOP.value}\n"
    kube.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": podsim.FAULTS_CONFIGMAP}, "data": {podsim.FAULTS_KEY: faults}}
    )
    create(kube, namespace, db_rotation(verify={"timeout": "10m", "stableFor": "1s"}))

    # Far inside the 10m verification timeout: the sidecar's crash loop is failure enough.
    failed = wait_rotation(kube, namespace, "db", stalled_with("VerificationFailed"), "rolled back", timeout=120)

    message = condition(failed, "Stalled")["message"]
    assert "Deployment api" in message and "sidecar container proxy is waiting: CrashLoopBackOff" in message, message
    assert condition(failed, "Ready")["reason"] == "RotationFailed"
    assert _sidecar_reads(kube, namespace) == "db", "the sidecar is back on the untouched old version"
    assert secret_names(kube, namespace) == {"db"}, "the failed version is collected once nothing uses it"
    assert "currentSecret" not in failed["status"]


def test_a_key_only_the_sidecar_reads_stops_the_rotation_before_anything_is_touched(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db", {"password": "p", "apikey": "k"}))
    _sidecar_consumer(kube, namespace, key="apikey")
    generation = raw(kube.apps.read_namespaced_deployment, "api", namespace)["metadata"]["generation"]
    create(kube, namespace, db_rotation(generate=[{"key": "password"}]))

    failed = wait_rotation(kube, namespace, "db", stalled_with("MissingKey"), "Stalled MissingKey")

    message = condition(failed, "Stalled")["message"]
    assert "Deployment api" in message and "initContainers[proxy]" in message and "'apikey'" in message, message
    assert raw(kube.apps.read_namespaced_deployment, "api", namespace)["metadata"]["generation"] == generation
    assert _sidecar_reads(kube, namespace) == "db"
    assert secret_names(kube, namespace) == {"db"}, "the staged version is removed again"
