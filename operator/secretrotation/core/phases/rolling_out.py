"""RollingOut: switch every target to the new version, each by a patch that first tests the old values.

A target already switched (by an earlier, interrupted step) is recorded as
switched; one that holds neither the old nor the new values was changed by
someone else, and the rotation fails and rolls back what it did switch.
"""

from __future__ import annotations

from dataclasses import replace

from secretrotation.core.conditions import Reason
from secretrotation.core.markers import Switch
from secretrotation.core.objects import mapping
from secretrotation.core.phases import failing
from secretrotation.core.phases.step import Step
from secretrotation.core.plan import PatchWorkload, Plan
from secretrotation.core.record import Phase, Target
from secretrotation.core.world import Obj, Referrer, describe


def _switch(step: Step, target: Target, workload: Obj) -> PatchWorkload:
    """The switch, marking the workload so that it can be undone even if this rotation is deleted unseen."""
    rotation, resource = step.rotation, step.resource
    switch = Switch(
        resource.name, resource.uid, step.credential.kind, rotation.version, rotation.previous, target.changes
    )
    metadata = mapping(workload.get("metadata"))
    return PatchWorkload(
        target.kind,
        target.name,
        target.changes,
        mark=switch.encode(),
        annotated=bool(metadata.get("annotations")),
        resource_version=metadata.get("resourceVersion"),
        workload=workload,
    )


def rolling_out(step: Step) -> Plan:
    rotation = step.rotation
    if rotation.deadline is not None and step.now >= rotation.deadline:
        # Switching that cannot finish (refused, or fought over) never leaves targets half-switched.
        seconds = int(step.spec.verify.timeout.total_seconds())
        return failing.fail(step, Reason.VERIFICATION_FAILED, f"not every target could be switched within {seconds}s")
    targets: list[Target] = list(rotation.targets)
    for index, target in enumerate(targets):
        workload = step.observed.objects.workload(target.kind, target.name)
        if workload is not None and target.on_new(workload):
            targets[index] = replace(target, switched=True)
        elif workload is not None and target.on_old(workload):
            step.actions.append(_switch(step, target, workload))
            targets[index] = replace(target, switched=True)
        else:
            # Record what this step did switch, so that the rollback reverts it.
            step.record.rotation = rotation.with_targets(targets)
            if workload is None:
                return failing.fail(step, Reason.VERIFICATION_FAILED, f"{target.label} disappeared during the rollout")
            message = f"{target.label} was changed by someone else during the rollout"
            return failing.fail(step, Reason.TARGET_CHANGED_EXTERNALLY, message)
    # The switch is the first report: the targets' own progress follows after PROGRESS_EVERY, or at the end.
    step.record.rotation = rotation = replace(rotation.with_targets(targets), reported_at=step.now)
    step.record.phase = Phase.VERIFYING
    labels = describe([Referrer(t.kind, t.name) for t in targets])
    beside = rotation.previous or "nothing"
    step.event("RollingOut", f"staged {rotation.version} beside {beside}; switched {labels} to it")
    step.in_flight(Reason.VERIFYING, f"verifying {len(targets)} workloads on {rotation.version}")
    return step.done(requeue=True)
