"""The rotation state machine: (resource, observed world) -> the next step.

Pure. The shell observes the namespace, calls ``plan``, performs the returned
actions in order, and only then writes the returned status. The status is the
cursor: if the operator dies anywhere, the next step re-derives what to do from
the status and a fresh observation, and every action is safe to repeat.

Phases: Idle -> Staging -> RollingOut -> Verifying -> CollectingGarbage -> Idle,
with Verifying -> RollingBack -> Idle when the new version fails.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from secretrotation.core import accounts, conditions, guard, spec as model, names, references, rollout
from secretrotation.core.conditions import Condition, Reason

Obj = Mapping[str, Any]
MOUNT_GRACE = timedelta(seconds=10)
BLOCKED_RECHECK = timedelta(minutes=10)
MAX_BACKOFF_FACTOR = 8
MAX_STATUS_TARGETS = 64
MAX_UNTRACKED = 20


class Phase(enum.StrEnum):
    IDLE = "Idle"
    STAGING = "Staging"
    ROLLING_OUT = "RollingOut"
    VERIFYING = "Verifying"
    ROLLING_BACK = "RollingBack"
    COLLECTING_GARBAGE = "CollectingGarbage"


class Trigger(enum.StrEnum):
    CREATED = "Created"
    SCHEDULED = "Scheduled"
    REQUESTED = "Requested"
    RETRY = "Retry"


# -- inputs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    """The SecretRotation as read from the API."""

    name: str
    namespace: str
    generation: int
    annotations: Mapping[str, str]
    spec: Obj
    status: Obj


@dataclass(frozen=True)
class SecretState:
    """What the operator may know of a Secret: never its values."""

    name: str
    labels: Mapping[str, str]
    keys: frozenset[str]
    immutable: bool
    type: str
    resource_version: str


@dataclass(frozen=True)
class Observed:
    now: datetime
    objects: guard.NamespaceObjects
    secrets: Mapping[str, SecretState | None]
    from_secret_keys: frozenset[str] | None = None
    mount_failures: Mapping[str, datetime] = field(default_factory=dict)
    claims: Mapping[tuple[str, str], str] = field(default_factory=dict)
    service_accounts: Mapping[str, accounts.AccountState | None] = field(default_factory=dict)
    bindings: Sequence[Obj] = ()  # RoleBindings (and, if enabled, ClusterRoleBindings), each with its "kind"
    can_bind: bool = False  # the operator may add subjects to RoleBindings here (the namespace opted in)
    auto_tokens: bool = False  # the cluster gives every ServiceAccount a token Secret (Kubernetes < 1.24)

    def secret(self, name: str | None) -> SecretState | None:
        return self.secrets.get(name) if name else None

    def account(self, name: str | None) -> accounts.AccountState | None:
        return self.service_accounts.get(name) if name else None


# -- outputs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One string in a workload that a rotation rewrites (a JSON pointer and both values)."""

    path: str
    old: str
    new: str


@dataclass(frozen=True)
class CreateVersion:
    name: str
    revision: int
    spec: model.RotationSpec


@dataclass(frozen=True)
class PatchWorkload:
    """Apply ``changes`` atomically; each is tested to still hold ``old`` first."""

    kind: str
    name: str
    changes: tuple[Change, ...]


@dataclass(frozen=True)
class DeletePod:
    name: str
    uid: str


@dataclass(frozen=True)
class DeleteSecret:
    name: str
    resource_version: str


@dataclass(frozen=True)
class CreateAccount:
    """Stage a ServiceAccount version, copying from ``source`` (the account in use), if any."""

    name: str
    revision: int
    source: accounts.AccountState | None


@dataclass(frozen=True)
class CreateTokenSecret:
    account: str
    revision: int


@dataclass(frozen=True)
class PatchBinding:
    """A JSON patch to a RoleBinding or ClusterRoleBinding, tested against the version judged."""

    kind: str
    name: str
    operations: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class DeleteAccount:
    name: str
    resource_version: str


Action = (
    CreateVersion | PatchWorkload | DeletePod | DeleteSecret | CreateAccount | CreateTokenSecret | PatchBinding
    | DeleteAccount
)  # fmt: skip


@dataclass(frozen=True)
class Event:
    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True)
class Plan:
    status: dict[str, Any]
    actions: tuple[Action, ...] = ()
    events: tuple[Event, ...] = ()
    requeue: bool = False  # step again as soon as this one is done
    wake_at: datetime | None = None  # step again then, even without a watch event


# -- helpers --------------------------------------------------------------------------------


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    return rollout.parse_timestamp(text) if text else None


def _earliest(*moments: datetime | None) -> datetime | None:
    present = [m for m in moments if m is not None]
    return min(present) if present else None


def _versions_of_interest(resource: Resource) -> set[str]:
    """Every version a step may stage, switch, keep or collect, and the base name."""
    status = resource.status
    wanted = set(status.get("retainedSecrets") or [])
    wanted |= {entry["name"] for entry in status.get("pendingDeletion") or [] if "name" in entry}
    rotation = status.get("rotation") or {}
    for name in (status.get("currentSecret"), rotation.get("secret"), rotation.get("previousSecret")):
        if name:
            wanted.add(name)
    account = resource.spec.get("serviceAccount")
    base = account.get("name") if isinstance(account, Mapping) else resource.spec.get("secretName")
    if isinstance(base, str) and base:
        wanted.add(base)
    return wanted


def is_account_rotation(resource: Resource) -> bool:
    return isinstance(resource.spec.get("serviceAccount"), Mapping)


def accounts_to_fetch(resource: Resource) -> set[str]:
    """The ServiceAccounts a step needs to see (none for a Secret rotation)."""
    return _versions_of_interest(resource) if is_account_rotation(resource) else set()


def secrets_to_fetch(resource: Resource, fetched: Mapping[str, accounts.AccountState | None] | None = None) -> set[str]:
    """The Secrets a step needs to see, fetched one by one by name (never listed).

    For a ServiceAccount rotation: the token Secrets of its versions, the operator's
    and the ones the token controller made for them.
    """
    versions = _versions_of_interest(resource)
    if not is_account_rotation(resource):
        return versions
    wanted = {accounts.token_secret_name(name) for name in versions}
    for account in (fetched or {}).values():
        if account is not None:
            wanted |= set(account.secrets)  # the token controller's, checked for filling and for use
    return wanted


