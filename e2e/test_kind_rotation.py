"""On a real kubelet and container runtime: a Secret rotated twice, and a broken version rolled back."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kubetest import Kube, Obj, condition, container, deployment, deployment_available, pod_ready, secret
from kubetest.operator import GROUP, PLURAL, VERSION, OperatorProcess
from kubetest.rotations import (
    at_revision,
    create,
    db_rotation,
    request_rotation,
    stalled_with,
    template_secrets,
    wait_rotation,
)
from secretrotation.core import references

pytestmark = pytest.mark.integration
PAUSE = "registry.k8s.io/pause:3.9"
BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.36.1-1"


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


def _generate(mode: str) -> list[Obj]:
    return [{"key": "username", "value": "shop"}, {"key": "password", "length": 24}, {"key": "mode", "value": mode}]


def _app_on(version: str) -> Callable[[list[Obj]], bool]:
    """A predicate on the app's pods: every live one Ready and mounting ``version`` only."""

    def check(pods: list[Obj]) -> bool:
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        return bool(live) and all(pod_ready(p) and references.referenced_secrets(p["spec"]) == {version} for p in live)

    return check


def test_a_version_that_crashes_the_app_is_rolled_back_on_a_real_kubelet(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    # The app reads the mounted Secret at start and exits unless its mode is "ok": a real
    # container on a real kubelet, crash-looping for real (no simulated fault).
    kube.core.create_namespaced_secret(namespace, secret("db", {"username": "shop", "password": "p", "mode": "ok"}))
    app = container(
        image=BUSYBOX,
        command=["sh", "-c", 'test "$(cat /etc/db/mode)" = ok || exit 1; exec sleep 86400'],
        volumeMounts=[{"name": "db", "mountPath": "/etc/db", "readOnly": True}],
    )
    pod_spec = {
        "containers": [app],
        "volumes": [{"name": "db", "secret": {"secretName": "db"}}],
        "terminationGracePeriodSeconds": 1,  # sleep as PID 1 ignores SIGTERM
    }
    kube.apps.create_namespaced_deployment(namespace, deployment("api", pod_spec))
    kube.wait_one(kube.apps.list_namespaced_deployment, "api", deployment_available, namespace=namespace, timeout=180)
    create(kube, namespace, db_rotation(generate=_generate("ok"), verify={"timeout": "5m", "stableFor": "5s"}))
    wait_rotation(kube, namespace, "db", at_revision(1), "revision 1", timeout=300)
    assert template_secrets(kube, namespace, "Deployment", "api") == {"db-v1"}

    # Version 2 carries a mode the app refuses: its new pods crash-loop.
    kube.custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "db", {"spec": {"generate": _generate("broken")}}
    )
    request_rotation(kube, namespace, "db", "2")

    # Far inside the 5m verification timeout: the crash loop is failure enough.
    failed = wait_rotation(kube, namespace, "db", stalled_with("VerificationFailed"), "rolled back", timeout=240)

    stalled = condition(failed, "Stalled") or {}
    assert "CrashLoopBackOff" in stalled.get("message", ""), stalled
    assert (condition(failed, "Ready") or {}).get("reason") == "RotationFailed", failed["status"]
    status = failed["status"]
    assert status["lastFailure"]["reason"] == "VerificationFailed", status
    assert (status["revision"], status["currentSecret"]) == (1, "db-v1"), status
    assert template_secrets(kube, namespace, "Deployment", "api") == {"db-v1"}, "the Deployment was not rolled back"
    kube.wait(
        kube.core.list_namespaced_pod,
        _app_on("db-v1"),
        namespace=namespace,
        label_selector="app=api",
        what="the app's pods back on db-v1 and Ready",
        timeout=120,
    )
    kube.wait_one(kube.apps.list_namespaced_deployment, "api", deployment_available, namespace=namespace, timeout=120)
    kube.wait_gone(kube.core.list_namespaced_secret, "db-v2", namespace=namespace, timeout=120)
