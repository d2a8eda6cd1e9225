"""Is this workload rolled out, and are its pods healthy?

Two layers, both pure functions over objects as the Kubernetes API returns them
in JSON (camelCase keys); missing or ``null`` fields read as zero or empty.

1. Workload rules (``rollout_status``) are ported from ``kubectl rollout
   status``: kubernetes/kubectl ``pkg/polymorphichelpers/rollout_status.go``
   (read at commit 53ef3abb02e5148346e12c14e6fa0f20d5712176). That file is what
   operators already trust to mean "rolled out", so we follow it branch for
   branch, in its order, and keep its messages. Where we deviate it is said so.
2. Pod checks (``pod_verdict``) that kubectl does not make: containers stuck in
   a waiting reason that will not clear by itself, volumes that fail to mount,
   and a stability window after Ready so a pod that crashes a few seconds after
   starting is not taken for healthy.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

ROLLING_UPDATE = "RollingUpdate"

FAIL_FAST_WAITING_REASONS = frozenset(
    {
        "CreateContainerConfigError",
        "CreateContainerError",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CrashLoopBackOff",
    }
)


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


class PodState(enum.Enum):
    """Where a pod stands in verification."""

    FAILED = "Failed"
    WAITING = "Waiting"
    STABLE = "Stable"


@dataclass(frozen=True)
class PodVerdict:
    """The verdict on one pod.

    ``reason`` is CamelCase: a waiting reason from FAIL_FAST_WAITING_REASONS,
    ``FailedMount``, ``Terminating``, ``NotReady``, ``Stabilizing`` or
    ``Stable``. ``message`` names only the pod, containers and reasons, never
    kubelet's free text, which can quote Secret data.
    """

    pod: str
    state: PodState
    reason: str
    message: str


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
    name = _name(deployment)
    spec = _mapping(deployment.get("spec"))
    status = _mapping(deployment.get("status"))
    if spec.get("paused") is True:
        return _waiting(
            RolloutReason.PAUSED,
            f'deployment "{name}" is paused and will not roll out until it is resumed',
        )
    if _int(_mapping(deployment.get("metadata")), "generation") > _int(status, "observedGeneration"):
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
    desired = _int(spec, "replicas", default=1)
    updated = _int(status, "updatedReplicas")
    replicas = _int(status, "replicas")
    available = _int(status, "availableReplicas")
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
    spec = _mapping(sts.get("spec"))
    status = _mapping(sts.get("status"))
    if _update_strategy_type(spec) != ROLLING_UPDATE:
        return _unsupported_strategy()
    observed = _int(status, "observedGeneration")
    if observed == 0 or _int(_mapping(sts.get("metadata")), "generation") > observed:
        return _waiting(
            RolloutReason.SPEC_NOT_OBSERVED,
            "Waiting for statefulset spec update to be observed...",
        )
    desired = _int(spec, "replicas", default=1)
    ready = _int(status, "readyReplicas")
    if ready < desired:
        return _waiting(
            RolloutReason.WAITING_FOR_READY,
            f"Waiting for {desired - ready} pods to be ready...",
        )
    updated = _int(status, "updatedReplicas")
    rolling_update = _mapping_or_none(_mapping(spec.get("updateStrategy")).get("rollingUpdate"))
    if rolling_update is not None:
        partition = _optional_int(rolling_update.get("partition"))
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
    update_revision = _str(status, "updateRevision")
    current_revision = _str(status, "currentRevision")
    if update_revision != current_revision:
        return _waiting(
            RolloutReason.UPDATING_REVISION,
            f"waiting for statefulset rolling update to complete {updated} pods at revision {update_revision}...",
        )
    current = _int(status, "currentReplicas")
    return _done(
        RolloutReason.ROLLOUT_COMPLETE,
        f"statefulset rolling update complete {current} pods at revision {current_revision}...",
    )


def daemonset_rollout_status(ds: Mapping[str, Any]) -> RolloutStatus:
    """kubectl's DaemonSet rules; ``OnDelete`` is unsupported."""
    name = _name(ds)
    spec = _mapping(ds.get("spec"))
    status = _mapping(ds.get("status"))
    if _update_strategy_type(spec) != ROLLING_UPDATE:
        return _unsupported_strategy()
    if _int(_mapping(ds.get("metadata")), "generation") > _int(status, "observedGeneration"):
        return _waiting(
            RolloutReason.SPEC_NOT_OBSERVED,
            "Waiting for daemon set spec update to be observed...",
        )
    desired = _int(status, "desiredNumberScheduled")
    updated = _int(status, "updatedNumberScheduled")
    available = _int(status, "numberAvailable")
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


