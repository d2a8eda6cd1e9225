"""Should a rotation start now, and why? And when may a failed one be tried again?

A restart alone never starts one: every trigger is read from the resource. After
a failure, only a new request, a spec change, or the backed-off schedule starts
the next attempt: no retry storm.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from secretrotation.core.conditions import Reason
from secretrotation.core.record import Record
from secretrotation.core.spec import RotationSpec

MAX_BACKOFF_FACTOR = 8
FOUGHT_OVER = 2  # failures in a row, each a target reverted by someone else, before scheduled retries stop


class Trigger(enum.StrEnum):
    CREATED = "Created"
    SCHEDULED = "Scheduled"
    REQUESTED = "Requested"
    RETRY = "Retry"


@dataclass(frozen=True)
class Situation:
    """What a trigger check looks at."""

    spec: RotationSpec
    record: Record
    request: str | None  # the requested-at annotation, if any
    generation: int
    now: datetime


@dataclass(frozen=True)
class Decision:
    start: bool
    trigger: Trigger | None = None
    request: str | None = None


HOLD = Decision(start=False)


def requested(s: Situation) -> Decision | None:
    """A requested-at annotation not handled yet starts a rotation, even after a failure."""
    if s.request and s.request != s.record.last_handled_request:
        return Decision(True, Trigger.REQUESTED, s.request)
    return None


def retry_after_spec_change(s: Situation) -> Decision | None:
    """After a failure, a new generation of the spec is a new attempt."""
    if s.record.consecutive_failures and s.generation > s.record.failed_generation:
        return Decision(True, Trigger.RETRY)
    return None


def fought_over(record: Record) -> bool:
    """The last attempts each lost a target to someone who put it back: a GitOps tool's self-heal, likely."""
    failure = record.last_failure
    return (
        record.consecutive_failures >= FOUGHT_OVER
        and failure is not None
        and failure.reason == Reason.TARGET_CHANGED_EXTERNALLY
    )


def not_fought_over(s: Situation) -> Decision | None:
    """A rotation that keeps losing a target to a self-healing tool is not tried again on schedule:
    switching it again would only flap. A new request or a spec change still retries."""
    return HOLD if fought_over(s.record) else None


def _schedule_due(s: Situation) -> bool:
    due = s.record.next_rotation_time
    return s.spec.rotate_every is not None and due is not None and s.now >= due


def retry_on_schedule(s: Situation) -> Decision | None:
    """After a failure, the backed-off schedule tries again; nothing else does."""
    if not s.record.consecutive_failures:
        return None
    return Decision(True, Trigger.RETRY) if _schedule_due(s) else HOLD


def first_rotation(s: Situation) -> Decision | None:
    return Decision(True, Trigger.CREATED) if s.record.revision == 0 else None


def scheduled(s: Situation) -> Decision | None:
    return Decision(True, Trigger.SCHEDULED) if _schedule_due(s) else None


CHAIN: tuple[Callable[[Situation], Decision | None], ...] = (
    requested,
    retry_after_spec_change,
    not_fought_over,
    retry_on_schedule,
    first_rotation,
    scheduled,
)


def decide(s: Situation) -> Decision:
    for check in CHAIN:
        decision = check(s)
        if decision is not None:
            return decision
    return HOLD


def next_rotation_after_success(spec: RotationSpec, now: datetime) -> datetime | None:
    return now + spec.rotate_every if spec.rotate_every else None


def next_attempt_after_failure(spec: RotationSpec, now: datetime, failures: int) -> datetime | None:
    """The scheduled retry after ``failures`` failures in a row: one period, doubling, at most 8 periods."""
    if spec.rotate_every is None:
        return None
    factor: int = min(2 ** max(failures - 1, 0), MAX_BACKOFF_FACTOR)
    return now + spec.rotate_every * factor
