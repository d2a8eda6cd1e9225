"""The credential protocol, and the values its two kinds (``secret``, ``account``) exchange with the phases.

Each credential kind answers the same four questions, so the phases never branch
on the mode: what references a version, how to stage one, what must hold
before one is removed (and the actions that remove it), and how a pod template
is rewritten to use a new one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from secretrotation.core import references
from secretrotation.core.objects import changed_strings
from secretrotation.core.plan import Action
from secretrotation.core.record import Change, InFlight, WorkloadRef
from secretrotation.core.rules import Finding
from secretrotation.core.rules.collect import Candidate
from secretrotation.core.spec import RotationSpec
from secretrotation.core.world import NamespaceObjects, Obj, Observed, Referrer


@dataclass(frozen=True)
class Context:
    """The rotation a credential works for, and what this step observed."""

    rotation: str  # the SecretRotation's name
    namespace: str
    spec: RotationSpec
    observed: Observed


@dataclass(frozen=True)
class Staging:
    """Where staging a version stands after one step.

    ``waiting`` says what it still waits for (then ``actions`` make progress and
    ``wake_after`` bounds the wait); ``problem`` stops the rotation before
    anything is switched; neither set means the version is staged and intact.
    """

    actions: tuple[Action, ...] = ()
    waiting: str | None = None
    wake_after: timedelta | None = None
    problem: Finding | None = None
    bindings: tuple[WorkloadRef, ...] | None = None  # bindings the new version was added to
    taken: bool = False  # ``problem`` is that something this attempt did not create holds the name


@dataclass(frozen=True)
class Removal:
    """An old version's facts for the collect rules, and the actions that delete it."""

    candidate: Candidate
    actions: tuple[Action, ...]


class Credential(Protocol):
    @property
    def kind(self) -> Literal["Secret", "ServiceAccount"]: ...

    @property
    def base_field(self) -> str:
        """The spec field that names what is rotated, for messages."""

    def uses(self, pod_spec: Obj, name: str) -> bool:
        """Whether a pod spec consumes version ``name``."""

    def referrers(self, name: str, objects: NamespaceObjects) -> list[Referrer]:
        """Everything in the namespace that keeps version ``name`` in use."""

    def exists(self, observed: Observed, name: str) -> bool: ...

    def labels(self, observed: Observed, name: str) -> Mapping[str, str] | None:
        """The labels of the object ``name``, or None when it does not exist."""

    def stage(self, context: Context, rotation: InFlight) -> Staging:
        """The next step of staging ``rotation.version`` beside the version in use."""

    def missing(self, context: Context, pod_spec: Obj, old: str, new: str) -> list[str]:
        """What a consumer of ``old`` needs that ``new`` lacks (each a message; empty when nothing)."""

    def removal(
        self, context: Context, name: str, in_use: str | None, *, within_retain: bool, switched_at: datetime | None
    ) -> Removal | None:
        """The facts and actions for deleting version ``name``; None when it is already gone."""

    def rewrite(self, pod_spec: Obj, old: str, new: str) -> Obj:
        """A copy of ``pod_spec`` that uses ``new`` wherever it used ``old``."""


def template_changes(credential: Credential, workload: Obj, old_names: Sequence[str], new: str) -> tuple[Change, ...]:
    """The exact strings to rewrite so a workload's pod template uses ``new`` instead of any of ``old_names``."""
    pod_spec = references.pod_spec_of(workload)
    rewritten = pod_spec
    for old in old_names:
        rewritten = credential.rewrite(rewritten, old, new)
    prefix = "/" + "/".join(references.pod_spec_path(workload["kind"]))
    return tuple(Change(path, old, new) for path, old, new in changed_strings(pod_spec, rewritten, prefix))
