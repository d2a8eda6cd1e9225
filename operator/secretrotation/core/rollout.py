"""Is this workload rolled out, and are its pods healthy?

Two layers, both pure functions over objects as the Kubernetes API returns them
in JSON (camelCase keys); missing or ``null`` fields read as zero or empty.

1. Workload rules (``rollout_status``) are ported from ``kubectl rollout
   status``: kubernetes/kubectl ``pkg/polymorphichelpers/rollout_status.go``
   (read at commit 53ef3abb02e5148346e12c14e6fa0f20d5712176). That file is what
   operators already trust to mean "rolled out", so we follow it branch for
   branch, in its order, and keep its messages. Where we deviate it is said so.
2. Pod checks that kubectl does not make live in ``pods``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from secretrotation.core.objects import (
    int_at,
    mapping,
    mapping_or_none,
    mappings,
    name_of,
    optional_int,
    str_at,
)

ROLLING_UPDATE = "RollingUpdate"


class RolloutReason(enum.StrEnum):
    """Why a rollout is (not) done: the fixed set of reasons we report."""

    ROLLOUT_COMPLETE = "RolloutComplete"
    PARTITIONED_ROLLOUT_COMPLETE = "PartitionedRolloutComplete"
    SPEC_NOT_OBSERVED = "SpecNotObserved"
    UPDATING_REPLICAS = "UpdatingReplicas"
    TERMINATING_OLD_REPLICAS = "TerminatingOldReplicas"
    WAITING_FOR_AVAILABLE = "WaitingForAvailable"
    WAITING_FOR_READY = "WaitingForReady"
    UPDATING_REVISION = "UpdatingRevision"
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    UNSUPPORTED_STRATEGY = "UnsupportedStrategy"
    PAUSED = "Paused"


@dataclass(frozen=True)
class RolloutStatus:
    """The verdict on one workload's rollout.

    ``failed`` is set only when Kubernetes itself gave up (a Deployment past its
    progress deadline). ``unsupported`` marks a workload whose update strategy
    kubectl cannot judge (``OnDelete``): it is neither done nor failed.
    """

    done: bool
    failed: bool
    reason: RolloutReason
    message: str
    unsupported: bool = False


def rollout_status(workload: Mapping[str, Any]) -> RolloutStatus:
    """The rollout status of a Deployment, StatefulSet or DaemonSet.

    Dispatches on ``workload["kind"]``; raises ValueError naming any other kind.
    """
    kind = workload.get("kind")
    rules = _RULES_BY_KIND.get(str(kind))
    if rules is None:
        raise ValueError(f"no rollout status rules for kind {kind!r}")
    return rules(workload)


def deployment_rollout_status(deployment: Mapping[str, Any]) -> RolloutStatus:
    """kubectl's Deployment rules, plus: a paused Deployment is reported ``Paused``.

    kubectl reports a paused Deployment by its replica counts, so one paused
    before it started rolling looks done. We say ``Paused`` because a paused
    Deployment never rolls, and waiting on it would only end in a timeout.
    """
    name = name_of(deployment)
    spec = mapping(deployment.get("spec"))
    status = mapping(deployment.get("status"))
    if spec.get("paused") is True:
        return _waiting(
            RolloutReason.PAUSED,
            f'deployment "{name}" is paused and will not roll out until it is resumed',
        )
    if int_at(mapping(deployment.get("metadata")), "generation") > int_at(status, "observedGeneration"):
        return _waiting(
            RolloutReason.SPEC_NOT_OBSERVED,
            "Waiting for deployment spec update to be observed...",
        )
    if _condition_reason(status, "Progressing") == "ProgressDeadlineExceeded":
        return RolloutStatus(
            done=False,
            failed=True,
            reason=RolloutReason.PROGRESS_DEADLINE_EXCEEDED,
            message=f'deployment "{name}" exceeded its progress deadline',
        )
    # The API server defaults spec.replicas to 1, so kubectl never sees it unset.
    desired = int_at(spec, "replicas", default=1)
    updated = int_at(status, "updatedReplicas")
    replicas = int_at(status, "replicas")
    available = int_at(status, "availableReplicas")
    prefix = f'Waiting for deployment "{name}" rollout to finish'
    if updated < desired:
        return _waiting(
            RolloutReason.UPDATING_REPLICAS,
            f"{prefix}: {updated} out of {desired} new replicas have been updated...",
        )
    if replicas > updated:
        return _waiting(
            RolloutReason.TERMINATING_OLD_REPLICAS,
            f"{prefix}: {replicas - updated} old replicas are pending termination...",
        )
    if available < updated:
        return _waiting(
            RolloutReason.WAITING_FOR_AVAILABLE,
            f"{prefix}: {available} of {updated} updated replicas are available...",
        )
    return _done(RolloutReason.ROLLOUT_COMPLETE, f'deployment "{name}" successfully rolled out')


def statefulset_rollout_status(sts: Mapping[str, Any]) -> RolloutStatus:
    """kubectl's StatefulSet rules, partition-aware; ``OnDelete`` is unsupported.

    Note kubectl's quirk, kept here: whenever ``updateStrategy.rollingUpdate``
    is present (the API server always fills it in for apps/v1), the result is
    judged by the partition alone and reported ``PartitionedRolloutComplete``;
    revisions are compared only when ``rollingUpdate`` is absent.
    """
    spec = mapping(sts.get("spec"))
    status = mapping(sts.get("status"))
    if _update_strategy_type(spec) != ROLLING_UPDATE:
        return _unsupported_strategy()
    observed = int_at(status, "observedGeneration")
    if observed == 0 or int_at(mapping(sts.get("metadata")), "generation") > observed:
        return _waiting(
            RolloutReason.SPEC_NOT_OBSERVED,
            "Waiting for statefulset spec update to be observed...",
        )
    desired = int_at(spec, "replicas", default=1)
    ready = int_at(status, "readyReplicas")
    if ready < desired:
        return _waiting(
            RolloutReason.WAITING_FOR_READY,
            f"Waiting for {desired - ready} pods to be ready...",
        )
    updated = int_at(status, "updatedReplicas")
    rolling_update = mapping_or_none(mapping(spec.get("updateStrategy")).get("rollingUpdate"))
    if rolling_update is not None:
        partition = optional_int(rolling_update.get("partition"))
        if partition is not None and updated < desired - partition:
            return _waiting(
                RolloutReason.UPDATING_REPLICAS,
                "Waiting for partitioned roll out to finish: "
                f"{updated} out of {desired - partition} new pods have been updated...",
            )
        return _done(
            RolloutReason.PARTITIONED_ROLLOUT_COMPLETE,
            f"partitioned roll out complete: {updated} new pods have been updated...",
        )
    update_revision = str_at(status, "updateRevision")
    current_revision = str_at(status, "currentRevision")
    if update_revision != current_revision:
        return _waiting(
            RolloutReason.UPDATING_REVISION,
            f"waiting for statefulset rolling update to complete {updated} pods at revision {update_revision}...",
        )
    current = int_at(status, "currentReplicas")
    return _done(
        RolloutReason.ROLLOUT_COMPLETE,
        f"statefulset rolling update complete {current} pods at revision {current_revision}...",
    )


def daemonset_rollout_status(ds: Mapping[str, Any]) -> RolloutStatus:
    """kubectl's DaemonSet rules; ``OnDelete`` is unsupported."""
    name = name_of(ds)
    spec = mapping(ds.get("spec"))
    status = mapping(ds.get("status"))
    if _update_strategy_type(spec) != ROLLING_UPDATE:
        return _unsupported_strategy()
    if int_at(mapping(ds.get("metadata")), "generation") > int_at(status, "observedGeneration"):
        return _waiting(
            RolloutReason.SPEC_NOT_OBSERVED,
            "Waiting for daemon set spec update to be observed...",
        )
    desired = int_at(status, "desiredNumberScheduled")
    updated = int_at(status, "updatedNumberScheduled")
    available = int_at(status, "numberAvailable")
    prefix = f'Waiting for daemon set "{name}" rollout to finish'
    if updated < desired:
        return _waiting(
            RolloutReason.UPDATING_REPLICAS,
            f"{prefix}: {updated} out of {desired} new pods have been updated...",
        )
    if available < desired:
        return _waiting(
            RolloutReason.WAITING_FOR_AVAILABLE,
            f"{prefix}: {available} of {desired} updated pods are available...",
        )
    return _done(RolloutReason.ROLLOUT_COMPLETE, f'daemon set "{name}" successfully rolled out')


