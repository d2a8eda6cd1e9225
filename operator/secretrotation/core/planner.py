"""The rotation state machine: (resource, observed world) -> the next step.

Pure. The shell observes the namespace, calls ``plan``, performs the returned
actions in order, and only then writes the returned status. The status is the
cursor: if the operator dies anywhere, the next step re-derives what to do from
the status and a fresh observation, and every action is safe to repeat.

Also the shell's fetch plan: what a step is likely to read, and what a fresh
look lists; Secrets and ServiceAccounts are only ever read by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from secretrotation.core import credentials, names, record
from secretrotation.core.conditions import Condition, Reason
from secretrotation.core.phases import collecting, failing, idle, rolling_back, rolling_out, staging, verifying
from secretrotation.core.phases.step import Step
from secretrotation.core.plan import Plan
from secretrotation.core.record import Phase
from secretrotation.core.rules import trigger
from secretrotation.core.spec import (
    GenerateRule,
    InvalidSpec,
    RotationSpec,
    SecretType,
    parse_spec,
    selector_matches,
    spec_from_snapshot,
)
from secretrotation.core.world import LISTED_KINDS, NamespaceObjects, NeedFacts, Needs, Observed, Resource

PHASES: Mapping[Phase, Callable[[Step], Plan]] = {
    Phase.STAGING: staging.staging,
    Phase.ROLLING_OUT: rolling_out.rolling_out,
    Phase.VERIFYING: verifying.verifying,
    Phase.ROLLING_BACK: rolling_back.rolling_back,
    Phase.COLLECTING_GARBAGE: collecting.collecting_garbage,
}


def plan(resource: Resource, observed: Observed) -> Plan:
    """The next step of one SecretRotation, or the facts it needs first (``Plan.needs``).

    A step that reads a fact the observation lacks plans nothing: the shell fetches
    what it asked for and plans again, so a step pays only for what it reads.
    """
    try:
        return _plan(resource, observed)
    except NeedFacts as need:
        return Plan(dict(resource.status), needs=need.needs)


def _plan(resource: Resource, observed: Observed) -> Plan:
    before = record.read(resource.status)
    rotation = before.rotation
    try:
        spec: RotationSpec | None = parse_spec(resource.spec)
    except InvalidSpec as invalid:
        if rotation is None:
            return idle.invalid(_step(resource, observed, None, before), invalid)
        spec = None  # a rotation in flight finishes with the spec it started with
    if rotation is None:
        assert spec is not None
        return idle.idle(_step(resource, observed, spec, before))
    started, problem = _started_spec(rotation.spec, spec)
    step = _step(resource, observed, started, before)
    if problem is not None and before.phase is Phase.STAGING:
        return failing.abort(step, Reason.INVALID_SPEC, f"the spec changed while staging: {problem}")
    return PHASES.get(before.phase, staging.staging)(step)


_PLACEHOLDER = RotationSpec(None, SecretType.OPAQUE, (GenerateRule(key="-", value="-"),), None, None, None, None)


def _step(resource: Resource, observed: Observed, spec: RotationSpec | None, before: record.Record) -> Step:
    spec = spec or _PLACEHOLDER
    return Step(resource, observed, spec, credentials.for_spec(spec), before.copy(), before)


def _started_spec(snapshot: Mapping[str, Any], current: RotationSpec | None) -> tuple[RotationSpec, str | None]:
    """The spec the rotation in flight started with, and why the current spec cannot supply its constants.

    Constant values are never stored in status; only staging needs them. When the
    current spec no longer supplies them, placeholders restore the rest of the spec.
    """
    try:
        if current is not None:
            return spec_from_snapshot(snapshot, current), None
        problem = "the current spec is invalid"
    except InvalidSpec as invalid:
        problem = str(invalid)
    constants = tuple(
        GenerateRule(key=entry["key"], value="-")
        for entry in snapshot.get("generate") or []
        if isinstance(entry, Mapping) and entry.get("constant")
    )
    placeholder = RotationSpec(None, SecretType.OPAQUE, constants, None, None, None, None)
    return spec_from_snapshot(snapshot, placeholder), problem


def refused(resource: Resource, now: datetime, reason: str, message: str) -> Plan:
    """The status to report when the API server refused an action for good: Stalled with its reason.

    The record is left as it is, so the step that was refused is tried again as it was,
    when the engine retries (every few minutes, or when the spec changes).
    """
    before = record.read(resource.status)
    try:
        spec: RotationSpec | None = parse_spec(resource.spec)
    except InvalidSpec:
        spec = None
    if before.rotation is not None and before.phase in (Phase.ROLLING_OUT, Phase.VERIFYING):
        # Never half-switched: a refusal while switching fails the rotation, which rolls back.
        started, _ = _started_spec(before.rotation.spec, spec)
        switching = _step(resource, quiet_observation(now), started, before)
        return failing.fail(switching, Reason(reason), f"refused by the API server: {message}")
    step = _step(resource, quiet_observation(now), spec, before)
    cause = Reason(reason)
    text = f"refused by the API server, retried every few minutes: {message}"
    if not step.stalled_with(cause):
        step.event(cause, text, warning=True)
    step.conditions(Condition("Ready", False, cause, text), Condition("Stalled", True, cause, text))
    return step.done()


def acknowledge(resource: Resource, now: datetime) -> Plan | None:
    """A new request, marked at once (Ready=False, Reconciling=True, ``Requested``), before any read.

    Starting the rotation reads the namespace first; this status write goes out before that,
    so ``kubectl wait --for=condition=Ready`` after a request never sees the old Ready=True.
    None when there is nothing to mark: no new request, paused, in flight, or already marked.
    """
    before = record.read(resource.status)
    ready, stalled = before.condition("Ready") or {}, before.condition("Stalled") or {}
    if before.rotation is not None or ready.get("reason") == Reason.REQUESTED:
        return None
    if stalled.get("reason") == Reason.INVALID_SPEC:
        return None  # the request cannot start anything until the spec is fixed; the step says why
    try:
        spec = parse_spec(resource.spec)
    except InvalidSpec:
        return None
    step = _step(resource, quiet_observation(now), spec, before)
    request = step.pending_request()
    if request is None:
        return None
    step.requested(request)
    return step.done(requeue=True)


def is_quiet(resource: Resource, now: datetime) -> bool:
    """True when a step needs nothing from the cluster: idle, nothing due, nothing to collect.

    This is what makes an idle SecretRotation cost no API requests.
    """
    rec = record.read(resource.status)
    if rec.busy:
        return False
    try:
        spec = parse_spec(resource.spec)
    except InvalidSpec:
        return True
    if spec.paused:
        return True
    request = resource.annotations.get(names.REQUESTED_AT_ANNOTATION)
    return not trigger.decide(trigger.Situation(spec, rec, request, resource.generation, now)).start


# -- the fetch plan ---------------------------------------------------------------------------


def is_account_rotation(resource: Resource) -> bool:
    return isinstance(resource.spec.get("serviceAccount"), Mapping)


def concerns(rec: record.Record, kind: str, obj: Mapping[str, Any], targets: Mapping[str, Any]) -> bool:
    """Whether a change to ``obj`` can change what this rotation's next step decides.

    While it switches, verifies or rolls back, only its targets and the Pods and ReplicaSets
    their selectors match matter (``targets`` holds the target workloads as the store has
    them); in every other busy phase any change might (a consumer appearing or going). This
    is what keeps twenty rotations in one namespace from each waking at every pod event.
    """
    if rec.rotation is None or rec.phase not in (Phase.ROLLING_OUT, Phase.VERIFYING, Phase.ROLLING_BACK):
        return True
    name = (obj.get("metadata") or {}).get("name")
    if any(t.kind == kind and t.name == name for t in rec.rotation.targets):
        return True
    if kind not in ("Pod", "ReplicaSet"):
        return False
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for workload in targets.values():
        selector = (workload.get("spec") or {}).get("selector") or {}
        if selector and selector_matches(selector, labels):
            return True
    return False


def likely_needs(resource: Resource) -> Needs:
    """What a step in this phase will read: fetched up front, to save a round of planning.

    Only a prediction, and a narrow one: a phase that reads more asks for it
    (``Plan.needs``), so nothing is fetched that no step reads.
    """
    rec = record.read(resource.status)
    rotation = rec.rotation
    if rotation is None:
        base = resource.spec.get("serviceAccount") if is_account_rotation(resource) else resource.spec.get("secretName")
        name = base.get("name") if isinstance(base, Mapping) else base
        named = frozenset({name}) if isinstance(name, str) and name else frozenset()
        return Needs(accounts=named) if is_account_rotation(resource) else Needs(secrets=named)
    if rec.phase is Phase.STAGING:
        staged = frozenset({rotation.version})
        return Needs(accounts=staged) if is_account_rotation(resource) else Needs(secrets=staged)
    return Needs()


def fresh_kinds(resource: Resource) -> frozenset[str]:
    """What a fresh look lists. Before a promotion, the targets' kinds: whether each still holds
    the new references and has rolled out, as the API server has it now (its pods and ReplicaSets
    come from the watches, and are judged against that fresh rollout status). Before a deletion,
    every kind that can reference a version."""
    rec = record.read(resource.status)
    if rec.phase is Phase.VERIFYING and rec.rotation is not None:
        return frozenset(t.kind for t in rec.rotation.targets)
    return frozenset(LISTED_KINDS)


def quiet_observation(now: datetime) -> Observed:
    """The empty observation a quiet step plans from (it fetches nothing)."""
    return Observed(now=now, objects=NamespaceObjects(), secrets={})
