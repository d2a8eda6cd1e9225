"""What a kubelet would report for a pod: the pure half of the simulated kubelet.

The rules follow the real kubelet wherever they matter to secret rotation:

* a non-optional secret volume (or projected secret source) whose Secret or
  item key is missing keeps the pod ``ContainerCreating`` with a ``FailedMount``
  Event;
* an ``imagePullSecrets`` entry naming a missing Secret gives ``ImagePullBackOff``;
* a container whose non-optional ``secretKeyRef`` or ``envFrom.secretRef``
  needs a missing Secret or key waits in ``CreateContainerConfigError``, and
  starts once it appears;
* a container that has started keeps running when its Secret goes away: env
  values were resolved at start and mounted files stay;
* otherwise containers run, and the pod turns Ready after a readiness delay.

Faults are injected per namespace with a ConfigMap named ``sim-kubelet-faults``
whose ``faults.yaml`` key holds a list of rules, for example::

    - secret: db-credentials-v2     # pods that reference this Secret ...
      effect: CrashLoop             # ... crash-loop, restartCount rising
    - serviceAccount: deployer-v2   # pods running as this account ...
      effect: NeverReady            # ... run but never pass readiness

Effects: ``CrashLoop`` and ``NeverReady``.

Nothing here reads a secret value: the kubelet only knows which keys exist.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import yaml

FAULTS_CONFIGMAP = "sim-kubelet-faults"
FAULTS_KEY = "faults.yaml"
READINESS_DELAY_ANNOTATION = "sim.secretrotation.dev/readiness-delay-seconds"

SecretKeys = Callable[[str, str], frozenset[str] | None]
"""(namespace, name) -> the keys of that Secret, or None when it does not exist."""


class Effect(enum.Enum):
    CRASH_LOOP = "CrashLoop"
    NEVER_READY = "NeverReady"


@dataclasses.dataclass(frozen=True)
class Fault:
    effect: Effect
    secret: str | None = None
    service_account: str | None = None

    def matches(self, pod: Mapping[str, Any]) -> bool:
        spec = pod.get("spec") or {}
        if self.secret is not None and self.secret not in _referenced_secrets(spec):
            return False
        if self.service_account is not None and self.service_account != _service_account(spec):
            return False
        return self.secret is not None or self.service_account is not None


def parse_faults(text: str) -> list[Fault]:
    """Rules of a ``faults.yaml``; raises ValueError naming the bad entry."""
    rules = yaml.safe_load(text)
    if rules is None:
        return []
    if not isinstance(rules, list):
        raise ValueError(f"{FAULTS_KEY} must be a list of rules")
    faults = []
    for index, rule in enumerate(rules):
        if not isinstance(rule, dict) or "effect" not in rule:
            raise ValueError(f"{FAULTS_KEY}[{index}] needs an effect")
        try:
            effect = Effect(rule["effect"])
        except ValueError:
            raise ValueError(f"{FAULTS_KEY}[{index}].effect must be one of {[e.value for e in Effect]}") from None
        if "secret" not in rule and "serviceAccount" not in rule:
            raise ValueError(f"{FAULTS_KEY}[{index}] needs a secret or a serviceAccount to match")
        faults.append(Fault(effect, rule.get("secret"), rule.get("serviceAccount")))
    return faults


@dataclasses.dataclass
class PodRuntime:
    """What the simulated container runtime remembers about one pod."""

    started: dict[str, datetime] = dataclasses.field(default_factory=dict)
    init_done: bool = False
    transitions: dict[str, tuple[str, datetime]] = dataclasses.field(default_factory=dict)
    events_posted: set[tuple[str, str]] = dataclasses.field(default_factory=set)

    @classmethod
    def from_status(cls, pod: Mapping[str, Any], now: datetime) -> PodRuntime:
        """Rebuild the runtime of a pod a previous kubelet process already started."""
        runtime = cls()
        status = pod.get("status") or {}
        for cs in status.get("containerStatuses") or []:
            state = cs.get("state") or {}
            if "running" in state or cs.get("restartCount", 0) > 0 or "terminated" in state:
                started_at = (state.get("running") or {}).get("startedAt")
                runtime.started[cs["name"]] = _parse_time(started_at) if started_at else now
        init_statuses = status.get("initContainerStatuses") or []
        runtime.init_done = bool(runtime.started) or (
            bool(init_statuses) and all("terminated" in (s.get("state") or {}) for s in init_statuses)
        )
        for condition in status.get("conditions") or []:
            if condition.get("lastTransitionTime"):
                runtime.transitions[condition["type"]] = (
                    condition["status"],
                    _parse_time(condition["lastTransitionTime"]),
                )
        return runtime


@dataclasses.dataclass(frozen=True)
class PodEvent:
    reason: str
    message: str
    type: str = "Warning"


@dataclasses.dataclass(frozen=True)
class Observation:
    """The status the kubelet reports, Events to post, and when to look again."""

    status: dict[str, Any]
    events: tuple[PodEvent, ...]
    wake_at: datetime | None


def _referenced_secrets(spec: Mapping[str, Any]) -> set[str]:
    names = {s.get("name") for s in spec.get("imagePullSecrets") or []}
    for volume in spec.get("volumes") or []:
        if volume.get("secret"):
            names.add(volume["secret"].get("secretName"))
        for source in (volume.get("projected") or {}).get("sources") or []:
            if source.get("secret"):
                names.add(source["secret"].get("name"))
    for container in _all_containers(spec):
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                names.add(ref.get("name"))
        for source in container.get("envFrom") or []:
            if source.get("secretRef"):
                names.add(source["secretRef"].get("name"))
    names.discard(None)
    return {str(n) for n in names}


def _service_account(spec: Mapping[str, Any]) -> str:
    return str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")


def _all_containers(spec: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    yield from spec.get("initContainers") or []
    yield from spec.get("containers") or []


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _format_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def mount_problems(namespace: str, spec: Mapping[str, Any], secret_keys: SecretKeys) -> list[str]:
    """FailedMount messages for secret volumes that cannot be set up."""
    problems = []
    for volume in spec.get("volumes") or []:
        sources = []
        if volume.get("secret"):
            source = volume["secret"]
            sources.append((source.get("secretName"), source.get("optional"), source.get("items")))
        for projected in (volume.get("projected") or {}).get("sources") or []:
            if projected.get("secret"):
                source = projected["secret"]
                sources.append((source.get("name"), source.get("optional"), source.get("items")))
        for secret, optional, items in sources:
            if optional:
                continue
            keys = secret_keys(namespace, secret)
            prefix = f'MountVolume.SetUp failed for volume "{volume.get("name")}" : '
            if keys is None:
                problems.append(f'{prefix}secret "{secret}" not found')
                continue
            for item in items or []:
                if item.get("key") not in keys:
                    problems.append(f"{prefix}couldn't find key {item.get('key')} in Secret {namespace}/{secret}")
    return problems


def pull_problems(namespace: str, spec: Mapping[str, Any], secret_keys: SecretKeys) -> list[str]:
    return [
        f'Unable to retrieve image pull secret "{ref.get("name")}": secret not found'
        for ref in spec.get("imagePullSecrets") or []
        if secret_keys(namespace, ref.get("name", "")) is None
    ]


def config_problem(namespace: str, container: Mapping[str, Any], secret_keys: SecretKeys) -> str | None:
    """Why the kubelet cannot build this container's environment, or None."""
    for env in container.get("env") or []:
        ref = (env.get("valueFrom") or {}).get("secretKeyRef")
        if not ref or ref.get("optional"):
            continue
        keys = secret_keys(namespace, ref.get("name", ""))
        if keys is None:
            return f'secret "{ref.get("name")}" not found'
        if ref.get("key") not in keys:
            return f"couldn't find key {ref.get('key')} in Secret {namespace}/{ref.get('name')}"
    for source in container.get("envFrom") or []:
        ref = source.get("secretRef")
        if ref and not ref.get("optional") and secret_keys(namespace, ref.get("name", "")) is None:
            return f'secret "{ref.get("name")}" not found'
    return None


