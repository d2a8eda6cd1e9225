"""Behaviour of secretrotation.core.rollout: kubectl's rollout rules per workload
kind, and the pod-level verdicts kubectl does not give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from secretrotation.core.objects import parse_timestamp
from secretrotation.core.pods import FAIL_FAST_WAITING_REASONS, PodState, PodVerdict, pod_verdict, stable_at
from secretrotation.core.rollout import (
    RolloutReason,
    RolloutStatus,
    daemonset_rollout_status,
    deployment_rollout_status,
    rollout_status,
    statefulset_rollout_status,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
STABLE_FOR = timedelta(seconds=30)
# Text that must never leak into a verdict: kubelet messages can quote data.
SECRET_TEXT = "password=hunter2"


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def ago(seconds: float) -> str:
    return rfc3339(NOW - timedelta(seconds=seconds))


def assert_status(
    status: RolloutStatus,
    reason: RolloutReason,
    *,
    done: bool,
    failed: bool = False,
    unsupported: bool = False,
) -> None:
    actual = (status.reason, status.done, status.failed, status.unsupported)
    expected = (reason, done, failed, unsupported)
    assert actual == expected, f"(reason, done, failed, unsupported) {actual} != {expected}: {status.message}"


# --- Deployment ---------------------------------------------------------------


def deployment(
    *,
    generation: int = 2,
    observed: int = 2,
    replicas: int | None = 3,
    updated: int = 3,
    total: int = 3,
    available: int = 3,
    progressing_reason: str = "NewReplicaSetAvailable",
    paused: bool | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"template": {}}
    if replicas is not None:
        spec["replicas"] = replicas
    if paused is not None:
        spec["paused"] = paused
    return {
        "kind": "Deployment",
        "metadata": {"name": "web", "generation": generation},
        "spec": spec,
        "status": {
            "observedGeneration": observed,
            "replicas": total,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True",
                    "reason": "MinimumReplicasAvailable",
                },
                {"type": "Progressing", "status": "True", "reason": progressing_reason},
            ],
        },
    }


@pytest.mark.parametrize(
    ("obj", "reason", "done", "failed", "message"),
    [
        pytest.param(
            deployment(paused=True),
            RolloutReason.PAUSED,
            False,
            False,
            'deployment "web" is paused and will not roll out until it is resumed',
            id="paused-even-when-counts-look-done",
        ),
        pytest.param(
            deployment(generation=3, progressing_reason="ProgressDeadlineExceeded"),
            RolloutReason.SPEC_NOT_OBSERVED,
            False,
            False,
            "Waiting for deployment spec update to be observed...",
            id="spec-not-observed-is-checked-before-the-deadline",
        ),
        pytest.param(
            deployment(updated=1, progressing_reason="ProgressDeadlineExceeded"),
            RolloutReason.PROGRESS_DEADLINE_EXCEEDED,
            False,
            True,
            'deployment "web" exceeded its progress deadline',
            id="progress-deadline-exceeded",
        ),
        pytest.param(
            deployment(updated=1),
            RolloutReason.UPDATING_REPLICAS,
            False,
            False,
            'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...',
            id="updating-replicas",
        ),
        pytest.param(
            deployment(total=5),
            RolloutReason.TERMINATING_OLD_REPLICAS,
            False,
            False,
            'Waiting for deployment "web" rollout to finish: 2 old replicas are pending termination...',
            id="old-replicas-pending-termination",
        ),
        pytest.param(
            deployment(available=2),
            RolloutReason.WAITING_FOR_AVAILABLE,
            False,
            False,
            'Waiting for deployment "web" rollout to finish: 2 of 3 updated replicas are available...',
            id="waiting-for-available",
        ),
        pytest.param(
            deployment(),
            RolloutReason.ROLLOUT_COMPLETE,
            True,
            False,
            'deployment "web" successfully rolled out',
            id="complete",
        ),
        pytest.param(
            deployment(generation=1, observed=2, paused=False),
            RolloutReason.ROLLOUT_COMPLETE,
            True,
            False,
            'deployment "web" successfully rolled out',
            id="observed-ahead-of-generation-and-not-paused",
        ),
    ],
)
def test_deployment_follows_kubectl_rules_in_order(
    obj: dict[str, Any], reason: RolloutReason, done: bool, failed: bool, message: str
) -> None:
    status = deployment_rollout_status(obj)
    assert_status(status, reason, done=done, failed=failed)
    assert status.message == message


@pytest.mark.parametrize(
    ("updated", "total", "available", "reason"),
    [
        (0, 0, 0, RolloutReason.UPDATING_REPLICAS),
        (1, 1, 1, RolloutReason.ROLLOUT_COMPLETE),
    ],
)
def test_deployment_without_spec_replicas_wants_one(
    updated: int, total: int, available: int, reason: RolloutReason
) -> None:
    obj = deployment(replicas=None, updated=updated, total=total, available=available)
    assert_status(
        deployment_rollout_status(obj),
        reason,
        done=reason is RolloutReason.ROLLOUT_COMPLETE,
    )


def test_deployment_scaled_to_zero_is_rolled_out() -> None:
    obj = deployment(replicas=0, updated=0, total=0, available=0)
    assert_status(deployment_rollout_status(obj), RolloutReason.ROLLOUT_COMPLETE, done=True)


def test_deployment_with_nothing_but_a_kind_waits_for_its_one_replica() -> None:
    status = deployment_rollout_status({"kind": "Deployment", "metadata": None, "status": None})
    assert_status(status, RolloutReason.UPDATING_REPLICAS, done=False)


# --- StatefulSet ----------------------------------------------------------------


def statefulset(
    *,
    strategy: dict[str, Any] | None = None,
    generation: int = 2,
    observed: int = 2,
    replicas: int | None = 3,
    ready: int = 3,
    updated: int = 3,
    current: int = 3,
    update_revision: str = "web-2",
    current_revision: str = "web-2",
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if strategy is not None:
        spec["updateStrategy"] = strategy
    if replicas is not None:
        spec["replicas"] = replicas
    return {
        "kind": "StatefulSet",
        "metadata": {"name": "db", "generation": generation},
        "spec": spec,
        "status": {
            "observedGeneration": observed,
            "readyReplicas": ready,
            "updatedReplicas": updated,
            "currentReplicas": current,
            "updateRevision": update_revision,
            "currentRevision": current_revision,
        },
    }


ROLLING = {"type": "RollingUpdate"}


def partitioned(partition: int | None) -> dict[str, Any]:
    rolling_update = {} if partition is None else {"partition": partition}
    return {"type": "RollingUpdate", "rollingUpdate": rolling_update}


@pytest.mark.parametrize(
    ("obj", "reason", "done", "message"),
    [
        pytest.param(
            statefulset(strategy=ROLLING, observed=0, generation=0),
            RolloutReason.SPEC_NOT_OBSERVED,
            False,
            "Waiting for statefulset spec update to be observed...",
            id="never-observed",
        ),
        pytest.param(
            statefulset(strategy=ROLLING, generation=3),
            RolloutReason.SPEC_NOT_OBSERVED,
            False,
            "Waiting for statefulset spec update to be observed...",
            id="generation-ahead",
        ),
        pytest.param(
            statefulset(strategy=ROLLING, ready=1),
            RolloutReason.WAITING_FOR_READY,
            False,
            "Waiting for 2 pods to be ready...",
            id="waiting-for-ready",
        ),
        pytest.param(
            statefulset(strategy=partitioned(2), replicas=5, ready=5, updated=2),
            RolloutReason.UPDATING_REPLICAS,
            False,
            "Waiting for partitioned roll out to finish: 2 out of 3 new pods have been updated...",
            id="partition-still-updating",
        ),
        pytest.param(
            statefulset(strategy=partitioned(2), replicas=5, ready=5, updated=3),
            RolloutReason.PARTITIONED_ROLLOUT_COMPLETE,
            True,
            "partitioned roll out complete: 3 new pods have been updated...",
            id="partition-reached",
        ),
        pytest.param(
            statefulset(strategy=partitioned(0), updated=2),
            RolloutReason.UPDATING_REPLICAS,
            False,
            "Waiting for partitioned roll out to finish: 2 out of 3 new pods have been updated...",
            id="partition-zero-updating",
        ),
        pytest.param(
            statefulset(strategy=partitioned(0), update_revision="web-3"),
            RolloutReason.PARTITIONED_ROLLOUT_COMPLETE,
            True,
            "partitioned roll out complete: 3 new pods have been updated...",
            id="partition-zero-done-ignores-revisions-like-kubectl",
        ),
        pytest.param(
            statefulset(strategy=partitioned(None), updated=0),
            RolloutReason.PARTITIONED_ROLLOUT_COMPLETE,
            True,
            "partitioned roll out complete: 0 new pods have been updated...",
            id="rolling-update-without-partition-is-complete-like-kubectl",
        ),
        pytest.param(
            statefulset(strategy=ROLLING, updated=1, update_revision="web-3"),
            RolloutReason.UPDATING_REVISION,
            False,
            "waiting for statefulset rolling update to complete 1 pods at revision web-3...",
            id="revisions-differ",
        ),
        pytest.param(
            statefulset(
                strategy={"type": "RollingUpdate", "rollingUpdate": None},
                update_revision="web-3",
            ),
            RolloutReason.UPDATING_REVISION,
            False,
            "waiting for statefulset rolling update to complete 3 pods at revision web-3...",
            id="null-rolling-update-compares-revisions",
        ),
        pytest.param(
            statefulset(strategy=ROLLING, current=3),
            RolloutReason.ROLLOUT_COMPLETE,
            True,
            "statefulset rolling update complete 3 pods at revision web-2...",
            id="revisions-equal",
        ),
        pytest.param(
            statefulset(strategy=None),
            RolloutReason.ROLLOUT_COMPLETE,
            True,
            "statefulset rolling update complete 3 pods at revision web-2...",
            id="missing-strategy-is-the-rolling-update-default",
        ),
        pytest.param(
            statefulset(strategy=ROLLING, replicas=None, ready=0),
            RolloutReason.WAITING_FOR_READY,
            False,
            "Waiting for 1 pods to be ready...",
            id="missing-replicas-wants-one",
        ),
    ],
)
def test_statefulset_follows_kubectl_rules_in_order(
    obj: dict[str, Any], reason: RolloutReason, done: bool, message: str
) -> None:
    status = statefulset_rollout_status(obj)
    assert_status(status, reason, done=done)
    assert status.message == message


# --- DaemonSet ------------------------------------------------------------------


def daemonset(
    *,
    strategy: dict[str, Any] | None = None,
    generation: int = 2,
    observed: int = 2,
    desired: int = 4,
    updated: int = 4,
    available: int = 4,
) -> dict[str, Any]:
    spec: dict[str, Any] = {} if strategy is None else {"updateStrategy": strategy}
    return {
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "generation": generation},
        "spec": spec,
        "status": {
            "observedGeneration": observed,
            "desiredNumberScheduled": desired,
            "updatedNumberScheduled": updated,
            "numberAvailable": available,
        },
    }


@pytest.mark.parametrize(
    ("obj", "reason", "done", "message"),
    [
        pytest.param(
            daemonset(generation=3),
            RolloutReason.SPEC_NOT_OBSERVED,
            False,
            "Waiting for daemon set spec update to be observed...",
            id="spec-not-observed",
        ),
        pytest.param(
            daemonset(strategy=ROLLING, updated=1),
            RolloutReason.UPDATING_REPLICAS,
            False,
            'Waiting for daemon set "agent" rollout to finish: 1 out of 4 new pods have been updated...',
            id="updating",
        ),
        pytest.param(
            daemonset(strategy=ROLLING, available=3),
            RolloutReason.WAITING_FOR_AVAILABLE,
            False,
            'Waiting for daemon set "agent" rollout to finish: 3 of 4 updated pods are available...',
            id="waiting-for-available",
        ),
        pytest.param(
            daemonset(strategy=ROLLING),
            RolloutReason.ROLLOUT_COMPLETE,
            True,
            'daemon set "agent" successfully rolled out',
            id="complete",
        ),
        pytest.param(
            daemonset(desired=0, updated=0, available=0),
            RolloutReason.ROLLOUT_COMPLETE,
            True,
            'daemon set "agent" successfully rolled out',
            id="no-nodes-to-run-on",
        ),
    ],
)
def test_daemonset_follows_kubectl_rules_in_order(
    obj: dict[str, Any], reason: RolloutReason, done: bool, message: str
) -> None:
    status = daemonset_rollout_status(obj)
    assert_status(status, reason, done=done)
    assert status.message == message


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(statefulset(strategy={"type": "OnDelete"}), id="statefulset"),
        pytest.param(daemonset(strategy={"type": "OnDelete"}), id="daemonset"),
    ],
)
def test_on_delete_strategy_is_unsupported_neither_done_nor_failed(
    obj: dict[str, Any],
) -> None:
    status = rollout_status(obj)
    assert_status(status, RolloutReason.UNSUPPORTED_STRATEGY, done=False, unsupported=True)
    assert status.message == "rollout status is only available for RollingUpdate strategy type"


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        (deployment(), RolloutReason.ROLLOUT_COMPLETE),
        (deployment(paused=True), RolloutReason.PAUSED),
        (statefulset(ready=0), RolloutReason.WAITING_FOR_READY),
        (daemonset(updated=0), RolloutReason.UPDATING_REPLICAS),
    ],
    ids=lambda value: value["kind"] if isinstance(value, dict) else str(value),
)
def test_rollout_status_dispatches_on_kind(obj: dict[str, Any], reason: RolloutReason) -> None:
    assert rollout_status(obj).reason == reason


@pytest.mark.parametrize("obj", [{"kind": "ReplicaSet"}, {}])
def test_rollout_status_of_another_kind_raises_naming_it(obj: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=repr(obj.get("kind"))):
        rollout_status(obj)


def test_rollout_reasons_are_camel_case_strings() -> None:
    for reason in RolloutReason:
        assert isinstance(reason, str) and reason[0].isupper() and "_" not in reason, reason
    assert str(RolloutReason.ROLLOUT_COMPLETE) == "RolloutComplete"


# --- pod verdicts ---------------------------------------------------------------


def container_status(
    name: str = "app",
    *,
    ready: bool = True,
    waiting_reason: str | None = None,
    restarts: int = 0,
    last_finished: str | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"name": name, "ready": ready, "restartCount": restarts}
    if waiting_reason is not None:
        status["state"] = {"waiting": {"reason": waiting_reason, "message": SECRET_TEXT}}
    else:
        status["state"] = {"running": {"startedAt": ago(300)}}
    if last_finished is not None:
        status["lastState"] = {"terminated": {"exitCode": 1, "finishedAt": last_finished}}
    return status


def pod(
    *,
    ready: bool = True,
    ready_since: str | None = ago(60),
    containers: list[dict[str, Any]] | None = None,
    init_containers: list[dict[str, Any]] | None = None,
    sidecars: frozenset[str] = frozenset(),
    deleting: bool = False,
) -> dict[str, Any]:
    """A pod; the init containers named in ``sidecars`` are native sidecars (``restartPolicy: Always``)."""
    ready_condition: dict[str, Any] = {
        "type": "Ready",
        "status": "True" if ready else "False",
    }
    if ready_since is not None:
        ready_condition["lastTransitionTime"] = ready_since
    metadata: dict[str, Any] = {"name": "web-1"}
    if deleting:
        metadata["deletionTimestamp"] = ago(1)
    init_specs = [
        {"name": status["name"], **({"restartPolicy": "Always"} if status["name"] in sidecars else {})}
        for status in init_containers or []
    ]
    return {
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "initContainers": init_specs,
            "containers": [{"name": "app", "env": [{"name": "PW", "value": SECRET_TEXT}]}],
        },
        "status": {
            "conditions": [{"type": "Initialized", "status": "True"}, ready_condition],
            "initContainerStatuses": init_containers or [],
            "containerStatuses": containers if containers is not None else [container_status()],
        },
    }


def verdict(obj: dict[str, Any], **kwargs: Any) -> PodVerdict:
    result = pod_verdict(obj, now=NOW, stable_for=STABLE_FOR, **kwargs)
    assert SECRET_TEXT not in result.message, f"verdict leaked kubelet or env text: {result.message}"
    assert result.pod == "web-1"
    return result


def assert_verdict(result: PodVerdict, state: PodState, reason: str) -> None:
    assert (result.state, result.reason) == (state, reason), f"unexpected verdict: {result}"


@pytest.mark.parametrize("reason", sorted(FAIL_FAST_WAITING_REASONS))
def test_a_container_waiting_for_a_fail_fast_reason_fails_the_pod(reason: str) -> None:
    containers = [
        container_status("sidecar"),
        container_status(ready=False, waiting_reason=reason),
    ]
    result = verdict(pod(ready=False, containers=containers))
    assert_verdict(result, PodState.FAILED, reason)
    assert result.message == f"pod web-1: container app is waiting: {reason}"


def test_an_init_container_waiting_for_a_fail_fast_reason_fails_the_pod() -> None:
    init = [container_status("migrate", ready=False, waiting_reason="CreateContainerConfigError")]
    result = verdict(
        pod(
            ready=False,
            init_containers=init,
            containers=[container_status(ready=False)],
        )
    )
    assert_verdict(result, PodState.FAILED, "CreateContainerConfigError")
    assert result.message == "pod web-1: init container migrate is waiting: CreateContainerConfigError"


@pytest.mark.parametrize("reason", ["CrashLoopBackOff", "CreateContainerConfigError"])
def test_a_sidecar_waiting_for_a_fail_fast_reason_fails_the_pod_and_is_named_a_sidecar(reason: str) -> None:
    init = [container_status("proxy", ready=False, waiting_reason=reason, restarts=3)]
    obj = pod(ready=False, init_containers=init, sidecars=frozenset({"proxy"}))

    result = verdict(obj)

    assert_verdict(result, PodState.FAILED, reason)
    assert result.message == f"pod web-1: sidecar container proxy is waiting: {reason}"


def test_fail_fast_reasons_win_over_termination() -> None:
    containers = [container_status(ready=False, waiting_reason="CrashLoopBackOff")]
    result = verdict(pod(ready=False, deleting=True, containers=containers))
    assert_verdict(result, PodState.FAILED, "CrashLoopBackOff")


@pytest.mark.parametrize("reason", ["ContainerCreating", "PodInitializing"])
def test_ordinary_waiting_reasons_only_make_the_pod_not_ready(reason: str) -> None:
    containers = [container_status(ready=False, waiting_reason=reason)]
    result = verdict(pod(ready=False, ready_since=None, containers=containers))
    assert_verdict(result, PodState.WAITING, "NotReady")
    assert result.message == "pod web-1 is not Ready; containers not ready: app"


@pytest.mark.parametrize(
    ("failing_for", "grace", "ready", "state", "reason"),
    [
        pytest.param(
            15,
            timedelta(seconds=10),
            False,
            PodState.FAILED,
            "FailedMount",
            id="past-grace",
        ),
        pytest.param(
            10,
            timedelta(seconds=10),
            False,
            PodState.FAILED,
            "FailedMount",
            id="at-grace",
        ),
        pytest.param(
            9,
            timedelta(seconds=10),
            False,
            PodState.WAITING,
            "NotReady",
            id="within-grace",
        ),
        pytest.param(
            15,
            timedelta(seconds=60),
            False,
            PodState.WAITING,
            "NotReady",
            id="longer-grace",
        ),
        pytest.param(
            15,
            timedelta(seconds=10),
            True,
            PodState.STABLE,
            "Stable",
            id="ready-pod-mounted",
        ),
    ],
)
def test_a_mount_failure_fails_a_pod_that_stays_not_ready_past_the_grace(
    failing_for: int, grace: timedelta, ready: bool, state: PodState, reason: str
) -> None:
    containers = [container_status(ready=ready)]
    since = NOW - timedelta(seconds=failing_for)
    result = verdict(
        pod(ready=ready, containers=containers),
        mount_failure_since=since,
        mount_grace=grace,
    )
    assert_verdict(result, state, reason)
    if state is PodState.FAILED:
        assert result.message == f"pod web-1: volumes have failed to mount for {failing_for}s: FailedMount"


def test_the_default_mount_grace_is_ten_seconds() -> None:
    not_ready = pod(ready=False, containers=[container_status(ready=False)])
    just_before = verdict(not_ready, mount_failure_since=NOW - timedelta(seconds=9))
    at_grace = verdict(not_ready, mount_failure_since=NOW - timedelta(seconds=10))
    assert (just_before.reason, at_grace.reason) == ("NotReady", "FailedMount")


def test_a_terminating_pod_is_waiting_even_when_ready() -> None:
    result = verdict(pod(deleting=True))
    assert_verdict(result, PodState.WAITING, "Terminating")
    assert result.message == "pod web-1 is terminating"


@pytest.mark.parametrize(
    "conditions",
    [
        pytest.param([{"type": "Ready", "status": "False"}], id="ready-false"),
        pytest.param([{"type": "Ready", "status": "Unknown"}], id="ready-unknown"),
        pytest.param([], id="no-conditions"),
        pytest.param(None, id="null-conditions"),
    ],
)
def test_a_pod_without_a_true_ready_condition_is_not_ready(conditions: Any) -> None:
    obj = pod()
    obj["status"]["conditions"] = conditions
    result = verdict(obj)
    assert_verdict(result, PodState.WAITING, "NotReady")
    assert result.message == "pod web-1 is not Ready", "all containers are ready, so none is named"


@pytest.mark.parametrize(
    ("ready_since", "last_finished", "state", "reason", "message"),
    [
        pytest.param(
            ago(60),
            None,
            PodState.STABLE,
            "Stable",
            "pod web-1 has been Ready and stable for 60s",
            id="ready-long-enough",
        ),
        pytest.param(
            ago(30),
            None,
            PodState.STABLE,
            "Stable",
            "pod web-1 has been Ready and stable for 30s",
            id="exactly-the-window",
        ),
        pytest.param(
            ago(10),
            None,
            PodState.WAITING,
            "Stabilizing",
            "pod web-1 is Ready; 20s left until it has been stable for 30s",
            id="recently-ready",
        ),
        pytest.param(
            ago(60),
            ago(5),
            PodState.WAITING,
            "Stabilizing",
            "pod web-1 is Ready; 25s left until it has been stable for 30s",
            id="container-restarted-recently",
        ),
        pytest.param(
            ago(5),
            ago(60),
            PodState.WAITING,
            "Stabilizing",
            "pod web-1 is Ready; 25s left until it has been stable for 30s",
            id="latest-of-ready-and-restart-counts",
        ),
        pytest.param(
            None,
            None,
            PodState.WAITING,
            "Stabilizing",
            "pod web-1 is Ready; 30s left until it has been stable for 30s",
            id="no-timestamps-counts-from-now",
        ),
    ],
)
def test_a_ready_pod_is_stable_only_after_the_window_since_its_last_change(
    ready_since: str | None,
    last_finished: str | None,
    state: PodState,
    reason: str,
    message: str,
) -> None:
    containers = [
        container_status("sidecar"),
        container_status(last_finished=last_finished),
    ]
    result = verdict(pod(ready_since=ready_since, containers=containers))
    assert_verdict(result, state, reason)
    assert result.message == message


def test_a_sidecar_restart_restarts_the_stability_window_like_a_container_restart() -> None:
    init = [container_status("proxy", restarts=1, last_finished=ago(5))]
    result = verdict(pod(init_containers=init, sidecars=frozenset({"proxy"})))
    assert_verdict(result, PodState.WAITING, "Stabilizing")
    assert result.message == "pod web-1 is Ready; 25s left until it has been stable for 30s"


def test_an_unready_sidecar_is_named_among_the_containers_not_ready() -> None:
    init = [container_status("proxy", ready=False)]
    result = verdict(pod(ready=False, init_containers=init, sidecars=frozenset({"proxy"})))
    assert_verdict(result, PodState.WAITING, "NotReady")
    assert result.message == "pod web-1 is not Ready; containers not ready: proxy (sidecar)"


def test_a_completed_init_container_is_not_named_among_the_containers_not_ready() -> None:
    completed = {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": ago(20)}}
    init = [{**container_status("migrate", ready=False), "state": completed}]
    result = verdict(pod(ready=False, init_containers=init, containers=[container_status(ready=False)]))
    assert result.message == "pod web-1 is not Ready; containers not ready: app"


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(pod(ready_since=ago(60)), NOW - timedelta(seconds=30), id="ready"),
        pytest.param(
            pod(
                ready_since=ago(60),
                init_containers=[container_status("proxy", restarts=1, last_finished=ago(5))],
                sidecars=frozenset({"proxy"}),
            ),
            NOW + timedelta(seconds=25),
            id="sidecar-restarted-since",
        ),
        pytest.param(pod(ready=False), None, id="not-ready"),
        pytest.param(pod(ready_since=None), None, id="no-timestamps"),
    ],
)
def test_stable_at_counts_from_the_last_change_as_the_verdict_does(obj: dict[str, Any], expected: Any) -> None:
    assert stable_at(obj, STABLE_FOR) == expected


def test_remaining_seconds_round_up_so_a_pod_is_never_called_stable_early() -> None:
    since = NOW - timedelta(seconds=10, milliseconds=500)
    obj = pod(ready_since=since.isoformat())
    result = verdict(obj)
    assert result.message == "pod web-1 is Ready; 20s left until it has been stable for 30s"


def test_a_pod_with_nothing_but_a_name_is_not_ready() -> None:
    result = verdict({"metadata": {"name": "web-1"}, "status": None})
    assert_verdict(result, PodState.WAITING, "NotReady")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (
            "2026-01-02T03:04:05.250000Z",
            datetime(2026, 1, 2, 3, 4, 5, 250000, tzinfo=UTC),
        ),
        ("2026-01-02T05:04:05+02:00", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02t03:04:05z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ],
)
def test_parse_timestamp_reads_rfc3339_as_aware_utc(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0), f"{text} was not converted to UTC"


def test_parse_timestamp_rejects_text_that_is_not_a_timestamp() -> None:
    with pytest.raises(ValueError):
        parse_timestamp("yesterday")
