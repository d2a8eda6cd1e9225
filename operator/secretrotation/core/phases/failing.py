"""How a rotation ends when it fails: roll back what was switched, or stop before anything was.

``fail`` hands a rotation with switched targets to the RollingBack phase.
``abort`` ends one that switched nothing, or whose rollback is complete: it
drops the staged version (only past the collect rules) and records the failure,
with the backed-off time of the next scheduled attempt.
"""

from __future__ import annotations

from dataclasses import replace

from secretrotation.core.conditions import Condition, Reason, truncate
from secretrotation.core.phases.step import Step
from secretrotation.core.plan import Plan
from secretrotation.core.record import Blocked, Failure, Phase, Result, TargetReport
from secretrotation.core.rules import collect, trigger

MAX_STATUS_TARGETS = 64


def fail(step: Step, reason: Reason, message: str) -> Plan:
    """Verification failed: record why, and roll back every switched target."""
    rotation = step.rotation
    step.record.rotation = replace(
        rotation, failure=Failure(str(reason), truncate(message)), rollback_started_at=step.now
    )
    step.record.phase = Phase.ROLLING_BACK
    step.event("RotationFailed", message, warning=True)
    step.in_flight(Reason.ROLLING_BACK, f"rolling back: {message}")
    return step.done(requeue=True)


def abort(step: Step, reason: Reason, message: str, *, delete_staged: bool = True, announce: bool = True) -> Plan:
    """Stop a rotation that switched nothing (any more): drop the staged version and report."""
    rotation = step.rotation
    if delete_staged:
        removal = step.credential.removal(
            step.context, rotation.version, step.record.current, within_retain=False, switched_at=None
        )
        finding = collect.judge(removal.candidate) if removal is not None else None
        if removal is not None and finding is None:
            step.observed.require_fresh()  # a deletion is judged on objects listed now, not remembered
            step.actions.extend(removal.actions)
        elif finding is not None and finding.reason != collect.NOT_OWNED:
            step.record.pending_deletion.append(Blocked(rotation.version, finding.reason, finding.message))
            step.event("CollectionBlocked", finding.message, warning=True)
    return _finish_failed(step, reason, message, announce=announce)


def _finish_failed(step: Step, reason: Reason, message: str, *, announce: bool) -> Plan:
    rec, rotation = step.record, step.rotation
    switched = [t for t in rotation.targets if t.switched]
    if switched:
        # Each target says what verification last saw of it, not the failure of whichever target failed first.
        seen = {(r.kind, r.name): r.message for r in rec.targets or () if r.version == rotation.version}
        reports = [
            TargetReport(
                t.kind, t.name, "RolledBack", _rolled_back(seen.get((t.kind, t.name)), message), rotation.previous
            )
            for t in switched
        ]
        rec.targets = reports[:MAX_STATUS_TARGETS]
    rec.consecutive_failures += 1
    rec.last_failure_time = step.now
    rec.last_failure = Failure(str(reason), truncate(message))
    rec.failed_generation = rotation.generation or step.resource.generation
    rec.next_rotation_time = trigger.next_attempt_after_failure(step.spec, step.now, rec.consecutive_failures)
    if trigger.fought_over(rec):
        rec.next_rotation_time = None
        message = truncate(
            f"{message}; reverted by someone else {rec.consecutive_failures} times in a row (a GitOps tool's "
            "self-heal?): not retried on schedule until the spec changes or a rotation is requested"
        )
        rec.last_failure = Failure(str(reason), message)
    rec.ended(step.now, Result.ROLLED_BACK if switched else Result.FAILED, rec.last_failure)
    rec.phase = Phase.IDLE
    rec.rotation = None
    if announce:
        step.event("RotationFailed", message, warning=True)
    request = step.pending_request()
    if request is not None:  # requested while this rotation ran: the next one starts now
        step.requested(request)
        return step.done(requeue=True)
    step.conditions(
        Condition("Ready", False, Reason.ROTATION_FAILED, message),
        Condition("Stalled", True, reason, message),
    )
    return step.done(wake_at=rec.next_rotation_time)


def _rolled_back(seen: str | None, failure: str) -> str:
    """A rolled-back target's message: what verification last saw of it, else the rotation's failure."""
    return truncate(f"rolled back; last seen: {seen}" if seen else f"rolled back: {failure}")
