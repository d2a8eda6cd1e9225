"""What one step observed: the resource, the namespace's objects, and the few Secrets fetched by name.

Pure values. The shell fills them; the rules and phases only read them. Of a
Secret only metadata and key names are ever here, never values.

An observation holds only what its step asked for. The namespace's objects come
from the shell's watch-fed store; the rest costs requests, so it is fetched on
demand: reading a fact the shell did not fetch raises ``NeedFacts``, the planner
returns that need, and the shell fetches it and plans the step again. No rule can
decide from a fact that was not observed, and no step pays for one it does not read.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from secretrotation.core import references
from secretrotation.core.spec import selector_matches

Obj = Mapping[str, Any]
MAX_LISTED_REFERRERS = 5
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
# Every kind the namespace view holds from the watch-fed store (CronJobs are listed apart).
LISTED_KINDS = ("Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ServiceAccount")


class Fact(enum.Enum):
    """What a step can ask the shell for, beyond the namespace's objects and Secrets or accounts by name."""

    CRON_JOBS = "cron-jobs"  # not watched: listed when a step needs them
    MOUNT_FAILURES = "mount-failures"  # FailedMount Events, listed only while a new pod is stuck unready
    BINDINGS = "bindings"  # RoleBindings, and whether the namespace lets the operator patch them
    FRESH = "fresh"  # before a promotion or a deletion: objects listed lately (the shell's window), not just watched


@dataclass(frozen=True)
class Needs:
    """What a step asked for: facts, and Secrets and ServiceAccounts by name (never a list of Secrets)."""

    facts: frozenset[Fact] = frozenset()
    secrets: frozenset[str] = frozenset()
    accounts: frozenset[str] = frozenset()

    def __or__(self, other: Needs) -> Needs:
        return Needs(self.facts | other.facts, self.secrets | other.secrets, self.accounts | other.accounts)

    def __le__(self, other: Needs) -> bool:
        return self.facts <= other.facts and self.secrets <= other.secrets and self.accounts <= other.accounts

    def __bool__(self) -> bool:
        return bool(self.facts or self.secrets or self.accounts)


class NeedFacts(Exception):
    """A step read what its observation does not hold; the shell fetches it and plans again."""

    def __init__(self, needs: Needs) -> None:
        super().__init__(str(needs))
        self.needs = needs


@dataclass(frozen=True)
class Resource:
    """The SecretRotation as read from the API."""

    name: str
    namespace: str
    generation: int
    annotations: Mapping[str, str]
    spec: Obj
    status: Obj
    uid: str = ""


@dataclass(frozen=True)
class SecretState:
    """What the operator may know of a Secret: never its values."""

    name: str
    labels: Mapping[str, str]
    keys: frozenset[str]
    immutable: bool
    type: str
    resource_version: str
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AccountState:
    """What a step needs to know of a ServiceAccount."""

    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    secrets: tuple[str, ...]  # legacy token Secrets the account lists (made before Kubernetes 1.24)
    image_pull_secrets: tuple[str, ...]
    automount: bool | None
    resource_version: str


@dataclass(frozen=True)
class Referrer:
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


def describe(referrers: Sequence[Referrer]) -> str:
    """The first few referrers and how many more: bounded, for conditions and Events."""
    listed = ", ".join(str(r) for r in referrers[:MAX_LISTED_REFERRERS])
    rest = len(referrers) - MAX_LISTED_REFERRERS
    return f"{listed} and {rest} more" if rest > 0 else listed


