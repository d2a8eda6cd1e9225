"""The mark a switch leaves on a workload, so a rotation deleted while the operator was down can be undone.

The resource carries no finalizer: deleting it never waits for the operator. If
the operator is down at that moment, the record of what was switched goes with
the resource. So the switch patch itself also writes an annotation on the
workload naming the rotation (its uid), the version and the exact changes. When
the operator comes back and finds a marked workload whose rotation is gone, it
decides here what to do, from that mark and what it can still observe.

Whether the rotation had verified the workload is not knowable then (its status
went with it), so the workload is judged as verification would judge it now: a
workload whose rollout on the new version completed (kubectl's rule) stays, with
nothing to undo; one whose rollout has not completed goes back to the version it
used before, if that still exists. A verified workload is thus never moved back
to an old credential that may have been revoked upstream.

Pure. The mark holds names and JSON pointers, never a value.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from secretrotation.core.names import GROUP
from secretrotation.core.objects import mapping
from secretrotation.core.record import Change, Target
from secretrotation.core.rollout import rollout_status

SWITCH_ANNOTATION = f"{GROUP}/switched-by"


@dataclass(frozen=True)
class Switch:
    """What one rotation did to one workload."""

    rotation: str  # the SecretRotation's name
    uid: str  # and its uid: a re-created resource of the same name is another rotation
    credential: str  # "Secret" or "ServiceAccount": what ``version`` and ``previous`` name
    version: str  # the version the workload was switched to
    previous: str | None  # the version it used before
    changes: tuple[Change, ...]

    def encode(self) -> str:
        body = {
            "rotation": self.rotation,
            "uid": self.uid,
            "credential": self.credential,
            "version": self.version,
            "previous": self.previous,
            "changes": [[c.path, c.old, c.new] for c in self.changes],
        }
        return json.dumps(body, separators=(",", ":"), sort_keys=True)

    def target(self, kind: str, name: str) -> Target:
        return Target(kind, name, self.changes, switched=True)


def decode(text: Any) -> Switch | None:
    """The mark, or None for anything that is not one this operator wrote (never trusted beyond its shape)."""
    if not isinstance(text, str):
        return None
    try:
        body = json.loads(text)
        changes = tuple(Change(str(p), str(o), str(n)) for p, o, n in body["changes"])
        previous = body.get("previous")
        return Switch(
            str(body["rotation"]),
            str(body["uid"]),
            str(body["credential"]),
            str(body["version"]),
            str(previous) if previous else None,
            changes,
        )
    except (TypeError, KeyError, ValueError, AttributeError):
        return None


def mark_of(workload: Mapping[str, Any]) -> str | None:
    """The mark exactly as the workload holds it (what an unmark tests before it removes it)."""
    text = mapping(mapping(workload.get("metadata")).get("annotations")).get(SWITCH_ANNOTATION)
    return text if isinstance(text, str) and text else None


def switch_of(workload: Mapping[str, Any]) -> Switch | None:
    return decode(mark_of(workload))


class Orphan(enum.Enum):
    """What to do with a workload whose mark names a rotation that is gone."""

    REVERT = "revert"  # on the new version, its rollout not complete, and the version before it exists
    UNMARK = "unmark"  # nothing to undo (moved on, rolled out, or nothing to go back to): drop the mark


def needs_previous(switch: Switch, workload: Mapping[str, Any]) -> bool:
    """Whether the judgement depends on the previous version still existing (a read by name)."""
    return bool(switch.previous) and switch.target("", "").on_new(workload) and not rollout_status(workload).done


def judge_orphan(switch: Switch, workload: Mapping[str, Any], *, previous_exists: bool) -> Orphan:
    """Whether a marked workload of a deleted rotation goes back to the version it used before.

    Only a workload that still holds exactly the references the rotation set and has
    not rolled out on them is reverted; and only to a version that still exists, so a
    revert never points a workload at nothing. Anything else is someone else's change,
    or a switch that worked: the mark is dropped.
    """
    if needs_previous(switch, workload) and previous_exists:
        return Orphan.REVERT
    return Orphan.UNMARK
