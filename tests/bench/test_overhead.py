"""Benchmarks (``make bench``): what the operator itself costs during a rotation.

Not part of ``make test``: these measure, they do not judge. Numbers go to the
terminal and to pytest-benchmark's report.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kubetest import Kube, container, deployment, raw, secret
from kubetest.operator import GROUP, PLURAL, VERSION, OperatorProcess, rotation
from secretrotation.core import names, planner, world

pytestmark = pytest.mark.integration


def _env(secret_name: str) -> list[dict[str, Any]]:
    return [{"name": "P", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "password"}}}]


def _pod(index: int, secret_name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": f"api-{index}", "labels": {"app": f"app-{index % 20}"}, "uid": f"u{index}"},
        "spec": {"containers": [container(env=_env(secret_name))]},
        "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
    }


def test_planner_step_on_a_busy_namespace(benchmark: Any) -> None:
    """One Verifying step over 20 Deployments and 400 pods: the pure decision cost."""
    deployments = []
    for i in range(20):
        manifest = deployment(
            f"app-{i}",
            {
                "containers": [
                    container(env=[{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db-v2", "key": "password"}}}])
                ]
            },
            replicas=20,
        )
        manifest["metadata"].update(generation=2, uid=f"d{i}")
        manifest["spec"]["selector"] = {"matchLabels": {"app": f"app-{i}"}}
        manifest["status"] = {"observedGeneration": 2, "replicas": 20, "updatedReplicas": 20, "availableReplicas": 20}
        deployments.append(manifest)  # fmt: skip
    objects = world.NamespaceObjects(pods=[_pod(i, "db-v2") for i in range(400)], deployments=deployments)
    now = datetime(2026, 1, 2, tzinfo=UTC)
    targets = [{"kind": "Deployment", "name": f"app-{i}", "switched": True, "changes": []} for i in range(20)]
    status = {
        "phase": "Verifying",
        "revision": 1,
        "currentSecret": "db-v1",
        "rotation": {
            "revision": 2, "secret": "db-v2", "previousSecret": "db-v1", "reason": "Requested",
            "startedAt": "2026-01-01T23:59:00Z", "deadline": "2026-01-02T00:09:00Z", "generation": 1,
            "spec": {"secretName": "db", "generate": [{"key": "password", "length": 32, "alphabet": "alphanumeric"}],
                     "type": "Opaque", "verify": {"timeout": "600s", "stableFor": "30s"}, "retain": 1, "paused": False},
            "targets": targets,
        },
    }  # fmt: skip
    spec = {"secretName": "db", "generate": [{"key": "password"}]}
    resource = world.Resource("db", "shop", 1, {}, spec, status)
    observed = world.Observed(now=now, objects=objects, secrets={})

    step = benchmark(planner.plan, resource, observed)

    assert step.status["phase"] == "CollectingGarbage", step.status.get("conditions")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / 100.0


def test_operator_overhead_per_rotation(kube: Kube, namespace: str, operator: OperatorProcess) -> None:
    """Operator CPU and reaction time for rotations of three Deployments, next to the rollout time."""
    kube.core.create_namespaced_secret(namespace, secret("db", {"password": "initial"}))
    for name in ("a", "b", "c"):
        env = [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]
        kube.apps.create_namespaced_deployment(
            namespace, deployment(name, {"containers": [container(env=env)]}, replicas=3)
        )
    spec = {"secretName": "db", "generate": [{"key": "password"}], "verify": {"timeout": "5m", "stableFor": "2s"}}
    kube.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, rotation("db", **spec))
    assert operator.process is not None

    samples = []
    for revision in range(1, 6):
        if revision > 1:
            patch = {"metadata": {"annotations": {names.REQUESTED_AT_ANNOTATION: f"bench-{revision}"}}}
            kube.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "db", patch)
        cpu_before, started = _cpu_seconds(operator.process.pid), time.monotonic()
        switched = kube.wait_one(
            kube.apps.list_namespaced_deployment, "a",
            lambda d, r=revision: f"db-v{r}" in str(d["spec"]["template"]), namespace=namespace, what="switch",
        )  # fmt: skip
        reacted = time.monotonic() - started
        assert switched
        kube.wait_one(
            lambda **kw: kube.custom.list_namespaced_custom_object(GROUP, VERSION, **kw), "db",
            lambda r, n=revision: (r.get("status") or {}).get("revision") == n and r["status"].get("phase") == "Idle",
            namespace=namespace, plural=PLURAL, what=f"revision {revision}",
        )  # fmt: skip
        total = time.monotonic() - started
        samples.append((reacted, total, _cpu_seconds(operator.process.pid) - cpu_before))

    status = raw(kube.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, "db")["status"]
    assert status["revision"] == 5
    print("\nrotation  trigger->switch  total wall  operator CPU  (stableFor 2s, 3 Deployments x 3 replicas)")
    for revision, (reacted, total, cpu) in enumerate(samples, 1):
        print(f"{revision:>8}  {reacted:>13.2f}s  {total:>9.2f}s  {cpu:>11.2f}s")
    mean_cpu = sum(s[2] for s in samples) / len(samples)
    mean_total = sum(s[1] for s in samples) / len(samples)
    print(f"mean operator CPU {mean_cpu:.2f}s per rotation of {mean_total:.1f}s ({100 * mean_cpu / mean_total:.0f}%)")


def test_the_simulated_kubelet_keeps_up_with_hundreds_of_pods(kube: Kube, namespace: str) -> None:
    """Time for a 300-replica Deployment to become Available on the local control plane."""
    started = time.monotonic()
    kube.apps.create_namespaced_deployment(namespace, deployment("crowd", {"containers": [container()]}, replicas=300))

    kube.wait_one(
        kube.apps.list_namespaced_deployment, "crowd",
        lambda d: (d.get("status") or {}).get("availableReplicas") == 300, namespace=namespace, timeout=300,
    )  # fmt: skip

    print(f"\n300 pods scheduled, started and Ready in {time.monotonic() - started:.1f}s")
