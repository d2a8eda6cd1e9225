"""Is this pod healthy? The checks kubectl does not make.

Containers stuck in a waiting reason that will not clear by itself, volumes
that fail to mount, and a stability window after Ready, so that a pod that
crashes a few seconds after starting is not taken for healthy. Pure functions
over pods as the API returns them in JSON.

Native sidecars (Kubernetes 1.29+: an init container with ``restartPolicy:
Always``) count as the kubelet counts them: they keep running beside the main
containers, their readiness is part of the pod's, and their restarts are exits.
A regular init container only has to finish; once it has, it says nothing about
the pod's health. Only the pod's spec tells the two apart: a container status
does not carry the restart policy.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from secretrotation.core.objects import (
    mapping,
    mappings,
    name_of,
    parse_time,
    parse_timestamp,
    str_at,
)

# How long a volume may fail to mount before the pod counts as failed: the kubelet
# retries mounts, and a Secret created a moment ago may not have reached it yet.
MOUNT_GRACE = timedelta(seconds=10)

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


class PodState(enum.Enum):
    """Where a pod stands in verification."""

    FAILED = "Failed"
    WAITING = "Waiting"
    STABLE = "Stable"


@dataclass(frozen=True)
class PodVerdict:
    """The verdict on one pod.

    ``reason`` is CamelCase: a waiting reason from FAIL_FAST_WAITING_REASONS,
    ``FailedMount``, ``NotReadyTooLong``, ``Terminating``, ``NotReady``,
    ``Stabilizing`` or ``Stable``. ``message`` names only the pod, containers and reasons, never
    kubelet's free text, which can quote Secret data.
    """

    pod: str
    state: PodState
    reason: str
    message: str


def pod_verdict(
    pod: Mapping[str, Any],
    *,
    now: datetime,
    stable_for: timedelta,
    mount_failure_since: datetime | None = None,
    mount_grace: timedelta = MOUNT_GRACE,
    not_ready_after: timedelta | None = None,
) -> PodVerdict:
    """Whether ``pod`` has failed, is still settling, or is stable.

    Checks, first match wins: a container, sidecar or init container waiting
    with a reason in FAIL_FAST_WAITING_REASONS (FAILED); a ``FailedMount`` Event seen
    since ``mount_failure_since`` on a pod still not Ready after ``mount_grace``
    (FAILED); deletion under way (WAITING ``Terminating``); not Ready for
    ``not_ready_after`` or longer (FAILED ``NotReadyTooLong``); not Ready (WAITING
    ``NotReady``); Ready for less than ``stable_for`` since it last turned Ready
    or a container or sidecar last exited (WAITING ``Stabilizing``); otherwise STABLE.
    ``now`` and ``mount_failure_since`` must be timezone-aware.
    """
    failure = _failure_verdict(pod, now, mount_failure_since, mount_grace)
    if failure is None and not_ready_after is not None:
        failure = _not_ready_too_long(pod, now, not_ready_after)
    return failure if failure is not None else _readiness_verdict(pod, now, stable_for)


def not_ready_since(pod: Mapping[str, Any]) -> datetime | None:
    """Since when a pod that is not Ready (and not terminating) has been so; None for a Ready one.

    The later of its creation and its Ready condition's last transition: a pod that
    never turned Ready counts from its creation, one that turned unready from then.
    """
    metadata = mapping(pod.get("metadata"))
    if _ready_condition(pod) is not None or metadata.get("deletionTimestamp"):
        return None
    moments = [parse_time(metadata.get("creationTimestamp"))]
    for condition in mappings(mapping(pod.get("status")).get("conditions")):
        if condition.get("type") == "Ready":
            moments.append(parse_time(condition.get("lastTransitionTime")))
    present = [m for m in moments if m is not None]
    return max(present) if present else None


def _not_ready_too_long(pod: Mapping[str, Any], now: datetime, bound: timedelta) -> PodVerdict | None:
    since = not_ready_since(pod)
    if since is None or now - since < bound:
        return None
    name = name_of(pod)
    unready = ", ".join(_unready_containers(pod))
    detail = f"; containers not ready: {unready}" if unready else ""
    message = f"pod {name} has not been Ready for {_whole_seconds(now - since)}s (verify.notReadyAfter){detail}"
    return PodVerdict(name, PodState.FAILED, "NotReadyTooLong", message)


def stable_at(pod: Mapping[str, Any], stable_for: timedelta) -> datetime | None:
    """When a Ready pod will have been stable for ``stable_for``; None if it is not Ready or has no timestamps.

    Counted from its last change, as ``pod_verdict`` counts: turning Ready, or a
    container or sidecar exiting.
    """
    ready = _ready_condition(pod)
    if ready is None:
        return None
    last_change = max(_stability_events(pod, ready), default=None)
    return last_change + stable_for if last_change is not None else None


def mount_check_at(pod: Mapping[str, Any]) -> datetime | None:
    """When an unready pod could first count as failing to mount: its creation plus the grace."""
    if _ready_condition(pod) is not None or mapping(pod.get("metadata")).get("deletionTimestamp"):
        return None
    created = parse_time(mapping(pod.get("metadata")).get("creationTimestamp"))
    return created + MOUNT_GRACE if created is not None else None


def may_have_failed_to_mount(pod: Mapping[str, Any], now: datetime) -> bool:
    """True for a pod unready for longer than the mount grace: only then do FailedMount Events matter.

    A FailedMount fails a pod only once it has been reported for ``MOUNT_GRACE``, and never
    before the pod existed; so a younger or Ready pod needs no look at the Events. A pod
    without a creation time is asked about, never passed.
    """
    if _ready_condition(pod) is not None or mapping(pod.get("metadata")).get("deletionTimestamp"):
        return False
    check_at = mount_check_at(pod)
    return check_at is None or now >= check_at


def _failure_verdict(
    pod: Mapping[str, Any],
    now: datetime,
    mount_failure_since: datetime | None,
    mount_grace: timedelta,
) -> PodVerdict | None:
    name = name_of(pod)
    for container, reason in _waiting_reasons(pod):
        if reason in FAIL_FAST_WAITING_REASONS:
            return PodVerdict(name, PodState.FAILED, reason, f"pod {name}: {container.label} is waiting: {reason}")
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
    name = name_of(pod)
    if mapping(pod.get("metadata")).get("deletionTimestamp"):
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
    for condition in mappings(mapping(pod.get("status")).get("conditions")):
        if condition.get("type") == "Ready":
            return condition if condition.get("status") == "True" else None
    return None


class _Kind(enum.Enum):
    INIT = "init container"  # runs to completion before the others start
    SIDECAR = "sidecar container"  # an init container with restartPolicy Always
    MAIN = "container"


@dataclass(frozen=True)
class _Container:
    name: str
    kind: _Kind
    status: Mapping[str, Any]

    @property
    def label(self) -> str:
        return f"{self.kind.value} {self.name}"

    @property
    def runs_with_the_pod(self) -> bool:
        """Its readiness is part of the pod's and its exits are restarts: a main container or a sidecar."""
        return self.kind is not _Kind.INIT


