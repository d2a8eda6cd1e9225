"""Prometheus metrics, all prefixed ``secretrotation_``.

Derived from status transitions, so they say what the status says. Labels are
bounded: namespace and resource name, phase, result, reason (a documented
condition reason, else ``Other``), condition type and status, workload kind, and
the base name a rotation rotates (one per resource). Never a version name, a
hash or anything derived from data.

The ``_created`` series prometheus-client adds to every counter and histogram are
switched off: they would double the series count, and the creation time of a
counter in this process says nothing a restart does not (``process_start_time_seconds``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from secretrotation.core import plan, record
from secretrotation.core.conditions import Reason
from secretrotation.core.objects import parse_time
from secretrotation.core.rules.trigger import Trigger

disable_created_metrics()  # type: ignore[no-untyped-call]

CONDITION_TYPES = ("Ready", "Reconciling", "Stalled", "GarbageCollected")
CONDITION_STATUSES = ("True", "False", "Unknown")
REASONS = frozenset(reason.value for reason in Reason)
OTHER = "Other"  # any reason outside the documented set: the label stays bounded

ROTATIONS_STARTED = Counter(
    "secretrotation_rotations_started_total", "Rotations started.", ["namespace", "name", "reason"]
)
ROTATIONS_FINISHED = Counter(
    "secretrotation_rotations_finished_total",
    "Rotations finished, by result: succeeded or failed (rolled back or stopped before switching).",
    ["namespace", "name", "result"],
)
ROTATION_DURATION = Histogram(
    "secretrotation_rotation_duration_seconds",
    "Time from a rotation's start to its end.",
    ["result"],
    buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 3600),
)
CURRENT_REVISION = Gauge("secretrotation_current_revision", "Revision of the version in use.", ["namespace", "name"])
LAST_SUCCESS = Gauge(
    "secretrotation_last_success_timestamp_seconds", "When the last rotation succeeded.", ["namespace", "name"]
)
NEXT_ROTATION = Gauge(
    "secretrotation_next_rotation_timestamp_seconds", "When the next scheduled rotation is due.", ["namespace", "name"]
)
WORKLOADS_ROLLED = Counter(
    "secretrotation_workloads_rolled_total", "Workloads switched to a new version.", ["namespace", "kind"]
)
PHASE = Gauge("secretrotation_phase", "1 for the phase each rotation is in.", ["namespace", "name", "phase"])
GC_BLOCKED = Counter(
    "secretrotation_gc_blocked_total",
    "Deletions of old versions blocked because something still references them.",
    ["namespace", "name"],
)
STEP_ERRORS = Counter(
    "secretrotation_step_errors_total", "Reconcile steps that failed and will be retried.", ["namespace", "name"]
)
CONDITION = Gauge(
    "secretrotation_condition",
    "1 for the current status of each condition present on a rotation, 0 for the other two (as kube-state-metrics).",
    ["namespace", "name", "type", "status"],
)
FAILURES = Counter(
    "secretrotation_failures_total",
    "Times a rotation stalled for a human (failed and rolled back, refused, rollback blocked), by reason; "
    "an invalid spec counts once per generation.",
    ["namespace", "name", "reason"],
)
INFO = Gauge(
    "secretrotation_rotation_info",
    "1 for every SecretRotation, succeeded or not: what it rotates (kind Secret or ServiceAccount, and its base name).",
    ["namespace", "name", "kind", "secret"],
)
CREATED = Gauge(
    "secretrotation_created_timestamp_seconds",
    "When the SecretRotation was created (alert on it unless a last success exists: never rotated).",
    ["namespace", "name"],
)
LEADER = Gauge(
    "secretrotation_leader",
    "1 while this replica acts (holds the leader Lease, or runs without --leader-elect), 0 while it stands by.",
)


_described: dict[tuple[str, str], tuple[str, str]] = {}  # (namespace, name) -> the INFO labels set


def update(
    namespace: str,
    name: str,
    before_status: Mapping[str, Any],
    step: plan.Plan,
    now_epoch: float,
    body: Mapping[str, Any] | None = None,
) -> None:
    """Update every metric from one step: its status transition, actions and events (and ``body``: what it is)."""
    before, after = record.read(before_status), record.read(step.status)
    if body is not None:
        describe(namespace, name, body)
    stall = _stalled_reason(after)
    if stall is not None and (
        stall != _stalled_reason(before)
        or (stall == Reason.INVALID_SPEC and after.observed_generation != before.observed_generation)
    ):
        FAILURES.labels(namespace, name, bounded_reason(stall)).inc()
    for kind in CONDITION_TYPES:
        condition = after.condition(kind)
        for status in CONDITION_STATUSES:
            if condition is None:
                _remove(CONDITION, namespace, name, kind, status)
            else:
                CONDITION.labels(namespace, name, kind, status).set(1 if condition.get("status") == status else 0)
    old, new = before.rotation, after.rotation
    if new is not None and (old is None or old.revision != new.revision):
        ROTATIONS_STARTED.labels(namespace, name, new.trigger).inc()
    if old is not None and new is None:
        result = "succeeded" if after.revision >= old.revision else "failed"
        ROTATIONS_FINISHED.labels(namespace, name, result).inc()
        if old.started_at is not None:
            ROTATION_DURATION.labels(result).observe(max(0.0, now_epoch - old.started_at.timestamp()))
    if before.phase is record.Phase.ROLLING_OUT:
        for action in step.actions:
            if isinstance(action, plan.PatchWorkload):
                WORKLOADS_ROLLED.labels(namespace, action.kind).inc()
    for event in step.events:
        if event.reason == "CollectionBlocked":
            GC_BLOCKED.labels(namespace, name).inc()
    CURRENT_REVISION.labels(namespace, name).set(after.revision)
    for gauge, moment in ((LAST_SUCCESS, after.last_rotation_time), (NEXT_ROTATION, after.next_rotation_time)):
        if moment is not None:
            gauge.labels(namespace, name).set(moment.timestamp())
        else:
            _remove(gauge, namespace, name)
    for phase in record.Phase:
        PHASE.labels(namespace, name, phase.value).set(1 if phase is after.phase else 0)


def describe(namespace: str, name: str, body: Mapping[str, Any]) -> None:
    """The info series (kind, base name) and creation time of one SecretRotation, from its body."""
    spec = body.get("spec") or {}
    account = spec.get("serviceAccount")
    kind, base = (
        ("ServiceAccount", account.get("name")) if isinstance(account, Mapping) else ("Secret", spec.get("secretName"))
    )
    labels = (kind, base if isinstance(base, str) else "")
    previous = _described.get((namespace, name))
    if previous is not None and previous != labels:
        _remove(INFO, namespace, name, *previous)
    INFO.labels(namespace, name, *labels).set(1)
    _described[(namespace, name)] = labels
    created = parse_time((body.get("metadata") or {}).get("creationTimestamp"))
    if created is not None:
        CREATED.labels(namespace, name).set(created.timestamp())


def bounded_reason(reason: str) -> str:
    """``reason`` if it is one of the documented condition reasons, else ``Other``."""
    return reason if reason in REASONS else OTHER


def _stalled_reason(rec: record.Record) -> str | None:
    stalled = rec.condition("Stalled")
    return str(stalled.get("reason") or "") if stalled is not None and stalled.get("status") == "True" else None


def _remove(metric: Gauge | Counter, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)


def forget(namespace: str, name: str) -> None:
    """Drop every per-resource series of a deleted SecretRotation: no series outlives its resource."""
    for metric in (CURRENT_REVISION, LAST_SUCCESS, NEXT_ROTATION, GC_BLOCKED, STEP_ERRORS, CREATED):
        _remove(metric, namespace, name)
    described = _described.pop((namespace, name), None)
    if described is not None:
        _remove(INFO, namespace, name, *described)
    for reason in (*REASONS, OTHER):
        _remove(FAILURES, namespace, name, reason)
    for kind in CONDITION_TYPES:
        for status in CONDITION_STATUSES:
            _remove(CONDITION, namespace, name, kind, status)
    for phase in record.Phase:
        _remove(PHASE, namespace, name, phase.value)
    for trigger in Trigger:
        _remove(ROTATIONS_STARTED, namespace, name, trigger.value)
    for result in ("succeeded", "failed"):
        _remove(ROTATIONS_FINISHED, namespace, name, result)
