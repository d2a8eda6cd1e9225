"""The one place that formats status conditions.

Conditions follow the Kubernetes API conventions and kstatus, which Flux, kpt,
Argo CD health checks and ``kubectl wait`` read:

* ``Ready`` is always present;
* ``Reconciling`` is present, and True, only while a rotation is in flight, or a request
  waits to start one (``Requested``: written at once, so ``kubectl wait`` never sees the old Ready);
* ``Stalled`` is present, and True, only when progress needs a human;
* ``GarbageCollected`` is present, and False, only while a deletion is blocked.

Each carries ``observedGeneration``, a CamelCase reason from ``Reason`` and a
message a human can act on. ``lastTransitionTime`` changes only when the
status flips, so an unchanged condition never causes a write.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_MESSAGE_LENGTH = 1024


class Reason(enum.StrEnum):
    """Every reason the operator writes into a condition (documented in the README)."""

    # Ready=True
    ROTATED = "Rotated"
    NO_CONSUMERS = "NoConsumers"  # rotated in, but no workload uses it: nothing was verified
    # Ready=False / Reconciling=True while a rotation is in flight, or a request waits to start one
    REQUESTED = "Requested"
    STAGING = "Staging"
    ROLLING_OUT = "RollingOut"
    VERIFYING = "Verifying"
    ROLLING_BACK = "RollingBack"
    COLLECTING_GARBAGE = "CollectingGarbage"
    WAITING_FOR_WORKLOAD = "WaitingForWorkload"
    # Ready=False before the first rotation, or while paused before it
    PENDING = "Pending"
    PAUSED = "Paused"
    # Ready=False, Stalled=True: needs a human
    ROTATION_FAILED = "RotationFailed"
    VERIFICATION_FAILED = "VerificationFailed"
    MISSING_KEY = "MissingKey"
    TARGET_PAUSED = "TargetPaused"
    TARGET_NOT_ROLLING = "TargetNotRolling"
    INVALID_SPEC = "InvalidSpec"
    STAGED_VERSION_CONFLICT = "StagedVersionConflict"
    ROLLBACK_FAILED = "RollbackFailed"
    TARGET_CHANGED_EXTERNALLY = "TargetChangedExternally"
    BINDING_NOT_PERMITTED = "BindingNotPermitted"
    # Ready=False, Stalled=True: the API server refused an action for good (retried every few minutes)
    FORBIDDEN = "Forbidden"
    QUOTA_EXCEEDED = "QuotaExceeded"
    ADMISSION_DENIED = "AdmissionDenied"
    INVALID = "Invalid"
    BAD_REQUEST = "BadRequest"
    # GarbageCollected=False
    STILL_REFERENCED = "StillReferenced"


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: Reason
    message: str


def _text(status: bool) -> str:
    return "True" if status else "False"


def truncate(message: str) -> str:
    # The API server refuses empty messages on this cluster's schema handling and
    # overlong ones everywhere; a refused status write would blank the status.
    message = message or "-"
    return message if len(message) <= MAX_MESSAGE_LENGTH else message[: MAX_MESSAGE_LENGTH - 3] + "..."


def render(
    wanted: Sequence[Condition], previous: Sequence[Mapping[str, Any]], generation: int, now: str
) -> list[dict[str, Any]]:
    """The condition list to write: ``wanted`` in order, transition times kept where status did not flip."""
    before = {c.get("type"): c for c in previous}
    rendered = []
    for condition in wanted:
        old = before.get(condition.type)
        status = _text(condition.status)
        since = old["lastTransitionTime"] if old and old.get("status") == status else now
        rendered.append(
            {
                "type": condition.type,
                "status": status,
                "observedGeneration": generation,
                "lastTransitionTime": since,
                "reason": str(condition.reason),
                "message": truncate(condition.message),
            }
        )
    return rendered


def find(conditions: Sequence[Mapping[str, Any]], kind: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions if c.get("type") == kind), None)