_RULES_BY_KIND: Mapping[str, Callable[[Mapping[str, Any]], RolloutStatus]] = {
    "Deployment": deployment_rollout_status,
    "StatefulSet": statefulset_rollout_status,
    "DaemonSet": daemonset_rollout_status,
}


def _update_strategy_type(spec: Mapping[str, Any]) -> str:
    # The API server defaults the strategy to RollingUpdate; an object without
    # one is a manifest that was never defaulted, not an OnDelete workload.
    strategy_type = mapping(spec.get("updateStrategy")).get("type")
    return strategy_type if isinstance(strategy_type, str) and strategy_type else ROLLING_UPDATE


def _condition_reason(status: Mapping[str, Any], condition_type: str) -> str | None:
    # kubectl looks at the first condition of the type, and so do we.
    for condition in mappings(status.get("conditions")):
        if condition.get("type") == condition_type:
            reason = condition.get("reason")
            return reason if isinstance(reason, str) else None
    return None


def _unsupported_strategy() -> RolloutStatus:
    return RolloutStatus(
        done=False,
        failed=False,
        reason=RolloutReason.UNSUPPORTED_STRATEGY,
        message=f"rollout status is only available for {ROLLING_UPDATE} strategy type",
        unsupported=True,
    )


def _waiting(reason: RolloutReason, message: str) -> RolloutStatus:
    return RolloutStatus(done=False, failed=False, reason=reason, message=message)


def _done(reason: RolloutReason, message: str) -> RolloutStatus:
    return RolloutStatus(done=True, failed=False, reason=reason, message=message)