def uses(spec: model.RotationSpec, pod_spec: Obj, name: str) -> bool:
    """Whether a pod spec consumes credential version ``name`` (a Secret, or a ServiceAccount)."""
    if spec.service_account is not None:
        # Only versions with an operator-made token can switch a token mount.
        return accounts.uses_account(pod_spec, name, token=spec.service_account.token_secret)
    return bool(references.references_to(pod_spec, name))


def _referrers(spec: model.RotationSpec, name: str, objects: guard.NamespaceObjects) -> list[guard.Referrer]:
    if spec.service_account is not None:
        return accounts.referrers_of(name, objects)
    return guard.referrers_of(name, objects)


def template_changes(
    workload: Obj, old_names: Sequence[str], new: str, *, service_account: bool = False, token_secret: bool = False
) -> tuple[Change, ...]:
    """The exact strings to rewrite so the pod template uses ``new`` instead of ``old_names``.

    For a ServiceAccount: ``serviceAccountName``, and with ``token_secret`` (the new version
    has an operator-made token Secret) references to the old version's token Secret.
    """
    kind = workload["kind"]
    spec_path = references.pod_spec_path(kind)
    pod_spec = references.pod_spec_of(workload)
    rewritten: Obj = pod_spec
    for old in old_names:
        if service_account:
            rewritten, _ = references.rewrite_service_account(rewritten, old, new)
            if token_secret:
                old_token, new_token = accounts.token_secret_name(old), accounts.token_secret_name(new)
                rewritten, _ = references.rewrite_secret_references(rewritten, old_token, new_token)
        else:
            rewritten, _ = references.rewrite_secret_references(rewritten, old, new)
    prefix = "/" + "/".join(spec_path)
    return tuple(_diff(pod_spec, rewritten, prefix))


def _diff(before: Any, after: Any, path: str) -> list[Change]:
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        return [c for key in before if key in after for c in _diff(before[key], after[key], f"{path}/{_escape(key)}")]
    if isinstance(before, list) and isinstance(after, list):
        return [c for i, (b, a) in enumerate(zip(before, after, strict=False)) for c in _diff(b, a, f"{path}/{i}")]
    if isinstance(before, str) and isinstance(after, str) and before != after:
        return [Change(path, before, after)]
    return []


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def value_at(obj: Any, pointer: str) -> Any:
    """The value at a JSON pointer, or None when the path does not exist."""
    for raw in pointer.lstrip("/").split("/"):
        key = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(obj, Mapping):
            obj = obj.get(key)
        elif isinstance(obj, list) and key.isdigit() and int(key) < len(obj):
            obj = obj[int(key)]
        else:
            return None
    return obj


def _workload(objects: guard.NamespaceObjects, kind: str, name: str) -> Obj | None:
    pool = {"Deployment": objects.deployments, "StatefulSet": objects.stateful_sets, "DaemonSet": objects.daemon_sets}
    for obj in pool.get(kind, ()):
        if obj["metadata"]["name"] == name:
            return {**obj, "kind": kind}
    return None


def _all_workloads(objects: guard.NamespaceObjects) -> list[Obj]:
    return [
        {**obj, "kind": kind}
        for kind, pool in (
            ("Deployment", objects.deployments),
            ("StatefulSet", objects.stateful_sets),
            ("DaemonSet", objects.daemon_sets),
        )
        for obj in pool
    ]


def _pods_of(workload: Obj, pods: Sequence[Obj]) -> list[Obj]:
    selector = (workload.get("spec") or {}).get("selector") or {}
    if not selector:
        return []
    return [p for p in pods if model.selector_matches(selector, p["metadata"].get("labels") or {})]


def _label(kind: str, name: str) -> str:
    return f"{kind} {name}"


# -- triggers -------------------------------------------------------------------------------


def decide_trigger(spec: model.RotationSpec, resource: Resource, now: datetime) -> tuple[Trigger, str | None] | None:
    """Why a rotation should start now, and the request it answers; None when nothing asks for one.

    A restart alone never starts one: every trigger is read from the resource.
    After a failure, only a new request, a spec change, or the (backed-off)
    schedule starts the next attempt: no retry storm.
    """
    status = resource.status
    request = resource.annotations.get(names.REQUESTED_AT_ANNOTATION)
    if request and request != status.get("lastHandledRequest"):
        return Trigger.REQUESTED, request
    failures = int(status.get("consecutiveFailures") or 0)
    if failures:
        if resource.generation > int(status.get("failedGeneration") or 0):
            return Trigger.RETRY, None
        next_time = parse_time(status.get("nextRotationTime"))
        if spec.rotate_every is not None and next_time is not None and now >= next_time:
            return Trigger.RETRY, None
        return None
    if int(status.get("revision") or 0) == 0:
        return Trigger.CREATED, None
    next_time = parse_time(status.get("nextRotationTime"))
    if spec.rotate_every is not None and next_time is not None and now >= next_time:
        return Trigger.SCHEDULED, None
    return None


def next_rotation_after_success(spec: model.RotationSpec, now: datetime) -> datetime | None:
    return now + spec.rotate_every if spec.rotate_every else None


def next_attempt_after_failure(spec: model.RotationSpec, now: datetime, failures: int) -> datetime | None:
    """The scheduled retry after ``failures`` failures in a row: one period, doubling, at most 8 periods."""
    if spec.rotate_every is None:
        return None
    factor: int = min(2 ** max(failures - 1, 0), MAX_BACKOFF_FACTOR)
    return now + spec.rotate_every * factor


def is_quiet(resource: Resource, now: datetime) -> bool:
    """True when a step needs nothing from the cluster: idle, nothing due, nothing to collect.

    This is what makes an idle SecretRotation cost no API requests.
    """
    if resource.status.get("rotation") or resource.status.get("pendingDeletion"):
        return False
    try:
        spec = model.parse_spec(resource.spec)
    except model.InvalidSpec:
        return True
    return spec.paused or decide_trigger(spec, resource, now) is None


# -- the step -------------------------------------------------------------------------------


