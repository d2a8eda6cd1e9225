"""Every named check of the rule chains (trigger, preflight, health, collect) decides on its own.

Each test is built so that exactly one check can decide it: deleting that check from
its chain makes the test fail. The chains' order is pinned too, because the first
finding is what status reports.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from secretrotation.core import names, record
from secretrotation.core import spec as model
from secretrotation.core.conditions import Reason
from secretrotation.core.pods import PodState, PodVerdict
from secretrotation.core.rollout import RolloutReason, RolloutStatus
from secretrotation.core.rules import collect, health, preflight, trigger
from secretrotation.core.rules.collect import Candidate
from secretrotation.core.world import Referrer, SecretState

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SPEC = model.parse_spec({"secretName": "db", "generate": [{"key": "password"}], "rotateEvery": "1h"})

# --- trigger ----------------------------------------------------------------------------------


def situation(*, request: str | None = None, generation: int = 1, **status: Any) -> trigger.Situation:
    return trigger.Situation(SPEC, record.read(status), request, generation, T0)


ROTATED = {"revision": 1, "currentSecret": "db-v1"}
FAILED = {**ROTATED, "consecutiveFailures": 1, "failedGeneration": 1}
REVERTED = {"reason": "TargetChangedExternally", "message": "Deployment api was changed by someone else"}


@pytest.mark.parametrize(
    ("check", "subject", "expected"),
    [
        pytest.param(trigger.requested, situation(request="r1", **FAILED), (True, "Requested"), id="requested"),
        pytest.param(
            trigger.retry_after_spec_change, situation(generation=2, **FAILED), (True, "Retry"), id="spec-changed"
        ),
        pytest.param(
            trigger.retry_on_schedule,
            situation(**FAILED, nextRotationTime="2026-03-01T11:00:00Z"),
            (True, "Retry"),
            id="retry-due",
        ),
        pytest.param(
            trigger.retry_on_schedule,
            situation(**FAILED, nextRotationTime="2026-03-01T13:00:00Z"),
            (False, None),
            id="held-after-failure",
        ),
        pytest.param(
            trigger.not_fought_over,
            situation(
                **{**FAILED, "consecutiveFailures": 2}, lastFailure=REVERTED, nextRotationTime="2026-03-01T11:00:00Z"
            ),
            (False, None),
            id="fought-over-by-a-self-healing-tool",
        ),
        pytest.param(trigger.first_rotation, situation(), (True, "Created"), id="created"),
        pytest.param(
            trigger.scheduled,
            situation(**ROTATED, nextRotationTime="2026-03-01T11:00:00Z"),
            (True, "Scheduled"),
            id="scheduled",
        ),
    ],
)
def test_each_trigger_check_decides_its_own_case(
    check: Any, subject: trigger.Situation, expected: tuple[bool, str | None]
) -> None:
    decision = check(subject)
    assert decision is not None, f"{check.__name__} passed a case it must decide"
    assert (decision.start, decision.trigger) == expected
    assert trigger.decide(subject) == decision, "the chain must reach the same decision"


def test_the_trigger_chain_asks_request_first_and_holds_a_failure_before_the_schedule() -> None:
    assert [c.__name__ for c in trigger.CHAIN] == [
        "requested",
        "retry_after_spec_change",
        "not_fought_over",
        "retry_on_schedule",
        "first_rotation",
        "scheduled",
    ]
    # A failed rotation whose regular schedule is due is held by the backoff, not rescheduled.
    held = situation(**FAILED, nextRotationTime="2026-03-01T13:00:00Z")
    assert trigger.decide(held) == trigger.HOLD


def test_one_revert_is_retried_on_schedule_but_a_second_in_a_row_is_not() -> None:
    due = "2026-03-01T11:00:00Z"
    once = situation(**FAILED, lastFailure=REVERTED, nextRotationTime=due)
    twice = situation(**{**FAILED, "consecutiveFailures": 2}, lastFailure=REVERTED, nextRotationTime=due)
    assert trigger.decide(once).start, "a single revert may have been a human's: try again on schedule"
    assert trigger.decide(twice) == trigger.HOLD
    assert trigger.decide(replace(twice, request="r1")).start, "a new request still retries"
    assert trigger.decide(replace(twice, generation=2)).start, "a spec change still retries"


def test_a_handled_request_starts_nothing() -> None:
    assert trigger.decide(situation(request="r1", lastHandledRequest="r1", **ROTATED)) == trigger.HOLD


# --- preflight --------------------------------------------------------------------------------


def workload(kind: str, **spec: Any) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": "app"}, "spec": {"template": {"spec": {}}, **spec}}


@pytest.mark.parametrize(
    ("check", "target", "reason"),
    [
        pytest.param(
            preflight.deployment_is_not_paused,
            preflight.TargetCheck(workload("Deployment", paused=True)),
            Reason.TARGET_PAUSED,
            id="paused-deployment",
        ),
        pytest.param(
            preflight.workload_rolls_by_itself,
            preflight.TargetCheck(workload("StatefulSet", updateStrategy={"type": "OnDelete"})),
            Reason.TARGET_NOT_ROLLING,
            id="on-delete-statefulset",
        ),
        pytest.param(
            preflight.workload_rolls_by_itself,
            preflight.TargetCheck(workload("DaemonSet", updateStrategy={"type": "OnDelete"})),
            Reason.TARGET_NOT_ROLLING,
            id="on-delete-daemonset",
        ),
        pytest.param(
            preflight.has_every_key,
            preflight.TargetCheck(workload("Deployment"), ("containers[app].env[P] needs key 'pw'",)),
            Reason.MISSING_KEY,
            id="missing-key",
        ),
    ],
)
def test_each_preflight_check_refuses_its_own_case(check: Any, target: preflight.TargetCheck, reason: str) -> None:
    finding = check(target)
    assert finding is not None and finding.reason == reason, finding
    assert "nothing was switched" in finding.message and "app" in finding.message
    assert preflight.judge_target(target) == finding


@pytest.mark.parametrize("strategy", [{}, {"updateStrategy": {"type": "RollingUpdate"}}], ids=["default", "explicit"])
@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet"])
def test_a_rolling_workload_of_every_kind_with_every_key_passes_preflight(kind: str, strategy: dict[str, Any]) -> None:
    assert preflight.judge_target(preflight.TargetCheck(workload(kind, **strategy))) is None


@pytest.mark.parametrize(
    ("secret_type", "labels", "said"),
    [
        (
            "kubernetes.io/service-account-token",
            {},
            "of type kubernetes.io/service-account-token, which is never copied",
        ),
        ("bootstrap.kubernetes.io/token", {}, "which is never copied"),
        ("kubernetes.io/dockercfg", {}, "which is never copied"),
        ("Opaque", names.version_labels("other", 3), "is a version staged by SecretRotation other"),
    ],
    ids=["token", "bootstrap-token", "type-a-version-may-not-have", "another-rotations-version"],
)
def test_a_from_secret_that_is_a_credential_or_a_version_is_never_copied(
    secret_type: str, labels: dict[str, str], said: str
) -> None:
    source = SecretState("upstream", labels, frozenset({"token"}), False, secret_type, "1")

    refused = preflight.from_secret_may_be_copied("upstream", source)

    assert refused and refused.reason == Reason.INVALID_SPEC and said in refused.message, refused
    assert refused.message.startswith("spec.from.secretName: Secret upstream")
    plain = SecretState("upstream", {}, frozenset({"token"}), False, "kubernetes.io/tls", "1")
    assert preflight.from_secret_may_be_copied("upstream", plain) is None


def test_the_staging_checks_each_refuse_their_case() -> None:
    ours = names.version_labels("app-db", 2)

    missing_from = preflight.from_secret_may_be_copied("upstream", None)
    empty_from = preflight.from_secret_may_be_copied(
        "upstream", SecretState("upstream", {}, frozenset(), False, "Opaque", "1")
    )
    foreign = preflight.staged_secret_is_ours(
        SecretState("db-v2", {}, frozenset({"pw"}), True, "Opaque", "1"), "app-db", 2, "Opaque", None
    )
    mutable = preflight.staged_secret_is_ours(
        SecretState("db-v2", ours, frozenset({"pw"}), False, "Opaque", "1"), "app-db", 2, "Opaque", None
    )
    other_keys = preflight.staged_secret_is_ours(
        SecretState("db-v2", ours, frozenset({"pw"}), True, "Opaque", "1"), "app-db", 2, "Opaque", frozenset({"x"})
    )
    consenting = {
        "kind": "RoleBinding",
        "metadata": {"name": "r", "annotations": {names.EXTEND_BINDING_ANNOTATION: "true"}},
    }
    unbound = preflight.bindings_may_be_carried([consenting], frozenset())
    silent = preflight.bindings_may_be_carried([{"kind": "RoleBinding", "metadata": {"name": "r"}}], {"r"})

    assert missing_from and "is missing" in missing_from.message
    assert empty_from and "holds no data" in empty_from.message
    assert foreign and "was not staged by this rotation" in foreign.message
    assert mutable and "intact immutable" in mutable.message
    assert other_keys and "keys differ" in other_keys.message
    assert unbound and unbound.reason == Reason.BINDING_NOT_PERMITTED and "RoleBinding/r" in unbound.message
    assert silent and silent.reason == Reason.BINDING_NOT_PERMITTED and "does not consent" in silent.message
    intact = SecretState("db-v2", ours, frozenset({"pw"}), True, "Opaque", "1")
    assert preflight.staged_secret_is_ours(intact, "app-db", 2, "Opaque", frozenset({"pw"})) is None
    assert preflight.bindings_may_be_carried([consenting], {"r"}) is None


def test_a_workload_claimed_by_another_rotation_is_waited_for() -> None:
    waiting = preflight.not_claimed([("Deployment", "web")], {("Deployment", "web"): "other"})
    assert waiting is not None and waiting.reason == Reason.WAITING_FOR_WORKLOAD and "other" in waiting.message
    assert preflight.not_claimed([("Deployment", "api")], {("Deployment", "web"): "other"}) is None


# --- health -----------------------------------------------------------------------------------

DONE = RolloutStatus(True, False, RolloutReason.ROLLOUT_COMPLETE, "rolled out")
STABLE = PodVerdict("web-1", PodState.STABLE, "Stable", "stable")


SIDECAR_CRASHING = "pod web-2: sidecar container proxy is waiting: CrashLoopBackOff"


def view(**overrides: Any) -> health.TargetView:
    return health.TargetView(
        label=overrides.get("label", "Deployment web"),
        status=overrides.get("status", DONE),
        replica_failure=overrides.get("replica_failure"),
        verdicts=overrides.get("verdicts", (STABLE,)),
    )


@pytest.mark.parametrize(
    ("check", "subject", "expected"),
    [
        pytest.param(
            health.rollout_not_given_up,
            view(status=RolloutStatus(False, True, RolloutReason.PROGRESS_DEADLINE_EXCEEDED, "exceeded")),
            "Deployment web: ProgressDeadlineExceeded: exceeded",
            id="progress-deadline",
        ),
        pytest.param(
            health.replicas_can_be_created,
            view(replica_failure="ReplicaSet web-1: FailedCreate"),
            "Deployment web: ReplicaSet web-1: FailedCreate",
            id="replica-failure",
        ),
        pytest.param(
            health.no_new_pod_failed,
            view(verdicts=(PodVerdict("web-2", PodState.FAILED, "CrashLoopBackOff", SIDECAR_CRASHING),)),
            f"Deployment web: {SIDECAR_CRASHING}",
            id="pod-failed",
        ),
        pytest.param(
            health.strategy_can_be_judged,
            view(status=RolloutStatus(False, False, RolloutReason.UNSUPPORTED_STRATEGY, "OnDelete", unsupported=True)),
            "Deployment web: OnDelete",
            id="unsupported-strategy",
        ),
    ],
)
def test_each_health_check_fails_verification_on_its_own_case(
    check: Any, subject: health.TargetView, expected: str
) -> None:
    finding = check(subject)
    assert finding is not None and finding.message == expected, finding
    judged = health.judge(subject)
    assert judged.failure == finding and not judged.done


def test_a_rolled_out_workload_with_stable_new_pods_is_verified_and_one_still_settling_waits() -> None:
    assert health.judge(view()).done
    settling = health.judge(view(verdicts=(PodVerdict("web-2", PodState.WAITING, "NotReady", "x"),)))
    assert (settling.done, settling.failure) == (False, None) and "pod web-2 NotReady" in settling.message
    rolling = health.judge(view(status=RolloutStatus(False, False, RolloutReason.UPDATING_REPLICAS, "1 of 2")))
    assert (rolling.done, rolling.failure) == (False, None)


def test_the_switch_must_still_hold_and_the_deadline_is_enforced() -> None:
    target = record.Target("Deployment", "web", (record.Change("/spec/a", "db-v1", "db-v2"),), switched=True)
    assert health.switch_holds(target, None, "verification") is not None
    reverted = health.switch_holds(target, {"spec": {"a": "db-v1"}}, "verification")
    assert reverted is not None and "changed by someone else" in reverted.message
    assert health.switch_holds(target, {"spec": {"a": "db-v2"}}, "verification") is None
    late = health.within_deadline(T0, T0, timedelta(minutes=10), "Deployment web: 0 of 1 updated")
    assert late is not None and late.message == "not verified within 600s: Deployment web: 0 of 1 updated"
    assert health.within_deadline(T0, T0 - timedelta(seconds=1), timedelta(minutes=10), "x") is None


# --- collect (the Secret chain itself is in test_collect.py) --------------------------------


def old_version(**facts: Any) -> Candidate:
    return Candidate(
        kind=facts.pop("kind", "ServiceAccount"),
        name=facts.pop("name", "deployer-v1"),
        labels=facts.pop("labels", names.version_labels("deployer", 1)),
        rotation="deployer",
        in_use="deployer-v2",
        base_name="deployer",
        **facts,
    )


@pytest.mark.parametrize(
    ("check", "subject", "reason"),
    [
        pytest.param(collect.is_not_the_adopted_base, old_version(name="deployer"), "AdoptedBase", id="adopted-base"),
        pytest.param(collect.is_beyond_the_retain_window, old_version(within_retain=True), "Retained", id="retained"),
        pytest.param(
            collect.has_no_mounted_token,
            old_version(mounted_tokens=(Referrer("Pod", "legacy"),)),
            "StillReferenced",
            id="mounted-controller-token",
        ),
        pytest.param(
            collect.token_unused_since_switch, old_version(token_used_since_switch=True), "TokenInUse", id="token-used"
        ),
    ],
)
def test_each_collect_check_keeps_its_own_case(check: Any, subject: Candidate, reason: str) -> None:
    finding = check(subject)
    assert finding is not None and finding.reason == reason, finding
    assert collect.judge(subject) == finding
    assert collect.judge(old_version()) is None, "the same version without that fact may go"