def _containers(pod: Mapping[str, Any]) -> Iterator[_Container]:
    """Each container status, init containers first, with what kind of container it is."""
    status = mapping(pod.get("status"))
    sidecars = _sidecar_names(pod)
    for init_status in mappings(status.get("initContainerStatuses")):
        name = str_at(init_status, "name")
        yield _Container(name, _Kind.SIDECAR if name in sidecars else _Kind.INIT, init_status)
    for container_status in mappings(status.get("containerStatuses")):
        yield _Container(str_at(container_status, "name"), _Kind.MAIN, container_status)


def _sidecar_names(pod: Mapping[str, Any]) -> frozenset[str]:
    init_containers = mappings(mapping(pod.get("spec")).get("initContainers"))
    return frozenset(str_at(c, "name") for c in init_containers if c.get("restartPolicy") == "Always")


def _stability_events(pod: Mapping[str, Any], ready: Mapping[str, Any]) -> Iterator[datetime]:
    """When the pod last turned Ready and when each container or sidecar last exited."""
    yield from _timestamp(ready.get("lastTransitionTime"))
    for container in _containers(pod):
        if container.runs_with_the_pod:
            terminated = mapping(mapping(container.status.get("lastState")).get("terminated"))
            yield from _timestamp(terminated.get("finishedAt"))


def _waiting_reasons(pod: Mapping[str, Any]) -> Iterator[tuple[_Container, str]]:
    for container in _containers(pod):
        reason = mapping(mapping(container.status.get("state")).get("waiting")).get("reason")
        if isinstance(reason, str):
            yield container, reason


def _unready_containers(pod: Mapping[str, Any]) -> Iterator[str]:
    for container in _containers(pod):
        if container.runs_with_the_pod and container.status.get("ready") is not True:
            yield f"{container.name} (sidecar)" if container.kind is _Kind.SIDECAR else container.name


def _timestamp(value: Any) -> Iterator[datetime]:
    if isinstance(value, str) and value:
        yield parse_timestamp(value)


def _whole_seconds(duration: timedelta) -> int:
    return int(duration.total_seconds())
