"""A SecretRotation deleted mid-rotation: return what it switched, and not yet verified, to the version in use.

The resource has no finalizer (deleting it, or its namespace, must never wait for the
operator), so this is judged from the last record the operator wrote, against the targets
as read by name (and read again when a patch finds one changed since). Nothing is deleted:
the staged version stays, and the Event names it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from secretrotation.core import record
from secretrotation.core.markers import mark_of
from secretrotation.core.plan import Event, PatchWorkload
from secretrotation.core.record import Phase, Target
from secretrotation.core.world import Obj

# Phases in which a switched target is not yet verified: after them the new version is the one in use.
UNVERIFIED_PHASES = frozenset({Phase.STAGING, Phase.ROLLING_OUT, Phase.VERIFYING, Phase.ROLLING_BACK})


def switched_targets(status: Mapping[str, object]) -> list[Target]:
    """The targets a deleted rotation may have switched and not verified (each to read by name)."""
    rec = record.read(status)
    if rec.rotation is None or rec.phase not in UNVERIFIED_PHASES:
        return []
    return list(rec.rotation.targets)


@dataclass(frozen=True)
class Revert:
    """What one look at the targets says: who goes back, and who was changed by someone else since."""

    patches: tuple[PatchWorkload, ...] = ()
    left: tuple[str, ...] = ()


def revert(status: Mapping[str, object], workloads: Mapping[tuple[str, str], Obj | None]) -> Revert:
    """The patches that put each target still on the unverified version back, judged from ``workloads`` as read.

    A target whose references are no longer exactly the ones the rotation set was
    changed by someone else since: it is left alone, and named. A target already back
    on the version in use needs nothing.
    """
    patches: list[PatchWorkload] = []
    left: list[str] = []
    for target in switched_targets(status):
        workload = workloads.get((target.kind, target.name))
        if workload is not None and target.on_new(workload):
            reverse = tuple(c.reversed() for c in target.changes)
            patches.append(
                PatchWorkload(target.kind, target.name, reverse, unmark=mark_of(workload), workload=workload)
            )
        elif workload is not None and not target.on_old(workload):
            left.append(target.label)
    return Revert(tuple(patches), tuple(left))


def reverted(status: Mapping[str, object], returned: Sequence[str], left: Sequence[str]) -> Event | None:
    """The Warning that names the targets ``returned`` (as "Kind name") and those ``left``; None if neither."""
    rec = record.read(status)
    if rec.rotation is None or not (returned or left):
        return None
    back_on = rec.rotation.previous or "the version they used before"
    parts = []
    if returned:
        parts.append(f"{', '.join(returned)} returned to {back_on}")
    if left:
        parts.append(f"{', '.join(left)} changed by someone else, left as they are")
    message = (
        f"SecretRotation deleted during a rotation to {rec.rotation.version}, which was never verified: "
        + "; ".join(parts)
        + f"; nothing was deleted ({rec.rotation.version} stays)"
    )
    return Event("RevertedOnDeletion", message, warning=True)
