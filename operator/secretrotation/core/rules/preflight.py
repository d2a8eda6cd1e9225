"""May the rotation go ahead? Checks asked before anything is switched.

A refusal here costs nothing: no workload has been touched, and the staged
version (if any) is dropped. Every check that can be made before the switch is
made here, so a rotation never fails half-way for a reason it could have seen.

* staging: the ``from`` Secret exists and holds data; a Secret or account with the
  staged name is ours and intact; a namespace has opted in before bindings are carried;
* per target: a paused Deployment or an ``OnDelete`` workload would never roll;
  every key a consumer reads is in the new version;
* overlap: a workload another rotation is switching right now is waited for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from secretrotation.core import accounts, names, rollout
from secretrotation.core.conditions import Reason
from secretrotation.core.rules import Finding, first
from secretrotation.core.spec import COPYABLE_SECRET_TYPES
from secretrotation.core.world import AccountState, Obj, SecretState

# -- staging ------------------------------------------------------------------------------------


def from_secret_may_be_copied(from_secret: str | None, found: SecretState | None) -> Finding | None:
    """A ``from`` Secret must exist, hold data, be of a type a version may have, and be nobody's version.

    A token Secret copied into an Opaque version would be a live credential that the token
    controller no longer manages; a version of a rotation is that rotation's to collect.
    """
    if from_secret is None:
        return None
    if found is None or not found.keys:
        problem = "is missing" if found is None else "holds no data"
        return Finding(Reason.INVALID_SPEC, f"spec.from.secretName: Secret {from_secret} {problem}")
    if found.type not in COPYABLE_SECRET_TYPES:
        return Finding(
            Reason.INVALID_SPEC,
            f"spec.from.secretName: Secret {from_secret} is of type {found.type}, which is never copied "
            f"(only {', '.join(sorted(COPYABLE_SECRET_TYPES))})",
        )
    owner = found.labels.get(names.ROTATION_LABEL)
    if owner is not None:
        return Finding(
            Reason.INVALID_SPEC,
            f"spec.from.secretName: Secret {from_secret} is a version staged by SecretRotation {owner}; "
            "copy from the Secret it was made from",
        )
    return None


def created_by_this_attempt(annotations: Mapping[str, str], nonce: str | None) -> bool:
    """The object carries the nonce this rotation wrote to its record before creating anything.

    Labels are not proof: anyone who may create Secrets can copy them, and a SecretRotation
    re-created with the same name writes the same labels. A record from before nonces (an
    upgrade mid-rotation) has none; then the labels are all there is.
    """
    return nonce is None or annotations.get(names.NONCE_ANNOTATION) == nonce


def name_taken(
    labels: Mapping[str, str], annotations: Mapping[str, str], rotation: str, revision: int, nonce: str | None
) -> bool:
    """An object holds the staged name that this attempt did not create: it is never adopted."""
    labelled = all(labels.get(k) == v for k, v in names.version_labels(rotation, revision).items())
    return not labelled or not created_by_this_attempt(annotations, nonce)


def staged_secret_is_ours(
    staged: SecretState,
    rotation: str,
    revision: int,
    secret_type: str,
    expected_keys: frozenset[str] | None,
    nonce: str | None = None,
) -> Finding | None:
    """A Secret with the staged name is adopted only if it is this rotation's intact, immutable version."""
    if name_taken(staged.labels, staged.annotations, rotation, revision, nonce):
        return Finding(
            Reason.STAGED_VERSION_CONFLICT,
            f"Secret {staged.name} exists but was not staged by this rotation; rename or remove it",
        )
    if not staged.immutable or staged.type != secret_type:
        return Finding(
            Reason.STAGED_VERSION_CONFLICT,
            f"Secret {staged.name} exists but is not an intact immutable {secret_type} version",
        )
    if expected_keys is not None and staged.keys != expected_keys:
        return Finding(Reason.STAGED_VERSION_CONFLICT, f"Secret {staged.name} exists but its keys differ from the spec")
    return None


def staged_account_is_ours(
    staged: AccountState, rotation: str, revision: int, nonce: str | None = None
) -> Finding | None:
    if name_taken(staged.labels, staged.annotations, rotation, revision, nonce):
        return Finding(
            Reason.STAGED_VERSION_CONFLICT,
            f"ServiceAccount {staged.name} exists but was not staged by this rotation; rename or remove it",
        )
    return None