class PodSimulator:
    """Computes a pod's status from its spec, the Secrets that exist, faults and time."""

    def __init__(self, readiness_delay: timedelta, crash_interval: timedelta) -> None:
        self.readiness_delay = readiness_delay
        self.crash_interval = crash_interval

    def observe(
        self,
        pod: Mapping[str, Any],
        runtime: PodRuntime,
        secret_keys: SecretKeys,
        faults: Iterable[Fault],
        now: datetime,
    ) -> Observation:
        namespace = pod["metadata"]["namespace"]
        spec = pod.get("spec") or {}
        effects = {fault.effect for fault in faults if fault.matches(pod)}
        events: list[PodEvent] = []
        containers = list(spec.get("containers") or [])
        init_containers = list(spec.get("initContainers") or [])

        if not runtime.started:
            problems = mount_problems(namespace, spec, secret_keys)
            if problems:
                events += [PodEvent("FailedMount", p) for p in problems]
                return self._pending(pod, runtime, now, containers, "ContainerCreating", events)
            problems = pull_problems(namespace, spec, secret_keys)
            if problems:
                events += [PodEvent("Failed", p) for p in problems]
                return self._pending(pod, runtime, now, containers, "ImagePullBackOff", events)

        init_statuses = []
        if not runtime.init_done:
            for container in init_containers:
                problem = config_problem(namespace, container, secret_keys)
                if problem:
                    events.append(PodEvent("Failed", f"Error: {problem}"))
                    init_statuses.append(_waiting(container, "CreateContainerConfigError", problem))
                    init_statuses += [_waiting(c, "PodInitializing") for c in init_containers[len(init_statuses) :]]
                    return self._pending(pod, runtime, now, containers, "PodInitializing", events, init_statuses)
            runtime.init_done = True
        init_statuses = [_completed(c, now) for c in init_containers]

        statuses = []
        wake_at: datetime | None = None
        all_ready = bool(containers)
        run_to_completion = spec.get("restartPolicy") in ("Never", "OnFailure")
        delay = self._readiness_delay(pod)
        for container in containers:
            name = container["name"]
            if name not in runtime.started:
                problem = config_problem(namespace, container, secret_keys)
                if problem:
                    events.append(PodEvent("Failed", f"Error: {problem}"))
                    statuses.append(_waiting(container, "CreateContainerConfigError", problem))
                    all_ready = False
                    continue
                runtime.started[name] = now
            started = runtime.started[name]
            if Effect.CRASH_LOOP in effects:
                status, next_crash = self._crash_looping(container, started, now)
                statuses.append(status)
                wake_at = _earliest(wake_at, next_crash)
                all_ready = False
                continue
            ready_at = started + delay
            if run_to_completion and now >= ready_at:
                statuses.append(_completed(container, ready_at, started))
                continue
            ready = now >= ready_at and Effect.NEVER_READY not in effects
            if not ready and Effect.NEVER_READY not in effects:
                wake_at = _earliest(wake_at, ready_at)
            all_ready = all_ready and ready
            statuses.append(_running(container, started, ready))

        if run_to_completion and statuses and all("terminated" in s["state"] for s in statuses):
            phase = "Succeeded"
            all_ready = False
        else:
            phase = "Running" if runtime.started else "Pending"
        status = self._status(pod, runtime, now, phase, all_ready, statuses, init_statuses, initialized=True)
        return Observation(status, _fresh(runtime, events), wake_at)

    def _readiness_delay(self, pod: Mapping[str, Any]) -> timedelta:
        annotation = (pod["metadata"].get("annotations") or {}).get(READINESS_DELAY_ANNOTATION)
        try:
            return timedelta(seconds=float(annotation)) if annotation is not None else self.readiness_delay
        except ValueError:
            return self.readiness_delay

    def _crash_looping(
        self, container: Mapping[str, Any], started: datetime, now: datetime
    ) -> tuple[dict[str, Any], datetime]:
        """A container that exits right after each start; restarts every crash_interval."""
        crashes = int((now - started) / self.crash_interval) + 1
        last_crash = started + self.crash_interval * (crashes - 1)
        status = _waiting(container, "CrashLoopBackOff", f"back-off restarting failed container {container['name']}")
        status["restartCount"] = crashes
        status["lastState"] = {
            "terminated": {
                "exitCode": 1,
                "reason": "Error",
                "startedAt": _format_time(last_crash),
                "finishedAt": _format_time(last_crash),
            }
        }
        return status, started + self.crash_interval * crashes

    def _pending(
        self,
        pod: Mapping[str, Any],
        runtime: PodRuntime,
        now: datetime,
        containers: list[Mapping[str, Any]],
        reason: str,
        events: list[PodEvent],
        init_statuses: list[dict[str, Any]] | None = None,
    ) -> Observation:
        statuses = [_waiting(c, reason) for c in containers]
        status = self._status(
            pod, runtime, now, "Pending", False, statuses, init_statuses or [], initialized=init_statuses is None
        )
        return Observation(status, _fresh(runtime, events), None)

    def _status(
        self,
        pod: Mapping[str, Any],
        runtime: PodRuntime,
        now: datetime,
        phase: str,
        ready: bool,
        statuses: list[dict[str, Any]],
        init_statuses: list[dict[str, Any]],
        *,
        initialized: bool,
    ) -> dict[str, Any]:
        def condition(kind: str, value: bool) -> dict[str, Any]:
            text = "True" if value else "False"
            previous = runtime.transitions.get(kind)
            if previous is None or previous[0] != text:
                runtime.transitions[kind] = (text, now)
            return {"type": kind, "status": text, "lastTransitionTime": _format_time(runtime.transitions[kind][1])}

        existing = pod.get("status") or {}
        status: dict[str, Any] = {
            "phase": phase,
            "conditions": [
                condition("Initialized", initialized),
                condition("Ready", ready),
                condition("ContainersReady", ready),
                condition("PodScheduled", True),
            ],
            "containerStatuses": statuses,
            "startTime": existing.get("startTime") or _format_time(now),
            "hostIP": "127.0.0.1",
            "qosClass": existing.get("qosClass", "BestEffort"),
        }
        if init_statuses:
            status["initContainerStatuses"] = init_statuses
        return status


