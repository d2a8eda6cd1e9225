"""Behaviour of secretrotation.core.planner: the rotation state machine, stepped
through a small simulated namespace, without a cluster.

``World`` stands in for the namespace and ``Rotation`` for the shell: observe,
plan, perform the actions, then write the status the plan returned. Every step
is checked against the status conventions (``assert_conventions``) and against
leaking the canary constant planted in the spec.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from planning import planned_with_facts, planner_step
from secretrotation.core import markers, names, objects, planner, record, references, world
from secretrotation.core import spec as model
from secretrotation.core.credentials import SecretCredential, template_changes
from secretrotation.core.plan import (
    Action,
    CreateVersion,
    DeletePod,
    DeleteSecret,
    PatchWorkload,
    Plan,
)
from secretrotation.core.record import Change, Phase
from secretrotation.core.rules import trigger
from secretrotation.core.rules.trigger import Trigger
from secretrotation.core.world import Observed, Resource, SecretState
from statuscheck import assert_conventions

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
NAMESPACE = "shop"
ROTATION = "app-db"
BASE = "db"
REQUEST = names.REQUESTED_AT_ANNOTATION
# A constant in spec.generate: it may be a credential, so it must never reach status, events or logs.
CANARY = "canary-Zq8vT3-this-constant-must-never-leak"


def ts(moment: datetime) -> str:
    return objects.timestamp(moment)


def secret_spec(**overrides: Any) -> dict[str, Any]:
    """A SecretRotation spec in CRD form: a random password and a constant username (the canary)."""
    spec: dict[str, Any] = {
        "secretName": BASE,
        "generate": [{"key": "password", "length": 24}, {"key": "username", "value": CANARY}],
        "verify": {"timeout": "10m", "stableFor": "30s"},
    }
    spec.update(overrides)
    return spec


def consuming_pod_spec(secret: str = BASE, *, extra_env: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """A pod spec reading two keys of ``secret`` into env and mounting it whole."""
    return {
        "containers": [
            {
                "name": "app",
                "image": "shop:1.4",
                "env": [
                    {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}},
                    {"name": "DB_USER", "valueFrom": {"secretKeyRef": {"name": secret, "key": "username"}}},
                    *extra_env,
                ],
            }
        ],
        "volumes": [{"name": "creds", "secret": {"secretName": secret}}],
    }


def referenced(deployment: Mapping[str, Any]) -> frozenset[str]:
    return references.referenced_secrets(deployment["spec"]["template"]["spec"])


# --- a tiny simulated namespace ---------------------------------------------------------------


def _pointer_tokens(pointer: str) -> list[str]:
    return [raw.replace("~1", "/").replace("~0", "~") for raw in pointer.lstrip("/").split("/")]


def set_at(obj: Any, pointer: str, value: str) -> None:
    """JSON-patch ``replace``: the path must exist."""
    *parents, last = _pointer_tokens(pointer)
    for token in parents:
        obj = obj[int(token)] if isinstance(obj, list) else obj[token]
    if isinstance(obj, list):
        obj[int(last)] = value
    else:
        assert last in obj, f"replace of a missing path {pointer}"
        obj[last] = value


def ready_pod_status(since: datetime) -> dict[str, Any]:
    return {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": ts(since)}],
        "containerStatuses": [{"name": "app", "ready": True, "restartCount": 0, "state": {"running": {}}}],
    }


CRASHING_POD_STATUS: dict[str, Any] = {
    "phase": "Running",
    "conditions": [{"type": "Ready", "status": "False"}],
    "containerStatuses": [
        {"name": "app", "ready": False, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
    ],
}


@dataclass
class World:
    """One namespace: Deployments, their pods, lone pods and Secrets (as the operator sees them)."""

    now: datetime = T0
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[str, SecretState] = field(default_factory=dict)
    stateful_sets: dict[str, dict[str, Any]] = field(default_factory=dict)
    replica_sets: list[dict[str, Any]] = field(default_factory=list)
    mount_failures: dict[str, datetime] = field(default_factory=dict)
    last_resource_version: int = 100
    performed: list[Action] = field(default_factory=list)

    def _resource_version(self) -> str:
        self.last_resource_version += 1
        return str(self.last_resource_version)

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def add_secret(
        self,
        name: str,
        *,
        labels: Mapping[str, str] | None = None,
        keys: Sequence[str] = ("password", "username"),
        immutable: bool = False,
        secret_type: str = "Opaque",
    ) -> None:
        self.secrets[name] = SecretState(
            name, dict(labels or {}), frozenset(keys), immutable, secret_type, self._resource_version()
        )

    def add_deployment(self, name: str, pod_spec: dict[str, Any], *, paused: bool = False) -> None:
        """A Deployment of one replica, already rolled out with a Ready, stable pod."""
        labels = {"app": name}
        spec: dict[str, Any] = {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        }
        if paused:
            spec["paused"] = True
        metadata = {"name": name, "namespace": NAMESPACE, "uid": f"uid-{name}", "generation": 1}
        self.deployments[name] = {"metadata": metadata, "spec": spec, "status": {}}
        self.roll_out(name)

    def add_lone_pod(self, name: str, pod_spec: dict[str, Any]) -> None:
        """A Pod no workload owns (say, a debugging shell someone started by hand)."""
        metadata = {"name": name, "namespace": NAMESPACE, "uid": f"uid-{name}", "labels": {"run": name}}
        self.pods[name] = {"metadata": metadata, "spec": copy.deepcopy(pod_spec), "status": ready_pod_status(self.now)}

    def _replace_pods(self, deployment: dict[str, Any], status: dict[str, Any], *, keep_old: bool) -> None:
        name = deployment["metadata"]["name"]
        if not keep_old:
            for pod_name in [n for n, p in self.pods.items() if p["metadata"]["labels"].get("app") == name]:
                del self.pods[pod_name]
        template = deployment["spec"]["template"]
        pod_name = f"{name}-g{deployment['metadata']['generation']}"
        self.pods[pod_name] = {
            "metadata": {
                "name": pod_name,
                "namespace": NAMESPACE,
                "uid": f"uid-{pod_name}",
                "labels": dict(template["metadata"]["labels"]),
            },
            "spec": copy.deepcopy(template["spec"]),
            "status": status,
        }

    def roll_out(self, name: str, *, ready_for: timedelta = timedelta(minutes=5)) -> None:
        """The Deployment controller and kubelet finish: one pod of the current template, Ready for ``ready_for``."""
        deployment = self.deployments[name]
        self._replace_pods(deployment, ready_pod_status(self.now - ready_for), keep_old=False)
        deployment["status"] = {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": 1,
            "updatedReplicas": 1,
            "readyReplicas": 1,
            "availableReplicas": 1,
            "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}],
        }

    def start_crashing_pod(self, name: str) -> None:
        """The current template's first pod starts and crash-loops; the old pod keeps serving."""
        deployment = self.deployments[name]
        self._replace_pods(deployment, copy.deepcopy(CRASHING_POD_STATUS), keep_old=True)
        deployment["status"] = {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": 2,
            "updatedReplicas": 1,
            "readyReplicas": 1,
            "availableReplicas": 1,
        }

    def observe(
        self,
        resource: Resource,
        claims: Mapping[tuple[str, str], str] | None = None,
        needs: world.Needs | None = None,
    ) -> Observed:
        """What the shell gathers for a step: copies, so a plan cannot reach into the world.

        Like the shell, only the facts in ``needs``: the rest is left unfetched (None),
        so a phase that reads a fact it did not ask for fails the test.
        """
        needs = needs or world.Needs()
        objects = world.NamespaceObjects(
            pods=copy.deepcopy(list(self.pods.values())),
            deployments=copy.deepcopy(list(self.deployments.values())),
            stateful_sets=copy.deepcopy(list(self.stateful_sets.values())),
            replica_sets=copy.deepcopy(self.replica_sets),
            cron_jobs=() if world.Fact.CRON_JOBS in needs.facts else None,
        )
        return Observed(
            now=self.now,
            objects=objects,
            secrets={name: self.secrets.get(name) for name in needs.secrets},
            service_accounts={},
            claims=dict(claims or {}),
            mount_failures=dict(self.mount_failures) if world.Fact.MOUNT_FAILURES in needs.facts else None,
            bindings=() if world.Fact.BINDINGS in needs.facts else None,
            nonce=f"nonce-{self._resource_version()}",
            fresh=world.Fact.FRESH in needs.facts,
        )

    def perform(self, rotation: str, action: Action) -> None:
        """The API calls, with the same preconditions the real shell sends."""
        self.performed.append(action)
        if isinstance(action, CreateVersion):
            if action.name not in self.secrets:  # a 409 on a repeated create is ignored
                self.secrets[action.name] = SecretState(
                    name=action.name,
                    labels=names.version_labels(rotation, action.revision),
                    keys=frozenset(rule.key for rule in action.spec.generate),
                    immutable=True,
                    type=str(action.spec.secret_type),
                    resource_version=self._resource_version(),
                    annotations={names.NONCE_ANNOTATION: action.nonce} if action.nonce else {},
                )
        elif isinstance(action, PatchWorkload):
            assert action.kind == "Deployment", action
            deployment = self.deployments[action.name]
            if action.by_apply:  # what the shell sends: the new names, addressed by key, and nothing of the image
                sent = json.dumps(action.apply_configuration())
                assert all(json.dumps(c.new) in sent for c in action.changes) and '"image"' not in sent, sent
            for change in action.changes:
                actual = objects.value_at(deployment, change.path)
                assert actual == change.old, f"JSON patch test failed at {change.path}: {actual!r} != {change.old!r}"
                set_at(deployment, change.path, change.new)
            deployment["metadata"]["generation"] += 1
        elif isinstance(action, DeletePod):
            assert self.pods[action.name]["metadata"]["uid"] == action.uid, "uid precondition failed"
            del self.pods[action.name]
        else:
            existing = self.secrets.get(action.name)
            if existing is not None:  # a 404 is ignored
                assert existing.resource_version == action.resource_version, "resourceVersion precondition failed"
                del self.secrets[action.name]


