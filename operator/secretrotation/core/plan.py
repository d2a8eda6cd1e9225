"""What one step decided: the actions for the shell to perform in order, the Events, and the status to write.

The shell performs every action, then writes ``status``. Every action is safe to
repeat: a step interrupted after any action re-plans from the old status and a
fresh observation, and plans the same action, or finds it done.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from secretrotation.core import apply
from secretrotation.core.markers import SWITCH_ANNOTATION
from secretrotation.core.objects import pointer_token
from secretrotation.core.record import Change
from secretrotation.core.spec import RotationSpec
from secretrotation.core.world import AccountState, Needs

_MARK_PATH = "/metadata/annotations/" + pointer_token(SWITCH_ANNOTATION)


@dataclass(frozen=True)
class CreateVersion:
    name: str
    revision: int
    spec: RotationSpec
    nonce: str | None = None


@dataclass(frozen=True)
class PatchWorkload:
    """Apply ``changes`` to ``workload`` (the object as judged) all at once, or not at all.

    Sent by server-side apply (``apply_configuration``): field manager ``secretrotation``,
    the fields it owns with the changes over them, and the workload's resourceVersion as
    the precondition. ``mark`` writes the switch mark (``markers``); ``unmark`` (the mark
    as judged) drops it. A change that renames a list item's key (an ``imagePullSecrets``
    name) cannot be applied: that switch goes as the JSON patch ``operations``, each
    change tested first, a mark on a workload without annotations tested against
    ``resource_version``.
    """

    kind: str
    name: str
    changes: tuple[Change, ...]
    mark: str | None = None
    unmark: str | None = None
    annotated: bool = True
    resource_version: str | None = None
    workload: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def by_apply(self) -> bool:
        """Whether it goes by server-side apply; else as a JSON patch: no object judged, a key renamed,
        or a mark to remove that no apply of ours wrote."""
        if self.workload is None or apply.renames_a_key(self.workload, self.changes):
            return False
        return self.unmark is None or apply.owns_the_mark(self.workload)

    def apply_configuration(self) -> dict[str, Any]:
        """The server-side apply body (``core/apply.py``); only when ``by_apply``."""
        assert self.workload is not None, "an apply needs the object judged"
        workload = {**self.workload, "kind": self.kind}
        return apply.configuration(workload, self.changes, mark=self.mark, unmark=self.unmark is not None)

    def operations(self) -> list[dict[str, Any]]:
        """The JSON patch: each change tested then replaced, and the mark written or removed, all or nothing."""
        operations: list[dict[str, Any]] = []
        for change in self.changes:
            operations.append({"op": "test", "path": change.path, "value": change.old})
            operations.append({"op": "replace", "path": change.path, "value": change.new})
        if self.mark is not None and self.annotated:
            operations.append({"op": "add", "path": _MARK_PATH, "value": self.mark})
        elif self.mark is not None:
            # Adding the whole map would replace annotations someone added since: the version test forbids that.
            operations.append({"op": "test", "path": "/metadata/resourceVersion", "value": self.resource_version})
            operations.append({"op": "add", "path": "/metadata/annotations", "value": {SWITCH_ANNOTATION: self.mark}})
        if self.unmark is not None:
            operations.append({"op": "test", "path": _MARK_PATH, "value": self.unmark})
            operations.append({"op": "remove", "path": _MARK_PATH})
        return operations


@dataclass(frozen=True)
class DeletePod:
    name: str
    uid: str


@dataclass(frozen=True)
class DeleteSecret:
    name: str
    resource_version: str


@dataclass(frozen=True)
class CreateAccount:
    """Stage a ServiceAccount version, copying from ``source`` (the account in use), if any."""

    name: str
    revision: int
    source: AccountState | None
    nonce: str | None = None


@dataclass(frozen=True)
class CreateTokenSecret:
    account: str
    revision: int
    nonce: str | None = None


@dataclass(frozen=True)
class PatchBinding:
    """A JSON patch to a RoleBinding or ClusterRoleBinding, tested against the version judged."""

    kind: str
    name: str
    operations: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class DeleteAccount:
    name: str
    resource_version: str


Action = (
    CreateVersion | PatchWorkload | DeletePod | DeleteSecret | CreateAccount | CreateTokenSecret | PatchBinding
    | DeleteAccount
)  # fmt: skip


@dataclass(frozen=True)
class Event:
    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True)
class Plan:
    status: dict[str, Any]
    actions: tuple[Action, ...] = ()
    events: tuple[Event, ...] = ()
    requeue: bool = False  # step again as soon as this one is done
    wake_at: datetime | None = None  # step again then, even without a watch event
    needs: Needs = field(default_factory=Needs)  # plan again once these are fetched; nothing else here counts


def batches(actions: Sequence[Action]) -> list[list[Action]]:
    """The actions in order, each run of workload patches (each a different workload) as one batch.

    A batch may go out at once: its patches touch different objects and each tests what it
    replaces. Everything else keeps its order (a version is created before anything uses it).
    """
    grouped: list[list[Action]] = []
    for action in actions:
        if grouped and isinstance(action, PatchWorkload) and isinstance(grouped[-1][-1], PatchWorkload):
            grouped[-1].append(action)
        else:
            grouped.append([action])
    return grouped
