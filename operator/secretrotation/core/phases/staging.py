"""Staging: create the new version beside the one in use, then decide exactly what will be switched.

Nothing live is touched here. The targets, each with the exact strings that
will be rewritten, are recorded before the first switch, so that a rollback
knows what to revert even if the operator dies mid-rollout. Every preflight
check is asked here: a refusal switches nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from secretrotation.core import names, references
from secretrotation.core.conditions import Condition, Reason
from secretrotation.core.credentials import template_changes
from secretrotation.core.phases import failing, verifying
from secretrotation.core.phases.step import Step
from secretrotation.core.plan import Plan
from secretrotation.core.record import Phase, Target, WorkloadRef
from secretrotation.core.rules import Finding, preflight
from secretrotation.core.world import Obj, Referrer, describe

MAX_UNTRACKED = 20
MAX_NAME_SKIPS = 16  # names found taken, skipped before the rotation stalls as StagedVersionConflict


def _skip_taken_name(step: Step) -> Plan:
    """Something this attempt did not create holds the name (a deleted incarnation's version, a squatter):
    never adopt it, never touch it, and stage under the next name instead."""
    rotation = step.rotation
    revision = rotation.revision + 1
    version = names.version_name(step.spec.base_name, revision)
    step.event("VersionNameTaken", f"{rotation.version} exists and was not created by this rotation; staging {version}")
    step.record.rotation = replace(rotation, revision=revision, version=version)
    step.record.highest_revision = max(step.record.highest_revision, revision)
    step.in_flight(Reason.STAGING, f"staging {version}")
    return step.done(requeue=True)


def staging(step: Step) -> Plan:
    rotation = step.rotation
    staged = step.credential.stage(step.context, rotation)
    if staged.bindings is not None:
        step.record.rotation = rotation = replace(rotation, bindings=staged.bindings)
    if staged.taken and rotation.revision < step.record.revision + 1 + MAX_NAME_SKIPS:
        return _skip_taken_name(step)
    if staged.problem is not None:
        return failing.abort(step, Reason(staged.problem.reason), staged.problem.message, delete_staged=False)
    if staged.waiting is not None:
        late = _staging_late(step, staged.waiting)
        if late is not None:
            return late
        step.actions.extend(staged.actions)
        step.in_flight(Reason.STAGING, staged.waiting)
        wake_at = step.now + staged.wake_after if staged.wake_after else None
        return step.done(requeue=bool(staged.actions), wake_at=wake_at)
    targets, problem = _resolve_targets(step)
    waiting = preflight.not_claimed([(t.kind, t.name) for t in targets], step.observed.claims)
    if waiting is not None:
        step.conditions(
            Condition("Ready", False, Reason.WAITING_FOR_WORKLOAD, waiting.message),
            Condition("Reconciling", True, Reason.WAITING_FOR_WORKLOAD, waiting.message),
        )
        return step.done()
    if problem is not None:
        return failing.abort(step, Reason(problem.reason), problem.message)
    step.record.rotation = rotation = rotation.with_targets(targets)
    if not targets:
        step.event("NoConsumers", f"no workload consumes {step.spec.base_name}; {rotation.version} is promoted unused")
        return verifying.promote(step)
    step.record.phase = Phase.ROLLING_OUT
    # The verification deadline runs from the first switch, not from a wait for a shared workload.
    step.record.rotation = replace(rotation, deadline=step.now + step.spec.verify.timeout)
    step.in_flight(Reason.ROLLING_OUT, f"switching {len(targets)} workloads to {rotation.version}")
    return step.done(requeue=True)


def _staging_late(step: Step, waiting: str) -> Plan | None:
    """Staging that has waited ``verify.timeout`` (for a token, a binding) stops; nothing was switched yet.

    Waiting for another rotation's workload (``WaitingForWorkload``) is not bounded: that is a turn.
    """
    started = step.rotation.started_at
    if started is None or step.now - started < step.spec.verify.timeout:
        return None
    seconds = int(step.spec.verify.timeout.total_seconds())
    return failing.abort(step, Reason.VERIFICATION_FAILED, f"staging did not finish within {seconds}s: {waiting}")


def old_names(step: Step) -> list[str]:
    """The versions a consumer may still reference: the one in use, and the unversioned base."""
    rotation = step.rotation
    names = dict.fromkeys([rotation.previous, step.spec.base_name])
    return [n for n in names if n and n != rotation.version]


def _resolve_targets(step: Step) -> tuple[list[Target], Finding | None]:
    """The workloads to switch with their exact changes, and the first preflight refusal, if any."""
    spec, credential, objects = step.spec, step.credential, step.observed.objects
    new, olds = step.rotation.version, old_names(step)
    candidates = objects.workloads()
    if spec.targets is not None:
        selected = [
            w
            for w in candidates
            if any(t.matches(w["kind"], w["metadata"]["name"], w["metadata"].get("labels") or {}) for t in spec.targets)
        ]
        if not selected:
            step.event("TargetsMatchNothing", "spec.targets match no workload in the namespace", warning=True)
    else:
        selected = candidates
    _report_untracked(step, olds, [w for w in candidates if w not in selected])
    targets: list[Target] = []
    problem: Finding | None = None
    for workload in sorted(selected, key=lambda w: (w["kind"], w["metadata"]["name"])):
        kind, name = workload["kind"], workload["metadata"]["name"]
        pod_spec = references.pod_spec_of(workload)
        consumed = [old for old in olds if credential.uses(pod_spec, old)]
        if not consumed:
            if spec.targets is not None:
                step.event("TargetNotConsuming", f"{kind} {name} does not reference {spec.base_name}")
            continue
        missing = tuple(m for old in consumed for m in credential.missing(step.context, pod_spec, old, new))
        refusal = preflight.judge_target(preflight.TargetCheck(workload, missing))
        if refusal is not None:
            problem = problem or refusal
            continue
        targets.append(Target(kind, name, template_changes(credential, workload, consumed, new)))
    return targets, problem


def _report_untracked(step: Step, olds: Sequence[str], unselected: Sequence[Obj]) -> None:
    """Consumers of the version in use that this rotation will not switch: latent references.

    They keep that version from being collected, and would break at their next deploy if
    it went; so they are named at every rotation, not discovered at the next outage.
    Jobs and CronJobs are never switched (a Job's template is immutable).
    """
    objects = step.observed.objects
    others = [
        *unselected,
        *({**job, "kind": "Job"} for job in objects.jobs),
        *({**cron, "kind": "CronJob"} for cron in objects.listed_cron_jobs()),
    ]
    untracked = [
        WorkloadRef(w["kind"], w["metadata"]["name"])
        for w in others
        if any(step.credential.uses(references.pod_spec_of(w), old) for old in olds)
    ]
    step.record.untracked = untracked[:MAX_UNTRACKED]
    if untracked:
        listed = describe([Referrer(u.kind, u.name) for u in untracked])
        step.event(
            "UntrackedReferences",
            f"{listed} reference {' or '.join(olds)} but are not targets: that version stays until they move",
            warning=True,
        )
