"""The local control plane behaves like a real cluster where secret rotation cares."""

from __future__ import annotations

import json
import os

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kubetest import (
    Kube,
    condition,
    container,
    deployment,
    deployment_available,
    pod_ready,
    raw,
    secret,
    waiting_reasons,
)
from secretrotation_dev.devcluster import binaries, podsim

pytestmark = pytest.mark.integration


def _pods_with_reason(kube: Kube, namespace: str, reason: str, **selectors: str) -> list[dict]:
    return kube.wait(
        kube.core.list_namespaced_pod,
        lambda pods: bool(pods) and all(reason in waiting_reasons(p) for p in pods),
        namespace=namespace,
        what=f"pods waiting in {reason}",
        **selectors,
    )


def test_the_server_and_the_simulated_kubelet_report_the_selected_release(kube: Kube) -> None:
    version = raw(client.VersionApi(kube.api).get_code)["gitVersion"]
    if not os.environ.get("KUBEBUILDER_ASSETS") and not os.environ.get("SECRETROTATION_TEST_KUBECONFIG"):
        assert version == f"v{binaries.RELEASES[binaries.selected_minor()]}", "not the release built for this run"
    nodes = raw(kube.core.list_node)["items"]
    assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes} == {version}


def test_node_is_ready_and_schedulable(kube: Kube) -> None:
    nodes = raw(kube.core.list_node)["items"]
    assert nodes, "the simulated kubelet registered no node"
    for node in nodes:
        assert condition(node, "Ready")["status"] == "True", node["status"]
        assert not node["spec"].get("taints"), f"node {node['metadata']['name']} is still tainted"


def test_a_deployment_becomes_available(kube: Kube, namespace: str) -> None:
    kube.apps.create_namespaced_deployment(namespace, deployment("web", {"containers": [container()]}, replicas=2))

    web = kube.wait_one(
        kube.apps.list_namespaced_deployment, "web", deployment_available, namespace=namespace, what="Available"
    )

    assert condition(web, "Available")["status"] == "True"
    pods = raw(kube.core.list_namespaced_pod, namespace, label_selector="app=web")["items"]
    assert len(pods) == 2 and all(pod_ready(p) for p in pods)


def test_missing_secret_key_gives_create_container_config_error_until_the_key_appears(
    kube: Kube, namespace: str
) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db", {"username": "shop"}))
    env = [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]
    kube.apps.create_namespaced_deployment(namespace, deployment("api", {"containers": [container(env=env)]}))

    _pods_with_reason(kube, namespace, "CreateContainerConfigError", label_selector="app=api")

    kube.core.patch_namespaced_secret("db", namespace, {"stringData": {"password": "s3cret"}})
    kube.wait_one(kube.apps.list_namespaced_deployment, "api", deployment_available, namespace=namespace)


def test_missing_secret_gives_create_container_config_error_for_env_from(kube: Kube, namespace: str) -> None:
    pod_spec = {"containers": [container(envFrom=[{"secretRef": {"name": "absent"}}])]}
    kube.apps.create_namespaced_deployment(namespace, deployment("api", pod_spec))

    _pods_with_reason(kube, namespace, "CreateContainerConfigError", label_selector="app=api")


def test_optional_references_to_missing_secrets_do_not_block_start(kube: Kube, namespace: str) -> None:
    env = [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "x", "optional": True}}}]
    pod_spec = {
        "containers": [container(env=env, envFrom=[{"secretRef": {"name": "absent", "optional": True}}])],
        "volumes": [{"name": "v", "secret": {"secretName": "absent", "optional": True}}],
    }
    kube.apps.create_namespaced_deployment(namespace, deployment("api", pod_spec))

    kube.wait_one(kube.apps.list_namespaced_deployment, "api", deployment_available, namespace=namespace)


def test_missing_volume_secret_keeps_the_pod_container_creating_with_failed_mount(kube: Kube, namespace: str) -> None:
    pod_spec = {
        "containers": [container(volumeMounts=[{"name": "creds", "mountPath": "/creds"}])],
        "volumes": [{"name": "creds", "projected": {"sources": [{"secret": {"name": "absent"}}]}}],
    }
    kube.apps.create_namespaced_deployment(namespace, deployment("api", pod_spec))

    pods = _pods_with_reason(kube, namespace, "ContainerCreating", label_selector="app=api")
    pod_name = pods[0]["metadata"]["name"]
    events = kube.wait(
        kube.core.list_namespaced_event,
        lambda items: any(e["reason"] == "FailedMount" for e in items),
        namespace=namespace,
        field_selector=f"involvedObject.name={pod_name}",
        what="a FailedMount event",
    )
    mount = next(e for e in events if e["reason"] == "FailedMount")
    assert 'secret "absent" not found' in mount["message"]


def test_missing_image_pull_secret_gives_image_pull_back_off(kube: Kube, namespace: str) -> None:
    pod_spec = {"containers": [container()], "imagePullSecrets": [{"name": "absent"}]}
    kube.apps.create_namespaced_deployment(namespace, deployment("api", pod_spec))

    _pods_with_reason(kube, namespace, "ImagePullBackOff", label_selector="app=api")


