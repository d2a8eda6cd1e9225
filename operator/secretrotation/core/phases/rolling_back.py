"""RollingBack: return every switched target to the version in use, and wait until it runs there again.

The old version was never touched, so the way back is the same patch in
reverse. A target that holds neither version's references was changed by
someone else: it is not touched, and the rotation stalls for a human.
"""

from __future__ import annotations

from secretrotation.core import references, rollout
from secretrotation.core.conditions import Condition, Reason
from secretrotation.core.phases import failing
from secretrotation.core.phases.step import Step
from secretrotation.core.plan import DeletePod, PatchWorkload, Plan
from secretrotation.core.record import Failure
from secretrotation.core.world import Obj


def rolling_back(step: Step) -> Plan:
    rotation = step.rotation
    failure = rotation.failure or Failure(Reason.VERIFICATION_FAILED, "rollback")
    started = rotation.rollback_started_at or step.now
    pending: list[str] = []
    for target in rotation.targets:
        workload = step.observed.objects.workload(target.kind, target.name)
        if workload is None:
            continue
        if target.on_new(workload):
            # Also a target whose switch was never recorded (a step that failed after patching it):
            # only this rotation puts a workload on its version.
            reverse = tuple(c.reversed() for c in target.changes)
            step.actions.append(PatchWorkload(target.kind, target.name, reverse, workload=workload))
            pending.append(f"{target.label}: reverting")
            continue
        if not target.switched:
            continue
        if not target.on_old(workload):
            return _stalled(step, f"{target.label} was changed by someone else; cannot revert it safely")
        pending += _progress(step, workload, rotation.version)
    if pending:
        if step.now - started >= step.spec.verify.timeout:
            seconds = int(step.spec.verify.timeout.total_seconds())
            return _stalled(step, f"rollback not complete within {seconds}s: {pending[0]}")
        step.in_flight(Reason.ROLLING_BACK, f"rolling back: {failure.message}; " + "; ".join(pending[:3]))
        return step.done(requeue=bool(step.actions), wake_at=started + step.spec.verify.timeout)
    step.event("RolledBack", f"every target is back on {rotation.previous}")
    return failing.abort(step, Reason(failure.reason), failure.message, announce=False)


def _progress(step: Step, workload: Obj, failed: str) -> list[str]:
    """What a reverted workload still waits for; deletes StatefulSet pods stuck on the failed revision."""
    label = f"{workload['kind']} {workload['metadata']['name']}"
    stuck = [
        p
        for p in step.observed.objects.pods_of(workload)
        if step.credential.uses(references.pod_spec_of({**p, "kind": "Pod"}), failed)
        and not p["metadata"].get("deletionTimestamp")
    ]
    if workload["kind"] == "StatefulSet":
        # OrderedReady StatefulSets never replace a pod stuck on a broken revision
        # by themselves (kubernetes/kubernetes#67250): delete it once reverted.
        step.actions.extend(DeletePod(p["metadata"]["name"], p["metadata"]["uid"]) for p in stuck)
    status = rollout.rollout_status(workload)
    if stuck:
        return [f"{label}: {len(stuck)} pods still on {failed}"]
    if not status.done and not status.unsupported:
        return [f"{label}: {status.message}"]
    return []


def _stalled(step: Step, message: str) -> Plan:
    step.event("RollbackFailed", message, warning=True)
    step.conditions(
        Condition("Ready", False, Reason.ROLLBACK_FAILED, message),
        Condition("Stalled", True, Reason.ROLLBACK_FAILED, message),
    )
    return step.done()
