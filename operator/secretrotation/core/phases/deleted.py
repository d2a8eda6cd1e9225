"""A SecretRotation deleted mid-rotation: return what it switched, and not yet verified, to the version in use.

The resource has no finalizer (deleting it, or its namespace, must never wait for the
operator), so this runs once, from the last record the operator wrote. Nothing is deleted:
the staged version stays, and the Event names it.
"""

from __future__ import annotations

from collections.abc import Mapping

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


def revert(
    status: Mapping[str, object], workloads: Mapping[tuple[str, str], Obj | None]
) -> tuple[list[PatchWorkload], Event | None]:
    """The patches that put each target still on the unverified version back, and the Warning that says so.

    A target whose references are no longer exactly the ones the rotation set was
    changed by someone else since: it is left alone, and named.
    """
    rec = record.read(status)
    targets = switched_targets(status)
    if rec.rotation is None or not targets:
        return [], None
    patches: list[PatchWorkload] = []
    left: list[str] = []
    for target in targets:
        workload = workloads.get((target.kind, target.name))
        if workload is not None and target.on_new(workload):
            reverse = tuple(c.reversed() for c in target.changes)
            patches.append(
                PatchWorkload(target.kind, target.name, reverse, unmark=mark_of(workload), workload=workload)
            )
        elif workload is not None and not target.on_old(workload):
            left.append(target.label)
    if not patches and not left:
        return [], None
    back_on = rec.rotation.previous or "the version they used before"
    parts = []
    if patches:
        parts.append(f"{', '.join(f'{p.kind} {p.name}' for p in patches)} returned to {back_on}")
    if left:
        parts.append(f"{', '.join(left)} changed by someone else, left as they are")
    message = (
        f"SecretRotation deleted during a rotation to {rec.rotation.version}, which was never verified: "
        + "; ".join(parts)
        + f"; nothing was deleted ({rec.rotation.version} stays)"
    )
    return patches, Event("RevertedOnDeletion", message, warning=True)