def pod_verdict(
    pod: Mapping[str, Any],
    *,
    now: datetime,
    stable_for: timedelta,
    mount_failure_since: datetime | None = None,
    mount_grace: timedelta = timedelta(seconds=10),
) -> PodVerdict:
    """Whether ``pod`` has failed, is still settling, or is stable.

    Checks, first match wins: a container or init container waiting with a
    reason in FAIL_FAST_WAITING_REASONS (FAILED); a ``FailedMount`` Event seen
    since ``mount_failure_since`` on a pod still not Ready after ``mount_grace``
    (FAILED); deletion under way (WAITING ``Terminating``); not Ready (WAITING
    ``NotReady``); Ready for less than ``stable_for`` since it last turned Ready
    or a container last exited (WAITING ``Stabilizing``); otherwise STABLE.
    ``now`` and ``mount_failure_since`` must be timezone-aware.
    """
    failure = _failure_verdict(pod, now, mount_failure_since, mount_grace)
    return failure if failure is not None else _readiness_verdict(pod, now, stable_for)


def restart_count(pod: Mapping[str, Any]) -> int:
    """Total restarts of the pod's containers and init containers.

    Init containers count because restartable (sidecar) init containers run for
    the pod's whole life and can crash like any other container.
    """
    return sum(_int(status, "restartCount") for _, status in _container_statuses(pod))


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 timestamp such as ``2026-01-02T03:04:05Z`` into aware UTC.

    Raises ValueError for text that is not a timestamp.
    """
    parsed = datetime.fromisoformat(text.upper())
    if parsed.tzinfo is None:
        # RFC 3339 requires an offset; Kubernetes always writes one. Read a bare
        # one as UTC rather than guess the operator's local zone.
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _failure_verdict(
    pod: Mapping[str, Any],
    now: datetime,
    mount_failure_since: datetime | None,
    mount_grace: timedelta,
) -> PodVerdict | None:
    name = _name(pod)
    for container, reason in _waiting_reasons(pod):
        if reason in FAIL_FAST_WAITING_REASONS:
            return PodVerdict(
                name,
                PodState.FAILED,
                reason,
                f"pod {name}: container {container} is waiting: {reason}",
            )
    if mount_failure_since is None or _ready_condition(pod) is not None:
        return None
    failing_for = now - mount_failure_since
    if failing_for < mount_grace:
        return None
    return PodVerdict(
        name,
        PodState.FAILED,
        "FailedMount",
        f"pod {name}: volumes have failed to mount for {_whole_seconds(failing_for)}s: FailedMount",
    )


def _readiness_verdict(pod: Mapping[str, Any], now: datetime, stable_for: timedelta) -> PodVerdict:
    name = _name(pod)
    if _mapping(pod.get("metadata")).get("deletionTimestamp"):
        return PodVerdict(name, PodState.WAITING, "Terminating", f"pod {name} is terminating")
    ready = _ready_condition(pod)
    if ready is None:
        unready = ", ".join(_unready_containers(pod))
        detail = f"; containers not ready: {unready}" if unready else ""
        return PodVerdict(name, PodState.WAITING, "NotReady", f"pod {name} is not Ready{detail}")
    # Without any timestamp we cannot show the pod has been stable, so we count
    # from now: a malformed status delays the verdict rather than passing it.
    since = max(_stability_events(pod, ready), default=now)
    stable = now - since
    if stable >= stable_for:
        return PodVerdict(
            name,
            PodState.STABLE,
            "Stable",
            f"pod {name} has been Ready and stable for {_whole_seconds(stable)}s",
        )
    remaining = math.ceil((stable_for - stable).total_seconds())
    return PodVerdict(
        name,
        PodState.WAITING,
        "Stabilizing",
        f"pod {name} is Ready; {remaining}s left until it has been stable for {_whole_seconds(stable_for)}s",
    )


def _ready_condition(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod's Ready condition if it is True, else None."""
    for condition in _mappings(_mapping(pod.get("status")).get("conditions")):
        if condition.get("type") == "Ready":
            return condition if condition.get("status") == "True" else None
    return None