@dataclass(frozen=True)
class NamespaceObjects:
    """Everything in one namespace that can reference a Secret or a ServiceAccount."""

    pods: Sequence[Obj] = ()
    deployments: Sequence[Obj] = ()
    stateful_sets: Sequence[Obj] = ()
    daemon_sets: Sequence[Obj] = ()
    jobs: Sequence[Obj] = ()
    cron_jobs: Sequence[Obj] | None = ()  # None: not listed in this step
    replica_sets: Sequence[Obj] = ()
    service_accounts: Sequence[Obj] = ()

    def listed_cron_jobs(self) -> Sequence[Obj]:
        if self.cron_jobs is None:
            raise NeedFacts(Needs(frozenset({Fact.CRON_JOBS})))
        return self.cron_jobs

    def workloads(self) -> list[Obj]:
        """The Deployments, StatefulSets and DaemonSets, each with its ``kind``."""
        pools = (self.deployments, self.stateful_sets, self.daemon_sets)
        return [{**obj, "kind": kind} for kind, pool in zip(WORKLOAD_KINDS, pools, strict=True) for obj in pool]

    def workload(self, kind: str, name: str) -> Obj | None:
        return next((w for w in self.workloads() if w["kind"] == kind and w["metadata"]["name"] == name), None)

    def pod_spec_holders(self) -> Iterator[tuple[str, Obj]]:
        """Every object whose pod spec can keep a credential in use, with its kind.

        Pods (whatever owns them), the pod templates of Deployments, StatefulSets,
        DaemonSets, Jobs and CronJobs, and ReplicaSets that still want replicas
        (a ReplicaSet scaled to zero is a Deployment's history, not a consumer).
        """
        pools: tuple[tuple[str, Sequence[Obj]], ...] = (
            ("Pod", self.pods),
            ("Deployment", self.deployments),
            ("StatefulSet", self.stateful_sets),
            ("DaemonSet", self.daemon_sets),
            ("Job", self.jobs),
            ("CronJob", self.listed_cron_jobs()),
            ("ReplicaSet", [rs for rs in self.replica_sets if (rs.get("spec") or {}).get("replicas", 1) > 0]),
        )
        for kind, pool in pools:
            for obj in pool:
                yield kind, obj

    def pods_of(self, workload: Obj) -> list[Obj]:
        """The pods a workload's selector matches (none for a workload without a selector)."""
        selector = (workload.get("spec") or {}).get("selector") or {}
        if not selector:
            return []
        return [p for p in self.pods if selector_matches(selector, p["metadata"].get("labels") or {})]

    def replica_sets_of(self, workload: Obj) -> list[Obj]:
        uid = workload["metadata"].get("uid")
        return [
            rs
            for rs in self.replica_sets
            if any(o.get("uid") == uid for o in rs["metadata"].get("ownerReferences") or [])
        ]


def pod_spec(kind: str, obj: Obj) -> Obj:
    return references.pod_spec_of({**obj, "kind": kind})


@dataclass(frozen=True)
class Observed:
    """One step's view of the world. A field that is None was not fetched for this step."""

    now: datetime
    objects: NamespaceObjects
    secrets: Mapping[str, SecretState | None] | None  # by name: the ones read (None: does not exist)
    mount_failures: Mapping[str, datetime] | None = field(default_factory=dict)
    claims: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (kind, name) -> the rotation switching it
    service_accounts: Mapping[str, AccountState | None] | None = field(default_factory=dict)  # by name, likewise
    bindings: Sequence[Obj] | None = ()  # the namespace's RoleBindings, each with its "kind"
    extendable_bindings: AbstractSet[str] = frozenset()  # RoleBindings the operator may add subjects to
    nonce: str = ""  # fresh randomness from the shell, for a rotation that starts in this step
    fresh: bool = True  # the decisive kinds were listed lately, then updated by watches (False: watches alone)

    def secret(self, name: str | None) -> SecretState | None:
        """The Secret of that name (metadata and key names), read by name for this step; None if it does not exist."""
        if not name:
            return None
        if self.secrets is None or name not in self.secrets:
            raise NeedFacts(Needs(secrets=frozenset({name})))
        return self.secrets[name]

    def account(self, name: str | None) -> AccountState | None:
        if not name:
            return None
        if self.service_accounts is None or name not in self.service_accounts:
            raise NeedFacts(Needs(accounts=frozenset({name})))
        return self.service_accounts[name]

    def listed_bindings(self) -> Sequence[Obj]:
        if self.bindings is None:
            raise NeedFacts(Needs(frozenset({Fact.BINDINGS})))
        return self.bindings

    def mount_failure_since(self, pod: str) -> datetime | None:
        """When a FailedMount was first reported for ``pod`` (asked only of pods stuck unready)."""
        if self.mount_failures is None:
            raise NeedFacts(Needs(frozenset({Fact.MOUNT_FAILURES})))
        return self.mount_failures.get(pod)

    def require_fresh(self) -> None:
        """Before a promotion or a deletion: decide from objects listed lately, not only from the watches."""
        if not self.fresh:
            raise NeedFacts(Needs(frozenset({Fact.FRESH})))
