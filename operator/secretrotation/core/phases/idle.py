"""Idle: nothing in flight. Start a rotation when a trigger says so, else keep collecting and report.

Also where an invalid spec is reported: it stops nothing in flight (a rotation
under way finishes with the spec it started with), and it changes nothing.
"""

from __future__ import annotations

from secretrotation.core import names
from secretrotation.core.conditions import Condition, Reason
from secretrotation.core.phases import collecting
from secretrotation.core.phases.step import Step
from secretrotation.core.plan import Plan
from secretrotation.core.record import InFlight, Phase
from secretrotation.core.rules import preflight, trigger
from secretrotation.core.spec import InvalidSpec, spec_to_snapshot


def invalid(step: Step, problem: InvalidSpec) -> Plan:
    step.record.phase = Phase.IDLE
    message = f"invalid spec, nothing was changed: {problem}"
    if step.before.phase is not Phase.IDLE or not step.stalled_with(Reason.INVALID_SPEC):
        step.event(Reason.INVALID_SPEC, message, warning=True)
    step.conditions(
        Condition("Ready", False, Reason.INVALID_SPEC, message),
        Condition("Stalled", True, Reason.INVALID_SPEC, message),
    )
    return step.done()


def idle(step: Step) -> Plan:
    rec, spec, now = step.record, step.spec, step.now
    rec.phase = Phase.IDLE
    rec.rotation = None
    decision = trigger.HOLD if spec.paused else trigger.decide(situation(step))
    if not decision.start:
        if rec.pending_deletion:
            return collecting.collect(step, finish=False)
        step.settled()
        return step.done(wake_at=None if spec.paused else rec.next_rotation_time)
    assert decision.trigger is not None
    credential = step.credential
    hijack = preflight.base_is_not_a_version(
        credential.kind, spec.base_name, credential.labels(step.observed, spec.base_name)
    )
    if hijack is not None:
        return invalid(step, InvalidSpec(credential.base_field, hijack.message))
    # Never a name used before, collected or failed ones included: the kubelet caches immutable Secrets by name.
    revision = max(rec.revision, rec.highest_revision) + 1
    rec.highest_revision = revision
    previous = rec.current
    if not previous and step.credential.exists(step.observed, spec.base_name):
        previous = spec.base_name  # adopt the existing, unversioned Secret or ServiceAccount
    rec.rotation = InFlight(
        revision=revision,
        version=names.version_name(spec.base_name, revision),
        trigger=decision.trigger.value,
        started_at=now,
        generation=step.resource.generation,
        spec=spec_to_snapshot(spec),
        previous=previous,
        request=decision.request,
        nonce=step.observed.nonce or None,
    )
    if decision.request:
        rec.last_handled_request = decision.request
    rec.phase = Phase.STAGING
    step.event("RotationStarted", f"rotation to {rec.rotation.version} started ({decision.trigger.value})")
    step.in_flight(Reason.STAGING, f"staging {rec.rotation.version}")
    return step.done(requeue=True)


def situation(step: Step) -> trigger.Situation:
    resource = step.resource
    return trigger.Situation(
        spec=step.spec,
        record=step.record,
        request=resource.annotations.get(names.REQUESTED_AT_ANNOTATION),
        generation=resource.generation,
        now=step.now,
    )