def _stability_events(pod: Mapping[str, Any], ready: Mapping[str, Any]) -> Iterator[datetime]:
    """When the pod last turned Ready and when each container last exited."""
    yield from _timestamp(ready.get("lastTransitionTime"))
    for _, status in _container_statuses(pod):
        terminated = _mapping(_mapping(status.get("lastState")).get("terminated"))
        yield from _timestamp(terminated.get("finishedAt"))


def _waiting_reasons(pod: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for container, status in _container_statuses(pod):
        reason = _mapping(_mapping(status.get("state")).get("waiting")).get("reason")
        if isinstance(reason, str):
            yield container, reason


def _unready_containers(pod: Mapping[str, Any]) -> Iterator[str]:
    statuses = _mapping(pod.get("status")).get("containerStatuses")
    for status in _mappings(statuses):
        if status.get("ready") is not True:
            yield _str(status, "name")


def _container_statuses(
    pod: Mapping[str, Any],
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(container label, status) for init containers, then containers."""
    status = _mapping(pod.get("status"))
    for field, label in (
        ("initContainerStatuses", "init container"),
        ("containerStatuses", ""),
    ):
        for container_status in _mappings(status.get(field)):
            container = _str(container_status, "name")
            yield (f"{label} {container}".strip(), container_status)


def _timestamp(value: Any) -> Iterator[datetime]:
    if isinstance(value, str) and value:
        yield parse_timestamp(value)


def _whole_seconds(duration: timedelta) -> int:
    return int(duration.total_seconds())


def _update_strategy_type(spec: Mapping[str, Any]) -> str:
    # The API server defaults the strategy to RollingUpdate; an object without
    # one is a manifest that was never defaulted, not an OnDelete workload.
    strategy_type = _mapping(spec.get("updateStrategy")).get("type")
    return strategy_type if isinstance(strategy_type, str) and strategy_type else ROLLING_UPDATE


def _condition_reason(status: Mapping[str, Any], condition_type: str) -> str | None:
    # kubectl looks at the first condition of the type, and so do we.
    for condition in _mappings(status.get("conditions")):
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


def _name(obj: Mapping[str, Any]) -> str:
    return _str(_mapping(obj.get("metadata")), "name")


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _mapping_or_none(value: Any) -> Mapping[str, Any] | None:
    # Go distinguishes a nil pointer from an empty struct; JSON null or a
    # missing field is the nil pointer, {} is the empty struct.
    return value if isinstance(value, Mapping) else None


def _mappings(value: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(value, list):
        yield from (entry for entry in value if isinstance(entry, Mapping))


def _optional_int(value: Any) -> int | None:
    # bool is an int subclass in Python; JSON true is not a count.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _int(mapping: Mapping[str, Any], key: str, default: int = 0) -> int:
    value = _optional_int(mapping.get(key))
    return default if value is None else value


def _str(mapping: Mapping[str, Any], key: str) -> str:
    value = mapping.get(key)
    return value if isinstance(value, str) else ""
