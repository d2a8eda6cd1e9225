"""``kubectl srot`` against the local control plane: each subcommand run as the plugin process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubetest import Kube, secret
from kubetest.operator import GROUP, PLURAL, VERSION, OperatorProcess
from kubetest.rotations import at_revision, consumer, create, db_rotation, wait_rotation
from secretrotation_dev.devcluster import podsim
from secretrotation_dev.faultproxy import FaultProxy

pytestmark = pytest.mark.integration


def srot(kubeconfig: Path, namespace: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "secretrotation.adapters.srot", *args, "--kubeconfig", str(kubeconfig)]
    return subprocess.run([*command, "-n", namespace], capture_output=True, text=True, timeout=timeout, check=False)


def rotated_once(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db", {"username": "shop", "password": "initial"}))
    consumer(kube, namespace, "api", "db")
    create(kube, namespace, db_rotation())
    wait_rotation(kube, namespace, "db", at_revision(1), "revision 1 Ready")


def test_status_history_pause_and_resume(
    kube: Kube, namespace: str, operator: OperatorProcess, kubeconfig: Path
) -> None:
    rotated_once(kube, namespace)

    table = srot(kubeconfig, namespace, "status")
    details = srot(kubeconfig, namespace, "status", "db")
    everywhere = srot(kubeconfig, namespace, "status", "-A", "-o", "json")
    history = srot(kubeconfig, namespace, "history", "db")
    history_yaml = srot(kubeconfig, namespace, "history", "db", "-o", "yaml")

    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split()[:4] == ["NAME", "PHASE", "READY", "REASON"] and row.split()[:5] == [
        "db", "Idle", "True", "Rotated", "1",
    ], table.stdout  # fmt: skip
    assert "Current version: db-v1" in details.stdout and "Deployment   api" in details.stdout, details.stdout
    listed = json.loads(everywhere.stdout)["items"]
    assert any(i["metadata"]["namespace"] == namespace for i in listed), everywhere.stdout
    assert "Succeeded" in history.stdout and "Created" in history.stdout, history.stdout
    [entry] = yaml.safe_load(history_yaml.stdout)
    assert (entry["revision"], entry["secret"], entry["result"]) == (1, "db-v1", "Succeeded"), entry

    paused = srot(kubeconfig, namespace, "pause", "db")
    spec = kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "db")["spec"]
    assert paused.returncode == 0 and spec["paused"] is True, paused.stderr
    resumed = srot(kubeconfig, namespace, "resume", "db")
    spec = kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "db")["spec"]
    assert resumed.returncode == 0 and spec["paused"] is False, resumed.stderr
    missing = srot(kubeconfig, namespace, "status", "nothing-here")
    assert missing.returncode == 1 and "NotFound" in missing.stderr


def test_rotate_wait_returns_once_the_requested_rotation_is_ready(
    kube: Kube, namespace: str, operator: OperatorProcess, kubeconfig: Path
) -> None:
    rotated_once(kube, namespace)

    rotated = srot(kubeconfig, namespace, "rotate", "db", "--wait", "--timeout", "3m")

    assert rotated.returncode == 0, rotated.stderr
    assert "db-v2 in use (revision 2)" in rotated.stdout, rotated.stdout
    body = kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "db")
    request = body["metadata"]["annotations"]["rotation.sre.dev/requested-at"]
    assert body["status"]["lastHandledRequest"] == request and body["status"]["revision"] == 2
    assert [e["result"] for e in body["status"]["history"]] == ["Succeeded", "Succeeded"]


def test_rotate_wait_fails_with_the_stalled_reason_when_the_rotation_rolls_back(
    kube: Kube, namespace: str, operator: OperatorProcess, kubeconfig: Path
) -> None:
    rotated_once(kube, namespace)
    faults = f"- secret: db-v2\n  effect: {podsim.Effect.CRASH_LOOP.value}\n"
    kube.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": podsim.FAULTS_CONFIGMAP}, "data": {podsim.FAULTS_KEY: faults}}
    )

    failed = srot(kubeconfig, namespace, "rotate", "db", "--wait", "--timeout", "3m")

    assert failed.returncode == 1, (failed.stdout, failed.stderr)
    assert "rotation failed: VerificationFailed" in failed.stderr and "CrashLoopBackOff" in failed.stderr, failed.stderr
    history = json.loads(srot(kubeconfig, namespace, "history", "db", "-o", "json").stdout)
    assert [(e["revision"], e["result"]) for e in history] == [(2, "RolledBack"), (1, "Succeeded")], history
    assert history[0]["failure"]["reason"] == "VerificationFailed"


def test_rotate_wait_times_out_saying_where_the_rotation_stands(kube: Kube, namespace: str, kubeconfig: Path) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db", {"username": "shop", "password": "initial"}))
    create(kube, namespace, db_rotation())  # no operator runs: nothing handles the request

    waited = srot(kubeconfig, namespace, "rotate", "db", "--wait", "--timeout", "2s")

    assert waited.returncode == 1 and "timed out after 2s" in waited.stderr, waited.stderr


def test_plan_shows_each_rewrite_and_only_reads(
    kube: Kube, namespace: str, admin_proxy: tuple[FaultProxy, Path]
) -> None:
    proxy, proxied = admin_proxy
    kube.core.create_namespaced_secret(namespace, secret("db", {"username": "shop", "password": "initial"}))
    consumer(kube, namespace, "api", "db")
    consumer(kube, namespace, "reports", "db")
    create(kube, namespace, db_rotation(targets=[{"kind": "Deployment", "name": "api"}]))
    proxy.reset()

    planned = srot(proxied, namespace, "plan", "db")
    as_json = srot(proxied, namespace, "plan", "db", "-o", "json")

    assert planned.returncode == 0, planned.stderr
    assert "Would stage Secret db-v1 (revision 1) beside db (in use)." in planned.stdout, planned.stdout
    assert "/spec/template/spec/containers/0/env/0/valueFrom/secretKeyRef/name: db -> db-v1" in planned.stdout
    dry_run = json.loads(as_json.stdout)
    assert [t["name"] for t in dry_run["targets"]] == ["api"]
    assert dry_run["untracked"] == [{"kind": "Deployment", "name": "reports"}]
    assert [(d["name"], d["outcome"], d["reason"]) for d in dry_run["disposals"]] == [("db", "Keep", "AdoptedBase")]
    methods = {key.method for key in proxy.counts()}
    assert methods == {"GET"}, f"the dry run wrote: {proxy.summary(by='method')}"
    assert proxy.summary(), "the audit saw the plugin's requests"