class _Builder:
    """Accumulates the next status, events and actions of one step."""

    def __init__(self, resource: Resource, observed: Observed) -> None:
        self.resource = resource
        self.observed = observed
        self.status: dict[str, Any] = dict(resource.status)
        self.status["observedGeneration"] = resource.generation
        self.events: list[Event] = []
        self.actions: list[Action] = []
        self.wanted: list[Condition] = []

    @property
    def now(self) -> datetime:
        return self.observed.now

    def event(self, reason: str, message: str, *, warning: bool = False) -> None:
        self.events.append(Event(reason, message, warning))

    def conditions(self, *wanted: Condition) -> None:
        self.wanted = list(wanted)

    def done(self, *, requeue: bool = False, wake_at: datetime | None = None) -> Plan:
        blocked = self.status.get("pendingDeletion") or []
        wanted = list(self.wanted)
        if blocked:
            wanted.append(
                Condition(
                    "GarbageCollected",
                    False,
                    Reason.STILL_REFERENCED,
                    "; ".join(entry["message"] for entry in blocked),
                )
            )
        self.status["conditions"] = conditions.render(
            wanted, self.resource.status.get("conditions") or [], self.resource.generation, timestamp(self.now)
        )
        if not self.status.get("pendingDeletion"):
            self.status.pop("pendingDeletion", None)
        return Plan(self.status, tuple(self.actions), tuple(self.events), requeue, wake_at)


def plan(resource: Resource, observed: Observed) -> Plan:
    """The next step of one SecretRotation."""
    builder = _Builder(resource, observed)
    rotation = resource.status.get("rotation")
    phase = Phase(resource.status.get("phase") or Phase.IDLE) if rotation else Phase.IDLE
    try:
        spec = model.parse_spec(resource.spec)
    except model.InvalidSpec as invalid:
        if not rotation:
            return _invalid(builder, invalid)
        spec = None  # a rotation in flight finishes with the spec it started with
    if not rotation:
        assert spec is not None
        return _idle(builder, spec)
    started_spec, problem = _started_spec(rotation, spec)
    if problem is not None and phase is Phase.STAGING:
        return _abort(builder, started_spec, Reason.INVALID_SPEC, f"the spec changed while staging: {problem}")
    step = {
        Phase.STAGING: _staging,
        Phase.ROLLING_OUT: _rolling_out,
        Phase.VERIFYING: _verifying,
        Phase.ROLLING_BACK: _rolling_back,
        Phase.COLLECTING_GARBAGE: _collecting_garbage,
    }.get(phase, _staging)
    return step(builder, started_spec)


def _started_spec(rotation: Obj, current: model.RotationSpec | None) -> tuple[model.RotationSpec, str | None]:
    """The spec the rotation in flight started with, and why the current spec cannot supply its constants.

    Constant values are never stored in status; only staging needs them. When the
    current spec no longer supplies them, placeholders restore the rest of the spec.
    """
    snapshot = rotation.get("spec") or {}
    try:
        if current is not None:
            return model.spec_from_snapshot(snapshot, current), None
        problem = "the current spec is invalid"
    except model.InvalidSpec as invalid:
        problem = str(invalid)
    constants = tuple(
        model.GenerateRule(key=entry["key"], value="-")
        for entry in snapshot.get("generate") or []
        if isinstance(entry, Mapping) and entry.get("constant")
    )
    placeholder = model.RotationSpec(None, model.SecretType.OPAQUE, constants, None, None, None, None)
    return model.spec_from_snapshot(snapshot, placeholder), problem


def _ready_now(builder: _Builder) -> Condition:
    status = builder.status
    current = status.get("currentSecret")
    if current:
        return Condition("Ready", True, Reason.ROTATED, f"{current} is in use and was verified healthy")
    return Condition("Ready", False, Reason.PENDING, "no version has been rotated in yet")


def _invalid(builder: _Builder, invalid: model.InvalidSpec) -> Plan:
    builder.status["phase"] = Phase.IDLE.value
    message = f"invalid spec, nothing was changed: {invalid}"
    if builder.resource.status.get("phase") != Phase.IDLE.value or not _stalled_with(builder, Reason.INVALID_SPEC):
        builder.event(Reason.INVALID_SPEC, message, warning=True)
    builder.conditions(
        Condition("Ready", False, Reason.INVALID_SPEC, message),
        Condition("Stalled", True, Reason.INVALID_SPEC, message),
    )
    return builder.done()


def _stalled_with(builder: _Builder, reason: Reason) -> bool:
    stalled = conditions.find(builder.resource.status.get("conditions") or [], "Stalled")
    return bool(stalled and stalled.get("reason") == reason and stalled.get("status") == "True")


def _previous_failure(builder: _Builder) -> list[Condition]:
    """Keep reporting the last failure (Ready=False, Stalled=True) until a rotation succeeds."""
    failure = builder.status.get("lastFailure")
    if not failure or not builder.status.get("consecutiveFailures"):
        return [_ready_now(builder)]
    message = failure.get("message", "")
    return [
        Condition("Ready", False, Reason.ROTATION_FAILED, message),
        Condition("Stalled", True, Reason(failure.get("reason", Reason.VERIFICATION_FAILED)), message),
    ]


def _idle(builder: _Builder, spec: model.RotationSpec) -> Plan:
    resource, now = builder.resource, builder.now
    builder.status["phase"] = Phase.IDLE.value
    builder.status.pop("rotation", None)
    trigger = None if spec.paused else decide_trigger(spec, resource, now)
    if trigger is None:
        if builder.status.get("pendingDeletion"):
            return _collect(builder, spec, finish=False)
        if spec.paused and not builder.status.get("currentSecret"):
            builder.conditions(Condition("Ready", False, Reason.PAUSED, "paused before the first rotation"))
            return builder.done()
        builder.conditions(*_previous_failure(builder))
        return builder.done(wake_at=None if spec.paused else parse_time(builder.status.get("nextRotationTime")))
    cause, request = trigger
    revision = int(builder.status.get("revision") or 0) + 1
    base = spec.base_name
    previous = builder.status.get("currentSecret")
    if not previous and _exists(builder, spec, base):
        previous = base  # adopt the existing, unversioned Secret or ServiceAccount
    rotation: dict[str, Any] = {
        "revision": revision,
        "secret": names.version_name(base, revision),
        "reason": cause.value,
        "startedAt": timestamp(now),
        "generation": resource.generation,
        "spec": model.spec_to_snapshot(spec),
        "targets": [],
    }
    if previous:
        rotation["previousSecret"] = previous
    if request:
        rotation["request"] = request
        builder.status["lastHandledRequest"] = request
    builder.status["rotation"] = rotation
    builder.status["phase"] = Phase.STAGING.value
    builder.event("RotationStarted", f"rotation to {rotation['secret']} started ({cause.value})")
    _in_flight(builder, Reason.STAGING, f"staging {rotation['secret']}")
    return builder.done(requeue=True)