def bindings_may_be_carried(carried: Sequence[Obj], extendable: AbstractSet[str]) -> Finding | None:
    """The new account joins the bindings of the one in use: each must consent, and the operator must be let in.

    A binding consents by its own annotation, so whoever may edit it decides; the operator may extend
    it only where a Role grants it ``patch`` on that binding and ``bind`` on its role (``extendable``).
    """
    silent = [b for b in carried if not accounts.consents(b)]
    if silent:
        return Finding(
            Reason.BINDING_NOT_PERMITTED,
            f"the account in use is bound by {_listed(silent)}, which does not consent to new account versions: "
            f"annotate it {names.EXTEND_BINDING_ANNOTATION}=true (whoever may edit the binding decides)",
        )
    locked = [b for b in carried if b["metadata"]["name"] not in extendable]
    if locked:
        return Finding(
            Reason.BINDING_NOT_PERMITTED,
            f"the operator may not extend {_listed(locked)}: grant it patch on the binding and bind on its role "
            "(see deploy/rbac-serviceaccounts.yaml)",
        )
    return None


def _listed(bindings: Sequence[Obj]) -> str:
    return ", ".join(f"{b['kind']}/{b['metadata']['name']}" for b in bindings)


def base_is_not_a_version(kind: str, base: str, labels: Mapping[str, str] | None) -> Finding | None:
    """The name to rotate may not be a version some rotation staged: rotating it would hijack that
    rotation's workloads, and its collection would delete what the other one still uses."""
    owner = (labels or {}).get(names.ROTATION_LABEL)
    if owner is None:
        return None
    return Finding(
        Reason.INVALID_SPEC, f"{kind} {base} is a version staged by SecretRotation {owner}; name the base it rotates"
    )


# -- per target -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetCheck:
    """A workload about to be switched, and what its consumers would miss in the new version."""

    workload: Obj
    missing: tuple[str, ...] = ()  # one message per key a consumer reads that the new version lacks

    @property
    def label(self) -> str:
        return f"{self.workload['kind']} {self.workload['metadata']['name']}"


def deployment_is_not_paused(target: TargetCheck) -> Finding | None:
    if target.workload["kind"] == "Deployment" and (target.workload.get("spec") or {}).get("paused"):
        return Finding(Reason.TARGET_PAUSED, f"{target.label} is paused and would not roll; nothing was switched")
    return None


def workload_rolls_by_itself(target: TargetCheck) -> Finding | None:
    """An ``OnDelete`` StatefulSet or DaemonSet keeps its pods until someone deletes them: it would never roll."""
    if target.workload["kind"] not in ("StatefulSet", "DaemonSet"):
        return None
    strategy = ((target.workload.get("spec") or {}).get("updateStrategy") or {}).get("type") or rollout.ROLLING_UPDATE
    if strategy == rollout.ROLLING_UPDATE:
        return None
    return Finding(
        Reason.TARGET_NOT_ROLLING,
        f"{target.label} uses the {strategy} update strategy and would not roll; nothing was switched",
    )


def has_every_key(target: TargetCheck) -> Finding | None:
    if not target.missing:
        return None
    return Finding(Reason.MISSING_KEY, f"{target.label}: {target.missing[0]}; nothing was switched")


TARGET_CHAIN: tuple[Callable[[TargetCheck], Finding | None], ...] = (
    deployment_is_not_paused,
    workload_rolls_by_itself,
    has_every_key,
)


def judge_target(target: TargetCheck) -> Finding | None:
    """Why this workload may not be switched, or None."""
    return first(TARGET_CHAIN, target)


# -- overlap ----------------------------------------------------------------------------------


def not_claimed(targets: Sequence[tuple[str, str]], claims: Mapping[tuple[str, str], str]) -> Finding | None:
    """A workload another rotation is switching right now: wait for it (two rotations never interleave)."""
    holder = next((claims[t] for t in targets if t in claims), None)
    if holder is None:
        return None
    return Finding(
        Reason.WAITING_FOR_WORKLOAD, f"waiting for SecretRotation {holder}, which is rotating a shared workload"
    )
