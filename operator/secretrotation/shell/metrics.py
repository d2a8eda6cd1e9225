"""Prometheus metrics, all prefixed ``secretrotation_``.

Derived from status transitions, so they say what the status says. Labels are
bounded: namespace and resource name, phase, result, reason and workload kind.
Never a version name, a hash or anything derived from data.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from secretrotation.core import plan, record
from secretrotation.core.rules.trigger import Trigger

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
LEADER = Gauge(
    "secretrotation_leader",
    "1 while this replica acts (holds the leader Lease, or runs without --leader-elect), 0 while it stands by.",
)


def update(namespace: str, name: str, before_status: Mapping[str, Any], step: plan.Plan, now_epoch: float) -> None:
    """Update every metric from one step: its status transition, actions and events."""
    before, after = record.read(before_status), record.read(step.status)
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


def _remove(metric: Gauge | Counter, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)


def forget(namespace: str, name: str) -> None:
    """Drop every per-resource series of a deleted SecretRotation: no series outlives its resource."""
    for metric in (CURRENT_REVISION, LAST_SUCCESS, NEXT_ROTATION, GC_BLOCKED, STEP_ERRORS):
        _remove(metric, namespace, name)
    for phase in record.Phase:
        _remove(PHASE, namespace, name, phase.value)
    for trigger in Trigger:
        _remove(ROTATIONS_STARTED, namespace, name, trigger.value)
    for result in ("succeeded", "failed"):
        _remove(ROTATIONS_FINISHED, namespace, name, result)