def _exists(builder: _Builder, spec: model.RotationSpec, name: str) -> bool:
    if spec.service_account is not None:
        return builder.observed.account(name) is not None
    return builder.observed.secret(name) is not None


def _in_flight(builder: _Builder, reason: Reason, message: str) -> None:
    current = builder.status.get("currentSecret") or "no version yet"
    builder.conditions(
        Condition("Ready", False, reason, f"rotation in progress ({message}); in use: {current}"),
        Condition("Reconciling", True, reason, message),
    )


def _staging(builder: _Builder, spec: model.RotationSpec) -> Plan:
    rotation = dict(builder.status["rotation"])
    staged_name: str = rotation["secret"]
    stage = _stage_account if spec.service_account is not None else _stage_secret
    unfinished = stage(builder, spec, rotation)
    if unfinished is not None:
        return unfinished
    rotation = dict(builder.status["rotation"])
    targets, problems = _resolve_targets(builder, spec, rotation)
    holder = next(
        (
            builder.observed.claims[(t["kind"], t["name"])]
            for t in targets
            if (t["kind"], t["name"]) in builder.observed.claims
        ),
        None,
    )
    if holder is not None:
        message = f"waiting for SecretRotation {holder}, which is rotating a shared workload"
        builder.conditions(
            Condition("Ready", False, Reason.WAITING_FOR_WORKLOAD, message),
            Condition("Reconciling", True, Reason.WAITING_FOR_WORKLOAD, message),
        )
        return builder.done()
    if problems:
        reason, message = problems[0]
        return _abort(builder, spec, reason, message)
    builder.event("Staged", f"staged {staged_name} beside {rotation.get('previousSecret') or 'nothing'}")
    rotation["targets"] = targets
    builder.status["rotation"] = rotation
    if not targets:
        builder.event("NoConsumers", f"no workload consumes {spec.base_name}; {staged_name} is promoted unused")
        return _promote(builder, spec)
    builder.status["phase"] = Phase.ROLLING_OUT.value
    # The verification deadline runs from the first switch, not from a wait for a shared workload.
    rotation["deadline"] = timestamp(builder.now + spec.verify.timeout)
    _in_flight(builder, Reason.ROLLING_OUT, f"switching {len(targets)} workloads to {staged_name}")
    return builder.done(requeue=True)


def _stage_secret(builder: _Builder, spec: model.RotationSpec, rotation: Obj) -> Plan | None:
    """Create the new Secret version (or adopt ours from an interrupted attempt); None once it is there."""
    staged_name: str = rotation["secret"]
    staged = builder.observed.secret(staged_name)
    if staged is None:
        if spec.from_secret is not None and not builder.observed.from_secret_keys:
            problem = "is missing" if builder.observed.from_secret_keys is None else "holds no data"
            return _abort(
                builder, spec, Reason.INVALID_SPEC, f"spec.from.secretName: Secret {spec.from_secret} {problem}"
            )
        builder.actions.append(CreateVersion(staged_name, rotation["revision"], spec))
        _in_flight(builder, Reason.STAGING, f"staging {staged_name}")
        return builder.done(requeue=True)
    conflict = _staged_conflict(builder, spec, staged, rotation["revision"])
    if conflict:
        return _abort(builder, spec, Reason.STAGED_VERSION_CONFLICT, conflict, delete_staged=False)
    return None


TOKEN_WAIT = timedelta(seconds=1)


def _stage_account(builder: _Builder, spec: model.RotationSpec, rotation: Obj) -> Plan | None:
    """Create the new ServiceAccount version, its tokens and its bindings; None once all are in place.

    The new account joins exactly the bindings of the account in use: it is never
    granted anything the old one did not have.
    """
    assert spec.service_account is not None
    observed, namespace = builder.observed, builder.resource.namespace
    staged_name: str = rotation["secret"]
    revision = int(rotation["revision"])
    previous = observed.account(rotation.get("previousSecret"))
    carry = accounts.bindings_of(previous.name, namespace, observed.bindings) if previous else []
    staged = observed.account(staged_name)
    if staged is None:
        if carry and not observed.can_bind:
            listed = ", ".join(f"{b['kind']}/{b['metadata']['name']}" for b in carry)
            message = (
                f"namespace {namespace} has not opted in to ServiceAccount rotation: the account in use is bound by "
                f"{listed}, and the operator may not add subjects there (see deploy/rbac-serviceaccounts.yaml)"
            )
            return _abort(builder, spec, Reason.BINDING_NOT_PERMITTED, message, delete_staged=False)
        builder.actions.append(CreateAccount(staged_name, revision, previous))
        _in_flight(builder, Reason.STAGING, f"staging ServiceAccount {staged_name}")
        return builder.done(requeue=True)
    if any(staged.labels.get(k) != v for k, v in names.version_labels(builder.resource.name, revision).items()):
        message = f"ServiceAccount {staged_name} exists but was not staged by this rotation; rename or remove it"
        return _abort(builder, spec, Reason.STAGED_VERSION_CONFLICT, message, delete_staged=False)
    waiting = _tokens_pending(builder, spec, staged, revision)
    if waiting is not None:
        _in_flight(builder, Reason.STAGING, waiting)
        return builder.done(requeue=bool(builder.actions), wake_at=builder.now + TOKEN_WAIT)
    missing = [
        b for b in carry if not any(accounts.is_subject(s, staged_name, namespace) for s in b.get("subjects") or [])
    ]
    for binding in missing:
        operations = tuple(accounts.add_subject_patch(binding, staged_name, namespace))
        builder.actions.append(PatchBinding(binding["kind"], binding["metadata"]["name"], operations))
    builder.status["rotation"] = {
        **rotation,
        "bindings": [{"kind": b["kind"], "name": b["metadata"]["name"]} for b in carry],
    }
    if missing:
        _in_flight(builder, Reason.STAGING, f"adding {staged_name} to {len(missing)} bindings")
        return builder.done(requeue=True)
    return None