class Rotation:
    """One SecretRotation stepped as the shell steps it: observe, plan, act, then write status."""

    def __init__(self, world: World, spec: dict[str, Any] | None = None, *, name: str = ROTATION) -> None:
        self.world = world
        self.name = name
        self.spec = spec if spec is not None else secret_spec()
        self.generation = 1
        self.annotations: dict[str, str] = {}
        self.status: dict[str, Any] = {}
        self.plans: list[Plan] = []

    def resource(self) -> Resource:
        return Resource(
            self.name,
            NAMESPACE,
            self.generation,
            dict(self.annotations),
            copy.deepcopy(self.spec),
            copy.deepcopy(self.status),
        )

    def edit_spec(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.generation += 1

    def request(self, at: datetime) -> None:
        self.annotations[REQUEST] = ts(at)

    def step(self, *, claims: Mapping[tuple[str, str], str] | None = None, write_status: bool = True) -> Plan:
        resource = self.resource()
        untouched = copy.deepcopy(resource)
        plan = planner_step(resource, lambda needs: self.world.observe(resource, claims, needs))
        assert resource == untouched, "plan mutated the resource it was given"
        assert_conventions(plan, resource, canary=CANARY)
        for action in plan.actions:
            self.world.perform(self.name, action)
        if write_status:  # False: the operator died after acting, before writing status
            self.status = plan.status
        self.plans.append(plan)
        return plan

    def is_quiet(self) -> bool:
        return planner.is_quiet(self.resource(), self.world.now)

    @property
    def phase(self) -> str:
        return str(self.status.get("phase") or Phase.IDLE)


def condition(status: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), None)


def reason_of(status: Mapping[str, Any], kind: str) -> tuple[str, str] | None:
    found = condition(status, kind)
    return (found["status"], found["reason"]) if found else None


def actions_of(plans: Sequence[Plan], kind: type) -> list[Any]:
    return [a for p in plans for a in p.actions if isinstance(a, kind)]


def run_rotation(rotation: Rotation, *, max_steps: int = 12) -> list[str]:
    """Step one triggered rotation back to Idle, the world rolling out every patch at once; the phases seen."""
    phases: list[str] = []
    while len(phases) < max_steps:
        plan = rotation.step()
        phases.append(plan.status["phase"])
        for action in plan.actions:
            if isinstance(action, PatchWorkload):
                rotation.world.roll_out(action.name)
        if phases[-1] == Phase.IDLE:
            assert len(phases) > 1, "nothing started a rotation"
            return phases
    raise AssertionError(f"the rotation did not finish within {max_steps} steps: {phases}")


def switch_to_new_version(rotation: Rotation) -> list[Plan]:
    """From a triggered Idle to Verifying: stage, create the version, resolve targets, patch them."""
    plans = [rotation.step() for _ in range(4)]
    phases = [p.status["phase"] for p in plans]
    assert phases == [Phase.STAGING, Phase.STAGING, Phase.ROLLING_OUT, Phase.VERIFYING], phases
    return plans


def shop() -> World:
    """The base Secret ``db`` and a Deployment ``web`` consuming it."""
    world = World()
    world.add_secret(BASE)
    world.add_deployment("web", consuming_pod_spec())
    return world


def rotated_once(spec: dict[str, Any] | None = None) -> Rotation:
    rotation = Rotation(shop(), spec)
    run_rotation(rotation)
    assert rotation.status["currentSecret"] == "db-v1", rotation.status
    return rotation


# --- decide_trigger ---------------------------------------------------------------------------


def resource(
    *,
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    generation: int = 1,
    annotations: dict[str, str] | None = None,
) -> Resource:
    # Copies: the parameter tables share these dicts between cases.
    return Resource(
        ROTATION,
        NAMESPACE,
        generation,
        dict(annotations or {}),
        copy.deepcopy(spec if spec is not None else secret_spec()),
        copy.deepcopy(status or {}),
    )


HOURLY = secret_spec(rotateEvery="1h")
ROTATED = {"phase": "Idle", "revision": 1, "currentSecret": "db-v1"}
FAILED = {**ROTATED, "consecutiveFailures": 1, "failedGeneration": 2, "lastFailure": {"reason": "MissingKey"}}
EARLIER, LATER = ts(T0 - timedelta(seconds=1)), ts(T0 + timedelta(seconds=1))


@pytest.mark.parametrize(
    ("spec", "annotations", "status", "generation", "expected"),
    [
        pytest.param(secret_spec(), {}, {}, 1, (Trigger.CREATED, None), id="creation"),
        pytest.param(
            secret_spec(), {REQUEST: "r1"}, {}, 1, (Trigger.REQUESTED, "r1"), id="request-before-the-first-rotation"
        ),
        pytest.param(secret_spec(), {}, ROTATED, 1, None, id="rotated-nothing-asks"),
        pytest.param(secret_spec(), {REQUEST: "r2"}, ROTATED, 1, (Trigger.REQUESTED, "r2"), id="new-request"),
        pytest.param(
            secret_spec(), {REQUEST: "r2"}, {**ROTATED, "lastHandledRequest": "r2"}, 1, None, id="request-handled"
        ),
        pytest.param(
            secret_spec(),
            {REQUEST: "r3"},
            {**ROTATED, "lastHandledRequest": "r2"},
            1,
            (Trigger.REQUESTED, "r3"),
            id="request-changed-since-handled",
        ),
        pytest.param(secret_spec(), {REQUEST: ""}, ROTATED, 1, None, id="empty-request"),
        pytest.param(
            HOURLY, {}, {**ROTATED, "nextRotationTime": EARLIER}, 1, (Trigger.SCHEDULED, None), id="schedule-due"
        ),
        pytest.param(
            HOURLY, {}, {**ROTATED, "nextRotationTime": ts(T0)}, 1, (Trigger.SCHEDULED, None), id="schedule-due-now"
        ),
        pytest.param(HOURLY, {}, {**ROTATED, "nextRotationTime": LATER}, 1, None, id="schedule-not-due"),
        pytest.param(
            secret_spec(), {}, {**ROTATED, "nextRotationTime": EARLIER}, 1, None, id="schedule-removed-from-spec"
        ),
        pytest.param(HOURLY, {}, {**FAILED, "nextRotationTime": LATER}, 2, None, id="failed-nothing-new"),
        pytest.param(
            HOURLY,
            {REQUEST: "r4"},
            {**FAILED, "nextRotationTime": LATER},
            2,
            (Trigger.REQUESTED, "r4"),
            id="failed-then-new-request",
        ),
        pytest.param(
            HOURLY, {}, {**FAILED, "nextRotationTime": LATER}, 3, (Trigger.RETRY, None), id="failed-then-spec-changed"
        ),
        pytest.param(
            HOURLY, {}, {**FAILED, "nextRotationTime": EARLIER}, 2, (Trigger.RETRY, None), id="failed-backoff-over"
        ),
        pytest.param(
            secret_spec(),
            {},
            {"consecutiveFailures": 1, "failedGeneration": 1},
            1,
            None,
            id="first-rotation-failed-is-not-created-again",
        ),
        pytest.param(
            secret_spec(),
            {},
            {**FAILED, "nextRotationTime": EARLIER},
            2,
            None,
            id="failed-without-a-schedule-but-a-stale-next-time",
        ),
    ],
)
def test_decide_trigger_reads_every_trigger_from_the_resource(
    spec: dict[str, Any],
    annotations: dict[str, str],
    status: dict[str, Any],
    generation: int,
    expected: tuple[Trigger, str | None] | None,
) -> None:
    subject = resource(spec=spec, status=status, generation=generation, annotations=annotations)

    request = subject.annotations.get(names.REQUESTED_AT_ANNOTATION)
    situation = trigger.Situation(model.parse_spec(spec), record.read(status), request, generation, T0)
    decision = trigger.decide(situation)

    assert ((decision.trigger, decision.request) if decision.start else None) == expected, (
        f"status {status}, annotations {annotations}, generation {generation}"
    )