def _fresh(runtime: PodRuntime, events: list[PodEvent]) -> tuple[PodEvent, ...]:
    """Events not posted for this pod before: the kubelet reports a problem once, not every look."""
    fresh = tuple(e for e in dict.fromkeys(events) if (e.reason, e.message) not in runtime.events_posted)
    runtime.events_posted.update((e.reason, e.message) for e in fresh)
    return fresh


def _earliest(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate < current else current


def _base(container: Mapping[str, Any]) -> dict[str, Any]:
    image = container.get("image", "")
    return {"name": container["name"], "image": image, "imageID": f"sim://{image}", "restartCount": 0}


def _waiting(container: Mapping[str, Any], reason: str, message: str | None = None) -> dict[str, Any]:
    waiting = {"reason": reason}
    if message:
        waiting["message"] = message
    return {**_base(container), "ready": False, "started": False, "state": {"waiting": waiting}}


def _running(container: Mapping[str, Any], started: datetime, ready: bool) -> dict[str, Any]:
    return {
        **_base(container),
        "ready": ready,
        "started": True,
        "containerID": f"sim://{container['name']}",
        "state": {"running": {"startedAt": _format_time(started)}},
    }


def _completed(container: Mapping[str, Any], finished: datetime, started: datetime | None = None) -> dict[str, Any]:
    return {
        **_base(container),
        "ready": False,
        "started": False,
        "containerID": f"sim://{container['name']}",
        "state": {
            "terminated": {
                "exitCode": 0,
                "reason": "Completed",
                "startedAt": _format_time(started or finished),
                "finishedAt": _format_time(finished),
            }
        },
    }


def status_differs(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """True when writing ``desired`` would change what the pod's status says."""
    return any(current.get(key) != value for key, value in desired.items())