def _tokens_pending(
    builder: _Builder,
    spec: model.RotationSpec,
    staged: accounts.AccountState,
    revision: int,
) -> str | None:
    """What the new account still waits for before pods may use it, or None.

    Clusters before 1.24 give every account a token Secret, and the ServiceAccount
    admission plugin refuses pods until it exists: switching earlier would fail the
    rollout for a reason that has nothing to do with the rotation.
    """
    assert spec.service_account is not None
    if spec.service_account.token_secret:
        token = builder.observed.secret(accounts.token_secret_name(staged.name))
        if token is None:
            builder.actions.append(CreateTokenSecret(staged.name, revision))
            return f"creating the token Secret of {staged.name}"
        if "token" not in token.keys:
            return f"waiting for the token controller to fill {token.name}"
    if builder.observed.auto_tokens:
        filled = [name for name in staged.secrets if "token" in getattr(builder.observed.secret(name), "keys", ())]
        if not filled:
            return f"waiting for the token controller to give {staged.name} its token"
    return None


def _staged_conflict(builder: _Builder, spec: model.RotationSpec, staged: SecretState, revision: int) -> str | None:
    """Why an existing Secret with the staged name may not be adopted, or None when it is ours and intact."""
    expected_labels = names.version_labels(builder.resource.name, revision)
    if any(staged.labels.get(k) != v for k, v in expected_labels.items()):
        return f"Secret {staged.name} exists but was not staged by this rotation; rename or remove it"
    if not staged.immutable or staged.type != str(spec.secret_type):
        return f"Secret {staged.name} exists but is not an intact immutable {spec.secret_type} version"
    expected_keys = (
        frozenset(r.key for r in spec.generate) if spec.from_secret is None else builder.observed.from_secret_keys
    )
    if expected_keys is not None and staged.keys != expected_keys:
        return f"Secret {staged.name} exists but its keys differ from the spec"
    return None


def _resolve_targets(
    builder: _Builder, spec: model.RotationSpec, rotation: Obj
) -> tuple[list[dict[str, Any]], list[tuple[Reason, str]]]:
    """The workloads to switch with their exact changes, and any problem that must stop the rotation."""
    objects = builder.observed.objects
    staged_name = rotation["secret"]
    old_names = [n for n in dict.fromkeys([rotation.get("previousSecret"), spec.base_name]) if n and n != staged_name]
    staged = builder.observed.secret(staged_name)
    staged_keys = staged.keys if staged else frozenset()
    targets: list[dict[str, Any]] = []
    problems: list[tuple[Reason, str]] = []
    candidates = _all_workloads(objects)
    if spec.targets is not None:
        selected = [
            w
            for w in candidates
            if any(t.matches(w["kind"], w["metadata"]["name"], w["metadata"].get("labels") or {}) for t in spec.targets)
        ]
        if not selected:
            builder.event("TargetsMatchNothing", "spec.targets match no workload in the namespace", warning=True)
    else:
        selected = candidates
    _report_untracked(builder, spec, old_names, [w for w in candidates if w not in selected])
    for workload in sorted(selected, key=lambda w: (w["kind"], w["metadata"]["name"])):
        kind, name = workload["kind"], workload["metadata"]["name"]
        pod_spec = references.pod_spec_of(workload)
        consumed = [old for old in old_names if uses(spec, pod_spec, old)]
        if not consumed:
            if spec.targets is not None:
                builder.event("TargetNotConsuming", f"{_label(kind, name)} does not reference {spec.base_name}")
            continue
        if kind == "Deployment" and (workload.get("spec") or {}).get("paused"):
            problems.append(
                (Reason.TARGET_PAUSED, f"{_label(kind, name)} is paused and would not roll; nothing was switched")
            )
            continue
        for old in consumed if spec.service_account is None else ():
            for missing in references.missing_keys(pod_spec, old, staged_keys):
                problems.append(
                    (
                        Reason.MISSING_KEY,
                        f"{_label(kind, name)}: {missing.ref.where} needs key {missing.key!r}, "
                        f"which {staged_name} does not hold; nothing was switched",
                    )
                )
        account = spec.service_account
        changes = template_changes(
            workload, consumed, staged_name, service_account=account is not None,
            token_secret=account is not None and account.token_secret,
        )  # fmt: skip
        targets.append(
            {
                "kind": kind,
                "name": name,
                "changes": [{"path": c.path, "from": c.old, "to": c.new} for c in changes],
                "switched": False,
            }
        )
    return targets, problems


def _report_untracked(
    builder: _Builder, spec: model.RotationSpec, old_names: Sequence[str], unselected: Sequence[Obj]
) -> None:
    """Consumers of the version in use that this rotation will not switch: latent references.

    They keep that version from being collected, and would break at their next deploy if
    it went; so they are named at every rotation, not discovered at the next outage.
    Jobs and CronJobs are never switched (a Job's template is immutable).
    """
    objects = builder.observed.objects
    others = [
        *unselected,
        *({**job, "kind": "Job"} for job in objects.jobs),
        *({**cron, "kind": "CronJob"} for cron in objects.cron_jobs),
    ]
    untracked = [
        {"kind": w["kind"], "name": w["metadata"]["name"]}
        for w in others
        if any(uses(spec, references.pod_spec_of(w), old) for old in old_names)
    ]
    if not untracked:
        builder.status.pop("untrackedReferences", None)
        return
    builder.status["untrackedReferences"] = untracked[:MAX_UNTRACKED]
    listed = guard.describe([guard.Referrer(u["kind"], u["name"]) for u in untracked])
    builder.event(
        "UntrackedReferences",
        f"{listed} reference {' or '.join(old_names)} but are not targets: that version stays until they move",
        warning=True,
    )


def _changes(target: Obj) -> tuple[Change, ...]:
    return tuple(Change(c["path"], c["from"], c["to"]) for c in target.get("changes") or [])