@pytest.mark.parametrize(
    ("failures", "periods"),
    [(0, 1), (1, 1), (2, 2), (3, 4), (4, 8), (5, 8), (30, 8)],
)
def test_the_retry_after_failures_doubles_the_period_up_to_eight(failures: int, periods: int) -> None:
    spec = model.parse_spec(HOURLY)

    retry = trigger.next_attempt_after_failure(spec, T0, failures)

    assert retry == T0 + timedelta(hours=periods), f"{failures} failures: {retry}"


def test_without_a_schedule_a_failure_schedules_no_retry() -> None:
    assert trigger.next_attempt_after_failure(model.parse_spec(secret_spec()), T0, 3) is None


def test_an_operator_restart_alone_never_starts_a_rotation() -> None:
    before = rotated_once()
    for minutes in (1, 60, 60 * 24 * 30):
        restarted = Rotation(before.world, before.spec)
        restarted.status = copy.deepcopy(before.status)
        before.world.advance(minutes=minutes)

        plan = restarted.step()

        assert restarted.is_quiet(), "an idle rotation with nothing due must need no API call"
        assert (plan.actions, plan.events) == ((), ()), plan
        assert plan.status == before.status, "an idle step must not even rewrite status"


def test_repeated_failures_back_off_the_schedule_one_two_four_eight_eight_periods() -> None:
    world = World()
    world.add_deployment("web", consuming_pod_spec(), paused=True)  # every attempt stalls on TargetPaused
    rotation = Rotation(world, secret_spec(rotateEvery="1h"))
    gaps: list[timedelta] = []
    for attempt in range(1, 6):
        phases = run_rotation(rotation)
        assert phases == ["Staging", "Staging", "Idle"], f"attempt {attempt}: {phases}"
        assert rotation.status["consecutiveFailures"] == attempt, rotation.status
        next_time = objects.parse_time(rotation.status["nextRotationTime"])
        assert next_time is not None
        gaps.append(next_time - world.now)
        world.now = next_time - timedelta(seconds=1)
        assert rotation.is_quiet(), f"attempt {attempt + 1} must wait for the backed-off time"
        world.now = next_time

    assert gaps == [timedelta(hours=h) for h in (1, 2, 4, 8, 8)]


def test_a_paused_spec_never_starts_a_rotation() -> None:
    world = shop()
    rotation = Rotation(world, secret_spec(paused=True, rotateEvery="1h"))
    rotation.request(T0)

    first = rotation.step()
    world.advance(hours=3)
    later = rotation.step()

    for plan in (first, later):
        assert plan.status["phase"] == Phase.IDLE and "rotation" not in plan.status, plan.status
        assert plan.actions == (), plan.actions
        assert reason_of(plan.status, "Ready") == ("False", "Paused"), plan.status
    assert rotation.is_quiet()
    assert "lastHandledRequest" not in rotation.status, "a request seen while paused is still pending"


def test_a_request_made_while_paused_starts_once_resumed() -> None:
    rotation = rotated_once(secret_spec(paused=False))
    rotation.edit_spec(secret_spec(paused=True))
    rotation.request(T0)
    paused = rotation.step()
    rotation.edit_spec(secret_spec(paused=False))

    resumed = rotation.step()

    ready = next(c for c in paused.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Paused"), "the version in use still works: Ready, Paused"
    assert f"requested at {ts(T0)}" in ready["message"], "the request the pause holds is shown"
    assert resumed.status["phase"] == Phase.STAGING, resumed.status
    assert resumed.status["rotation"]["reason"] == Trigger.REQUESTED, resumed.status


# --- is_quiet ---------------------------------------------------------------------------------

IN_FLIGHT = {"phase": "Verifying", "revision": 1, "rotation": {"revision": 2, "secret": "db-v2", "targets": []}}


@pytest.mark.parametrize(
    ("spec", "status", "annotations", "quiet"),
    [
        pytest.param(secret_spec(), ROTATED, {}, True, id="idle-nothing-due"),
        pytest.param(HOURLY, {**ROTATED, "nextRotationTime": LATER}, {}, True, id="idle-schedule-not-due"),
        pytest.param(HOURLY, {**ROTATED, "nextRotationTime": EARLIER}, {}, False, id="schedule-due"),
        pytest.param(secret_spec(), {}, {}, False, id="never-rotated"),
        pytest.param(secret_spec(), ROTATED, {REQUEST: "r1"}, False, id="request-pending"),
        pytest.param(secret_spec(), IN_FLIGHT, {}, False, id="in-flight"),
        pytest.param(
            secret_spec(),
            {**ROTATED, "pendingDeletion": [{"name": "db-v0", "reason": "StillReferenced", "message": "m"}]},
            {},
            False,
            id="pending-deletion",
        ),
        pytest.param({"secretName": BASE}, ROTATED, {}, True, id="invalid-spec"),
        pytest.param({"secretName": BASE}, IN_FLIGHT, {}, False, id="invalid-spec-in-flight"),
        pytest.param(secret_spec(paused=True), {}, {REQUEST: "r1"}, True, id="paused-with-a-request"),
        pytest.param(secret_spec(), {**FAILED, "failedGeneration": 1}, {}, True, id="failed-no-retry-due"),
    ],
)
def test_is_quiet_only_when_a_step_needs_nothing_from_the_cluster(
    spec: dict[str, Any], status: dict[str, Any], annotations: dict[str, str], quiet: bool
) -> None:
    subject = resource(spec=spec, status=status, annotations=annotations)

    assert planner.is_quiet(subject, T0) is quiet, f"status {status}, annotations {annotations}"
    if quiet:
        # The shell then plans against an empty observation: the step must not act on it.
        plan = planner.plan(subject, Observed(now=T0, objects=world.NamespaceObjects(), secrets={}))
        assert plan.actions == () and "rotation" not in plan.status, plan


# --- template_changes and value_at ------------------------------------------------------------

PREFIX = "/spec/template/spec"


def env_ref(secret: str, key: str = "password", name: str = "P") -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


@pytest.mark.parametrize(
    ("pod_spec", "paths"),
    [
        pytest.param(
            {"containers": [{"name": "app", "env": [{"name": "HOST", "value": "db"}, env_ref("db")]}]},
            ["/containers/0/env/1/valueFrom/secretKeyRef/name"],
            id="env-secretKeyRef",
        ),
        pytest.param(
            {"initContainers": [{"name": "migrate", "env": [env_ref("db")]}], "containers": [{"name": "app"}]},
            ["/initContainers/0/env/0/valueFrom/secretKeyRef/name"],
            id="init-env-secretKeyRef",
        ),
        pytest.param(
            {
                "containers": [
                    {"name": "app", "envFrom": [{"configMapRef": {"name": "db"}}, {"secretRef": {"name": "db"}}]}
                ]
            },
            ["/containers/0/envFrom/1/secretRef/name"],
            id="envFrom",
        ),
        pytest.param(
            {"initContainers": [{"name": "migrate", "envFrom": [{"secretRef": {"name": "db"}}]}]},
            ["/initContainers/0/envFrom/0/secretRef/name"],
            id="init-envFrom",
        ),
        pytest.param(
            {
                "volumes": [
                    {"name": "cfg", "configMap": {"name": "db"}},
                    {"name": "creds", "secret": {"secretName": "db"}},
                ]
            },
            ["/volumes/1/secret/secretName"],
            id="volume",
        ),
        pytest.param(
            {
                "volumes": [
                    {
                        "name": "bundle",
                        "projected": {"sources": [{"configMap": {"name": "db"}}, {"secret": {"name": "db"}}]},
                    }
                ]
            },
            ["/volumes/0/projected/sources/1/secret/name"],
            id="projected",
        ),
        pytest.param(
            {"imagePullSecrets": [{"name": "registry"}, {"name": "db"}]}, ["/imagePullSecrets/1/name"], id="pull"
        ),
        pytest.param(
            {
                "containers": [
                    {
                        "name": "db",
                        "image": "db",
                        "env": [
                            {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "db", "key": "password"}}},
                            env_ref("db-v10"),
                            env_ref("dbx"),
                        ],
                    }
                ],
                "volumes": [{"name": "db", "emptyDir": {}}],
                "serviceAccountName": "db",
            },
            [],
            id="decoys-named-db",
        ),
    ],
)
@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet"])
def test_template_changes_are_the_exact_pointers_of_each_secret_reference(
    kind: str, pod_spec: dict[str, Any], paths: list[str]
) -> None:
    workload = {"kind": kind, "metadata": {"name": "web"}, "spec": {"template": {"spec": pod_spec}}}

    changes = template_changes(SecretCredential(), workload, [BASE], "db-v2")

    assert changes == tuple(Change(PREFIX + path, "db", "db-v2") for path in paths)


