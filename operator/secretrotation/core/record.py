"""The rotation record: ``status`` read into typed values, and written back.

This is the only module that knows status keys. The record is the cursor of the
state machine: the operator can die at any line, and the next step resumes from
what the last written record says.

Field names fit both credential kinds in Python (``current``, ``version``);
the status keys keep their ``v1alpha1`` names (``currentSecret``,
``rotation.secret``), which in a ServiceAccount rotation hold account names.
Every key written here is declared in the CRD, and nothing written is an empty
string (a unit test checks both against the schema).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from secretrotation.core.objects import parse_time, timestamp, value_at


class Phase(enum.StrEnum):
    IDLE = "Idle"
    STAGING = "Staging"
    ROLLING_OUT = "RollingOut"
    VERIFYING = "Verifying"
    ROLLING_BACK = "RollingBack"
    COLLECTING_GARBAGE = "CollectingGarbage"


@dataclass(frozen=True)
class Change:
    """One string in a workload that a rotation rewrites (a JSON pointer and both values)."""

    path: str
    old: str
    new: str

    def reversed(self) -> Change:
        return Change(self.path, self.new, self.old)


@dataclass(frozen=True)
class Target:
    """A workload this rotation switches, the exact changes, and whether it has been switched."""

    kind: str
    name: str
    changes: tuple[Change, ...]
    switched: bool = False

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}"

    def on_new(self, workload: Mapping[str, Any]) -> bool:
        """The workload holds every reference this rotation switched it to."""
        return all(value_at(workload, c.path) == c.new for c in self.changes)

    def on_old(self, workload: Mapping[str, Any]) -> bool:
        """The workload holds every reference it had before this rotation switched it."""
        return all(value_at(workload, c.path) == c.old for c in self.changes)


@dataclass(frozen=True)
class Failure:
    reason: str
    message: str


class Result(enum.StrEnum):  # how a rotation ended
    SUCCEEDED = "Succeeded"
    ROLLED_BACK = "RolledBack"  # a target was switched, then switched back
    FAILED = "Failed"  # stopped before any target was switched


MAX_HISTORY = 10  # rotations kept in status.history


@dataclass(frozen=True)
class Ended:
    """One rotation in ``status.history``: names, times and reasons, never a value."""

    revision: int
    version: str
    trigger: str
    started_at: datetime | None
    finished_at: datetime | None
    result: str  # a Result
    failure: Failure | None = None


@dataclass(frozen=True)
class Blocked:
    """An old version whose deletion is blocked, and why."""

    name: str
    reason: str
    message: str


@dataclass(frozen=True)
class TargetReport:
    """What status tells about one target: its state and the version it runs."""

    kind: str
    name: str
    state: str
    message: str
    version: str | None = None


@dataclass(frozen=True)
class WorkloadRef:
    kind: str
    name: str


@dataclass(frozen=True)
class Adopted:
    """A base Secret or account the first rotation adopted (never collected; reported once unreferenced)."""

    name: str
    referenced: bool


@dataclass(frozen=True)
class InFlight:
    """The rotation under way."""

    revision: int
    version: str  # the version being staged, switched to and verified
    trigger: str
    started_at: datetime | None  # None only in a hand-edited record
    generation: int
    spec: Mapping[str, Any]  # the spec snapshot it started with (no constants)
    targets: tuple[Target, ...] = ()
    previous: str | None = None  # the version in use when it started (None: nothing yet)
    request: str | None = None
    deadline: datetime | None = None
    bindings: tuple[WorkloadRef, ...] | None = None  # bindings carried to a new account version
    failure: Failure | None = None
    rollback_started_at: datetime | None = None
    nonce: str | None = None  # written before anything is created; every object created carries it
    reported_at: datetime | None = None  # verification progress last written to status

    def with_targets(self, targets: Sequence[Target]) -> InFlight:
        return replace(self, targets=tuple(targets))


@dataclass
class Record:
    """The whole status of one SecretRotation, as typed values. Mutable: a step edits a fresh copy."""

    phase: Phase = Phase.IDLE
    observed_generation: int = 0
    revision: int = 0
    highest_revision: int = 0  # every version name up to this one has been used: never again
    current: str | None = None
    retained: list[str] | None = None
    pending_deletion: list[Blocked] = field(default_factory=list)
    adopted: Adopted | None = None
    rotation: InFlight | None = None
    targets: list[TargetReport] | None = None
    untracked: list[WorkloadRef] = field(default_factory=list)
    last_handled_request: str | None = None
    consecutive_failures: int = 0
    last_failure: Failure | None = None
    last_failure_time: datetime | None = None
    failed_generation: int = 0
    next_rotation_time: datetime | None = None
    last_rotation_time: datetime | None = None
    conditions: list[dict[str, Any]] = field(default_factory=list)
    history: list[Ended] = field(default_factory=list)  # newest first, at most MAX_HISTORY

    @property
    def busy(self) -> bool:
        """A rotation is in flight, or an old version waits to be collected: watches matter."""
        return self.rotation is not None or bool(self.pending_deletion)

    def versions_of_interest(self) -> set[str]:
        """Every version a step may stage, switch, keep or collect (the base name is the caller's)."""
        wanted = set(self.retained or [])
        wanted |= {entry.name for entry in self.pending_deletion}
        if self.current:
            wanted.add(self.current)
        if self.rotation is not None:
            wanted.add(self.rotation.version)
            if self.rotation.previous:
                wanted.add(self.rotation.previous)
        return wanted

    def condition(self, kind: str) -> Mapping[str, Any] | None:
        return next((c for c in self.conditions if c.get("type") == kind), None)

    def copy(self) -> Record:
        return replace(
            self,
            retained=None if self.retained is None else list(self.retained),
            pending_deletion=list(self.pending_deletion),
            targets=None if self.targets is None else list(self.targets),
            untracked=list(self.untracked),
            conditions=[dict(c) for c in self.conditions],
            history=list(self.history),
        )

    def ended(self, now: datetime, result: str, failure: Failure | None = None) -> None:
        """Record the rotation in flight as ended (newest first, the last ``MAX_HISTORY`` kept)."""
        assert self.rotation is not None, "only a rotation in flight ends"
        rotation = self.rotation
        entry = Ended(rotation.revision, rotation.version, rotation.trigger, rotation.started_at, now, result, failure)
        self.history = [entry, *self.history][:MAX_HISTORY]


# -- reading ----------------------------------------------------------------------------------


def read(status: Mapping[str, Any]) -> Record:
    """The record in ``status`` as the API returned it; missing fields read as their defaults."""
    rotation = status.get("rotation")
    return Record(
        phase=_phase(status.get("phase")) if rotation else Phase.IDLE,
        observed_generation=int(status.get("observedGeneration") or 0),
        revision=int(status.get("revision") or 0),
        highest_revision=int(status.get("highestRevision") or 0),
        current=status.get("currentSecret") or None,
        retained=list(status["retainedSecrets"]) if "retainedSecrets" in status else None,
        pending_deletion=[
            Blocked(e["name"], e.get("reason", ""), e.get("message", ""))
            for e in status.get("pendingDeletion") or []
            if e.get("name")
        ],
        adopted=_adopted(status.get("adoptedSecret")),
        rotation=_in_flight(rotation) if isinstance(rotation, Mapping) and rotation else None,
        targets=[_report(t) for t in status["targets"]] if "targets" in status else None,
        untracked=[WorkloadRef(u["kind"], u["name"]) for u in status.get("untrackedReferences") or []],
        last_handled_request=status.get("lastHandledRequest") or None,
        consecutive_failures=int(status.get("consecutiveFailures") or 0),
        last_failure=_failure(status.get("lastFailure")),
        last_failure_time=parse_time(status.get("lastFailureTime")),
        failed_generation=int(status.get("failedGeneration") or 0),
        next_rotation_time=parse_time(status.get("nextRotationTime")),
        last_rotation_time=parse_time(status.get("lastRotationTime")),
        conditions=[dict(c) for c in status.get("conditions") or []],
        history=[_ended(e) for e in status.get("history") or [] if isinstance(e, Mapping) and e.get("revision")],
    )


def _phase(text: Any) -> Phase:
    try:
        return Phase(text)
    except ValueError:
        return Phase.STAGING  # a rotation with no readable phase starts over from staging, which is idempotent


def _failure(entry: Any) -> Failure | None:
    if not isinstance(entry, Mapping) or not entry:
        return None
    return Failure(str(entry.get("reason") or ""), str(entry.get("message") or ""))


def _ended(entry: Mapping[str, Any]) -> Ended:
    started, finished = parse_time(entry.get("startedAt")), parse_time(entry.get("finishedAt"))
    version, trigger = str(entry.get("secret") or ""), str(entry.get("reason") or "")
    result, failure = str(entry.get("result") or Result.FAILED), _failure(entry.get("failure"))
    return Ended(int(entry["revision"]), version, trigger, started, finished, result, failure)


def _adopted(entry: Any) -> Adopted | None:
    if not isinstance(entry, Mapping) or not entry.get("name"):
        return None
    return Adopted(entry["name"], bool(entry.get("referenced")))


def _report(entry: Mapping[str, Any]) -> TargetReport:
    return TargetReport(
        entry["kind"], entry["name"], entry.get("state", ""), entry.get("message", ""), entry.get("secret") or None
    )


def _target(entry: Mapping[str, Any]) -> Target:
    changes = tuple(Change(c["path"], c["from"], c["to"]) for c in entry.get("changes") or [])
    return Target(entry["kind"], entry["name"], changes, bool(entry.get("switched")))


def _in_flight(entry: Mapping[str, Any]) -> InFlight:
    bindings = entry.get("bindings")
    return InFlight(
        revision=int(entry["revision"]),
        version=entry["secret"],
        trigger=entry.get("reason") or "",
        started_at=parse_time(entry.get("startedAt")),
        generation=int(entry.get("generation") or 0),
        spec=entry.get("spec") or {},
        targets=tuple(_target(t) for t in entry.get("targets") or []),
        previous=entry.get("previousSecret") or None,
        request=entry.get("request") or None,
        deadline=parse_time(entry.get("deadline")),
        bindings=None if bindings is None else tuple(WorkloadRef(b["kind"], b["name"]) for b in bindings),
        failure=_failure(entry.get("failure")),
        rollback_started_at=parse_time(entry.get("rollbackStartedAt")),
        nonce=entry.get("nonce") or None,
        reported_at=parse_time(entry.get("reportedAt")),
    )


# -- writing ----------------------------------------------------------------------------------


def write(record: Record) -> dict[str, Any]:
    """The status to write for ``record``: absent values are left out, never written empty."""
    status: dict[str, Any] = {"observedGeneration": record.observed_generation, "phase": record.phase.value}
    _put(status, "revision", record.revision or None)
    _put(status, "highestRevision", record.highest_revision or None)
    _put(status, "currentSecret", record.current)
    if record.retained is not None:
        status["retainedSecrets"] = list(record.retained)
    if record.pending_deletion:
        status["pendingDeletion"] = [
            {"name": b.name, "reason": b.reason, "message": b.message} for b in record.pending_deletion
        ]
    if record.adopted is not None:
        status["adoptedSecret"] = {"name": record.adopted.name, "referenced": record.adopted.referenced}
    if record.rotation is not None:
        status["rotation"] = _write_in_flight(record.rotation)
    if record.targets is not None:
        status["targets"] = [_write_report(t) for t in record.targets]
    if record.untracked:
        status["untrackedReferences"] = [{"kind": u.kind, "name": u.name} for u in record.untracked]
    _put(status, "lastHandledRequest", record.last_handled_request)
    _put(status, "consecutiveFailures", record.consecutive_failures or None)
    if record.last_failure is not None:
        status["lastFailure"] = {"reason": record.last_failure.reason, "message": record.last_failure.message}
    _put(status, "lastFailureTime", _time(record.last_failure_time))
    _put(status, "failedGeneration", record.failed_generation or None)
    _put(status, "nextRotationTime", _time(record.next_rotation_time))
    _put(status, "lastRotationTime", _time(record.last_rotation_time))
    status["conditions"] = [dict(c) for c in record.conditions]
    if record.history:
        status["history"] = [_write_ended(e) for e in record.history]
    return status


def _write_ended(ended: Ended) -> dict[str, Any]:
    entry: dict[str, Any] = {"revision": ended.revision, "secret": ended.version, "reason": ended.trigger}
    entry |= {"startedAt": _time(ended.started_at), "finishedAt": _time(ended.finished_at), "result": ended.result}
    if ended.failure is not None:
        entry["failure"] = {"reason": ended.failure.reason, "message": ended.failure.message}
    return {key: value for key, value in entry.items() if value is not None and value != ""}


def _put(status: dict[str, Any], key: str, value: Any) -> None:
    if value is not None and value != "":
        status[key] = value


def _time(moment: datetime | None) -> str | None:
    return timestamp(moment) if moment is not None else None


def _write_report(report: TargetReport) -> dict[str, str]:
    entry = {"kind": report.kind, "name": report.name, "state": report.state, "message": report.message}
    _put(entry, "secret", report.version)
    return entry


def _write_in_flight(rotation: InFlight) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "revision": rotation.revision,
        "secret": rotation.version,
        "reason": rotation.trigger,
        "generation": rotation.generation,
        "spec": dict(rotation.spec),
        "targets": [
            {
                "kind": t.kind,
                "name": t.name,
                "changes": [{"path": c.path, "from": c.old, "to": c.new} for c in t.changes],
                "switched": t.switched,
            }
            for t in rotation.targets
        ],
    }
    _put(entry, "startedAt", _time(rotation.started_at))
    _put(entry, "previousSecret", rotation.previous)
    _put(entry, "request", rotation.request)
    _put(entry, "deadline", _time(rotation.deadline))
    if rotation.bindings is not None:
        entry["bindings"] = [{"kind": b.kind, "name": b.name} for b in rotation.bindings]
    if rotation.failure is not None:
        entry["failure"] = {"reason": rotation.failure.reason, "message": rotation.failure.message}
    _put(entry, "rollbackStartedAt", _time(rotation.rollback_started_at))
    _put(entry, "nonce", rotation.nonce)
    _put(entry, "reportedAt", _time(rotation.reported_at))
    return entry
