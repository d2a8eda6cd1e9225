"""May this old version be deleted? Every garbage-collection rule, in the order it is asked.

The lesson of the outage behind this product: a workload that still pointed at a
removed name failed at its next deploy, and deleted accounts and tokens broke
what still used them. So an old version goes only when every check passes, in
the spirit of Kubernetes' legacy token cleaner: only what this rotation made,
only what is provably unused, and (in the shell) only the exact object judged,
through a resourceVersion precondition.

The first finding decides what happens to the version:

* ``Keep`` reasons (``AdoptedBase``, ``Retained``): kept, silently;
* ``NotOwned``: left alone, with a Warning Event (it is not ours to report as blocked);
* every other reason: blocked, listed in ``status.pendingDeletion`` with its referrers,
  and retried when something in the namespace changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from secretrotation.core import names
from secretrotation.core.rules import Finding, first
from secretrotation.core.world import Referrer, describe

KEEP_REASONS = frozenset({"AdoptedBase", "Retained"})
NOT_OWNED = "NotOwned"


@dataclass(frozen=True)
class Candidate:
    """An old version, with every fact the checks judge (gathered by its credential)."""

    kind: str  # Secret or ServiceAccount
    name: str
    labels: Mapping[str, str]
    rotation: str  # the SecretRotation asking
    in_use: str | None  # the version the rotation currently uses
    base_name: str = ""
    within_retain: bool = False  # among the ``retain`` newest old versions
    # Found only if a check gets that far: a version kept by an earlier check costs no look at its referrers.
    referrers: tuple[Referrer, ...] | Callable[[], tuple[Referrer, ...]] = ()
    mounted_tokens: tuple[Referrer, ...] = ()  # consumers of a controller-made token of this account
    token_used_since_switch: bool = False  # the cluster saw its legacy token used since the switch


def is_not_the_adopted_base(candidate: Candidate) -> Finding | None:
    """The unversioned Secret or account the first rotation adopted was not made by the operator: never deleted."""
    if candidate.name == candidate.base_name:
        return Finding(
            "AdoptedBase", f"{candidate.kind} {candidate.name} was adopted, not created; it is never deleted"
        )
    return None


def is_beyond_the_retain_window(candidate: Candidate) -> Finding | None:
    if candidate.within_retain:
        return Finding("Retained", f"{candidate.kind} {candidate.name} is kept by spec.retain")
    return None


def was_created_by_this_rotation(candidate: Candidate) -> Finding | None:
    """It carries our rotation label, or it is not ours."""
    if candidate.labels.get(names.ROTATION_LABEL) != candidate.rotation:
        return Finding(
            NOT_OWNED,
            f"{candidate.kind} {candidate.name} does not carry {names.ROTATION_LABEL}={candidate.rotation}; "
            "it is left alone",
        )
    return None


def is_not_in_use(candidate: Candidate) -> Finding | None:
    if candidate.name == candidate.in_use:
        return Finding("InUse", f"{candidate.kind} {candidate.name} is the version in use")
    return None


def is_not_referenced(candidate: Candidate) -> Finding | None:
    referrers = candidate.referrers() if callable(candidate.referrers) else candidate.referrers
    if not referrers:
        return None
    verb = "referenced" if candidate.kind == "Secret" else "used"
    return Finding("StillReferenced", f"{candidate.kind} {candidate.name} is still {verb} by {describe(referrers)}")


def has_no_mounted_token(candidate: Candidate) -> Finding | None:
    """Deleting an account deletes the token Secrets the controller made for it: none may still be mounted."""
    if not candidate.mounted_tokens:
        return None
    return Finding(
        "StillReferenced",
        f"a token Secret of ServiceAccount {candidate.name} is still mounted by {describe(candidate.mounted_tokens)}",
    )


def token_unused_since_switch(candidate: Candidate) -> Finding | None:
    """Where the cluster records legacy token use (1.28+), a use after the switch keeps the account."""
    if not candidate.token_used_since_switch:
        return None
    return Finding(
        "TokenInUse",
        f"the token of ServiceAccount {candidate.name} was used after the switch, by a consumer outside the cluster",
    )


Check = Callable[[Candidate], Finding | None]

CHAIN: tuple[Check, ...] = (
    is_not_the_adopted_base,
    is_beyond_the_retain_window,
    was_created_by_this_rotation,
    is_not_in_use,
    is_not_referenced,
    has_no_mounted_token,
    token_unused_since_switch,
)


def judge(candidate: Candidate) -> Finding | None:
    """Why ``candidate`` may not be deleted, or None when it may."""
    return first(CHAIN, candidate)
