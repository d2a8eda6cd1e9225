"""What an SRE sees from the terminal: metrics, log lines and their levels, the spec's fail-fast bound, startup."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kopf
import pytest
from prometheus_client import REGISTRY, generate_latest

from secretrotation.core import pods
from secretrotation.core.plan import Event, Plan
from secretrotation.core.spec import InvalidSpec, parse_spec, spec_from_snapshot, spec_to_snapshot
from secretrotation.shell import metrics, steplog

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NS, NAME = "shop", "db"
BODY = {
    "metadata": {"namespace": NS, "name": NAME, "creationTimestamp": "2026-03-01T11:00:00Z"},
    "spec": {"secretName": "db", "generate": [{"key": "k"}]},
}


def status(phase: str = "Idle", *conditions: tuple[str, str, str], generation: int = 1, **extra: Any) -> dict[str, Any]:
    rendered = [
        {"type": t, "status": s, "reason": r, "message": "m", "observedGeneration": generation}
        for t, s, r in conditions
    ]
    return {"observedGeneration": generation, "phase": phase, "conditions": rendered, **extra}


def sample(metric: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(metric, {"namespace": NS, "name": NAME, **labels})


@pytest.fixture(autouse=True)
def forgotten() -> Iterator[None]:
    metrics.forget(NS, NAME)
    yield
    metrics.forget(NS, NAME)


# --- metrics ---------------------------------------------------------------------------------


def test_each_present_condition_has_one_series_per_status_and_the_current_one_is_1() -> None:
    stalled = status("Idle", ("Ready", "False", "RotationFailed"), ("Stalled", "True", "VerificationFailed"))
    metrics.update(NS, NAME, {}, Plan(stalled), 0.0, BODY)

    assert [sample("secretrotation_condition", type="Ready", status=s) for s in ("True", "False", "Unknown")] == [
        0.0, 1.0, 0.0,
    ]  # fmt: skip
    assert sample("secretrotation_condition", type="Stalled", status="True") == 1.0

    metrics.update(NS, NAME, stalled, Plan(status("Idle", ("Ready", "True", "Rotated"))), 0.0, BODY)
    assert sample("secretrotation_condition", type="Ready", status="True") == 1.0
    assert sample("secretrotation_condition", type="Stalled", status="True") is None, "a condition gone, its series too"


def test_a_stall_counts_one_failure_by_reason_and_an_unknown_reason_counts_as_other() -> None:
    ready = status("Idle", ("Ready", "True", "Rotated"))
    stalled = status("Idle", ("Ready", "False", "RotationFailed"), ("Stalled", "True", "VerificationFailed"))
    metrics.update(NS, NAME, ready, Plan(stalled), 0.0, BODY)
    metrics.update(NS, NAME, stalled, Plan(stalled), 0.0, BODY)  # still stalled: not counted again
    odd = status("Idle", ("Ready", "False", "RotationFailed"), ("Stalled", "True", "SomethingNew"))
    metrics.update(NS, NAME, stalled, Plan(odd), 0.0, BODY)

    assert sample("secretrotation_failures_total", reason="VerificationFailed") == 1.0
    assert sample("secretrotation_failures_total", reason="Other") == 1.0
    assert sample("secretrotation_failures_total", reason="SomethingNew") is None


def test_an_invalid_spec_counts_once_per_generation_not_per_step() -> None:
    def invalid(generation: int) -> dict[str, Any]:
        reason = ("Ready", "False", "InvalidSpec"), ("Stalled", "True", "InvalidSpec")
        return status("Idle", *reason, generation=generation)

    metrics.update(NS, NAME, {}, Plan(invalid(1)), 0.0, BODY)
    metrics.update(NS, NAME, invalid(1), Plan(invalid(1)), 0.0, BODY)
    metrics.update(NS, NAME, invalid(1), Plan(invalid(2)), 0.0, BODY)  # edited, still invalid

    assert sample("secretrotation_failures_total", reason="InvalidSpec") == 2.0


def test_every_rotation_has_an_info_series_and_a_creation_time_even_before_any_success() -> None:
    metrics.update(NS, NAME, {}, Plan(status("Idle", ("Ready", "False", "Pending"))), 0.0, BODY)

    assert sample("secretrotation_rotation_info", kind="Secret", secret="db") == 1.0
    assert sample("secretrotation_created_timestamp_seconds") == datetime(2026, 3, 1, 11, tzinfo=UTC).timestamp()
    assert sample("secretrotation_last_success_timestamp_seconds") is None

    account = {**BODY, "spec": {"serviceAccount": {"name": "deployer"}}}
    metrics.update(NS, NAME, {}, Plan(status()), 0.0, account)
    assert sample("secretrotation_rotation_info", kind="ServiceAccount", secret="deployer") == 1.0
    assert sample("secretrotation_rotation_info", kind="Secret", secret="db") is None, "an edit replaces the series"


def test_a_deleted_rotation_leaves_no_series_behind() -> None:
    stalled = status("Idle", ("Ready", "False", "RotationFailed"), ("Stalled", "True", "VerificationFailed"))
    metrics.update(NS, NAME, {}, Plan(stalled), 0.0, BODY)

    metrics.forget(NS, NAME)

    left = [line for line in generate_latest().decode().splitlines() if f'name="{NAME}"' in line and NS in line]
    assert left == []


def test_no_created_series_are_exported() -> None:
    metrics.update(NS, NAME, {}, Plan(status()), 0.0, BODY)
    created = re.findall(r"^\w+_created[{ ].*$", generate_latest().decode(), re.MULTILINE)
    assert created == [], created


# --- logs ------------------------------------------------------------------------------------


def plan_from(before: dict[str, Any], after: dict[str, Any], *events: Event) -> tuple[dict[str, Any], Plan]:
    return before, Plan(after, events=events)


def test_a_rollback_is_a_warning_that_says_why_and_a_phase_change_is_info(caplog: pytest.LogCaptureFixture) -> None:
    verifying = status("Verifying", ("Ready", "False", "Verifying"), ("Reconciling", "True", "Verifying"))
    verifying["rotation"] = {"revision": 2, "secret": "db-v2"}
    rolling = status("RollingBack", ("Ready", "False", "RollingBack"), ("Reconciling", "True", "RollingBack"))
    rolling["rotation"] = {"revision": 2, "secret": "db-v2"}
    rolling["conditions"][0]["message"] = "rolling back: pod web-1 is waiting: CrashLoopBackOff"
    failed = Event("RotationFailed", "Deployment web: pod web-1 is waiting: CrashLoopBackOff", warning=True)
    caplog.set_level(logging.DEBUG, logger="secretrotation")

    steplog.reported(NS, NAME, verifying, Plan(rolling, events=(failed,)))

    lines = [(r.levelno, r.getMessage(), r.__dict__) for r in caplog.records]
    assert lines[0][:2] == (logging.WARNING, f"{NS}/{NAME}: RotationFailed: {failed.message}")
    level, message, fields = lines[1]
    assert level == logging.WARNING and "Verifying -> RollingBack (RollingBack: rolling back: pod web-1" in message
    assert {k: fields[k] for k in ("namespace", "rotation", "revision", "phase", "reason")} == {
        "namespace": NS, "rotation": NAME, "revision": 2, "phase": "RollingBack", "reason": "RollingBack",
    }  # fmt: skip


def test_a_stall_and_a_blocked_collection_are_warnings(caplog: pytest.LogCaptureFixture) -> None:
    ready = status("Idle", ("Ready", "True", "Rotated"))
    stalled = status("Idle", ("Ready", "False", "InvalidSpec"), ("Stalled", "True", "InvalidSpec"))
    blocked = Event("CollectionBlocked", "db-v1 is still referenced by Pod debug", warning=True)
    caplog.set_level(logging.INFO, logger="secretrotation")

    steplog.reported(NS, NAME, ready, Plan(stalled, events=(blocked,)))

    warnings = [(r.getMessage(), getattr(r, "reason", None)) for r in caplog.records if r.levelno == logging.WARNING]
    assert (f"{NS}/{NAME}: CollectionBlocked: {blocked.message}", "CollectionBlocked") in warnings
    assert (f"{NS}/{NAME}: stalled (InvalidSpec): m", "InvalidSpec") in warnings


def test_each_step_is_logged_at_debug_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="secretrotation")
    steplog.decided(NS, NAME, Plan(status("Idle", ("Ready", "True", "Rotated"))))
    assert caplog.records == []
    caplog.set_level(logging.DEBUG, logger="secretrotation")
    steplog.decided(NS, NAME, Plan(status("Idle", ("Ready", "True", "Rotated"))))
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
    assert "Idle (Rotated: m); no action; next look on a watch event" in caplog.records[0].getMessage()


def test_json_lines_carry_namespace_name_revision_phase_and_reason(capsys: pytest.CaptureFixture[str]) -> None:
    from secretrotation.adapters import cli

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        kopf.configure(log_format=kopf.LogFormat.JSON)
        cli._json_names_the_rotation()
        steplog.ResourceLog(NS, NAME, lambda: status("Idle", ("Ready", "True", "Rotated"), revision=3)).warning(
            "something %s", "happened", extra={"reason": "StepFailed"}
        )
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert {k: line[k] for k in ("message", "namespace", "name", "revision", "phase", "reason", "severity")} == {
        "message": f"{NS}/{NAME}: something happened", "namespace": NS, "name": NAME, "revision": 3,
        "phase": "Idle", "reason": "StepFailed", "severity": "warn",
    }  # fmt: skip


# --- the fail-fast bound ------------------------------------------------------------------------


def spec(**verify: str) -> dict[str, Any]:
    return {"secretName": "db", "generate": [{"key": "k"}], "verify": verify}


def test_not_ready_after_is_optional_bounded_and_below_the_timeout() -> None:
    assert parse_spec(spec()).verify.not_ready_after is None
    assert parse_spec(spec()).verify.not_ready_bound == timedelta(minutes=5)
    assert parse_spec(spec(timeout="10m", notReadyAfter="2m")).verify.not_ready_bound == timedelta(minutes=2)
    with pytest.raises(InvalidSpec, match=r"spec\.verify\.notReadyAfter: must be shorter than timeout"):
        parse_spec(spec(timeout="2m", notReadyAfter="2m"))
    with pytest.raises(InvalidSpec, match=r"spec\.verify\.notReadyAfter: must be between 10s and 24h"):
        parse_spec(spec(notReadyAfter="5s"))


@pytest.mark.parametrize("verify", [{}, {"timeout": "10m", "notReadyAfter": "3m"}])
def test_not_ready_after_survives_the_snapshot(verify: dict[str, str]) -> None:
    parsed = parse_spec(spec(**verify))
    assert spec_from_snapshot(spec_to_snapshot(parsed), parsed) == parsed


def unready_pod(created: datetime, turned_unready: datetime | None = None) -> dict[str, Any]:
    ready = {"type": "Ready", "status": "False"}
    if turned_unready is not None:
        ready["lastTransitionTime"] = turned_unready.isoformat()
    return {
        "metadata": {"name": "web-1", "creationTimestamp": created.isoformat()},
        "status": {"conditions": [ready], "containerStatuses": [{"name": "app", "ready": False, "state": {}}]},
    }


def test_a_pod_not_ready_for_the_bound_fails_and_is_named_with_its_unready_containers() -> None:
    pod = unready_pod(T0)
    bound = timedelta(minutes=5)

    waiting = pods.pod_verdict(
        pod, now=T0 + bound - timedelta(seconds=1), stable_for=timedelta(0), not_ready_after=bound
    )
    failed = pods.pod_verdict(pod, now=T0 + bound, stable_for=timedelta(0), not_ready_after=bound)

    assert (waiting.state, waiting.reason) == (pods.PodState.WAITING, "NotReady")
    assert (failed.state, failed.reason) == (pods.PodState.FAILED, "NotReadyTooLong")
    assert failed.message == "pod web-1 has not been Ready for 300s (verify.notReadyAfter); containers not ready: app"


def test_a_pod_that_was_ready_counts_from_when_it_turned_unready() -> None:
    pod = unready_pod(T0, turned_unready=T0 + timedelta(minutes=10))
    verdict = pods.pod_verdict(
        pod, now=T0 + timedelta(minutes=12), stable_for=timedelta(0), not_ready_after=timedelta(minutes=5)
    )
    assert verdict.state is pods.PodState.WAITING
    assert pods.not_ready_since(pod) == T0 + timedelta(minutes=10)


# --- startup without a cluster --------------------------------------------------------------------


def test_run_without_credentials_exits_at_once_with_one_line_saying_what_it_looked_for(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env |= {"KUBECONFIG": str(tmp_path / "nowhere"), "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "secretrotation", "run", "--namespace", "shop", "--metrics-port", "0"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert done.returncode == 1, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "no in-cluster credentials" in lines[0] and f"$KUBECONFIG={tmp_path / 'nowhere'}" in lines[0], lines