def test_a_started_container_keeps_running_when_its_secret_is_deleted(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db", {"password": "s3cret"}))
    env = [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]
    kube.apps.create_namespaced_deployment(namespace, deployment("api", {"containers": [container(env=env)]}))
    kube.wait_one(kube.apps.list_namespaced_deployment, "api", deployment_available, namespace=namespace)
    before = raw(kube.core.list_namespaced_pod, namespace, label_selector="app=api")["items"][0]

    kube.core.delete_namespaced_secret("db", namespace)
    # A fresh pod proves the kubelet has seen the deletion: it cannot start.
    kube.apps.patch_namespaced_deployment_scale("api", namespace, {"spec": {"replicas": 2}})
    _pods_with_reason(
        kube,
        namespace,
        "CreateContainerConfigError",
        label_selector="app=api",
        field_selector=f"metadata.name!={before['metadata']['name']}",
    )

    after = raw(kube.core.read_namespaced_pod, before["metadata"]["name"], namespace)
    assert pod_ready(after), "a running container must survive the deletion of its Secret"
    assert after["status"]["containerStatuses"][0]["restartCount"] == 0


def test_a_deleted_pod_goes_away_and_a_rolling_update_completes(kube: Kube, namespace: str) -> None:
    kube.apps.create_namespaced_deployment(namespace, deployment("web", {"containers": [container()]}, replicas=3))
    kube.wait_one(kube.apps.list_namespaced_deployment, "web", deployment_available, namespace=namespace)
    victim = raw(kube.core.list_namespaced_pod, namespace, label_selector="app=web")["items"][0]["metadata"]["name"]

    kube.core.delete_namespaced_pod(victim, namespace)
    kube.wait_gone(kube.core.list_namespaced_pod, victim, namespace=namespace)

    patch = {"spec": {"template": {"spec": {"containers": [container(image="registry.local/app:2")]}}}}
    kube.apps.patch_namespaced_deployment("web", namespace, patch)
    kube.wait_one(
        kube.apps.list_namespaced_deployment, "web", deployment_available, namespace=namespace, what="rolled to image 2"
    )
    # Rollout status is complete while old pods may still be terminating; the kubelet then removes them.
    kube.wait(
        kube.core.list_namespaced_pod,
        lambda pods: sorted(p["spec"]["containers"][0]["image"] for p in pods) == ["registry.local/app:2"] * 3,
        namespace=namespace,
        label_selector="app=web",
        what="only the three new pods left",
    )


def test_injected_crash_fault_shows_crash_loop_back_off_with_rising_restarts(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db-v2", {"password": "s3cret"}))
    faults = f"- secret: db-v2\n  effect: {podsim.Effect.CRASH_LOOP.value}\n"
    kube.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": podsim.FAULTS_CONFIGMAP}, "data": {podsim.FAULTS_KEY: faults}}
    )
    env = [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db-v2", "key": "password"}}}]
    kube.apps.create_namespaced_deployment(namespace, deployment("api", {"containers": [container(env=env)]}))

    def restarts(pods: list[dict]) -> int:
        return max(
            (s.get("restartCount", 0) for p in pods for s in p["status"].get("containerStatuses") or []), default=0
        )

    first = _pods_with_reason(kube, namespace, "CrashLoopBackOff", label_selector="app=api")
    seen = restarts(first)
    kube.wait(
        kube.core.list_namespaced_pod,
        lambda pods: restarts(pods) > seen,
        namespace=namespace,
        label_selector="app=api",
        what=f"restartCount above {seen}",
    )


def test_a_pod_naming_a_missing_service_account_is_rejected_and_the_replicaset_reports_it(
    kube: Kube, namespace: str
) -> None:
    pod_spec = {"containers": [container()], "serviceAccountName": "absent"}
    kube.apps.create_namespaced_deployment(namespace, deployment("api", pod_spec))

    replica_sets = kube.wait(
        kube.apps.list_namespaced_replica_set,
        lambda items: any((condition(rs, "ReplicaFailure") or {}).get("reason") == "FailedCreate" for rs in items),
        namespace=namespace,
        what="ReplicaFailure/FailedCreate",
    )
    failure = condition(replica_sets[0], "ReplicaFailure")
    assert failure and 'serviceaccount "absent" not found' in failure["message"]


def test_rbac_denies_a_service_account_with_no_role(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    request = {"spec": {"expirationSeconds": 600}}
    token = raw(kube.core.create_namespaced_service_account_token, "nobody", namespace, request)["status"]["token"]
    configuration = client.Configuration()
    configuration.host = kube.api.configuration.host
    configuration.ssl_ca_cert = kube.api.configuration.ssl_ca_cert
    configuration.api_key = {"authorization": f"Bearer {token}"}
    as_nobody = client.CoreV1Api(client.ApiClient(configuration))

    with pytest.raises(ApiException) as denied:
        as_nobody.list_namespaced_secret(namespace)

    assert denied.value.status == 403
    # The token authenticated (the user is named); RBAC is what said no.
    message = json.loads(denied.value.body)["message"]
    assert f'User "system:serviceaccount:{namespace}:nobody" cannot list resource "secrets"' in message
