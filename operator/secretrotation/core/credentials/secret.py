"""Rotating a Secret: versions are immutable Secrets ``<secretName>-v<N>`` beside the one in use."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from secretrotation.core import references
from secretrotation.core.credentials.base import Context, Removal, Staging
from secretrotation.core.plan import CreateVersion, DeleteSecret
from secretrotation.core.record import InFlight
from secretrotation.core.rules import preflight
from secretrotation.core.rules.collect import Candidate
from secretrotation.core.world import NamespaceObjects, Obj, Observed, Referrer, SecretState, pod_spec


def referrers_of(secret: str, objects: NamespaceObjects) -> list[Referrer]:
    """Every object in the namespace whose spec references ``secret``.

    Pods, the pod templates of workloads, Jobs and CronJobs, ReplicaSets that
    still want replicas, and ServiceAccounts that pull images with it.
    """
    found = [
        Referrer(kind, obj["metadata"]["name"])
        for kind, obj in objects.pod_spec_holders()
        if secret in references.referenced_secrets(pod_spec(kind, obj))
    ]
    found += [
        Referrer("ServiceAccount", account["metadata"]["name"])
        for account in objects.service_accounts
        if any(ref.get("name") == secret for ref in account.get("imagePullSecrets") or [])
    ]
    return found


def _from(observed: Observed, name: str | None) -> SecretState | None:
    """The ``from`` Secret, None if it does not exist (read by name like any other)."""
    return observed.secret(name) if name is not None else None


def _from_keys(observed: Observed, name: str | None) -> frozenset[str] | None:
    found = _from(observed, name)
    return found.keys if found is not None else None


@dataclass(frozen=True)
class SecretCredential:
    kind: Literal["Secret", "ServiceAccount"] = "Secret"
    base_field: str = "spec.secretName"

    def uses(self, pod_spec: Obj, name: str) -> bool:
        return bool(references.references_to(pod_spec, name))

    def referrers(self, name: str, objects: NamespaceObjects) -> list[Referrer]:
        return referrers_of(name, objects)

    def exists(self, observed: Observed, name: str) -> bool:
        return observed.secret(name) is not None

    def labels(self, observed: Observed, name: str) -> Mapping[str, str] | None:
        found = observed.secret(name)
        return found.labels if found is not None else None

    def stage(self, context: Context, rotation: InFlight) -> Staging:
        """Create the new version, or adopt ours from an interrupted attempt once it proves intact."""
        spec, observed = context.spec, context.observed
        staged = observed.secret(rotation.version)
        if staged is None:
            problem = preflight.from_secret_may_be_copied(spec.from_secret, _from(observed, spec.from_secret))
            if problem is not None:
                return Staging(problem=problem)
            return Staging(
                actions=(CreateVersion(rotation.version, rotation.revision, spec, rotation.nonce),),
                waiting=f"staging {rotation.version}",
            )
        expected_keys = (
            frozenset(r.key for r in spec.generate)
            if spec.from_secret is None
            else _from_keys(observed, spec.from_secret)
        )
        problem = preflight.staged_secret_is_ours(
            staged, context.rotation, rotation.revision, str(spec.secret_type), expected_keys, rotation.nonce
        )
        taken = preflight.name_taken(
            staged.labels, staged.annotations, context.rotation, rotation.revision, rotation.nonce
        )
        return Staging(problem=problem, taken=taken)

    def missing(self, context: Context, pod_spec: Obj, old: str, new: str) -> list[str]:
        staged = context.observed.secret(new)
        keys = staged.keys if staged else frozenset()
        return [
            f"{gap.ref.where} needs key {gap.key!r}, which {new} does not hold"
            for gap in references.missing_keys(pod_spec, old, keys)
        ]

    def removal(
        self, context: Context, name: str, in_use: str | None, *, within_retain: bool, switched_at: datetime | None
    ) -> Removal | None:
        secret = context.observed.secret(name)
        if secret is None:
            return None
        candidate = Candidate(
            kind=self.kind,
            name=name,
            labels=secret.labels,
            rotation=context.rotation,
            in_use=in_use,
            base_name=context.spec.base_name,
            within_retain=within_retain,
            referrers=lambda: tuple(referrers_of(name, context.observed.objects)),
        )
        return Removal(candidate, (DeleteSecret(name, secret.resource_version),))

    def rewrite(self, pod_spec: Obj, old: str, new: str) -> Obj:
        return references.rewrite_secret_references(pod_spec, old, new)[0]
