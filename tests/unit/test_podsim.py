"""The simulated kubelet's rules, without a cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from secretrotation_dev.devcluster import podsim

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SIM = podsim.PodSimulator(readiness_delay=timedelta(seconds=1), crash_interval=timedelta(seconds=2))


def _pod(**spec: Any) -> dict[str, Any]:
    spec.setdefault("containers", [{"name": "app", "image": "app:1"}])
    return {"metadata": {"name": "p", "namespace": "ns", "annotations": {}}, "spec": spec, "status": {}}


def _secrets(**existing: list[str]) -> podsim.SecretKeys:
    return lambda namespace, name: frozenset(existing[name]) if name in existing else None


def _waiting(observation: podsim.Observation) -> list[str]:
    return [s["state"]["waiting"]["reason"] for s in observation.status["containerStatuses"] if "waiting" in s["state"]]


def _ready(observation: podsim.Observation) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in observation.status["conditions"])


def test_a_pod_with_everything_it_needs_runs_then_turns_ready_after_the_delay() -> None:
    runtime = podsim.PodRuntime()
    first = SIM.observe(_pod(), runtime, _secrets(), [], T0)
    assert first.status["phase"] == "Running" and not _ready(first)
    assert first.wake_at == T0 + timedelta(seconds=1)

    later = SIM.observe(_pod(), runtime, _secrets(), [], T0 + timedelta(seconds=1))
    assert _ready(later)


@pytest.mark.parametrize(
    ("env", "existing", "problem"),
    [
        ([{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}], {}, 'secret "db" not found'),
        (
            [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}],
            {"db": ["user"]},
            "couldn't find key pw in Secret ns/db",
        ),
    ],
    ids=["missing-secret", "missing-key"],
)
def test_missing_env_secret_or_key_is_create_container_config_error(
    env: list[dict[str, Any]], existing: dict[str, list[str]], problem: str
) -> None:
    pod = _pod(containers=[{"name": "app", "image": "app:1", "env": env}])

    observation = SIM.observe(pod, podsim.PodRuntime(), _secrets(**existing), [], T0)

    assert _waiting(observation) == ["CreateContainerConfigError"]
    assert [e.message for e in observation.events] == [f"Error: {problem}"]


def test_a_started_container_ignores_its_secret_disappearing() -> None:
    env = [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}]
    pod = _pod(containers=[{"name": "app", "image": "app:1", "env": env}])
    runtime = podsim.PodRuntime()
    SIM.observe(pod, runtime, _secrets(db=["pw"]), [], T0)

    later = SIM.observe(pod, runtime, _secrets(), [], T0 + timedelta(seconds=5))

    assert _ready(later) and not _waiting(later)


def test_missing_volume_secret_keeps_containers_creating_and_reports_failed_mount_once() -> None:
    pod = _pod(volumes=[{"name": "creds", "secret": {"secretName": "db"}}])
    runtime = podsim.PodRuntime()

    first = SIM.observe(pod, runtime, _secrets(), [], T0)
    second = SIM.observe(pod, runtime, _secrets(), [], T0 + timedelta(seconds=1))

    assert _waiting(first) == ["ContainerCreating"] and first.status["phase"] == "Pending"
    assert [e.reason for e in first.events] == ["FailedMount"]
    assert second.events == (), "the same problem is reported once, not at every look"


def test_missing_volume_item_key_is_a_mount_failure() -> None:
    pod = _pod(volumes=[{"name": "creds", "secret": {"secretName": "db", "items": [{"key": "pw", "path": "p"}]}}])

    observation = SIM.observe(pod, podsim.PodRuntime(), _secrets(db=["user"]), [], T0)

    assert "couldn't find key pw in Secret ns/db" in observation.events[0].message


def test_missing_image_pull_secret_is_image_pull_back_off() -> None:
    observation = SIM.observe(_pod(imagePullSecrets=[{"name": "reg"}]), podsim.PodRuntime(), _secrets(), [], T0)
    assert _waiting(observation) == ["ImagePullBackOff"]


def test_optional_references_never_block() -> None:
    pod = _pod(
        containers=[
            {
                "name": "app",
                "image": "app:1",
                "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "x", "key": "k", "optional": True}}}],
                "envFrom": [{"secretRef": {"name": "x", "optional": True}}],
            }
        ],
        volumes=[{"name": "v", "secret": {"secretName": "x", "optional": True}}],
    )
    assert not _waiting(SIM.observe(pod, podsim.PodRuntime(), _secrets(), [], T0))


def test_crash_loop_fault_raises_the_restart_count_every_interval() -> None:
    pod = _pod(volumes=[{"name": "creds", "secret": {"secretName": "db-v2"}}])
    faults = podsim.parse_faults("- secret: db-v2\n  effect: CrashLoop\n")
    runtime = podsim.PodRuntime()

    counts = []
    for seconds in (0, 2, 4):
        observation = SIM.observe(pod, runtime, _secrets(**{"db-v2": []}), faults, T0 + timedelta(seconds=seconds))
        assert _waiting(observation) == ["CrashLoopBackOff"]
        counts.append(observation.status["containerStatuses"][0]["restartCount"])

    assert counts == [1, 2, 3]


def test_never_ready_fault_matches_by_service_account() -> None:
    faults = podsim.parse_faults("- serviceAccount: deployer-v2\n  effect: NeverReady\n")
    runtime = podsim.PodRuntime()
    pod = _pod(serviceAccountName="deployer-v2")

    observation = SIM.observe(pod, runtime, _secrets(), faults, T0 + timedelta(seconds=30))
    observation = SIM.observe(pod, runtime, _secrets(), faults, T0 + timedelta(seconds=60))

    assert observation.status["phase"] == "Running" and not _ready(observation)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{}", "must be a list"),
        ("- effect: Boom\n  secret: x", "effect must be one of"),
        ("- effect: CrashLoop", "needs a secret"),
    ],
)
def test_bad_fault_rules_are_refused_with_the_entry_named(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        podsim.parse_faults(text)


def test_a_job_pod_completes() -> None:
    runtime = podsim.PodRuntime()
    pod = _pod(restartPolicy="Never")
    SIM.observe(pod, runtime, _secrets(), [], T0)

    done = SIM.observe(pod, runtime, _secrets(), [], T0 + timedelta(seconds=1))

    assert done.status["phase"] == "Succeeded"


def test_runtime_is_rebuilt_from_a_running_pods_status() -> None:
    pod = _pod()
    pod["status"] = {
        "containerStatuses": [{"name": "app", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]
    }

    runtime = podsim.PodRuntime.from_status(pod, T0 + timedelta(hours=1))

    assert runtime.started == {"app": T0}


# --- native sidecars (Kubernetes 1.29+: init containers with restartPolicy Always) ---------------

PROXY_ENV = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "db", "key": "token"}}}]


def _sidecar(name: str = "proxy", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": f"{name}:1", "restartPolicy": "Always", **fields}


def _init(observation: podsim.Observation) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in observation.status.get("initContainerStatuses") or []}


def _condition(observation: podsim.Observation, kind: str) -> str:
    return next(c["status"] for c in observation.status["conditions"] if c["type"] == kind)


def test_a_sidecar_starts_in_order_keeps_running_and_its_readiness_is_part_of_the_pods() -> None:
    pod = _pod(initContainers=[{"name": "migrate", "image": "m:1"}, _sidecar(env=PROXY_ENV)])
    runtime = podsim.PodRuntime()

    first = SIM.observe(pod, runtime, _secrets(db=["token"]), [], T0)
    later = SIM.observe(pod, runtime, _secrets(db=["token"]), [], T0 + timedelta(seconds=1))

    migrate, proxy = _init(first)["migrate"], _init(first)["proxy"]
    assert migrate["state"]["terminated"]["reason"] == "Completed"
    assert (proxy["started"], proxy["ready"], list(proxy["state"])) == (True, False, ["running"])
    assert _condition(first, "Initialized") == "True" and not _ready(first)
    assert first.wake_at == T0 + timedelta(seconds=1), "the sidecar's readiness is waited for"
    assert _init(later)["proxy"]["ready"] is True and _ready(later)
    assert "terminated" in _init(later)["migrate"]["state"], "a regular init container stays completed"
    pod["status"] = later.status
    settled = SIM.observe(pod, runtime, _secrets(db=["token"]), [], T0 + timedelta(seconds=9))
    assert not podsim.status_differs(pod["status"], settled.status), "nothing moves once settled"


def test_the_pod_is_not_ready_while_a_sidecar_is_not() -> None:
    faults = podsim.parse_faults("- secret: db\n  container: proxy\n  effect: NeverReady\n")
    pod = _pod(initContainers=[_sidecar(env=PROXY_ENV)])

    runtime = podsim.PodRuntime()
    SIM.observe(pod, runtime, _secrets(db=["token"]), faults, T0)

    observation = SIM.observe(pod, runtime, _secrets(db=["token"]), faults, T0 + timedelta(seconds=5))

    assert observation.status["containerStatuses"][0]["ready"] is True, "the fault is on the sidecar alone"
    assert _init(observation)["proxy"]["ready"] is False and not _ready(observation)


@pytest.mark.parametrize(
    ("existing", "problem"),
    [({}, 'secret "db" not found'), ({"db": ["password"]}, "couldn't find key token in Secret ns/db")],
    ids=["missing-secret", "missing-key"],
)
def test_a_sidecar_that_cannot_build_its_env_waits_in_create_container_config_error_and_blocks_the_pod(
    existing: dict[str, list[str]], problem: str
) -> None:
    pod = _pod(initContainers=[_sidecar(env=PROXY_ENV), {"name": "migrate", "image": "m:1"}])
    runtime = podsim.PodRuntime()

    blocked = SIM.observe(pod, runtime, _secrets(**existing), [], T0)
    unblocked = SIM.observe(pod, runtime, _secrets(db=["token"]), [], T0 + timedelta(seconds=1))

    proxy = _init(blocked)["proxy"]["state"]["waiting"]
    assert (proxy["reason"], proxy["message"]) == ("CreateContainerConfigError", problem)
    assert _init(blocked)["migrate"]["state"]["waiting"]["reason"] == "PodInitializing", "the next one waits"
    assert _waiting(blocked) == ["PodInitializing"] and blocked.status["phase"] == "Pending"
    assert _condition(blocked, "Initialized") == "False"
    assert [e.message for e in blocked.events] == [f"Error: {problem}"]
    assert "running" in _init(unblocked)["proxy"]["state"] and unblocked.status["phase"] == "Running"


def test_a_crash_loop_fault_can_target_a_sidecar_alone() -> None:
    faults = podsim.parse_faults("- secret: db\n  container: proxy\n  effect: CrashLoop\n")
    pod = _pod(initContainers=[_sidecar(env=PROXY_ENV)])
    runtime = podsim.PodRuntime()

    looks = [SIM.observe(pod, runtime, _secrets(db=["token"]), faults, T0 + timedelta(seconds=s)) for s in (0, 2, 4)]

    proxies = [_init(look)["proxy"] for look in looks]
    assert [p["state"]["waiting"]["reason"] for p in proxies] == ["CrashLoopBackOff"] * 3
    assert [p["restartCount"] for p in proxies] == [1, 2, 3]
    assert proxies[-1]["lastState"]["terminated"]["finishedAt"] == "2026-01-01T00:00:04Z"
    assert looks[-1].status["containerStatuses"][0]["ready"] is True, "the app itself runs fine"
    assert not _ready(looks[-1]) and looks[-1].wake_at == T0 + timedelta(seconds=6)


def test_a_crash_loop_fault_without_a_container_crash_loops_the_sidecars_too() -> None:
    faults = podsim.parse_faults("- secret: db\n  effect: CrashLoop\n")
    pod = _pod(initContainers=[{"name": "migrate", "image": "m:1"}, _sidecar(env=PROXY_ENV)])

    observation = SIM.observe(pod, podsim.PodRuntime(), _secrets(db=["token"]), faults, T0)

    assert _init(observation)["proxy"]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert "terminated" in _init(observation)["migrate"]["state"], "a regular init container only runs once"
    assert _waiting(observation) == ["CrashLoopBackOff"]


def test_a_sidecar_with_a_startup_probe_holds_back_the_containers_after_it_until_the_probe_passes() -> None:
    pod = _pod(initContainers=[_sidecar(startupProbe={"exec": {"command": ["true"]}})])
    runtime = podsim.PodRuntime()

    starting = SIM.observe(pod, runtime, _secrets(), [], T0)
    started = SIM.observe(pod, runtime, _secrets(), [], T0 + timedelta(seconds=1))

    assert _init(starting)["proxy"]["started"] is False and _waiting(starting) == ["PodInitializing"]
    assert starting.wake_at == T0 + timedelta(seconds=1)
    assert _init(started)["proxy"]["started"] is True and started.status["phase"] == "Running"


def test_a_job_pods_sidecar_is_stopped_once_the_job_is_done() -> None:
    pod = _pod(restartPolicy="Never", initContainers=[_sidecar()])
    runtime = podsim.PodRuntime()
    SIM.observe(pod, runtime, _secrets(), [], T0)

    done = SIM.observe(pod, runtime, _secrets(), [], T0 + timedelta(seconds=1))

    assert done.status["phase"] == "Succeeded"
    assert _init(done)["proxy"]["state"]["terminated"]["finishedAt"] == "2026-01-01T00:00:01Z"


def test_a_started_sidecar_is_remembered_from_the_pods_status() -> None:
    pod = _pod(initContainers=[_sidecar(env=PROXY_ENV)])
    pod["status"] = {
        "initContainerStatuses": [{"name": "proxy", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}],
        "containerStatuses": [{"name": "app", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}],
    }
    runtime = podsim.PodRuntime.from_status(pod, T0 + timedelta(hours=1))

    observation = SIM.observe(pod, runtime, _secrets(), [], T0 + timedelta(hours=1))

    assert runtime.started == {"proxy": T0, "app": T0}
    assert _ready(observation), "a started sidecar keeps running when its Secret goes away"


def test_a_fault_container_must_be_a_name() -> None:
    with pytest.raises(ValueError, match=r"faults.yaml\[0\].container must name a container"):
        podsim.parse_faults("- secret: db\n  container: [proxy]\n  effect: CrashLoop\n")