def everything_pod_spec() -> dict[str, Any]:
    return {
        "initContainers": [{"name": "migrate", "env": [env_ref("db")], "envFrom": [{"secretRef": {"name": "db"}}]}],
        "containers": [
            {
                "name": "app",
                "image": "shop:1",
                "env": [env_ref("db"), env_ref("db-v1", "username", "U"), env_ref("other")],
                "envFrom": [{"secretRef": {"name": "db-v1"}}],
            }
        ],
        "volumes": [
            {"name": "creds", "secret": {"secretName": "db-v1", "items": [{"key": "password", "path": "pw"}]}},
            {"name": "bundle", "projected": {"sources": [{"secret": {"name": "db"}}, {"configMap": {"name": "db"}}]}},
        ],
        "imagePullSecrets": [{"name": "db"}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
    }


def test_template_changes_rewrite_every_old_name_and_nothing_else() -> None:
    workload = {
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": everything_pod_spec()}},
    }

    changes = template_changes(SecretCredential(), workload, ["db-v1", "db"], "db-v2")
    switched = copy.deepcopy(workload)
    for change in changes:
        assert objects.value_at(workload, change.path) == change.old, f"{change} does not hold its old value"
        set_at(switched, change.path, change.new)
    reverted = copy.deepcopy(switched)
    for change in changes:
        set_at(reverted, change.path, change.old)

    assert len(changes) == 8, changes
    assert referenced(switched) == {"db-v2", "other"}, "some reference to an old name was not rewritten"
    assert reverted == workload, "a change outside the listed pointers, or a pointer to the wrong place"
    assert template_changes(SecretCredential(), switched, ["db-v1", "db"], "db-v2") == (), (
        "switching twice must change nothing"
    )


def test_change_pointers_escape_slash_and_tilde_in_keys() -> None:
    # Pod spec paths are field names and indices, so the escaping is pinned where pointers are built.
    before = {"a/b": {"c~d": ["x", "db"]}, "~1": "db"}
    after = {"a/b": {"c~d": ["x", "db-v2"]}, "~1": "db-v2"}

    changes = [Change(*c) for c in objects.changed_strings(before, after, "/spec")]

    assert changes == [Change("/spec/a~1b/c~0d/1", "db", "db-v2"), Change("/spec/~01", "db", "db-v2")]
    for change in changes:
        assert objects.value_at({"spec": after}, change.path) == change.new, change


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        ("/metadata/annotations/rotation.sre.dev~1requested-at", "r1"),
        ("/metadata/annotations/a~0b", "tilde"),
        ("/metadata/annotations/~01", "literal ~1"),
        ("/spec/items/1/name", "second"),
        ("/spec/items/2/name", None),
        ("/spec/items/-1/name", None),
        ("/spec/items/first", None),
        ("/metadata/name/deeper", None),
        ("/status/missing", None),
    ],
)
def test_value_at_reads_a_json_pointer_or_none(pointer: str, expected: str | None) -> None:
    obj = {
        "metadata": {
            "name": "web",
            "annotations": {"rotation.sre.dev/requested-at": "r1", "a~b": "tilde", "~1": "literal ~1"},
        },
        "spec": {"items": [{"name": "first"}, {"name": "second"}]},
    }

    assert objects.value_at(obj, pointer) == expected


# --- the happy path ---------------------------------------------------------------------------


def test_a_rotation_stages_switches_verifies_promotes_and_collects_step_by_step() -> None:
    world = shop()
    rotation = Rotation(world)
    base_rv = world.secrets[BASE].resource_version

    started = rotation.step()
    assert (rotation.phase, started.actions, started.requeue) == ("Staging", (), True), started
    in_flight = rotation.status["rotation"]
    assert (in_flight["secret"], in_flight["previousSecret"], in_flight["reason"]) == ("db-v1", BASE, "Created")
    assert in_flight["spec"]["generate"][1] == {"key": "username", "constant": True}, "a constant is marked, not kept"
    assert reason_of(rotation.status, "Ready") == ("False", "Staging")
    assert reason_of(rotation.status, "Reconciling") == ("True", "Staging")

    staged = rotation.step()
    assert rotation.phase == "Staging"
    assert [(a.name, a.revision) for a in staged.actions if isinstance(a, CreateVersion)] == [("db-v1", 1)]
    version = world.secrets["db-v1"]
    assert version.labels == {names.ROTATION_LABEL: ROTATION, names.REVISION_LABEL: "1"}

    resolved = rotation.step()
    assert (rotation.phase, resolved.actions) == ("RollingOut", ()), resolved
    [target] = rotation.status["rotation"]["targets"]
    assert (target["kind"], target["name"], target["switched"]) == ("Deployment", "web", False), target
    assert [c["path"] for c in target["changes"]] == [
        f"{PREFIX}/containers/0/env/0/valueFrom/secretKeyRef/name",
        f"{PREFIX}/containers/0/env/1/valueFrom/secretKeyRef/name",
        f"{PREFIX}/volumes/0/secret/secretName",
    ]

    switched = rotation.step()
    assert rotation.phase == "Verifying"
    assert [(a.kind, a.name) for a in actions_of([switched], PatchWorkload)] == [("Deployment", "web")]
    [patch] = actions_of([switched], PatchWorkload)
    mark = markers.decode(patch.mark)
    assert mark is not None and (mark.rotation, mark.version, mark.previous) == (ROTATION, "db-v1", BASE)
    assert mark.changes == patch.changes, "the mark holds exactly what a revert needs"
    assert referenced(world.deployments["web"]) == {"db-v1"}
    assert rotation.status["rotation"]["targets"][0]["switched"] is True

    waiting = rotation.step()
    assert (rotation.phase, waiting.actions) == ("Verifying", ()), "the new spec is not observed yet"
    assert reason_of(rotation.status, "Reconciling") == ("True", "Verifying")
    assert waiting.wake_at == T0 + timedelta(minutes=10), "wake at the verification deadline at the latest"
    world.advance(seconds=30)
    reported = rotation.step()  # progress is written 30s after the switch at the earliest
    assert rotation.status["targets"][0]["state"] == "Verifying", rotation.status.get("targets")
    assert reported.wake_at == T0 + timedelta(minutes=10)

    world.roll_out("web", ready_for=timedelta(seconds=10))
    stabilizing = rotation.step()
    assert rotation.phase == "Verifying", "a pod Ready for 10s is not yet stable for 30s"
    assert stabilizing.wake_at == world.now + timedelta(seconds=20), stabilizing.wake_at

    world.advance(seconds=20)
    promoted = rotation.step()
    assert rotation.phase == "CollectingGarbage" and promoted.requeue, promoted
    status = rotation.status
    assert (status["revision"], status["currentSecret"], status["lastRotationTime"]) == (1, "db-v1", ts(world.now))
    assert status["targets"] == [
        {
            "kind": "Deployment",
            "name": "web",
            "secret": "db-v1",
            "state": "Verified",
            "message": "Deployment web: rolled out, new pods Ready and stable",
        }
    ]
    assert reason_of(status, "Reconciling") == ("True", "CollectingGarbage")

    collected = rotation.step()
    assert rotation.phase == "Idle" and "rotation" not in rotation.status, rotation.status
    assert collected.actions == (), "the adopted base Secret is never collected"
    assert reason_of(rotation.status, "Ready") == ("True", "Rotated")
    assert [c["type"] for c in rotation.status["conditions"]] == ["Ready"], "no Reconciling, no Stalled"
    assert rotation.status["adoptedSecret"] == {"name": BASE, "referenced": False}
    assert world.secrets[BASE].resource_version == base_rv, "the base Secret is left in place"
    assert "AdoptedSecretUnreferenced" in [e.reason for e in collected.events]

    assert [p.status["phase"] for p in rotation.plans] == [
        "Staging",
        "Staging",
        "RollingOut",
        "Verifying",
        "Verifying",
        "Verifying",
        "Verifying",
        "CollectingGarbage",
        "Idle",
    ]
    assert rotation.is_quiet()


def test_a_version_is_staged_with_the_keys_of_the_generate_rules_immutable_and_opaque() -> None:
    rotation = Rotation(shop())

    plans = switch_to_new_version(rotation)

    [create] = actions_of(plans, CreateVersion)
    assert [rule.key for rule in create.spec.generate] == ["password", "username"]
    version = rotation.world.secrets["db-v1"]
    assert (version.keys, version.immutable, version.type) == (frozenset({"password", "username"}), True, "Opaque")


def test_every_step_is_safe_to_repeat_when_the_operator_dies_before_writing_status() -> None:
    world = shop()
    rotation = Rotation(world)
    for request in range(3):
        if request:
            rotation.request(world.now + timedelta(seconds=request))
        phases: list[str] = []
        while not phases or phases[-1] != Phase.IDLE:
            for write_status in (False, True):  # acted, then died; then the same step again
                plan = rotation.step(write_status=write_status)
                for action in plan.actions:
                    if isinstance(action, PatchWorkload):
                        world.roll_out(action.name)
            phases.append(plan.status["phase"])
            assert len(phases) < 12, phases

    assert (rotation.status["currentSecret"], rotation.status["retainedSecrets"]) == ("db-v3", ["db-v2"])
    assert referenced(world.deployments["web"]) == {"db-v3"}
    assert set(world.secrets) == {BASE, "db-v2", "db-v3"}, "db-v1 collected, the adopted base left alone"
    assert len(actions_of(rotation.plans, PatchWorkload)) == 3, "each rotation patches the workload once"