def _rolling_out(builder: _Builder, spec: model.RotationSpec) -> Plan:
    rotation = dict(builder.status["rotation"])
    targets = [dict(t) for t in rotation["targets"]]
    for target in targets:
        workload = _workload(builder.observed.objects, target["kind"], target["name"])
        changes = _changes(target)
        values = [value_at(workload, c.path) for c in changes] if workload is not None else []
        if workload is not None and all(v == c.new for v, c in zip(values, changes, strict=True)):
            target["switched"] = True
        elif workload is not None and all(v == c.old for v, c in zip(values, changes, strict=True)):
            builder.actions.append(PatchWorkload(target["kind"], target["name"], changes))
            target["switched"] = True
        else:
            # Record what this step did switch, so that the rollback reverts it.
            builder.status["rotation"] = {**rotation, "targets": targets}
            problem = "disappeared" if workload is None else "was changed by someone else"
            return _fail(
                builder,
                spec,
                Reason.VERIFICATION_FAILED,
                f"{_label(target['kind'], target['name'])} {problem} during the rollout",
            )
    rotation["targets"] = targets
    builder.status["rotation"] = rotation
    builder.status["phase"] = Phase.VERIFYING.value
    for target in targets:
        builder.event("RollingOut", f"{_label(target['kind'], target['name'])} switched to {rotation['secret']}")
    _in_flight(builder, Reason.VERIFYING, f"verifying {len(targets)} workloads on {rotation['secret']}")
    return builder.done(requeue=True)


@dataclass(frozen=True)
class TargetHealth:
    done: bool
    failed: bool
    message: str
    wake_at: datetime | None = None


def target_health(
    workload: Obj, spec: model.RotationSpec, new: str, observed: Observed, stable_for: timedelta
) -> TargetHealth:
    """Is this switched workload rolled out on version ``new`` with every new pod Ready and stable?"""
    kind, name = workload["kind"], workload["metadata"]["name"]
    label = _label(kind, name)
    status = rollout.rollout_status(workload)
    if status.failed:
        return TargetHealth(False, True, f"{label}: {status.reason}: {status.message}")
    failure = _replica_failure(workload, observed)
    if failure:
        return TargetHealth(False, True, f"{label}: {failure}")
    pods = [
        p
        for p in _pods_of(workload, observed.objects.pods)
        if uses(spec, references.pod_spec_of({**p, "kind": "Pod"}), new)
    ]
    wake_at = None
    waiting: list[str] = []
    for pod in pods:
        verdict = rollout.pod_verdict(
            pod,
            now=observed.now,
            stable_for=stable_for,
            mount_failure_since=observed.mount_failures.get(pod["metadata"]["name"]),
            mount_grace=MOUNT_GRACE,
        )
        if verdict.state is rollout.PodState.FAILED:
            return TargetHealth(False, True, f"{label}: pod {verdict.pod}: {verdict.reason}")
        if verdict.state is rollout.PodState.WAITING:
            waiting.append(f"pod {verdict.pod} {verdict.reason}")
            wake_at = _earliest(wake_at, _stable_at(pod, stable_for), _mount_deadline(pod, observed))
    if status.unsupported:
        return TargetHealth(False, True, f"{label}: {status.message}")
    if not status.done:
        return TargetHealth(False, False, f"{label}: {status.message}", wake_at)
    if waiting:
        return TargetHealth(False, False, f"{label}: " + ", ".join(waiting[:3]), wake_at)
    return TargetHealth(True, False, f"{label}: rolled out, new pods Ready and stable")


def _stable_at(pod: Obj, stable_for: timedelta) -> datetime | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            since = parse_time(condition.get("lastTransitionTime"))
            return since + stable_for if since else None
    return None


def _mount_deadline(pod: Obj, observed: Observed) -> datetime | None:
    since = observed.mount_failures.get(pod["metadata"]["name"])
    return since + MOUNT_GRACE if since else None


