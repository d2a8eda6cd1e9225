"""What an SRE sees from the terminal during real rotations: logs without values, metrics, paused, fail fast."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from kubetest import Kube, condition, eventually, raw, secret
from kubetest.operator import GROUP, PLURAL, VERSION, OperatorProcess
from kubetest.rotations import at_revision, consumer, create, db_rotation, request_rotation, stalled_with, wait_rotation
from secretrotation_dev.devcluster import podsim

pytestmark = pytest.mark.integration
CANARY = "canary-7f3d9b1e-never-logged"
NAME = "db"


def metric(text: str, family: str, /, **labels: str) -> float | None:
    """The value of the one sample of ``family`` whose labels include ``labels``, or None."""
    for line in text.splitlines():
        match = re.fullmatch(rf"{family}\{{(.*)\}} (\S+)", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            return float(match.group(2))
    return None


def json_lines(operator: OperatorProcess) -> list[dict[str, Any]]:
    lines = []
    for line in operator.logs().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def shop(kube: Kube, namespace: str) -> None:
    kube.core.create_namespaced_secret(namespace, secret("db", {"username": "shop", "password": "initial"}))
    consumer(kube, namespace, "api", "db")


def test_no_value_reaches_a_log_line_at_any_level_and_each_line_says_what_it_is_about(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    shop(kube, namespace)
    generate = [{"key": "username", "value": CANARY}, {"key": "password", "length": 32}]
    create(kube, namespace, db_rotation(generate=generate))
    wait_rotation(kube, namespace, NAME, at_revision(1), "the first rotation")
    request_rotation(kube, namespace, NAME, "2026-03-01T12:00:00Z")
    wait_rotation(kube, namespace, NAME, at_revision(2), "the requested rotation")

    values = {CANARY}
    for version in ("db-v1", "db-v2"):
        data = raw(kube.core.read_namespaced_secret, version, namespace)["data"]
        values |= {base64.b64decode(v).decode() for v in data.values()}
    logs = operator.logs()
    assert "DEBUG" in logs or '"severity": "debug"' in logs, "the operator logged at --verbose"
    leaked = [value for value in values if value in logs]
    assert leaked == [], "a Secret value reached the operator's log"

    ours = [line for line in json_lines(operator) if line.get("namespace") == namespace and "phase" in line]
    started = [line for line in ours if "-> Staging" in line["message"]]
    assert started, "a phase change is logged"
    assert {k: started[-1][k] for k in ("name", "revision", "phase", "severity")} == {
        "name": NAME, "revision": 2, "phase": "Staging", "severity": "info",
    }  # fmt: skip
    assert started[-1]["reason"], started[-1]
    assert any(line["severity"] == "debug" for line in ours), "each step's decision at DEBUG"

    promoted = {"namespace": namespace, "name": NAME}  # the metrics follow the status write within the same step
    eventually(lambda: metric(operator.metrics(), "secretrotation_current_revision", **promoted) == 2,
               timeout=10, what="the metrics of revision 2")  # fmt: skip
    text = operator.metrics()
    assert metric(text, "secretrotation_condition", namespace=namespace, name=NAME, type="Ready", status="True") == 1
    assert metric(text, "secretrotation_condition", namespace=namespace, name=NAME, type="Ready", status="False") == 0
    assert metric(text, "secretrotation_rotation_info", namespace=namespace, name=NAME, kind="Secret", secret="db") == 1
    assert metric(text, "secretrotation_created_timestamp_seconds", namespace=namespace, name=NAME) is not None
    assert metric(text, "secretrotation_current_revision", namespace=namespace, name=NAME) == 2
    assert not re.search(r"^\w+_created[{ ]", text, re.MULTILINE), "no _created series"

    kube.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, NAME)
    kube.wait_gone(kube.custom.list_namespaced_custom_object, NAME, group=GROUP, version=VERSION,
                   namespace=namespace, plural=PLURAL)  # fmt: skip

    def left() -> list[str]:
        ours = f'name="{NAME}",namespace="{namespace}"'
        return [line for line in operator.metrics().splitlines() if ours in line]

    eventually(lambda: not left(), timeout=30, what=f"every series of the deleted rotation gone: {left()}")


def test_a_pod_that_never_turns_ready_fails_verification_at_not_ready_after_long_before_the_timeout(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    faults = "- secret: db-v1\n  effect: NeverReady\n"
    kube.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": podsim.FAULTS_CONFIGMAP}, "data": {podsim.FAULTS_KEY: faults}}
    )
    shop(kube, namespace)
    create(kube, namespace, db_rotation(verify={"timeout": "10m", "stableFor": "1s", "notReadyAfter": "15s"}))

    failed = wait_rotation(kube, namespace, NAME, stalled_with("VerificationFailed"), "fail fast", timeout=120)

    message = condition(failed, "Stalled")["message"]
    assert "has not been Ready for" in message and "(verify.notReadyAfter)" in message, message
    [target] = failed["status"]["targets"]
    assert target["state"] == "RolledBack" and re.search(r"pod api-\S+ has not been Ready", target["message"]), target
    labels = {"namespace": namespace, "name": NAME}

    def counted() -> bool:  # the metrics follow the status write within the same step
        return metric(operator.metrics(), "secretrotation_failures_total", **labels) is not None

    eventually(counted, timeout=10, what="the failure counted")
    text = operator.metrics()
    failures = [line for line in text.splitlines() if line.startswith("secretrotation_failures_total")]
    assert metric(text, "secretrotation_failures_total", reason="VerificationFailed", **labels) == 1, failures
    assert metric(text, "secretrotation_condition", type="Stalled", status="True", **labels) == 1
    assert metric(text, "secretrotation_rotations_finished_total", result="failed", **labels) == 1
    assert metric(text, "secretrotation_last_success_timestamp_seconds", **labels) is None, "it never succeeded"
    warnings = [
        line for line in json_lines(operator) if line.get("namespace") == namespace and line["severity"] == "warn"
    ]
    reasons = {line["reason"] for line in warnings}
    assert {"RotationFailed", "RollingBack", "VerificationFailed"} <= reasons, reasons


def test_a_paused_rotation_is_ready_with_reason_paused_and_shows_the_request_it_holds(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    shop(kube, namespace)
    create(kube, namespace, db_rotation())
    wait_rotation(kube, namespace, NAME, at_revision(1), "the first rotation")
    kube.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, NAME, {"spec": {"paused": True}})
    request_rotation(kube, namespace, NAME, "held-2026-03-01")

    def paused_with_the_request(obj: dict[str, Any]) -> bool:
        ready = condition(obj, "Ready") or {}
        return ready.get("reason") == "Paused" and "held-2026-03-01" in ready.get("message", "")

    paused = wait_rotation(kube, namespace, NAME, paused_with_the_request, "Paused, holding the request")

    assert condition(paused, "Ready")["status"] == "True", "the version in use still works"
    assert paused["status"]["revision"] == 1 and paused["status"]["phase"] == "Idle", paused["status"]
    kube.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, NAME, {"spec": {"paused": False}})
    wait_rotation(kube, namespace, NAME, at_revision(2), "the held request, once resumed")