# --- failures that switched nothing -----------------------------------------------------------


def test_a_missing_key_stalls_before_any_workload_is_switched_and_drops_the_staged_version() -> None:
    world = World()
    world.add_secret(BASE, keys=("password", "username", "host"))
    host = {"name": "DB_HOST", "valueFrom": {"secretKeyRef": {"name": BASE, "key": "host"}}}
    world.add_deployment("web", consuming_pod_spec(extra_env=[host]))
    before = copy.deepcopy(world.deployments["web"])
    rotation = Rotation(world)

    phases = run_rotation(rotation)
    world.advance(hours=1)
    later = rotation.step()

    assert phases == ["Staging", "Staging", "Idle"], phases
    assert actions_of(rotation.plans, PatchWorkload) == [], "nothing may be switched"
    deletes = actions_of(rotation.plans, DeleteSecret)
    assert [d.name for d in deletes] == ["db-v1"], deletes
    assert "db-v1" not in world.secrets and world.deployments["web"] == before
    assert reason_of(rotation.status, "Stalled") == ("True", "MissingKey")
    assert reason_of(rotation.status, "Ready") == ("False", "RotationFailed")
    message = condition(rotation.status, "Stalled") or {}
    assert "containers[app].env[DB_HOST]" in message["message"] and "'host'" in message["message"], message
    assert rotation.status["consecutiveFailures"] == 1 and "currentSecret" not in rotation.status
    assert "rotation" not in later.status and later.actions == (), "no retry without a reason to retry"


def test_a_paused_deployment_stalls_the_rotation_and_nothing_is_switched() -> None:
    world = World()
    world.add_secret(BASE)
    world.add_deployment("web", consuming_pod_spec(), paused=True)
    before = copy.deepcopy(world.deployments["web"])
    rotation = Rotation(world)

    run_rotation(rotation)

    assert actions_of(rotation.plans, PatchWorkload) == []
    assert world.deployments["web"] == before
    assert [d.name for d in actions_of(rotation.plans, DeleteSecret)] == ["db-v1"]
    assert reason_of(rotation.status, "Stalled") == ("True", "TargetPaused")
    assert "Deployment web is paused" in (condition(rotation.status, "Stalled") or {})["message"]


@pytest.mark.parametrize(
    ("labels", "immutable", "keys", "secret_type"),
    [
        pytest.param({}, True, ("password", "username"), "Opaque", id="no-labels"),
        pytest.param(
            names.version_labels("someone-else", 1), True, ("password", "username"), "Opaque", id="another-rotation"
        ),
        pytest.param(names.version_labels(ROTATION, 7), True, ("password", "username"), "Opaque", id="other-revision"),
        pytest.param(names.version_labels(ROTATION, 1), False, ("password", "username"), "Opaque", id="mutable"),
        pytest.param(names.version_labels(ROTATION, 1), True, ("password",), "Opaque", id="keys-differ"),
        pytest.param(
            names.version_labels(ROTATION, 1), True, ("password", "username"), "kubernetes.io/basic-auth", id="type"
        ),
        # Our labels exactly, intact: pre-planted, or left by a deleted SecretRotation of the same name.
        # Labels can be copied; only the nonce this attempt wrote before creating proves it is ours.
        pytest.param(names.version_labels(ROTATION, 1), True, ("password", "username"), "Opaque", id="labels-copied"),
    ],
)
def test_a_staged_name_taken_by_a_secret_this_attempt_did_not_create_is_skipped_never_adopted_or_deleted(
    labels: dict[str, str], immutable: bool, keys: tuple[str, ...], secret_type: str
) -> None:
    world = shop()
    world.add_secret("db-v1", labels=labels, keys=keys, immutable=immutable, secret_type=secret_type)
    squatter = world.secrets["db-v1"]
    rotation = Rotation(world)

    run_rotation(rotation)

    assert rotation.status["currentSecret"] == "db-v2", rotation.status
    assert referenced(world.deployments["web"]) == {"db-v2"}, "switched to the name this rotation created"
    assert world.secrets["db-v1"] == squatter, "a Secret that is not ours was touched"
    assert [a.name for a in actions_of(rotation.plans, CreateVersion)] == ["db-v2"]
    assert "db-v1" not in [a.name for a in actions_of(rotation.plans, DeleteSecret)]
    assert "VersionNameTaken" in [e.reason for p in rotation.plans for e in p.events]


def test_a_rotation_finding_every_name_taken_stalls_with_staged_version_conflict() -> None:
    world = shop()
    for revision in range(1, 40):
        world.add_secret(f"db-v{revision}", labels=names.version_labels(ROTATION, revision), immutable=True)
    rotation = Rotation(world)

    run_rotation(rotation, max_steps=40)

    assert reason_of(rotation.status, "Stalled") == ("True", "StagedVersionConflict"), rotation.status
    assert actions_of(rotation.plans, CreateVersion) == actions_of(rotation.plans, PatchWorkload) == []


def test_a_workload_another_rotation_is_switching_makes_this_one_wait_and_switch_nothing() -> None:
    world = shop()
    rotation = Rotation(world)
    claims = {("Deployment", "web"): "app-cache"}

    plans = [rotation.step(claims=claims) for _ in range(4)]

    waiting = plans[-1]
    assert [p.status["phase"] for p in plans] == ["Staging"] * 4, "waiting stays in Staging"
    assert actions_of(plans, PatchWorkload) == [] and referenced(world.deployments["web"]) == {BASE}
    assert rotation.status["rotation"]["targets"] == [], "nothing is claimed while waiting"
    for kind in ("Ready", "Reconciling"):
        found = condition(waiting.status, kind) or {}
        assert found.get("reason") == "WaitingForWorkload", found
        assert "app-cache" in found["message"], found
    assert reason_of(waiting.status, "Ready") == ("False", "WaitingForWorkload")

    released = rotation.step()
    assert released.status["phase"] == Phase.ROLLING_OUT, "once released, the rotation goes on"


# --- failures after switching: rollback -------------------------------------------------------


def test_a_crash_looping_new_pod_rolls_back_and_keeps_the_version_in_use() -> None:
    rotation = rotated_once()
    world = rotation.world
    rotation.request(world.now)
    switch_to_new_version(rotation)
    assert referenced(world.deployments["web"]) == {"db-v2"}

    world.start_crashing_pod("web")
    failed = rotation.step()
    assert rotation.phase == "RollingBack" and failed.actions == (), failed
    failure = rotation.status["rotation"]["failure"]
    assert failure["reason"] == "VerificationFailed" and "CrashLoopBackOff" in failure["message"], failure
    assert [(e.reason, e.warning) for e in failed.events] == [("RotationFailed", True)]
    assert reason_of(rotation.status, "Reconciling") == ("True", "RollingBack")

    reverting = rotation.step()
    [reverse] = reverting.actions
    assert isinstance(reverse, PatchWorkload) and (reverse.kind, reverse.name) == ("Deployment", "web")
    assert {(c.old, c.new) for c in reverse.changes} == {("db-v2", "db-v1")}, reverse.changes
    assert referenced(world.deployments["web"]) == {"db-v1"}

    still_on_failed = rotation.step()
    assert rotation.phase == "RollingBack" and still_on_failed.actions == (), "the crashing pod is still there"

    world.roll_out("web")
    done = rotation.step()
    status = rotation.status
    assert status["phase"] == "Idle" and "rotation" not in status, status
    assert (status["currentSecret"], status["revision"], status["consecutiveFailures"]) == ("db-v1", 1, 1)
    assert reason_of(status, "Ready") == ("False", "RotationFailed")
    assert reason_of(status, "Stalled") == ("True", "VerificationFailed")
    assert condition(status, "Reconciling") is None
    assert [a.name for a in done.actions if isinstance(a, DeleteSecret)] == ["db-v2"], done.actions
    assert "RolledBack" in [e.reason for e in done.events]
    assert "RotationFailed" not in [e.reason for e in done.events], "the failure was announced once already"

    world.advance(days=1)
    assert rotation.is_quiet(), "a failed rotation is not retried without a new reason"


def test_a_rotation_not_verified_by_its_deadline_fails_and_rolls_back() -> None:
    rotation = rotated_once()
    world = rotation.world
    rotation.request(world.now)
    started_at = world.now
    switch_to_new_version(rotation)  # the Deployment controller never gets to it

    world.now = started_at + timedelta(minutes=10) - timedelta(seconds=1)
    assert rotation.step().status["phase"] == Phase.VERIFYING, "not before the deadline"
    world.now = started_at + timedelta(minutes=10)
    timed_out = rotation.step()

    assert timed_out.status["phase"] == Phase.ROLLING_BACK, timed_out.status
    assert timed_out.status["rotation"]["failure"]["message"].startswith("not verified within 600s"), timed_out.status
    phases = run_rotation(rotation)
    assert phases == ["RollingBack", "Idle"], phases
    assert reason_of(rotation.status, "Stalled") == ("True", "VerificationFailed")
    assert rotation.status["currentSecret"] == "db-v1" and referenced(world.deployments["web"]) == {"db-v1"}


