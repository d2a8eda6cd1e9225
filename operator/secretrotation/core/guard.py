"""The reference guard: may this version be deleted?

The lesson of the outage behind this product: a workload that still pointed at
a removed name failed at its next deploy. So before the operator deletes a
Secret it created, it asks a chain of small checks, each over the objects
observed in the namespace. The first check that blocks gives the reason and a
message; reference checks together list every referrer, so "why wasn't v3
deleted?" always has an answer in status.

Pure: the caller gathers the objects, this module only judges them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from secretrotation.core import names, references

Obj = Mapping[str, Any]
MAX_LISTED_REFERRERS = 5


@dataclass(frozen=True)
class Referrer:
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class NamespaceObjects:
    """Everything in one namespace that can reference a Secret."""

    pods: Sequence[Obj] = ()
    deployments: Sequence[Obj] = ()
    stateful_sets: Sequence[Obj] = ()
    daemon_sets: Sequence[Obj] = ()
    jobs: Sequence[Obj] = ()
    cron_jobs: Sequence[Obj] = ()
    replica_sets: Sequence[Obj] = ()
    service_accounts: Sequence[Obj] = ()


@dataclass(frozen=True)
class Candidate:
    """A Secret the operator would like to delete, as fetched by name."""

    name: str
    labels: Mapping[str, str]
    rotation: str  # the SecretRotation asking
    in_use: str | None  # the version the rotation currently uses
    kind: str = "Secret"


@dataclass(frozen=True)
class Verdict:
    deletable: bool
    reason: str
    message: str
    referrers: tuple[Referrer, ...] = ()


Check = Callable[[Candidate, NamespaceObjects], Verdict | None]


def created_by_this_rotation(candidate: Candidate, _: NamespaceObjects) -> Verdict | None:
    """Never delete a Secret this rotation did not create: it carries our label, or it is not ours."""
    owner = candidate.labels.get(names.ROTATION_LABEL)
    if owner != candidate.rotation:
        return Verdict(
            False,
            "NotOwned",
            f"{candidate.kind} {candidate.name} does not carry {names.ROTATION_LABEL}={candidate.rotation}; "
            "it is left alone",
        )
    return None


def not_in_use(candidate: Candidate, _: NamespaceObjects) -> Verdict | None:
    if candidate.name == candidate.in_use:
        return Verdict(False, "InUse", f"{candidate.kind} {candidate.name} is the version in use")
    return None


def _pod_spec_referrers(
    kind: str, objects: Iterable[Obj], secret: str, include: Callable[[Obj], bool] = lambda _: True
) -> list[Referrer]:
    return [
        Referrer(kind, obj["metadata"]["name"])
        for obj in objects
        if include(obj) and secret in references.referenced_secrets(references.pod_spec_of({**obj, "kind": kind}))
    ]


def referrers_of(secret: str, objects: NamespaceObjects) -> list[Referrer]:
    """Every object in the namespace whose spec references ``secret``.

    Pods (every one, whatever owns it), the pod templates of Deployments,
    StatefulSets, DaemonSets, Jobs and CronJobs, ReplicaSets that still want
    replicas, and ServiceAccounts that pull images with it.
    """
    found = _pod_spec_referrers("Pod", objects.pods, secret)
    found += _pod_spec_referrers("Deployment", objects.deployments, secret)
    found += _pod_spec_referrers("StatefulSet", objects.stateful_sets, secret)
    found += _pod_spec_referrers("DaemonSet", objects.daemon_sets, secret)
    found += _pod_spec_referrers("Job", objects.jobs, secret)
    found += _pod_spec_referrers("CronJob", objects.cron_jobs, secret)
    found += _pod_spec_referrers(
        "ReplicaSet", objects.replica_sets, secret, lambda rs: (rs.get("spec") or {}).get("replicas", 1) > 0
    )
    found += [
        Referrer("ServiceAccount", account["metadata"]["name"])
        for account in objects.service_accounts
        if any(ref.get("name") == secret for ref in account.get("imagePullSecrets") or [])
    ]
    return found


def not_referenced(candidate: Candidate, objects: NamespaceObjects) -> Verdict | None:
    found = referrers_of(candidate.name, objects)
    if not found:
        return None
    return Verdict(
        False, "StillReferenced", f"Secret {candidate.name} is still referenced by {describe(found)}", tuple(found)
    )


def describe(referrers: Sequence[Referrer]) -> str:
    """The first few referrers and how many more: bounded, for conditions and Events."""
    listed = ", ".join(str(r) for r in referrers[:MAX_LISTED_REFERRERS])
    rest = len(referrers) - MAX_LISTED_REFERRERS
    return f"{listed} and {rest} more" if rest > 0 else listed


CHAIN: tuple[Check, ...] = (created_by_this_rotation, not_in_use, not_referenced)


def judge(candidate: Candidate, objects: NamespaceObjects, chain: Sequence[Check] = CHAIN) -> Verdict:
    """The first blocking verdict of ``chain``, or a verdict that the candidate may go."""
    for check in chain:
        verdict = check(candidate, objects)
        if verdict is not None:
            return verdict
    return Verdict(True, "Unreferenced", f"nothing references Secret {candidate.name}")