def _replica_failure(workload: Obj, observed: Observed) -> str | None:
    """A ReplicaSet of this Deployment that cannot create pods (e.g. admission refused them)."""
    if workload["kind"] != "Deployment":
        return None
    uid = workload["metadata"].get("uid")
    for rs in observed.objects.replica_sets:
        owners = rs["metadata"].get("ownerReferences") or []
        if not any(o.get("uid") == uid for o in owners):
            continue
        for condition in (rs.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
                return f"ReplicaSet {rs['metadata']['name']}: {condition.get('reason', 'ReplicaFailure')}"
    return None


def _target_status(kind: str, name: str, secret: str | None, state: str, message: str) -> dict[str, str]:
    report = {"kind": kind, "name": name, "state": state, "message": conditions.truncate(message)}
    if secret:
        report["secret"] = secret
    return report


def _verifying(builder: _Builder, spec: model.RotationSpec) -> Plan:
    rotation = builder.status["rotation"]
    new = rotation["secret"]
    deadline = parse_time(rotation.get("deadline"))
    reports: list[dict[str, str]] = []
    pending: list[str] = []
    wake_at = deadline
    for target in rotation["targets"]:
        workload = _workload(builder.observed.objects, target["kind"], target["name"])
        if workload is None:
            return _fail(
                builder,
                spec,
                Reason.VERIFICATION_FAILED,
                f"{_label(target['kind'], target['name'])} disappeared during verification",
            )
        health = target_health(workload, spec, new, builder.observed, spec.verify.stable_for)
        if health.failed:
            return _fail(builder, spec, Reason.VERIFICATION_FAILED, health.message)
        state = "Verified" if health.done else "Verifying"
        reports.append(_target_status(target["kind"], target["name"], new, state, health.message))
        if not health.done:
            pending.append(health.message)
            wake_at = _earliest(wake_at, health.wake_at)
    builder.status["targets"] = reports[:MAX_STATUS_TARGETS]
    if pending:
        if deadline is not None and builder.now >= deadline:
            return _fail(
                builder,
                spec,
                Reason.VERIFICATION_FAILED,
                f"not verified within {model.format_duration(spec.verify.timeout)}: {pending[0]}",
            )
        _in_flight(builder, Reason.VERIFYING, "; ".join(pending[:3]))
        return builder.done(wake_at=wake_at)
    for target in rotation["targets"]:
        builder.event("Verified", f"{_label(target['kind'], target['name'])} verified on {new}")
    return _promote(builder, spec)


def _promote(builder: _Builder, spec: model.RotationSpec) -> Plan:
    rotation = builder.status["rotation"]
    now = builder.now
    previous = rotation.get("previousSecret")
    status = builder.status
    status["revision"] = rotation["revision"]
    status["currentSecret"] = rotation["secret"]
    status["lastRotationTime"] = timestamp(now)
    next_time = next_rotation_after_success(spec, now)
    if next_time:
        status["nextRotationTime"] = timestamp(next_time)
    else:
        status.pop("nextRotationTime", None)
    for key in ("consecutiveFailures", "lastFailure", "lastFailureTime", "failedGeneration"):
        status.pop(key, None)
    if previous == spec.base_name:
        status["adoptedSecret"] = {"name": spec.base_name, "referenced": True}
    status["phase"] = Phase.COLLECTING_GARBAGE.value
    builder.event("Promoted", f"{rotation['secret']} is now in use (revision {rotation['revision']})")
    _in_flight(builder, Reason.COLLECTING_GARBAGE, "collecting old versions")
    return builder.done(requeue=True)


def _collecting_garbage(builder: _Builder, spec: model.RotationSpec) -> Plan:
    return _collect(builder, spec, finish=True)


def _collect(builder: _Builder, spec: model.RotationSpec, *, finish: bool) -> Plan:
    """Delete versions beyond ``retain``, each only past the reference guard."""
    status = builder.status
    current = status.get("currentSecret")
    retired = (status.get("rotation") or {}).get("previousSecret") if finish else None
    # An adopted base Secret was not created by this rotation: it is reported, never collected.
    candidates = [retired] if retired and retired != spec.base_name else []
    previous = [n for n in dict.fromkeys([*candidates, *(status.get("retainedSecrets") or [])]) if n != current]
    previous.sort(key=lambda n: names.parse_revision(spec.base_name, n) or 0, reverse=True)
    keep, drop = previous[: spec.retain], previous[spec.retain :]
    drop += [e["name"] for e in status.get("pendingDeletion") or [] if e["name"] not in drop and e["name"] != current]
    blocked: list[dict[str, str]] = []
    for name in drop:
        verdict, removal = _removal(builder, spec, name, current)
        if verdict is None:
            continue  # already gone
        if verdict.deletable:
            builder.actions.extend(removal)
            builder.event("GarbageCollected", f"deleted {spec.credential_kind} {name}")
        elif verdict.reason == "NotOwned":
            builder.event("NotCollected", verdict.message, warning=True)
        else:
            blocked.append({"name": name, "reason": verdict.reason, "message": conditions.truncate(verdict.message)})
            if not any(
                e.get("name") == name and e.get("message") == verdict.message
                for e in builder.resource.status.get("pendingDeletion") or []
            ):
                builder.event("CollectionBlocked", verdict.message, warning=True)
    status["retainedSecrets"] = keep
    status["pendingDeletion"] = blocked
    _check_adopted(builder, spec)
    if finish:
        status["phase"] = Phase.IDLE.value
        status.pop("rotation", None)
    builder.conditions(*_previous_failure(builder))
    # Watches on pods, workloads, Jobs and ServiceAccounts retry a blocked deletion; CronJobs
    # are not watched (their API version differs across clusters), so look again now and then.
    recheck = builder.now + BLOCKED_RECHECK if blocked else None
    return builder.done(wake_at=_earliest(parse_time(status.get("nextRotationTime")), recheck))


def _removal(
    builder: _Builder, spec: model.RotationSpec, name: str, in_use: str | None
) -> tuple[guard.Verdict | None, list[Action]]:
    """The guard's verdict on deleting version ``name``, and the actions that delete it.

    A ServiceAccount goes in order: out of every binding, then its token Secret,
    then the account. The verdict is None when the version is already gone.
    """
    observed, rotation_name = builder.observed, builder.resource.name
    if spec.service_account is None:
        secret = observed.secret(name)
        if secret is None:
            return None, []
        candidate = guard.Candidate(name, secret.labels, rotation_name, in_use)
        return guard.judge(candidate, observed.objects), [DeleteSecret(name, secret.resource_version)]
    account = observed.account(name)
    token = observed.secret(accounts.token_secret_name(name))
    own_token = token if token is not None and token.labels.get(names.ROTATION_LABEL) == rotation_name else None
    if account is None:
        # Interrupted after the account went: finish with its token.
        return (
            (guard.Verdict(True, "Unreferenced", name), [DeleteSecret(own_token.name, own_token.resource_version)])
            if own_token
            else (None, [])
        )
    candidate = guard.Candidate(name, account.labels, rotation_name, in_use, kind="ServiceAccount")
    verdict = guard.judge(candidate, observed.objects, accounts.CHAIN)
    switched = parse_time(builder.status.get("lastRotationTime"))
    tokens = [t for t in (own_token, *(observed.secret(n) for n in account.secrets)) if t is not None]
    # Deleting an account deletes the token Secrets the controller made for it: none may still be mounted.
    mounted = [r for token_name in account.secrets for r in guard.referrers_of(token_name, observed.objects)]
    if verdict.deletable and mounted:
        message = f"a token Secret of ServiceAccount {name} is still mounted by {guard.describe(mounted)}"
        verdict = guard.Verdict(False, "StillReferenced", message, tuple(mounted))
    if verdict.deletable and switched and any(accounts.token_used_since(t.labels, switched) for t in tokens):
        message = f"the token of ServiceAccount {name} was used after the switch, by a consumer outside the cluster"
        verdict = guard.Verdict(False, "TokenInUse", message)
    namespace = builder.resource.namespace
    actions: list[Action] = [
        PatchBinding(b["kind"], b["metadata"]["name"], tuple(accounts.remove_subject_patch(b, name, namespace)))
        for b in accounts.bindings_of(name, namespace, observed.bindings)
    ]
    if own_token:
        actions.append(DeleteSecret(own_token.name, own_token.resource_version))
    actions.append(DeleteAccount(name, account.resource_version))
    return verdict, actions


def _check_adopted(builder: _Builder, spec: model.RotationSpec) -> None:
    adopted = builder.status.get("adoptedSecret")
    if not adopted or not adopted.get("referenced"):
        return
    if _referrers(spec, adopted["name"], builder.observed.objects):
        return
    builder.status["adoptedSecret"] = {"name": adopted["name"], "referenced": False}
    builder.event(
        "AdoptedSecretUnreferenced",
        f"{spec.credential_kind} {adopted['name']} (adopted, not created by this rotation) is no longer referenced; "
        "it is left in place for you to remove",
    )


# -- failure and rollback ---------------------------------------------------------------------


def _abort(
    builder: _Builder,
    spec: model.RotationSpec,
    reason: Reason,
    message: str,
    *,
    delete_staged: bool = True,
    announce: bool = True,
) -> Plan:
    """Stop a rotation that switched nothing: drop the staged version (past the guard) and report."""
    rotation = builder.status["rotation"]
    if delete_staged:
        verdict, removal = _removal(builder, spec, rotation["secret"], builder.status.get("currentSecret"))
        if verdict is not None and verdict.deletable:
            builder.actions.extend(removal)
        elif verdict is not None and verdict.reason != "NotOwned":
            pending = list(builder.status.get("pendingDeletion") or [])
            pending.append({"name": rotation["secret"], "reason": verdict.reason, "message": verdict.message})
            builder.status["pendingDeletion"] = pending
            builder.event("CollectionBlocked", verdict.message, warning=True)
    return _finish_failed(builder, spec, reason, message, announce=announce)


def _fail(builder: _Builder, spec: model.RotationSpec, reason: Reason, message: str) -> Plan:
    """Verification failed: record why, and roll back every switched target."""
    rotation = dict(builder.status["rotation"])
    rotation["failure"] = {"reason": str(reason), "message": conditions.truncate(message)}
    rotation["rollbackStartedAt"] = timestamp(builder.now)
    builder.status["rotation"] = rotation
    builder.status["phase"] = Phase.ROLLING_BACK.value
    builder.event("RotationFailed", message, warning=True)
    _in_flight(builder, Reason.ROLLING_BACK, f"rolling back: {message}")
    return builder.done(requeue=True)


def _rolling_back(builder: _Builder, spec: model.RotationSpec) -> Plan:
    rotation = builder.status["rotation"]
    failure = rotation.get("failure") or {"reason": Reason.VERIFICATION_FAILED, "message": "rollback"}
    started = parse_time(rotation.get("rollbackStartedAt")) or builder.now
    pending: list[str] = []
    for target in rotation["targets"]:
        if not target.get("switched"):
            continue
        label = _label(target["kind"], target["name"])
        workload = _workload(builder.observed.objects, target["kind"], target["name"])
        if workload is None:
            continue
        changes = _changes(target)
        values = [value_at(workload, c.path) for c in changes]
        if all(v == c.new for v, c in zip(values, changes, strict=True)):
            reverse = tuple(Change(c.path, c.new, c.old) for c in changes)
            builder.actions.append(PatchWorkload(target["kind"], target["name"], reverse))
            pending.append(f"{label}: reverting")
            continue
        if not all(v == c.old for v, c in zip(values, changes, strict=True)):
            return _rollback_stalled(builder, spec, f"{label} was changed by someone else; cannot revert it safely")
        pending += _rollback_progress(builder, spec, workload, rotation["secret"])
    if pending:
        if builder.now - started >= spec.verify.timeout:
            return _rollback_stalled(
                builder,
                spec,
                f"rollback not complete within {model.format_duration(spec.verify.timeout)}: {pending[0]}",
            )
        _in_flight(builder, Reason.ROLLING_BACK, f"rolling back: {failure['message']}; " + "; ".join(pending[:3]))
        return builder.done(requeue=bool(builder.actions), wake_at=started + spec.verify.timeout)
    builder.event("RolledBack", f"every target is back on {rotation.get('previousSecret')}")
    return _abort(builder, spec, Reason(failure["reason"]), str(failure["message"]), announce=False)


def _rollback_progress(builder: _Builder, spec: model.RotationSpec, workload: Obj, failed: str) -> list[str]:
    """What a reverted workload still waits for; deletes StatefulSet pods stuck on the failed revision."""
    label = _label(workload["kind"], workload["metadata"]["name"])
    pods = _pods_of(workload, builder.observed.objects.pods)
    stuck = [
        p
        for p in pods
        if uses(spec, references.pod_spec_of({**p, "kind": "Pod"}), failed)
        and not p["metadata"].get("deletionTimestamp")
    ]
    if workload["kind"] == "StatefulSet":
        # OrderedReady StatefulSets never replace a pod stuck on a broken revision
        # by themselves (kubernetes/kubernetes#67250): delete it once reverted.
        for pod in stuck:
            builder.actions.append(DeletePod(pod["metadata"]["name"], pod["metadata"]["uid"]))
    status = rollout.rollout_status(workload)
    waiting = []
    if stuck:
        waiting.append(f"{label}: {len(stuck)} pods still on {failed}")
    elif not status.done and not status.unsupported:
        waiting.append(f"{label}: {status.message}")
    return waiting


def _rollback_stalled(builder: _Builder, spec: model.RotationSpec, message: str) -> Plan:
    builder.event("RollbackFailed", message, warning=True)
    builder.conditions(
        Condition("Ready", False, Reason.ROLLBACK_FAILED, message),
        Condition("Stalled", True, Reason.ROLLBACK_FAILED, message),
    )
    return builder.done()


def _finish_failed(
    builder: _Builder, spec: model.RotationSpec, reason: Reason, message: str, *, announce: bool
) -> Plan:
    status = builder.status
    rotation = status.get("rotation") or {}
    switched = [t for t in rotation.get("targets") or [] if t.get("switched")]
    if switched:
        back_on = rotation.get("previousSecret")
        status["targets"] = [_target_status(t["kind"], t["name"], back_on, "RolledBack", message) for t in switched][
            :MAX_STATUS_TARGETS
        ]
    failures = int(status.get("consecutiveFailures") or 0) + 1
    status["consecutiveFailures"] = failures
    status["lastFailureTime"] = timestamp(builder.now)
    status["lastFailure"] = {"reason": str(reason), "message": conditions.truncate(message)}
    status["failedGeneration"] = int(rotation.get("generation") or builder.resource.generation)
    retry = next_attempt_after_failure(spec, builder.now, failures)
    if retry:
        status["nextRotationTime"] = timestamp(retry)
    else:
        status.pop("nextRotationTime", None)
    status["phase"] = Phase.IDLE.value
    status.pop("rotation", None)
    if announce:
        builder.event("RotationFailed", message, warning=True)
    builder.conditions(
        Condition("Ready", False, Reason.ROTATION_FAILED, message),
        Condition("Stalled", True, reason, message),
    )
    return builder.done(wake_at=retry)
