"""Has a switched workload failed verification, or passed it?

A workload passes when its rollout is complete by kubectl's rules and every pod
on the new version is Ready and has stayed Ready for ``verify.stableFor``. It
fails, and the rotation rolls back, at the first of these findings:

1. the workload is gone, or someone else changed the references the rotation set
   (a GitOps self-heal or a human reverting it: ``TargetChangedExternally``);
2. Kubernetes gave up on the rollout (a Deployment past its progress deadline);
3. a ReplicaSet cannot create pods (admission refused them, for example);
4. a new pod failed: a waiting reason that will not clear, volumes that do not mount,
   or not Ready for ``verify.notReadyAfter`` (shorter than the timeout: fail fast);
5. the workload's update strategy cannot be judged (``OnDelete``; preflight refuses it too);
6. ``verify.timeout`` passed since the first switch, with the workload still not verified.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from secretrotation.core import pods, rollout
from secretrotation.core.record import Target
from secretrotation.core.rules import Finding, first
from secretrotation.core.world import Obj, Observed

VERIFICATION_FAILED = "VerificationFailed"
MAX_NAMED_PODS = 3  # pods named in one target's message; the rest are counted
CHANGED_EXTERNALLY = "TargetChangedExternally"


def switch_holds(target: Target, workload: Obj | None, during: str) -> Finding | None:
    """The workload is still there and still carries every reference the rotation set."""
    if workload is None:
        return Finding(VERIFICATION_FAILED, f"{target.label} disappeared during {during}")
    if not target.on_new(workload):
        return Finding(CHANGED_EXTERNALLY, f"{target.label} was changed by someone else during {during}")
    return None


@dataclass(frozen=True)
class TargetView:
    """One switched workload as verification sees it."""

    label: str
    status: rollout.RolloutStatus
    replica_failure: str | None  # a ReplicaSet of a Deployment that cannot create pods
    verdicts: tuple[pods.PodVerdict, ...]  # of the pods on the new version


def rollout_not_given_up(view: TargetView) -> Finding | None:
    if view.status.failed:
        return Finding(VERIFICATION_FAILED, f"{view.label}: {view.status.reason}: {view.status.message}")
    return None


def replicas_can_be_created(view: TargetView) -> Finding | None:
    if view.replica_failure:
        return Finding(VERIFICATION_FAILED, f"{view.label}: {view.replica_failure}")
    return None


def no_new_pod_failed(view: TargetView) -> Finding | None:
    # The verdict's message names the pod, the container (or sidecar, or init container) and the
    # reason, and never the kubelet's own text.
    for verdict in view.verdicts:
        if verdict.state is pods.PodState.FAILED:
            return Finding(VERIFICATION_FAILED, f"{view.label}: {verdict.message}")
    return None


def strategy_can_be_judged(view: TargetView) -> Finding | None:
    if view.status.unsupported:
        return Finding(VERIFICATION_FAILED, f"{view.label}: {view.status.message}")
    return None


FAILURE_CHAIN: tuple[Callable[[TargetView], Finding | None], ...] = (
    rollout_not_given_up,
    replicas_can_be_created,
    no_new_pod_failed,
    strategy_can_be_judged,
)


@dataclass(frozen=True)
class Health:
    done: bool
    failure: Finding | None
    message: str
    wake_at: datetime | None = None


def judge(view: TargetView, wake_at: datetime | None = None) -> Health:
    """Failed (the first finding of FAILURE_CHAIN), still settling, or verified."""
    failure = first(FAILURE_CHAIN, view)
    if failure is not None:
        return Health(False, failure, failure.message)
    waiting = _waiting_pods(view.verdicts)
    if not view.status.done:
        # The rollout's own words, and which new pods hold it up (a pod that never turns Ready is named).
        detail = f"; {waiting}" if waiting else ""
        return Health(False, None, f"{view.label}: {view.status.message}{detail}", wake_at)
    if waiting:
        return Health(False, None, f"{view.label}: {waiting}", wake_at)
    return Health(True, None, f"{view.label}: rolled out, new pods Ready and stable")


def _waiting_pods(verdicts: tuple[pods.PodVerdict, ...]) -> str:
    """The new pods still waiting, each with why, the first few by name: empty when none waits."""
    waiting = [f"pod {v.pod} {v.reason}" for v in verdicts if v.state is pods.PodState.WAITING]
    more = len(waiting) - MAX_NAMED_PODS
    return ", ".join(waiting[:MAX_NAMED_PODS]) + (f" and {more} more" if more > 0 else "")


def view_of(
    workload: Obj,
    on_new_version: Callable[[Obj], bool],
    observed: Observed,
    stable_for: timedelta,
    not_ready_after: timedelta | None = None,
) -> tuple[TargetView, datetime | None]:
    """The view of one switched workload, and when a waiting pod's verdict can next change."""
    label = f"{workload['kind']} {workload['metadata']['name']}"
    new_pods = [p for p in observed.objects.pods_of(workload) if on_new_version(p)]
    verdicts = []
    wake_at: datetime | None = None
    for pod in new_pods:
        name = pod["metadata"]["name"]
        # Only a pod unready for longer than the mount grace can have failed to mount:
        # the Events that say so are fetched for such pods alone.
        stuck = pods.may_have_failed_to_mount(pod, observed.now)
        since = observed.mount_failure_since(name) if stuck else None
        verdict = pods.pod_verdict(
            pod, now=observed.now, stable_for=stable_for, mount_failure_since=since, not_ready_after=not_ready_after
        )
        verdicts.append(verdict)
        if verdict.state is pods.PodState.WAITING:
            mount_deadline = since + pods.MOUNT_GRACE if since else pods.mount_check_at(pod)
            unready = pods.not_ready_since(pod)
            too_long_at = unready + not_ready_after if unready and not_ready_after is not None else None
            wake_at = earliest(wake_at, pods.stable_at(pod, stable_for), mount_deadline, too_long_at)
    view = TargetView(label, rollout.rollout_status(workload), _replica_failure(workload, observed), tuple(verdicts))
    return view, wake_at


def within_deadline(deadline: datetime | None, now: datetime, timeout: timedelta, pending: str) -> Finding | None:
    if deadline is None or now < deadline:
        return None
    seconds = int(timeout.total_seconds())
    return Finding(VERIFICATION_FAILED, f"not verified within {seconds}s: {pending}")


def earliest(*moments: datetime | None) -> datetime | None:
    present = [m for m in moments if m is not None]
    return min(present) if present else None


def _replica_failure(workload: Obj, observed: Observed) -> str | None:
    if workload["kind"] != "Deployment":
        return None
    for rs in observed.objects.replica_sets_of(workload):
        for condition in (rs.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
                return f"ReplicaSet {rs['metadata']['name']}: {condition.get('reason', 'ReplicaFailure')}"
    return None
