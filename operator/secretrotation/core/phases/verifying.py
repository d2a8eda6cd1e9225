"""Verifying: every switched workload must roll out, and its new pods become Ready and stay Ready.

The rules live in ``rules.health``; this phase asks them for each target, fails
the rotation at the first finding, and promotes the new version once all pass.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from secretrotation.core import references
from secretrotation.core.conditions import Reason, truncate
from secretrotation.core.phases import failing
from secretrotation.core.phases.step import Step
from secretrotation.core.plan import Plan
from secretrotation.core.record import Adopted, Phase, TargetReport
from secretrotation.core.rules import Finding, health, trigger
from secretrotation.core.world import Obj

MAX_STATUS_TARGETS = 64
# Progress alone (a pod turned Ready, a replica count moved) is written at most this often: what a
# waiting rotation costs must not grow with its events. A failure or a promotion is written at once.
PROGRESS_EVERY = timedelta(seconds=30)


def verifying(step: Step) -> Plan:
    rotation = step.rotation
    new, credential = rotation.version, step.credential
    reports: list[TargetReport] = []
    pending: list[str] = []
    wake_at = rotation.deadline

    def on_new_version(pod: Obj) -> bool:
        return credential.uses(references.pod_spec_of({**pod, "kind": "Pod"}), new)

    for target in rotation.targets:
        workload = step.observed.objects.workload(target.kind, target.name)
        moved = health.switch_holds(target, workload, "verification")
        if moved is not None:
            # Never promote a version a target no longer references: it would be "verified" unused.
            return _failed(step, reports, target.kind, target.name, moved)
        assert workload is not None, "switch_holds reports a workload that is gone"
        verify = step.spec.verify
        view, wake = health.view_of(workload, on_new_version, step.observed, verify.stable_for, verify.not_ready_bound)
        verdict = health.judge(view, wake)
        if verdict.failure is not None:
            return _failed(step, reports, target.kind, target.name, verdict.failure)
        state = "Verified" if verdict.done else "Verifying"
        reports.append(TargetReport(target.kind, target.name, state, truncate(verdict.message), new))
        if not verdict.done:
            pending.append(verdict.message)
            wake_at = health.earliest(wake_at, verdict.wake_at)
    step.record.targets = reports[:MAX_STATUS_TARGETS]
    if pending:
        late = health.within_deadline(rotation.deadline, step.now, step.spec.verify.timeout, "; ".join(pending[:3]))
        if late is not None:
            return failing.fail(step, Reason(late.reason), late.message)
        progress_only = step.before.observed_generation == step.resource.generation
        if progress_only and rotation.reported_at is not None and step.now - rotation.reported_at < PROGRESS_EVERY:
            return Plan(dict(step.resource.status), wake_at=wake_at)  # progress only: written later, or never
        step.record.rotation = replace(rotation, reported_at=step.now)
        step.in_flight(Reason.VERIFYING, "; ".join(pending[:3]))
        return step.done(wake_at=wake_at)
    # Never report "verified" from memory: the last look before promotion is a fresh LIST.
    step.observed.require_fresh()
    return promote(step)


def _failed(step: Step, judged: list[TargetReport], kind: str, name: str, finding: Finding) -> Plan:
    """Fail the rotation on ``finding``: each target judged so far keeps its own message, the failing one says why."""
    failed = TargetReport(kind, name, "Failed", truncate(finding.message), step.rotation.version)
    step.record.targets = [*judged, failed][:MAX_STATUS_TARGETS]
    return failing.fail(step, Reason(finding.reason), finding.message)


def promote(step: Step) -> Plan:
    """The new version is in use: record it, reset the failure count, and go on to collect old versions."""
    rec, rotation, spec, now = step.record, step.rotation, step.spec, step.now
    rec.revision = rotation.revision
    rec.current = rotation.version
    rec.last_rotation_time = now
    rec.next_rotation_time = trigger.next_rotation_after_success(spec, now)
    rec.consecutive_failures = 0
    rec.last_failure = None
    rec.last_failure_time = None
    rec.failed_generation = 0
    if not rotation.targets:
        rec.targets = []  # no report of an earlier rotation's targets may stay next to this version
    if rotation.previous == spec.base_name:
        rec.adopted = Adopted(spec.base_name, referenced=True)
    rec.phase = Phase.COLLECTING_GARBAGE  # the Promoted Event comes with what collecting did, one step on
    step.in_flight(Reason.COLLECTING_GARBAGE, "collecting old versions")
    return step.done(requeue=True)
