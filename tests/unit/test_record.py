"""The rotation record: status read into typed values and written back, losslessly and within the CRD."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from secretrotation.core import record
from statuscheck import STATUS_SCHEMA, undeclared

# A status as the operator before the redesign wrote it, mid-rotation with every field set:
# an upgrade in mid-rotation must resume from exactly this.
IN_FLIGHT: dict[str, Any] = {
    "observedGeneration": 3,
    "phase": "RollingBack",
    "revision": 4,
    "currentSecret": "db-v4",
    "retainedSecrets": ["db-v3"],
    "pendingDeletion": [{"name": "db-v2", "reason": "StillReferenced", "message": "Secret db-v2 is still used"}],
    "adoptedSecret": {"name": "db", "referenced": False},
    "rotation": {
        "revision": 5,
        "secret": "db-v5",
        "reason": "Requested",
        "startedAt": "2026-03-01T12:00:00Z",
        "generation": 3,
        "spec": {"secretName": "db", "generate": [{"key": "username", "constant": True}]},
        "targets": [
            {
                "kind": "Deployment",
                "name": "web",
                "changes": [
                    {"path": "/spec/template/spec/volumes/0/secret/secretName", "from": "db-v4", "to": "db-v5"}
                ],
                "switched": True,
            }
        ],
        "previousSecret": "db-v4",
        "request": "2026-03-01T11:59:00Z",
        "deadline": "2026-03-01T12:10:00Z",
        "bindings": [{"kind": "RoleBinding", "name": "reads"}],
        "failure": {"reason": "VerificationFailed", "message": "Deployment web: pod web-2: CrashLoopBackOff"},
        "rollbackStartedAt": "2026-03-01T12:03:00Z",
    },
    "targets": [{"kind": "Deployment", "name": "web", "state": "Verifying", "message": "waiting", "secret": "db-v5"}],
    "untrackedReferences": [{"kind": "CronJob", "name": "nightly"}],
    "lastHandledRequest": "2026-03-01T11:59:00Z",
    "consecutiveFailures": 1,
    "lastFailure": {"reason": "VerificationFailed", "message": "earlier"},
    "lastFailureTime": "2026-02-28T12:00:00Z",
    "failedGeneration": 2,
    "nextRotationTime": "2026-03-02T12:00:00Z",
    "lastRotationTime": "2026-03-01T10:00:00Z",
    "conditions": [
        {
            "type": "Ready",
            "status": "False",
            "observedGeneration": 3,
            "lastTransitionTime": "2026-03-01T12:00:00Z",
            "reason": "RollingBack",
            "message": "rolling back",
        }
    ],
}


def test_a_status_written_before_the_redesign_reads_and_writes_back_unchanged() -> None:
    assert record.write(record.read(IN_FLIGHT)) == IN_FLIGHT


def test_every_field_the_record_writes_is_declared_in_the_crd() -> None:
    assert undeclared(record.write(record.read(IN_FLIGHT)), STATUS_SCHEMA) == []


def test_an_empty_status_is_an_idle_record_that_writes_no_empty_values() -> None:
    idle = record.read({})
    assert (idle.phase, idle.rotation, idle.current, idle.busy) == (record.Phase.IDLE, None, None, False)
    assert record.write(idle) == {"observedGeneration": 0, "phase": "Idle", "conditions": []}


def test_a_phase_without_a_rotation_in_flight_reads_as_idle() -> None:
    assert record.read({"phase": "Verifying"}).phase is record.Phase.IDLE


def test_versions_of_interest_are_every_version_the_record_names() -> None:
    assert record.read(IN_FLIGHT).versions_of_interest() == {"db-v2", "db-v3", "db-v4", "db-v5"}


def test_history_reads_and_writes_back_unchanged_and_is_declared_in_the_crd() -> None:
    history = [
        {"revision": 3, "secret": "db-v3", "reason": "Requested", "startedAt": "2026-03-01T12:00:00Z",
         "finishedAt": "2026-03-01T12:02:00Z", "result": "RolledBack",
         "failure": {"reason": "VerificationFailed", "message": "pod web-2: CrashLoopBackOff"}},
        {"revision": 2, "secret": "db-v2", "reason": "Scheduled", "startedAt": "2026-02-28T12:00:00Z",
         "finishedAt": "2026-02-28T12:01:00Z", "result": "Succeeded"},
    ]  # fmt: skip
    status = {**IN_FLIGHT, "history": history}

    assert record.write(record.read(status)) == status
    assert undeclared(record.write(record.read(status)), STATUS_SCHEMA) == []


def test_history_keeps_the_last_ten_rotations_newest_first() -> None:
    rec = record.read(IN_FLIGHT)
    for revision in range(1, 13):
        assert rec.rotation is not None
        rec.rotation = replace(rec.rotation, revision=revision, version=f"db-v{revision}")
        rec.ended(datetime(2026, 3, 1, tzinfo=UTC), record.Result.SUCCEEDED)

    assert [e.revision for e in rec.history] == list(range(12, 2, -1))
    assert len(record.write(rec)["history"]) == record.MAX_HISTORY