def test_a_success_after_a_failure_clears_the_failure() -> None:
    rotation = rotated_once()
    world = rotation.world
    rotation.request(world.now)
    switch_to_new_version(rotation)
    world.start_crashing_pod("web")
    run_rotation(rotation)
    assert reason_of(rotation.status, "Stalled") == ("True", "VerificationFailed")

    rotation.request(world.now + timedelta(seconds=1))
    run_rotation(rotation)

    status = rotation.status
    # The failed db-v2 was collected, but its name is never used again: the kubelet caches immutable Secrets.
    assert (status["currentSecret"], status["revision"], status["highestRevision"]) == ("db-v3", 3, 3), status
    assert [c["type"] for c in status["conditions"]] == ["Ready"], "Stalled must go once a rotation succeeds"
    assert not {"consecutiveFailures", "lastFailure", "failedGeneration"} & set(status), status


def test_after_a_rollback_no_target_is_reported_verifying_on_the_failed_version() -> None:
    rotation = rotated_once()
    world = rotation.world
    rotation.request(world.now)
    switch_to_new_version(rotation)
    rotation.step()  # Verifying: the new spec is not observed yet
    world.start_crashing_pod("web")
    run_rotation(rotation)
    assert rotation.status["phase"] == Phase.IDLE

    stale = [t for t in rotation.status.get("targets") or [] if t["state"] == "Verifying"]

    assert stale == [], f"idle, rolled back to db-v1, yet status says: {stale}"


def test_a_rollout_that_fails_part_way_reverts_the_workloads_it_already_switched() -> None:
    world = shop()
    world.add_deployment("api", consuming_pod_spec())
    rotation = Rotation(world)
    plans = [rotation.step() for _ in range(3)]
    assert plans[-1].status["phase"] == Phase.ROLLING_OUT
    # Someone points web elsewhere before the operator patches it; api (sorted first) is patched.
    set_at(world.deployments["web"], f"{PREFIX}/volumes/0/secret/secretName", "db-manual")

    run_rotation(rotation)

    assert reason_of(rotation.status, "Stalled") == ("True", "TargetChangedExternally"), rotation.status
    assert referenced(world.deployments["api"]) == {BASE}, "api was left on the version of a failed rotation"


# --- garbage collection -----------------------------------------------------------------------


def test_with_retain_one_the_third_rotation_deletes_the_oldest_version_by_resource_version() -> None:
    rotation = rotated_once()
    world = rotation.world
    rotation.request(world.now)
    run_rotation(rotation)
    assert (rotation.status["currentSecret"], rotation.status["retainedSecrets"]) == ("db-v2", ["db-v1"])
    oldest_rv = world.secrets["db-v1"].resource_version

    rotation.request(world.now + timedelta(seconds=1))
    run_rotation(rotation)

    assert actions_of(rotation.plans, DeleteSecret) == [DeleteSecret("db-v1", oldest_rv)]
    assert (rotation.status["currentSecret"], rotation.status["retainedSecrets"]) == ("db-v3", ["db-v2"])
    assert set(world.secrets) == {BASE, "db-v2", "db-v3"}
    assert "pendingDeletion" not in rotation.status and condition(rotation.status, "GarbageCollected") is None


def test_a_version_a_lone_pod_still_mounts_waits_in_pending_deletion_until_the_pod_is_gone() -> None:
    rotation = rotated_once()
    world = rotation.world
    world.add_lone_pod("debug-shell", consuming_pod_spec("db-v1"))
    for request in range(2):
        rotation.request(world.now + timedelta(seconds=request))
        run_rotation(rotation)

    blocked = rotation.plans[-1]
    assert actions_of(rotation.plans, DeleteSecret) == [], "db-v1 is still mounted by debug-shell"
    [pending] = rotation.status["pendingDeletion"]
    assert (pending["name"], pending["reason"]) == ("db-v1", "StillReferenced"), pending
    collected = condition(rotation.status, "GarbageCollected") or {}
    assert (collected.get("status"), collected.get("reason")) == ("False", "StillReferenced"), collected
    assert "Pod/debug-shell" in collected["message"], collected
    assert ("CollectionBlocked", True) in [(e.reason, e.warning) for e in blocked.events]
    assert reason_of(rotation.status, "Ready") == ("True", "Rotated"), "a blocked deletion does not unready"
    assert rotation.status["retainedSecrets"] == ["db-v2"]
    assert not rotation.is_quiet(), "a blocked deletion is retried when the namespace changes"

    world.advance(minutes=5)
    still = rotation.step()
    assert (still.actions, still.events) == ((), ()), "no repeated warning while nothing changed"
    assert still.status == blocked.status

    del world.pods["debug-shell"]
    freed = rotation.step()

    assert "db-v1" not in world.secrets, "db-v1 must be deleted once nothing references it"
    assert [a.name for a in freed.actions] == ["db-v1"], freed.actions
    assert "pendingDeletion" not in rotation.status and condition(rotation.status, "GarbageCollected") is None
    assert rotation.is_quiet()


def test_with_retain_zero_the_retired_version_is_deleted_at_once() -> None:
    rotation = rotated_once(secret_spec(retain=0))
    world = rotation.world
    rotation.request(world.now)

    run_rotation(rotation)

    assert rotation.status["currentSecret"] == "db-v2", rotation.status
    assert "db-v1" not in world.secrets, f"db-v1 is neither deleted nor tracked: {rotation.status}"


# --- secrets stay secret ----------------------------------------------------------------------


def test_no_plan_ever_carries_a_constant_from_the_spec() -> None:
    rotation = rotated_once()
    world = rotation.world
    rotation.request(world.now)
    switch_to_new_version(rotation)
    world.start_crashing_pod("web")
    run_rotation(rotation)

    assert len(rotation.plans) > 10
    for plan in rotation.plans:
        texts = [str(plan.status), *(event.message for event in plan.events)]
        assert not [t for t in texts if CANARY in t], "a constant from spec.generate leaked"


# --- retries and spec edits around a failure ----------------------------------------------------


def test_a_failure_after_the_schedule_was_removed_is_not_retried_at_once() -> None:
    rotation = rotated_once(secret_spec(rotateEvery="1h"))
    world = rotation.world
    rotation.edit_spec(secret_spec())  # the schedule is removed; nextRotationTime stays
    world.advance(hours=2)
    assert rotation.is_quiet(), "nothing is due without a schedule"
    world.deployments["web"]["spec"]["paused"] = True
    rotation.request(world.now)
    run_rotation(rotation)
    assert reason_of(rotation.status, "Stalled") == ("True", "TargetPaused")

    world.advance(seconds=1)
    again = rotation.step()

    assert "rotation" not in again.status, "a failure without a new request, spec or schedule was retried"


def test_a_spec_edited_while_a_rotation_fails_is_tried_after_the_failure() -> None:
    rotation = rotated_once()
    world = rotation.world
    rotation.request(world.now)
    switch_to_new_version(rotation)
    world.start_crashing_pod("web")
    rotation.edit_spec(secret_spec(generate=[{"key": "password", "length": 64}, {"key": "username", "value": CANARY}]))
    run_rotation(rotation)
    assert reason_of(rotation.status, "Stalled") == ("True", "VerificationFailed")

    retried = rotation.step()

    assert retried.status.get("phase") == Phase.STAGING, "the edited spec (generation 2) was never attempted"


def test_a_rotation_interrupted_by_an_invalid_spec_resumes_where_it_was() -> None:
    rotation = Rotation(shop())
    switch_to_new_version(rotation)  # web now runs db-v1, which is not verified yet
    spec = rotation.spec
    rotation.edit_spec(secret_spec(generate=[{"key": "password"}, {"key": "username", "length": 16}]))
    # A spec change never disturbs a rotation in flight: it finishes with the spec it started with.
    during = rotation.step()
    assert during.status["phase"] == Phase.VERIFYING, during.status
    assert reason_of(during.status, "Stalled") is None, during.status
    rotation.edit_spec(spec)

    resumed = rotation.step()

    assert "currentSecret" not in resumed.status, "db-v1 became current without being verified"
    assert resumed.status["phase"] == Phase.VERIFYING, resumed.status


