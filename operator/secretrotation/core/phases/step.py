"""One step of one SecretRotation: the typed record being edited, and what the step decided so far.

A phase function takes a ``Step`` and returns its ``Plan``. The step starts from
a fresh copy of the record read from status; only ``done`` renders it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from secretrotation.core import conditions, names, record
from secretrotation.core.conditions import Condition, Reason
from secretrotation.core.credentials import Context, Credential
from secretrotation.core.objects import timestamp
from secretrotation.core.plan import Action, Event, Plan
from secretrotation.core.record import InFlight, Record
from secretrotation.core.rules import trigger
from secretrotation.core.spec import RotationSpec
from secretrotation.core.world import Observed, Resource


@dataclass
class Step:
    resource: Resource
    observed: Observed
    spec: RotationSpec
    credential: Credential
    record: Record
    before: Record
    events: list[Event] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    wanted: list[Condition] = field(default_factory=list)

    @property
    def now(self) -> datetime:
        return self.observed.now

    @property
    def rotation(self) -> InFlight:
        assert self.record.rotation is not None, "this phase runs only while a rotation is in flight"
        return self.record.rotation

    @property
    def context(self) -> Context:
        return Context(self.resource.name, self.resource.namespace, self.spec, self.observed)

    def event(self, reason: str, message: str, *, warning: bool = False) -> None:
        self.events.append(Event(reason, message, warning))

    def conditions(self, *wanted: Condition) -> None:
        self.wanted = list(wanted)

    def in_flight(self, reason: Reason, message: str) -> None:
        current = self.record.current or "no version yet"
        self.conditions(
            Condition("Ready", False, reason, f"rotation in progress ({message}); in use: {current}"),
            Condition("Reconciling", True, reason, message),
        )

    def settled(self) -> None:
        """Ready as the record stands: the last failure until a rotation succeeds, else the version in use."""
        if self.resource.spec.get("paused") is True:
            self.paused()
            return
        failure = self.record.last_failure
        if failure is not None and self.record.consecutive_failures:
            self.conditions(
                Condition("Ready", False, Reason.ROTATION_FAILED, failure.message),
                Condition("Stalled", True, Reason(failure.reason or Reason.VERIFICATION_FAILED), failure.message),
            )
        elif self.record.current and self.record.targets == []:
            message = f"{self.record.current} is current, but no workload consumes it: nothing was verified"
            self.conditions(Condition("Ready", True, Reason.NO_CONSUMERS, message))
        elif self.record.current:
            message = f"{self.record.current} is in use and was verified healthy"
            self.conditions(Condition("Ready", True, Reason.ROTATED, message))
        else:
            self.conditions(Condition("Ready", False, Reason.PENDING, "no version has been rotated in yet"))

    def paused(self) -> None:
        """Ready reason ``Paused`` while ``spec.paused`` holds every rotation, with any request it holds.

        True while a version is in use (the credential works; Argo CD maps it to Suspended,
        ``kubectl wait`` still passes); False before the first rotation. A failure that needs
        a human stays Stalled, and Ready False, under the pause.
        """
        rec = self.record
        request = self.resource.annotations.get(names.REQUESTED_AT_ANNOTATION)
        held = request if request and request != rec.last_handled_request else None
        hold = f"; the rotation requested at {held} starts when resumed" if held else ""
        failure = rec.last_failure if rec.consecutive_failures else None
        if failure is not None:
            message = f"paused; the last rotation failed: {failure.message}{hold}"
            cause = Reason(failure.reason or Reason.VERIFICATION_FAILED)
            self.conditions(
                Condition("Ready", False, Reason.PAUSED, message), Condition("Stalled", True, cause, failure.message)
            )
        elif rec.current:
            message = f"paused: {rec.current} stays in use and no rotation starts{hold}"
            self.conditions(Condition("Ready", True, Reason.PAUSED, message))
        else:
            self.conditions(Condition("Ready", False, Reason.PAUSED, f"paused before the first rotation{hold}"))

    def pending_request(self) -> str | None:
        """A requested-at annotation no rotation has handled yet; None while paused (it waits for resume)."""
        if self.resource.spec.get("paused") is True:
            return None
        request = self.resource.annotations.get(names.REQUESTED_AT_ANNOTATION)
        situation = trigger.Situation(self.spec, self.record, request, self.resource.generation, self.now)
        decision = trigger.requested(situation)
        return decision.request if decision is not None else None

    def requested(self, request: str) -> None:
        """A request waits to start a rotation: not Ready until it has (``kubectl wait`` sees it at once)."""
        message = f"rotation requested ({request}); starting"
        self.conditions(
            Condition("Ready", False, Reason.REQUESTED, f"{message}; in use: {self.record.current or 'none yet'}"),
            Condition("Reconciling", True, Reason.REQUESTED, message),
        )

    def stalled_with(self, reason: Reason) -> bool:
        stalled = self.before.condition("Stalled")
        return bool(stalled and stalled.get("reason") == reason and stalled.get("status") == "True")

    def done(self, *, requeue: bool = False, wake_at: datetime | None = None) -> Plan:
        rec = self.record
        rec.observed_generation = self.resource.generation
        wanted = list(self.wanted)
        if rec.pending_deletion:
            message = "; ".join(entry.message for entry in rec.pending_deletion)
            wanted.append(Condition("GarbageCollected", False, Reason.STILL_REFERENCED, message))
        rec.conditions = conditions.render(
            wanted, self.before.conditions, self.resource.generation, timestamp(self.now)
        )
        return Plan(record.write(rec), tuple(self.actions), tuple(self.events), requeue, wake_at)
