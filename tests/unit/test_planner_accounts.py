"""Behaviour of a ServiceAccount rotation in secretrotation.core.planner, stepped through a simulated namespace.

``Namespace`` stands in for a namespace of Kubernetes 1.24 or later: no account
gets a token Secret by itself, the token controller fills each token Secret that
names an account (one step after it appears), and pods get a bound token through a
projected volume. An account made before 1.24 may still list a legacy token Secret.
It also holds RoleBindings, Deployments and their pods. ``AccountRotation`` stands in for the shell: observe as
``cluster.observe`` does, plan, perform the actions with the preconditions the
shell sends, then write the status the plan returned.

After every step the namespace is checked for what must never happen (nothing
dangles, no workload runs as an account that lacks a token or a binding of the
account it replaced), and the status for the conventions every status follows.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from planning import planner_step
from secretrotation.core import accounts, names, objects, references, world
from secretrotation.core.plan import (
    Action,
    CreateAccount,
    CreateTokenSecret,
    DeleteAccount,
    DeleteSecret,
    PatchBinding,
    PatchWorkload,
    Plan,
)
from secretrotation.core.record import Phase
from secretrotation.core.world import AccountState, Observed, Resource, SecretState
from statuscheck import assert_conventions

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
NAMESPACE = "ci"
ROTATION = "deployer"
BASE = "deployer"
STABLE_FOR = timedelta(minutes=5)  # how long a new pod has been Ready when a step first sees it
TOKEN_KEYS = frozenset({"token", "ca.crt", "namespace"})
# Who binds what before any rotation: the account in use by two bindings (one shared),
# and three bindings it is not in, one of which names a *User* deployer and one the
# deployer account of another namespace.
BINDINGS: dict[str, list[tuple[str, str, str]]] = {
    "deployer-reads": [("ServiceAccount", BASE, NAMESPACE)],
    "shared-reads": [("ServiceAccount", "other", NAMESPACE), ("ServiceAccount", BASE, NAMESPACE)],
    "other-admin": [("ServiceAccount", "other", NAMESPACE)],
    "user-deployer": [("User", BASE, "")],
    "foreign-deployer": [("ServiceAccount", BASE, "elsewhere")],
}
CARRIED = ("deployer-reads", "shared-reads")
UNTOUCHED = ("other-admin", "user-deployer", "foreign-deployer")


def ts(moment: datetime) -> str:
    return objects.timestamp(moment)


def account_spec(*, token_secret: bool = True, retain: int = 0) -> dict[str, Any]:
    return {
        "serviceAccount": {"name": BASE, "tokenSecret": token_secret},
        "verify": {"timeout": "10m", "stableFor": "30s"},
        "retain": retain,
    }


def running_as(account: str, *, token: str | None = None) -> dict[str, Any]:
    """A pod spec running as ``account``, mounting the token Secret ``token`` if given."""
    pod_spec: dict[str, Any] = {"serviceAccountName": account, "containers": [{"name": "app", "image": "ci:1"}]}
    if token:
        pod_spec["volumes"] = [{"name": "token", "secret": {"secretName": token}}]
    return pod_spec


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


def subject_names(binding: Mapping[str, Any]) -> list[str]:
    return sorted(s["name"] for s in binding.get("subjects") or [] if s["kind"] == "ServiceAccount")


# --- a simulated namespace ---------------------------------------------------------------------


@dataclass
class Namespace:
    """ServiceAccounts, token Secrets, RoleBindings, Deployments and pods, as the operator sees them."""

    now: datetime = T0
    accounts: dict[str, AccountState] = field(default_factory=dict)
    secrets: dict[str, SecretState] = field(default_factory=dict)
    token_owner: dict[str, str] = field(default_factory=dict)  # token Secret -> its account
    bindings: dict[str, dict[str, Any]] = field(default_factory=dict)
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)
    operator_let_in: bool = True  # a Role grants the operator patch and bind on the consenting bindings
    fill_tokens: bool = True  # the token controller fills token Secrets
    crashing_accounts: set[str] = field(default_factory=set)  # pods running as these crash-loop
    last_resource_version: int = 100
    performed: list[Action] = field(default_factory=list)

    def _resource_version(self) -> str:
        self.last_resource_version += 1
        return str(self.last_resource_version)

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    # -- building -----------------------------------------------------------------------------

    def add_account(self, name: str, *, legacy_token: str | None = None) -> None:
        """An account as a user made it; ``legacy_token`` is a token Secret it lists (made before 1.24)."""
        tokens = (legacy_token,) if legacy_token else ()
        self.accounts[name] = AccountState(name, {}, {}, tokens, (), None, self._resource_version())
        if legacy_token:
            self.add_token_secret(legacy_token, name)

    def add_token_secret(self, name: str, account: str, labels: Mapping[str, str] | None = None) -> None:
        """A long-lived token Secret of ``account``, filled."""
        self.secrets[name] = SecretState(
            name, dict(labels or {}), TOKEN_KEYS, False, accounts.TOKEN_TYPE, self._resource_version()
        )
        self.token_owner[name] = account

    def add_binding(self, name: str, subjects: Sequence[tuple[str, str, str]]) -> None:
        entries = [
            {
                "kind": kind,
                "name": who,
                **({"namespace": ns} if ns else {}),
                **({"apiGroup": "rbac.authorization.k8s.io"} if kind == "User" else {}),
            }
            for kind, who, ns in subjects
        ]
        self.bindings[name] = {
            "kind": "RoleBinding",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "resourceVersion": self._resource_version(),
                "annotations": {names.EXTEND_BINDING_ANNOTATION: "true"},
            },
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": entries,
        }

    def add_deployment(self, name: str, pod_spec: dict[str, Any]) -> None:
        """A Deployment of one replica, already rolled out with a Ready, stable pod."""
        labels = {"app": name}
        spec = {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        }
        metadata = {"name": name, "namespace": NAMESPACE, "uid": f"uid-{name}", "generation": 1}
        self.deployments[name] = {"metadata": metadata, "spec": spec, "status": {}}
        self.roll_out(name)

    def add_lone_pod(self, name: str, pod_spec: dict[str, Any]) -> None:
        """A Pod no workload owns (a debugging shell someone started by hand)."""
        metadata = {"name": name, "namespace": NAMESPACE, "uid": f"uid-{name}", "labels": {"run": name}}
        self.pods[name] = {"metadata": metadata, "spec": self._admitted(pod_spec), "status": ready_pod_status(self.now)}

    # -- controllers ------------------------------------------------------------------------

    def token_controller(self) -> None:
        """Every token Secret is filled; since 1.24 none is made for an account by itself."""
        for name, secret in list(self.secrets.items()):
            if self.fill_tokens and secret.type == accounts.TOKEN_TYPE and not secret.keys:
                self.secrets[name] = replace(secret, keys=TOKEN_KEYS, resource_version=self._resource_version())

    def _admitted(self, pod_spec: Mapping[str, Any]) -> dict[str, Any]:
        """The ServiceAccount admission plugin: refuses a pod whose account is missing, then mounts a bound token."""
        account = references.service_account_name(pod_spec)
        assert account in self.accounts, f"admission refused a pod: ServiceAccount {account} does not exist"
        admitted = copy.deepcopy(dict(pod_spec))
        bound_token = {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}
        admitted.setdefault("volumes", []).append({"name": "kube-api-access", "projected": {"sources": [bound_token]}})
        return admitted

    def roll_out(self, name: str) -> None:
        """The Deployment controller and kubelet: a pod of the current template, Ready and stable, or crash-looping.

        A crash-looping pod joins the old one, as a rolling update leaves it.
        """
        deployment = self.deployments[name]
        template = deployment["spec"]["template"]
        generation = deployment["metadata"]["generation"]
        crashing = references.service_account_name(template["spec"]) in self.crashing_accounts
        if not crashing:
            for old in [n for n, p in self.pods.items() if p["metadata"]["labels"].get("app") == name]:
                del self.pods[old]
        pod = f"{name}-g{generation}"
        self.pods[pod] = {
            "metadata": {"name": pod, "namespace": NAMESPACE, "uid": f"uid-{pod}", "labels": {"app": name}},
            "spec": self._admitted(template["spec"]),
            "status": copy.deepcopy(CRASHING_POD_STATUS) if crashing else ready_pod_status(self.now - STABLE_FOR),
        }
        status: dict[str, Any] = {"observedGeneration": generation, "replicas": 1, "updatedReplicas": 1}
        status.update({"readyReplicas": 1, "availableReplicas": 1})
        if crashing:
            status["replicas"] = 2
        else:
            status["conditions"] = [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]
        deployment["status"] = status

    # -- the shell's side ----------------------------------------------------------------------

    def observe(self, resource: Resource, needs: world.Needs) -> Observed:
        """What ``cluster.observe`` gathers: accounts and Secrets by name only, every RoleBinding, copies.

        Only the facts in ``needs``, as the shell: a phase that reads one it did not ask for fails.
        """
        self.token_controller()
        objects = world.NamespaceObjects(
            pods=copy.deepcopy(list(self.pods.values())),
            deployments=copy.deepcopy(list(self.deployments.values())),
            service_accounts=[
                {"metadata": {"name": a.name}, "secrets": [{"name": s} for s in a.secrets]}
                for a in self.accounts.values()
            ],
            cron_jobs=() if world.Fact.CRON_JOBS in needs.facts else None,
        )
        facts = needs.facts
        return Observed(
            now=self.now,
            objects=objects,
            secrets={n: self.secrets.get(n) for n in needs.secrets},
            service_accounts={n: self.accounts.get(n) for n in needs.accounts},
            mount_failures={} if world.Fact.MOUNT_FAILURES in facts else None,
            bindings=copy.deepcopy(tuple(self.bindings.values())) if world.Fact.BINDINGS in facts else None,
            fresh=world.Fact.FRESH in facts,
            extendable_bindings=frozenset(self.bindings) if self.operator_let_in else frozenset(),
            nonce=f"nonce-{self._resource_version()}",
        )

    def perform(self, rotation: str, action: Action) -> None:
        """The API call, with the precondition the real shell sends; a 409 on create and a 404 on delete are done."""
        self.performed.append(action)
        if isinstance(action, CreateAccount):
            self._create_account(rotation, action)
        elif isinstance(action, CreateTokenSecret):
            self._create_token_secret(rotation, action)
        elif isinstance(action, PatchBinding):
            self._patch_binding(action)
        elif isinstance(action, PatchWorkload):
            self._patch_workload(action)
        elif isinstance(action, DeleteSecret):
            self._delete_secret(action)
        elif isinstance(action, DeleteAccount):
            self._delete_account(action)
        else:
            raise AssertionError(f"not an action of a Deployment's account rotation: {action}")

    def _create_account(self, rotation: str, action: CreateAccount) -> None:
        if action.name in self.accounts:
            return
        manifest = accounts.account_manifest(action.name, rotation, action.revision, action.source, action.nonce)
        self.accounts[action.name] = AccountState(
            name=action.name,
            labels=manifest["metadata"]["labels"],
            annotations=manifest["metadata"].get("annotations") or {},
            secrets=(),  # the token controller adds one at the next step
            image_pull_secrets=tuple(s["name"] for s in manifest.get("imagePullSecrets") or []),
            automount=manifest.get("automountServiceAccountToken"),
            resource_version=self._resource_version(),
        )

    def _create_token_secret(self, rotation: str, action: CreateTokenSecret) -> None:
        manifest = accounts.token_secret_manifest(action.account, rotation, action.revision, action.nonce)
        name = manifest["metadata"]["name"]
        assert action.account in self.accounts, f"{name} made for a missing account: the token controller deletes it"
        if name not in self.secrets:
            labels = manifest["metadata"]["labels"]
            annotations = manifest["metadata"]["annotations"]
            self.secrets[name] = SecretState(
                name, labels, frozenset(), False, manifest["type"], self._resource_version(), annotations
            )
            self.token_owner[name] = action.account

    def _delete_secret(self, action: DeleteSecret) -> None:
        existing = self.secrets.get(action.name)
        if existing is not None:
            assert existing.resource_version == action.resource_version, f"stale delete of Secret {action.name}"
            del self.secrets[action.name]

    def _delete_account(self, action: DeleteAccount) -> None:
        existing = self.accounts.get(action.name)
        if existing is None:
            return
        assert existing.resource_version == action.resource_version, f"stale delete of {action.name}"
        del self.accounts[action.name]
        # The token controller deletes every token Secret of a deleted account.
        for token in [t for t, owner in self.token_owner.items() if owner == action.name]:
            self.secrets.pop(token, None)
            del self.token_owner[token]

    def _patch_binding(self, action: PatchBinding) -> None:
        assert action.kind == "RoleBinding", action
        binding = self.bindings[action.name]
        subjects = list(binding.get("subjects") or [])
        for op in action.operations:
            if op["op"] == "test":
                assert op["path"] == "/metadata/resourceVersion", op
                assert binding["metadata"]["resourceVersion"] == op["value"], f"stale patch of {action.name}"
            elif op["op"] == "add" and op["path"] == "/subjects/-":
                subjects.append(dict(op["value"]))
            elif op["op"] == "add" and op["path"] == "/subjects":
                subjects = [dict(s) for s in op["value"]]
            elif op["op"] == "remove" and op["path"].startswith("/subjects/"):
                del subjects[int(op["path"].rsplit("/", 1)[1])]
            else:
                raise AssertionError(f"unexpected operation on a binding: {op}")
        binding["subjects"] = subjects
        binding["metadata"]["resourceVersion"] = self._resource_version()

    def _patch_workload(self, action: PatchWorkload) -> None:
        assert action.kind == "Deployment", action
        deployment = self.deployments[action.name]
        before = references.service_account_name(deployment["spec"]["template"]["spec"])
        for change in action.changes:
            actual = objects.value_at(deployment, change.path)
            assert actual == change.old, f"JSON patch test failed at {change.path}: {actual!r} != {change.old!r}"
            set_at(deployment, change.path, change.new)
        deployment["metadata"]["generation"] += 1
        after = references.service_account_name(deployment["spec"]["template"]["spec"])
        lacking = [
            b for b, found in self.bindings.items() if self._binds(found, before) and not self._binds(found, after)
        ]
        assert not lacking, f"Deployment {action.name} switched to {after}, which lacks {lacking} that {before} had"
        self.roll_out(action.name)

    @staticmethod
    def _binds(binding: Mapping[str, Any], account: str) -> bool:
        return any(accounts.is_subject(s, account, NAMESPACE) for s in binding.get("subjects") or [])

    # -- what must never happen ------------------------------------------------------------

    def assert_sound(self) -> None:
        """No pod or template names a missing account or Secret; no binding lists a subject twice."""
        users = [(f"Pod {n}", p["spec"]) for n, p in self.pods.items()]
        users += [(f"Deployment {n}", d["spec"]["template"]["spec"]) for n, d in self.deployments.items()]
        for who, pod_spec in users:
            account = references.service_account_name(pod_spec)
            assert account in self.accounts, f"{who} runs as the missing ServiceAccount {account}"
            missing = references.referenced_secrets(pod_spec) - set(self.secrets)
            assert not missing, f"{who} references the missing Secrets {sorted(missing)}"
        for name, binding in self.bindings.items():
            entries = [(s["kind"], s["name"], s.get("namespace")) for s in binding["subjects"]]
            assert len(entries) == len(set(entries)), f"RoleBinding {name} lists a subject twice: {entries}"

    def snapshot(self) -> dict[str, Any]:
        """What a finished rotation leaves behind, resourceVersions aside."""
        return {
            "accounts": sorted(self.accounts),
            "secrets": sorted(self.secrets),
            "bindings": {n: subject_names(b) for n, b in self.bindings.items()},
            "templates": {n: copy.deepcopy(d["spec"]["template"]["spec"]) for n, d in self.deployments.items()},
            "generations": {n: d["metadata"]["generation"] for n, d in self.deployments.items()},
        }


def ci_namespace() -> Namespace:
    """Account deployer (bound as in BINDINGS), account other, and a Deployment api running as deployer."""
    namespace = Namespace()
    namespace.add_account("default")
    namespace.add_account(BASE, legacy_token=f"{BASE}-token-q4x9z")  # from before an upgrade to 1.24
    namespace.add_account("other")
    for name, subjects in BINDINGS.items():
        namespace.add_binding(name, subjects)
    namespace.add_deployment("api", running_as(BASE))
    return namespace


# --- the shell ------------------------------------------------------------------------------------


class AccountRotation:
    """SecretRotation ``deployer`` stepped as the shell steps it: observe, plan, act, then write status."""

    def __init__(self, namespace: Namespace, spec: dict[str, Any] | None = None) -> None:
        self.namespace = namespace
        self.spec = spec if spec is not None else account_spec()
        self.annotations: dict[str, str] = {}
        self.status: dict[str, Any] = {}
        self.plans: list[Plan] = []

    def resource(self) -> Resource:
        return Resource(
            ROTATION, NAMESPACE, 1, dict(self.annotations), copy.deepcopy(self.spec), copy.deepcopy(self.status)
        )

    def request(self) -> None:
        self.annotations[names.REQUESTED_AT_ANNOTATION] = ts(self.namespace.now)
        self.namespace.advance(seconds=1)

    def step(self, *, actions_done: int | None = None, write_status: bool = True) -> Plan:
        """One step. A crash: only the first ``actions_done`` actions, or the status never written."""
        resource = self.resource()
        plan = planner_step(resource, lambda needs: self.namespace.observe(resource, needs))
        assert_conventions(plan, resource)
        for action in plan.actions[:actions_done]:
            self.namespace.perform(ROTATION, action)
        self.namespace.assert_sound()
        if write_status:
            self.status = plan.status
        self.plans.append(plan)
        return plan

    def run(self, *, max_steps: int = 20) -> list[str]:
        """Step a triggered rotation back to Idle; the phases seen."""
        phases: list[str] = []
        while len(phases) < max_steps:
            phases.append(self.step().status["phase"])
            if phases[-1] == Phase.IDLE:
                return phases
        raise AssertionError(f"the rotation did not finish within {max_steps} steps: {phases}")

    @property
    def phase(self) -> str:
        return str(self.status.get("phase") or Phase.IDLE)


def condition(status: Mapping[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), {})


def reason_of(status: Mapping[str, Any], kind: str) -> tuple[str, str] | None:
    found = condition(status, kind)
    return (found["status"], found["reason"]) if found else None


def actions(plans: Sequence[Plan]) -> list[Action]:
    return [a for p in plans for a in p.actions]


def of_type(plans: Sequence[Plan], kind: type) -> list[Any]:
    return [a for a in actions(plans) if isinstance(a, kind)]


def template_account(namespace: Namespace, deployment: str) -> str:
    return references.service_account_name(namespace.deployments[deployment]["spec"]["template"]["spec"])


def rotated_once(**spec: Any) -> AccountRotation:
    """The ci namespace on deployer-v1 (revision 1): api runs as it; with token Secrets, uploader mounts its token."""
    namespace = ci_namespace()
    rotation = AccountRotation(namespace, account_spec(**spec))
    rotation.run()
    assert (rotation.status["currentSecret"], rotation.phase) == ("deployer-v1", "Idle"), rotation.status
    assert template_account(namespace, "api") == "deployer-v1"
    if spec.get("token_secret", True):
        namespace.add_deployment("uploader", running_as("default", token="deployer-v1-token"))
    rotation.plans.clear()
    namespace.performed.clear()
    return rotation


def kinds(found: Sequence[Action]) -> list[str]:
    return [type(a).__name__ for a in found]


# --- staging ------------------------------------------------------------------------------------


def test_staging_creates_the_account_and_its_token_then_adds_it_to_exactly_the_bindings_of_the_account_in_use() -> None:
    rotation = rotated_once()
    namespace = rotation.namespace
    untouched = {n: copy.deepcopy(namespace.bindings[n]) for n in UNTOUCHED}
    v1 = namespace.accounts["deployer-v1"]
    rotation.request()

    rotation.run()

    staged = [a for a in actions(rotation.plans) if not isinstance(a, PatchWorkload)][:4]
    assert kinds(staged) == ["CreateAccount", "CreateTokenSecret", "PatchBinding", "PatchBinding"], staged
    nonce = rotation.plans[0].status["rotation"]["nonce"]
    assert staged[0] == CreateAccount("deployer-v2", 2, v1, nonce), "the new account copies the account in use"
    assert {a.name for a in staged[2:]} == set(CARRIED)
    assert subject_names(namespace.bindings["deployer-reads"]) == ["deployer", "deployer-v2"]
    assert subject_names(namespace.bindings["shared-reads"]) == ["deployer", "deployer-v2", "other"]
    assert {n: namespace.bindings[n] for n in UNTOUCHED} == untouched, "a binding the old account lacked changed"
    recorded = [p.status["rotation"].get("bindings") for p in rotation.plans if p.status.get("rotation")]
    assert [{"kind": "RoleBinding", "name": n} for n in CARRIED] in recorded, recorded


def test_the_first_rotation_adopts_the_base_account_and_carries_its_bindings() -> None:
    namespace = ci_namespace()
    rotation = AccountRotation(namespace)

    rotation.run()

    assert rotation.status["currentSecret"] == "deployer-v1" and rotation.status["adoptedSecret"]["name"] == BASE
    assert of_type(rotation.plans, CreateAccount)[0].source == namespace.accounts[BASE]
    assert subject_names(namespace.bindings["deployer-reads"]) == ["deployer", "deployer-v1"]
    assert BASE in namespace.accounts, "an adopted account is never collected"
    assert template_account(namespace, "api") == "deployer-v1"


def test_the_new_account_is_neither_bound_nor_switched_to_before_its_token_secret_is_filled() -> None:
    rotation = rotated_once(token_secret=True)
    namespace = rotation.namespace
    namespace.fill_tokens = False
    rotation.request()

    waiting = [rotation.step() for _ in range(6)]

    assert [p.status["phase"] for p in waiting] == ["Staging"] * 6
    assert "deployer-v2" in namespace.accounts
    assert of_type(waiting, PatchBinding) == of_type(waiting, PatchWorkload) == [], "acted before the token existed"
    assert "token" in condition(waiting[-1].status, "Reconciling")["message"], waiting[-1].status
    assert all(p.wake_at is not None for p in waiting[2:]), "waiting for a token needs a wake-up: no watch covers it"

    namespace.fill_tokens = True
    rotation.run()

    assert (rotation.status["currentSecret"], template_account(namespace, "api")) == ("deployer-v2", "deployer-v2")


def test_a_binding_that_does_not_consent_stalls_with_binding_not_permitted_and_nothing_is_done() -> None:
    namespace = ci_namespace()
    del namespace.bindings["shared-reads"]["metadata"]["annotations"]
    before = namespace.snapshot()
    rotation = AccountRotation(namespace)

    phases = rotation.run()

    assert phases == ["Staging", "Idle"], phases
    assert actions(rotation.plans) == [], "a binding that did not consent was extended"
    assert namespace.snapshot() == before
    assert reason_of(rotation.status, "Stalled") == ("True", "BindingNotPermitted")
    message = condition(rotation.status, "Stalled")["message"]
    assert "RoleBinding/shared-reads" in message and "RoleBinding/deployer-reads" not in message, message
    assert f"{names.EXTEND_BINDING_ANNOTATION}=true" in message, message


def test_a_consenting_binding_the_operator_may_not_extend_stalls_and_nothing_is_done() -> None:
    namespace = ci_namespace()
    namespace.operator_let_in = False
    before = namespace.snapshot()
    rotation = AccountRotation(namespace)

    rotation.run()

    assert actions(rotation.plans) == [] and namespace.snapshot() == before
    assert reason_of(rotation.status, "Stalled") == ("True", "BindingNotPermitted")
    message = condition(rotation.status, "Stalled")["message"]
    assert "RoleBinding/deployer-reads" in message and "RoleBinding/shared-reads" in message, message
    assert "RoleBinding/other-admin" not in message, message
    assert "deploy/rbac-serviceaccounts.yaml" in message, message


def test_an_account_bound_by_nothing_rotates_without_the_opt_in() -> None:
    namespace = ci_namespace()
    namespace.operator_let_in = False
    namespace.bindings = {n: b for n, b in namespace.bindings.items() if n in UNTOUCHED}
    rotation = AccountRotation(namespace)

    rotation.run()

    assert rotation.status["currentSecret"] == "deployer-v1", rotation.status
    assert of_type(rotation.plans, PatchBinding) == []


# --- rollback -------------------------------------------------------------------------------------


def test_a_crash_looping_pod_on_the_new_account_rolls_back_then_unbinds_its_token_and_account_in_order() -> None:
    rotation = rotated_once()
    namespace = rotation.namespace
    bound_before = {n: subject_names(b) for n, b in namespace.bindings.items()}
    namespace.crashing_accounts.add("deployer-v2")
    rotation.request()

    phases = rotation.run()

    assert "RollingBack" in phases and phases[-1] == "Idle", phases
    assert reason_of(rotation.status, "Stalled") == ("True", "VerificationFailed")
    assert "CrashLoopBackOff" in condition(rotation.status, "Stalled")["message"]
    assert (rotation.status["currentSecret"], rotation.status["revision"]) == ("deployer-v1", 1)
    assert template_account(namespace, "api") == "deployer-v1"
    reverted = namespace.deployments["uploader"]["spec"]["template"]["spec"]["volumes"]
    assert reverted == [{"name": "token", "secret": {"secretName": "deployer-v1-token"}}]
    removal = rotation.plans[-1].actions
    assert kinds(removal) == ["PatchBinding", "PatchBinding", "DeleteSecret", "DeleteAccount"], removal
    assert {a.name for a in removal[:2]} == set(CARRIED)
    assert (removal[2].name, removal[3].name) == ("deployer-v2-token", "deployer-v2"), removal
    assert {n: subject_names(b) for n, b in namespace.bindings.items()} == bound_before
    assert not [n for n in [*namespace.accounts, *namespace.secrets] if n.startswith("deployer-v2")]
    assert "pendingDeletion" not in rotation.status


# --- garbage collection ---------------------------------------------------------------------------


def test_with_retain_zero_the_old_account_leaves_every_binding_then_its_token_then_the_account_goes() -> None:
    rotation = rotated_once()
    namespace = rotation.namespace
    old_token, old_account = namespace.secrets["deployer-v1-token"], namespace.accounts["deployer-v1"]
    rotation.request()

    rotation.run()

    collected = rotation.plans[-1].actions
    assert kinds(collected) == ["PatchBinding", "PatchBinding", "DeleteSecret", "DeleteAccount"], collected
    assert {a.name for a in collected[:2]} == set(CARRIED)
    assert collected[2:] == (
        DeleteSecret("deployer-v1-token", old_token.resource_version),
        DeleteAccount("deployer-v1", old_account.resource_version),
    )
    assert subject_names(namespace.bindings["deployer-reads"]) == ["deployer", "deployer-v2"]
    assert subject_names(namespace.bindings["shared-reads"]) == ["deployer", "deployer-v2", "other"], "others stay"
    assert sorted(a for a in namespace.accounts if a.startswith(BASE)) == [BASE, "deployer-v2"]
    assert not [s for s in namespace.secrets if s.startswith("deployer-v1")], "its tokens went with it"
    status = rotation.status
    assert (status["currentSecret"], status["retainedSecrets"]) == ("deployer-v2", [])
    assert "pendingDeletion" not in status and reason_of(status, "Ready") == ("True", "Rotated")


def test_with_retain_one_the_old_account_stays_bound_until_the_next_rotation() -> None:
    rotation = rotated_once(retain=1)
    namespace = rotation.namespace
    rotation.request()
    rotation.run()
    assert rotation.status["retainedSecrets"] == ["deployer-v1"]
    assert subject_names(namespace.bindings["deployer-reads"]) == ["deployer", "deployer-v1", "deployer-v2"]

    rotation.request()
    rotation.run()

    assert rotation.status["retainedSecrets"] == ["deployer-v2"]
    assert subject_names(namespace.bindings["deployer-reads"]) == ["deployer", "deployer-v2", "deployer-v3"]
    assert "deployer-v1" not in namespace.accounts and "deployer-v1-token" not in namespace.secrets


@pytest.mark.parametrize(
    "pod_spec",
    [running_as("deployer-v1"), running_as("default", token="deployer-v1-token")],
    ids=["running-as-it", "mounting-its-token"],
)
def test_a_lone_pod_using_the_old_account_blocks_its_collection_until_the_pod_goes(pod_spec: dict[str, Any]) -> None:
    rotation = rotated_once()
    namespace = rotation.namespace
    namespace.add_lone_pod("debug-shell", pod_spec)
    rotation.request()

    rotation.run()

    blocked = rotation.plans[-1]
    assert rotation.status["currentSecret"] == "deployer-v2" and rotation.phase == "Idle"
    assert of_type(rotation.plans, DeleteAccount) == of_type(rotation.plans, DeleteSecret) == []
    removals = [a for a in of_type(rotation.plans, PatchBinding) if any(op["op"] == "remove" for op in a.operations)]
    assert removals == [], "the old account lost its bindings while a pod still runs with them"
    assert subject_names(namespace.bindings["deployer-reads"]) == ["deployer", "deployer-v1", "deployer-v2"]
    [pending] = rotation.status["pendingDeletion"]
    assert (pending["name"], pending["reason"]) == ("deployer-v1", "StillReferenced"), pending
    collected = condition(rotation.status, "GarbageCollected")
    assert (collected["status"], collected["reason"]) == ("False", "StillReferenced")
    assert "Pod/debug-shell" in collected["message"], collected
    assert ("CollectionBlocked", True) in [(e.reason, e.warning) for e in blocked.events]
    assert reason_of(rotation.status, "Ready") == ("True", "Rotated"), "a blocked deletion does not unready"

    namespace.advance(minutes=5)
    still = rotation.step()
    assert (still.actions, still.events) == ((), ()), "no repeated warning while nothing changed"

    del namespace.pods["debug-shell"]
    freed = rotation.step()

    assert kinds(freed.actions) == ["PatchBinding", "PatchBinding", "DeleteSecret", "DeleteAccount"], freed.actions
    assert "deployer-v1" not in namespace.accounts and "deployer-v1-token" not in namespace.secrets
    assert subject_names(namespace.bindings["deployer-reads"]) == ["deployer", "deployer-v2"]
    assert "pendingDeletion" not in rotation.status and not condition(rotation.status, "GarbageCollected")


# --- crashes --------------------------------------------------------------------------------------


def second_rotation(*, failing: bool) -> AccountRotation:
    """Rotation 2 requested on the ci namespace; pods running as deployer-v2 crash-loop if ``failing``."""
    rotation = rotated_once()
    if failing:
        rotation.namespace.crashing_accounts.add("deployer-v2")
    rotation.request()
    return rotation


def target(action: Action) -> tuple[str, str]:
    name = action.account if isinstance(action, CreateTokenSecret) else action.name
    return type(action).__name__, name


STATUS_OUTCOME = ("phase", "revision", "currentSecret", "retainedSecrets", "pendingDeletion", "consecutiveFailures")


@pytest.mark.parametrize("failing", [False, True], ids=["succeeding", "rolled-back"])
def test_a_crash_after_any_action_of_any_step_ends_exactly_as_without_it(failing: bool) -> None:
    calm = second_rotation(failing=failing)
    before = calm.namespace.snapshot()["generations"]
    calm.run()
    expected = calm.namespace.snapshot()
    switches = 2 if failing else 1  # switched, and switched back
    assert expected["generations"] == {n: g + switches for n, g in before.items()}, "a template changed once too often"
    crashes = [(step, done) for step, plan in enumerate(calm.plans) for done in range(len(plan.actions) + 1)]
    assert len(crashes) > 12, crashes

    for step, done in crashes:
        crashed = second_rotation(failing=failing)
        for _ in range(step):
            crashed.step()
        crashed.step(actions_done=done, write_status=False)  # killed: the status is never written
        crashed.run()

        where = f"killed at step {step} after {done} actions"
        assert crashed.namespace.snapshot() == expected, where
        assert {k: crashed.status.get(k) for k in STATUS_OUTCOME} == {k: calm.status.get(k) for k in STATUS_OUTCOME}


@pytest.mark.parametrize("failing", [False, True], ids=["succeeding", "rolled-back"])
def test_every_step_repeated_after_a_crash_does_nothing_twice(failing: bool) -> None:
    """The operator dies after acting, before writing status, at every step; each step is repeated from its cursor."""
    calm = second_rotation(failing=failing)
    calm.run()
    rotation = second_rotation(failing=failing)

    while rotation.phase != Phase.IDLE or not rotation.plans:
        assert len(rotation.plans) < 40, "the rotation never finished"
        cursor = rotation.phase
        crashed = rotation.step(write_status=False)
        again = rotation.step()

        done = {target(a) for a in crashed.actions}
        assert not [a for a in again.actions if target(a) in done], f"repeating a {cursor} step acted twice"

    assert rotation.namespace.snapshot() == calm.namespace.snapshot()


# --- what is not ours -----------------------------------------------------------------------------


def test_an_account_squatting_the_staged_name_is_skipped_and_never_touched() -> None:
    namespace = ci_namespace()
    namespace.add_account("deployer-v1")
    squatter = namespace.accounts["deployer-v1"]
    rotation = AccountRotation(namespace)

    rotation.run()

    assert rotation.status["currentSecret"] == "deployer-v2", rotation.status
    touched = [found for found in map(target, actions(rotation.plans)) if found[1] == "deployer-v1"]
    assert touched == [], "an account this rotation did not stage was touched"
    assert namespace.accounts["deployer-v1"] == squatter


# --- known bugs -----------------------------------------------------------------------------------


def test_without_token_secret_a_mounted_token_is_not_switched_to_one_that_will_never_exist() -> None:
    namespace = ci_namespace()
    # A long-lived token made by hand for the base account, as the Kubernetes documentation shows it.
    namespace.add_token_secret("deployer-token", BASE)
    namespace.add_deployment("uploader", running_as("default", token="deployer-token"))
    rotation = AccountRotation(namespace, account_spec(token_secret=False))

    rotation.run()  # each step checks that no template references a missing Secret

    assert "deployer-v1-token" not in namespace.secrets
    volumes = namespace.deployments["uploader"]["spec"]["template"]["spec"]["volumes"]
    assert volumes == [{"name": "token", "secret": {"secretName": "deployer-token"}}]


def test_a_pod_mounting_a_token_the_old_account_lists_blocks_its_collection() -> None:
    rotation = rotated_once()
    namespace = rotation.namespace
    auto_token = "deployer-v1-token-by-hand"  # an admin added it to the account's list
    namespace.add_token_secret(auto_token, "deployer-v1")
    account = namespace.accounts["deployer-v1"]
    namespace.accounts["deployer-v1"] = replace(account, secrets=(auto_token,))
    namespace.add_lone_pod("ci-runner", running_as("default", token=auto_token))
    rotation.request()

    rotation.run()  # each step checks that no pod references a missing Secret

    assert "deployer-v1" in namespace.accounts and auto_token in namespace.secrets
    assert [e["name"] for e in rotation.status["pendingDeletion"]] == ["deployer-v1"]