def test_a_target_reverted_during_verification_is_never_promoted_and_the_others_roll_back() -> None:
    world = shop()
    world.add_deployment("api", consuming_pod_spec())
    rotation = Rotation(world)
    switch_to_new_version(rotation)
    world.roll_out("api")
    world.roll_out("web")
    # Argo CD self-heal puts web back on the base Secret while the operator verifies.
    for change in next(t for t in rotation.status["rotation"]["targets"] if t["name"] == "web")["changes"]:
        set_at(world.deployments["web"], change["path"], change["from"])
    world.roll_out("web")
    world.advance(minutes=1)  # api's new pod is Ready and stable: only the revert can fail this

    failed = rotation.step()

    assert failed.status["phase"] == Phase.ROLLING_BACK, failed.status
    assert failed.status["rotation"]["failure"] == {
        "reason": "TargetChangedExternally",
        "message": "Deployment web was changed by someone else during verification",
    }
    run_rotation(rotation)
    assert "currentSecret" not in rotation.status, "a version no target uses was promoted"
    assert reason_of(rotation.status, "Stalled") == ("True", "TargetChangedExternally")
    assert referenced(world.deployments["api"]) == {BASE} and referenced(world.deployments["web"]) == {BASE}


def test_a_version_nothing_consumes_is_ready_with_reason_no_consumers_never_verified_healthy() -> None:
    world = World()
    world.add_secret(BASE)
    rotation = Rotation(world)

    run_rotation(rotation)

    ready = condition(rotation.status, "Ready")
    assert ready is not None and (ready["status"], ready["reason"]) == ("True", "NoConsumers"), ready
    assert "verified" not in ready["message"].replace("nothing was verified", ""), ready["message"]
    assert rotation.status["targets"] == [], "no report of an earlier rotation's targets may stay"


def test_a_rotation_of_another_rotations_version_is_refused_as_invalid_spec_and_touches_nothing() -> None:
    # A name ending in -v<N> is refused by parse_spec; this one carries a version's labels under another name.
    world = shop()
    world.add_secret("db-live", labels=names.version_labels("app-db", 1), immutable=True)
    world.add_deployment("api", consuming_pod_spec("db-live"))
    hijacker = Rotation(world, secret_spec(secretName="db-live"), name="hijacker")

    plan = hijacker.step()

    assert reason_of(plan.status, "Stalled") == ("True", "InvalidSpec"), plan.status
    message = condition(plan.status, "Stalled")["message"]  # type: ignore[index]
    assert "spec.secretName: Secret db-live is a version staged by SecretRotation app-db" in message, message
    assert plan.actions == () and "rotation" not in plan.status
    assert referenced(world.deployments["api"]) == {"db-live"}


# --- what a step asks the shell for: cost follows the work --------------------------------------


def facts_asked(rotation: Rotation) -> world.Needs:
    """Every fact the next step asks for beyond the store's objects (the shell fetches each by need)."""
    resource = rotation.resource()
    return planned_with_facts(resource, lambda needs: rotation.world.observe(resource, needs=needs))[1]


def test_a_waiting_verification_step_asks_for_nothing_but_the_store() -> None:
    rotation = Rotation(shop())
    switch_to_new_version(rotation)  # the new pod is not there yet: verification waits

    assert facts_asked(rotation) == world.Needs()


def test_promotion_is_decided_only_from_a_fresh_list_never_from_the_stores_memory() -> None:
    rotation = Rotation(shop(), secret_spec(verify={"timeout": "10m", "stableFor": "0s"}))
    switch_to_new_version(rotation)
    rotation.world.roll_out("web")
    assert planner.fresh_kinds(rotation.resource()) == {"Deployment"}, "the targets, as the API server has them now"
    from_memory = planner.plan(rotation.resource(), rotation.world.observe(rotation.resource(), needs=world.Needs()))

    assert from_memory.needs == world.Needs(frozenset({world.Fact.FRESH}))
    assert (from_memory.status, from_memory.events) == (rotation.status, ()), "nothing is promoted from memory"
    promoted = rotation.step()
    assert promoted.status["currentSecret"] == "db-v1", promoted.status


def test_a_deletion_is_decided_only_from_a_fresh_list_and_keeping_a_version_needs_none() -> None:
    rotation = rotated_once(secret_spec(retain=0))
    rotation.request(T0)
    plans: list[Plan] = []
    asked: list[world.Needs] = []
    phases: list[str] = []
    while not plans or plans[-1].status["phase"] != Phase.IDLE:
        asked.append(facts_asked(rotation))
        phases.append(rotation.phase)
        plans.append(rotation.step())
        for action in plans[-1].actions:
            if isinstance(action, PatchWorkload):
                rotation.world.roll_out(action.name)
    deleting = [i for i, p in enumerate(plans) if actions_of([p], DeleteSecret)]
    assert deleting, "retain 0 deletes the retired version"
    assert all(world.Fact.FRESH in asked[i].facts for i in deleting), asked
    waiting = [i for i, phase in enumerate(phases) if phase in (Phase.ROLLING_OUT, Phase.VERIFYING)]
    assert waiting and all(not asked[i].secrets for i in waiting), "no Secret is read while waiting"
    assert all(
        world.Fact.FRESH not in asked[i].facts
        for i in range(len(plans))
        if i not in deleting and phases[i] not in (Phase.VERIFYING,)
    ), "only a promotion or a deletion lists afresh"


@pytest.mark.parametrize(
    ("age", "asks"),
    [pytest.param(timedelta(seconds=3), False, id="young"), pytest.param(timedelta(seconds=30), True, id="stuck")],
)
def test_mount_failure_events_are_asked_for_only_for_a_new_pod_unready_past_the_grace(
    age: timedelta, asks: bool
) -> None:
    rotation = Rotation(shop())
    switch_to_new_version(rotation)
    rotation.world.start_crashing_pod("web")
    pod = rotation.world.pods["web-g2"]
    pod["status"] = {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}]}
    pod["metadata"]["creationTimestamp"] = ts(rotation.world.now - age)

    asked = facts_asked(rotation)

    assert (world.Fact.MOUNT_FAILURES in asked.facts) is asks, asked


def test_staging_that_cannot_finish_within_the_verify_timeout_stops_having_switched_nothing() -> None:
    world = shop()
    rotation = Rotation(world)
    rotation.step()  # Idle -> Staging
    for _ in range(3):
        rotation.step()  # creates db-v1, which something removes again at once (an admission webhook, say)
        world.secrets.pop("db-v1", None)
        world.advance(minutes=4)
    rotation.step()  # 12 minutes after the start
    assert rotation.phase == Phase.IDLE, rotation.status
    assert reason_of(rotation.status, "Stalled") == ("True", "VerificationFailed")
    assert "staging did not finish within 600s" in condition(rotation.status, "Stalled")["message"]  # type: ignore[index]
    assert actions_of(rotation.plans, PatchWorkload) == [], "nothing may be switched"


def test_switching_that_has_not_finished_by_the_deadline_rolls_back_instead_of_sitting_half_switched() -> None:
    world = shop()
    rotation = Rotation(world)
    for _ in range(3):
        rotation.step()  # Idle -> Staging -> version created -> targets resolved
    assert rotation.phase == Phase.ROLLING_OUT
    world.advance(minutes=11)  # the patches were refused or fought over until the deadline passed

    late = rotation.step()

    assert rotation.phase == Phase.ROLLING_BACK and actions_of([late], PatchWorkload) == [], rotation.status
    assert "could be switched within 600s" in rotation.status["rotation"]["failure"]["message"]


def test_a_refusal_while_switching_fails_the_rotation_so_that_it_rolls_back() -> None:
    rotation = Rotation(shop())
    for _ in range(3):
        rotation.step()
    assert rotation.phase == Phase.ROLLING_OUT

    refused = planner.refused(rotation.resource(), T0, "AdmissionDenied", "denied by policy no-patch")

    assert refused.status["phase"] == Phase.ROLLING_BACK and refused.requeue, refused.status
    assert [e.reason for e in refused.events] == ["RotationFailed"]
    assert "denied by policy no-patch" in refused.status["rotation"]["failure"]["message"]


def test_verification_progress_is_written_at_most_every_30s_but_a_failure_at_once() -> None:
    world = shop()
    rotation = Rotation(world)
    switch_to_new_version(rotation)  # the switch is the first report
    reported = copy.deepcopy(rotation.status)

    world.advance(seconds=5)
    quiet = rotation.step()  # still waiting for the rollout: progress only
    assert quiet.status == reported, "progress within 30s of the last report is not written"
    assert quiet.wake_at is not None, "the step still wakes at the deadline"

    world.advance(seconds=25)
    late = rotation.step()
    assert late.status["targets"][0]["state"] == "Verifying", "30s on, progress is written"
    assert late.status["rotation"]["reportedAt"] == ts(world.now)

    world.advance(seconds=5)
    world.start_crashing_pod("web")
    failed = rotation.step()
    assert failed.status["phase"] == Phase.ROLLING_BACK, "a failure is written at once, throttle or not"


def test_while_verifying_only_its_targets_and_their_pods_wake_a_rotation() -> None:
    rotation = Rotation(shop())
    switch_to_new_version(rotation)
    web = rotation.world.deployments["web"]
    targets = {"Deployment/web": web}
    own_pod = {"metadata": {"name": "web-x", "labels": {"app": "web"}}}
    other_pod = {"metadata": {"name": "cache-x", "labels": {"app": "cache"}}}

    assert planner.concerns(record.read(rotation.status), "Deployment", web, targets)
    assert planner.concerns(record.read(rotation.status), "Pod", own_pod, targets)
    assert not planner.concerns(record.read(rotation.status), "Pod", other_pod, targets)
    assert not planner.concerns(record.read(rotation.status), "Deployment", {"metadata": {"name": "cache"}}, targets)
    assert not planner.concerns(record.read(rotation.status), "Job", {"metadata": {"name": "web"}}, targets)
    idle = Rotation(shop())
    assert planner.concerns(record.read(idle.status), "Pod", other_pod, {}), "outside switching, any change may matter"


def test_a_rotation_posts_one_event_per_phase_naming_what_it_concerns() -> None:
    rotation = rotated_once(secret_spec(retain=0))
    rotation.request(T0)
    rotation.plans.clear()
    run_rotation(rotation)

    events = [(e.reason, e.message) for p in rotation.plans for e in p.events]
    assert [reason for reason, _ in events] == ["RotationStarted", "RollingOut", "Promoted"], events
    assert "switched Deployment/web to it" in events[1][1]
    assert "Deployment/web verified on it; deleted Secret db-v1" in events[2][1], events[2]


# --- requests that can be waited on, and the history ------------------------------------------


def test_a_new_request_is_marked_at_once_without_reading_anything() -> None:
    rotation = rotated_once()
    assert reason_of(rotation.status, "Ready") == ("True", "Rotated")
    rotation.request(T0 + timedelta(hours=1))

    marked = planner.acknowledge(rotation.resource(), rotation.world.now)

    assert marked is not None and marked.requeue and marked.actions == ()
    assert reason_of(marked.status, "Ready") == ("False", "Requested")
    assert reason_of(marked.status, "Reconciling") == ("True", "Requested")
    assert_conventions(marked, rotation.resource())
    rotation.status = marked.status
    assert planner.acknowledge(rotation.resource(), rotation.world.now) is None, "marked once"
    started = rotation.step()
    assert started.status["phase"] == Phase.STAGING and reason_of(started.status, "Reconciling") == ("True", "Staging")


@pytest.mark.parametrize("paused", [True, False], ids=["paused", "handled"])
def test_no_request_is_marked_while_paused_or_once_handled(paused: bool) -> None:
    rotation = rotated_once()
    rotation.request(T0)
    if paused:
        rotation.edit_spec(secret_spec(paused=True))
    else:
        run_rotation(rotation)

    assert planner.acknowledge(rotation.resource(), rotation.world.now) is None


def test_a_request_made_during_a_rotation_starts_the_next_one_without_a_ready_in_between() -> None:
    rotation = rotated_once()
    rotation.request(T0 + timedelta(minutes=1))
    switch_to_new_version(rotation)
    rotation.request(T0 + timedelta(minutes=2))

    while rotation.phase != Phase.IDLE:
        rotation.world.roll_out("web")
        rotation.world.advance(minutes=1)
        rotation.step()

    assert reason_of(rotation.status, "Ready") == ("False", "Requested"), "never Ready between the two"
    assert rotation.plans[-1].requeue
    assert rotation.step().status["rotation"]["request"] == ts(T0 + timedelta(minutes=2))


def test_each_rotation_that_ends_is_recorded_in_the_history_newest_first() -> None:
    rotation = rotated_once()
    world = rotation.world
    rotation.request(world.now)
    switch_to_new_version(rotation)
    world.start_crashing_pod("web")
    run_rotation(rotation)

    first, second = rotation.status["history"]
    assert (second["revision"], second["secret"], second["reason"], second["result"]) == (
        1, "db-v1", "Created", "Succeeded",
    )  # fmt: skip
    assert "failure" not in second and second["startedAt"] <= second["finishedAt"]
    assert (first["revision"], first["secret"], first["reason"], first["result"]) == (
        2, "db-v2", "Requested", "RolledBack",
    )  # fmt: skip
    assert first["failure"]["reason"] == "VerificationFailed"
    assert CANARY not in repr(rotation.status["history"])


def test_a_rotation_stopped_before_any_switch_is_recorded_as_failed() -> None:
    world = World()
    world.add_secret(BASE)
    world.add_deployment("web", consuming_pod_spec(), paused=True)
    rotation = Rotation(world)

    run_rotation(rotation)

    [ended] = rotation.status["history"]
    assert (ended["result"], ended["failure"]["reason"]) == ("Failed", "TargetPaused"), ended


# --- visible state: fail fast, each target's own message, paused ---------------------------------


def never_ready_pod(world: World, name: str, *, created: datetime) -> None:
    """The current template's pod runs but never turns Ready (the old pod keeps serving)."""
    deployment = world.deployments[name]
    status = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": ts(created)}],
        "containerStatuses": [{"name": "app", "ready": False, "restartCount": 0, "state": {"running": {}}}],
    }
    world._replace_pods(deployment, status, keep_old=True)
    pod = world.pods[f"{name}-g{deployment['metadata']['generation']}"]
    pod["metadata"]["creationTimestamp"] = ts(created)
    deployment["status"] = {
        "observedGeneration": deployment["metadata"]["generation"],
        "replicas": 2,
        "updatedReplicas": 1,
        "readyReplicas": 1,
        "availableReplicas": 1,
    }


def test_on_a_verification_timeout_each_target_keeps_its_own_message_naming_its_pods() -> None:
    world = shop()
    world.add_deployment("api", consuming_pod_spec())
    rotation = Rotation(world, secret_spec(verify={"timeout": "10m", "stableFor": "30s", "notReadyAfter": "9m"}))
    run_rotation(rotation)
    rotation.request(world.now)
    started_at = world.now
    switch_to_new_version(rotation)
    world.now = started_at + timedelta(minutes=5)
    for name in ("web", "api"):
        never_ready_pod(world, name, created=world.now)  # unready for 5m at the deadline: below notReadyAfter
    waiting = rotation.step()
    pod = next(
        n for n in world.pods if n.startswith("web-") and world.pods[n]["status"]["conditions"][0]["status"] == "False"
    )
    assert f"pod {pod} NotReady" in condition(waiting.status, "Reconciling")["message"], "the pod is named"
    world.now = started_at + timedelta(minutes=10)
    timed_out = rotation.step()
    assert timed_out.status["phase"] == Phase.ROLLING_BACK, timed_out.status
    run_rotation(rotation)

    messages = {t["name"]: t["message"] for t in rotation.status["targets"]}
    assert set(messages) == {"web", "api"}, messages
    assert "Deployment web" in messages["web"] and "Deployment api" not in messages["web"], messages
    assert "Deployment api" in messages["api"] and "Deployment web" not in messages["api"], messages
    assert "pod api-" in messages["api"] and "NotReady" in messages["api"], messages


def test_a_new_pod_not_ready_for_not_ready_after_fails_verification_before_the_timeout() -> None:
    rotation = rotated_once(secret_spec(verify={"timeout": "10m", "stableFor": "30s", "notReadyAfter": "2m"}))
    world = rotation.world
    rotation.request(world.now)
    switch_to_new_version(rotation)
    never_ready_pod(world, "web", created=world.now)

    world.advance(seconds=119)
    before = rotation.step()
    assert before.status["phase"] == Phase.VERIFYING, before.status
    assert before.wake_at is not None and before.wake_at <= world.now + timedelta(seconds=1), "it looks again by then"
    world.advance(seconds=1)
    failed = rotation.step()

    assert failed.status["phase"] == Phase.ROLLING_BACK, failed.status
    message = failed.status["rotation"]["failure"]["message"]
    assert "has not been Ready for 120s (verify.notReadyAfter)" in message and "pod web-" in message, message
    assert failed.status["rotation"]["failure"]["reason"] == "VerificationFailed"


def test_a_paused_rotation_with_a_version_in_use_is_ready_with_reason_paused() -> None:
    rotation = rotated_once(secret_spec(paused=False))
    rotation.edit_spec(secret_spec(paused=True))

    paused = rotation.step()

    ready = condition(paused.status, "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Paused"), ready
    assert "db-v1 stays in use" in ready["message"] and "requested" not in ready["message"], ready
    assert condition(paused.status, "Stalled") is None


def test_a_paused_rotation_whose_last_rotation_failed_stays_stalled_and_not_ready() -> None:
    rotation = rotated_once(secret_spec(paused=False))
    world = rotation.world
    rotation.request(world.now)
    switch_to_new_version(rotation)
    world.start_crashing_pod("web")
    run_rotation(rotation)
    rotation.edit_spec(secret_spec(paused=True))

    paused = rotation.step()

    assert reason_of(paused.status, "Ready") == ("False", "Paused"), paused.status
    assert "the last rotation failed" in condition(paused.status, "Ready")["message"]
    assert reason_of(paused.status, "Stalled") == ("True", "VerificationFailed"), paused.status
